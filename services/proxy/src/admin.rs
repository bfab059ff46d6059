//! The admin API (port 9080, loopback by default): route modes with readiness, the replay log,
//! outcome counters, health and Prometheus metrics.
//!
//! Every request under `/admin` (reads too: replay entries carry customer data) needs
//! `Authorization: Bearer <ADMIN_TOKEN>`, checked by one middleware before any handler runs, so
//! a refused change cannot have touched anything; only `/health`, `/ready` and `/metrics` are
//! open (probes, the Prometheus scrape). Without a configured token every admin request is
//! refused. Callers name themselves with `X-Admin-Actor` for the audit trail;
//! the peer address is always recorded with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::breaker::BreakerState;
use crate::observe;
use crate::order_client::OrderService;
use crate::routes::{Mode, Route, RouteError, RouteTable, SapUnavailablePolicy, policy_name};
use crate::shadow::ShadowStats;
use crate::store::{ReplayState, Store};
use crate::upstream::Upstream;

/// Shared state of the admin API.
#[derive(Clone)]
pub struct AdminState {
    /// Route table.
    pub routes: RouteTable,
    /// Durable state.
    pub store: Store,
    /// Order service (readiness).
    pub orders: Arc<dyn OrderService>,
    /// SAP upstream (breaker state).
    pub sap: Arc<Upstream>,
    /// Order-service upstream (breaker state).
    pub order_upstream: Arc<Upstream>,
    /// Bearer token for changes.
    pub token: Option<String>,
    /// Wakes the replay worker after a retry.
    pub replay_wakeup: Arc<Notify>,
    /// Latest reconciliation report per route (from `orderctl reconcile`).
    pub reconciliation: Arc<Mutex<HashMap<String, ReconciliationReport>>>,
    /// Shadow read counts.
    pub shadow: Arc<ShadowStats>,
    /// sap-sync's status endpoint, when configured.
    pub sap_sync: Option<Arc<Upstream>>,
    /// Most events sap-sync may lag behind for a switch to `events`.
    pub sap_sync_max_lag: u64,
    /// Shadow samples needed.
    pub shadow_min_samples: u64,
    /// Shadow match rate needed.
    pub shadow_min_match_rate: f64,
    /// The client side's request slots.
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// Their number.
    pub max_concurrency: usize,
}

/// A reconciliation result reported by the operator tooling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconciliationReport {
    /// Orders missing, duplicated or mismatched between the systems.
    pub drift: u64,
    /// When the reconciliation ran (defaults to when it was reported).
    #[serde(default = "Utc::now")]
    pub checked_at: DateTime<Utc>,
}

/// One readiness criterion.
#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    /// Name.
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// What was measured.
    pub detail: String,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(platform::http_metrics::render))
        .route("/admin/v1/routes", get(list_routes))
        .route("/admin/v1/routes/{route}/mode", put(set_mode))
        .route("/admin/v1/routes/{route}/policy", put(set_policy))
        .route(
            "/admin/v1/routes/{route}/reconciliation",
            put(report_reconciliation),
        )
        .route("/admin/v1/routes/{route}/audit", get(route_audit))
        .route("/admin/v1/replays", get(list_replays))
        .route("/admin/v1/replays/{id}/retry", post(retry_replay))
        .route("/admin/v1/replays/{id}/discard", post(discard_replay))
        .route("/admin/v1/counters", get(counters))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token_for_changes,
        ))
        .with_state(state)
}

fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail.into()})),
    )
        .into_response()
}

/// Constant-time comparison (the token must not leak through timing).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token_for_changes(
    State(state): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    // Probes and the Prometheus scrape stay open; everything under /admin (replay bodies carry
    // customer data) needs the token, reads included.
    let open = matches!(req.uri().path(), "/health" | "/ready" | "/metrics")
        && (req.method() == Method::GET || req.method() == Method::HEAD);
    if open {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let allowed = match (&state.token, presented) {
        (Some(expected), Some(given)) => same_secret(expected.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if !allowed {
        metrics::counter!("proxy_admin_refused_total").increment(1);
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "admin change refused: missing or wrong token");
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            if state.token.is_some() {
                "a valid bearer token is required"
            } else {
                "the admin API is disabled: ADMIN_TOKEN is not configured"
            },
        );
    }
    next.run(req).await
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "Bad request",
            e.to_string(),
        ))
    })
}

fn change_failed(e: RouteError) -> Response {
    match e {
        RouteError::UnknownRoute(r) => problem(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no route {r:?}"),
        ),
        e => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage failed",
            e.to_string(),
        ),
    }
}

