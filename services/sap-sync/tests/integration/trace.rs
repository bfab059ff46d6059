//! Issue 14: one order is one trace, from the client's request at the proxy through the order
//! service, its outbox and Kafka, to sap-sync and its calls to SAP.
//!
//! Every service runs as its own process with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an
//! OTLP/HTTP receiver inside this test process, which decodes the protobuf exports
//! (`opentelemetry-proto`) and keeps every span with its resource's `service.name`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};

use crate::common::*;

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
    tracestate: String,
}

/// An OTLP/HTTP receiver on a free loopback port: `POST /v1/traces` with protobuf bodies.
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
    port: u16,
    exports: Arc<Mutex<usize>>,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

impl Receiver {
    async fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Got>>> = Arc::default();
        let exports: Arc<Mutex<usize>> = Arc::default();
        let (s, e) = (spans.clone(), exports.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (spans, exports) = (s.clone(), e.clone());
                async move {
                    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                        return (http::StatusCode::BAD_REQUEST, Vec::new());
                    };
                    *exports.lock().unwrap() += 1;
                    let mut out = spans.lock().unwrap();
                    for rs in req.resource_spans {
                        let resource =
                            attrs(&rs.resource.map(|r| r.attributes).unwrap_or_default());
                        let service = resource.get("service.name").cloned().unwrap_or_default();
                        for ss in rs.scope_spans {
                            for sp in ss.spans {
                                out.push(Got {
                                    service: service.clone(),
                                    name: sp.name.clone(),
                                    kind: sp.kind,
                                    trace_id: hex(&sp.trace_id),
                                    span_id: hex(&sp.span_id),
                                    parent: hex(&sp.parent_span_id),
                                    links: sp
                                        .links
                                        .iter()
                                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                        .collect(),
                                    attributes: attrs(&sp.attributes),
                                    tracestate: sp.trace_state.clone(),
                                });
                            }
                        }
                    }
                    // An empty ExportTraceServiceResponse: full success.
                    (http::StatusCode::OK, Vec::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            spans,
            port,
            exports,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", self.port),
            ),
            // Export every 100 ms instead of every 5 s, so the test does not wait long.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ]
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn one_order_created_through_the_proxy_in_events_is_one_trace_from_the_proxy_to_sap() {
    let otlp = Receiver::start().await;
    let env = otlp.env();
    let mut s = Stack::start_with_orders_env(env.clone(), env.clone(), env.clone()).await;
    let (ok, out) = s.orderctl(&["master-data", "import", "--from-sap"]);
    assert!(ok, "{out}");
    let proxy = s.start_proxy_with("events", &env).await;

    // The client starts the trace: its traceparent must be the root the proxy continues.
    let client_trace = format!("{:032x}", rand::random::<u128>() | 1);
    let client_span = "00f067aa0ba902b7";
    // A vendor's entries travel with the trace on every HTTP hop (W3C Trace Context).
    let client_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let reference = unique("otel");
    let correlation = format!("corr-{reference}");
    let r = s
        .http
        .post(format!("{proxy}{ROOT}/A_SalesOrder"))
        .header("accept", "application/json")
        .header("x-correlation-id", &correlation)
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .header("tracestate", client_state)
        .json(&json!({
            "SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
            "OrganizationDivision": "00", "SoldToParty": "17100001",
            "PurchaseOrderByCustomer": reference,
            "to_Item": [
                {"Material": "TG11", "RequestedQuantity": "2", "RequestedQuantityUnit": "PC"}
            ]
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "create through the proxy in events: {v}");
    let number = v["d"]["SalesOrder"].as_str().expect("a number").to_owned();
    s.wait_in_sap(std::slice::from_ref(&number)).await;

    // Every service's spans of this trace, once sap-sync's SAP create and the emulator's
    // answer to it have been exported.
    let deadline = std::time::Instant::now() + WAIT;
    let spans = loop {
        let t: Vec<Got> = otlp
            .spans()
            .into_iter()
            .filter(|g| g.trace_id == client_trace)
            .collect();
        let has =
            |svc: &str, kind: SpanKind| t.iter().any(|g| g.service == svc && g.kind == kind as i32);
        let sync_post = t.iter().any(|g| {
            g.service == "sap-sync" && g.kind == SpanKind::Client as i32 && g.name == "POST"
        });
        let sync_lookup = t.iter().any(|g| {
            g.service == "order-service"
                && g.kind == SpanKind::Server as i32
                && g.name == "POST /api/v1/order-versions"
        });
        if has("proxy", SpanKind::Server)
            && has("order-service", SpanKind::Server)
            && has("order-service", SpanKind::Producer)
            && has("sap-sync", SpanKind::Consumer)
            && sync_post
            && sync_lookup
            && has("sap-mock", SpanKind::Server)
        {
            break t;
        }
        if std::time::Instant::now() > deadline {
            let all: Vec<String> = otlp
                .spans()
                .iter()
                .map(|g| {
                    format!(
                        "{} {} {:?} {} {} <- {}",
                        g.trace_id, g.service, g.kind, g.name, g.span_id, g.parent
                    )
                })
                .collect();
            panic!(
                "the whole trace {client_trace} was not exported; got:\n{}",
                all.join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let by_id: HashMap<&str, &Got> = spans.iter().map(|g| (g.span_id.as_str(), g)).collect();
    let one = |service: &str, kind: SpanKind, what: &str| -> &Got {
        let found: Vec<&Got> = spans
            .iter()
            .filter(|g| g.service == service && g.kind == kind as i32)
            .collect();
        assert_eq!(found.len(), 1, "one {what} in the trace: {found:#?}");
        found[0]
    };
    let parent_of = |g: &Got| -> &Got {
        by_id
            .get(g.parent.as_str())
            .unwrap_or_else(|| panic!("the parent of {} ({}) is in the trace", g.name, g.service))
    };

    // The proxy continues the client's trace and calls the order service under its span.
    let proxy_server = one("proxy", SpanKind::Server, "proxy server span");
    assert_eq!(
        proxy_server.parent, client_span,
        "the client's span is the parent"
    );
    assert_eq!(proxy_server.tracestate, client_state, "and its tracestate");
    assert_eq!(proxy_server.attributes["correlation_id"], correlation);
    let proxy_to_orders: Vec<&Got> = spans
        .iter()
        .filter(|g| {
            g.service == "proxy"
                && g.kind == SpanKind::Client as i32
                && g.attributes.get("peer.service").map(String::as_str) == Some("order-service")
        })
        .collect();
    assert!(
        !proxy_to_orders.is_empty(),
        "a client span toward the order service"
    );
    for c in &proxy_to_orders {
        assert_eq!(c.parent, proxy_server.span_id);
    }

    // The order service's server span is the child of one of the proxy's client spans, and the
    // create's database statement runs under it.
    let create = spans
        .iter()
        .find(|g| {
            g.service == "order-service"
                && g.kind == SpanKind::Server as i32
                && g.attributes.get("order_number") == Some(&number)
        })
        .expect("the order service's server span of the create, with the order number");
    assert!(
        proxy_to_orders.iter().any(|c| c.span_id == create.parent),
        "the order service's span hangs under a proxy client span"
    );
    assert_eq!(create.attributes["correlation_id"], correlation);
    assert_eq!(
        create.tracestate, client_state,
        "the proxy passed the client's tracestate on to the order service"
    );
    let insert = spans
        .iter()
        .find(|g| g.service == "order-service" && g.name == "INSERT orders")
        .expect("the create's database span");
    assert_eq!(insert.parent, create.span_id);
    assert_eq!(insert.attributes["db.system.name"], "postgresql");

    // The relay's PRODUCER span is a child of the request's span (stored in the outbox row).
    let producer = one("order-service", SpanKind::Producer, "producer span");
    assert_eq!(producer.name, format!("{} publish", s.topic.name));
    assert_eq!(producer.parent, create.span_id);
    let a = &producer.attributes;
    assert_eq!(a["messaging.system"], "kafka");
    assert_eq!(a["messaging.destination.name"], s.topic.name);
    assert_eq!(a["messaging.operation.type"], "publish");
    assert_eq!(a["correlation_id"], correlation);
    let order_id = a["messaging.kafka.message.key"].clone();
    assert!(!order_id.is_empty());

    // sap-sync's CONSUMER span: parent and link are the producer span.
    let consumer = one("sap-sync", SpanKind::Consumer, "consumer span");
    assert_eq!(consumer.name, format!("{} process", s.topic.name));
    assert_eq!(
        consumer.parent, producer.span_id,
        "the producer is the parent"
    );
    assert_eq!(
        consumer.links,
        vec![(client_trace.clone(), producer.span_id.clone())],
        "and the link"
    );
    let a = &consumer.attributes;
    assert_eq!(a["messaging.system"], "kafka");
    assert_eq!(a["messaging.operation.type"], "process");
    assert_eq!(a["messaging.kafka.message.key"], order_id);
    assert_eq!(a["order_number"], number);
    assert_eq!(a["correlation_id"], correlation);

    // The look-up of the event's version in the order service (one event: under the span
    // that produced it) is a client span toward the order service, whose server span is its
    // child.
    let lookup = spans
        .iter()
        .find(|g| {
            g.service == "sap-sync"
                && g.kind == SpanKind::Client as i32
                && g.name == "POST /api/v1/order-versions"
        })
        .expect("sap-sync's version look-up in the trace");
    assert_eq!(lookup.attributes["peer.service"], "order-service");
    assert_eq!(lookup.parent, producer.span_id, "under the event's span");
    let lookup_server = spans
        .iter()
        .find(|g| {
            g.service == "order-service"
                && g.kind == SpanKind::Server as i32
                && g.name == "POST /api/v1/order-versions"
        })
        .unwrap();
    assert_eq!(
        lookup_server.parent, lookup.span_id,
        "the order service received the look-up's traceparent"
    );

    // Its SAP calls hang under it, and the emulator got each one's traceparent: its server
    // spans are children of sap-sync's client spans.
    let sap_calls: Vec<&Got> = spans
        .iter()
        .filter(|g| {
            g.service == "sap-sync"
                && g.kind == SpanKind::Client as i32
                && g.attributes.get("peer.service").map(String::as_str) == Some("sap")
        })
        .collect();
    assert!(sap_calls.iter().any(|c| c.name == "POST"), "{sap_calls:#?}");
    for c in &sap_calls {
        assert_eq!(
            c.parent, consumer.span_id,
            "{} under the consumer span",
            c.name
        );
        assert_eq!(c.attributes["peer.service"], "sap");
    }
    let sap_servers: Vec<&Got> = spans
        .iter()
        .filter(|g| g.service == "sap-mock" && g.kind == SpanKind::Server as i32)
        .collect();
    let create_in_sap = sap_servers
        .iter()
        .find(|g| g.name.starts_with("POST"))
        .expect("the emulator's span of the create");
    let caller = parent_of(create_in_sap);
    assert_eq!(
        (caller.service.as_str(), caller.kind, caller.name.as_str()),
        ("sap-sync", SpanKind::Client as i32, "POST"),
        "the emulator received the traceparent of sap-sync's call"
    );

    // Nothing else in the trace: one proxy request, one create in SAP.
    assert_eq!(
        spans
            .iter()
            .filter(|g| g.service == "proxy" && g.kind == SpanKind::Server as i32)
            .count(),
        1
    );
    assert_eq!(s.sap_stored().await.0, 1, "one order in SAP");
    assert!(*otlp.exports.lock().unwrap() > 0);
}
