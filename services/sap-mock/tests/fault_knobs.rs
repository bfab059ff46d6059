//! Each fault knob does what it says: latency (base, jitter, heavy tail), injected 500/503,
//! hangs, full outage (503 or dropped connections), lost responses after commit, the
//! connection limit; and all of them change at runtime through the admin endpoint.

mod common;

use std::time::{Duration, Instant};

use common::{TestEmulator, assert_odata_error, eventually, order_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn timed(e: &TestEmulator, path: &str) -> (StatusCode, Duration) {
    let start = Instant::now();
    let r = e.get(path).await;
    (r.status(), start.elapsed())
}

/// A create sent with a token fetched beforehand (so the fetch itself is not faulted).
async fn post_with(
    e: &TestEmulator,
    csrf: &(String, String),
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    e.request(Method::POST, "/A_SalesOrder")
        .header("x-csrf-token", &csrf.0)
        .header("cookie", &csrf.1)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
}

#[tokio::test]
async fn added_latency_delays_odata_requests_but_not_the_admin_endpoint() {
    let e = TestEmulator::start().await;
    let (_, before) = timed(&e, "/A_SalesOrder/$count").await;
    e.set_faults(json!({"latency_ms": 1000})).await;
    let (status, slow) = timed(&e, "/A_SalesOrder/$count").await;
    assert_eq!(status, StatusCode::OK);
    assert!(slow >= Duration::from_millis(1000), "{slow:?}");
    let start = Instant::now();
    let admin = e.admin(Method::GET, "/sap-mock/admin/faults", None).await;
    assert_eq!(admin.status(), StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "admin is never delayed"
    );
    assert!(before < Duration::from_millis(1000));
}

#[tokio::test]
async fn jitter_and_the_heavy_tail_add_their_share_of_latency() {
    let e = TestEmulator::start().await;
    e.set_faults(json!({"latency_ms": 100, "latency_jitter_ms": 100}))
        .await;
    for _ in 0..3 {
        let (_, d) = timed(&e, "/A_SalesOrder/$count").await;
        assert!(d >= Duration::from_millis(100), "{d:?}");
    }
    e.set_faults(
        json!({"latency_ms": 0, "latency_jitter_ms": 0, "tail_rate": 1.0, "tail_ms": 800}),
    )
    .await;
    let (status, d) = timed(&e, "/A_SalesOrder/$count").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        d >= Duration::from_millis(800),
        "tail at least its scale: {d:?}"
    );
    e.set_faults(json!({"tail_rate": 0.0})).await;
    let (_, d) = timed(&e, "/A_SalesOrder/$count").await;
    assert!(d < Duration::from_millis(800), "{d:?}");
}

#[tokio::test]
async fn injected_errors_answer_500_or_503_before_any_work_so_nothing_is_stored() {
    let e = TestEmulator::start().await;
    let csrf = e.csrf().await;
    let body = order_body("ERR", &[("TG11", "1")]);
    e.set_faults(json!({"error_rate": 1.0, "error_status": "500"}))
        .await;
    let r = post_with(&e, &csrf, &body).await.unwrap();
    assert_odata_error(r, StatusCode::INTERNAL_SERVER_ERROR).await;
    e.set_faults(json!({"error_status": "503"})).await;
    let r = post_with(&e, &csrf, &body).await.unwrap();
    assert_odata_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    e.set_faults(json!({"error_status": "mixed"})).await;
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.push(e.get("/A_SalesOrder").await.status());
    }
    assert!(
        seen.contains(&StatusCode::INTERNAL_SERVER_ERROR)
            && seen.contains(&StatusCode::SERVICE_UNAVAILABLE)
    );
    assert!(seen.iter().all(|s| s.is_server_error()));
    e.set_faults(json!({"error_rate": 0.0})).await;
    assert_eq!(e.count().await, 0, "no injected error stored an order");
    assert_eq!(
        post_with(&e, &csrf, &body).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(e.count().await, 1);
}

