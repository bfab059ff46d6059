//! The spans a test process makes, kept in memory: [`collect`] installs a tracer (through
//! `platform::otel::install`, as a service's start does with its OTLP exporter) whose exporter
//! keeps every span as it ends, so a test can check kinds, parents, links and attributes of
//! the spans the code under test made in-process.
//!
//! The tracer is process-wide (traces stay on for the rest of the test binary): use it in a
//! test binary whose tests all expect traces on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// One ended span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    /// Name.
    pub name: String,
    /// Kind: `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: &'static str,
    /// Trace id (32 hex digits).
    pub trace_id: String,
    /// Span id (16 hex digits).
    pub span_id: String,
    /// The parent's span id (`0000000000000000` for a root).
    pub parent: String,
    /// The span's `tracestate` (W3C header form, empty for none).
    pub tracestate: String,
    /// Links: trace id, span id, and the link's attributes.
    pub links: Vec<(String, String, HashMap<String, String>)>,
    /// Attributes, as text.
    pub attributes: HashMap<String, String>,
    /// Marked failed.
    pub failed: bool,
}

impl Span {
    /// This span as a `traceparent` (sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// An attribute, empty when unset.
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map(String::as_str).unwrap_or("")
    }
}

/// The spans ended so far in this process.
#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<Span>>>);

impl Spans {
    /// Every span ended so far.
    pub fn all(&self) -> Vec<Span> {
        self.0.lock().expect("spans").clone()
    }

    /// The spans of one trace.
    pub fn of_trace(&self, trace_id: &str) -> Vec<Span> {
        self.all()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

#[derive(Debug)]
struct Keep(Spans);

fn attributes(kvs: &[opentelemetry::KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

impl SpanExporter for Keep {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        use opentelemetry::trace::SpanKind;
        let mut kept = self.0.0.lock().expect("spans");
        for s in batch {
            kept.push(Span {
                name: s.name.to_string(),
                kind: match s.span_kind {
                    SpanKind::Server => "server",
                    SpanKind::Client => "client",
                    SpanKind::Producer => "producer",
                    SpanKind::Consumer => "consumer",
                    SpanKind::Internal => "internal",
                },
                trace_id: s.span_context.trace_id().to_string(),
                span_id: s.span_context.span_id().to_string(),
                parent: s.parent_span_id.to_string(),
                tracestate: s.span_context.trace_state().header(),
                links: s
                    .links
                    .iter()
                    .map(|l| {
                        (
                            l.span_context.trace_id().to_string(),
                            l.span_context.span_id().to_string(),
                            attributes(&l.attributes),
                        )
                    })
                    .collect(),
                attributes: attributes(&s.attributes),
                failed: matches!(s.status, opentelemetry::trace::Status::Error { .. }),
            });
        }
        std::future::ready(Ok(()))
    }
}

/// Turns traces on for this process, every span kept in memory (once; later calls return the
/// same collection).
pub fn collect() -> Spans {
    static SPANS: OnceLock<Spans> = OnceLock::new();
    SPANS
        .get_or_init(|| {
            let spans = Spans::default();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_simple_exporter(Keep(spans.clone()))
                .build();
            platform::otel::install(provider.tracer("test"));
            // The provider lives as long as the process (its tracer holds a handle to it).
            std::mem::forget(provider);
            spans
        })
        .clone()
}
