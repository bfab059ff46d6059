//! sap-sync: phase 3 of the migration. SAP is fed from the order events on Kafka instead of by
//! direct calls, and what SAP does to an order afterwards comes back.
//!
//! - [`forward`]: the consumer group; per order in order, across orders at once; offsets after
//!   the effect; parking; pause and resume while SAP is down.
//! - [`plan`] and [`apply`]: the difference between the order an event carries and SAP's
//!   order, as OData calls; repeated until there is none (exactly once in effect).
//! - [`sap`]: the OData session (CSRF once, reused, refreshed on 403).
//! - [`book`]: parked orders and watermarks, in a compacted Kafka topic.
//! - [`backward`]: SAP's deliveries, billing and rejections, polled by `LastChangeDateTime`.
//! - [`orders`]: the order service's REST API.
//! - [`hold`]: the route's mode from the proxy; while it is `retired` nothing goes to SAP.
//!
//! HTTP (`SAP_SYNC_PORT`): `/health`, `/ready` (group joined), `/metrics` (Prometheus),
//! `/status` (lag in messages and seconds, parked count, partitions held, paused, `held` with
//! `hold_reason`, `retention_gap` with its partitions) and
//! `/parked` (the parked orders with SAP's message), both JSON; `/orders/{number}` (what
//! sap-sync did lately with that order's events, [`recent`]; 404 when it holds nothing).

pub mod apply;
pub mod backward;
pub mod book;
pub mod config;
pub mod forward;
pub mod hold;
pub mod orders;
pub mod plan;
pub mod queue;
pub mod recent;
pub mod sap;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::book::Book;
use crate::forward::Forward;
use crate::orders::Orders;
use crate::sap::Sap;

/// A started sap-sync.
pub struct SapSync {
    forward: Arc<Forward>,
    config: Config,
    listener: tokio::net::TcpListener,
}

impl SapSync {
    /// Reads the state topic, joins the group, binds the HTTP port.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        book::ensure_topic(
            &config.brokers,
            &config.topic,
            book::TopicSpec {
                partitions: config.topic_partitions,
                replication: config.replication,
                compacted: false,
            },
        )
        .await?;
        let book = Book::open(&config.brokers, &config.state_topic, config.replication).await?;
        let sap = Arc::new(Sap::new(config.sap.clone())?);
        let orders = Orders::new(&config.order_service_url)?;
        let hold = Arc::new(hold::Hold::new(config.proxy_admin.is_some()));
        let forward = Arc::new(Forward::new(&config, sap, orders, book, hold)?);
        let listener = tokio::net::TcpListener::bind((config.bind, config.port)).await?;
        Ok(Self {
            forward,
            config,
            listener,
        })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Runs until `stop`.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        // The recorder first: an event handled before it is installed would go uncounted.
        let _ = platform::http_metrics::prometheus_handle();
        let forward = self.forward.clone();
        let consume = tokio::spawn(forward.run(self.config.concurrency, stop.clone()));
        let watcher = self.config.proxy_admin.clone().map(|admin| {
            tokio::spawn(hold::watch_routes(
                admin,
                self.forward.hold.clone(),
                stop.clone(),
            ))
        });
        let backward = self.config.backward.then(|| {
            let f = self.forward.clone();
            let interval = self.config.poll_interval;
            let stop = stop.clone();
            tokio::spawn(async move { poll_backward(f, interval, stop).await })
        });
        let gauges = {
            let f = self.forward.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                while !stop.is_cancelled() {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    metrics::gauge!("sap_sync_parked_orders").set(f.book.parked().len() as f64);
                    if let Ok(lag) = f.lag().await {
                        metrics::gauge!("sap_sync_lag_messages").set(lag.messages as f64);
                        metrics::gauge!("sap_sync_lag_seconds").set(lag.seconds);
                    }
                }
            })
        };
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/ready", get(ready))
            .route("/status", get(status))
            .route("/parked", get(parked))
            .route("/parked/{order}/redrive", {
                let token = self.config.admin_token.clone();
                post(move |state, order, headers| redrive(state, order, headers, token))
            })
            .route("/orders/{number}", get(recent_of_order))
            .route("/metrics", get(platform::http_metrics::render))
            .with_state(self.forward.clone());
        let http_stop = stop.clone();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { http_stop.cancelled().await })
            .await?;
        let _ = consume.await;
        if let Some(w) = watcher {
            let _ = w.await;
        }
        if let Some(b) = backward {
            let _ = b.await;
        }
        let _ = gauges.await;
        Ok(())
    }
}

