//! The holes found by attacking phase 2 as a hostile client would, each caused for real
//! against the running stack, each counted on both sides.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// SAP's orders with this reference, and every row of the test's own database (it holds only
/// this test's orders): live orders, items, `order.created` events.
async fn counts(s: &Stack, reference: &str) -> (usize, usize, i64, i64) {
    let sap = s.sap_orders(reference).await.len();
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    let live = count("SELECT count(*) FROM orders WHERE status <> 'voided'").await as usize;
    let items = count(
        "SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id \
         WHERE o.status <> 'voided'",
    )
    .await;
    let outbox = count("SELECT count(*) FROM outbox WHERE event_type = 'order.created'").await;
    (sap, live, items, outbox)
}

#[tokio::test]
async fn in_legacy_a_keyed_create_whose_answer_was_lost_is_found_by_its_number_on_retry() {
    let s = Stack::start(Options {
        mode: "legacy",
        ..Options::default()
    })
    .await;
    let reference = unique("LEGACY-LOST");
    let body = order_body(&reference);
    let key = [("idempotency-key", "legacy-lost-1")];
    // SAP commits the create and then drops the connection. The proxy asks SAP by the number
    // it named and answers with the order SAP made (before numbering: a 502, and the retry
    // below made a second SAP order).
    s.sap_faults(json!({"lost_response_rate": 1.0})).await;
    let first = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(
        s.sap_orders(&reference).await.len(),
        1,
        "the first attempt committed"
    );
    s.sap_faults(json!({})).await;
    let second = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    assert_eq!(
        second.json()["d"]["SalesOrder"],
        first.json()["d"]["SalesOrder"]
    );
    let orders = s.sap_orders(&reference).await;
    assert_eq!(
        orders.len(),
        1,
        "a retry must not make a second SAP order: {orders:?}"
    );
    assert_eq!(
        second.json()["d"]["SalesOrder"],
        orders[0]["SalesOrder"],
        "the retry answers with the order the first attempt made"
    );
    assert_eq!(second.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_dual_write_names_one_number_in_sap_and_in_the_order_service() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("ONE-NUMBER");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    assert!(number.starts_with('8') && number.len() == 10, "{number}");
    let row: (String, Option<String>) = test_support::eventually("linked", WAIT, || async {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT order_number, sap_order_number FROM orders WHERE customer_reference = $1",
        )
        .bind(&reference)
        .fetch_optional(&s.pool)
        .await
        .unwrap();
        row.filter(|r| r.1.is_some())
    })
    .await;
    assert_eq!(row.0, number);
    assert_eq!(row.1.as_deref(), Some(number.as_str()));
    // Nothing rests on a field S/4 does not store from a create.
    assert_eq!(s.sap_orders(&reference).await[0]["ExternalDocumentID"], "");
}

