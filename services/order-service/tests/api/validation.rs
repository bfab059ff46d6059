//! Bad input: each case gets a 4xx problem+json naming the field, and nothing is stored
//! (proved by counting rows in orders, order_items and outbox after every case).

use serde_json::{Value, json};

use crate::helpers::{TestApp, order_body, spawn_app, spawn_app_with};

/// A body derived from the valid example by one change.
fn with(change: impl FnOnce(&mut Value)) -> String {
    let mut body = order_body("BAD-1");
    change(&mut body);
    body.to_string()
}

struct Case {
    name: &'static str,
    body: String,
    content_type: &'static str,
    status: u16,
    field: &'static str,
}

fn case(name: &'static str, body: String, status: u16, field: &'static str) -> Case {
    Case {
        name,
        body,
        content_type: "application/json",
        status,
        field,
    }
}

fn cases() -> Vec<Case> {
    let many_items: Vec<Value> = (0..251)
        .map(|_| json!({"sku": "TG11", "quantity": "1", "unit": "PC"}))
        .collect();
    vec![
        case("malformed JSON", "{\"customer_id\": ".into(), 400, "body"),
        case("not JSON at all", "customer_id=1".into(), 400, "body"),
        case(
            "an array instead of an object",
            "[1, 2]".into(),
            422,
            "body",
        ),
        case(
            "missing customer_id",
            with(|b| {
                b.as_object_mut().unwrap().remove("customer_id");
            }),
            422,
            "customer_id",
        ),
        case(
            "customer_id of the wrong type",
            with(|b| b["customer_id"] = json!(17100001)),
            422,
            "customer_id",
        ),
        case(
            "empty customer_id",
            with(|b| b["customer_id"] = json!("")),
            422,
            "customer_id",
        ),
        case(
            "customer_id too long",
            with(|b| b["customer_id"] = json!("12345678901")),
            422,
            "customer_id",
        ),
        // Valid, but no master data to fill the currency in: a conflict with the stored state.
        case(
            "missing currency, customer not in the master data",
            with(|b| {
                b.as_object_mut().unwrap().remove("currency");
            }),
            409,
            "currency",
        ),
        case(
            "unknown currency",
            with(|b| b["currency"] = json!("XYZ")),
            422,
            "currency",
        ),
        case(
            "lower-case currency",
            with(|b| b["currency"] = json!("eur")),
            422,
            "currency",
        ),
        case(
            "customer_reference too long",
            with(|b| b["customer_reference"] = json!("R".repeat(36))),
            422,
            "customer_reference",
        ),
        case(
            "missing items",
            with(|b| {
                b.as_object_mut().unwrap().remove("items");
            }),
            422,
            "items",
        ),
        case("no items", with(|b| b["items"] = json!([])), 422, "items"),
        case(
            "too many items",
            with(|b| b["items"] = json!(many_items)),
            422,
            "items",
        ),
        case(
            "item without sku",
            with(|b| {
                b["items"][1].as_object_mut().unwrap().remove("sku");
            }),
            422,
            "items[1].sku",
        ),
        case(
            "sku too long",
            with(|b| b["items"][0]["sku"] = json!("S".repeat(41))),
            422,
            "items[0].sku",
        ),
        case(
            "zero quantity",
            with(|b| b["items"][0]["quantity"] = json!("0")),
            422,
            "items[0].quantity",
        ),
        case(
            "negative quantity",
            with(|b| b["items"][1]["quantity"] = json!("-3")),
            422,
            "items[1].quantity",
        ),
        case(
            "quantity that is not a number",
            with(|b| b["items"][0]["quantity"] = json!("two")),
            422,
            "items[0].quantity",
        ),
        case(
            "quantity as a JSON number",
            with(|b| b["items"][0]["quantity"] = json!(2)),
            422,
            "items[0].quantity",
        ),
        case(
            "quantity with four decimals",
            with(|b| b["items"][0]["quantity"] = json!("1.0001")),
            422,
            "items[0].quantity",
        ),
        case(
            "unit too long",
            with(|b| b["items"][0]["unit"] = json!("PIECE")),
            422,
            "items[0].unit",
        ),
        case(
            "negative unit price",
            with(|b| b["items"][0]["unit_price"] = json!("-12.50")),
            422,
            "items[0].unit_price",
        ),
        case(
            "specifications not an object",
            with(|b| b["items"][0]["specifications"] = json!("red")),
            422,
            "items[0].specifications",
        ),
        case(
            "impossible delivery date",
            with(|b| b["requested_delivery_date"] = json!("2026-13-45")),
            422,
            "requested_delivery_date",
        ),
        case(
            "unknown top-level field",
            with(|b| b["customer"] = json!("17100001")),
            422,
            "customer",
        ),
        case(
            "unknown item field",
            with(|b| b["items"][0]["price"] = json!("1")),
            422,
            "items[0].price",
        ),
        Case {
            name: "wrong content type",
            body: order_body("CT-1").to_string(),
            content_type: "text/plain",
            status: 415,
            field: "content-type",
        },
    ]
}

async fn assert_nothing_stored(app: &TestApp, case: &str) {
    assert_eq!(app.counts().await, (0, 0, 0), "{case}: rows were written");
}

