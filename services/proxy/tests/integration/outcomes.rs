//! Every row of the dual-write outcome table, caused for real (sap-mock's fault knobs, the order
//! service killed or frozen), each ending with both systems queried directly.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn both_sides_ok_gives_the_client_sap_answer_and_links_sap_number_to_the_new_order() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("BOTH-OK");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    // The answer is SAP's own: its Location points at SAP's entity, its body is SAP's entity.
    assert!(r.headers.get("etag").is_some());
    let sap = s.sap_orders(&reference).await;
    assert_eq!(sap.len(), 1);
    assert_eq!(sap[0]["SalesOrder"], number.as_str());
    let linked = test_support::eventually("order linked to SAP's number", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.as_deref() == Some(number.as_str())).then_some(rows)
    })
    .await;
    assert_eq!(linked[0].0, "created");
    // One number in both systems: the order service's own number is SAP's (reconciliation
    // pairs them by it), and nothing rests on a field S/4 does not store.
    let own: String =
        sqlx::query_scalar("SELECT order_number FROM orders WHERE customer_reference = $1")
            .bind(&reference)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(own, number);
    assert_eq!(sap[0]["ExternalDocumentID"], "");
    assert_eq!(
        linked[0].2["CustomerPurchaseOrderDate"],
        "/Date(1795478400000+0000)/"
    );
    s.wait_replays_drained().await;
}

#[tokio::test]
async fn order_service_down_keeps_sap_answer_and_the_replay_lands_once_it_is_back() {
    let mut s = Stack::start(Options::default()).await;
    s.stop_order_service();
    let reference = unique("NEW-DOWN");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    let pending = s.replays().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["kind"], "create_in_order_service");
    assert_eq!(s.db_orders(&reference).await.len(), 0);
    s.start_order_service().await;
    test_support::eventually("replayed order linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.as_deref() == Some(number.as_str())).then_some(())
    })
    .await;
    s.wait_replays_drained().await;
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    assert_eq!(s.db_orders(&reference).await.len(), 1);
}

#[tokio::test]
async fn a_slow_order_service_times_out_and_its_late_create_is_never_duplicated() {
    let mut opts = Options::default();
    opts.proxy_env
        .push(("PROXY_ORDER_SERVICE_TIMEOUT_MS", "700".into()));
    let s = Stack::start(opts).await;
    let reference = unique("NEW-SLOW");
    s.freeze_order_service(true);
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    s.freeze_order_service(false);
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    // The frozen service still had the request in its socket: it creates the order late, and
    // the replay (same idempotency key) finds it instead of making a second one.
    test_support::eventually("late order linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.as_deref() == Some(number.as_str())).then_some(())
    })
    .await;
    s.wait_replays_drained().await;
    assert_eq!(s.db_orders(&reference).await.len(), 1);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
}

#[tokio::test]
async fn a_sap_rejection_reaches_the_client_unchanged_and_the_new_order_is_voided() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("SAP-REJ");
    let mut body = order_body(&reference);
    body["SoldToParty"] = json!("17199999"); // not in SAP's customer master
    let direct = s
        .sdk_create(
            &s.sap_url(),
            &{
                let mut b = body.clone();
                b["PurchaseOrderByCustomer"] = json!(format!("{reference}-D"));
                b
            },
            &[],
        )
        .await;
    assert!(
        (400..500).contains(&direct.status),
        "SAP accepted an unknown customer"
    );
    let r = s.sdk_create(&s.proxy_url(), &body, &[]).await;
    assert_eq!(r.status, direct.status);
    assert_eq!(r.json()["error"]["code"], direct.json()["error"]["code"]);
    assert_eq!(
        r.json()["error"]["message"],
        direct.json()["error"]["message"]
    );
    test_support::eventually("new order voided", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].0 == "voided").then_some(())
    })
    .await;
    s.wait_replays_drained().await;
    assert_eq!(s.sap_orders(&reference).await.len(), 0);
}

#[tokio::test]
async fn sap_unavailable_under_strict_answers_an_odata_error_and_voids_the_new_order() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("SAP-DOWN-STRICT");
    s.sap_faults(json!({"outage": "reset"})).await;
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    s.sap_faults(json!({})).await;
    assert_eq!(r.status, 502, "{:?}", r.body);
    assert!(
        r.json()["error"]["message"]["value"].is_string(),
        "OData error body"
    );
    test_support::eventually("new order voided", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].0 == "voided").then_some(())
    })
    .await;
    s.wait_replays_drained().await;
    assert_eq!(s.sap_orders(&reference).await.len(), 0);
}

#[tokio::test]
async fn sap_answering_503_under_strict_passes_sap_error_on_and_voids_the_new_order() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("SAP-503");
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    s.sap_faults(json!({})).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    test_support::eventually("new order voided", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].0 == "voided").then_some(())
    })
    .await;
    assert_eq!(s.sap_orders(&reference).await.len(), 0);
}

#[tokio::test]
async fn sap_unavailable_under_store_and_forward_answers_201_and_the_order_reaches_sap_later() {
    let s = Stack::start(Options {
        policy: "store-and-forward",
        ..Options::default()
    })
    .await;
    let reference = unique("SAP-DOWN-SAF");
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let d = &r.json()["d"];
    assert_eq!(d["PurchaseOrderByCustomer"], reference.as_str());
    assert_eq!(d["to_Item"]["results"][1]["Material"], "TG12");
    assert_eq!(s.db_orders(&reference).await.len(), 1);
    // While SAP is down the SAP write waits in the replay log.
    let pending = s.replays().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["kind"], "create_in_sap");
    s.sap_faults(json!({})).await;
    let number = test_support::eventually("order created in SAP", WAIT, || async {
        let sap = s.sap_orders(&reference).await;
        (sap.len() == 1).then(|| sap[0]["SalesOrder"].as_str().unwrap().to_owned())
    })
    .await;
    test_support::eventually("SAP number linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.as_deref() == Some(number.as_str())).then_some(())
    })
    .await;
    s.wait_replays_drained().await;
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
}

