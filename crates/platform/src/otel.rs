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
//! with [`FutureExt::with_context`]), [`Parent::Remote`] (a `traceparent` from a header, a
//! stored outbox row or replay entry, with the `tracestate` that came with it), or
//! [`Parent::Root`]. The `traceparent` of a span ([`ActiveSpan::traceparent`]) is what goes into
//! the next hop's header, so the next hop's span is its child; [`ActiveSpan::inject`] writes it
//! and the trace's `tracestate`.
//!
//! `tracestate` (W3C Trace Context) is carried in the span context, as the OpenTelemetry SDK
//! does: a span started under a remote parent inherits the parent's `tracestate`, its children
//! inherit it in turn, and every outgoing request of the trace passes it on unchanged (no
//! service here adds an entry of its own). A `tracestate` that comes without a valid
//! `traceparent`, or that does not parse, is dropped, as the specification says.

use std::borrow::Cow;
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};

pub use opentelemetry::context::FutureExt;
pub use opentelemetry::trace::SpanKind;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
pub use opentelemetry::{Context, KeyValue, Value};

static TRACER: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();

/// Installs the tracer the spans are made with (once; [`crate::telemetry::init`] does it when
/// an endpoint is configured; a test may install one exporting to memory). A second call is
/// ignored.
pub fn install(tracer: opentelemetry_sdk::trace::SdkTracer) {
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
    /// The span named by a W3C `traceparent` (a header, an outbox row, a replay entry), with
    /// the `tracestate` that came with it; a new trace (and no `tracestate`) when the
    /// `traceparent` is missing or malformed.
    Remote {
        /// The `traceparent`.
        traceparent: Option<&'a str>,
        /// The `tracestate` that travelled with it.
        tracestate: Option<&'a str>,
    },
    /// A new trace.
    Root,
}

/// A started span; ends when dropped (or at [`ActiveSpan::end`]). It lives in a [`Context`],
/// which [`ActiveSpan::context`] gives to attach to futures that run under it.
#[derive(Debug)]
pub struct ActiveSpan {
    cx: Context,
}

impl<'a> Parent<'a> {
    /// [`Parent::Remote`] without a `tracestate` (an outbox row, a Kafka header).
    pub fn traceparent(traceparent: Option<&'a str>) -> Self {
        Parent::Remote {
            traceparent,
            tracestate: None,
        }
    }

    /// [`Parent::Remote`] from a request's `traceparent` and `tracestate` headers.
    pub fn from_headers(headers: &'a http::HeaderMap) -> Self {
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        Parent::Remote {
            traceparent: text(&TRACEPARENT),
            tracestate: text(&TRACESTATE),
        }
    }
}

/// The W3C `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C `tracestate` header.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A span link: the span a `traceparent` names, with attributes saying why it is linked (e.g.
/// the order the linked span is about).
#[derive(Debug, Clone)]
pub struct LinkTo<'a> {
    /// The linked span.
    pub traceparent: &'a str,
    /// Attributes of the link.
    pub attributes: Vec<KeyValue>,
}

/// The attributes of an HTTP CLIENT span (HTTP semantic conventions): method, full URL,
/// server address and port, `peer.service`, and the request's `X-Correlation-ID` when it
/// carries one.
pub fn http_client_attributes(
    method: &http::Method,
    url: &str,
    host: &str,
    port: Option<u16>,
    peer_service: &'static str,
    headers: &http::HeaderMap,
) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.as_str().to_owned()),
        KeyValue::new("url.full", url.to_owned()),
        KeyValue::new("server.address", host.to_owned()),
        KeyValue::new("peer.service", peer_service),
    ];
    if let Some(port) = port {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    if let Some(c) = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("correlation_id", c.to_owned()));
    }
    attributes
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
    let links: Vec<LinkTo<'_>> = link
        .map(|traceparent| LinkTo {
            traceparent,
            attributes: Vec::new(),
        })
        .into_iter()
        .collect();
    start_with_links(name, kind, parent, links, attributes)
}

/// As [`start`], with span links to every span `links` name (malformed ones are left out): a
/// call made for several events at once links to each event's span, as the conventions ask of
/// work done for a batch.
pub fn start_with_links(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: Parent<'_>,
    links: Vec<LinkTo<'_>>,
    attributes: Vec<KeyValue>,
) -> Option<ActiveSpan> {
    let tracer = TRACER.get()?;
    let parent_cx = match parent {
        Parent::Current => Context::current(),
        Parent::Remote {
            traceparent,
            tracestate,
        } => match traceparent.and_then(|tp| remote_context(tp, tracestate)) {
            Some(sc) => Context::new().with_remote_span_context(sc),
            None => Context::new(),
        },
        Parent::Root => Context::new(),
    };
    let mut builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes);
    let links: Vec<Link> = links
        .into_iter()
        .filter_map(|l| {
            let sc = parse_traceparent(l.traceparent)?;
            Some(Link::new(sc, l.attributes, 0))
        })
        .collect();
    if !links.is_empty() {
        builder = builder.with_links(links);
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

    /// The trace's W3C `tracestate` (inherited from the remote parent), `None` when empty.
    pub fn tracestate(&self) -> Option<String> {
        let state = self.cx.span().span_context().trace_state().header();
        (!state.is_empty()).then_some(state)
    }

    /// Writes this span's `traceparent` and the trace's `tracestate` into the headers of a
    /// request about to be sent, replacing any there (a `tracestate` of another trace is
    /// removed), so the receiver's span is this span's child in the same trace.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.traceparent()) {
            headers.insert(TRACEPARENT, v);
        }
        match self
            .tracestate()
            .and_then(|s| HeaderValue::from_str(&s).ok())
        {
            Some(v) => {
                headers.insert(TRACESTATE, v);
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }

    /// Adds a span link to the span `traceparent` names (nothing when it is malformed), e.g.
    /// to a call made for this span together with others, once it is known.
    pub fn add_link(&self, traceparent: &str, attributes: Vec<KeyValue>) {
        if let Some(sc) = parse_traceparent(traceparent) {
            self.cx.span().add_link(sc, attributes);
        }
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

/// The `tracestate` of the trace of the span attached to the running future, when traces are on
/// and it has one (to store beside [`current_traceparent`] for work done later in the trace).
pub fn current_tracestate() -> Option<String> {
    if !enabled() {
        return None;
    }
    let state = Context::current()
        .span()
        .span_context()
        .trace_state()
        .header();
    (!state.is_empty()).then_some(state)
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

/// The remote span context of a `traceparent` and the `tracestate` that came with it; `None`
/// when the `traceparent` is malformed. A `tracestate` that does not parse is dropped (the
/// trace goes on without it), as W3C Trace Context allows.
pub fn remote_context(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let sc = parse_traceparent(traceparent)?;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags(),
        true,
        state,
    ))
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
    fn a_tracestate_travels_with_its_traceparent_and_a_malformed_one_is_dropped() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = remote_context(tp, Some("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")).unwrap();
        assert_eq!(
            sc.trace_state().header(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        );
        assert_eq!(format_traceparent(&sc), tp);
        let sc = remote_context(tp, Some("no equals sign")).unwrap();
        assert_eq!(
            sc.trace_state().header(),
            "",
            "an unparsable tracestate is dropped"
        );
        assert!(remote_context("00-bad", Some("congo=t61rcWkgMzE")).is_none());
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
