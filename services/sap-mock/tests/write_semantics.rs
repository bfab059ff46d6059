//! What S/4 takes from a write, and how it numbers orders: fields its service definition marks
//! not creatable / not updatable are dropped, and the order type has an internal and an
//! external number range.

mod common;

use common::{TestEmulator, assert_odata_error, order_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A create body that also sends values for fields S/4 fills itself.
fn body_with_read_only_fields(po: &str) -> Value {
    let mut b = order_body(po, &[("TG11", "2")]);
    b["ExternalDocumentID"] = json!("PROXY-KEY-1");
    b["SenderBusinessSystemName"] = json!("SHOP");
    b["TotalNetAmount"] = json!("999999.00");
    b["OverallSDProcessStatus"] = json!("C");
    b["CreatedByUser"] = json!("MALLORY");
    b["SalesDocApprovalStatus"] = json!("B");
    b["to_Item"][0]["NetAmount"] = json!("1.00");
    b["to_Item"][0]["ExternalItemID"] = json!("LINE-1");
    b["to_Item"][0]["DeliveryStatus"] = json!("C");
    b["to_Item"][0]["Subtotal1Amount"] = json!("5.00");
    b
}

#[tokio::test]
async fn fields_s4_does_not_take_on_create_are_dropped_and_the_create_still_succeeds() {
    let e = TestEmulator::start().await;
    let created = e
        .create_ok(&body_with_read_only_fields("PO-READONLY"))
        .await;
    let number = created["SalesOrder"].as_str().unwrap().to_owned();
    for d in [
        created.clone(),
        e.get_json(&format!(
            "/A_SalesOrder('{number}')?$select=*,to_Item/*&$expand=to_Item"
        ))
        .await["d"]
            .clone(),
    ] {
        assert_eq!(d["ExternalDocumentID"], "", "{d}");
        assert_eq!(d["SenderBusinessSystemName"], "");
        assert_eq!(d["SalesDocApprovalStatus"], "");
        assert_ne!(d["CreatedByUser"], "MALLORY");
        // S/4's own values, not the client's
        assert_eq!(d["TotalNetAmount"], "25.00");
        assert_eq!(d["OverallSDProcessStatus"], "A");
        let item = &d["to_Item"]["results"][0];
        assert_eq!(item["NetAmount"], "25.00");
        assert_eq!(item["ExternalItemID"], "");
        assert_eq!(item["DeliveryStatus"], "A");
        assert_eq!(item["Subtotal1Amount"], "0");
    }
    e.stop().await;
}

#[tokio::test]
async fn a_dropped_field_is_not_findable_by_filter_so_nothing_can_rest_on_it() {
    let e = TestEmulator::start().await;
    e.create_ok(&body_with_read_only_fields("PO-FILTER")).await;
    let found = e
        .get_json("/A_SalesOrder?$filter=ExternalDocumentID%20eq%20'PROXY-KEY-1'")
        .await;
    assert_eq!(found["d"]["results"].as_array().unwrap().len(), 0);
    let by_sender = e
        .get_json("/A_SalesOrder?$filter=SenderBusinessSystemName%20eq%20'SHOP'")
        .await;
    assert_eq!(by_sender["d"]["results"].as_array().unwrap().len(), 0);
    // a creatable reference field is kept and findable
    let by_po = e
        .get_json("/A_SalesOrder?$filter=PurchaseOrderByCustomer%20eq%20'PO-FILTER'")
        .await;
    assert_eq!(by_po["d"]["results"].as_array().unwrap().len(), 1);
    e.stop().await;
}

#[tokio::test]
async fn fields_s4_does_not_take_on_update_are_dropped_and_the_rest_is_changed() {
    let e = TestEmulator::start().await;
    let created = e.create_ok(&order_body("PO-UPD", &[("TG11", "2")])).await;
    let number = created["SalesOrder"].as_str().unwrap().to_owned();
    let etag = created["__metadata"]["etag"].as_str().unwrap().to_owned();
    let (token, cookie) = e.csrf().await;
    let r = e
        .request(Method::PATCH, &format!("/A_SalesOrder('{number}')"))
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .header("if-match", etag)
        .body(
            json!({
                "ExternalDocumentID": "LATE-KEY",
                "TotalNetAmount": "1.00",
                "OverallDeliveryStatus": "C",
                "PurchaseOrderByShipToParty": "SHIP-REF",
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let d = &e.get_json(&format!("/A_SalesOrder('{number}')")).await["d"];
    assert_eq!(d["ExternalDocumentID"], "");
    assert_eq!(d["TotalNetAmount"], "25.00");
    assert_eq!(d["OverallDeliveryStatus"], "A");
    assert_eq!(d["PurchaseOrderByShipToParty"], "SHIP-REF");

    // an item change: NetAmount is S/4's, the quantity is the client's
    let (token, cookie) = e.csrf().await;
    let r = e
        .request(
            Method::PATCH,
            &format!("/A_SalesOrderItem(SalesOrder='{number}',SalesOrderItem='10')"),
        )
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(
            json!({"RequestedQuantity": "4", "NetAmount": "1.00", "ExternalItemID": "X"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let item = &e
        .get_json(&format!(
            "/A_SalesOrderItem(SalesOrder='{number}',SalesOrderItem='10')"
        ))
        .await["d"];
    assert_eq!(item["NetAmount"], "50.00");
    assert_eq!(item["ExternalItemID"], "");
    e.stop().await;
}

#[tokio::test]
async fn a_create_without_a_number_gets_the_next_internal_one() {
    let e = TestEmulator::start().await;
    let a = e.create_ok(&order_body("PO-A", &[("TG11", "1")])).await;
    let b = e.create_ok(&order_body("PO-B", &[("TG11", "1")])).await;
    assert_eq!(a["SalesOrder"], "1000001");
    assert_eq!(b["SalesOrder"], "1000002");
    e.stop().await;
}

#[tokio::test]
async fn a_create_naming_a_number_of_the_external_range_keeps_it_and_reads_by_it() {
    let e = TestEmulator::start().await;
    let mut body = order_body("PO-EXT", &[("TG11", "2")]);
    body["SalesOrder"] = json!("8000000042");
    let r = e.create(&body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("A_SalesOrder('8000000042')")
    );
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["d"]["SalesOrder"], "8000000042");
    assert_eq!(d["d"]["to_Item"]["results"][0]["SalesOrder"], "8000000042");
    // read by key, with and without SAP's leading zeros (ALPHA conversion)
    let read = e.get_json("/A_SalesOrder('8000000042')").await;
    assert_eq!(read["d"]["PurchaseOrderByCustomer"], "PO-EXT");
    let read = e.get_json("/A_SalesOrder(SalesOrder='8000000042')").await;
    assert_eq!(read["d"]["SalesOrder"], "8000000042");
    // the internal range is untouched by an external number
    let next = e.create_ok(&order_body("PO-INT", &[("TG11", "1")])).await;
    assert_eq!(next["SalesOrder"], "1000001");
    e.stop().await;
}

#[tokio::test]
async fn leading_zeros_name_the_same_number_as_sap_alpha_conversion_does() {
    let e = TestEmulator::start_with(|c| {
        c.external_range = "9000000-9999999".parse().unwrap();
        c.internal_range = "1-8999999".parse().unwrap();
        c.first_sales_order = 1;
    })
    .await;
    let mut body = order_body("PO-ZEROS", &[("TG11", "1")]);
    body["SalesOrder"] = json!("0009000001");
    let d = e.create_ok(&body).await;
    assert_eq!(d["SalesOrder"], "9000001", "shown without leading zeros");
    let read = e.get_json("/A_SalesOrder('0009000001')").await;
    assert_eq!(read["d"]["SalesOrder"], "9000001");
    body["SalesOrder"] = json!("9000001");
    let again = e.create(&body).await;
    let err = assert_odata_error(again, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["error"]["code"], "V1/018", "{err}");
    e.stop().await;
}

#[tokio::test]
async fn a_number_outside_the_external_range_or_taken_already_is_refused_and_nothing_is_stored() {
    let e = TestEmulator::start().await;
    let first = e.create_ok(&order_body("PO-1", &[("TG11", "1")])).await;
    assert_eq!(first["SalesOrder"], "1000001");
    let mut ext = order_body("PO-EXT", &[("TG11", "1")]);
    ext["SalesOrder"] = json!("8000000001");
    e.create_ok(&ext).await;
    let cases = [
        ("an internal-range number", "1000005", "V1/017"),
        ("an existing internal number", "1000001", "V1/017"),
        ("below both ranges", "42", "V1/017"),
        ("not numeric", "ORDER-1", "V1/017"),
        ("an existing external number", "8000000001", "V1/018"),
        (
            "the same with leading zeros",
            "08000000001",
            "/IWBEP/CM_MGW_RT/120",
        ),
    ];
    for (what, number, code) in cases {
        let mut body = order_body("PO-REFUSED", &[("TG11", "1")]);
        body["SalesOrder"] = json!(number);
        let r = e.create(&body).await;
        let err = assert_odata_error(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(err["error"]["code"], code, "{what}: {err}");
    }
    assert_eq!(e.count().await, 2, "nothing stored on any refusal");
    let refused = e
        .get_json("/A_SalesOrder?$filter=PurchaseOrderByCustomer%20eq%20'PO-REFUSED'")
        .await;
    assert_eq!(refused["d"]["results"].as_array().unwrap().len(), 0);
    // the first external order is unchanged by the refused second create
    let kept = e.get_json("/A_SalesOrder('8000000001')").await;
    assert_eq!(kept["d"]["PurchaseOrderByCustomer"], "PO-EXT");
    // no internal number was used by the refusals
    let next = e.create_ok(&order_body("PO-2", &[("TG11", "1")])).await;
    assert_eq!(next["SalesOrder"], "1000002");
    e.stop().await;
}

#[tokio::test]
async fn concurrent_creates_of_one_external_number_make_exactly_one_order() {
    let e = std::sync::Arc::new(TestEmulator::start().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = order_body(&format!("PO-RACE-{i}"), &[("TG11", "1")]);
            body["SalesOrder"] = json!("8000000777");
            let r = e.create(&body).await;
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::BAD_REQUEST => {
                assert_eq!(v["error"]["code"], "V1/018", "{v}");
                refused += 1;
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!((created, refused), (1, 15));
    assert_eq!(e.count().await, 1);
    let Ok(e) = std::sync::Arc::try_unwrap(e) else {
        panic!("emulator still shared")
    };
    e.stop().await;
}
