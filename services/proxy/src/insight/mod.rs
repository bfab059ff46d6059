//! What the migration console and `orderctl trace` read: the live tail of the order events on
//! Kafka and one order's journey across every system.
//!
//! - [`tail`]: a background Kafka consumer without a consumer group commit, holding the newest
//!   order events in a bounded ring; `GET /admin/v1/events?q=&limit=`.
//! - [`writes`]: the proxy's own record of recent writes on the SAP face, dual-write decisions
//!   and landed replays (bounded, in memory).
//! - [`journey`]: `GET /admin/v1/journey/{key}`, every step an order took across the proxy,
//!   the order service, its outbox, Kafka, sap-sync and SAP, sorted by time. A source that
//!   cannot answer is listed under `unavailable`; the answer itself is never a 5xx for it.
//!
//! Both endpoints sit on the admin router, behind its bearer token like every `/admin` route.

pub mod journey;
pub mod tail;
pub mod writes;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::admin::AdminState;
use crate::upstreams::sap_client::SapClient;

pub use tail::{EventTail, TailSettings};

/// Default number of events `GET /admin/v1/events` answers.
pub const DEFAULT_LIMIT: usize = 100;
/// Most events one `GET /admin/v1/events` answers.
pub const MAX_LIMIT: usize = 1000;

/// The insight parts the admin API serves from.
#[derive(Clone)]
pub struct Insight {
    /// The event tail (disabled without `PROXY_KAFKA_BROKERS`).
    pub tail: EventTail,
    /// The proxy's own SAP client (technical user), to read an order from SAP.
    pub sap: Option<SapClient>,
}

impl Default for Insight {
    fn default() -> Self {
        Self {
            tail: EventTail::disabled(),
            sap: None,
        }
    }
}

/// The insight routes, merged into the admin router (inside its token check).
pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/events", get(events))
        .route("/admin/v1/journey/{key}", get(journey_of))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    q: Option<String>,
    limit: Option<String>,
}

async fn events(State(state): State<AdminState>, Query(query): Query<EventsQuery>) -> Response {
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return (
                http::StatusCode::BAD_REQUEST,
                [(http::header::CONTENT_TYPE, "application/problem+json")],
                Json(
                    json!({"type": "about:blank", "title": "Bad request", "status": 400,
                    "detail": format!("limit must be a whole number from 1 to {MAX_LIMIT}")}),
                ),
            )
                .into_response();
        }
    };
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let tail = &state.insight.tail;
    let found = tail.search(q, limit);
    let found: Vec<&tail::TailEvent> = found.iter().map(|e| &**e).collect();
    Json(json!({"tail": tail.status(), "events": found})).into_response()
}

async fn journey_of(State(state): State<AdminState>, Path(key): Path<String>) -> Response {
    Json(journey::trace(&state, key.trim()).await).into_response()
}
