//! What a consumer applying order events to SAP (sap-sync) meets: rejection reasons and the
//! statuses S/4 derives from them, simulated delivery and billing, `LastChangeDateTime`
//! polling, `If-Match`, and `$batch` changesets that are all or nothing.

mod common;

use common::{TestEmulator, assert_odata_error, order_body};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

fn item_path(number: &str, item: &str) -> String {
    format!("/A_SalesOrderItem(SalesOrder='{number}',SalesOrderItem='{item}')")
}

/// A write with a fresh CSRF token, optionally with `If-Match`.
async fn send(
    e: &TestEmulator,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Response {
    let (token, cookie) = e.csrf().await;
    let mut r = e
        .request(method, path)
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json");
    if let Some(tag) = if_match {
        r = r.header("if-match", tag);
    }
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    r.send().await.unwrap()
}

async fn patch_item(e: &TestEmulator, number: &str, item: &str, body: Value) -> Response {
    send(e, Method::PATCH, &item_path(number, item), Some(body), None).await
}

async fn header(e: &TestEmulator, number: &str) -> Value {
    e.get_json(&format!("/A_SalesOrder('{number}')")).await["d"].clone()
}

async fn item(e: &TestEmulator, number: &str, item: &str) -> Value {
    e.get_json(&item_path(number, item)).await["d"].clone()
}

async fn created(e: &TestEmulator, items: &[(&str, &str)]) -> String {
    let d = e.create_ok(&order_body("PO-SYNC", items)).await;
    d["SalesOrder"].as_str().unwrap().to_owned()
}

async fn admin_post(e: &TestEmulator, path: &str, number: &str) -> Response {
    e.admin(Method::POST, path, Some(json!({"SalesOrder": number})))
        .await
}

#[tokio::test]
async fn an_unknown_rejection_reason_is_refused_and_nothing_changes() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    let before = header(&e, &n).await;
    let r = patch_item(&e, &n, "10", json!({"SalesDocumentRjcnReason": "ZZ"})).await;
    let v = assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(v["error"]["code"], "V1/206");
    assert_eq!(item(&e, &n, "10").await["SalesDocumentRjcnReason"], "");
    let after = header(&e, &n).await;
    assert_eq!(after["LastChangeDateTime"], before["LastChangeDateTime"]);
    assert_eq!(after["OverallSDDocumentRejectionSts"], "A");
    e.stop().await;
}

