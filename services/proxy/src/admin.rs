//! The admin API (port 9080, loopback by default): route modes with readiness, the replay log,
//! outcome counters, health and Prometheus metrics.
//!
//! Every request under `/admin` (reads too: replay entries carry customer data) needs
//! `Authorization: Bearer <ADMIN_TOKEN>`, checked by one middleware before any handler runs, so
//! a refused change cannot have touched anything; only `/health`, `/ready` and `/metrics` are
//! open (probes, the Prometheus scrape). Without a configured token every admin request is
//! refused. Callers name themselves with `X-Admin-Actor` for the audit trail;
//! the peer address is always recorded with it.
//!
//! The routes are served under `/admin/v1/routes` and, as sap-sync and the operator tooling
//! name them, under `/admin/routes` too (a mode change by `PUT` or `POST` on either).
//!
//! **Into `retired`** a route needs, beyond the `events` criteria, an empty sap-sync backlog
//! (lag exactly 0 events, nothing parked, no retention gap) and a *full* reconciliation (every
//! order of both systems compared, not a sample or a window), since SAP is fed no more after it.
//!
//! **Back from `retired`** SAP first has to catch up with what the order service took while it
//! was off: the route records `returning_to` and keeps serving as `retired` while sap-sync
//! (which polls the routes) resumes and drains; the [`Returner`], a task of its own that a
//! hung-up client or a restart does not stop (the flag is persisted), completes the switch once
//! sap-sync reports lag 0 and no parked order. `force` completes it at once. While a return is
//! in progress, a switch to another earlier mode retargets it, and a switch to `retired` cancels
//! it (the route was retired all along).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use tokio_util::sync::CancellationToken;

use crate::dual_write::shadow::ShadowStats;
use crate::dual_write::store::{ReplayState, Store};
use crate::observe;
use crate::routing::routes::{
    AuditEntry, Mode, Route, RouteChange, RouteError, RouteTable, SapUnavailablePolicy, policy_name,
};
use crate::shared_state::SharedState;
use crate::upstreams::breaker::BreakerState;
use crate::upstreams::order_client::OrderService;
use crate::upstreams::upstream::Upstream;

/// Shared state of the admin API.
#[derive(Clone)]
pub struct AdminState {
    /// Route table (what this replica serves).
    pub routes: RouteTable,
    /// The state shared with other replicas, when configured: route changes are made there
    /// (and reach every replica), the audit trail is read there.
    pub shared: Option<Arc<SharedState>>,
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
    /// The bearer token sap-sync takes for its changes (`SAP_SYNC_ADMIN_TOKEN`, else the admin
    /// token).
    pub sap_sync_token: Option<String>,
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
    /// Returns from `retired` in progress: the [`Returner`]'s wake-up and what it saw last.
    pub returns: Arc<Returns>,
    /// How often the [`Returner`] asks sap-sync whether SAP caught up.
    pub return_poll: Duration,
    /// The migration console's read models.
    pub console: Arc<crate::console::Console>,
    /// The event tail and the journey's sources ([`crate::insight`]).
    pub insight: crate::insight::Insight,
}

impl AdminState {
    /// Makes one route change where the table lives: the shared state database (one
    /// transaction, announced to every replica), or the local file. `None`: nothing to change.
    async fn change_route_if(
        &self,
        route: &str,
        who: &str,
        forced: bool,
        change: RouteChange,
    ) -> Result<Option<(Route, Route)>, RouteError> {
        match &self.shared {
            Some(shared) => shared.apply(&self.routes, route, who, forced, change).await,
            None => self.routes.apply(route, who, forced, change),
        }
    }

    /// A change that always changes something (all but completing a return).
    async fn change_route(
        &self,
        route: &str,
        who: &str,
        forced: bool,
        change: RouteChange,
    ) -> Result<(Route, Route), RouteError> {
        self.change_route_if(route, who, forced, change)
            .await
            .map(|changed| changed.expect("an unconditional change always changes"))
    }

    /// The audit trail of `route`, oldest first.
    async fn audit_of(&self, route: &str) -> Result<Vec<AuditEntry>, RouteError> {
        match &self.shared {
            Some(shared) => shared.audit(route).await,
            None => Ok(self
                .routes
                .audit()?
                .into_iter()
                .filter(|e| e.route == route)
                .collect()),
        }
    }
}

