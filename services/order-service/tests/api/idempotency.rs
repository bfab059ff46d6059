//! Client retries never create a second order.

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::{order_body, spawn_app};

#[tokio::test]
async fn two_hundred_concurrent_creates_with_fifty_keys_leave_exactly_fifty_orders() {
    let app = spawn_app().await;
    let requests = (0..200).map(|i| {
        let key = format!("key-{}", i % 50);
        let body = order_body(&format!("IDEM-{}", i % 50));
        let client = app.client.clone();
        let url = app.url("/api/v1/orders");
        async move {
            let r = client
                .post(url)
                .header("idempotency-key", &key)
                .json(&body)
                .send()
                .await
                .expect("request reaches the service");
            let status = r.status().as_u16();
            let replayed = r.headers().contains_key("idempotent-replayed");
            let order: Value = r.json().await.unwrap();
            (
                key,
                status,
                replayed,
                order["id"].as_str().unwrap_or("").to_owned(),
            )
        }
    });
    let results = join_all(requests).await;
    assert!(
        results.iter().all(|(_, s, _, _)| *s == 201),
        "{:?}",
        results.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    assert_eq!(
        results.iter().filter(|r| !r.2).count(),
        50,
        "exactly one fresh create per key"
    );
    // Every answer for one key names the same order.
    let mut by_key = std::collections::HashMap::new();
    for (key, _, _, id) in &results {
        let first = by_key.entry(key.clone()).or_insert_with(|| id.clone());
        assert_eq!(first, id, "{key} answered with two orders");
    }
    assert_eq!(app.count("orders").await, 50);
    assert_eq!(app.count("order_items").await, 100);
    assert_eq!(app.count("outbox").await, 50);
}

#[tokio::test]
async fn a_reused_key_with_another_body_is_refused_and_stores_nothing() {
    let app = spawn_app().await;
    let send = |reference: &str| {
        app.client
            .post(app.url("/api/v1/orders"))
            .header("idempotency-key", "same-key")
            .json(&order_body(reference))
            .send()
    };
    let first = send("A").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send("B").await.unwrap();
    assert_eq!(
        second.status(),
        409,
        "a conflict with the order the key belongs to"
    );
    let p: Value = second.json().await.unwrap();
    assert_eq!(
        p["type"],
        "urn:order-service:problem:idempotency-key-reused"
    );
    assert_eq!(p["order_id"], first["id"]);
    assert_eq!(app.counts().await, (1, 2, 1));
}

#[tokio::test]
async fn a_correlation_id_never_deduplicates_two_orders_sent_with_it_are_both_created() {
    let app = spawn_app().await;
    let send = |reference: &str| {
        app.client
            .post(app.url("/api/v1/orders"))
            .header("x-correlation-id", "one-trace-for-a-session")
            .json(&order_body(reference))
            .send()
    };
    // Two different orders, then the first body once more: a correlation id is for tracing
    // only, so each is a new order (only an Idempotency-Key or a reserved number dedupes).
    let mut ids = Vec::new();
    for reference in ["CORR-A", "CORR-B", "CORR-A"] {
        let r = send(reference).await.unwrap();
        assert_eq!(r.status(), 201, "{reference}");
        assert!(!r.headers().contains_key("idempotent-replayed"));
        let order: Value = r.json().await.unwrap();
        assert_eq!(order["correlation_id"], "one-trace-for-a-session");
        assert_eq!(order["customer_reference"], reference);
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct orders");
    assert_eq!(app.counts().await, (3, 6, 3));
    // Still found by it, for tracing.
    let traced: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE correlation_id = $1")
        .bind("one-trace-for-a-session")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(traced, 3);
}
