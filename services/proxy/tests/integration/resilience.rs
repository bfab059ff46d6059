//! Body limit, slow clients, circuit breaker and load shedding, against the real stack.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_odata_413_and_reaches_neither_system() {
    let s = Stack::start(Options {
        proxy_env: vec![("PROXY_MAX_BODY_BYTES", "2000".into())],
        ..Options::default()
    })
    .await;
    let reference = unique("TOO-BIG");
    let mut body = order_body(&reference);
    body["SalesOrderText"] = json!("x".repeat(5000));
    let r = s.sdk_create(&s.proxy_url(), &body, &[]).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"]["message"]["value"].is_string());
    assert_eq!(s.sap_orders(&reference).await.len(), 0);
    assert_eq!(s.db_orders(&reference).await.len(), 0);
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408_and_nothing_is_created() {
    let s = Stack::start(Options {
        proxy_env: vec![("PROXY_CLIENT_BODY_TIMEOUT_MS", "500".into())],
        ..Options::default()
    })
    .await;
    let reference = unique("STALL");
    let body = serde_json::to_string(&order_body(&reference)).unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", s.proxy_port))
        .await
        .unwrap();
    let head = format!(
        "POST {ROOT}/A_SalesOrder HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..20]).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the proxy answers a stalled client")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(s.sap_orders(&reference).await.len(), 0);
    assert_eq!(s.db_orders(&reference).await.len(), 0);
}

#[tokio::test]
async fn a_client_that_sends_its_head_too_slowly_is_disconnected() {
    let s = Stack::start(Options {
        mode: "legacy",
        proxy_env: vec![("PROXY_CLIENT_HEADER_TIMEOUT_MS", "500".into())],
        ..Options::default()
    })
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", s.proxy_port))
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder HTTP/1.1\r\nHost: x\r\n",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn an_open_sap_breaker_fails_fast_instead_of_waiting_for_the_timeout() {
    let s = Stack::start(Options {
        mode: "legacy",
        proxy_env: vec![
            ("PROXY_BREAKER_FAILURES", "2".into()),
            ("PROXY_BREAKER_COOLDOWN_MS", "60000".into()),
            ("PROXY_SAP_TIMEOUT_MS", "800".into()),
        ],
        ..Options::default()
    })
    .await;
    s.sap_faults(json!({"hang_rate": 1.0, "hang_ms": 20000}))
        .await;
    let url = format!("{}{ROOT}/A_SalesOrder?$top=1", s.proxy_url());
    for _ in 0..2 {
        let started = Instant::now();
        let r = s.get(url.clone()).await;
        assert_eq!(r.status, 504);
        assert!(started.elapsed() >= Duration::from_millis(700));
    }
    // Open: the request never reaches SAP (the emulator holds no third hanging request).
    assert_eq!(s.sap_event_count("sap_mock_fault_hang").await, 2.0);
    let r = s.get(url).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(s.sap_event_count("sap_mock_fault_hang").await, 2.0);
    let counters = s
        .admin(
            reqwest::Method::GET,
            "/admin/v1/counters",
            None,
            Some(TOKEN),
        )
        .await
        .json();
    assert_eq!(counters["breakers"]["sap"], "Open");
    s.sap_faults(json!({})).await;
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_with_odata_503() {
    let s = Stack::start(Options {
        mode: "legacy",
        proxy_env: vec![("PROXY_MAX_CONCURRENCY", "2".into())],
        ..Options::default()
    })
    .await;
    s.sap_faults(json!({"latency_ms": 1500})).await;
    let url = format!("{}{ROOT}/A_SalesOrder?$top=1", s.proxy_url());
    let calls: Vec<_> = (0..6).map(|_| s.get(url.clone())).collect();
    let results = futures::future::join_all(calls).await;
    s.sap_faults(json!({})).await;
    let shed = results.iter().filter(|r| r.status == 503).count();
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok + shed, 6);
    assert!((1..=2).contains(&ok), "ok {ok}");
    assert!(shed >= 4, "shed {shed}");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_before_the_proxy_exits() {
    let mut s = Stack::start(Options {
        mode: "legacy",
        ..Options::default()
    })
    .await;
    s.sap_faults(json!({"latency_ms": 1500})).await;
    let url = format!("{}{ROOT}/A_SalesOrder?$top=1", s.proxy_url());
    let http = s.http.clone();
    let in_flight =
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) });
    test_support::eventually("the request is in flight", WAIT, || async {
        let c = s
            .admin(
                reqwest::Method::GET,
                "/admin/v1/counters",
                None,
                Some(TOKEN),
            )
            .await
            .json();
        (c["in_flight"] == 1).then_some(())
    })
    .await;
    let mut proxy = s.proxy.take().unwrap();
    let exited = tokio::task::spawn_blocking(move || proxy.terminate());
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "the in-flight request completed"
    );
    assert!(exited.await.unwrap(), "the proxy exited cleanly");
    assert!(
        TcpStream::connect(("127.0.0.1", s.proxy_port))
            .await
            .is_err(),
        "no new connections after shutdown"
    );
    s.sap_faults(json!({})).await;
}

#[tokio::test]
async fn pass_through_survives_sap_being_killed_and_restarted_without_a_failed_request_after() {
    let mut s = Stack::start(Options {
        mode: "legacy",
        ..Options::default()
    })
    .await;
    let url = format!("{}{ROOT}/A_SalesOrder?$top=1", s.proxy_url());
    // Fill the proxy's pools with several keep-alive connections to SAP.
    let warm = futures::future::join_all((0..8).map(|_| s.get(url.clone()))).await;
    assert!(warm.iter().all(|r| r.status == 200));
    // SAP dies outright: its pooled connections are now dead.
    s.sap.take().unwrap().kill_hard();
    let down = s.get(url.clone()).await;
    assert!(
        [502, 503].contains(&down.status),
        "status {} {:?}",
        down.status,
        down.body
    );
    assert!(
        down.json()["error"]["message"]["value"].is_string(),
        "an OData error: {:?}",
        down.body
    );
    s.start_sap().await;
    // Back: not one request may fail on a connection that died with the old process.
    let sequential = {
        let mut v = Vec::new();
        for _ in 0..20 {
            v.push(s.get(url.clone()).await.status);
        }
        v
    };
    let concurrent: Vec<u16> = futures::future::join_all((0..16).map(|_| s.get(url.clone())))
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(sequential.iter().all(|s| *s == 200), "{sequential:?}");
    assert!(concurrent.iter().all(|s| *s == 200), "{concurrent:?}");
}