/// Shared between the admin handlers and the [`Returner`].
#[derive(Default)]
pub struct Returns {
    /// Wakes the returner (a return was asked for).
    pub wakeup: Notify,
    /// The last progress seen per returning route.
    progress: Mutex<HashMap<String, ReturnProgress>>,
}

/// How far sap-sync is in bringing SAP up to date for a return from `retired`.
#[derive(Debug, Clone, Serialize)]
pub struct ReturnProgress {
    /// `catching_up` until SAP caught up, then `caught_up`.
    pub state: &'static str,
    /// Events sap-sync has not applied yet (`None`: unknown).
    pub lag: Option<u64>,
    /// Orders parked in sap-sync (`None`: unknown).
    pub parked: Option<u64>,
    /// Whether sap-sync still holds (it has not seen the return yet).
    pub held: Option<bool>,
    /// Events lost to Kafka's retention while SAP was held.
    pub retention_gap: bool,
    /// What the operator should know or do.
    pub detail: String,
    /// When sap-sync was asked.
    pub checked_at: DateTime<Utc>,
}

impl ReturnProgress {
    fn caught_up(&self) -> bool {
        self.state == "caught_up"
    }
}

/// A reconciliation result reported by the operator tooling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconciliationReport {
    /// Orders missing, duplicated or mismatched between the systems.
    pub drift: u64,
    /// When the reconciliation ran (defaults to when it was reported).
    #[serde(default = "Utc::now")]
    pub checked_at: DateTime<Utc>,
    /// What it compared: `full` (every order of both systems, as `orderctl reconcile` reads
    /// them), `sample` or `window` (a part); `unspecified` when the reporter did not say,
    /// which counts as a part.
    #[serde(default)]
    pub scope: ReconciliationScope,
    /// SAP orders compared, when reported.
    #[serde(default)]
    pub sap_orders: Option<u64>,
    /// Order-service orders compared, when reported.
    #[serde(default)]
    pub new_orders: Option<u64>,
}

/// How much of the two systems a reconciliation compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReconciliationScope {
    /// Every order of both systems.
    Full,
    /// A sample of the orders.
    Sample,
    /// The orders of a time window.
    Window,
    /// Not said (a report from older tooling, or by hand).
    #[default]
    Unspecified,
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
        .route("/admin/routes", get(list_routes))
        .route(
            "/admin/v1/routes/{route}/mode",
            put(set_mode).post(set_mode),
        )
        .route("/admin/routes/{route}/mode", put(set_mode).post(set_mode))
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
        .merge(crate::console::routes())
        .merge(crate::insight::router())
        .route("/admin/v1/replicas", get(list_replicas))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token_for_changes,
        ))
        .with_state(state)
}

pub(crate) fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Response {
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
    // The console's page and assets hold no data; what they show is fetched with the token.
    let path = req.uri().path();
    let open = (matches!(path, "/health" | "/ready" | "/metrics")
        || crate::console::is_public(path))
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
        RouteError::SharedState(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Shared state unavailable",
            format!("the switch was not made (every replica keeps its mode): {e}"),
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
        out.extend(sap_sync_criteria(state, target).await);
        let report = state
            .reconciliation
            .lock()
            .expect("lock")
            .get(&route.name)
            .cloned();
        out.extend(reconciliation_criteria(
            report.as_ref(),
            route.updated_at,
            target,
        ));
    }
    out
}

