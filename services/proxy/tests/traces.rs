//! The proxy with traces on and JSON logs, in-process: its spans are collected in memory
//! (`test_support::otel`) and its log lines captured, against stand-ins for the order service
//! and SAP that record the headers they get. Traces stay on for this whole test binary, which
//! is why these tests live apart from the integration tests (whose proxies run with traces
//! off, as separate processes).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse;
use platform::otel::{KeyValue, Parent, SpanKind};
use proxy::dual_write::keys::Keys;
use proxy::dual_write::replay::ReplayWorker;
use proxy::dual_write::store::{ReplayEntry, ReplayKind, Store};
use proxy::upstreams::order_client::HttpOrderService;
use proxy::upstreams::sap_client::SapClient;
use proxy::upstreams::upstream::{Upstream, UpstreamSettings};

const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

/// What a stand-in received: path and headers, per request.
type Received = Arc<Mutex<Vec<(String, http::HeaderMap)>>>;

/// A stand-in upstream on a free port that answers every request with `status` and records it.
async fn stand_in(status: u16) -> (String, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let r = r.clone();
        async move {
            r.lock()
                .unwrap()
                .push((req.uri().path().to_owned(), req.headers().clone()));
            (
                http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                "{}",
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn upstream(name: &'static str, url: &str) -> Arc<Upstream> {
    Arc::new(Upstream::new(UpstreamSettings {
        name,
        base: url.parse().unwrap(),
        timeout: Duration::from_secs(5),
        breaker_failures: u32::MAX,
        breaker_cooldown: Duration::from_secs(1),
        max_concurrency: 4,
        tls: None,
    }))
}

/// Log lines written so far (JSON, as `LOG_FORMAT=json` writes them).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this process's logs as the services write them with `LOG_FORMAT=json`
/// (`platform::telemetry::init`'s format), once.
fn json_logs() -> Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Lines::default();
            let writer = lines.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                .json()
                .flatten_event(true)
                .with_writer(move || writer.clone())
                .try_init()
                .expect("the only subscriber of this test binary");
            lines
        })
        .clone()
}