fn actor(headers: &HeaderMap, peer: SocketAddr) -> String {
    let name = headers
        .get("x-admin-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .unwrap_or("admin");
    format!("{name}@{}", peer.ip())
}

async fn ready(State(state): State<AdminState>) -> Response {
    match state.store.backlog().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "Not ready", e.to_string()),
    }
}

fn next_mode(m: Mode) -> Option<Mode> {
    match m {
        Mode::Legacy => Some(Mode::DualWrite),
        Mode::DualWrite => Some(Mode::Events),
        Mode::Events => Some(Mode::Retired),
        Mode::Retired => None,
    }
}

/// The criteria a forward switch of `route` into `target` must meet.
pub async fn readiness(state: &AdminState, route: &Route, target: Mode) -> Vec<Criterion> {
    let mut out = Vec::new();
    let order_ready = state.orders.ready().await;
    out.push(Criterion {
        name: "order_service_ready",
        ok: order_ready,
        detail: format!(
            "GET /ready {}; breaker {:?}",
            if order_ready {
                "answered 200"
            } else {
                "failed"
            },
            state.order_upstream.breaker_state()
        ),
    });
    if target == Mode::DualWrite {
        let closed = state.sap.breaker_state() == BreakerState::Closed;
        out.push(Criterion {
            name: "sap_breaker_closed",
            ok: closed,
            detail: format!("{:?}", state.sap.breaker_state()),
        });
    }
    if target >= Mode::Events {
        let (matched, compared) = state.shadow.counts();
        let rate = if compared == 0 {
            0.0
        } else {
            matched as f64 / compared as f64
        };
        out.push(Criterion {
            name: "shadow_match_rate",
            ok: compared >= state.shadow_min_samples && rate >= state.shadow_min_match_rate,
            detail: format!(
                "{matched}/{compared} shadow reads matched (need ≥ {} samples at ≥ {:.1}%)",
                state.shadow_min_samples,
                state.shadow_min_match_rate * 100.0
            ),
        });
        out.push(backlog_criterion(state.store.backlog().await));
        out.extend(sap_sync_criteria(state).await);
        let report = state
            .reconciliation
            .lock()
            .expect("lock")
            .get(&route.name)
            .cloned();
        out.push(Criterion {
            name: "reconciliation_drift_zero",
            ok: report
                .as_ref()
                .is_some_and(|r| r.drift == 0 && r.checked_at >= route.updated_at),
            detail: match report {
                Some(r) => format!("drift {} at {}", r.drift, r.checked_at),
                None => "no reconciliation reported since the last switch".to_owned(),
            },
        });
    }
    out
}

/// In `events` SAP is fed by sap-sync only: it must run, keep up, and have no parked order.
async fn sap_sync_criteria(state: &AdminState) -> Vec<Criterion> {
    let Some(up) = &state.sap_sync else {
        return vec![Criterion {
            name: "sap_sync_running",
            ok: false,
            detail: "SAP_SYNC_URL is not configured: nothing would feed SAP in events".into(),
        }];
    };
    let status = async {
        let req = http::Request::get(up.uri_for("/status"))
            .body(crate::body::empty())
            .map_err(|e| e.to_string())?;
        let resp = up.send(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("GET /status answered {}", resp.status()));
        }
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| e.to_string())
    }
    .await;
    sap_sync_verdict(status, state.sap_sync_max_lag)
}

fn sap_sync_verdict(status: Result<serde_json::Value, String>, max_lag: u64) -> Vec<Criterion> {
    let s = match status {
        Ok(s) => s,
        Err(e) => {
            return vec![Criterion {
                name: "sap_sync_running",
                ok: false,
                detail: format!("sap-sync did not answer: {e}"),
            }];
        }
    };
    let joined = s["joined"].as_bool().unwrap_or(false);
    let lag = s["lag_messages"].as_u64();
    let parked = s["parked_orders"].as_u64().unwrap_or(u64::MAX);
    vec![
        Criterion {
            name: "sap_sync_running",
            ok: joined,
            detail: format!(
                "{}; partitions {}",
                if joined {
                    "in its consumer group"
                } else {
                    "not in its consumer group"
                },
                s["partitions"]
            ),
        },
        Criterion {
            name: "sap_sync_lag",
            ok: lag.is_some_and(|l| l <= max_lag),
            detail: match lag {
                Some(l) => format!(
                    "{l} events behind, {:.1} s (need ≤ {max_lag} events)",
                    s["lag_seconds"].as_f64().unwrap_or(0.0)
                ),
                None => format!("lag unknown: {}", s["lag_error"]),
            },
        },
        Criterion {
            name: "sap_sync_no_parked_orders",
            ok: parked == 0,
            detail: format!("{parked} order(s) parked (orderctl sap-sync parked)"),
        },
    ]
}