async fn poll_backward(f: Arc<Forward>, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // One poller in the group: whoever holds partition 0. Held: SAP may be off.
        if !f.tracker.holds(0) || f.hold.held() {
            continue;
        }
        match backward::poll_once(&f.sap, &f.orders, &f.book).await {
            Ok(p) if p.statuses + p.rejections > 0 => {
                tracing::info!(
                    seen = p.seen,
                    statuses = p.statuses,
                    rejections = p.rejections,
                    "SAP's changes brought back"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "backward poll failed; next round retries"),
        }
    }
}

/// What sap-sync did lately with one order's events (`404` when it holds nothing of it).
async fn recent_of_order(
    axum::extract::Path(number): axum::extract::Path<String>,
) -> axum::response::Response {
    let applied = recent::of_order(number.trim());
    if applied.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"order_number": number, "applied": [],
                "detail": "sap-sync holds no recent event of this order"})),
        )
            .into_response();
    }
    Json(json!({"order_number": number, "applied": applied})).into_response()
}

/// Ready once in the group; a hold is not a failure.
async fn ready(State(f): State<Arc<Forward>>) -> impl IntoResponse {
    if f.tracker.joined() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "joining the consumer group",
        )
    }
}

async fn status(State(f): State<Arc<Forward>>) -> impl IntoResponse {
    let lag = f.lag().await;
    let parked = f.book.parked().len();
    // Live from the offsets, and the partitions kept paused for one (the same unless the
    // offsets could not be read).
    let mut gaps = lag.as_ref().map(|l| l.gaps.clone()).unwrap_or_default();
    for g in f.kept_for_gaps() {
        if !gaps.iter().any(|x| x.partition == g.partition) {
            gaps.push(g);
        }
    }
    let body = json!({
        "held": f.hold.held(),
        "hold_reason": f.hold.reason(),
        "retention_gap": !gaps.is_empty(),
        "retention_gap_partitions": gaps,
        "lag_messages": lag.as_ref().ok().map(|l| l.messages),
        "lag_seconds": lag.as_ref().ok().map(|l| l.seconds),
        "lag_error": lag.as_ref().err().map(|e| e.to_string()),
        "parked_orders": parked,
        "partitions": f.tracker.assigned(),
        "paused": f.gate.paused(),
        "joined": f.tracker.joined(),
    });
    Json(body)
}

async fn parked(State(f): State<Arc<Forward>>) -> impl IntoResponse {
    Json(json!({ "parked": f.book.parked() }))
}

fn problem(status: StatusCode, title: &str, detail: String) -> axum::response::Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

/// `POST /parked/{order}/redrive` (order id or number), with the admin token: asks for the
/// order's parked events to be applied again in their original order, as `orderctl sap-sync
/// redrive` does through the state topic. 202: asked (the forward loop applies it); 404: not
/// parked.
async fn redrive(
    State(f): State<Arc<Forward>>,
    Path(order): Path<String>,
    headers: axum::http::HeaderMap,
    token: Option<String>,
) -> axum::response::Response {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let allowed = match (token.as_deref(), given) {
        (Some(t), Some(g)) => {
            t.len() == g.len()
                && t.bytes()
                    .zip(g.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        _ => false,
    };
    if !allowed {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a redrive needs Authorization: Bearer <admin token> (SAP_SYNC_ADMIN_TOKEN)".into(),
        );
    }
    match f.book.request_redrive(&order).await {
        Ok(Some(o)) => {
            tracing::info!(order_number = %o.order_number, events = o.events.len(), "redrive asked over HTTP");
            (
                StatusCode::ACCEPTED,
                Json(
                    json!({"order_id": o.order_id, "order_number": o.order_number,
                            "events": o.events.len(), "redrive": true, "redrives": o.redrives}),
                ),
            )
                .into_response()
        }
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "Not parked",
            format!("order {order} is not parked"),
        ),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "State not written",
            format!("the redrive could not be recorded: {e}"),
        ),
    }
}