#[tokio::test]
async fn a_sap_timeout_whose_create_commits_later_is_resolved_to_one_order_on_each_side_in_strict()
{
    let s = Stack::start(Options {
        proxy_env: vec![
            ("PROXY_SAP_TIMEOUT_MS", "400".into()),
            ("PROXY_SAP_COMMIT_HORIZON_MS", "3000".into()),
            ("PROXY_BREAKER_FAILURES", "1000".into()),
        ],
        ..Options::default()
    })
    .await;
    let reference = unique("LATE-COMMIT");
    let key = [("idempotency-key", "late-commit-1")];
    // SAP takes 1.5 s for the create and commits after the proxy gave up at 0.4 s.
    let session = s.csrf(&s.proxy_url()).await;
    s.sap_faults(json!({"latency_ms": 1500})).await;
    let first = s
        .create_in_session(&s.proxy_url(), &session, &order_body(&reference), &key)
        .await;
    assert_eq!(first.status, 504, "{:?}", first.body);
    test_support::eventually("SAP committed late", WAIT, || async {
        (s.sap_orders(&reference).await.len() == 1).then_some(())
    })
    .await;
    s.sap_faults(json!({})).await;
    // After the horizon the proxy finds SAP's order and keeps (links) the new one instead of
    // voiding it.
    let rows = test_support::eventually("new order linked, not voided", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.is_some()).then_some(rows)
    })
    .await;
    assert_eq!(rows[0].0, "created", "{rows:?}");
    s.wait_replays_drained().await;
    // The client's retry gets the one order, and makes no second one anywhere.
    let retry = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &key)
        .await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    s.wait_replays_drained().await;
    let (sap, live, items, outbox) = counts(&s, &reference).await;
    assert_eq!((sap, live, items, outbox), (1, 1, 2, 1));
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_dual_write_leaves_no_key_in_progress_and_loses_no_follow_up() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("HANG-UP");
    let body = order_body(&reference);
    // SAP is slow; the client gives up long before SAP answers.
    s.sap_faults(json!({"latency_ms": 1500})).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!(
        "{}/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder",
        s.proxy_url()
    );
    let (token, cookies) = s.csrf(&s.proxy_url()).await;
    let cut = impatient
        .post(&url)
        .header("x-csrf-token", token)
        .header("cookie", cookies)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("idempotency-key", "hang-up-1")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await;
    assert!(cut.is_err(), "the client hung up");
    s.sap_faults(json!({})).await;
    // The dual write ran to its end anyway: SAP's order and the new one, linked.
    test_support::eventually("both sides hold the order, linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (s.sap_orders(&reference).await.len() == 1 && rows.len() == 1 && rows[0].1.is_some())
            .then_some(())
    })
    .await;
    // The key has an owner's answer: a retry gets it replayed, never 409 for good.
    let retry = test_support::eventually("retry answered", WAIT, || async {
        let r = s
            .sdk_create(&s.proxy_url(), &body, &[("idempotency-key", "hang-up-1")])
            .await;
        (r.status != 409).then_some(r)
    })
    .await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let (sap, live, items, outbox) = counts(&s, &reference).await;
    assert_eq!((sap, live, items, outbox), (1, 1, 2, 1));
}

