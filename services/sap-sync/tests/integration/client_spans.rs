//! sap-sync's calls to the order service as CLIENT spans, in-process: the spans are collected
//! in memory (`test_support::otel`, traces on for this test binary's process only; the other
//! tests' services run as processes of their own) and a stand-in for the order service
//! records the `traceparent` each call carries.

use std::sync::{Arc, Mutex};

use platform::otel::{Parent, SpanKind};
use sap_sync::orders::{AskedFor, Orders, Versions};
use sap_sync::sap::CallContext;
use serde_json::{Value, json};

/// Path and `traceparent` of every request the stand-in got.
type Got = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// The order service's routes sap-sync calls: every order is at version 7.
async fn order_service() -> (String, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let g = g.clone();
        async move {
            let traceparent = req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let path = req.uri().path().to_owned();
            g.lock().unwrap().push((path.clone(), traceparent));
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let versions: Vec<Value> = body["order_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|id| json!({"order_id": id, "version": 7}))
                .collect();
            axum::Json(json!({ "versions": versions }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// A producer span of a trace of its own, as the relay makes one per event.
fn event_span(order: &str) -> platform::otel::ActiveSpan {
    platform::otel::start(
        format!("orders publish {order}"),
        SpanKind::Producer,
        Parent::Root,
        Vec::new(),
    )
    .expect("traces are on")
}

#[tokio::test]
async fn the_version_look_up_of_one_event_is_a_client_span_under_the_event_s_span() {
    let spans = test_support::otel::collect();
    let (url, got) = order_service().await;
    let versions = Versions::start(Orders::new(&url).unwrap());
    let event = event_span("one");
    let (version, call) = versions
        .ask("order-one", AskedFor::Event(event.traceparent()))
        .answer_traced()
        .await;
    assert_eq!(version, Ok(Some(7)));
    let call = call.expect("the look-up's span");

    let sent = got.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![("/api/v1/order-versions".to_owned(), Some(call.clone()))],
        "the order service got the look-up's traceparent"
    );
    let span = spans
        .of_trace(&event.trace_id())
        .into_iter()
        .find(|s| s.traceparent() == call)
        .expect("the look-up's span in the event's trace");
    assert_eq!(span.kind, "client");
    assert_eq!(span.name, "POST /api/v1/order-versions");
    assert_eq!(span.parent, event.span_id(), "a child of the event's span");
    assert_eq!(span.attr("peer.service"), "order-service");
    assert_eq!(span.attr("url.template"), "/api/v1/order-versions");
    assert_eq!(span.attr("http.response.status_code"), "200");
    assert!(span.links.is_empty());
}

#[tokio::test]
async fn a_look_up_serving_several_events_is_a_span_of_its_own_linked_to_each_event() {
    let spans = test_support::otel::collect();
    let (url, got) = order_service().await;
    let versions = Versions::start(Orders::new(&url).unwrap());
    let events: Vec<_> = (0..3).map(|i| event_span(&format!("many-{i}"))).collect();
    // Asked as the fetch asks them, one by one, and read later: one call serves them all.
    let mut asked = Vec::new();
    for (i, e) in events.iter().enumerate() {
        asked.push(versions.ask(&format!("order-many-{i}"), AskedFor::Event(e.traceparent())));
        tokio::task::yield_now().await;
    }
    let mut calls = Vec::new();
    for a in asked {
        let (version, call) = a.answer_traced().await;
        assert_eq!(version, Ok(Some(7)));
        calls.push(call.expect("the look-up's span"));
    }
    calls.dedup();
    assert_eq!(calls.len(), 1, "one call for the three");
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap()[0].1.as_ref(), Some(&calls[0]));

    let span = spans
        .all()
        .into_iter()
        .find(|s| s.traceparent() == calls[0])
        .expect("the look-up's span");
    assert_eq!(span.kind, "client");
    assert_eq!(span.parent, "0000000000000000", "a trace of its own");
    assert!(events.iter().all(|e| e.trace_id() != span.trace_id));
    let mut linked: Vec<(String, String, String)> = span
        .links
        .iter()
        .map(|(t, s, a)| (t.clone(), s.clone(), a["order_id"].clone()))
        .collect();
    linked.sort();
    let mut expected: Vec<(String, String, String)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.trace_id(), e.span_id(), format!("order-many-{i}")))
        .collect();
    expected.sort();
    assert_eq!(
        linked, expected,
        "a link to each event's span, with its order"
    );
    assert_eq!(span.attr("sap_sync.lookup.orders"), "3");
}

#[tokio::test]
async fn a_look_up_asked_from_within_a_span_is_its_child() {
    let spans = test_support::otel::collect();
    let (url, _) = order_service().await;
    let versions = Versions::start(Orders::new(&url).unwrap());
    let consumer = platform::otel::start(
        "orders process",
        SpanKind::Consumer,
        Parent::Root,
        Vec::new(),
    )
    .unwrap();
    let answer = versions
        .get("order-within", AskedFor::Span(consumer.traceparent()))
        .await;
    assert_eq!(answer, Ok(Some(7)));
    let span = spans
        .of_trace(&consumer.trace_id())
        .into_iter()
        .find(|s| s.name == "POST /api/v1/order-versions")
        .expect("the look-up in the consumer's trace");
    assert_eq!(span.parent, consumer.span_id());
}

#[tokio::test]
async fn fulfilment_write_backs_are_client_spans_under_the_span_they_are_made_in() {
    let spans = test_support::otel::collect();
    let (url, got) = order_service().await;
    let orders = Orders::new(&url).unwrap();
    let poll =
        platform::otel::start("backward poll", SpanKind::Internal, Parent::Root, vec![]).unwrap();
    let ctx = CallContext {
        correlation_id: Some("sap-sync-backward-4711".into()),
        traceparent: Some(poll.traceparent()),
    };
    orders
        .report_status("order-4711", "delivered", &ctx)
        .await
        .unwrap();
    orders
        .reject_item("order-4711", 3, "10", "02", &ctx)
        .await
        .unwrap();

    let trace = spans.of_trace(&poll.trace_id());
    let sent = got.lock().unwrap().clone();
    for (name, path) in [
        (
            "POST /api/v1/orders/{id}/status",
            "/api/v1/orders/order-4711/status",
        ),
        (
            "PATCH /api/v1/orders/{id}/items/{item}",
            "/api/v1/orders/order-4711/items/10",
        ),
    ] {
        let span = trace
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in the poll's trace: {trace:#?}"));
        assert_eq!(span.kind, "client");
        assert_eq!(span.parent, poll.span_id());
        assert_eq!(span.attr("peer.service"), "order-service");
        assert_eq!(span.attr("order_id"), "order-4711");
        assert_eq!(span.attr("correlation_id"), "sap-sync-backward-4711");
        assert!(
            sent.contains(&(path.to_owned(), Some(span.traceparent()))),
            "{path} carried its span's traceparent: {sent:?}"
        );
    }
}
