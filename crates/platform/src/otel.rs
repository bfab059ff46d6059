//! OpenTelemetry traces: the spans every service makes, and W3C trace context across HTTP and
//! Kafka (see `docs/observability.md`).
//!
//! The OpenTelemetry API is used directly rather than through `tracing-opentelemetry`: the
//! spans that cross a boundary (server, client, producer, consumer) are few and made on
//! purpose, with the kinds, attributes and links the semantic conventions ask for, and when no
//! exporter is configured nothing is made at all: [`start`] is one atomic load that answers
//! `None`. Every `tracing` span of the services does not become an OpenTelemetry span (which
//! would cost on every request, also for spans nobody looks at in a trace view).
//!
//! Parents are given explicitly: [`Parent::Current`] (the context attached to the running future
//! with [`FutureExt::with_context`]), [`Parent::Remote`] (a `traceparent` from a header or a
//! stored outbox row), or [`Parent::Root`]. The `traceparent` of a span ([`ActiveSpan::traceparent`])
//! is what goes into the next hop's header, so the next hop's span is its child.

use std::borrow::Cow;
use std::sync::OnceLock;

pub use opentelemetry::context::FutureExt;
pub use opentelemetry::trace::SpanKind;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
pub use opentelemetry::{Context, KeyValue, Value};

static TRACER: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();

/// Installs the tracer the spans are made with (once; [`crate::telemetry::init`] does it when
/// an endpoint is configured). A second call is ignored.
pub(crate) fn install(tracer: opentelemetry_sdk::trace::SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// Whether traces are exported (an OTLP endpoint was configured at start). When not, every
/// function here does nothing and returns `None`.
#[inline]
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// Where a new span hangs.
#[derive(Debug, Clone, Copy)]
pub enum Parent<'a> {
    /// The span of the context attached to the running future ([`FutureExt::with_context`]),
    /// a new trace when there is none.
    Current,
    /// The span named by a W3C `traceparent` (a header, an outbox row); a new trace when it is
    /// missing or malformed.
    Remote(Option<&'a str>),
    /// A new trace.
    Root,
}

/// A started span; ends when dropped (or at [`ActiveSpan::end`]). It lives in a [`Context`],
/// which [`ActiveSpan::context`] gives to attach to futures that run under it.
#[derive(Debug)]
pub struct ActiveSpan {
    cx: Context,
}

/// Starts a span of `kind` under `parent` with `attributes`. `None` when traces are off.
pub fn start(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: Parent<'_>,
    attributes: Vec<KeyValue>,
) -> Option<ActiveSpan> {
    start_linked(name, kind, parent, None, attributes)
}

/// As [`start`], with a span link to the span named by `link` (a `traceparent`): a consumer's
/// process span links to the producer's context, as the messaging conventions ask.
pub fn start_linked(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: Parent<'_>,
    link: Option<&str>,
    attributes: Vec<KeyValue>,
) -> Option<ActiveSpan> {
    let tracer = TRACER.get()?;
    let parent_cx = match parent {
        Parent::Current => Context::current(),
        Parent::Remote(tp) => match tp.and_then(parse_traceparent) {
            Some(sc) => Context::new().with_remote_span_context(sc),
            None => Context::new(),
        },
        Parent::Root => Context::new(),
    };
    let mut builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes);
    if let Some(sc) = link.and_then(parse_traceparent) {
        builder = builder.with_links(vec![Link::with_context(sc)]);
    }
    let span = builder.start_with_context(tracer, &parent_cx);
    Some(ActiveSpan {
        cx: parent_cx.with_span(span),
    })
}

impl ActiveSpan {
    /// The context holding this span, to attach to the futures that run under it.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// This span as a W3C `traceparent`, for the next hop's header.
    pub fn traceparent(&self) -> String {
        format_traceparent(self.cx.span().span_context())
    }

    /// The trace id (32 hex digits), for log lines.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// The span id (16 hex digits), for log lines.
    pub fn span_id(&self) -> String {
        self.cx.span().span_context().span_id().to_string()
    }

    /// Sets an attribute.
    pub fn set(&self, key: &'static str, value: impl Into<Value>) {
        self.cx.span().set_attribute(KeyValue::new(key, value));
    }

    /// Records an HTTP status: `http.response.status_code`, and an error status from 500 on
    /// (a server span) or from 400 on (a client span), as the HTTP conventions say.
    pub fn set_http_status(&self, status: u16, client: bool) {
        self.cx.span().set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 || (client && status >= 400) {
            self.cx.span().set_status(Status::error(""));
            self.cx
                .span()
                .set_attribute(KeyValue::new("error.type", status.to_string()));
        }
    }

    /// Marks the span failed with a short description of why.
    pub fn fail(&self, error_type: &'static str, description: impl Into<Cow<'static, str>>) {
        self.cx.span().set_status(Status::error(description));
        self.cx
            .span()
            .set_attribute(KeyValue::new("error.type", error_type));
    }

    /// Ends the span now.
    pub fn end(self) {}
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// The `traceparent` of the span attached to the running future, when traces are on and there
/// is one.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format_traceparent(&sc))
}

/// Sets an attribute on the span attached to the running future (nothing when traces are off
/// or there is none), e.g. the order number once a handler knows it.
pub fn set_current(key: &'static str, value: impl Into<Value>) {
    if enabled() {
        Context::current()
            .span()
            .set_attribute(KeyValue::new(key, value));
    }
}

/// A span context from a version-00 `traceparent`; `None` when malformed or all-zero.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if version != "00"
        || parts.next().is_some()
        || !lower_hex(trace, 32)
        || !lower_hex(span, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1);
    let sc = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    sc.is_valid().then_some(sc)
}

/// A span context as a version-00 `traceparent`.
pub fn format_traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_parses_and_formats_back_unchanged() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = parse_traceparent(tp).expect("valid");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(format_traceparent(&sc), tp);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