#[tokio::test]
async fn two_different_orders_with_the_same_correlation_id_are_both_taken() {
    let s = Stack::start(Options::default()).await;
    let first = unique("CORR-A");
    let second = unique("CORR-B");
    let corr = [("x-correlation-id", "shared-correlation-id")];
    for reference in [&first, &second] {
        let r = s
            .sdk_create(&s.proxy_url(), &order_body(reference), &corr)
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    for reference in [&first, &second] {
        test_support::eventually("both orders in both systems, linked", WAIT, || async {
            let rows = s.db_orders(reference).await;
            (s.sap_orders(reference).await.len() == 1 && rows.len() == 1 && rows[0].1.is_some())
                .then_some(())
        })
        .await;
    }
    assert!(
        s.replays().await.is_empty(),
        "nothing parked: {:?}",
        s.replays().await
    );
}

/// In dual-write a `$batch` is served part by part, each part as the same request alone (it
/// was refused whole, 501, so a shop that batches could not run phase 2): a create in a
/// changeset of its own reaches SAP and the order service once each, a line change reaches both,
/// a read is answered; a changeset of two changes is refused whole and reaches neither side
/// (SAP would take it apart from the dual write). SAP's line quantities and the order service's
/// are read back.
#[tokio::test]
async fn in_dual_write_a_batch_is_served_part_by_part_and_a_changeset_of_two_reaches_neither_side()
{
    let s = Stack::start(Options::default()).await;
    let reference = unique("DWBATCH");
    let text_of = |r: &Resp| String::from_utf8(r.body.to_vec()).unwrap();
    let r = post_batch(
        &s,
        batch_body(&[changeset(
            "cs_create",
            &[http_part(
                "POST",
                "/A_SalesOrder",
                Some(&order_body(&reference)),
            )],
        )]),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(statuses(&text_of(&r)), [201], "{}", text_of(&r));
    let sap = s.sap_orders(&reference).await;
    assert_eq!(sap.len(), 1, "one SAP order: {sap:?}");
    let n = sap[0]["SalesOrder"].as_str().unwrap().to_owned();
    test_support::eventually("the order service has the batch's create", WAIT, || async {
        (s.db_orders(&reference).await.len() == 1).then_some(())
    })
    .await;

    let line = |i: &str| format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='{i}')");
    let quantity = |q: &str| json!({ "RequestedQuantity": q });
    let r = post_batch(
        &s,
        batch_body(&[
            changeset(
                "cs_change",
                &[http_part("PATCH", &line("10"), Some(&quantity("7")))],
            ),
            http_part("GET", &format!("/A_SalesOrder('{n}')"), None),
            changeset(
                "cs_two",
                &[
                    http_part("PATCH", &line("10"), Some(&quantity("8"))),
                    http_part("PATCH", &line("20"), Some(&quantity("9"))),
                ],
            ),
        ]),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let text = text_of(&r);
    assert_eq!(statuses(&text), [204, 200, 501], "{text}");
    assert!(
        text.contains(proxy::face::batch::SEVERAL_CHANGES_IN_DUAL_WRITE),
        "{text}"
    );
    // SAP has the one change, not the refused changeset's.
    let items = s
        .get(format!(
            "{}{ROOT}/A_SalesOrder('{n}')/to_Item?$select=SalesOrderItem,RequestedQuantity",
            s.sap_url()
        ))
        .await;
    let sap_quantities: Vec<String> = items.json()["d"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["RequestedQuantity"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sap_quantities.len(), 2, "{sap_quantities:?}");
    assert!(sap_quantities[0].starts_with('7'), "{sap_quantities:?}");
    assert!(sap_quantities[1].starts_with('5'), "{sap_quantities:?}");
    // The order service followed SAP: line 10 at 7, line 20 untouched.
    let quantities = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT i.quantity::text FROM order_items i JOIN orders o ON o.id = i.order_id \
             WHERE o.customer_reference = $1 ORDER BY i.item_number",
        )
        .bind(&reference)
        .fetch_all(&s.pool)
        .await
        .unwrap()
    };
    test_support::eventually("the order service has the line change", WAIT, || async {
        let q = quantities().await;
        (q.len() == 2 && q[0].starts_with('7')).then_some(())
    })
    .await;
    assert!(quantities().await[1].starts_with('5'));

    // A token SAP does not know: SAP's 403 `x-csrf-token: Required` is the whole batch's
    // answer, as S/4 refuses such a batch, so the client fetches a token and sends it again.
    let (_, cookies) = s.csrf(&s.proxy_url()).await;
    let r = into_resp(
        s.http
            .post(format!("{}{ROOT}/$batch", s.proxy_url()))
            .header("x-csrf-token", "not-a-token")
            .header("cookie", cookies)
            .header("content-type", "multipart/mixed; boundary=batch_t")
            .body(batch_body(&[
                http_part("GET", &format!("/A_SalesOrder('{n}')"), None),
                changeset(
                    "cs_bad_token",
                    &[http_part("PATCH", &line("10"), Some(&quantity("3")))],
                ),
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", text_of(&r));
    assert_eq!(
        r.headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("required")
    );
    assert!(quantities().await[0].starts_with('7'), "nothing changed");
    assert_eq!(
        s.sap_orders(&reference).await.len(),
        1,
        "no second SAP order"
    );
    assert_eq!(s.db_orders(&reference).await.len(), 1, "no second order");
}

#[tokio::test]
async fn a_create_spelled_with_a_trailing_slash_or_percent_encoding_is_dual_written() {
    let s = Stack::start(Options::default()).await;
    for (i, path) in ["A_SalesOrder/", "A%5FSalesOrder", "/A_SalesOrder"]
        .iter()
        .enumerate()
    {
        let reference = unique(&format!("SPELL{i}"));
        let (token, cookies) = s.csrf(&s.proxy_url()).await;
        let r = into_resp(
            s.http
                .post(format!(
                    "{}/sap/opu/odata/sap/API_SALES_ORDER_SRV/{path}",
                    s.proxy_url()
                ))
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .header("x-csrf-token", &token)
                .header("cookie", &cookies)
                .body(serde_json::to_vec(&order_body(&reference)).unwrap())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 201, "{path}: {:?}", r.body);
        test_support::eventually("the order service has it too", WAIT, || async {
            (s.db_orders(&reference).await.len() == 1).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_keyed_create_with_no_order_number_to_name_is_refused_and_reaches_neither_system() {
    let mut s = Stack::start(Options::default()).await;
    // A proxy that never reserved numbers, with the order service down.
    s.kill_proxy();
    s.stop_order_service();
    std::fs::remove_file(s.proxy_dir.join("proxy.redb")).unwrap();
    s.start_proxy().await;
    let reference = unique("NO-NUMBER");
    let sap_before = s.sap_all().await.len();
    let r = s
        .sdk_create(
            &s.proxy_url(),
            &order_body(&reference),
            &[("idempotency-key", "no-number-1")],
        )
        .await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.json()["error"]["code"], "PROXY/503N");
    assert_eq!(s.sap_all().await.len(), sap_before, "nothing reached SAP");
    // Once numbers can be had again, the same key creates the order once.
    s.start_order_service().await;
    let again = test_support::eventually("the key's create goes through", WAIT, || async {
        let r = s
            .sdk_create(
                &s.proxy_url(),
                &order_body(&reference),
                &[("idempotency-key", "no-number-1")],
            )
            .await;
        (r.status == 201).then_some(r)
    })
    .await;
    assert!(
        again.json()["d"]["SalesOrder"]
            .as_str()
            .unwrap()
            .starts_with('8')
    );
    s.wait_replays_drained().await;
    let (sap, live, items, outbox) = counts(&s, &reference).await;
    assert_eq!((sap, live, items, outbox), (1, 1, 2, 1));
}

#[tokio::test]
async fn a_create_relying_on_sap_s_master_data_lands_with_sap_s_amounts_on_both_sides() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("DERIVED");
    // No unit, no currency, no prices: SAP derives them from its master data.
    let body = json!({
        "SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
        "OrganizationDivision": "00", "SoldToParty": "17100001",
        "PurchaseOrderByCustomer": reference,
        "to_Item": [{"Material": "TG11", "RequestedQuantity": "3"}]
    });
    let r = s.sdk_create(&s.proxy_url(), &body, &[]).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let sap = r.json();
    let sap_item = &sap["d"]["to_Item"]["results"][0];
    type Row = (String, Option<String>, String, Option<String>);
    let row: Row = test_support::eventually("the new side holds SAP's amounts", WAIT, || async {
        let row: Option<Row> = sqlx::query_as(
            "SELECT o.currency, o.total_net_amount::text, i.unit, i.net_amount::text FROM orders o \
             JOIN order_items i ON i.order_id = o.id WHERE o.customer_reference = $1",
        )
        .bind(&reference)
        .fetch_optional(&s.pool)
        .await
        .unwrap();
        row.filter(|r| r.1.is_some() && r.3.is_some())
    })
    .await;
    let num = |v: &str| v.parse::<f64>().unwrap();
    assert_eq!(row.0, sap["d"]["TransactionCurrency"].as_str().unwrap());
    assert_eq!(
        num(row.1.as_deref().unwrap()),
        num(sap["d"]["TotalNetAmount"].as_str().unwrap())
    );
    assert_eq!(row.2, sap_item["RequestedQuantityUnit"].as_str().unwrap());
    assert_eq!(
        num(row.3.as_deref().unwrap()),
        num(sap_item["NetAmount"].as_str().unwrap())
    );
    s.wait_replays_drained().await;
}

#[tokio::test]
async fn reconciliation_finds_no_drift_after_mixed_creates_through_the_proxy() {
    let mut s = Stack::start(Options::default()).await;
    let create = async |s: &Stack, body: serde_json::Value, headers: &[(&str, &str)]| {
        let r = s.sdk_create(&s.proxy_url(), &body, headers).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    };
    // Plain dual writes, one of them sent twice under one key.
    for i in 0..3 {
        let reference = unique(&format!("MIX-{i}"));
        create(&s, order_body(&reference), &[]).await;
    }
    let keyed = unique("MIX-KEYED");
    for _ in 0..2 {
        create(&s, order_body(&keyed), &[("idempotency-key", "mix-keyed")]).await;
    }
    // One relying on SAP's master data (no unit, currency or price).
    let derived = unique("MIX-DERIVED");
    create(
        &s,
        json!({"SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
            "OrganizationDivision": "00", "SoldToParty": "17100001",
            "PurchaseOrderByCustomer": derived,
            "to_Item": [{"Material": "TG12", "RequestedQuantity": "4"}]}),
        &[],
    )
    .await;
    // One while the order service is down (replayed later).
    s.stop_order_service();
    let while_down = unique("MIX-OS-DOWN");
    create(&s, order_body(&while_down), &[]).await;
    s.start_order_service().await;
    // One while SAP is down, under store-and-forward (forwarded to SAP later).
    let policy = s
        .admin(
            reqwest::Method::PUT,
            "/admin/v1/routes/sales-orders/policy",
            Some(json!({"policy": "store-and-forward"})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(policy.status, 200, "{:?}", policy.body);
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let forwarded = unique("MIX-SAP-DOWN");
    create(&s, order_body(&forwarded), &[]).await;
    s.sap_faults(json!({})).await;
    s.wait_replays_drained().await;

    let orderctl = binaries().join("orderctl");
    let report = test_support::eventually("reconciliation clean", WAIT, || async {
        let out = std::process::Command::new(&orderctl)
            .args([
                "reconcile",
                "--json",
                "--sap-url",
                &s.sap_url(),
                "--orders-url",
                &s.orders_url(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!("reconcile: {v}");
        // Links are made right after the answer: wait until every pair is linked.
        (v["drift"] == 0 && v["report"]["unlinked"] == json!([])).then_some(v)
    })
    .await;
    assert_eq!(report["report"]["paired"], 7, "{report}");
    assert_eq!(report["report"]["sap_orders"], 7, "{report}");
}

#[tokio::test]
async fn a_retry_and_the_horizon_s_decision_after_both_sides_went_silent_make_one_order_each_side()
{
    let s = Stack::start(Options {
        proxy_env: vec![
            ("PROXY_SAP_TIMEOUT_MS", "400".into()),
            ("PROXY_ORDER_SERVICE_TIMEOUT_MS", "300".into()),
            ("PROXY_SAP_COMMIT_HORIZON_MS", "2000".into()),
        ],
        ..Options::default()
    })
    .await;
    let reference = unique("BOTH-SILENT");
    let key = [("idempotency-key", "both-silent-1")];
    // SAP commits late; the order service's insert waits for a lock the test holds on the
    // orders table, so its create times out (and is rolled back: the service drops a create
    // whose caller went away). The client gets an error and retries under its key, while the
    // proxy's decision after the commit horizon also wants the order on the new side.
    let session = s.csrf(&s.proxy_url()).await;
    s.sap_faults(json!({"latency_ms": 1200})).await;
    let mut lock = s.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE orders IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let first = s
        .create_in_session(&s.proxy_url(), &session, &order_body(&reference), &key)
        .await;
    assert!(first.status >= 500, "{:?}", first.body);
    lock.rollback().await.unwrap();
    test_support::eventually("SAP committed late", WAIT, || async {
        (s.sap_orders(&reference).await.len() == 1).then_some(())
    })
    .await;
    s.sap_faults(json!({})).await;
    // The retry names the same number (SAP refuses a second create: the proxy reads SAP's
    // order) and the same order-service key as the horizon's decision: one row, whichever
    // comes first.
    let retry = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &key)
        .await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    s.wait_replays_drained().await;
    let rows = test_support::eventually("one live, linked order", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].0 != "voided" && rows[0].1.is_some()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (sap, live, items, outbox) = counts(&s, &reference).await;
    assert_eq!((sap, live, items, outbox), (1, 1, 2, 1));
}

#[tokio::test]
async fn an_order_service_answer_lost_after_its_insert_committed_leaves_one_order_on_retry() {
    let mut s = Stack::start(Options {
        policy: "store-and-forward",
        ..Options::default()
    })
    .await;
    // The proxy reaches the order service through a relay that loses the answer to the next
    // create: the insert commits, the proxy sees a broken connection. Its retries (the replay,
    // and the shop's own retry under its key) must not make a second order: every attempt
    // carries the same order-service key and the same number (before: a fresh key per attempt,
    // and two rows).
    let relay = test_support::relay::LossyRelay::start(s.orders_port, "POST /api/v1/orders ").await;
    s.kill_proxy();
    s.opts.proxy_env.push((
        "ORDER_SERVICE_URL",
        format!("http://127.0.0.1:{}", relay.port()),
    ));
    s.start_proxy().await;
    let reference = unique("OS-LOST-ANSWER");
    let body = order_body(&reference);
    let key = [("idempotency-key", "os-lost-answer-1")];
    relay.lose_next(1);
    let first = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(relay.lost(), 1, "the order service's answer was lost");
    let number = first.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    let retry = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    assert_eq!(retry.json()["d"]["SalesOrder"], number.as_str());
    s.wait_replays_drained().await;
    let rows = test_support::eventually("the order linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (!rows.is_empty() && rows.iter().all(|r| r.1.is_some())).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "one order in PostgreSQL: {rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some(number.as_str()));
    let (sap, live, items, outbox) = counts(&s, &reference).await;
    assert_eq!((sap, live, items, outbox), (1, 1, 2, 1));
}

#[tokio::test]
async fn a_gzipped_sap_answer_still_links_sap_s_number_and_amounts_and_is_shadow_compared() {
    let s = Stack::start(Options {
        sap_env: vec![("SAP_MOCK_GZIP_RESPONSES", "true".into())],
        proxy_env: vec![("PROXY_SHADOW_MIN_SAMPLES", "1".into())],
        ..Options::default()
    })
    .await;
    let reference = unique("GZIP");
    let r = s
        .sdk_create(
            &s.proxy_url(),
            &order_body(&reference),
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The client gets SAP's compressed answer as SAP sent it; the proxy could not read it.
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    // Before the number was named (and read by key), the link was lost silently here.
    let number: String = test_support::eventually("linked with SAP's amounts", WAIT, || async {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT order_number, sap_order_number, total_net_amount::text FROM orders \
             WHERE customer_reference = $1",
        )
        .bind(&reference)
        .fetch_optional(&s.pool)
        .await
        .unwrap();
        row.filter(|r| r.1.is_some() && r.2.is_some()).map(|r| r.0)
    })
    .await;
    // A shadow read of the compressed answer is compared, and matches.
    let read = into_resp(
        s.http
            .get(format!(
                "{}{ROOT}/A_SalesOrder('{number}')?$expand=to_Item",
                s.proxy_url()
            ))
            .header("accept", "application/json")
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.headers["content-encoding"], "gzip");
    test_support::eventually("the shadow read matched", WAIT, || async {
        let c = s
            .admin(
                reqwest::Method::GET,
                "/admin/v1/counters",
                None,
                Some(TOKEN),
            )
            .await
            .json();
        (c["shadow_reads"]["matched"] == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_atom_xml_answer_from_sap_still_links_sap_s_number_and_amounts() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("ATOM");
    let (token, cookies) = s.csrf(&s.proxy_url()).await;
    let r = into_resp(
        s.http
            .post(format!("{}{ROOT}/A_SalesOrder", s.proxy_url()))
            .header("accept", "application/atom+xml")
            .header("content-type", "application/json")
            .header("x-csrf-token", token)
            .header("cookie", cookies)
            .body(serde_json::to_vec(&order_body(&reference)).unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The client gets SAP's answer in the format it asked for, which the proxy cannot read as
    // JSON; SAP's number and amounts still reach the new side (read by the number it named).
    let ct = r.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("application/atom+xml"), "{ct}");
    let xml = String::from_utf8_lossy(&r.body).into_owned();
    let sap = s.sap_orders(&reference).await;
    assert_eq!(sap.len(), 1);
    let number = sap[0]["SalesOrder"].as_str().unwrap().to_owned();
    assert!(
        xml.contains(&format!("<d:SalesOrder>{number}</d:SalesOrder>")),
        "{xml}"
    );
    let row: (Option<String>, String) =
        test_support::eventually("linked with SAP's amounts", WAIT, || async {
            let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT sap_order_number, total_net_amount::text FROM orders \
             WHERE customer_reference = $1",
            )
            .bind(&reference)
            .fetch_optional(&s.pool)
            .await
            .unwrap();
            row.and_then(|r| Some((r.0, r.1?)))
                .filter(|r| r.0.is_some())
        })
        .await;
    assert_eq!(row.0.as_deref(), Some(number.as_str()));
    let sap_order = s
        .get(format!("{}{ROOT}/A_SalesOrder('{number}')", s.sap_url()))
        .await
        .json();
    let sap_total: f64 = sap_order["d"]["TotalNetAmount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let total: f64 = row.1.parse().unwrap();
    assert!(
        sap_total > 0.0 && (total - sap_total).abs() < 0.005,
        "{total} vs {sap_total}"
    );
    let (sap_n, live, items, outbox) = counts(&s, &reference).await;
    assert_eq!((sap_n, live, items, outbox), (1, 1, 2, 1));
}

#[tokio::test]
async fn where_sap_honours_repeatable_requests_the_proxy_s_creates_use_them() {
    let s = Stack::start(Options {
        sap_env: vec![("SAP_MOCK_REPEATABILITY", "true".into())],
        ..Options::default()
    })
    .await;
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&unique("REPEATABLE")), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // SAP Gateway answers RepeatabilityResult only to a request carrying RequestID and
    // RepeatabilityCreation.
    assert_eq!(r.headers["repeatabilityresult"], "accepted");
}

#[tokio::test]
async fn backfill_after_dual_writes_copies_only_sap_s_history_and_leaves_no_drift() {
    let s = Stack::start(Options::default()).await;
    // History: orders SAP took before the proxy was in front of it (internal numbers).
    let mut history = Vec::new();
    for i in 0..2 {
        let reference = unique(&format!("HISTORY-{i}"));
        let r = s
            .sdk_create(&s.sap_url(), &order_body(&reference), &[])
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        history.push(reference);
    }
    // Dual writes through the proxy (our numbers, linked).
    for i in 0..2 {
        let r = s
            .sdk_create(
                &s.proxy_url(),
                &order_body(&unique(&format!("DUAL-{i}"))),
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    s.wait_replays_drained().await;
    let orderctl = binaries().join("orderctl");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&orderctl)
            .args(args)
            .args([
                "--json",
                "--sap-url",
                &s.sap_url(),
                "--orders-url",
                &s.orders_url(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    test_support::eventually("the dual writes are linked", WAIT, || async {
        let dry = run(&["backfill", "--dry-run"]);
        (dry["linked"] == json!([])).then_some(())
    })
    .await;
    let copied = run(&["backfill"]);
    assert_eq!(
        copied["copied"].as_array().unwrap().len(),
        2,
        "only SAP's history: {copied}"
    );
    assert_eq!(copied["already_present"], 2, "{copied}");
    for reference in &history {
        assert_eq!(
            s.db_orders(reference).await.len(),
            1,
            "{reference} copied once"
        );
    }
    let again = run(&["backfill"]);
    assert_eq!(again["copied"], json!([]), "{again}");
    let report = run(&["reconcile"]);
    assert_eq!(report["drift"], 0, "{report}");
    assert_eq!(report["report"]["paired"], 4, "{report}");
}
