//! `platform::otel` with a tracer installed (spans kept in memory): the W3C trace context a
//! span passes on to the next hop, `tracestate` included, and span links. A test binary of its
//! own, since the tracer is process-wide and the unit tests check that traces are off without
//! an endpoint.

use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use platform::otel::{self, KeyValue, LinkTo, Parent, SpanKind};

#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0.lock().unwrap().extend(batch);
        std::future::ready(Ok(()))
    }
}

fn spans() -> Kept {
    static KEPT: OnceLock<Kept> = OnceLock::new();
    KEPT.get_or_init(|| {
        let kept = Kept::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(kept.clone())
            .build();
        otel::install(provider.tracer("test"));
        std::mem::forget(provider);
        kept
    })
    .clone()
}

impl Kept {
    fn named(&self, name: &str) -> SpanData {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("span {name} ended"))
    }
}

const CLIENT_TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

#[test]
fn the_next_hop_gets_the_client_span_s_traceparent_and_the_incoming_tracestate() {
    let kept = spans();
    let mut incoming = http::HeaderMap::new();
    incoming.insert("traceparent", CLIENT_TP.parse().unwrap());
    incoming.insert("tracestate", STATE.parse().unwrap());
    let server = otel::start(
        "server-1",
        SpanKind::Server,
        Parent::from_headers(&incoming),
        vec![],
    )
    .expect("traces are on");
    assert_eq!(server.tracestate().as_deref(), Some(STATE));
    let client = {
        let _in_request = server.context().attach();
        assert_eq!(otel::current_tracestate().as_deref(), Some(STATE));
        otel::start("client-1", SpanKind::Client, Parent::Current, vec![]).unwrap()
    };
    // A header the request had from elsewhere is replaced.
    let mut outgoing = http::HeaderMap::new();
    outgoing.insert("traceparent", "00-1-2-01".parse().unwrap());
    client.inject(&mut outgoing);
    assert_eq!(outgoing["traceparent"], client.traceparent().as_str());
    assert!(
        client
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
    assert_eq!(outgoing["tracestate"], STATE);
    let (client_id, server_id) = (client.span_id(), server.span_id());
    drop(client);
    drop(server);
    let c = kept.named("client-1");
    assert_eq!(c.parent_span_id.to_string(), server_id);
    assert_eq!(c.span_context.span_id().to_string(), client_id);
    assert_eq!(c.span_context.trace_state().header(), STATE);
}

#[test]
fn a_tracestate_without_a_valid_traceparent_is_not_passed_on() {
    spans();
    let mut incoming = http::HeaderMap::new();
    incoming.insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
    incoming.insert("tracestate", STATE.parse().unwrap());
    let server = otel::start(
        "server-2",
        SpanKind::Server,
        Parent::from_headers(&incoming),
        vec![],
    )
    .unwrap();
    assert_eq!(server.tracestate(), None, "a new trace starts without it");
    let mut outgoing = http::HeaderMap::new();
    outgoing.insert("tracestate", "stale=1".parse().unwrap());
    server.inject(&mut outgoing);
    assert!(
        outgoing.get("tracestate").is_none(),
        "another trace's tracestate is removed"
    );
}

#[test]
fn a_span_made_for_several_others_links_to_each_and_can_link_later() {
    let kept = spans();
    let a = otel::start("a", SpanKind::Producer, Parent::Root, vec![]).unwrap();
    let b = otel::start("b", SpanKind::Producer, Parent::Root, vec![]).unwrap();
    let batch = otel::start_with_links(
        "batch",
        SpanKind::Client,
        Parent::Root,
        vec![
            LinkTo {
                traceparent: &a.traceparent(),
                attributes: vec![KeyValue::new("order_id", "o-a")],
            },
            LinkTo {
                traceparent: "malformed",
                attributes: vec![],
            },
            LinkTo {
                traceparent: &b.traceparent(),
                attributes: vec![KeyValue::new("order_id", "o-b")],
            },
        ],
        vec![],
    )
    .unwrap();
    a.add_link(&batch.traceparent(), vec![]);
    let (a_id, b_id, batch_id) = (a.span_id(), b.span_id(), batch.span_id());
    drop((a, b, batch));
    let batch = kept.named("batch");
    let linked: Vec<(String, String)> = batch
        .links
        .iter()
        .map(|l| {
            (
                l.span_context.span_id().to_string(),
                l.attributes[0].value.to_string(),
            )
        })
        .collect();
    assert_eq!(linked, vec![(a_id, "o-a".into()), (b_id, "o-b".into())]);
    let a = kept.named("a");
    assert_eq!(a.links[0].span_context.span_id().to_string(), batch_id);
}
