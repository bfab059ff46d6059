//! The SAP face in `events`: SAP's writes served by the order service, answered as S/4 answers
//! them, and every refusal storing nothing (counted over the test's whole database).

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// Rows of the test's own database: orders, items, outbox events.
async fn rows(s: &Stack) -> (i64, i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    (
        count("SELECT count(*) FROM orders").await,
        count("SELECT count(*) FROM order_items").await,
        count("SELECT count(*) FROM outbox").await,
    )
}

async fn write(
    s: &Stack,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut r = s
        .http
        .request(method, format!("{}{ROOT}{path}", s.proxy_url()))
        .header("accept", "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&b).unwrap());
    }
    into_resp(r.send().await.unwrap()).await
}

fn code(r: &Resp) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn in_events_sap_writes_change_the_new_order_and_refusals_store_nothing() {
    let s = Stack::start(Options {
        mode: "events",
        ..Options::default()
    })
    .await;
    let created = s
        .sdk_create(&s.proxy_url(), &order_body(&unique("FACE")), &[])
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let n = created.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = s
        .get(format!("{}{ROOT}/A_SalesOrder('{n}')", s.proxy_url()))
        .await;
    assert_eq!(read.status, 200);
    let etag = read.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(read.json()["d"]["__metadata"]["etag"], etag.as_str());
    assert_eq!(read.json()["d"]["OverallSDDocumentRejectionSts"], "A");
    let header = format!("/A_SalesOrder('{n}')");
    let line = |i: &str| format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='{i}')");
    let before = rows(&s).await;
    // Each refused in SAP's terms, and nothing stored.
    for (method, path, headers, body, status, sap_code) in [
        (
            Method::PATCH,
            header.clone(),
            vec![],
            json!({"PurchaseOrderByCustomer": "X"}),
            428,
            "/IWBEP/CM_MGW_RT/099",
        ),
        (
            Method::PATCH,
            header.clone(),
            vec![("if-match", "W/\"999\"")],
            json!({"PurchaseOrderByCustomer": "X"}),
            412,
            "/IWBEP/CM_MGW_RT/098",
        ),
        (
            Method::PATCH,
            header.clone(),
            vec![("if-match", "*")],
            json!({"SalesOrder": "1"}),
            400,
            "V1/047",
        ),
        (
            Method::PATCH,
            line("10"),
            vec![],
            json!({"RequestedQuantity": "0"}),
            400,
            "V1/084",
        ),
        (
            Method::PATCH,
            line("10"),
            vec![],
            json!({"SalesDocumentRjcnReason": "Q9"}),
            400,
            "V1/206",
        ),
        (
            Method::PATCH,
            line("10"),
            vec![],
            json!({"RequestedQuantity": "many"}),
            400,
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            Method::PATCH,
            line("90"),
            vec![],
            json!({"RequestedQuantity": "3"}),
            404,
            "V1/302",
        ),
        // No unit, and a material the order service's master data does not have.
        (
            Method::POST,
            format!("{header}/to_Item"),
            vec![],
            json!({"Material": "TG99", "RequestedQuantity": "1"}),
            400,
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            Method::DELETE,
            header.clone(),
            vec![("if-match", "*")],
            json!(null),
            405,
            "/IWFND/CM_MGW/014",
        ),
        (
            Method::PATCH,
            "/A_SalesOrder('0000000001')".to_owned(),
            vec![("if-match", "*")],
            json!({"PurchaseOrderByCustomer": "X"}),
            404,
            "V1/302",
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let r = write(&s, method.clone(), &path, &headers, body).await;
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.body);
        assert_eq!(code(&r), sap_code, "{method} {path}: {:?}", r.body);
        assert_eq!(rows(&s).await, before, "{method} {path} stored something");
    }
    // The order service's reason reaches SAP's client: what its master data lacks.
    let r = write(
        &s,
        Method::POST,
        &format!("{header}/to_Item"),
        &[],
        Some(json!({"Material": "TG99", "RequestedQuantity": "1"})),
    )
    .await;
    let message = r.json()["error"]["message"]["value"].to_string();
    assert!(
        message.contains("material TG99 is not in the master data"),
        "{:?}",
        r.body
    );
    // A quantity change tunnelled as SAP's clients may (POST + X-HTTP-Method: MERGE).
    let r = write(
        &s,
        Method::POST,
        &line("10"),
        &[("x-http-method", "MERGE")],
        Some(json!({"RequestedQuantity": "4"})),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // The line change moved the order's version: the ETag read before it is stale now.
    let etag = s
        .get(format!("{}{ROOT}/A_SalesOrder('{n}')", s.proxy_url()))
        .await
        .headers["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    // A header change with the ETag read: 204 and a new ETag.
    let r = write(
        &s,
        Method::PATCH,
        &header,
        &[("if-match", &etag)],
        Some(json!({"PurchaseOrderByCustomer": "FACE-2"})),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);
    // A rejection, a line added and one removed.
    let r = write(
        &s,
        Method::PATCH,
        &line("20"),
        &[],
        Some(json!({"SalesDocumentRjcnReason": "02"})),
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = write(
        &s,
        Method::POST,
        &format!("{header}/to_Item"),
        &[],
        Some(json!({"Material": "TG11", "RequestedQuantity": "1", "RequestedQuantityUnit": "PC"})),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let added = r.json()["d"]["SalesOrderItem"].as_str().unwrap().to_owned();
    assert_eq!(added, "30");
    let r = write(&s, Method::DELETE, &line(&added), &[], None).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // What SAP's client reads back: the changes and SAP's derived statuses.
    let read = s
        .get(format!(
            "{}{ROOT}/A_SalesOrder('{n}')?$expand=to_Item",
            s.proxy_url()
        ))
        .await
        .json();
    let d = &read["d"];
    assert_eq!(d["PurchaseOrderByCustomer"], "FACE-2");
    assert_eq!(d["OverallSDDocumentRejectionSts"], "B");
    let items = d["to_Item"]["results"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["RequestedQuantity"]
            .as_str()
            .unwrap()
            .starts_with('4')
    );
    assert_eq!(items[1]["SalesDocumentRjcnReason"], "02");
    let item = s
        .get(format!("{}{ROOT}{}", s.proxy_url(), line("20")))
        .await;
    assert_eq!(item.status, 200);
    assert_eq!(item.json()["d"]["SalesDocumentRjcnReason"], "02");
    // Five changes, five events; SAP was never written (sap-sync feeds it in events).
    let after = rows(&s).await;
    assert_eq!(after.2 - before.2, 5, "{before:?} → {after:?}");
    assert_eq!(s.sap_all().await.len(), 0);
}
