//! Master data: the bulk upsert and its reads, and creates completed from it as SAP would.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn sample() -> Value {
    json!({
        "materials": [
            {"sku": "TG11", "base_unit": "PC", "iso_unit": "PCE", "price": "12.50", "currency": "EUR",
             "description": "Trading Good 11"},
            {"sku": "TG12", "base_unit": "PC", "iso_unit": "PCE", "price": "0.335", "currency": "EUR"},
            {"sku": "TG-USD", "base_unit": "PC", "price": "9.99", "currency": "USD"}
        ],
        "customers": [
            {"customer_id": "17100001", "name": "Domestic Customer DE 1",
             "sales_areas": [{"sales_organization": "1010", "distribution_channel": "10", "division": "00", "currency": "EUR"}]},
            {"customer_id": "17100002", "name": "Two areas",
             "sales_areas": [{"sales_organization": "1010", "distribution_channel": "10", "division": "00", "currency": "EUR"},
                             {"sales_organization": "1710", "distribution_channel": "10", "division": "00", "currency": "USD"}]}
        ]
    })
}

async fn put(app: &TestApp, body: &Value) -> (u16, Value) {
    let r = app
        .client
        .put(app.url("/api/v1/master-data"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn master_rows(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("materials").await,
        app.count("customers").await,
        app.count("customer_sales_areas").await,
    )
}

#[tokio::test]
async fn master_data_is_upserted_in_bulk_and_read_back_by_key() {
    let app = spawn_app().await;
    let (status, counts) = put(&app, &sample()).await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(
        counts,
        json!({"materials": 3, "customers": 2, "sales_areas": 3})
    );

    let (status, m) = app.get_json("/api/v1/master-data/materials/TG11").await;
    assert_eq!(status, 200);
    assert_eq!(
        m,
        json!({"sku": "TG11", "base_unit": "PC", "iso_unit": "PCE", "price": "12.50",
               "currency": "EUR", "description": "Trading Good 11"})
    );
    let (status, c) = app.get_json("/api/v1/master-data/customers/17100002").await;
    assert_eq!(status, 200);
    assert_eq!(c["name"], "Two areas");
    assert_eq!(c["sales_areas"].as_array().unwrap().len(), 2);
    assert_eq!(c["sales_areas"][1]["currency"], "USD");

    // The same again replaces, it does not add; a changed price is taken.
    let mut changed = sample();
    changed["materials"][0]["price"] = json!("13.00");
    let (status, _) = put(&app, &changed).await;
    assert_eq!(status, 200);
    assert_eq!(master_rows(&app).await, (3, 2, 3));
    let (_, m) = app.get_json("/api/v1/master-data/materials/TG11").await;
    assert_eq!(m["price"], "13.00");

    for path in [
        "/api/v1/master-data/materials/NOPE",
        "/api/v1/master-data/customers/NOPE",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn a_bad_master_data_body_is_refused_by_field_and_stores_nothing() {
    let app = spawn_app().await;
    let mut body = sample();
    body["materials"][1]["base_unit"] = json!("PIECE");
    body["customers"][1]["sales_areas"][0]["currency"] = json!("EURO");
    let (status, p) = put(&app, &body).await;
    assert_eq!(status, 422, "{p}");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "materials[1].base_unit",
            "customers[1].sales_areas[0].currency"
        ]
    );
    let (status, p) = put(
        &app,
        &json!({"materials": [{"sku": "X", "base_unit": "PC", "colour": "red"}]}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(p["errors"][0]["field"], "materials[0].colour");
    assert_eq!(master_rows(&app).await, (0, 0, 0), "nothing stored");
}

#[tokio::test]
async fn a_create_leaving_out_unit_currency_and_price_is_completed_as_sap_derives_them() {
    let app = spawn_app().await;
    assert_eq!(put(&app, &sample()).await.0, 200);
    let order = app
        .create(&json!({
            "customer_id": "17100001", "customer_reference": "DERIVED",
            "items": [{"sku": "TG11", "quantity": "2"},
                      {"sku": "TG12", "quantity": "3", "unit": "PCE"}]
        }))
        .await;
    assert_eq!(order["currency"], "EUR", "the customer's currency");
    let items = order["items"].as_array().unwrap();
    assert_eq!(items[0]["unit"], "PC", "the base unit");
    assert_eq!(items[0]["unit_price"], "12.50");
    assert_eq!(items[0]["net_amount"], "25.00");
    assert_eq!(
        items[1]["unit"], "PC",
        "the ISO unit sent is stored as the base unit"
    );
    assert_eq!(
        items[1]["net_amount"], "1.01",
        "3 × 0.335 rounded to EUR's decimals"
    );
    assert_eq!(order["total_net_amount"], "26.01");
    // Stored like that, and the event carries the same values.
    let (_, stored) = app
        .get_json(&format!("/api/v1/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(stored, order);
    let envelope: String = sqlx::query_scalar("SELECT envelope FROM outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let event: Value = serde_json::from_str(&envelope).unwrap();
    assert_eq!(event["data"]["currency"], "EUR");
    assert_eq!(event["data"]["items"][1]["unit"], "PC");
    assert_eq!(event["data"]["total_net_amount"], "26.01");

    // Two sales areas in two currencies: the order's sales area decides.
    let order = app
        .create(&json!({
            "customer_id": "17100002", "sales_organization": "1710",
            "items": [{"sku": "TG-USD", "quantity": "1"}]
        }))
        .await;
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["items"][0]["unit_price"], "9.99");
}

#[tokio::test]
async fn values_the_caller_sends_are_kept_even_where_master_data_differs() {
    let app = spawn_app().await;
    assert_eq!(put(&app, &sample()).await.0, 200);
    let order = app
        .create(&json!({
            "customer_id": "17100001", "currency": "EUR",
            "items": [{"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "10.00"},
                      {"sku": "TG11", "quantity": "1", "unit": "KG", "unit_price": "4.00"}]
        }))
        .await;
    assert_eq!(order["items"][0]["unit_price"], "10.00");
    assert_eq!(order["items"][1]["unit"], "KG");
    assert_eq!(order["total_net_amount"], "24.00");
}

#[tokio::test]
async fn what_neither_the_caller_nor_master_data_gives_is_named_and_nothing_is_stored() {
    let app = spawn_app().await;
    // No master data at all.
    let r = app
        .post_json(
            "/api/v1/orders",
            &json!({"customer_id": "17100001", "items": [{"sku": "TG11", "quantity": "1"}]}),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        p["type"],
        "urn:order-service:problem:master-data-incomplete"
    );
    assert_eq!(p["title"], "Master data incomplete");
    let detail = p["detail"].as_str().unwrap();
    for why in [
        "currency: is required: customer 17100001 is not in the master data",
        "items[0].unit: is required: material TG11 is not in the master data",
    ] {
        assert!(detail.contains(why), "{why}: {p}");
    }
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["currency", "items[0].unit"], "{p}");

    assert_eq!(put(&app, &sample()).await.0, 200);
    for (body, field, why) in [
        // The material is priced in USD, the order is in EUR.
        (
            json!({"customer_id": "17100001", "items": [{"sku": "TG-USD", "quantity": "1"}]}),
            "items[0].unit_price",
            "material TG-USD has a price in USD in the master data, none in EUR",
        ),
        // Two sales areas, two currencies, none named.
        (
            json!({"customer_id": "17100002", "items": [{"sku": "TG11", "quantity": "1"}]}),
            "currency",
            "customer 17100002 has sales areas in several currencies",
        ),
        // Priced per PC, ordered in KG without a price.
        (
            json!({"customer_id": "17100001", "items": [{"sku": "TG11", "quantity": "1", "unit": "KG"}]}),
            "items[0].unit_price",
            "material TG11 has a price per PC in the master data, none per KG",
        ),
        // A material the master data does not have.
        (
            json!({"customer_id": "17100001", "items": [{"sku": "TG99", "quantity": "1"}]}),
            "items[0].unit",
            "material TG99 is not in the master data",
        ),
    ] {
        let r = app.post_json("/api/v1/orders", &body).await;
        assert_eq!(r.status(), 409, "{body}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(
            p["type"], "urn:order-service:problem:master-data-incomplete",
            "{p}"
        );
        assert_eq!(p["errors"][0]["field"], field, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(why), "{why}: {p}");
    }
    // A value of the request itself wrong stays invalid (422), and names the missing one too.
    let r = app
        .post_json(
            "/api/v1/orders",
            &json!({"customer_id": "17100001", "currency": "EUR",
                    "items": [{"sku": "TG11", "quantity": "999999999999", "unit_price": "9999999999999"},
                              {"sku": "TG99", "quantity": "1"}]}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:order-service:problem:validation-failed");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["items[0].unit_price", "items[1].unit"], "{p}");
    assert_eq!(app.counts().await, (0, 0, 0));
}

#[tokio::test]
async fn a_key_named_twice_in_one_upload_takes_the_last_entry_as_a_second_upload_would() {
    let app = spawn_app().await;
    let area = |so: &str, cur: &str| json!({"sales_organization": so, "distribution_channel": "10", "division": "00", "currency": cur});
    let (status, counts) = put(
        &app,
        &json!({
            "materials": [
                {"sku": "TG11", "base_unit": "PC", "price": "12.50", "currency": "EUR"},
                {"sku": "TG12", "base_unit": "PC"},
                {"sku": "TG11", "base_unit": "PC", "iso_unit": "PCE", "price": "13.00", "currency": "EUR"}
            ],
            "customers": [
                {"customer_id": "17100001", "name": "first",
                 "sales_areas": [area("1010", "EUR"), area("1710", "USD"), area("1010", "CHF")]},
                {"customer_id": "17100001", "name": "last",
                 "sales_areas": [area("1710", "CAD")]}
            ]
        }),
    )
    .await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(
        counts,
        json!({"materials": 2, "customers": 1, "sales_areas": 2}),
        "distinct rows"
    );
    assert_eq!(master_rows(&app).await, (2, 1, 2));
    let (_, m) = app.get_json("/api/v1/master-data/materials/TG11").await;
    assert_eq!(
        m,
        json!({"sku": "TG11", "base_unit": "PC", "iso_unit": "PCE", "price": "13.00",
               "currency": "EUR", "description": null})
    );
    let (_, c) = app.get_json("/api/v1/master-data/customers/17100001").await;
    assert_eq!(
        c,
        json!({"customer_id": "17100001", "name": "last",
               "sales_areas": [area("1010", "CHF"), area("1710", "CAD")]})
    );
}