/// A log that cannot be read is not an empty one: the gate stays shut.
fn backlog_criterion(
    backlog: Result<crate::store::Backlog, crate::store::StoreError>,
) -> Criterion {
    match backlog {
        Ok(backlog) => Criterion {
            name: "replay_backlog_empty",
            ok: backlog.pending + backlog.parked == 0,
            detail: format!("{} pending, {} parked", backlog.pending, backlog.parked),
        },
        Err(e) => Criterion {
            name: "replay_backlog_empty",
            ok: false,
            detail: format!("the replay log could not be read: {e}"),
        },
    }
}

async fn route_view(state: &AdminState, r: &Route) -> serde_json::Value {
    let readiness = match next_mode(r.mode) {
        Some(next) => {
            let criteria = readiness(state, r, next).await;
            json!({"next_mode": next, "ready": criteria.iter().all(|c| c.ok), "criteria": criteria})
        }
        None => json!({"next_mode": null, "ready": true, "criteria": []}),
    };
    json!({
        "name": r.name, "mode": r.mode, "policy": policy_name(r.policy),
        "updated_at": r.updated_at, "updated_by": r.updated_by, "readiness": readiness,
    })
}

async fn list_routes(State(state): State<AdminState>) -> Response {
    let mut routes = Vec::new();
    for r in state.routes.list() {
        routes.push(route_view(&state, &r).await);
    }
    Json(json!({ "routes": routes })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeChange {
    mode: String,
    #[serde(default)]
    force: bool,
}

async fn set_mode(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let change: ModeChange = match parse_json(&body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let mode: Mode = match change.mode.parse() {
        Ok(m) => m,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Bad request", e),
    };
    let Some(current) = state.routes.snapshot(&route) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no route {route:?}"),
        );
    };
    if current.mode == mode {
        return (StatusCode::OK, Json(route_view(&state, &current).await)).into_response();
    }
    if mode > current.mode && !change.force {
        let criteria = readiness(&state, &current, mode).await;
        if !criteria.iter().all(|c| c.ok) {
            return (
                StatusCode::CONFLICT,
                [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
                Json(json!({
                    "type": "about:blank", "title": "Route not ready", "status": 409,
                    "detail": format!("{route} is not ready for {mode}; fix the failing criteria or pass \"force\": true"),
                    "criteria": criteria,
                })),
            )
                .into_response();
        }
    }
    let who = actor(&headers, peer);
    match state.routes.set_mode(&route, mode, &who, change.force) {
        Ok((old, new)) => {
            observe::route_changed(
                &route,
                "mode",
                old.mode.as_str(),
                new.mode.as_str(),
                &who,
                change.force,
            );
            (StatusCode::OK, Json(route_view(&state, &new).await)).into_response()
        }
        Err(e) => change_failed(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyChange {
    policy: String,
}

async fn set_policy(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let change: PolicyChange = match parse_json(&body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let policy: SapUnavailablePolicy = match change.policy.parse() {
        Ok(p) => p,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Bad request", e),
    };
    let who = actor(&headers, peer);
    match state.routes.set_policy(&route, policy, &who) {
        Ok((old, new)) => {
            observe::route_changed(
                &route,
                "policy",
                policy_name(old.policy),
                policy_name(new.policy),
                &who,
                false,
            );
            (StatusCode::OK, Json(route_view(&state, &new).await)).into_response()
        }
        Err(e) => change_failed(e),
    }
}

async fn report_reconciliation(
    State(state): State<AdminState>,
    Path(route): Path<String>,
    Json(report): Json<ReconciliationReport>,
) -> Response {
    if state.routes.snapshot(&route).is_none() {
        return problem(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no route {route:?}"),
        );
    }
    state
        .reconciliation
        .lock()
        .expect("lock")
        .insert(route, report.clone());
    (StatusCode::OK, Json(report)).into_response()
}

async fn route_audit(State(state): State<AdminState>, Path(route): Path<String>) -> Response {
    match state.routes.audit() {
        Ok(all) => {
            let entries: Vec<_> = all.into_iter().filter(|e| e.route == route).collect();
            Json(json!({ "entries": entries })).into_response()
        }
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage failed",
            e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct ReplayFilter {
    state: Option<String>,
    limit: Option<usize>,
}

/// Replay entries oldest first, at most `limit` (default 1000), optionally of one state.
async fn list_replays(State(state): State<AdminState>, Query(f): Query<ReplayFilter>) -> Response {
    let only = match f.state.as_deref() {
        Some("pending") => Some(ReplayState::Pending),
        Some("parked") => Some(ReplayState::Parked),
        None | Some("") => None,
        Some(other) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad request",
                format!("unknown state {other:?}: use pending or parked"),
            );
        }
    };
    let limit = f.limit.unwrap_or(1000).clamp(1, 10_000);
    match state.store.list_replays_page(only, limit).await {
        Ok(all) => Json(json!({ "replays": all })).into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage failed",
            e.to_string(),
        ),
    }
}

async fn retry_replay(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let entry = match state.store.get_replay(id.clone()).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("no replay {id}"),
            );
        }
        Err(e) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Storage failed",
                e.to_string(),
            );
        }
    };
    let mut entry = entry;
    entry.state = ReplayState::Pending;
    entry.next_attempt_at = Utc::now();
    if let Err(e) = state.store.put_replay(entry.clone()).await {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage failed",
            e.to_string(),
        );
    }
    observe::replay_operator_action(&id, "retry", &actor(&headers, peer));
    state.replay_wakeup.notify_one();
    Json(entry).into_response()
}

