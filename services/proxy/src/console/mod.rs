//! The migration console: one web page on the admin listener (`GET /console`), its assets
//! embedded in the binary, and the read models it draws from.
//!
//! The page and its assets hold no data and are served without the token; everything the page
//! shows or changes goes through `/admin/v1/...` with the operator's bearer token, like any other
//! admin client (the token lives in the browser tab's session storage only). Charts are drawn
//! with uPlot and the page is kept live with Alpine.js (both vendored, see
//! `services/proxy/console/vendor/README.md`).
//!
//! Read models added for the page:
//! - `GET /admin/v1/console/series`: request rates, error rates and latency percentiles per
//!   route and per upstream, and dual-write outcomes, over the last minutes ([`series`]);
//! - `GET /admin/v1/console/overview`: breakers, replay backlog, shadow match rate with the
//!   latest differences field by field, reconciliation results, the order service's outbox
//!   backlog and age, sap-sync's lag and parked orders.

pub mod series;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::AdminState;
use crate::upstreams::upstream::{Upstream, UpstreamSettings};

/// The console's own state.
pub struct Console {
    /// Samples for the charts.
    pub history: Arc<series::History>,
    /// The order service, for its `/metrics` (a client of its own, so the console's reads do
    /// not show in the order-service upstream's latency and breaker).
    pub order_service: Arc<Upstream>,
}

impl Console {
    /// A console reading the order service at `order_service_url`.
    pub fn new(order_service_url: http::Uri) -> Self {
        // A zero sample from before the first request: the first interval counts everything
        // since the start, even when the sampler's first tick comes after the first requests.
        let history = Arc::new(series::History::default());
        history.push(series::Sample {
            at: chrono::Utc::now(),
            ..series::Sample::default()
        });
        Self {
            history,
            order_service: Arc::new(Upstream::new(UpstreamSettings {
                name: "order-service-console",
                base: order_service_url,
                timeout: std::time::Duration::from_secs(2),
                breaker_failures: u32::MAX,
                breaker_cooldown: std::time::Duration::from_secs(1),
                max_concurrency: 2,
                tls: None,
            })),
        }
    }
}

