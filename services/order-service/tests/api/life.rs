//! The order's life after its create: header and line changes, line rejection, cancellation
//! and SAP's status reports. Every change is one transaction with one outbox event, checks the
//! caller's version (`If-Match`), and a refused change stores nothing (rows counted).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, order_body, spawn_app};

/// One answer: status, headers, JSON body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    if_match: Option<i64>,
    body: Option<Value>,
) -> Answer {
    let mut req = app.client.request(method, app.url(path));
    if let Some(v) = if_match {
        req = req.header("if-match", format!("W/\"{v}\""));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request reaches the service");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

/// Every event of one order, in version order, as it goes on the wire.
async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE aggregate_id = $1::uuid ORDER BY order_version",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

/// Asserts the event validates against its type's schema in crates/order-events.
fn assert_valid(event: &Value) {
    let event_type: order_events::EventType = event["type"].as_str().unwrap().parse().unwrap();
    let schema = order_events::schema::current_schema(event_type);
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{event:#}");
}

/// Rows of every table a change writes to, plus the order's version.
async fn state(app: &TestApp, id: &str) -> (i64, i64, i64, Value) {
    let (orders, items, outbox) = app.counts().await;
    let (_, order) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    (orders, items, outbox, order)
}

/// Two priced lines: 10 = 2 × 12.50 = 25.00, 20 = 1 × 10.00 = 10.00; total 35.00.
fn priced_body(reference: &str) -> Value {
    json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": reference,
           "items": [{"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "12.50"},
                     {"sku": "TG12", "quantity": "1", "unit": "PC", "unit_price": "10.00"}]})
}

async fn create(app: &TestApp, body: &Value) -> (String, String) {
    let o = app.create(body).await;
    (
        o["id"].as_str().unwrap().to_owned(),
        o["order_number"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn each_change_bumps_the_version_by_one_and_writes_one_event_naming_what_changed() {
    let app = spawn_app().await;
    let (id, _) = create(&app, &priced_body("LIFE-1")).await;
    let get = send(
        &app,
        Method::GET,
        &format!("/api/v1/orders/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(get.headers["etag"], "W/\"1\"");

    let a = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/orders/{id}"),
        Some(1),
        Some(json!({"requested_delivery_date": "2027-02-01", "customer_reference": "LIFE-1b"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["etag"], "W/\"2\"");
    assert_eq!(a.body["requested_delivery_date"], "2027-02-01");

    let a = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/orders/{id}/items/10"),
        Some(2),
        Some(json!({"quantity": "3"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["items"][0]["quantity"], "3");
    assert_eq!(a.body["items"][0]["net_amount"], "37.50");
    assert_eq!(a.body["total_net_amount"], "47.50");

    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{id}/items"),
        Some(3),
        Some(json!({"sku": "TG13", "quantity": "2", "unit": "PC", "unit_price": "1.25"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["items"][2]["item_number"], 30);
    assert_eq!(a.body["items"][2]["net_amount"], "2.50");
    assert_eq!(a.body["total_net_amount"], "50.00");
    assert_eq!(
        a.headers["location"],
        format!("/api/v1/orders/{id}/items/30").as_str()
    );

    let a = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/orders/{id}/items/30"),
        Some(4),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(a.body["total_net_amount"], "47.50");

    // A line added after a removal gets a new number, never the removed line's.
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{id}/items"),
        Some(5),
        Some(json!({"sku": "TG13", "quantity": "1", "unit": "PC"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["items"][2]["item_number"], 40);

    let a = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/orders/{id}/items/20"),
        Some(6),
        Some(json!({"rejection_reason": "01"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["items"][1]["rejection_reason"], "01");
    assert_eq!(a.body["version"], 7);

    let all = events(&app, &id).await;
    let summary: Vec<(String, i64, Value)> = all
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["data"]["version"].as_i64().unwrap(),
                e["data"]["changed_fields"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("order.created".into(), 1, Value::Null),
            (
                "order.updated".into(),
                2,
                json!(["customer_reference", "requested_delivery_date"])
            ),
            (
                "order.updated".into(),
                3,
                json!(["items", "total_net_amount"])
            ),
            (
                "order.updated".into(),
                4,
                json!(["items", "total_net_amount"])
            ),
            (
                "order.updated".into(),
                5,
                json!(["items", "total_net_amount"])
            ),
            ("order.updated".into(), 6, json!(["items"])),
            (
                "order.updated".into(),
                7,
                json!(["items", "total_net_amount"])
            ),
        ]
    );
    let last = &all[6]["data"];
    assert_eq!(last["items"][1]["rejection_reason"], "01");
    assert!(last["items"][0]["rejection_reason"].is_null());
    assert_eq!(
        last["total_net_amount"], "37.50",
        "the rejected line left out"
    );
    for e in &all {
        assert_valid(e);
    }
}

#[tokio::test]
async fn totals_leave_rejected_lines_out_and_count_them_again_once_reopened() {
    let app = spawn_app().await;
    let (id, _) = create(&app, &priced_body("TOT-1")).await;
    let path = format!("/api/v1/orders/{id}/items/20");
    let a = send(
        &app,
        Method::PATCH,
        &path,
        Some(1),
        Some(json!({"rejection_reason": "02"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["total_net_amount"], "25.00");
    assert_eq!(
        a.body["items"][1]["net_amount"], "10.00",
        "the line keeps its value"
    );
    // A rejected line's quantity changes as in S/4: still rejected, its amount follows, the
    // total still leaves it out.
    let a = send(
        &app,
        Method::PATCH,
        &path,
        Some(2),
        Some(json!({"quantity": "3"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["items"][1]["rejection_reason"], "02");
    assert_eq!(a.body["items"][1]["quantity"], "3");
    assert_eq!(a.body["items"][1]["net_amount"], "30.00");
    assert_eq!(a.body["total_net_amount"], "25.00");
    let a = send(
        &app,
        Method::PATCH,
        &path,
        Some(3),
        Some(json!({"rejection_reason": null, "quantity": "2"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["items"][1]["rejection_reason"].is_null());
    assert_eq!(a.body["items"][1]["net_amount"], "20.00");
    assert_eq!(a.body["total_net_amount"], "45.00");
    let stored: Option<rust_decimal::Decimal> =
        sqlx::query_scalar("SELECT total_net_amount FROM orders WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored.map(|d| d.to_string()).as_deref(), Some("45.00"));
}

#[tokio::test]
async fn cancelling_rejects_every_open_line_and_publishes_order_cancelled() {
    let app = spawn_app().await;
    let (id, _) = create(&app, &priced_body("CAN-1")).await;
    let a = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/orders/{id}/items/10"),
        Some(1),
        Some(json!({"rejection_reason": "01"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{id}/cancel"),
        Some(2),
        Some(json!({"reason": "customer withdrew"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["status"], "cancelled");
    assert_eq!(a.body["status_reason"], "customer withdrew");
    assert_eq!(a.body["items"][0]["rejection_reason"], "01", "kept");
    assert_eq!(a.body["items"][1]["rejection_reason"], "00", "the default");
    assert_eq!(a.body["total_net_amount"], "0");
    let all = events(&app, &id).await;
    let cancelled = all.last().unwrap();
    assert_eq!(cancelled["type"], "order.cancelled");
    assert_eq!(cancelled["data"]["version"], 3);
    assert_eq!(cancelled["data"]["previous_status"], "created");
    assert_eq!(cancelled["data"]["reason"], "customer withdrew");
    assert_eq!(cancelled["data"]["items"][1]["rejection_reason"], "00");
    assert_valid(cancelled);

    // By number, with the caller's own code.
    let (_, number) = create(&app, &priced_body("CAN-2")).await;
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/by-number/{number}/cancel"),
        Some(1),
        Some(json!({"rejection_reason": "Z1"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["items"][0]["rejection_reason"], "Z1");
    assert_eq!(a.body["items"][1]["rejection_reason"], "Z1");
}

#[tokio::test]
async fn sap_status_reports_apply_once_and_a_repeated_report_writes_no_event() {
    let app = spawn_app().await;
    let (id, _) = create(&app, &order_body("SAP-ST-1")).await;
    let path = format!("/api/v1/orders/{id}/status");
    let report = |status: &'static str| {
        let (app, path) = (&app, path.clone());
        async move {
            send(
                app,
                Method::POST,
                &path,
                None,
                Some(json!({"status": status, "source": "sap-sync"})),
            )
            .await
        }
    };
    let a = report("delivered").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.body["status"].as_str(), a.body["version"].as_i64()),
        (Some("delivered"), Some(2))
    );
    let outbox = app.count("outbox").await;
    let again = report("delivered").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["version"], 2);
    assert_eq!(
        app.count("outbox").await,
        outbox,
        "no event for a repeated fact"
    );

    let a = report("billed").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.body["status"].as_str(), a.body["version"].as_i64()),
        (Some("billed"), Some(3))
    );
    let late = report("delivered").await;
    assert_eq!(
        (late.status, late.body["status"].as_str()),
        (200, Some("billed")),
        "billed implies delivered"
    );

    let all = events(&app, &id).await;
    assert_eq!(all.len(), 3);
    for (e, (previous, status, version)) in all[1..]
        .iter()
        .zip([("created", "delivered", 2), ("delivered", "billed", 3)])
    {
        assert_eq!(e["type"], "order.status_changed");
        assert_eq!(e["data"]["previous_status"], previous);
        assert_eq!(e["data"]["status"], status);
        assert_eq!(e["data"]["version"], version);
        assert_valid(e);
    }

    // A stale If-Match on a report that would change something is refused; a cancelled order
    // takes no report; a status SAP does not report is a 422.
    let (other, number) = create(&app, &order_body("SAP-ST-2")).await;
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{other}/status"),
        Some(5),
        Some(json!({"status": "delivered"})),
    )
    .await;
    assert_eq!(a.status, 412, "{}", a.body);
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/by-number/{number}/status"),
        None,
        Some(json!({"status": "shipped"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body["errors"][0]["field"].as_str()),
        (422, Some("status"))
    );
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{other}/cancel"),
        Some(1),
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let before = app.counts().await;
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/by-number/{number}/status"),
        None,
        Some(json!({"status": "delivered"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body["type"].as_str()),
        (409, Some("urn:order-service:problem:illegal-transition"))
    );
    assert_eq!(app.counts().await, before);
}

/// What is sent, and the status and problem type expected.
type Refusal = (
    &'static str,
    Method,
    String,
    Option<i64>,
    Option<Value>,
    u16,
    &'static str,
);

#[tokio::test]
async fn refused_changes_answer_a_clear_problem_and_store_nothing() {
    let app = spawn_app().await;
    let (id, _) = create(&app, &priced_body("REF-1")).await;
    let item = format!("/api/v1/orders/{id}/items/10");
    // Line 20 rejected, so line 10 is the last open line.
    let a = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/orders/{id}/items/20"),
        Some(1),
        Some(json!({"rejection_reason": "01"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    let cases: Vec<Refusal> = vec![
        (
            "no If-Match",
            Method::PATCH,
            item.clone(),
            None,
            Some(json!({"quantity": "3"})),
            428,
            "precondition-required",
        ),
        (
            "stale If-Match",
            Method::PATCH,
            item.clone(),
            Some(1),
            Some(json!({"quantity": "3"})),
            412,
            "stale-version",
        ),
        (
            "stale If-Match on a header change",
            Method::PATCH,
            format!("/api/v1/orders/{id}"),
            Some(1),
            Some(json!({"customer_reference": "X"})),
            412,
            "stale-version",
        ),
        (
            "no If-Match on add",
            Method::POST,
            format!("/api/v1/orders/{id}/items"),
            None,
            Some(json!({"sku": "TG11", "quantity": "1", "unit": "PC"})),
            428,
            "precondition-required",
        ),
        (
            "no If-Match on cancel",
            Method::POST,
            format!("/api/v1/orders/{id}/cancel"),
            None,
            Some(json!({})),
            428,
            "precondition-required",
        ),
        (
            "unknown item",
            Method::PATCH,
            format!("/api/v1/orders/{id}/items/99"),
            Some(2),
            Some(json!({"quantity": "3"})),
            404,
            "item-not-found",
        ),
        (
            "unknown item removed",
            Method::DELETE,
            format!("/api/v1/orders/{id}/items/99"),
            Some(2),
            None,
            404,
            "item-not-found",
        ),
        (
            "quantity zero",
            Method::PATCH,
            item.clone(),
            Some(2),
            Some(json!({"quantity": "0"})),
            422,
            "validation-failed",
        ),
        (
            "quantity negative",
            Method::PATCH,
            item.clone(),
            Some(2),
            Some(json!({"quantity": "-1"})),
            422,
            "validation-failed",
        ),
        (
            "quantity as a number",
            Method::PATCH,
            item.clone(),
            Some(2),
            Some(json!({"quantity": 3})),
            422,
            "validation-failed",
        ),
        (
            "empty change",
            Method::PATCH,
            item.clone(),
            Some(2),
            Some(json!({})),
            422,
            "validation-failed",
        ),
        (
            "bad reason code",
            Method::PATCH,
            item.clone(),
            Some(2),
            Some(json!({"rejection_reason": "x"})),
            422,
            "validation-failed",
        ),
        (
            "added line with quantity zero",
            Method::POST,
            format!("/api/v1/orders/{id}/items"),
            Some(2),
            Some(json!({"sku": "TG11", "quantity": "0", "unit": "PC"})),
            422,
            "validation-failed",
        ),
        (
            "added line without a unit, material not in the master data",
            Method::POST,
            format!("/api/v1/orders/{id}/items"),
            Some(2),
            Some(json!({"sku": "TG99", "quantity": "1"})),
            409,
            "master-data-incomplete",
        ),
        (
            "last open line removed",
            Method::DELETE,
            item.clone(),
            Some(2),
            None,
            409,
            "last-open-item",
        ),
        (
            "item number not a number",
            Method::DELETE,
            format!("/api/v1/orders/{id}/items/ten"),
            Some(2),
            None,
            422,
            "validation-failed",
        ),
        (
            "unknown order",
            Method::PATCH,
            "/api/v1/orders/by-number/8999999999/items/10".into(),
            Some(1),
            Some(json!({"quantity": "3"})),
            404,
            "order-not-found",
        ),
    ];
    for (what, method, path, if_match, body, status, kind) in cases {
        let before = state(&app, &id).await;
        let a = send(&app, method, &path, if_match, body).await;
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert_eq!(
            a.headers["content-type"], "application/problem+json",
            "{what}"
        );
        assert_eq!(
            a.body["type"],
            format!("urn:order-service:problem:{kind}"),
            "{what}: {}",
            a.body
        );
        assert!(
            !a.body["detail"].as_str().unwrap_or("").is_empty(),
            "{what}"
        );
        assert_eq!(state(&app, &id).await, before, "{what} stored something");
    }
    let r = app
        .client
        .patch(app.url(&item))
        .header("if-match", "W/\"2\"")
        .header("content-type", "application/json")
        .body("{\"quantity\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "malformed JSON");

    // Delivered by SAP: no line can be rejected, changed or removed any more.
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{id}/status"),
        None,
        Some(json!({"status": "delivered"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    for (method, path, body) in [
        (
            Method::PATCH,
            item.clone(),
            Some(json!({"rejection_reason": "01"})),
        ),
        (Method::PATCH, item.clone(), Some(json!({"quantity": "1"}))),
        (
            Method::DELETE,
            format!("/api/v1/orders/{id}/items/20"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/orders/{id}/items"),
            Some(json!({"sku": "TG11", "quantity": "1", "unit": "PC"})),
        ),
    ] {
        let before = state(&app, &id).await;
        let a = send(&app, method.clone(), &path, Some(3), body).await;
        assert_eq!(
            (
                a.status,
                a.body["type"].as_str(),
                a.body["current_status"].as_str()
            ),
            (
                409,
                Some("urn:order-service:problem:order-fulfilled"),
                Some("delivered")
            ),
            "{method} {path}: {}",
            a.body
        );
        assert_eq!(
            state(&app, &id).await,
            before,
            "{method} {path} stored something"
        );
    }

    // Cancelled: nothing can be changed.
    let (other, _) = create(&app, &priced_body("REF-2")).await;
    let a = send(
        &app,
        Method::POST,
        &format!("/api/v1/orders/{other}/cancel"),
        Some(1),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/orders/{other}"),
            Some(json!({"customer_reference": "late"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/orders/{other}/items/10"),
            Some(json!({"quantity": "1"})),
        ),
        (
            Method::POST,
            format!("/api/v1/orders/{other}/cancel"),
            Some(json!({})),
        ),
    ] {
        let before = state(&app, &other).await;
        let a = send(&app, method.clone(), &path, Some(2), body).await;
        assert_eq!(a.status, 409, "{method} {path}: {}", a.body);
        assert_eq!(a.body["current_status"], "cancelled", "{}", a.body);
        assert_eq!(
            state(&app, &other).await,
            before,
            "{method} {path} stored something"
        );
    }
}

#[tokio::test]
async fn concurrent_changes_on_the_same_version_let_exactly_one_win() {
    let app = spawn_app().await;
    let (id, _) = create(&app, &priced_body("RACE-1")).await;
    let path = format!("/api/v1/orders/{id}/items/10");
    // Every attempt really changes the line (it holds 2): one asking for the quantity it
    // already has would be a no-op and answer 200 without a new version.
    let attempts = (3..=10).map(|q| {
        let (app, path) = (&app, path.clone());
        async move {
            send(
                app,
                Method::PATCH,
                &path,
                Some(1),
                Some(json!({"quantity": q.to_string()})),
            )
            .await
            .status
        }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412]);
    let all = events(&app, &id).await;
    assert_eq!(all.len(), 2, "one event for the one winner");
    assert_eq!(all[1]["data"]["version"], 2);
    let (_, order) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(order["version"], 2);
}

#[tokio::test]
async fn every_change_is_reachable_by_order_number() {
    let app = spawn_app().await;
    let (id, number) = create(&app, &priced_body("NUM-1")).await;
    let base = format!("/api/v1/orders/by-number/{number}");
    let steps: Vec<(Method, String, Option<Value>, u16)> = vec![
        (
            Method::PATCH,
            base.clone(),
            Some(json!({"customer_reference": "NUM-1b"})),
            200,
        ),
        (
            Method::POST,
            format!("{base}/items"),
            Some(json!({"sku": "TG13", "quantity": "1", "unit": "PC"})),
            201,
        ),
        (
            Method::PATCH,
            format!("{base}/items/30"),
            Some(json!({"quantity": "4"})),
            200,
        ),
        (Method::DELETE, format!("{base}/items/30"), None, 200),
        (
            Method::PATCH,
            format!("{base}/items/20"),
            Some(json!({"rejection_reason": "03"})),
            200,
        ),
    ];
    for (version, (method, path, body, status)) in (1..).zip(steps) {
        let a = send(&app, method.clone(), &path, Some(version), body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        assert_eq!(a.body["id"], id.as_str());
        assert_eq!(a.body["version"], version + 1);
    }
    let a = send(
        &app,
        Method::POST,
        &format!("{base}/status"),
        None,
        Some(json!({"status": "delivered"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("delivered"))
    );
    assert_eq!(events(&app, &id).await.len(), 7);
}

#[tokio::test]
async fn the_version_look_up_tells_each_order_s_current_version_and_refuses_bad_ids() {
    let app = spawn_app().await;
    let (a, _) = create(&app, &priced_body("VERS-1")).await;
    let (b, _) = create(&app, &priced_body("VERS-2")).await;
    let changed = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/orders/{b}"),
        Some(1),
        Some(json!({"customer_reference": "VERS-2b"})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let unknown = uuid::Uuid::new_v4().to_string();
    let before = app.counts().await;
    let r = send(
        &app,
        Method::POST,
        "/api/v1/order-versions",
        None,
        Some(json!({"order_ids": [a, b, unknown, a]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut got: Vec<(String, i64)> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["order_id"].as_str().unwrap().to_owned(),
                v["version"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![(a.clone(), 1), (b.clone(), 2)];
    want.sort();
    assert_eq!(
        got, want,
        "unknown ids are left out, a repeated id answered once"
    );

    for (body, field) in [
        (json!({}), "order_ids"),
        (json!({"order_ids": []}), "order_ids"),
        (json!({"order_ids": [a, "not-a-uuid"]}), "order_ids[1]"),
        (json!({"order_ids": [42]}), "order_ids[0]"),
        (
            json!({"order_ids": vec![unknown.clone(); 501]}),
            "order_ids",
        ),
    ] {
        let r = send(
            &app,
            Method::POST,
            "/api/v1/order-versions",
            None,
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{body}"
        );
        assert!(
            r.body.to_string().contains(field),
            "{field} not named: {}",
            r.body
        );
    }
    assert_eq!(app.counts().await, before, "a look-up stores nothing");
}

/// A changeset (`POST /api/v1/changesets`) applies every change or none: two orders changed in
/// one transaction, each change a version and an event of its own, every change of an order
/// naming the version the order had when the changeset began; a changeset whose last change
/// is refused stores nothing (rows, versions and events counted) and names the change.
#[tokio::test]
async fn a_changeset_applies_every_change_or_none() {
    let app = spawn_app().await;
    let (a, a_number) = create(&app, &priced_body("CS-A")).await;
    let (b, _) = create(&app, &priced_body("CS-B")).await;
    let set = |changes: Value| json!({ "changes": changes });
    let answer = send(
        &app,
        Method::POST,
        "/api/v1/changesets",
        None,
        Some(set(json!([
            {"op": "update_item", "order": a_number, "version": 1, "item_number": 10,
             "changes": {"quantity": "4"}},
            {"op": "update_item", "order": a, "version": 1, "item_number": 20,
             "changes": {"rejection_reason": "01"}},
            {"op": "add_item", "order": b, "version": 1,
             "line": {"sku": "TG11", "quantity": "1", "unit": "PC", "unit_price": "12.50"}},
            {"op": "update_order", "order": b, "version": 1,
             "changes": {"customer_reference": "CS-B2"}},
        ]))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let orders = answer.body["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 4);
    assert_eq!(orders[0]["version"], 2);
    assert_eq!(orders[1]["version"], 3);
    assert_eq!(orders[1]["total_net_amount"], "50.00");
    assert_eq!(orders[2]["items"].as_array().unwrap().len(), 3);
    assert_eq!(orders[3]["version"], 3);
    assert_eq!(orders[3]["customer_reference"], "CS-B2");
    assert_eq!(events(&app, &a).await.len(), 3, "created + two updates");
    assert_eq!(events(&app, &b).await.len(), 3, "created + two updates");

    // The last change is refused (a stale version): nothing of the changeset is stored.
    let before_a = state(&app, &a).await;
    let before_b = state(&app, &b).await;
    let answer = send(
        &app,
        Method::POST,
        "/api/v1/changesets",
        None,
        Some(set(json!([
            {"op": "update_item", "order": a, "version": 3, "item_number": 10,
             "changes": {"quantity": "9"}},
            {"op": "remove_item", "order": b, "version": 3, "item_number": 30},
            {"op": "update_order", "order": b, "version": 2,
             "changes": {"customer_reference": "NEVER"}},
        ]))),
    )
    .await;
    assert_eq!(answer.status, 412, "{}", answer.body);
    assert_eq!(answer.body["change_index"], 2, "{}", answer.body);
    assert_eq!(state(&app, &a).await, before_a);
    assert_eq!(state(&app, &b).await, before_b);

    // A change refused by its own rules names its field within the changeset; nothing stored.
    let answer = send(
        &app,
        Method::POST,
        "/api/v1/changesets",
        None,
        Some(set(json!([
            {"op": "update_item", "order": a, "version": 3, "item_number": 10,
             "changes": {"quantity": "9"}},
            {"op": "update_item", "order": a, "version": 3, "item_number": 20,
             "changes": {"quantity": "0"}},
        ]))),
    )
    .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.body["change_index"], 1, "{}", answer.body);
    assert_eq!(answer.body["errors"][0]["field"], "changes[1].quantity");
    assert_eq!(state(&app, &a).await, before_a);

    // An unknown line, no version, an empty changeset: refused, nothing stored.
    for (changes, status) in [
        (
            json!([{"op": "remove_item", "order": a, "version": 3, "item_number": 90}]),
            404,
        ),
        (
            json!([{"op": "update_item", "order": a, "item_number": 10,
                    "changes": {"quantity": "9"}}]),
            428,
        ),
        (json!([]), 422),
        (json!([{"op": "explode", "order": a, "version": 3}]), 422),
    ] {
        let answer = send(
            &app,
            Method::POST,
            "/api/v1/changesets",
            None,
            Some(set(changes.clone())),
        )
        .await;
        assert_eq!(answer.status, status, "{changes}: {}", answer.body);
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{changes}"
        );
    }
    assert_eq!(state(&app, &a).await, before_a);
    assert_eq!(state(&app, &b).await, before_b);
}

/// Two changesets over the same two orders, in opposite order, at the same instant: the orders
/// are locked in one order, so one waits for the other and then finds its versions moved (412);
/// never a deadlock (a 5xx), never both applied.
#[tokio::test]
async fn crossing_changesets_over_the_same_orders_never_deadlock() {
    let app = spawn_app().await;
    for round in 0..8 {
        let (a, _) = create(&app, &priced_body(&format!("X-A-{round}"))).await;
        let (b, _) = create(&app, &priced_body(&format!("X-B-{round}"))).await;
        let change = |id: &str, q: &str| {
            json!({"op": "update_item", "order": id, "version": 1, "item_number": 10,
                   "changes": {"quantity": q}})
        };
        let one = json!({"changes": [change(&a, "3"), change(&b, "3")]});
        let two = json!({"changes": [change(&b, "4"), change(&a, "4")]});
        let (x, y) = tokio::join!(
            send(&app, Method::POST, "/api/v1/changesets", None, Some(one)),
            send(&app, Method::POST, "/api/v1/changesets", None, Some(two)),
        );
        let mut statuses = [x.status, y.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 412],
            "round {round}: {} / {}",
            x.body,
            y.body
        );
        let (_, _, _, order_a) = state(&app, &a).await;
        let (_, _, _, order_b) = state(&app, &b).await;
        assert_eq!(order_a["version"], 2);
        assert_eq!(
            order_a["items"][0]["quantity"], order_b["items"][0]["quantity"],
            "one changeset applied whole"
        );
    }
}

/// An Idempotency-Key sent on a changeset names no one change: two lines added in one
/// changeset are both added (the key would have made the second a silent repeat of the first).
#[tokio::test]
async fn a_changeset_with_an_idempotency_key_adds_every_line_it_names() {
    let app = spawn_app().await;
    let (a, _) = create(&app, &priced_body("CS-KEY")).await;
    let add = |sku: &str| {
        json!({"op": "add_item", "order": a, "version": 1,
               "line": {"sku": sku, "quantity": "1", "unit": "PC", "unit_price": "1.00"}})
    };
    let r = app
        .client
        .post(app.url("/api/v1/changesets"))
        .header("idempotency-key", "one-key-two-adds")
        .json(&json!({"changes": [add("TG11"), add("TG12")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, _, order) = state(&app, &a).await;
    assert_eq!(order["items"].as_array().unwrap().len(), 4, "{order}");
    assert_eq!(events(&app, &a).await.len(), 3, "created + two adds");
}