/// Zero drift since the last switch for `events`; for `retired`, from a full reconciliation.
fn reconciliation_criteria(
    report: Option<&ReconciliationReport>,
    since: DateTime<Utc>,
    target: Mode,
) -> Vec<Criterion> {
    let fresh = report.filter(|r| r.checked_at >= since);
    let mut out = vec![Criterion {
        name: "reconciliation_drift_zero",
        ok: fresh.is_some_and(|r| r.drift == 0),
        detail: match report {
            Some(r) if fresh.is_none() => format!(
                "drift {} at {}, before the last switch at {since}: reconcile again",
                r.drift, r.checked_at
            ),
            Some(r) => format!("drift {} at {}", r.drift, r.checked_at),
            None => "no reconciliation reported since the last switch".to_owned(),
        },
    }];
    if target == Mode::Retired {
        let full = fresh.is_some_and(|r| r.scope == ReconciliationScope::Full);
        let counts = |r: &ReconciliationReport| match (r.sap_orders, r.new_orders) {
            (Some(sap), Some(new)) => format!(" ({sap} SAP orders, {new} new orders)"),
            _ => String::new(),
        };
        out.push(Criterion {
            name: "reconciliation_full",
            ok: full,
            detail: match fresh {
                Some(r) if full => {
                    format!("a full reconciliation{} at {}", counts(r), r.checked_at)
                }
                Some(r) => format!(
                    "the last report's scope is {:?}: retired needs a full reconciliation of \
                     every order on both sides (orderctl reconcile --report-route reads both \
                     in full)",
                    r.scope
                )
                .to_lowercase(),
                None => "retired needs a full reconciliation of every order on both sides, \
                         reported since the last switch (orderctl reconcile --report-route)"
                    .to_owned(),
            },
        });
    }
    out
}

/// sap-sync's `/status`; `None` when no sap-sync is configured (`SAP_SYNC_URL`).
async fn sap_sync_status(state: &AdminState) -> Option<Result<serde_json::Value, String>> {
    let up = state.sap_sync.as_ref()?;
    Some(crate::console::get_json(up, "/status").await)
}

/// In `events` SAP is fed by sap-sync only: it must run, keep up, and have no parked order. Into
/// `retired` (after which SAP is fed no more) its backlog must be empty.
async fn sap_sync_criteria(state: &AdminState, target: Mode) -> Vec<Criterion> {
    let Some(status) = sap_sync_status(state).await else {
        return vec![Criterion {
            name: "sap_sync_running",
            ok: false,
            detail: "SAP_SYNC_URL is not configured: nothing would feed SAP in events".into(),
        }];
    };
    sap_sync_verdict(status, state.sap_sync_max_lag, target)
}

fn sap_sync_verdict(
    status: Result<serde_json::Value, String>,
    max_lag: u64,
    target: Mode,
) -> Vec<Criterion> {
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
    let mut out = vec![
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
    ];
    if target == Mode::Retired {
        let gap = s["retention_gap"].as_bool().unwrap_or(false);
        out.push(Criterion {
            name: "sap_sync_drained",
            ok: parked == 0 && !gap && (lag == Some(0) || in_flight_only(&s, lag, max_lag)),
            detail: format!(
                "retired feeds SAP no more, so nothing may wait in sap-sync: no backlog (lag 0, or \
                 only events in flight: within the events bound, the oldest younger than \
                 {IN_FLIGHT_SECONDS} s) and no parked order; now {} behind (oldest {} s), \
                 {parked} parked{}",
                lag.map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
                s["lag_seconds"].as_f64().unwrap_or(0.0),
                if gap {
                    ", and events were lost to Kafka's retention"
                } else {
                    ""
                }
            ),
        });
    }
    out
}