#[tokio::test]
async fn both_sides_failing_answers_an_odata_error_and_leaves_nothing_in_either_system() {
    let mut s = Stack::start(Options::default()).await;
    let reference = unique("BOTH-DOWN");
    s.stop_order_service();
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    s.sap_faults(json!({})).await;
    assert!(r.status >= 500, "{}", r.status);
    assert!(r.json()["error"]["message"]["value"].is_string());
    assert!(s.replays().await.is_empty(), "nothing to replay");
    assert_eq!(s.sap_orders(&reference).await.len(), 0);
    assert_eq!(s.db_orders(&reference).await.len(), 0);
}

#[tokio::test]
async fn a_sap_answer_lost_after_the_create_is_recovered_by_reading_its_number() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("SAP-LOST");
    s.sap_faults(json!({"lost_response_rate": 1.0})).await;
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    s.sap_faults(json!({})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    let sap = s.sap_orders(&reference).await;
    assert_eq!(sap.len(), 1);
    assert_eq!(sap[0]["SalesOrder"], number.as_str());
    test_support::eventually("linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.as_deref() == Some(number.as_str())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_makes_one_order_on_each_side() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("IDEM");
    let body = order_body(&reference);
    let key = [("idempotency-key", "idem-key-1")];
    let first = s.sdk_create(&s.proxy_url(), &body, &key).await;
    let second = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(
        first.body, second.body,
        "the stored answer is replayed byte for byte"
    );
    assert_eq!(second.headers["idempotent-replayed"], "true");
    let mut other = body.clone();
    other["to_Item"][0]["RequestedQuantity"] = json!("3");
    let reused = s.sdk_create(&s.proxy_url(), &other, &key).await;
    assert_eq!(reused.status, 422);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    test_support::eventually("one linked order", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.is_some()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_client_retry_after_sap_went_silent_looks_up_before_creating_again() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("RETRY-SILENT");
    let body = order_body(&reference);
    let key = [("idempotency-key", "retry-after-reset")];
    // SAP drops the connection before reading: nothing is created; the client gets 502.
    s.sap_faults(json!({"outage": "reset"})).await;
    let first = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(first.status, 502);
    s.sap_faults(json!({})).await;
    s.wait_replays_drained().await;
    // The retry is not a replay of the failure: it looks up (nothing), then creates.
    let second = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    let third = s.sdk_create(&s.proxy_url(), &body, &key).await;
    assert_eq!(third.body, second.body);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    // The first attempt's order was voided (SAP never had it); the retry made one live order,
    // linked to the one SAP order.
    let sap_number = s.sap_orders(&reference).await[0]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = test_support::eventually("retry's order linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        rows.iter()
            .any(|r| r.0 == "created" && r.1.as_deref() == Some(sap_number.as_str()))
            .then_some(rows)
    })
    .await;
    let live: Vec<_> = rows.iter().filter(|r| r.0 != "voided").collect();
    assert_eq!(live.len(), 1, "{rows:?}");
    assert!(rows.len() <= 2, "{rows:?}");
}

#[tokio::test]
async fn in_events_mode_a_create_goes_to_the_order_service_alone_and_reads_come_back_legacy_shaped()
{
    let s = Stack::start(Options {
        mode: "events",
        ..Options::default()
    })
    .await;
    let reference = unique("EVENTS");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    assert!(number.starts_with('8') && number.len() == 10, "{number}");
    assert_eq!(
        s.sap_orders(&reference).await.len(),
        0,
        "SAP is fed by sap-sync, not the proxy"
    );
    let rows = s.db_orders(&reference).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].2["CustomerPurchaseOrderDate"],
        "/Date(1795478400000+0000)/"
    );
    let by_key = s
        .get(format!(
            "{}{ROOT}/A_SalesOrder(SalesOrder=%27{number}%27)?$expand=to_Item",
            s.proxy_url()
        ))
        .await;
    assert_eq!(by_key.status, 200);
    let d = &by_key.json()["d"];
    assert_eq!(d["PurchaseOrderByCustomer"], reference.as_str());
    assert_eq!(d["to_Item"]["results"][0]["Material"], "TG11");
    // Edm.DateTime as S/4 (and the emulator) render it: no offset, whatever the client sent.
    assert_eq!(d["CustomerPurchaseOrderDate"], "/Date(1795478400000)/");
    let list = s
        .get(format!(
            "{}{ROOT}/A_SalesOrder?$filter=(PurchaseOrderByCustomer%20eq%20'{reference}')",
            s.proxy_url()
        ))
        .await;
    assert_eq!(list.json()["d"]["results"].as_array().unwrap().len(), 1);
    // Invalid input gets an OData error and stores nothing.
    let mut bad = order_body(&format!("{reference}-BAD"));
    bad["to_Item"][0]["RequestedQuantity"] = serde_json::json!("-1");
    let refused = s.sdk_create(&s.proxy_url(), &bad, &[]).await;
    assert!((400..500).contains(&refused.status), "{}", refused.status);
    assert!(refused.json()["error"]["message"]["value"].is_string());
    assert_eq!(s.db_orders(&format!("{reference}-BAD")).await.len(), 0);
}
