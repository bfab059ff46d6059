//! The correlation id that follows a request through every system.
//!
//! Taken from `X-Correlation-ID`, else from `Idempotency-Key`, else generated (UUID v4). The
//! middleware stores it in the request extensions, opens the request span with it and echoes it
//! on the response, so a client and an operator can find the same request in every log.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};
use tracing::Instrument;

/// Header carrying the correlation id.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");
/// Header carrying a client's idempotency key.
pub const IDEMPOTENCY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// Longest correlation id accepted from a client; longer ones are replaced by a generated one.
pub const MAX_CORRELATION_LEN: usize = 128;

/// The correlation id of the current request (in the request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

impl CorrelationId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?.trim();
    (!s.is_empty() && s.len() <= MAX_CORRELATION_LEN && s.chars().all(|c| c.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// Picks the correlation id for a request's headers.
pub fn correlation_from_headers(headers: &http::HeaderMap) -> CorrelationId {
    let id = headers
        .get(&CORRELATION_HEADER)
        .and_then(acceptable)
        .or_else(|| headers.get(&IDEMPOTENCY_HEADER).and_then(acceptable))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    CorrelationId(id)
}

/// Axum middleware: assigns the correlation id, opens the request span, echoes the header.
///
/// When traces are on ([`crate::otel`]) it also makes the OpenTelemetry server span, a child of
/// the caller's `traceparent` with its `tracestate` (or a new trace), attached to the handler's future so the spans
/// and `traceparent`s made below hang under it; its trace and span ids go on the request span,
/// so every log line of the request carries them.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = correlation_from_headers(req.headers());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        correlation_id = %id.0,
        order_id = tracing::field::Empty,
        order_number = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    req.extensions_mut().insert(id.clone());
    let server = crate::otel::enabled()
        .then(|| server_span(&req, &route, &id))
        .flatten();
    let mut response = match &server {
        None => next.run(req).instrument(span).await,
        Some(server) => {
            span.record("trace_id", server.trace_id());
            span.record("span_id", server.span_id());
            use crate::otel::FutureExt as _;
            next.run(req)
                .with_context(server.context())
                .instrument(span)
                .await
        }
    };
    if let Some(server) = server {
        server.set_http_status(response.status().as_u16(), false);
    }
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
    response
}

/// The OpenTelemetry server span of a request (HTTP semantic conventions: `{method} {route}`).
fn server_span(req: &Request, route: &str, id: &CorrelationId) -> Option<crate::otel::ActiveSpan> {
    use crate::otel::KeyValue;
    let method = req.method().as_str().to_owned();
    let name = if route.is_empty() {
        method.clone()
    } else {
        format!("{method} {route}")
    };
    crate::otel::start(
        name,
        crate::otel::SpanKind::Server,
        crate::otel::Parent::from_headers(req.headers()),
        vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("url.path", req.uri().path().to_owned()),
            KeyValue::new("correlation_id", id.0.clone()),
        ],
    )
}

/// Header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: HeaderName = crate::otel::TRACEPARENT;
/// Header carrying the W3C trace context's vendor entries, passed on with the trace.
pub const TRACESTATE_HEADER: HeaderName = crate::otel::TRACESTATE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_header_wins_over_idempotency_key() {
        let mut h = http::HeaderMap::new();
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("key-1"));
        assert_eq!(correlation_from_headers(&h).0, "key-1");
        h.insert(CORRELATION_HEADER, HeaderValue::from_static("corr-1"));
        assert_eq!(correlation_from_headers(&h).0, "corr-1");
    }

    #[test]
    fn oversize_or_blank_ids_are_replaced_by_a_generated_one() {
        let mut h = http::HeaderMap::new();
        h.insert(
            CORRELATION_HEADER,
            HeaderValue::from_str(&"x".repeat(MAX_CORRELATION_LEN + 1)).unwrap(),
        );
        let id = correlation_from_headers(&h);
        assert!(uuid::Uuid::parse_str(&id.0).is_ok(), "{id:?}");
    }
}