/// Embedded assets: (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/console.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/vendor/uPlot.min.css"),
    ),
    (
        "alpine.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/vendor/alpine.min.js"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../console/index.html");

/// Alpine.js evaluates its expressions with `Function`, hence `'unsafe-eval'`; nothing is
/// loaded from elsewhere and the page cannot be framed.
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' \
                   'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether a request is for the page or its assets (served without the token: they hold no data).
pub fn is_public(path: &str) -> bool {
    match path.strip_prefix("/console/assets/") {
        Some(name) => !name.is_empty() && !name.contains('/') && !name.contains(".."),
        None => path == "/console" || path == "/console/",
    }
}

fn page(content_type: &'static str, body: &'static [u8], cache: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX, "no-cache")
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => page(ct, body, "no-cache"),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[derive(Deserialize)]
struct SeriesQuery {
    /// Intervals to return (default 150: five minutes).
    points: Option<usize>,
}

async fn get_series(State(state): State<AdminState>, Query(q): Query<SeriesQuery>) -> Response {
    let points = q.points.unwrap_or(150).clamp(1, series::KEEP);
    let s = state.console.history.series(points);
    Json(json!({
        "interval_seconds": series::TICK.as_secs(),
        "t": s.t,
        "routes": s.routes,
        "upstreams": s.upstreams,
        "dual_write": s.dual_write,
    }))
    .into_response()
}

/// `GET` of `path` on `up`, its body as text (an error unless 2xx).
pub(crate) async fn get_text(up: &Upstream, path: &str) -> Result<String, String> {
    let (status, bytes) = up.get(path).await?;
    if !status.is_success() {
        return Err(format!("GET {path} answered {status}"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// `GET` of `path` on `up`, its body as JSON.
pub(crate) async fn get_json(up: &Upstream, path: &str) -> Result<Value, String> {
    let text = get_text(up, path).await?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The value of an unlabelled gauge in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let v = rest.strip_prefix(' ')?;
        v.trim().parse().ok()
    })
}

async fn outbox(state: &AdminState) -> Value {
    match get_text(&state.console.order_service, "/metrics").await {
        Ok(text) => json!({
            "backlog": gauge(&text, "outbox_backlog_events"),
            "oldest_age_seconds": gauge(&text, "outbox_oldest_pending_age_seconds"),
            "published": gauge(&text, "outbox_published_total"),
        }),
        Err(e) => json!({"error": e}),
    }
}

async fn sap_sync(state: &AdminState) -> Value {
    let Some(up) = state.sap_sync.as_ref() else {
        return json!({"configured": false});
    };
    let (status, parked) = tokio::join!(get_json(up, "/status"), get_json(up, "/parked"));
    let mut out = json!({"configured": true});
    match status {
        Ok(s) => out["status"] = s,
        Err(e) => out["error"] = e.into(),
    }
    match parked {
        Ok(p) => out["parked"] = p,
        Err(e) => out["parked_error"] = e.into(),
    }
    out
}

/// A redrive of an order sap-sync parked, asked through sap-sync's API with the token sap-sync
/// takes (`SAP_SYNC_ADMIN_TOKEN`, else the admin token; `orderctl up` gives both one). Its
/// answer is passed on.
async fn redrive_parked(State(state): State<AdminState>, Path(order): Path<String>) -> Response {
    let problem = |status: StatusCode, detail: String| {
        crate::admin::problem(status, "Redrive not asked", detail)
    };
    let Some(up) = state.sap_sync.as_ref() else {
        return problem(
            StatusCode::CONFLICT,
            "no sap-sync is configured (SAP_SYNC_URL)".into(),
        );
    };
    let path = format!("/parked/{}/redrive", utf8_percent(&order));
    let mut req = match http::Request::post(up.uri_for(&path)).body(crate::serve::body::empty()) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Some(t) = &state.sap_sync_token
        && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        v.set_sensitive(true);
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    match up.send(req).await {
        Ok(resp) => {
            let status = resp.status();
            let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut r = (status, body).into_response();
            if let Some(ct) = ct {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
        Err(e) => problem(
            StatusCode::BAD_GATEWAY,
            format!("sap-sync did not answer: {e}"),
        ),
    }
}

/// Percent-encodes what is not unreserved in a path segment.
fn utf8_percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn get_overview(State(state): State<AdminState>) -> Response {
    let backlog = crate::admin::backlog_view(&state).await;
    let (matched, compared) = state.shadow.counts();
    let reconciliation = state
        .reconciliation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (outbox, sap_sync) = tokio::join!(outbox(&state), sap_sync(&state));
    let breaker = |u: &Upstream| format!("{:?}", u.breaker_state()).to_lowercase();
    Json(json!({
        "at": chrono::Utc::now(),
        "in_flight": state.max_concurrency.saturating_sub(state.inflight.available_permits()),
        "breakers": {"sap": breaker(&state.sap), "order-service": breaker(&state.order_upstream)},
        "dual_write_outcomes": crate::observe::outcome_counts(),
        "replay_backlog": backlog,
        "shadow": {
            "matched": matched,
            "compared": compared,
            "crossed_by_a_change": state.shadow.crossed(),
            "match_rate": (compared > 0).then(|| matched as f64 / compared as f64),
            "recent_differences": state.shadow.recent(),
        },
        "reconciliation": reconciliation,
        "outbox": outbox,
        "sap_sync": sap_sync,
    }))
    .into_response()
}

/// The console's routes, merged into the admin router (behind its token check, which lets
/// [`is_public`] paths through).
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/assets/{name}", get(asset))
        .route("/admin/v1/console/series", get(get_series))
        .route("/admin/v1/console/overview", get(get_overview))
        .route(
            "/admin/v1/sap-sync/parked/{order}/redrive",
            post(redrive_parked),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_page_and_its_assets_are_public() {
        assert!(is_public("/console"));
        assert!(is_public("/console/assets/console.js"));
        assert!(!is_public("/admin/v1/console/overview"));
        assert!(!is_public("/consoles"));
        assert!(!is_public("/console/../admin/v1/replays"));
        assert!(!is_public("/console/assets/../../admin/v1/replays"));
        assert!(!is_public("/console/assets/"));
    }

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let index = std::str::from_utf8(INDEX).unwrap();
        for part in index.split("/console/assets/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| *c != '"' && *c != '\'')
                .collect();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "index.html names {name}, which is not embedded"
            );
        }
    }

    #[test]
    fn a_path_segment_is_percent_encoded() {
        assert_eq!(utf8_percent("4711"), "4711");
        assert_eq!(utf8_percent("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn gauges_are_read_by_their_exact_name() {
        let text = "# TYPE outbox_backlog_events gauge\noutbox_backlog_events 12\n\
                    outbox_backlog_events_other 3\noutbox_oldest_pending_age_seconds 0.5\n";
        assert_eq!(gauge(text, "outbox_backlog_events"), Some(12.0));
        assert_eq!(gauge(text, "outbox_oldest_pending_age_seconds"), Some(0.5));
        assert_eq!(gauge(text, "missing"), None);
    }
}
