//! Prometheus metrics: one process-wide recorder and an HTTP middleware.
//!
//! The recorder is installed once per process ([`prometheus_handle`] is idempotent), so several
//! apps started inside one test process share it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for request histograms: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets (seconds) for event ages (`sap_sync_event_age_seconds`: now minus the event's time
/// when its effect is in SAP): 1 ms to 30 s, dense below a second where the lag goal is.
const EVENT_AGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5,
    2.0, 3.0, 5.0, 10.0, 30.0,
];

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full("sap_sync_event_age_seconds".into()),
                    EVENT_AGE_BUCKETS,
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test harness); then this
            // handle renders nothing, which only affects that process.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Handler body for `GET /metrics`.
pub async fn render() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus_handle().render(),
    )
}

/// Axum middleware: counts requests and records latency by method, route template and status.
pub async fn middleware(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}
