//! SAP Gateway's repeatable requests: off by default, and when enabled a repeated POST with the
//! same `RequestID` gets the first answer again instead of a second order.

mod common;

use common::{TestEmulator, order_body};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn repeatable_create(
    e: &TestEmulator,
    request_id: &str,
    po: &str,
) -> (StatusCode, Option<String>, Value) {
    let (token, cookie) = e.csrf().await;
    let r = e
        .request(Method::POST, "/A_SalesOrder")
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .header("RequestID", request_id)
        .header("RepeatabilityCreation", "2026-12-01T10:00:00")
        .body(order_body(po, &[("TG11", "1")]).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let result = r
        .headers()
        .get("repeatabilityresult")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, result, r.json().await.unwrap())
}

#[tokio::test]
async fn when_enabled_a_repeated_create_gets_the_first_answer_and_makes_no_second_order() {
    let e = TestEmulator::start_with(|c| c.repeatability = true).await;
    let id = "0123456789ABCDEF0123456789ABCDEF";
    let (s1, r1, b1) = repeatable_create(&e, id, "PO-REPEAT").await;
    let (s2, r2, b2) = repeatable_create(&e, id, "PO-REPEAT").await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(r1.as_deref(), Some("accepted"));
    assert_eq!(r2.as_deref(), Some("accepted"));
    assert_eq!(b1, b2, "the first answer again");
    assert_eq!(e.count().await, 1, "never a second order");
    // another request id is another request
    let (s3, _, b3) = repeatable_create(&e, "FEDCBA9876543210FEDCBA9876543210", "PO-REPEAT").await;
    assert_eq!(s3, StatusCode::CREATED);
    assert_ne!(b3["d"]["SalesOrder"], b1["d"]["SalesOrder"]);
    assert_eq!(e.count().await, 2);
    e.stop().await;
}

#[tokio::test]
async fn concurrent_repeats_of_one_request_id_make_one_order() {
    let e = std::sync::Arc::new(TestEmulator::start_with(|c| c.repeatability = true).await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            repeatable_create(&e, "AAAABBBBCCCCDDDDAAAABBBBCCCCDDDD", "PO-CONC").await
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        let (s, r, b) = t.await.unwrap();
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(r.as_deref(), Some("accepted"));
        numbers.push(b["d"]["SalesOrder"].as_str().unwrap().to_owned());
    }
    numbers.dedup();
    assert_eq!(numbers.len(), 1);
    assert_eq!(e.count().await, 1);
    let Ok(e) = std::sync::Arc::try_unwrap(e) else {
        panic!("emulator still shared")
    };
    e.stop().await;
}

#[tokio::test]
async fn by_default_the_headers_are_ignored_as_on_an_s4_where_nobody_enabled_them() {
    let e = TestEmulator::start().await;
    let id = "0123456789ABCDEF0123456789ABCDEF";
    let (_, r1, _) = repeatable_create(&e, id, "PO-OFF").await;
    let (s2, _, _) = repeatable_create(&e, id, "PO-OFF").await;
    assert_eq!(s2, StatusCode::CREATED);
    assert_eq!(r1, None);
    assert_eq!(e.count().await, 2, "SAP without repeatability duplicates");
    e.stop().await;
}
