//! The order lifecycle through the REST API.

use serde_json::{Value, json};

use crate::helpers::{order_body, spawn_app};

#[tokio::test]
async fn a_created_order_comes_back_with_number_items_and_exact_decimals() {
    let app = spawn_app().await;
    let r = app
        .post_json("/api/v1/orders", &order_body("PO-4711"))
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("x-correlation-id"));
    let order: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/orders/{}", order["id"].as_str().unwrap())
    );
    let number = order["order_number"].as_str().unwrap();
    assert_eq!(number.len(), 10);
    assert!(number.starts_with('8'), "{number}");
    assert_eq!(order["status"], "created");
    assert_eq!(order["version"], 1);
    assert_eq!(order["items"][0]["item_number"], 10);
    assert_eq!(order["items"][1]["item_number"], 20);
    assert_eq!(order["items"][0]["quantity"], "2");
    assert_eq!(order["items"][0]["unit_price"], "12.50");
    assert_eq!(order["items"][0]["net_amount"], "25.00");
    assert_eq!(order["items"][0]["specifications"]["color"], "red");
    assert_eq!(order["total_net_amount"], "25.00");
    assert!(order["created_at"].is_string());

    let (status, by_id) = app.get_json(&location).await;
    assert_eq!(status, 200);
    assert_eq!(by_id, order);
    let (status, by_number) = app
        .get_json(&format!("/api/v1/orders/by-number/{number}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(by_number, order);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_items WHERE order_id = $1::uuid")
            .bind(order["id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn every_legacy_field_survives_in_specifications_and_sales_area() {
    let app = spawn_app().await;
    let body = json!({
        "customer_id": "17100001", "currency": "EUR", "customer_reference": "SDK-1",
        "sales_organization": "1010", "distribution_channel": "10", "division": "00",
        "order_type": "OR", "requested_delivery_date": "2026-12-01",
        "specifications": {"CustomerPurchaseOrderDate": "/Date(1795478400000+0000)/", "ShippingCondition": "01"},
        "items": [{"sku": "TG11", "quantity": "1.5", "unit": "KG",
                   "specifications": {"MaterialByCustomer": "X-1", "ItemGrossWeight": "1.500"}}]
    });
    let order = app.create(&body).await;
    for key in [
        "sales_organization",
        "distribution_channel",
        "division",
        "order_type",
        "requested_delivery_date",
    ] {
        assert_eq!(order[key], body[key], "{key}");
    }
    assert_eq!(order["specifications"], body["specifications"]);
    assert_eq!(
        order["items"][0]["specifications"],
        body["items"][0]["specifications"]
    );
    assert_eq!(order["items"][0]["quantity"], "1.5");
    assert!(order["total_net_amount"].is_null());
}

#[tokio::test]
async fn the_list_filters_by_each_field_and_pages_through_everything() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut body = order_body(&format!("REF-{i}"));
        body["customer_id"] = json!(if i % 2 == 0 { "17100001" } else { "17100002" });
        ids.push(app.create(&body).await["id"].as_str().unwrap().to_owned());
    }
    // One confirmed, one linked to SAP.
    let r = app
        .post_json(
            &format!("/api/v1/orders/{}/transitions", ids[3]),
            &json!({"to":"confirmed","version":1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .put(app.url(&format!("/api/v1/orders/{}/sap-order-number", ids[5])))
        .json(&json!({"sap_order_number": "1000042"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let count = |v: &Value| v["items"].as_array().unwrap().len();
    let (_, page) = app.get_json("/api/v1/orders?customer_id=17100002").await;
    assert_eq!(count(&page), 3);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["customer_id"] == "17100002")
    );
    let (_, page) = app
        .get_json("/api/v1/orders?customer_reference=REF-4")
        .await;
    assert_eq!(page["items"][0]["id"], ids[4].as_str());
    assert_eq!(count(&page), 1);
    let (_, page) = app.get_json("/api/v1/orders?status=confirmed").await;
    assert_eq!(count(&page), 1);
    assert_eq!(page["items"][0]["id"], ids[3].as_str());
    let (_, page) = app
        .get_json("/api/v1/orders?sap_order_number=1000042")
        .await;
    assert_eq!(page["items"][0]["id"], ids[5].as_str());

    // Created range: everything after the third order's creation time.
    let third_created: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM orders WHERE id = $1::uuid")
            .bind(&ids[2])
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let after = third_created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (status, page) = app
        .get_json(&format!(
            "/api/v1/orders?created_after={}",
            urlencode(&after)
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(count(&page), 5);
    let (_, page) = app
        .get_json(&format!(
            "/api/v1/orders?created_before={}",
            urlencode(&after)
        ))
        .await;
    assert_eq!(count(&page), 2);

    // Pages of 3 over 7 orders: 3 + 3 + 1, newest first, no repeats, nothing missed.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orders?limit=3&cursor={c}"),
            None => "/api/v1/orders?limit=3".to_owned(),
        };
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for o in page["items"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn transition(
    app: &crate::helpers::TestApp,
    id: &str,
    to: &str,
    version: i64,
) -> (u16, Value) {
    let r = app
        .post_json(
            &format!("/api/v1/orders/{id}/transitions"),
            &json!({"to": to, "version": version}),
        )
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn an_order_walks_every_legal_transition_and_refuses_an_illegal_one() {
    let app = spawn_app().await;
    let id = app.create(&order_body("T-1")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut version = 1;
    for to in ["confirmed", "shipped", "delivered"] {
        let (status, order) = transition(&app, &id, to, version).await;
        assert_eq!(status, 200, "{order}");
        assert_eq!(order["status"], to);
        assert_eq!(order["version"], version + 1);
        version += 1;
    }
    let (status, problem) = transition(&app, &id, "confirmed", version).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem["type"],
        "urn:order-service:problem:illegal-transition"
    );
    assert_eq!(problem["errors"][0]["field"], "to");
    let (_, order) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["version"], 4);
}

#[tokio::test]
async fn shipped_orders_cannot_be_cancelled_but_confirmed_ones_can() {
    let app = spawn_app().await;
    let a = app.create(&order_body("C-1")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app.create(&order_body("C-2")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(transition(&app, &a, "confirmed", 1).await.0, 200);
    let r = app
        .post_json(
            &format!("/api/v1/orders/{a}/cancel"),
            &json!({"version": 2, "reason": "customer changed mind"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["status_reason"], "customer changed mind");

    assert_eq!(transition(&app, &b, "confirmed", 1).await.0, 200);
    assert_eq!(transition(&app, &b, "shipped", 2).await.0, 200);
    let r = app
        .post_json(
            &format!("/api/v1/orders/{b}/cancel"),
            &json!({"version": 3}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let (_, order) = app.get_json(&format!("/api/v1/orders/{b}")).await;
    assert_eq!(order["status"], "shipped");
}

#[tokio::test]
async fn a_stale_version_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.create(&order_body("V-1")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(transition(&app, &id, "confirmed", 1).await.0, 200);
    let (status, problem) = transition(&app, &id, "shipped", 1).await;
    assert_eq!(status, 412);
    assert_eq!(problem["type"], "urn:order-service:problem:stale-version");
    assert_eq!(problem["current_version"], 2);
    assert_eq!(problem["errors"][0]["field"], "if-match");
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/orders/{id}")))
        .json(&json!({"version": 1, "customer_reference": "NEW"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let (_, order) = app.get_json(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(
        (order["status"].as_str(), order["version"].as_i64()),
        (Some("confirmed"), Some(2))
    );
    assert_eq!(order["customer_reference"], "V-1");
}

#[tokio::test]
async fn a_header_update_bumps_the_version_and_merges_specifications() {
    let app = spawn_app().await;
    let mut body = order_body("U-1");
    body["specifications"] = json!({"keep": 1, "drop": 2});
    let created = app.create(&body).await;
    let id = created["id"].as_str().unwrap();
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/orders/{id}")))
        .json(&json!({"version": 1, "customer_reference": "U-2", "requested_delivery_date": "2027-01-15",
                      "specifications": {"drop": null, "added": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["version"], 2);
    assert_eq!(order["customer_reference"], "U-2");
    assert_eq!(order["requested_delivery_date"], "2027-01-15");
    assert_eq!(order["specifications"], json!({"keep": 1, "added": "x"}));
    assert!(order["updated_at"].as_str() > created["updated_at"].as_str());
}

#[tokio::test]
async fn voiding_is_idempotent_and_sap_links_are_unique() {
    let app = spawn_app().await;
    let a = app.create(&order_body("L-1")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = app.create(&order_body("L-2")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = |id: String, n: &'static str| {
        let app = &app;
        async move {
            app.client
                .put(app.url(&format!("/api/v1/orders/{id}/sap-order-number")))
                .json(&json!({"sap_order_number": n}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(link(a.clone(), "1000001").await, 200);
    assert_eq!(
        link(a.clone(), "1000001").await,
        200,
        "same link again is a no-op"
    );
    assert_eq!(
        link(a.clone(), "1000002").await,
        409,
        "a second SAP number is refused"
    );
    assert_eq!(
        link(b.clone(), "1000001").await,
        409,
        "one SAP order, one order"
    );
    let (_, order) = app.get_json(&format!("/api/v1/orders/{a}")).await;
    assert_eq!(
        order["version"], 2,
        "the no-op link did not bump the version"
    );

    for _ in 0..2 {
        let r = app
            .post_json(
                &format!("/api/v1/orders/{b}/void"),
                &json!({"reason": "sap_rejected"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let o: Value = r.json().await.unwrap();
        assert_eq!(o["status"], "voided");
        assert_eq!(o["version"], 2);
    }
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE aggregate_id = $1::uuid")
            .bind(&b)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, 2, "created + one cancellation event, not two");
}

#[tokio::test]
async fn operations_endpoints_report_health_readiness_metrics_and_the_openapi_document() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["migrations"], "ok");
    app.create(&order_body("M-1")).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("db_pool_connections"), "{text}");
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/orders/{id}/transitions",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["OrderDraft"].is_object());
}

#[tokio::test]
async fn the_correlation_id_is_echoed_and_stored_with_the_order() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("x-correlation-id", "trace-abc-123")
        .json(&order_body("CID-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "trace-abc-123");
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["correlation_id"], "trace-abc-123");
    let stored: String =
        sqlx::query_scalar("SELECT correlation_id FROM outbox WHERE aggregate_id = $1::uuid")
            .bind(order["id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, "trace-abc-123");
}