#[tokio::test]
async fn the_configured_reasons_replace_the_standard_ones() {
    let e = TestEmulator::start_with(|c| c.rejection_reasons = vec!["Z1".to_owned()]).await;
    let n = created(&e, &[("TG11", "2")]).await;
    let r = patch_item(&e, &n, "10", json!({"SalesDocumentRjcnReason": "03"})).await;
    assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    let r = patch_item(&e, &n, "10", json!({"SalesDocumentRjcnReason": "Z1"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    e.stop().await;
}

#[tokio::test]
async fn rejecting_lines_moves_the_rejection_status_a_b_c_and_the_total_drops_them() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2"), ("TG12", "5")]).await;
    let h = header(&e, &n).await;
    assert_eq!(h["OverallSDDocumentRejectionSts"], "A");
    assert_eq!(h["TotalNetAmount"], "115.00");
    assert_eq!(h["OverallSDProcessStatus"], "A");

    let r = patch_item(&e, &n, "10", json!({"SalesDocumentRjcnReason": "03"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let i = item(&e, &n, "10").await;
    assert_eq!(i["SalesDocumentRjcnReason"], "03");
    assert_eq!(i["SDProcessStatus"], "C");
    assert_eq!(i["NetAmount"], "25.00", "the item keeps its value");
    let h = header(&e, &n).await;
    assert_eq!(h["OverallSDDocumentRejectionSts"], "B");
    assert_eq!(h["TotalNetAmount"], "90.00");
    assert_eq!(h["OverallSDProcessStatus"], "B");

    // cancel: reject the last line too
    let r = patch_item(&e, &n, "20", json!({"SalesDocumentRjcnReason": "03"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = header(&e, &n).await;
    assert_eq!(h["OverallSDDocumentRejectionSts"], "C");
    assert_eq!(h["TotalNetAmount"], "0.00");
    assert_eq!(h["OverallSDProcessStatus"], "C");

    // clearing the reason undoes it
    let r = patch_item(&e, &n, "20", json!({"SalesDocumentRjcnReason": ""})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = header(&e, &n).await;
    assert_eq!(h["OverallSDDocumentRejectionSts"], "B");
    assert_eq!(h["TotalNetAmount"], "90.00");
    assert_eq!(item(&e, &n, "20").await["SDProcessStatus"], "A");
    e.stop().await;
}

#[tokio::test]
async fn a_quantity_change_reprices_and_an_added_line_counts_in_the_total() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    let r = patch_item(&e, &n, "10", json!({"RequestedQuantity": "3"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&e, &n).await["TotalNetAmount"], "37.50");
    let r = send(
        &e,
        Method::POST,
        &format!("/A_SalesOrder('{n}')/to_Item"),
        Some(json!({"Material": "TG10", "RequestedQuantity": "1"})),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let h = header(&e, &n).await;
    assert_eq!(h["TotalNetAmount"], "47.50");
    let r = send(&e, Method::DELETE, &item_path(&n, "20"), None, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&e, &n).await["TotalNetAmount"], "37.50");
    e.stop().await;
}

#[tokio::test]
async fn a_delivered_line_cannot_be_rejected_deleted_or_changed_in_quantity() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2"), ("TG12", "1")]).await;
    // the second line is rejected first: delivery leaves it alone
    let r = patch_item(&e, &n, "20", json!({"SalesDocumentRjcnReason": "01"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let before = header(&e, &n).await;
    let r = admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["items"], json!(["10"]));

    let i = item(&e, &n, "10").await;
    assert_eq!(i["DeliveryStatus"], "C");
    assert_eq!(i["SDProcessStatus"], "C");
    assert_eq!(item(&e, &n, "20").await["DeliveryStatus"], "A");
    let h = header(&e, &n).await;
    assert_eq!(h["OverallDeliveryStatus"], "C");
    assert_eq!(h["OverallTotalDeliveryStatus"], "C");
    assert_eq!(h["OverallSDProcessStatus"], "C");
    assert_ne!(h["LastChangeDateTime"], before["LastChangeDateTime"]);

    for (body, code) in [
        (json!({"SalesDocumentRjcnReason": "03"}), "V1/087"),
        (json!({"RequestedQuantity": "1"}), "V1/087"),
    ] {
        let r = patch_item(&e, &n, "10", body).await;
        let v = assert_odata_error(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(v["error"]["code"], code);
    }
    let r = send(&e, Method::DELETE, &item_path(&n, "10"), None, None).await;
    assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    let i = item(&e, &n, "10").await;
    assert_eq!(i["SalesDocumentRjcnReason"], "");
    assert_eq!(i["RequestedQuantity"], "2");
    // a second delivery finds nothing open
    let r = admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = admin_post(&e, "/sap-mock/admin/deliveries", "9999999").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    e.stop().await;
}

#[tokio::test]
async fn delivery_related_billing_needs_the_delivery_and_leaves_order_billing_not_relevant() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    assert_eq!(header(&e, &n).await["OverallOrdReltdBillgStatus"], "");
    let r = admin_post(&e, "/sap-mock/admin/billing", &n).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let before = header(&e, &n).await;
    let r = admin_post(&e, "/sap-mock/admin/billing", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = header(&e, &n).await;
    assert_eq!(h["OverallOrdReltdBillgStatus"], "");
    assert_eq!(item(&e, &n, "10").await["OrderRelatedBillingStatus"], "");
    assert_eq!(h["OverallSDProcessStatus"], "C");
    assert_ne!(h["LastChangeDateTime"], before["LastChangeDateTime"]);
    e.stop().await;
}

#[tokio::test]
async fn order_related_billing_moves_the_billing_statuses_to_c() {
    let e = TestEmulator::start_with(|c| {
        c.billing_relevance = sap_mock::config::BillingRelevance::Order;
    })
    .await;
    let n = created(&e, &[("TG11", "2"), ("TG12", "1")]).await;
    let h = header(&e, &n).await;
    assert_eq!(h["OverallOrdReltdBillgStatus"], "A");
    assert_eq!(item(&e, &n, "10").await["OrderRelatedBillingStatus"], "A");
    let r = admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let i = item(&e, &n, "10").await;
    assert_eq!(i["SDProcessStatus"], "B", "delivered, not yet billed");
    let r = admin_post(&e, "/sap-mock/admin/billing", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let i = item(&e, &n, "10").await;
    assert_eq!(i["OrderRelatedBillingStatus"], "C");
    assert_eq!(i["SDProcessStatus"], "C");
    let h = header(&e, &n).await;
    assert_eq!(h["OverallOrdReltdBillgStatus"], "C");
    assert_eq!(h["OverallSDProcessStatus"], "C");
    let r = admin_post(&e, "/sap-mock/admin/billing", &n).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "billed already");
    e.stop().await;
}

fn results(v: &Value) -> Vec<String> {
    v["d"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["SalesOrder"].as_str().unwrap().to_owned())
        .collect()
}

/// `/Date(ms+0000)/` → the ISO form of a `datetimeoffset'...'` literal.
fn iso(json_date: &Value) -> String {
    let s = json_date.as_str().unwrap();
    let ms: i64 = s
        .trim_start_matches("/Date(")
        .split(['+', ')'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[tokio::test]
async fn a_last_change_filter_finds_exactly_the_orders_changed_since_the_watermark() {
    let e = TestEmulator::start().await;
    let a = created(&e, &[("TG11", "1")]).await;
    let b = created(&e, &[("TG11", "1")]).await;
    let c = created(&e, &[("TG11", "1")]).await;
    let watermark = header(&e, &c).await["LastChangeDateTime"].clone();
    // make sure the changes land in a later millisecond than the watermark
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = patch_item(&e, &b, "10", json!({"RequestedQuantity": "2"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = admin_post(&e, "/sap-mock/admin/deliveries", &a).await;
    assert_eq!(r.status(), StatusCode::OK);

    let literal = iso(&watermark);
    let gt = e
        .get_json(&format!(
            "/A_SalesOrder?$filter=LastChangeDateTime%20gt%20datetimeoffset'{literal}'&$orderby=LastChangeDateTime"
        ))
        .await;
    assert_eq!(results(&gt), [b.clone(), a.clone()], "in order of change");
    let ge = e
        .get_json(&format!(
            "/A_SalesOrder?$filter=(LastChangeDateTime%20ge%20datetimeoffset'{literal}')&$orderby=LastChangeDateTime%20asc&$select=SalesOrder,LastChangeDateTime"
        ))
        .await;
    assert_eq!(results(&ge), [c, b, a]);
    let count = e
        .get(&format!(
            "/A_SalesOrder/$count?$filter=LastChangeDateTime%20gt%20datetimeoffset'{literal}'"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(count, "2");
    e.stop().await;
}

#[tokio::test]
async fn a_stale_if_match_is_refused_with_412_and_changes_nothing() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    let old = header(&e, &n).await["__metadata"]["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = patch_item(&e, &n, "10", json!({"RequestedQuantity": "3"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let changed = header(&e, &n).await;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/A_SalesOrder('{n}')"),
            Some(json!({"PurchaseOrderByCustomer": "STALE"})),
        ),
        (
            Method::from_bytes(b"MERGE").unwrap(),
            format!("/A_SalesOrder('{n}')"),
            Some(json!({"PurchaseOrderByCustomer": "STALE"})),
        ),
        (
            Method::PATCH,
            item_path(&n, "10"),
            Some(json!({"SalesDocumentRjcnReason": "03"})),
        ),
        (Method::DELETE, item_path(&n, "10"), None),
        (Method::DELETE, format!("/A_SalesOrder('{n}')"), None),
    ] {
        let r = send(&e, method.clone(), &path, body, Some(&old)).await;
        let v = assert_odata_error(r, StatusCode::PRECONDITION_FAILED).await;
        assert_eq!(
            v["error"]["code"], "/IWBEP/CM_MGW_RT/098",
            "{method} {path}"
        );
    }
    let after = header(&e, &n).await;
    assert_eq!(after, changed);
    assert_eq!(item(&e, &n, "10").await["SalesDocumentRjcnReason"], "");
    e.stop().await;
}

#[tokio::test]
async fn a_header_change_or_delete_without_if_match_gets_428_unless_switched_off() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    let path = format!("/A_SalesOrder('{n}')");
    let r = send(
        &e,
        Method::PATCH,
        &path,
        Some(json!({"PurchaseOrderByCustomer": "X"})),
        None,
    )
    .await;
    assert_odata_error(r, StatusCode::PRECONDITION_REQUIRED).await;
    let r = send(&e, Method::DELETE, &path, None, None).await;
    assert_odata_error(r, StatusCode::PRECONDITION_REQUIRED).await;
    assert_eq!(header(&e, &n).await["PurchaseOrderByCustomer"], "PO-SYNC");
    // items carry no ETag in S/4's metadata: no If-Match needed
    let r = patch_item(&e, &n, "10", json!({"RequestedQuantity": "3"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    e.stop().await;

    let e = TestEmulator::start_with(|c| c.require_if_match = false).await;
    let n = created(&e, &[("TG11", "2")]).await;
    let path = format!("/A_SalesOrder('{n}')");
    let r = send(
        &e,
        Method::PATCH,
        &path,
        Some(json!({"PurchaseOrderByCustomer": "X"})),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = send(&e, Method::DELETE, &path, None, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    e.stop().await;
}

// ---- $batch ----

/// A batch body as SAP's JavaScript client serializes it (CRLF, `Content-Id`, absolute paths).
fn batch_body(parts: &[BatchPart]) -> String {
    let root = common::ROOT;
    let request = |method: &str,
                   path: &str,
                   body: Option<&Value>,
                   id: usize,
                   if_match: Option<&str>| {
        let mut s =
            String::from("Content-Type: application/http\nContent-Transfer-Encoding: binary\n");
        if method != "GET" {
            s.push_str(&format!("Content-Id: {id}\n"));
        }
        s.push_str(&format!("\n{method} {root}{path} HTTP/1.1\nContent-Type: application/json\nAccept: application/json\n"));
        if let Some(tag) = if_match {
            s.push_str(&format!("If-Match: {tag}\n"));
        }
        s.push('\n');
        if let Some(b) = body {
            s.push_str(&b.to_string());
        }
        s.push('\n');
        s
    };
    let mut out = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        match part {
            BatchPart::Get(path) => out.push(request("GET", path, None, 0, None)),
            BatchPart::Changeset(changes) => {
                let b = format!("changeset_{k}");
                let inner: Vec<String> = changes
                    .iter()
                    .enumerate()
                    .map(|(i, (m, p, body, tag))| {
                        request(m, p, body.as_ref(), i + 1, tag.as_deref())
                    })
                    .collect();
                out.push(format!(
                    "Content-Type: multipart/mixed; boundary={b}\n\n--{b}\n{}\n--{b}--",
                    inner.join(&format!("\n--{b}\n"))
                ));
            }
        }
    }
    format!("--batch_t\n{}\n--batch_t--\n", out.join("\n--batch_t\n")).replace('\n', "\r\n")
}

type Change = (&'static str, String, Option<Value>, Option<String>);

enum BatchPart {
    Get(String),
    Changeset(Vec<Change>),
}

async fn post_batch(e: &TestEmulator, body: String) -> Response {
    let (token, cookie) = e.csrf().await;
    e.request(Method::POST, "/$batch")
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "multipart/mixed; boundary=batch_t")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The HTTP status lines of the answer, in order (`HTTP/1.1 204 No Content` → 204).
fn statuses(body: &str) -> Vec<u16> {
    body.lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.get(..3)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_changeset_with_one_failing_change_stores_nothing_and_answers_that_error() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2"), ("TG12", "1")]).await;
    let before = header(&e, &n).await;
    let body = batch_body(&[BatchPart::Changeset(vec![
        (
            "PATCH",
            item_path(&n, "10"),
            Some(json!({"RequestedQuantity": "7"})),
            None,
        ),
        (
            "POST",
            format!("/A_SalesOrder('{n}')/to_Item"),
            Some(json!({"Material": "TG10", "RequestedQuantity": "1"})),
            None,
        ),
        (
            "PATCH",
            item_path(&n, "20"),
            Some(json!({"SalesDocumentRjcnReason": "ZZ"})),
            None,
        ),
    ])]);
    let r = post_batch(&e, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("multipart/mixed; boundary="), "{ct}");
    let text = r.text().await.unwrap();
    assert_eq!(statuses(&text), [400], "{text}");
    assert!(text.contains("V1/206"), "{text}");
    assert!(
        !text.contains("boundary=changeset"),
        "a failed changeset is one part: {text}"
    );

    let after = header(&e, &n).await;
    assert_eq!(after, before);
    assert_eq!(item(&e, &n, "10").await["RequestedQuantity"], "2");
    let items = e.get_json(&format!("/A_SalesOrder('{n}')/to_Item")).await;
    assert_eq!(items["d"]["results"].as_array().unwrap().len(), 2);
    e.stop().await;
}

#[tokio::test]
async fn two_good_changesets_and_a_read_are_applied_and_answered_202_multipart() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2"), ("TG12", "1")]).await;
    let m = created(&e, &[("TG11", "1")]).await;
    let etag = header(&e, &m).await["__metadata"]["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = batch_body(&[
        BatchPart::Changeset(vec![
            (
                "PATCH",
                item_path(&n, "10"),
                Some(json!({"RequestedQuantity": "4"})),
                None,
            ),
            (
                "PATCH",
                item_path(&n, "20"),
                Some(json!({"SalesDocumentRjcnReason": "03"})),
                None,
            ),
        ]),
        BatchPart::Changeset(vec![
            (
                "PATCH",
                format!("/A_SalesOrder('{m}')"),
                Some(json!({"PurchaseOrderByCustomer": "BATCHED"})),
                Some(etag),
            ),
            (
                "POST",
                format!("/A_SalesOrder('{m}')/to_Item"),
                Some(json!({"Material": "TG10", "RequestedQuantity": "3"})),
                None,
            ),
        ]),
        BatchPart::Get(format!("/A_SalesOrder('{n}')")),
    ]);
    let r = post_batch(&e, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let text = r.text().await.unwrap();
    assert_eq!(statuses(&text), [204, 204, 204, 201, 200], "{text}");
    assert_eq!(
        text.matches("Content-Type: multipart/mixed; boundary=changeset_")
            .count(),
        2
    );
    assert_eq!(text.matches("Content-Type: application/http").count(), 5);
    // the read sees the first changeset's result: the body is the part's last line
    let read = text
        .split("--batch_")
        .find(|p| p.contains("HTTP/1.1 200 OK"))
        .unwrap();
    let json_line = read.trim().lines().last().unwrap();
    let d: Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(d["d"]["TotalNetAmount"], "50.00");

    let h = header(&e, &n).await;
    assert_eq!(h["OverallSDDocumentRejectionSts"], "B");
    assert_eq!(item(&e, &n, "10").await["RequestedQuantity"], "4");
    let h = header(&e, &m).await;
    assert_eq!(h["PurchaseOrderByCustomer"], "BATCHED");
    assert_eq!(h["TotalNetAmount"], "42.50");
    e.stop().await;
}

#[tokio::test]
async fn a_changeset_creates_under_an_external_number_and_refers_to_it_by_content_id() {
    let e = TestEmulator::start().await;
    let mut order = order_body("PO-BATCH", &[("TG11", "1")]);
    order["SalesOrder"] = json!("8000000042");
    let body = batch_body(&[BatchPart::Changeset(vec![
        ("POST", "/A_SalesOrder".to_owned(), Some(order), None),
        (
            "POST",
            "/$1/to_Item".to_owned(),
            Some(json!({"Material": "TG12", "RequestedQuantity": "1"})),
            None,
        ),
    ])])
    // the reference is sent relative, as `$1/to_Item`
    .replace(&format!("{}/$1", common::ROOT), "$1");
    let r = post_batch(&e, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let text = r.text().await.unwrap();
    assert_eq!(statuses(&text), [201, 201], "{text}");
    let h = header(&e, "8000000042").await;
    assert_eq!(h["TotalNetAmount"], "30.50");
    e.stop().await;
}

#[tokio::test]
async fn a_batch_needs_the_csrf_token_and_a_multipart_body() {
    let e = TestEmulator::start().await;
    let r = e
        .request(Method::POST, "/$batch")
        .header("content-type", "multipart/mixed; boundary=batch_t")
        .body(batch_body(&[BatchPart::Get("/A_SalesOrder".to_owned())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-csrf-token"], "Required");

    let (token, cookie) = e.csrf().await;
    let r = e
        .request(Method::POST, "/$batch")
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_odata_error(r, StatusCode::BAD_REQUEST).await;

    let r = post_batch(&e, "--batch_t\r\nno end".to_owned()).await;
    assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(e.count().await, 0);
    e.stop().await;
}

#[tokio::test]
async fn a_change_outside_a_changeset_is_refused_in_its_part() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    let body = format!(
        "--batch_t\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPATCH {} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"RequestedQuantity\":\"9\"}}\r\n--batch_t--\r\n",
        item_path(&n, "10")
    );
    let r = post_batch(&e, body).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(statuses(&r.text().await.unwrap()), [400]);
    assert_eq!(item(&e, &n, "10").await["RequestedQuantity"], "2");
    e.stop().await;
}

/// The order's document flow (`to_SubsequentProcFlowDoc`), as a list of
/// (document, category, level).
async fn flow(e: &TestEmulator, number: &str) -> Vec<(String, String, String)> {
    let v = e
        .get_json(&format!(
            "/A_SalesOrder('{number}')/to_SubsequentProcFlowDoc"
        ))
        .await;
    v["d"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(
                d["__metadata"]["type"],
                "API_SALES_ORDER_SRV.A_SalesOrderSubsqntProcFlow"
            );
            assert_eq!(d["SalesOrder"], number);
            (
                d["SubsequentDocument"].as_str().unwrap().to_owned(),
                d["SubsequentDocumentCategory"].as_str().unwrap().to_owned(),
                d["ProcessFlowLevel"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn is_guid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
    })
}

#[tokio::test]
async fn an_order_without_fulfilment_has_an_empty_document_flow() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    assert!(flow(&e, &n).await.is_empty());
    let v = e
        .get_json(&format!(
            "/A_SalesOrder('{n}')?$expand=to_SubsequentProcFlowDoc"
        ))
        .await;
    assert_eq!(v["d"]["to_SubsequentProcFlowDoc"], json!({"results": []}));
    let v = e
        .get_json(&format!(
            "{}/to_SubsequentProcFlowDocItem",
            item_path(&n, "10")
        ))
        .await;
    assert_eq!(v["d"]["results"], json!([]));
    let r = e
        .get(&format!(
            "/A_SalesOrder('{n}')/to_SubsequentProcFlowDoc/$count"
        ))
        .await;
    assert_eq!(r.text().await.unwrap(), "0");
    // not expanded: deferred, as every navigation
    let d = header(&e, &n).await;
    assert!(
        d["to_SubsequentProcFlowDoc"]["__deferred"]["uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("A_SalesOrder('{n}')/to_SubsequentProcFlowDoc"))
    );
    e.stop().await;
}

#[tokio::test]
async fn a_delivery_puts_one_outbound_delivery_on_the_flow_and_billing_an_invoice() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2"), ("TG12", "1")]).await;
    let before = header(&e, &n).await;
    let r = admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    let delivery = answer["SubsequentDocument"].as_str().unwrap().to_owned();
    assert!(delivery.parse::<u64>().unwrap() >= 80_000_000, "{delivery}");
    assert_eq!(
        flow(&e, &n).await,
        [(delivery.clone(), "J".into(), "0".into())]
    );
    let delivered = header(&e, &n).await;
    assert_ne!(
        delivered["LastChangeDateTime"],
        before["LastChangeDateTime"]
    );

    let r = admin_post(&e, "/sap-mock/admin/billing", &n).await;
    assert_eq!(r.status(), StatusCode::OK);
    let invoice = r.json::<Value>().await.unwrap()["SubsequentDocument"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(invoice.parse::<u64>().unwrap() >= 90_000_000, "{invoice}");
    // delivery-related billing: the order's billing status stays empty, the invoice shows in
    // the flow, one level below the delivery it bills
    let billed = header(&e, &n).await;
    assert_eq!(billed["OverallOrdReltdBillgStatus"], "");
    assert_ne!(
        billed["LastChangeDateTime"],
        delivered["LastChangeDateTime"]
    );
    assert_eq!(
        flow(&e, &n).await,
        [
            (delivery.clone(), "J".into(), "0".into()),
            (invoice.clone(), "M".into(), "1".into())
        ]
    );
    // every property of the EDMX, in its order; GUID keys, Edm.Time, dates
    let v = e
        .get_json(&format!("/A_SalesOrder('{n}')/to_SubsequentProcFlowDoc"))
        .await;
    let doc = &v["d"]["results"][1];
    let mut names: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let in_order = [
        "__metadata",
        "SalesOrder",
        "DocRelationshipUUID",
        "SubsequentDocument",
        "SubsequentDocumentCategory",
        "ProcessFlowLevel",
        "OverallSDProcessStatus",
        "CreationDate",
        "CreationTime",
        "LastChangeDate",
        "to_SalesOrder",
    ];
    names.sort_unstable();
    let mut expected = in_order.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    // and in the EDMX's order on the wire
    let raw = e
        .get(&format!("/A_SalesOrder('{n}')/to_SubsequentProcFlowDoc"))
        .await
        .text()
        .await
        .unwrap();
    let positions: Vec<usize> = in_order
        .iter()
        .map(|k| raw.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.is_sorted(), "{raw}");
    assert!(is_guid(&doc["DocRelationshipUUID"]));
    assert!(doc["CreationTime"].as_str().unwrap().starts_with("PT"));
    assert!(doc["CreationDate"].as_str().unwrap().starts_with("/Date("));
    let uri = doc["__metadata"]["uri"].as_str().unwrap();
    assert!(
        uri.ends_with(&format!(
            "A_SalesOrderSubsqntProcFlow(SalesOrder='{n}',DocRelationshipUUID=guid'{}')",
            doc["DocRelationshipUUID"].as_str().unwrap()
        )),
        "{uri}"
    );
    // the record's own URI answers, and leads back to the order
    let path = &uri[uri.find("/A_SalesOrderSubsqntProcFlow").unwrap()..];
    assert_eq!(e.get_json(path).await["d"]["SubsequentDocument"], invoice);
    let back = e.get_json(&format!("{path}/to_SalesOrder")).await;
    assert_eq!(back["d"]["SalesOrder"], n);
    // the delivery is complete once invoiced
    assert_eq!(v["d"]["results"][0]["OverallSDProcessStatus"], "C");

    // per item: the delivery item follows the order item, the invoice item the delivery item
    let v = e
        .get_json(&format!(
            "{}/to_SubsequentProcFlowDocItem",
            item_path(&n, "20")
        ))
        .await;
    let rows = v["d"]["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["__metadata"]["type"],
        "API_SALES_ORDER_SRV.A_SalesOrderItmSubsqntProcFlow"
    );
    assert_eq!(rows[0]["SalesOrderItem"], "20");
    assert_eq!(rows[0]["SubsequentDocument"], delivery);
    assert_eq!(rows[0]["SubsequentDocumentItem"], "20");
    assert_eq!(rows[0]["SubsequentDocumentCategory"], "J");
    assert_eq!(rows[0]["SubsqntDocItmPrecdgDocument"], n);
    assert_eq!(rows[0]["SubsqntDocItmPrecdgDocCategory"], "C");
    assert_eq!(rows[1]["SubsequentDocument"], invoice);
    assert_eq!(rows[1]["SubsequentDocumentCategory"], "M");
    assert_eq!(rows[1]["SubsqntDocItmPrecdgDocument"], delivery);
    assert_eq!(rows[1]["SubsqntDocItmPrecdgDocItem"], "20");
    assert_eq!(rows[1]["SubsqntDocItmPrecdgDocCategory"], "J");
    // $filter and $count on the flow; the item already billed is not billed again
    let v = e
        .get_json(&format!(
            "/A_SalesOrder('{n}')/to_SubsequentProcFlowDoc?$filter=SubsequentDocumentCategory%20eq%20'M'&$select=SubsequentDocument"
        ))
        .await;
    assert_eq!(v["d"]["results"][0]["SubsequentDocument"], invoice);
    assert!(v["d"]["results"][0].get("SalesOrder").is_none());
    let r = admin_post(&e, "/sap-mock/admin/billing", &n).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "invoiced already");
    assert_eq!(flow(&e, &n).await.len(), 2);
    e.stop().await;
}

#[tokio::test]
async fn the_flow_expands_together_with_the_items_and_selects_inside() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    admin_post(&e, "/sap-mock/admin/billing", &n).await;
    let v = e
        .get_json(&format!(
            "/A_SalesOrder('{n}')?$expand=to_Item,to_SubsequentProcFlowDoc"
        ))
        .await;
    assert_eq!(v["d"]["to_Item"]["results"].as_array().unwrap().len(), 1);
    let docs = v["d"]["to_SubsequentProcFlowDoc"]["results"]
        .as_array()
        .unwrap();
    let categories: Vec<&str> = docs
        .iter()
        .map(|d| d["SubsequentDocumentCategory"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["J", "M"]);
    // as SAP's client asks for it: navigation properties selected, each with nav/Prop
    let v = e
        .get_json(&format!(
            "/A_SalesOrder?$select=SalesOrder,to_Item/SalesOrderItem,to_SubsequentProcFlowDoc/SubsequentDocument,to_SubsequentProcFlowDoc/SubsequentDocumentCategory&$expand=to_Item,to_SubsequentProcFlowDoc&$filter=SalesOrder%20eq%20'{n}'"
        ))
        .await;
    let order = &v["d"]["results"][0];
    assert!(order.get("SoldToParty").is_none());
    let doc = &order["to_SubsequentProcFlowDoc"]["results"][1];
    let mut names: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "SubsequentDocument",
            "SubsequentDocumentCategory",
            "__metadata"
        ]
    );
    assert_eq!(doc["SubsequentDocumentCategory"], "M");
    // the item's flow inside the expanded items
    let v = e
        .get_json(&format!(
            "/A_SalesOrder('{n}')?$expand=to_Item/to_SubsequentProcFlowDocItem"
        ))
        .await;
    let item_flow = &v["d"]["to_Item"]["results"][0]["to_SubsequentProcFlowDocItem"]["results"];
    assert_eq!(item_flow.as_array().unwrap().len(), 2);
    assert_eq!(item_flow[1]["SubsequentDocumentCategory"], "M");
    // an item read with its flow expanded
    let v = e
        .get_json(&format!(
            "{}?$expand=to_SubsequentProcFlowDocItem",
            item_path(&n, "10")
        ))
        .await;
    assert_eq!(
        v["d"]["to_SubsequentProcFlowDocItem"]["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // an unknown property inside the flow is S/4's 400
    let r = e
        .get(&format!(
            "/A_SalesOrder('{n}')?$select=to_SubsequentProcFlowDoc/Nope&$expand=to_SubsequentProcFlowDoc"
        ))
        .await;
    assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    e.stop().await;
}

#[tokio::test]
async fn a_poll_by_last_change_finds_the_billed_order_and_its_invoice() {
    let e = TestEmulator::start().await;
    let n = created(&e, &[("TG11", "2")]).await;
    let _other = created(&e, &[("TG12", "1")]).await;
    admin_post(&e, "/sap-mock/admin/deliveries", &n).await;
    let watermark = header(&e, &n).await["LastChangeDateTime"]
        .as_str()
        .unwrap()
        .to_owned();
    let ms: i64 = watermark
        .trim_start_matches("/Date(")
        .split(['+', ')'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let since = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    admin_post(&e, "/sap-mock/admin/billing", &n).await;
    let v = e
        .get_json(&format!(
            "/A_SalesOrder?$filter=LastChangeDateTime%20gt%20datetimeoffset'{since}'&$expand=to_SubsequentProcFlowDoc"
        ))
        .await;
    let found = v["d"]["results"].as_array().unwrap();
    assert_eq!(found.len(), 1, "only the billed order changed");
    assert_eq!(found[0]["SalesOrder"], n);
    let docs = found[0]["to_SubsequentProcFlowDoc"]["results"]
        .as_array()
        .unwrap();
    assert!(docs.iter().any(|d| d["SubsequentDocumentCategory"] == "M"));
    e.stop().await;
}

#[tokio::test]
async fn order_related_billing_puts_the_invoice_directly_after_the_order() {
    let e = TestEmulator::start_with(|c| {
        c.billing_relevance = sap_mock::config::BillingRelevance::Order;
    })
    .await;
    let n = created(&e, &[("TG11", "2")]).await;
    admin_post(&e, "/sap-mock/admin/billing", &n).await;
    let docs = flow(&e, &n).await;
    assert_eq!(docs.len(), 1);
    assert_eq!((docs[0].1.as_str(), docs[0].2.as_str()), ("M", "0"));
    let v = e
        .get_json(&format!(
            "{}/to_SubsequentProcFlowDocItem",
            item_path(&n, "10")
        ))
        .await;
    assert_eq!(v["d"]["results"][0]["SubsqntDocItmPrecdgDocCategory"], "C");
    e.stop().await;
}

#[tokio::test]
async fn document_numbers_are_never_handed_out_twice_and_the_flow_sets_are_read_only() {
    let e = TestEmulator::start().await;
    let a = created(&e, &[("TG11", "2")]).await;
    let b = created(&e, &[("TG11", "2")]).await;
    admin_post(&e, "/sap-mock/admin/deliveries", &a).await;
    admin_post(&e, "/sap-mock/admin/deliveries", &b).await;
    let (da, db) = (flow(&e, &a).await, flow(&e, &b).await);
    assert_ne!(da[0].0, db[0].0);
    let all = e.get_json("/A_SalesOrderSubsqntProcFlow").await;
    assert_eq!(all["d"]["results"].as_array().unwrap().len(), 2);
    let r = e.get("/A_SalesOrderItmSubsqntProcFlow/$count").await;
    assert_eq!(r.text().await.unwrap(), "2");
    let r = send(
        &e,
        Method::POST,
        "/A_SalesOrderSubsqntProcFlow",
        Some(json!({"SalesOrder": a})),
        None,
    )
    .await;
    assert_odata_error(r, StatusCode::METHOD_NOT_ALLOWED).await;
    // an order with subsequent documents cannot be deleted
    let etag = header(&e, &a).await["__metadata"]["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        &e,
        Method::DELETE,
        &format!("/A_SalesOrder('{a}')"),
        None,
        Some(&etag),
    )
    .await;
    assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(header(&e, &a).await["SalesOrder"], a);
    e.stop().await;
}