#[tokio::test]
async fn a_hang_holds_the_request_past_the_callers_timeout_while_admin_stays_responsive() {
    let e = TestEmulator::start().await;
    e.set_faults(json!({"hang_rate": 1.0, "hang_ms": 20000}))
        .await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let start = Instant::now();
    let r = impatient
        .get(e.url("/A_SalesOrder"))
        .header("accept", "application/json")
        .send()
        .await;
    let err = r.expect_err("the caller times out");
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let admin = e.admin(Method::GET, "/sap-mock/admin/stats", None).await;
    assert_eq!(admin.status(), StatusCode::OK);
    e.set_faults(json!({"hang_rate": 0.0})).await;
    assert_eq!(e.get("/A_SalesOrder").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_create_whose_caller_timed_out_during_a_hang_is_still_committed_like_on_sap() {
    let e = TestEmulator::start().await;
    let csrf = e.csrf().await;
    e.set_faults(json!({"hang_rate": 1.0, "hang_ms": 700}))
        .await;
    let caller = tokio::spawn({
        let c = e.client.clone();
        let url = e.url("/A_SalesOrder");
        let body = serde_json::to_vec(&order_body("TIMED-OUT", &[("TG11", "1")])).unwrap();
        async move {
            c.post(url)
                .header("x-csrf-token", &csrf.0)
                .header("cookie", &csrf.1)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
        }
    });
    // the create is held by the hang; then its caller gives up and hangs up
    eventually(Duration::from_secs(5), async || {
        e.state.hanging.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    e.set_faults(json!({"hang_rate": 0.0})).await;
    eventually(Duration::from_secs(10), async || e.count().await == 1).await;
}

#[tokio::test]
async fn shutting_down_answers_hung_requests_at_once_instead_of_waiting_out_the_hang() {
    let e = TestEmulator::start().await;
    e.set_faults(json!({"hang_rate": 1.0, "hang_ms": 60000}))
        .await;
    let hung = tokio::spawn({
        let c = e.client.clone();
        let url = e.url("/A_SalesOrder");
        async move { c.get(url).send().await }
    });
    eventually(Duration::from_secs(5), async || {
        e.state.hanging.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let start = Instant::now();
    let state = e.state.clone();
    e.stop().await;
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let answered = hung
        .await
        .unwrap()
        .expect("the hung request is answered on shutdown");
    assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(state.hanging.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_full_outage_answers_503_or_drops_connections_and_admin_brings_it_back() {
    let e = TestEmulator::start().await;
    e.set_faults(json!({"outage": "unavailable"})).await;
    assert_odata_error(
        e.get("/A_SalesOrder").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let head = e
        .request(Method::HEAD, "/A_SalesOrder/")
        .header("x-csrf-token", "Fetch")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
    e.set_faults(json!({"outage": "reset"})).await;
    let dropped = e.request(Method::GET, "/A_SalesOrder").send().await;
    let err = dropped.expect_err("connection dropped without an answer");
    assert!(!err.is_timeout() && err.status().is_none(), "{err}");
    e.set_faults(json!({"outage": "off"})).await;
    assert_eq!(e.get("/A_SalesOrder").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_lost_response_commits_the_order_then_drops_the_connection_leaving_exactly_one_order() {
    let e = TestEmulator::start().await;
    let csrf = e.csrf().await;
    let body = order_body("LOST-1", &[("TG11", "3")]);
    e.set_faults(json!({"lost_response_rate": 1.0})).await;
    // reads are never lost
    assert_eq!(e.get("/A_SalesOrder").await.status(), StatusCode::OK);
    let lost = post_with(&e, &csrf, &body).await;
    let err = lost.expect_err("the caller never gets an answer");
    assert!(err.status().is_none(), "{err}");
    e.set_faults(json!({"lost_response_rate": 0.0})).await;
    assert_eq!(
        e.count().await,
        1,
        "the order was committed although the answer was lost"
    );
    let v = e
        .get_json("/A_SalesOrder?$filter=PurchaseOrderByCustomer%20eq%20'LOST-1'&$expand=to_Item")
        .await;
    let found = v["d"]["results"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["TotalNetAmount"], "37.50");
    // a naive retry (no lookup first) makes the duplicate real SAP would make
    let retry = post_with(&e, &e.csrf().await, &body).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(e.count().await, 2);
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503_until_one_closes() {
    let e = TestEmulator::start().await;
    // a client that keeps no idle connection, so only the connections below are open
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let get = async || {
        fresh
            .get(e.url("/A_SalesOrder"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
    };
    let r = fresh
        .patch(format!("{}/sap-mock/admin/faults", e.base))
        .json(&json!({"max_connections": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let addr = e.base.trim_start_matches("http://").to_owned();
    let held = tokio::net::TcpStream::connect(&addr).await.unwrap();
    eventually(Duration::from_secs(5), async || {
        get().await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let r = get().await;
    let connection = r
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_odata_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(connection.as_deref(), Some("close"));
    // the admin endpoint still answers on an over-limit connection
    let admin = fresh
        .get(format!("{}/sap-mock/admin/faults", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    drop(held);
    eventually(Duration::from_secs(5), async || {
        get().await.status() == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn fault_knobs_change_at_runtime_through_the_admin_endpoint() {
    let e = TestEmulator::start_with(|c| c.faults.latency_ms = 1).await;
    let current: Value = e
        .admin(Method::GET, "/sap-mock/admin/faults", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current["latency_ms"], 1);
    assert_eq!(current["outage"], "off");
    let patched: Value = e
        .admin(
            Method::PATCH,
            "/sap-mock/admin/faults",
            Some(json!({"error_rate": 0.25})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["error_rate"], 0.25);
    assert_eq!(patched["latency_ms"], 1, "PATCH keeps the other knobs");
    let put: Value = e
        .admin(
            Method::PUT,
            "/sap-mock/admin/faults",
            Some(json!({"latency_ms": 7})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(put["latency_ms"], 7);
    assert_eq!(put["error_rate"], 0.0, "PUT replaces every knob");
    for bad in [
        json!({"error_rate": 2}),
        json!({"no_such_knob": 1}),
        json!({"outage": "maybe"}),
        json!({"max_connections": 0}),
    ] {
        let r = e
            .admin(Method::PATCH, "/sap-mock/admin/faults", Some(bad.clone()))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let still: Value = e
        .admin(Method::GET, "/sap-mock/admin/faults", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["latency_ms"], 7, "refused changes change nothing");
    let reset: Value = e
        .admin(Method::DELETE, "/sap-mock/admin/faults", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        reset["latency_ms"], 1,
        "reset returns to the start settings"
    );
    let stats: Value = e
        .admin(Method::GET, "/sap-mock/admin/stats", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["orders"], 0);
    assert_eq!(stats["next_sales_order"], "1000001");
}

#[tokio::test]
async fn knobs_set_at_start_apply_at_once_and_an_admin_token_guards_the_endpoint() {
    let e = TestEmulator::start_with(|c| {
        c.faults.error_rate = 1.0;
        c.faults.error_status = sap_mock::faults::ErrorStatus::Unavailable;
        c.admin_token = Some("t0k3n".into());
    })
    .await;
    assert_eq!(
        e.get("/A_SalesOrder").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let denied = e
        .admin(
            Method::PATCH,
            "/sap-mock/admin/faults",
            Some(json!({"error_rate": 0})),
        )
        .await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let allowed = e
        .client
        .patch(format!("{}/sap-mock/admin/faults", e.base))
        .bearer_auth("t0k3n")
        .json(&json!({"error_rate": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(e.get("/A_SalesOrder").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_created_orders_refusals_and_injected_faults() {
    let e = TestEmulator::start().await;
    e.create_ok(&order_body("METRICS", &[("TG11", "1")])).await;
    let r = e.get("/A_SalesOrder?$top=x").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    e.set_faults(json!({"error_rate": 1.0})).await;
    assert!(e.get("/A_SalesOrder").await.status().is_server_error());
    let text = e
        .admin(Method::GET, "/metrics", None)
        .await
        .text()
        .await
        .unwrap();
    for event in [
        "sap_mock_order_created",
        "sap_mock_request_refused",
        "sap_mock_fault_error",
    ] {
        assert!(
            text.contains(&format!("sap_mock_events_total{{event=\"{event}\"}}")),
            "{event} missing in:\n{text}"
        );
    }
    assert!(text.contains("http_requests_total"), "{text}");
}
