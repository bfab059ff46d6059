//! Changes in `dual-write`: SAP first (its answer to the client unchanged), then the same
//! change in the order service, directly or through the durable replay log, in the order the
//! changes were made. Each test counts both sides by asking each directly.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// A line as SAP holds it, asked of SAP directly.
async fn sap_line(s: &Stack, n: &str, i: &str) -> Value {
    let r = s
        .get(format!(
            "{}{ROOT}/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='{i}')",
            s.sap_url()
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["d"].clone()
}

/// A line as the order service holds it, read from PostgreSQL: (quantity, rejection reason).
async fn db_line(s: &Stack, n: &str, i: i32) -> (f64, Option<String>) {
    sqlx::query_as(
        "SELECT i.quantity::float8, i.rejection_reason FROM order_items i \
         JOIN orders o ON o.id = i.order_id WHERE o.order_number = $1 AND i.item_number = $2",
    )
    .bind(n)
    .bind(i)
    .fetch_one(&s.pool)
    .await
    .unwrap()
}

/// Every order's version, line count and event count in the order service.
async fn db_state(s: &Stack) -> (i64, i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    (
        count("SELECT coalesce(sum(version), 0)::int8 FROM orders").await,
        count("SELECT count(*) FROM order_items").await,
        count("SELECT count(*) FROM outbox").await,
    )
}

/// A create through the proxy as SAP's SDK sends it; the order number.
async fn create(s: &Stack) -> String {
    let created = s
        .sdk_create(&s.proxy_url(), &order_body(&unique("DWCHG")), &[])
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    created.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A change as SAP's SDK sends it: a CSRF session, the order's ETag read (through the proxy,
/// which reads SAP in `dual-write`) and sent as `If-Match`, then the write.
async fn sdk_change(s: &Stack, n: &str, method: Method, path: &str, body: Value) -> Resp {
    let (token, cookies) = s.csrf(&s.proxy_url()).await;
    let read = s
        .get(format!("{}{ROOT}/A_SalesOrder('{n}')", s.proxy_url()))
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    let etag = read.headers["etag"].to_str().unwrap().to_owned();
    into_resp(
        s.http
            .request(method, format!("{}{ROOT}{path}", s.proxy_url()))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("x-csrf-token", token)
            .header("cookie", cookies)
            .header("if-match", etag)
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn line(n: &str, i: &str) -> String {
    format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='{i}')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dual_write_a_quantity_change_a_rejection_and_a_new_line_reach_sap_and_the_order_service()
 {
    let s = Stack::start(Options::default()).await;
    let n = create(&s).await;
    let qty = sdk_change(
        &s,
        &n,
        Method::PATCH,
        &line(&n, "10"),
        json!({"RequestedQuantity": "7"}),
    )
    .await;
    assert_eq!(qty.status, 204, "{:?}", qty.body);
    let rejected = sdk_change(
        &s,
        &n,
        Method::PATCH,
        &line(&n, "20"),
        json!({"SalesDocumentRjcnReason": "02"}),
    )
    .await;
    assert_eq!(rejected.status, 204, "{:?}", rejected.body);
    let added = sdk_change(
        &s,
        &n,
        Method::POST,
        &format!("/A_SalesOrder('{n}')/to_Item"),
        json!({"Material": "TG11", "RequestedQuantity": "3", "RequestedQuantityUnit": "PC"}),
    )
    .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    // SAP, asked directly.
    assert_eq!(sap_line(&s, &n, "10").await["RequestedQuantity"], "7");
    assert_eq!(
        sap_line(&s, &n, "20").await["SalesDocumentRjcnReason"],
        "02"
    );
    assert_eq!(sap_line(&s, &n, "30").await["RequestedQuantity"], "3");
    // The order service, asked directly: applied at once, nothing left in the log.
    assert_eq!(db_line(&s, &n, 10).await, (7.0, None));
    assert_eq!(db_line(&s, &n, 20).await, (5.0, Some("02".into())));
    assert_eq!(db_line(&s, &n, 30).await.0, 3.0);
    assert_eq!(db_state(&s).await.1, 3, "one line added, once");
    assert!(s.replays().await.is_empty(), "{:?}", s.replays().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_order_service_down_changes_are_logged_and_land_later_in_the_order_they_were_made()
{
    let mut s = Stack::start(Options::default()).await;
    let n = create(&s).await;
    s.stop_order_service();
    // Two changes of the same line in sequence, and a line added, while the order service is
    // down: the client gets SAP's answer, SAP has each change, the log keeps them.
    for q in ["4", "9"] {
        let r = sdk_change(
            &s,
            &n,
            Method::PATCH,
            &line(&n, "10"),
            json!({"RequestedQuantity": q}),
        )
        .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        assert_eq!(sap_line(&s, &n, "10").await["RequestedQuantity"], q);
    }
    let added = sdk_change(
        &s,
        &n,
        Method::POST,
        &format!("/A_SalesOrder('{n}')/to_Item"),
        json!({"Material": "TG12", "RequestedQuantity": "1", "RequestedQuantityUnit": "PC"}),
    )
    .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    // The three changes, in the log behind anything else of that order (the link of SAP's
    // number, when the order service went down before it was made).
    let logged = s.replays().await;
    let changes: Vec<&Value> = logged
        .iter()
        .filter(|e| e["kind"] == "apply_change")
        .collect();
    assert_eq!(changes.len(), 3, "{logged:?}");
    assert!(
        changes.iter().all(|e| e["sales_order"] == n.as_str()),
        "{logged:?}"
    );
    s.start_order_service().await;
    s.wait_replays_drained().await;
    // The last value, not a late replay of the first; the line added once.
    assert_eq!(db_line(&s, &n, 10).await, (9.0, None));
    assert_eq!(db_line(&s, &n, 30).await.0, 1.0);
    assert_eq!(db_state(&s).await.1, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sap_refuses_reaches_nothing_in_the_order_service() {
    let s = Stack::start(Options::default()).await;
    let n = create(&s).await;
    // The create's own follow-ups come after the client's answer: SAP's number linked to the
    // new order (a version and an event), and on a loaded machine its order-service write
    // through the replay log. They are the create's business; let them land before counting.
    test_support::eventually("the create's link to SAP's number", WAIT, || async {
        let linked: Option<String> =
            sqlx::query_scalar("SELECT sap_order_number FROM orders WHERE order_number = $1")
                .bind(&n)
                .fetch_optional(&s.pool)
                .await
                .unwrap()
                .flatten();
        linked.map(|_| ())
    })
    .await;
    s.wait_replays_drained().await;
    let before = db_state(&s).await;
    let refused = sdk_change(
        &s,
        &n,
        Method::PATCH,
        &line(&n, "10"),
        json!({"RequestedQuantity": "0"}),
    )
    .await;
    assert!(
        (400..500).contains(&refused.status),
        "{} {:?}",
        refused.status,
        refused.body
    );
    let stale = into_resp(
        s.http
            .patch(format!("{}{ROOT}{}", s.proxy_url(), line(&n, "10")))
            .header("content-type", "application/json")
            .header("if-match", "W/\"stale\"")
            .body(r#"{"RequestedQuantity":"3"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        (400..500).contains(&stale.status),
        "{} {:?}",
        stale.status,
        stale.body
    );
    assert_eq!(sap_line(&s, &n, "10").await["RequestedQuantity"], "2");
    assert_eq!(
        db_state(&s).await,
        before,
        "versions, lines, events unchanged"
    );
    assert_eq!(db_line(&s, &n, 10).await, (2.0, None));
    let logged = s.replays().await;
    assert!(
        logged.is_empty(),
        "nothing logged for a refused change: {logged:?}"
    );
}