/// What sap-sync's status says about a return from `retired` that began at `since`: caught up
/// once SAP has every event from before the return (sap-sync no longer holds, and the oldest
/// event it has in work is younger than the return), with nothing parked and no retention
/// gap; lag 0 is caught up at once. Not only lag 0: the route keeps taking orders while it
/// returns, so under steady traffic an exact 0 may never be seen. What is still in flight
/// then (within `max_lag`, the bound of a healthy `events` route) was taken during the return.
fn return_progress(
    status: Option<Result<serde_json::Value, String>>,
    max_lag: u64,
    since: DateTime<Utc>,
) -> ReturnProgress {
    let mut p = ReturnProgress {
        state: "catching_up",
        lag: None,
        parked: None,
        held: None,
        retention_gap: false,
        detail: String::new(),
        checked_at: Utc::now(),
    };
    let s = match status {
        None => {
            p.detail = "SAP_SYNC_URL is not configured: the proxy cannot tell when SAP has \
                        caught up; the route stays retired until a switch with \"force\": true"
                .into();
            return p;
        }
        Some(Err(e)) => {
            p.detail = format!(
                "sap-sync did not answer ({e}); the route stays retired until it reports SAP \
                 caught up, or a switch with \"force\": true"
            );
            return p;
        }
        Some(Ok(s)) => s,
    };
    p.lag = s["lag_messages"].as_u64();
    p.parked = s["parked_orders"].as_u64();
    p.held = s["held"].as_bool();
    p.retention_gap = s["retention_gap"].as_bool().unwrap_or(false);
    p.detail = if p.retention_gap {
        format!(
            "Kafka's retention deleted events sap-sync had not applied while SAP was off \
             (partitions {}): SAP misses those changes and no wait brings them back. Run \
             `orderctl reconcile` to list the orders SAP misses, and `orderctl backfill` for the \
             orders SAP holds that the order service lacks (it copies SAP → order service only, \
             never the other way); once SAP holds what it misses, complete the return with \
             \"force\": true",
            s["retention_gap_partitions"]
        )
    } else if p.held == Some(true) && p.lag != Some(0) {
        format!(
            "sap-sync still holds ({}); it resumes when it next polls the routes",
            s["hold_reason"].as_str().unwrap_or("no reason given")
        )
    } else {
        match (p.lag, p.parked) {
            (Some(lag), Some(0))
                if lag == 0
                    || (lag <= max_lag
                        && p.held == Some(false)
                        && s["lag_seconds"].as_f64().is_some_and(|age| {
                            age > 0.0
                                && Utc::now()
                                    - chrono::Duration::milliseconds((age * 1000.0) as i64)
                                    > since
                        })) =>
            {
                p.state = "caught_up";
                if lag == 0 {
                    "SAP has every change".to_owned()
                } else {
                    format!(
                        "SAP has every change taken while retired; {lag} events taken during the return are on their way"
                    )
                }
            }
            (Some(lag), Some(0)) => {
                format!("sap-sync is bringing SAP up to date: {lag} events to go")
            }
            (lag, Some(parked)) if parked > 0 => format!(
                "{} events to go and {parked} order(s) parked: SAP refused changes; fix and \
                 redrive them (orderctl sap-sync parked)",
                lag.map_or_else(|| "unknown".to_owned(), |l| l.to_string())
            ),
            _ => format!(
                "sap-sync's lag or parked count is unknown: {}",
                s["lag_error"]
            ),
        }
    };
    p
}

/// When the return of `route` began (now, if the route shows none).
fn current_since(state: &AdminState, route: &str) -> DateTime<Utc> {
    state
        .routes
        .snapshot(route)
        .and_then(|r| r.returning_since)
        .unwrap_or_else(Utc::now)
}

/// Under steady traffic sap-sync is never at exactly 0: what it has is only in flight when it
/// is within the events bound and the oldest event it works on is younger than
/// [`IN_FLIGHT_SECONDS`] (nothing waits behind a slow or stuck SAP call). Those events wait in
/// Kafka while the route is retired and reach SAP on a return.
fn in_flight_only(status: &serde_json::Value, lag: Option<u64>, max_lag: u64) -> bool {
    lag.is_some_and(|l| l <= max_lag)
        && status["lag_seconds"]
            .as_f64()
            .is_some_and(|age| age > 0.0 && age <= IN_FLIGHT_SECONDS)
}

/// The age of the oldest event sap-sync works on below which its lag is only what is in flight.
const IN_FLIGHT_SECONDS: f64 = 2.0;

/// A log that cannot be read is not an empty one: the gate stays shut.
fn backlog_criterion(
    backlog: Result<crate::dual_write::store::Backlog, crate::dual_write::store::StoreError>,
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
    route_view_with(state, r, true).await
}

async fn route_view_with(state: &AdminState, r: &Route, with_readiness: bool) -> serde_json::Value {
    let readiness = match next_mode(r.mode) {
        _ if !with_readiness => serde_json::Value::Null,
        Some(next) => {
            let criteria = readiness(state, r, next).await;
            json!({"next_mode": next, "ready": criteria.iter().all(|c| c.ok), "criteria": criteria})
        }
        None => json!({"next_mode": null, "ready": true, "criteria": []}),
    };
    let progress = r.returning_to.and_then(|_| {
        state
            .returns
            .progress
            .lock()
            .expect("lock")
            .get(&r.name)
            .cloned()
    });
    json!({
        "name": r.name, "mode": r.mode, "policy": policy_name(r.policy),
        "updated_at": r.updated_at, "updated_by": r.updated_by,
        "returning_to": r.returning_to, "returning_since": r.returning_since,
        "returning_by": r.returning_by, "return_progress": progress,
        "readiness": readiness,
    })
}

