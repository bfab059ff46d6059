//! The SAP link adopts SAP's pricing: one transaction, one `order.updated` event naming the
//! changed fields, and nothing at all when the same link and values come again.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn link(app: &TestApp, id: &str, body: &Value) -> (u16, Value) {
    let r = app
        .post_json(&format!("/api/v1/orders/{id}/sap-link"), body)
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn events(app: &TestApp) -> Vec<Value> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT envelope FROM outbox ORDER BY order_version")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

fn unpriced() -> Value {
    json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": "SAP-PRICED",
           "items": [{"sku": "TG11", "quantity": "2", "unit": "PC"},
                     {"sku": "TG12", "quantity": "5", "unit": "PC"}]})
}

#[tokio::test]
async fn a_link_with_sap_pricing_takes_sap_values_in_one_event_and_a_repeat_changes_nothing() {
    let app = spawn_app().await;
    let order = app.create(&unpriced()).await;
    let id = order["id"].as_str().unwrap();
    let body = json!({
        "sap_order_number": "4711",
        "pricing": {"currency": "EUR", "total_net_amount": "40.50",
                    "items": [{"item_number": 10, "unit": "PC", "unit_price": "12.50", "net_amount": "25.00"},
                              {"item_number": 20, "unit_price": "3.10", "net_amount": "15.50"}]}
    });
    let (status, linked) = link(&app, id, &body).await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(linked["sap_order_number"], "4711");
    assert_eq!(linked["version"], 2);
    assert_eq!(linked["total_net_amount"], "40.50");
    assert_eq!(linked["items"][0]["unit_price"], "12.50");
    assert_eq!(linked["items"][1]["net_amount"], "15.50");
    let (_, stored) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(stored, linked);

    let all = events(&app).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["type"], "order.updated");
    assert_eq!(
        all[1]["data"]["changed_fields"],
        json!(["sap_order_number", "total_net_amount", "items"]),
        "currency was EUR already"
    );
    assert_eq!(all[1]["data"]["version"], 2);
    assert_eq!(all[1]["data"]["items"][1]["unit_price"], "3.10");

    // The same link and pricing again, and the link alone by the older route: no change.
    let (status, again) = link(&app, id, &body).await;
    assert_eq!(status, 200);
    assert_eq!(again, linked);
    let r = app
        .client
        .put(app.url(&format!("/api/v1/orders/{id}/sap-order-number")))
        .json(&json!({"sap_order_number": "4711"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        events(&app).await.len(),
        2,
        "no event for a change that changed nothing"
    );

    // A later, different pricing (SAP repriced) is one more event with just what changed.
    let (status, repriced) = link(
        &app,
        id,
        &json!({"sap_order_number": "4711", "pricing": {"currency": "USD"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(repriced["currency"], "USD");
    assert_eq!(repriced["version"], 3);
    let all = events(&app).await;
    assert_eq!(all[2]["data"]["changed_fields"], json!(["currency"]));
}

#[tokio::test]
async fn a_link_whose_pricing_names_no_such_item_or_bad_values_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let order = app.create(&unpriced()).await;
    let id = order["id"].as_str().unwrap();
    let (status, p) = link(
        &app,
        id,
        &json!({"sap_order_number": "4712",
                "pricing": {"items": [{"item_number": 30, "net_amount": "1.00"}]}}),
    )
    .await;
    // A valid request the order's lines refuse: a conflict with its state.
    assert_eq!(status, 409, "{p}");
    assert_eq!(
        p["type"],
        "urn:order-service:problem:sap-pricing-item-unknown"
    );
    assert_eq!(p["errors"][0]["field"], "pricing.items[0].item_number");
    let (status, p) = link(
        &app,
        id,
        &json!({"sap_order_number": "4712",
                "pricing": {"currency": "EURO", "items": [{"item_number": 10, "unit_price": "-1"}]}}),
    )
    .await;
    assert_eq!(status, 422, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["pricing.currency", "pricing.items[0].unit_price"]);
    let (_, stored) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(stored, order, "neither linked nor repriced");
    assert_eq!(app.count("outbox").await, 1);
}