impl Lines {
    fn parsed(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_passes_its_tracestate_on_and_its_log_lines_carry_correlation_order_and_trace() {
    let spans = test_support::otel::collect();
    let logs = json_logs();
    // The order service is down: the read by key fails, and the proxy logs why.
    let (orders_url, orders_got) = stand_in(503).await;
    let (sap_url, _) = stand_in(503).await;
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<String, String> = [
        ("PROXY_BIND", "127.0.0.1".to_owned()),
        ("PROXY_PORT", "0".to_owned()),
        ("PROXY_ADMIN_PORT", "0".to_owned()),
        ("SAP_URL", sap_url),
        ("ORDER_SERVICE_URL", orders_url),
        ("PROXY_DATA_DIR", dir.path().display().to_string()),
        ("PROXY_SALES_ORDERS_MODE", "events".to_owned()),
        ("PROXY_WORKERS", "1".to_owned()),
        ("ADMIN_TOKEN", "test-admin-token".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config =
        proxy::config::ProxyConfig::from_reader(platform::config::EnvReader::from_map(vars))
            .expect("configuration");
    let app = proxy::app::Application::build(config).await.unwrap();
    let address = app.address();
    let stop = tokio_util::sync::CancellationToken::new();
    // Stopped when the test ends, also when an assertion fails (a proxy left running would
    // keep the runtime from shutting down).
    let _stop_at_exit = stop.clone().drop_guard();
    let running = tokio::spawn(app.run(stop.clone()));

    let client_trace = format!("{:032x}", rand::random::<u128>() | 1);
    let answer = reqwest::Client::new()
        .get(format!(
            "http://{address}/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('4711')"
        ))
        .header("accept", "application/json")
        .header("x-correlation-id", "corr-trace-read")
        .header(
            "traceparent",
            format!("00-{client_trace}-00f067aa0ba902b7-01"),
        )
        .header("tracestate", TRACESTATE)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_server_error(), "{}", answer.status());

    // The order service got the proxy's client span as parent, and the client's tracestate.
    let got = orders_got.lock().unwrap().clone();
    let in_trace = |h: &http::HeaderMap| {
        h.get("traceparent")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(&format!("00-{client_trace}-")))
    };
    let (_, headers) = got
        .iter()
        .find(|(_, h)| in_trace(h))
        .unwrap_or_else(|| panic!("the read reached the order service in the trace: {got:?}"));
    let traceparent = headers["traceparent"].to_str().unwrap();
    assert_eq!(headers["tracestate"], TRACESTATE);
    let trace = spans.of_trace(&client_trace);
    let server = trace
        .iter()
        .find(|s| s.kind == "server")
        .expect("the proxy's server span");
    assert_eq!(server.tracestate, TRACESTATE);
    assert_eq!(server.attr("order_number"), "4711");
    let call = trace
        .iter()
        .find(|s| s.kind == "client" && s.attr("peer.service") == "order-service")
        .expect("the client span toward the order service");
    assert_eq!(call.parent, server.span_id);
    assert_eq!(traceparent, call.traceparent());

    // The line saying why the request failed carries the request's fields.
    let lines = logs.parsed();
    let failed = lines
        .iter()
        .find(|l| {
            l["message"] == "request failed" && l["span"]["correlation_id"] == "corr-trace-read"
        })
        .unwrap_or_else(|| panic!("the failure was logged in the request's span: {lines:#?}"));
    assert_eq!(failed["span"]["name"], "request");
    assert_eq!(failed["span"]["order_number"], "4711");
    assert_eq!(failed["span"]["trace_id"], client_trace.as_str());
    assert_eq!(failed["span"]["span_id"], server.span_id.as_str());

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
}

/// A replay worker over a fresh store, calling the stand-ins.
fn worker(store: Store, orders_url: &str, sap_url: &str) -> ReplayWorker {
    ReplayWorker {
        keys: Keys::Local(store.clone()),
        store,
        orders: Arc::new(HttpOrderService::new(upstream("order-service", orders_url))),
        sap: SapClient::new(upstream("sap", sap_url), None),
        wakeup: Arc::default(),
        base: Duration::from_millis(10),
        max: Duration::from_millis(100),
        poll: Duration::from_millis(50),
        idempotency_ttl: Duration::from_secs(3600),
        rejection_reasons: Vec::new(),
    }
}

fn void(order_id: &str) -> ReplayKind {
    ReplayKind::VoidOrder {
        order_id: order_id.to_owned(),
        reason: "sap_unavailable".to_owned(),
    }
}

#[tokio::test]
async fn a_replayed_call_continues_the_trace_of_the_request_that_logged_it() {
    let spans = test_support::otel::collect();
    let (orders_url, orders_got) = stand_in(200).await;
    let (sap_url, _) = stand_in(503).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    // The entry is logged while the request's server span is in effect (its tracestate from
    // the client); the worker attempts it later, outside any request.
    let client_trace = format!("{:032x}", rand::random::<u128>() | 1);
    let client_traceparent = format!("00-{client_trace}-00f067aa0ba902b7-01");
    let server = platform::otel::start(
        "POST SalesOrderCreate",
        SpanKind::Server,
        Parent::Remote {
            traceparent: Some(&client_traceparent),
            tracestate: Some(TRACESTATE),
        },
        vec![KeyValue::new("test", "replay")],
    )
    .expect("traces are on");
    let entry = {
        let _in_request = server.context().attach();
        ReplayEntry::new(void("order-traced"), "sales-orders", "corr-replay")
    };
    assert_eq!(
        entry.traceparent.as_deref(),
        Some(server.traceparent().as_str())
    );
    assert_eq!(entry.tracestate.as_deref(), Some(TRACESTATE));
    let server_span_id = server.span_id();
    drop(server);
    store.put_replay(entry.clone()).await.unwrap();

    let w = worker(store.clone(), &orders_url, &sap_url);
    assert_eq!(w.run_once().await, 1);
    assert!(store.list_replays().await.unwrap().is_empty(), "landed");

    // One span for the attempt, a child of the request's span; the void is its client span,
    // and the order service got that span's traceparent and the trace's tracestate.
    let trace = spans.of_trace(&client_trace);
    let attempt = trace
        .iter()
        .find(|s| s.name == "replay void_order")
        .unwrap_or_else(|| panic!("the attempt's span in the request's trace: {trace:#?}"));
    assert_eq!(attempt.kind, "internal");
    assert_eq!(attempt.parent, server_span_id);
    assert_eq!(attempt.attr("replay.id"), entry.id);
    assert_eq!(attempt.attr("replay.outcome"), "landed");
    assert_eq!(attempt.attr("correlation_id"), "corr-replay");
    let call = trace
        .iter()
        .find(|s| s.kind == "client" && s.parent == attempt.span_id)
        .expect("the void's client span under the attempt");
    assert_eq!(call.attr("peer.service"), "order-service");
    let got = orders_got.lock().unwrap().clone();
    let (path, headers) = got
        .iter()
        .find(|(p, _)| p.ends_with("/order-traced/void"))
        .unwrap_or_else(|| panic!("the void reached the order service: {got:?}"));
    assert_eq!(path, "/api/v1/orders/order-traced/void");
    assert_eq!(headers["traceparent"].to_str().unwrap(), call.traceparent());
    assert_eq!(headers["tracestate"], TRACESTATE);
}

#[tokio::test]
async fn an_entry_without_a_trace_context_replays_in_a_trace_of_its_own() {
    let spans = test_support::otel::collect();
    let (orders_url, orders_got) = stand_in(200).await;
    let (sap_url, _) = stand_in(503).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // As logged with traces off, or by a proxy that did not store the trace context yet.
    let mut entry = ReplayEntry::new(void("order-untraced"), "sales-orders", "corr-old");
    assert_eq!(entry.traceparent, None, "no span in effect");
    entry.tracestate = None;
    store.put_replay(entry.clone()).await.unwrap();

    let w = worker(store.clone(), &orders_url, &sap_url);
    assert_eq!(w.run_once().await, 1);

    let attempt = spans
        .all()
        .into_iter()
        .find(|s| s.attr("replay.id") == entry.id)
        .expect("the attempt's span");
    assert_eq!(
        attempt.parent, "0000000000000000",
        "a root: a trace of its own"
    );
    let got = orders_got.lock().unwrap().clone();
    let (_, headers) = got
        .iter()
        .find(|(p, _)| p.ends_with("/order-untraced/void"))
        .expect("the void reached the order service");
    let traceparent = headers["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{}-", attempt.trace_id)),
        "{traceparent} in the attempt's trace"
    );
    assert!(headers.get("tracestate").is_none());
}