#[derive(Debug, Deserialize)]
struct RouteListing {
    /// `false` leaves the readiness out (it asks the order service and sap-sync): for pollers
    /// such as sap-sync that only need the modes.
    readiness: Option<bool>,
}

async fn list_routes(State(state): State<AdminState>, Query(q): Query<RouteListing>) -> Response {
    let mut routes = Vec::new();
    for r in state.routes.list() {
        routes.push(route_view_with(&state, &r, q.readiness.unwrap_or(true)).await);
    }
    Json(json!({ "routes": routes })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeChange {
    mode: String,
    #[serde(default)]
    force: bool,
    /// For a switch back from `retired`: how long to wait for SAP to catch up before answering
    /// 202 (the switch then completes in the background). Default 30, at most 300.
    wait_seconds: Option<u64>,
}

/// Default wait of a switch back from `retired`.
const DEFAULT_RETURN_WAIT: u64 = 30;

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
    let who = actor(&headers, peer);
    if current.mode == mode {
        // A switch to `retired` while returning from it cancels the return.
        if current.returning_to.is_some() {
            return match state
                .change_route(&route, &who, false, RouteChange::CancelReturn)
                .await
            {
                Ok((old, new)) => {
                    observe::route_changed(
                        &route,
                        "returning_to",
                        old.returning_to.map_or("none", |m| m.as_str()),
                        "none",
                        &who,
                        false,
                    );
                    state.returns.progress.lock().expect("lock").remove(&route);
                    (StatusCode::OK, Json(route_view(&state, &new).await)).into_response()
                }
                Err(e) => change_failed(e),
            };
        }
        return (StatusCode::OK, Json(route_view(&state, &current).await)).into_response();
    }
    if current.mode == Mode::Retired && !change.force {
        let wait = change.wait_seconds.unwrap_or(DEFAULT_RETURN_WAIT).min(300);
        return begin_return(&state, &route, &current, mode, &who, wait).await;
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
    match state
        .change_route(&route, &who, change.force, RouteChange::Mode(mode))
        .await
    {
        Ok((old, new)) => {
            state.returns.progress.lock().expect("lock").remove(&route);
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

/// A switch back from `retired`: recorded as `returning_to` (the route keeps serving as retired),
/// completed by the [`Returner`] once SAP caught up. Waits up to `wait` seconds for that: 200
/// with the route when it completed, else 202 with the progress.
async fn begin_return(
    state: &AdminState,
    route: &str,
    current: &Route,
    to: Mode,
    who: &str,
    wait: u64,
) -> Response {
    if current.returning_to != Some(to) {
        match state
            .change_route(route, who, false, RouteChange::BeginReturn(to))
            .await
        {
            Ok(_) => observe::route_changed(
                route,
                "returning_to",
                current.returning_to.map_or("none", |m| m.as_str()),
                to.as_str(),
                who,
                false,
            ),
            Err(e) => return change_failed(e),
        }
    }
    state.returns.wakeup.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let Some(now) = state.routes.snapshot(route) else {
            return problem(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("no route {route:?}"),
            );
        };
        if now.returning_to != Some(to) {
            if now.mode == to && now.returning_to.is_none() {
                return (StatusCode::OK, Json(route_view(state, &now).await)).into_response();
            }
            return problem(
                StatusCode::CONFLICT,
                "Return superseded",
                format!(
                    "while waiting, another switch changed the return: {route} is {} returning to {}",
                    now.mode,
                    now.returning_to.map_or("nothing", |m| m.as_str())
                ),
            );
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let known = state
        .returns
        .progress
        .lock()
        .expect("lock")
        .get(route)
        .cloned();
    let progress = match known {
        Some(p) => p,
        None => return_progress(
            sap_sync_status(state).await,
            state.sap_sync_max_lag,
            current_since(state, route),
        ),
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "state": "catching_up", "route": route, "mode": Mode::Retired,
            "returning_to": to, "lag": progress.lag, "parked": progress.parked,
            "held": progress.held, "retention_gap": progress.retention_gap,
            "detail": progress.detail,
        })),
    )
        .into_response()
}

/// Completes returns from `retired` once sap-sync reports SAP caught up. Runs for the proxy's
/// life, apart from any request (the asking client may hang up), and picks up the returns the
/// route table holds at start (the flag is persisted).
pub struct Returner {
    /// The admin state (routes, sap-sync).
    pub state: AdminState,
}

impl Returner {
    /// Checks every `return_poll` (and at once when woken) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            self.round().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.state.returns.wakeup.notified() => {}
                _ = tokio::time::sleep(self.state.return_poll) => {}
            }
        }
    }

    async fn round(&self) {
        let state = &self.state;
        for r in state.routes.list() {
            let Some(to) = r.returning_to else {
                continue;
            };
            let progress = return_progress(
                sap_sync_status(state).await,
                state.sap_sync_max_lag,
                r.returning_since.unwrap_or_else(Utc::now),
            );
            let caught_up = progress.caught_up();
            state
                .returns
                .progress
                .lock()
                .expect("lock")
                .insert(r.name.clone(), progress.clone());
            if !caught_up {
                tracing::debug!(route = %r.name, returning_to = %to, detail = %progress.detail, "return: SAP catching up");
                continue;
            }
            let who = format!(
                "proxy (SAP caught up; return asked by {})",
                r.returning_by.as_deref().unwrap_or("unknown")
            );
            // With shared state only one replica completes it: the change locks the route's row
            // and applies only while the route still returns to `to`.
            match state
                .change_route_if(&r.name, &who, false, RouteChange::CompleteReturn(to))
                .await
            {
                Ok(Some((old, new))) => {
                    state.returns.progress.lock().expect("lock").remove(&r.name);
                    observe::route_changed(
                        &r.name,
                        "mode",
                        old.mode.as_str(),
                        new.mode.as_str(),
                        &who,
                        false,
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(route = %r.name, error = %e, "return: completing the switch failed; retrying");
                }
            }
        }
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
    match state
        .change_route(&route, &who, false, RouteChange::Policy(policy))
        .await
    {
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
    match state.audit_of(&route).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage failed",
            e.to_string(),
        ),
    }
}

/// Every replica sharing the state, from their heartbeats: the mode each runs per route, and
/// whether it is alive and current (runs the version of every route the shared table holds).
async fn list_replicas(State(state): State<AdminState>) -> Response {
    let Some(shared) = &state.shared else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not found",
            "no shared state: PROXY_STATE_DATABASE_URL is not configured, this proxy runs alone",
        );
    };
    match shared.replicas().await {
        Ok(replicas) => Json(json!({
            "replica_id": shared.replica_id(),
            "replicas": replicas,
        }))
        .into_response(),
        Err(e) => change_failed(e),
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

/// The replay backlog as the counters and the console show it. An unreadable log is reported
/// as such, never as an empty one.
pub(crate) async fn backlog_view(state: &AdminState) -> serde_json::Value {
    match state.store.backlog().await {
        Ok(b) => {
            let age = b
                .oldest_created_at
                .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
            json!({"pending": b.pending, "parked": b.parked, "oldest_age_seconds": age})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

async fn counters(State(state): State<AdminState>) -> Response {
    let backlog = backlog_view(&state).await;
    Json(json!({
        "in_flight": state.max_concurrency.saturating_sub(state.inflight.available_permits()),
        "dual_write_outcomes": observe::outcome_counts(),
        "shadow_reads": {"matched": state.shadow.counts().0, "compared": state.shadow.counts().1, "crossed_by_a_change": state.shadow.crossed()},
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
        assert!(ok(&sap_sync_verdict(Ok(good.clone()), 100, Mode::Events)));
        let mut lagging = good.clone();
        lagging["lag_messages"] = 500.into();
        let c = sap_sync_verdict(Ok(lagging), 100, Mode::Events);
        assert!(!c.iter().find(|c| c.name == "sap_sync_lag").unwrap().ok);
        let mut parked = good.clone();
        parked["parked_orders"] = 1.into();
        assert!(!ok(&sap_sync_verdict(Ok(parked), 100, Mode::Events)));
        let mut unknown = good;
        unknown["lag_messages"] = serde_json::Value::Null;
        assert!(!ok(&sap_sync_verdict(Ok(unknown), 100, Mode::Events)));
        assert!(!ok(&sap_sync_verdict(
            Err("connection refused".into()),
            100,
            Mode::Events
        )));
    }

    fn failing(c: &[Criterion]) -> Vec<&'static str> {
        c.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn into_retired_sap_sync_must_have_no_backlog_only_what_is_in_flight() {
        let clean = serde_json::json!({"joined": true, "lag_messages": 0, "lag_seconds": 0.0,
                                       "parked_orders": 0, "partitions": [0]});
        assert!(failing(&sap_sync_verdict(Ok(clean.clone()), 100, Mode::Retired)).is_empty());
        let mut behind = clean.clone();
        behind["lag_messages"] = 3.into();
        // Within the events bound: events would pass, retired does not.
        assert!(failing(&sap_sync_verdict(Ok(behind.clone()), 100, Mode::Events)).is_empty());
        let c = sap_sync_verdict(Ok(behind), 100, Mode::Retired);
        assert_eq!(failing(&c), vec!["sap_sync_drained"]);
        let drained = c.iter().find(|c| c.name == "sap_sync_drained").unwrap();
        assert!(drained.detail.contains("3 behind"), "{}", drained.detail);
        // Three in flight under steady traffic, the oldest 0.4 s old: only in flight.
        let mut in_flight = clean.clone();
        in_flight["lag_messages"] = 3.into();
        in_flight["lag_seconds"] = 0.4.into();
        assert!(failing(&sap_sync_verdict(Ok(in_flight.clone()), 100, Mode::Retired)).is_empty());
        // The same count behind an event 30 s old: a backlog.
        in_flight["lag_seconds"] = 30.0.into();
        assert_eq!(
            failing(&sap_sync_verdict(Ok(in_flight), 100, Mode::Retired)),
            vec!["sap_sync_drained"]
        );
        let mut parked = clean.clone();
        parked["parked_orders"] = 1.into();
        assert_eq!(
            failing(&sap_sync_verdict(Ok(parked), 100, Mode::Retired)),
            vec!["sap_sync_no_parked_orders", "sap_sync_drained"]
        );
        let mut gap = clean.clone();
        gap["retention_gap"] = true.into();
        assert_eq!(
            failing(&sap_sync_verdict(Ok(gap), 100, Mode::Retired)),
            vec!["sap_sync_drained"]
        );
        let mut unknown = clean;
        unknown["lag_messages"] = serde_json::Value::Null;
        assert!(
            failing(&sap_sync_verdict(Ok(unknown), 100, Mode::Retired))
                .contains(&"sap_sync_drained")
        );
    }

    #[test]
    fn into_retired_the_reconciliation_must_be_full_and_fresh_with_zero_drift() {
        let switched = Utc::now() - chrono::Duration::minutes(5);
        let report = |drift, scope, ago: i64| ReconciliationReport {
            drift,
            checked_at: Utc::now() - chrono::Duration::minutes(ago),
            scope,
            sap_orders: Some(10),
            new_orders: Some(10),
        };
        use ReconciliationScope::*;
        let full = report(0, Full, 1);
        assert!(
            failing(&reconciliation_criteria(
                Some(&full),
                switched,
                Mode::Retired
            ))
            .is_empty()
        );
        let c = reconciliation_criteria(Some(&full), switched, Mode::Retired);
        assert!(c[1].detail.contains("10 SAP orders"), "{}", c[1].detail);
        for scope in [Sample, Window, Unspecified] {
            let part = report(0, scope, 1);
            assert!(
                failing(&reconciliation_criteria(
                    Some(&part),
                    switched,
                    Mode::Events
                ))
                .is_empty()
            );
            let c = reconciliation_criteria(Some(&part), switched, Mode::Retired);
            assert_eq!(failing(&c), vec!["reconciliation_full"]);
            assert!(
                c[1].detail.contains("full reconciliation"),
                "{}",
                c[1].detail
            );
        }
        let stale = report(0, Full, 10);
        assert_eq!(
            failing(&reconciliation_criteria(
                Some(&stale),
                switched,
                Mode::Retired
            )),
            vec!["reconciliation_drift_zero", "reconciliation_full"]
        );
        let drifting = report(2, Full, 1);
        assert_eq!(
            failing(&reconciliation_criteria(
                Some(&drifting),
                switched,
                Mode::Retired
            )),
            vec!["reconciliation_drift_zero"]
        );
        assert_eq!(
            failing(&reconciliation_criteria(None, switched, Mode::Retired)),
            vec!["reconciliation_drift_zero", "reconciliation_full"]
        );
        // A report from older tooling carries no scope: it counts as a part.
        let old: ReconciliationReport = serde_json::from_str(r#"{"drift": 0}"#).unwrap();
        assert_eq!(old.scope, Unspecified);
    }

    #[test]
    fn a_return_completes_within_the_events_bound_with_nothing_parked_and_no_retention_gap() {
        let status = |lag: u64, parked: u64, held: bool| {
            Some(Ok(serde_json::json!({"joined": true, "lag_messages": lag,
                "parked_orders": parked, "held": held, "hold_reason": "route sales-orders is retired",
                "lag_seconds": 0.5})))
        };
        // The return began 10 s ago; the oldest event in work is 0.5 s old.
        let since = Utc::now() - chrono::Duration::seconds(10);
        assert!(return_progress(status(0, 0, false), 2, since).caught_up());
        // Nothing happened while retired: a held sap-sync with nothing behind is caught up.
        assert!(return_progress(status(0, 0, true), 2, since).caught_up());
        // Within the bound once sap-sync runs again, and all it still has is younger than the
        // return: the route can go back...
        assert!(return_progress(status(2, 0, false), 2, since).caught_up());
        // ... but not while it still works on an event from before the return.
        let old = Some(Ok(serde_json::json!({"joined": true, "lag_messages": 2,
            "parked_orders": 0, "held": false, "lag_seconds": 30.0})));
        assert!(!return_progress(old, 2, since).caught_up());
        let p = return_progress(status(4, 0, false), 2, since);
        assert!(!p.caught_up());
        assert_eq!((p.lag, p.parked), (Some(4), Some(0)));
        assert!(p.detail.contains("4 events to go"), "{}", p.detail);
        let p = return_progress(status(4, 0, true), 2, since);
        assert!(p.detail.contains("still holds"), "{}", p.detail);
        let p = return_progress(status(0, 2, false), 2, since);
        assert!(!p.caught_up());
        assert!(p.detail.contains("redrive"), "{}", p.detail);
        let gap = Some(Ok(serde_json::json!({"joined": true, "lag_messages": 0,
            "parked_orders": 0, "held": false, "retention_gap": true,
            "retention_gap_partitions": [{"partition": 2, "committed": 5, "log_start": 40}]})));
        let p = return_progress(gap, 2, since);
        assert!(!p.caught_up() && p.retention_gap);
        assert!(
            p.detail.contains("orderctl backfill") && p.detail.contains("\"partition\":2"),
            "{}",
            p.detail
        );
        let p = return_progress(Some(Err("connection refused".into())), 2, since);
        assert!(!p.caught_up() && p.detail.contains("connection refused"));
        let p = return_progress(None, 2, since);
        assert!(!p.caught_up() && p.detail.contains("SAP_SYNC_URL"));
    }

    #[test]
    fn a_replay_log_that_cannot_be_read_keeps_the_backlog_gate_shut() {
        let unreadable = crate::dual_write::store::StoreError::from(redb::Error::Io(
            std::io::Error::other("input/output error"),
        ));
        let c = backlog_criterion(Err(unreadable));
        assert!(!c.ok);
        assert!(c.detail.contains("could not be read"), "{}", c.detail);
        let empty = crate::dual_write::store::Backlog {
            pending: 0,
            parked: 0,
            oldest_created_at: None,
        };
        assert!(backlog_criterion(Ok(empty)).ok);
        let parked = crate::dual_write::store::Backlog {
            pending: 0,
            parked: 1,
            oldest_created_at: None,
        };
        assert!(!backlog_criterion(Ok(parked)).ok);
    }
}
