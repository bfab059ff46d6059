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
        // An ETag SAP issued (read before the route left dual-write): stale here, as in S/4.
        (
            Method::PATCH,
            line("10"),
            vec![(
                "if-match",
                "W/\"datetimeoffset'2026-12-02T00%3A46%3A37.1234567Z'\"",
            )],
            json!({"RequestedQuantity": "3"}),
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

/// Each changeset is applied whole or not at all, as S/4 saves a changeset: one of one change,
/// one of two (a line change and an added line, in one order-service transaction), one of two
/// whose second change S/4 refuses (nothing of it stored, the error alone), and one holding a
/// create beside a change (refused whole, 501). Reads see exactly what the changesets stored.
#[tokio::test]
async fn in_events_a_batch_reads_and_applies_each_changeset_whole_or_not_at_all() {
    let s = Stack::start(Options {
        mode: "events",
        ..Options::default()
    })
    .await;
    let created = s
        .sdk_create(&s.proxy_url(), &order_body(&unique("BATCH")), &[])
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let n = created.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = |i: &str| format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='{i}')");
    let quantity = |q: &str| json!({ "RequestedQuantity": q });
    let before = rows(&s).await;
    let body = batch_body(&[
        http_part("GET", &format!("/A_SalesOrder('{n}')"), None),
        changeset(
            "changeset_one",
            &[http_part("PATCH", &line("10"), Some(&quantity("7")))],
        ),
        changeset(
            "changeset_two",
            &[
                http_part("PATCH", &line("20"), Some(&quantity("9"))),
                http_part(
                    "POST",
                    &format!("/A_SalesOrder('{n}')/to_Item"),
                    Some(
                        &json!({"Material": "TG11", "RequestedQuantity": "1", "RequestedQuantityUnit": "PC"}),
                    ),
                ),
            ],
        ),
        // The second change is refused as S/4 refuses it: the first is not applied either.
        changeset(
            "changeset_three",
            &[
                http_part("PATCH", &line("10"), Some(&quantity("8"))),
                http_part("PATCH", &line("20"), Some(&quantity("0"))),
            ],
        ),
        changeset(
            "changeset_four",
            &[
                http_part(
                    "POST",
                    "/A_SalesOrder",
                    Some(&order_body(&unique("BATCH-NEW"))),
                ),
                http_part("PATCH", &line("10"), Some(&quantity("6"))),
            ],
        ),
        // Read after the changesets: the first two applied, nothing of the others.
        http_part("GET", &format!("/A_SalesOrder('{n}')/to_Item"), None),
        // A read shape the order service does not answer goes to SAP, as it would alone.
        http_part("GET", "/A_SalesOrder?$top=1&$select=SalesOrder", None),
    ]);
    let r = post_batch(&s, body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let content_type = r.headers["content-type"].to_str().unwrap().to_owned();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"))
        .to_owned();
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(
        statuses(&text),
        [200, 204, 204, 201, 400, 501, 200, 200],
        "{text}"
    );
    assert_eq!(
        text.matches("Content-Type: multipart/mixed; boundary=changeset_")
            .count(),
        2,
        "the applied changesets in changeset parts, each refused one an error part: {text}"
    );
    assert!(text.ends_with(&format!("--{boundary}--\r\n")), "{text}");
    let answers = part_jsons(&text, &boundary);
    assert_eq!(answers.len(), 7, "{text}");
    assert_eq!(answers[0]["d"]["SalesOrder"], n.as_str(), "{text}");
    assert_eq!(answers[3]["error"]["code"], "V1/084", "{text}");
    assert_eq!(answers[4]["error"]["code"], "PROXY/501", "{text}");
    assert!(
        answers[4]["error"]["message"]["value"]
            .as_str()
            .is_some_and(|m| m.contains(proxy::face::batch::SEVERAL_CHANGES)),
        "{text}"
    );
    // The added line's answer names it, as S/4's 201 does.
    assert!(
        text.contains("SalesOrderItem='30'"),
        "the added line's 201: {text}"
    );
    let items = answers[5]["d"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let quantities: Vec<String> = items
        .iter()
        .map(|i| {
            i["RequestedQuantity"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(quantities.len(), 3, "{text}");
    for (q, want) in quantities.iter().zip(['7', '9', '1']) {
        assert!(q.starts_with(want), "{quantities:?}");
    }
    assert!(
        answers[6]["d"]["results"].is_array(),
        "SAP's answer: {text}"
    );
    let after = rows(&s).await;
    assert_eq!(
        (after.0, after.1, after.2),
        (before.0, before.1 + 1, before.2 + 3),
        "three changes applied (three events), one line added, no order created: {before:?} → {after:?}"
    );
    assert_eq!(s.sap_all().await.len(), 0, "SAP was never written");
}

#[tokio::test]
async fn in_events_a_batch_that_does_not_parse_or_holds_too_many_requests_is_refused_whole() {
    let s = Stack::start(Options {
        mode: "events",
        proxy_env: vec![("PROXY_BATCH_MAX_PARTS", "2".to_owned())],
        ..Options::default()
    })
    .await;
    let before = rows(&s).await;
    let get = http_part("GET", "/A_SalesOrder('1')", None);
    for (body, message) in [
        (
            batch_body(&[get.clone(), get.clone(), get.clone()]),
            "more than 2 requests",
        ),
        (
            "--batch_t\r\nno end".to_owned(),
            "does not end with the delimiter",
        ),
    ] {
        let r = post_batch(&s, body).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(code(&r), "/IWFND/CM_MGW/004");
        let value = r.json()["error"]["message"]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(value.contains(message), "{value}");
    }
    assert_eq!(rows(&s).await, before);
}