async fn check(app: &TestApp, c: &Case) {
    let r = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("content-type", c.content_type)
        .body(c.body.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    let problem: Value = r.json().await.unwrap();
    assert_eq!(status, c.status, "{}: {problem}", c.name);
    assert_eq!(content_type, "application/problem+json", "{}", c.name);
    assert_eq!(problem["status"], c.status, "{}", c.name);
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:order-service:problem:")
    );
    assert!(
        !problem["detail"].as_str().unwrap().is_empty(),
        "{}",
        c.name
    );
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no errors member in {problem}", c.name))
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&c.field),
        "{}: expected field {} in {problem}",
        c.name,
        c.field
    );
    assert_nothing_stored(app, c.name).await;
}

#[tokio::test]
async fn each_of_the_bad_inputs_is_refused_with_a_problem_naming_its_field_and_stores_nothing() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 20);
    for c in &cases {
        check(&app, c).await;
    }
    // The valid body is accepted, so the refusals above were about the changes alone.
    app.create(&order_body("GOOD")).await;
    assert_eq!(app.counts().await, (1, 2, 1));
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413_and_stores_nothing() {
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "4096")]).await;
    let body = with(|b| b["items"][0]["specifications"] = json!({"blob": "x".repeat(5000)}));
    check(&app, &case("oversize body", body, 413, "body")).await;
}

#[tokio::test]
async fn bad_ids_queries_and_transition_bodies_are_refused_by_name() {
    let app = spawn_app().await;
    let id = app.create(&order_body("X-1")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.counts().await;

    let (status, p) = app.get_json("/api/v1/orders/not-a-uuid").await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("id"))
    );
    let (status, p) = app
        .get_json("/api/v1/orders/00000000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(
        (status, p["type"].as_str()),
        (404, Some("urn:order-service:problem:order-not-found"))
    );
    let (status, p) = app.get_json("/api/v1/orders?limit=1000").await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("limit"))
    );

    let r = app
        .post_json(
            &format!("/api/v1/orders/{id}/transitions"),
            &json!({"to": "confirmed"}),
        )
        .await;
    assert_eq!(r.status(), 428, "no If-Match and no version");
    for (body, field) in [
        (json!({"version": 1}), "to"),
        (json!({"to": "teleported", "version": 1}), "to"),
        (json!({"to": "cancelled", "version": 1}), "to"),
        (json!({"to": "confirmed", "version": "1"}), "version"),
    ] {
        let r = app
            .post_json(&format!("/api/v1/orders/{id}/transitions"), &body)
            .await;
        assert_eq!(r.status(), 422, "{body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    let r = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("idempotency-key", "x".repeat(200))
        .json(&order_body("X-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "idempotency-key");
    assert_eq!(app.counts().await, before, "refused changes wrote nothing");
    let (_, order) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(order["version"], 1);
}

#[tokio::test]
async fn values_postgresql_cannot_store_are_named_not_a_server_error() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/orders?customer_id=%C3%8A%00",
        "/api/v1/orders?customer_reference=a%00b",
        "/api/v1/orders/by-number/%00",
        "/api/v1/master-data/materials/a%00",
        "/api/v1/master-data/customers/a%00",
    ] {
        let (status, p) = app.get_json(path).await;
        assert_eq!(status, 422, "{path}: {p}");
    }
    let mut body = order_body("NUL-1");
    body["specifications"] = json!({"note": "a\u{0}b"});
    let r = app.post_json("/api/v1/orders", &body).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "specifications.note", "{p}");
    assert_eq!(app.counts().await, (0, 0, 0));
}

#[tokio::test]
async fn whole_numbers_written_with_a_fraction_of_zero_are_whole_numbers() {
    let app = spawn_app().await;
    let r = app
        .post_json("/api/v1/order-numbers", &json!({"count": 3.0}))
        .await;
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["numbers"].as_array().unwrap().len(), 3, "{p}");
    let r = app
        .post_json("/api/v1/order-numbers", &json!({"count": 2.5}))
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn an_empty_if_match_is_refused_as_malformed_and_changes_nothing() {
    let app = spawn_app().await;
    let order = app.create(&order_body("EMPTY-IF-MATCH")).await;
    let id = order["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/orders/{id}/items/10")))
        .header("if-match", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let after = app.get_json(&format!("/api/v1/orders/{id}")).await.1;
    assert_eq!(after["version"], order["version"]);
    assert_eq!(after["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn list_cursors_are_positions_and_anything_else_is_named() {
    let app = spawn_app().await;
    app.create(&order_body("CURSOR-1")).await;
    let (status, page) = app
        .get_json("/api/v1/orders?cursor=9999999999999999_ffffffffffffffffffffffffffffffff")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (status, page) = app
        .get_json("/api/v1/orders?cursor=0_00000000000000000000000000000000")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    for bad in ["", "%24", "1_ABC", "-1_00000000000000000000000000000000"] {
        let (status, p) = app.get_json(&format!("/api/v1/orders?cursor={bad}")).await;
        assert_eq!(status, 422, "{bad}: {p}");
        assert_eq!(p["errors"][0]["field"], "cursor");
    }
}
