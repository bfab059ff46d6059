//! The middleware that carries out the fault plan of each OData request (see [`crate::faults`]).
//!
//! It sits in front of the OData handler only; the admin endpoint, health and metrics are never
//! delayed or failed. The faulted request runs on its own task, so a caller that gives up
//! (times out, disconnects) does not cancel it: as on SAP, the work is done anyway. A "dropped" answer is a response marked with [`DropConnection`]: the
//! connection server sees the mark and closes the connection without writing anything.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::AppState;
use crate::error::{SapError, codes};
use crate::events::{Event, record};
use crate::faults::{Outage, plan_with};

/// Response extension: close the connection instead of answering.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Request extension set by the connection server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// This connection arrived while `max_connections` were already open.
    pub over_limit: bool,
}

fn dropped() -> Response {
    let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    r.extensions_mut().insert(DropConnection);
    r
}

fn unavailable(message: &str) -> Response {
    SapError::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message).into_response()
}

/// Sleeps for `d` unless the server shuts down first (then `false`).
async fn wait(app: &AppState, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = app.shutdown.cancelled() => false,
    }
}

/// Applies outage, connection limit, hang, latency, injected errors and lost responses.
pub async fn apply_faults(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req
        .extensions()
        .get::<ConnectionInfo>()
        .is_some_and(|c| c.over_limit)
    {
        record(Event::FaultConnectionLimit);
        // close the connection after the answer, so a pooled client comes back on a new one
        let mut r = unavailable("Service unavailable: connection limit reached");
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return r;
    }
    let settings = app.faults.current();
    match settings.outage {
        Outage::Off => {}
        Outage::Unavailable => {
            record(Event::FaultOutage);
            return unavailable("Service unavailable");
        }
        Outage::Reset => {
            record(Event::FaultOutage);
            return dropped();
        }
    }
    let plan = plan_with(&settings, &mut rand::rng());
    // SAP's ICM receives the whole request before a work process takes it, so the body is read
    // before any delay: a caller that hangs up during the delay cannot take the body with it.
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return dropped(),
    };
    let req = Request::from_parts(parts, axum::body::Body::from(body));
    // Like an SAP work process, the request runs to its end even when the caller hangs up
    // (a timed-out create may still be committed), so it runs on its own task.
    let work = tokio::spawn(run_with_plan(app, plan, req, next));
    match work.await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "sap_mock_request_task_failed");
            SapError::internal().into_response()
        }
    }
}

async fn run_with_plan(
    app: Arc<AppState>,
    plan: crate::faults::RequestFaults,
    req: Request,
    next: Next,
) -> Response {
    if let Some(hang) = plan.hang {
        record(Event::FaultHang(hang.as_millis() as u64));
        app.hanging.fetch_add(1, Ordering::SeqCst);
        let finished = wait(&app, hang).await;
        app.hanging.fetch_sub(1, Ordering::SeqCst);
        if !finished {
            return unavailable("Service unavailable: shutting down");
        }
    }
    if !plan.delay.is_zero() {
        record(Event::FaultLatency(plan.delay.as_millis() as u64));
        if !wait(&app, plan.delay).await {
            return unavailable("Service unavailable: shutting down");
        }
    }
    if let Some(status) = plan.error {
        record(Event::FaultError(status));
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
            (codes::UNAVAILABLE, "Service unavailable")
        } else {
            (codes::INTERNAL, "Internal server error")
        };
        return SapError::new(status, code, message).into_response();
    }
    let write = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    let accepts_gzip = req
        .headers()
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|c| {
            c.split(';')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("gzip"))
        });
    let response = next.run(req).await;
    if plan.lose_response && write && response.status().is_success() {
        record(Event::FaultResponseLost);
        return dropped();
    }
    if plan.gzip && accepts_gzip {
        return gzipped(response).await;
    }
    response
}

/// The answer gzip-compressed (`Content-Encoding: gzip`), as SAP's ICM sends it with HTTP
/// compression on; answers without a body, or already encoded, stay as they are.
async fn gzipped(response: Response) -> Response {
    use std::io::Write;
    if response
        .headers()
        .contains_key(http::header::CONTENT_ENCODING)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return SapError::internal().into_response();
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed = match encoder.write_all(&bytes).and_then(|()| encoder.finish()) {
        Ok(c) => c,
        Err(_) => return SapError::internal().into_response(),
    };
    parts.headers.insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static("gzip"),
    );
    parts.headers.insert(
        http::header::VARY,
        http::HeaderValue::from_static("Accept-Encoding"),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(compressed))
}
