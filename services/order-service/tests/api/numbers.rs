//! Reserved order numbers: a caller (the proxy) reserves numbers from the service's range,
//! names one in SAP and on create, and a repeated create naming it never makes a second order.

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, order_body, spawn_app};

async fn reserve(app: &TestApp, count: Value) -> (u16, Value) {
    let r = app
        .post_json("/api/v1/order-numbers", &json!({ "count": count }))
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn reserve_one(app: &TestApp) -> String {
    let (status, body) = reserve(app, json!(1)).await;
    assert_eq!(status, 201, "{body}");
    body["numbers"][0].as_str().unwrap().to_owned()
}

fn numbered(reference: &str, number: &str) -> Value {
    let mut body = order_body(reference);
    body["order_number"] = json!(number);
    body
}

#[tokio::test]
async fn reserved_numbers_are_ten_digit_ascending_strings_the_service_never_hands_out_itself() {
    let app = spawn_app().await;
    let (status, first) = reserve(&app, json!(5)).await;
    assert_eq!(status, 201, "{first}");
    let reserved: Vec<String> = first["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reserved.len(), 5);
    assert!(
        reserved
            .iter()
            .all(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
    );
    assert!(reserved.windows(2).all(|w| w[0] < w[1]), "{reserved:?}");
    assert!(reserved[0].as_str() >= "8000000000");

    let mut drawn = Vec::new();
    for i in 0..3 {
        let order = app.create(&order_body(&format!("OWN-{i}"))).await;
        drawn.push(order["order_number"].as_str().unwrap().to_owned());
    }
    let (_, second) = reserve(&app, json!(3)).await;
    let later: Vec<String> = second["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for n in drawn.iter().chain(&later) {
        assert!(
            !reserved.contains(n),
            "{n} was reserved and handed out again"
        );
    }

    for bad in [json!(0), json!(10_001), json!(-1), json!(null)] {
        let (status, p) = reserve(&app, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {p}");
        assert_eq!(p["errors"][0]["field"], "count", "{p}");
    }
    let (status, max) = reserve(&app, json!(10_000)).await;
    assert_eq!(status, 201);
    assert_eq!(max["numbers"].as_array().unwrap().len(), 10_000);
}

#[tokio::test]
async fn a_create_naming_a_reserved_number_keeps_it_and_a_repeat_replays_or_conflicts() {
    let app = spawn_app().await;
    let number = reserve_one(&app).await;
    let first = app.create(&numbered("NUM-1", &number)).await;
    assert_eq!(first["order_number"], number.as_str());

    let again = app
        .post_json("/api/v1/orders", &numbered("NUM-1", &number))
        .await;
    assert_eq!(again.status(), 200, "a replay by number answers 200");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first order again");

    let other = app
        .post_json("/api/v1/orders", &numbered("NUM-OTHER", &number))
        .await;
    assert_eq!(other.status(), 409);
    assert_eq!(other.headers()["content-type"], "application/problem+json");
    let p: Value = other.json().await.unwrap();
    assert_eq!(p["type"], "urn:order-service:problem:order-number-taken");
    assert_eq!(p["errors"][0]["field"], "order_number");
    assert_eq!(p["order_id"], first["id"]);
    assert_eq!(app.counts().await, (1, 2, 1), "one order, one event");
}

#[tokio::test]
async fn a_number_the_sequence_has_not_issued_conflicts_by_name_and_stores_nothing() {
    let app = spawn_app().await;
    let issued = reserve_one(&app).await;
    let beyond = format!("{:010}", issued.parse::<i64>().unwrap() + 1000);
    // Well-formed numbers the range never issued conflict with its state: 409.
    for (number, why) in [
        ("7999999999", "below the range"),
        (beyond.as_str(), "not issued yet"),
    ] {
        let r = app
            .post_json("/api/v1/orders", &numbered("BAD", number))
            .await;
        assert_eq!(r.status(), 409, "{why}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(
            p["type"], "urn:order-service:problem:order-number-not-reserved",
            "{why}: {p}"
        );
        assert_eq!(p["title"], "Order number not reserved", "{p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains(number) && detail.contains("was not reserved"),
            "{p}"
        );
        assert_eq!(p["errors"][0]["field"], "order_number", "{why}: {p}");
    }
    // A value that is no order number at all is invalid: 422.
    for (number, why) in [("12345", "not ten digits"), ("80000000ab", "not digits")] {
        let r = app
            .post_json("/api/v1/orders", &numbered("BAD", number))
            .await;
        assert_eq!(r.status(), 422, "{why}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "order_number", "{why}: {p}");
    }
    assert_eq!(app.counts().await, (0, 0, 0));
}

#[tokio::test]
async fn a_number_reserved_through_another_instance_is_accepted() {
    let app = spawn_app().await;
    app.create(&order_body("WARM-UP")).await; // this instance has seen numbers issued
    // Another replica reserves a block this instance never saw (straight from the sequence).
    let elsewhere: i64 = sqlx::query_scalar(
        "SELECT max(n) FROM (SELECT nextval('order_number_seq') AS n FROM generate_series(1, 200)) s",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let number = format!("{elsewhere:010}");
    let order = app.create(&numbered("ELSEWHERE", &number)).await;
    assert_eq!(order["order_number"], number.as_str());
}

#[tokio::test]
async fn a_named_number_from_this_instances_own_block_is_never_drawn_again() {
    let app = spawn_app().await;
    // The service draws numbers in blocks: the next one of its block is issued, so it may be
    // named (a caller should only name reserved ones; if one names this, nothing breaks).
    let first = app.create(&order_body("BLOCK-0")).await;
    let next = format!(
        "{:010}",
        first["order_number"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            + 1
    );
    let named = app.create(&numbered("BLOCK-NAMED", &next)).await;
    assert_eq!(named["order_number"], next.as_str());
    let after = app.create(&order_body("BLOCK-1")).await;
    assert_ne!(after["order_number"], next.as_str());
    assert_eq!(app.count("orders").await, 3);
}

#[tokio::test]
async fn concurrent_creates_naming_one_number_make_exactly_one_order_and_one_event() {
    let app = spawn_app().await;
    let number = reserve_one(&app).await;
    let send = |reference: String| {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/api/v1/orders"),
            numbered(&reference, &number),
        );
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let order: Value = r.json().await.unwrap();
            (status, order)
        }
    };
    // Same body twenty times at once: one creates, the others replay it.
    let same = join_all((0..20).map(|_| send("RACE".into()))).await;
    let created: Vec<_> = same.iter().filter(|(s, _)| *s == 201).collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        same.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        same.iter()
            .all(|(s, o)| (*s == 201 || *s == 200) && o["id"] == created[0].1["id"])
    );
    assert_eq!(app.counts().await, (1, 2, 1));

    // Different bodies at once on a fresh number: one wins, the others are refused.
    let number = reserve_one(&app).await;
    let send = |reference: String| {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/api/v1/orders"),
            numbered(&reference, &number),
        );
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mixed = join_all((0..10).map(|i| send(format!("RACE-{i}")))).await;
    assert_eq!(mixed.iter().filter(|s| **s == 201).count(), 1, "{mixed:?}");
    assert_eq!(mixed.iter().filter(|s| **s == 409).count(), 9, "{mixed:?}");
    assert_eq!(app.counts().await, (2, 4, 2));
}