async fn discard_replay(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.store.remove_replay(id.clone()).await {
        Ok(true) => {
            observe::replay_operator_action(&id, "discard", &actor(&headers, peer));
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => problem(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no replay {id}"),
        ),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage failed",
            e.to_string(),
        ),
    }
}

async fn counters(State(state): State<AdminState>) -> Response {
    // An unreadable log is reported as such, never as an empty one.
    let backlog = match state.store.backlog().await {
        Ok(b) => {
            let age = b
                .oldest_created_at
                .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
            json!({"pending": b.pending, "parked": b.parked, "oldest_age_seconds": age})
        }
        Err(e) => json!({"error": e.to_string()}),
    };
    Json(json!({
        "in_flight": state.max_concurrency.saturating_sub(state.inflight.available_permits()),
        "dual_write_outcomes": observe::outcome_counts(),
        "shadow_reads": {"matched": state.shadow.counts().0, "compared": state.shadow.counts().1},
        "replay_backlog": backlog,
        "breakers": {"sap": format!("{:?}", state.sap.breaker_state()), "order-service": format!("{:?}", state.order_upstream.breaker_state())},
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn sap_sync_must_run_keep_up_and_have_nothing_parked() {
        let ok = |c: &[Criterion]| c.iter().all(|c| c.ok);
        let good = serde_json::json!({"joined": true, "lag_messages": 3, "lag_seconds": 0.2,
                                      "parked_orders": 0, "partitions": [0, 1]});
        assert!(ok(&sap_sync_verdict(Ok(good.clone()), 100)));
        let mut lagging = good.clone();
        lagging["lag_messages"] = 500.into();
        let c = sap_sync_verdict(Ok(lagging), 100);
        assert!(!c.iter().find(|c| c.name == "sap_sync_lag").unwrap().ok);
        let mut parked = good.clone();
        parked["parked_orders"] = 1.into();
        assert!(!ok(&sap_sync_verdict(Ok(parked), 100)));
        let mut unknown = good;
        unknown["lag_messages"] = serde_json::Value::Null;
        assert!(!ok(&sap_sync_verdict(Ok(unknown), 100)));
        assert!(!ok(&sap_sync_verdict(
            Err("connection refused".into()),
            100
        )));
    }

    #[test]
    fn a_replay_log_that_cannot_be_read_keeps_the_backlog_gate_shut() {
        let unreadable = crate::store::StoreError::from(redb::Error::Io(std::io::Error::other(
            "input/output error",
        )));
        let c = backlog_criterion(Err(unreadable));
        assert!(!c.ok);
        assert!(c.detail.contains("could not be read"), "{}", c.detail);
        let empty = crate::store::Backlog {
            pending: 0,
            parked: 0,
            oldest_created_at: None,
        };
        assert!(backlog_criterion(Ok(empty)).ok);
        let parked = crate::store::Backlog {
            pending: 0,
            parked: 1,
            oldest_created_at: None,
        };
        assert!(!backlog_criterion(Ok(parked)).ok);
    }
}
