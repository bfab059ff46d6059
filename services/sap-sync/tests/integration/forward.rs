//! Forward: order events into SAP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn orders_taken_by_the_order_service_reach_sap_under_their_own_number_once() {
    let s = Stack::start(vec![], vec![]).await;
    let mut numbers = Vec::new();
    for i in 0..3 {
        let (_, n) = s.create_order(&unique(&format!("FWD-{i}")), "TG11").await;
        numbers.push(n);
    }
    s.wait_in_sap(&numbers).await;
    for n in &numbers {
        let o = s.sap_order(n).await.expect("in SAP");
        assert_eq!(o["SalesOrder"], n.as_str());
        assert_eq!(o["SoldToParty"], "17100001");
        let items = o["to_Item"]["results"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["Material"], "TG11");
        // SAP priced it from its own conditions; nothing S/4 does not accept was sent.
        assert_ne!(o["TotalNetAmount"], "0.00");
    }
    s.wait_drained(0).await;
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 3.0);
    assert_eq!(s.sap_stored().await, (3, 6));
    // What sap-sync did with each order's events, for the journey (`GET /orders/{number}`):
    // that order's alone, one of them applied in SAP; an order it never saw is a 404.
    for n in &numbers {
        let r = s
            .http
            .get(format!("{}/orders/{n}", s.sync_url(0)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let applied = v["applied"].as_array().unwrap();
        assert!(!applied.is_empty(), "{v}");
        assert!(
            applied.iter().all(|a| a["order_number"] == n.as_str()),
            "{v}"
        );
        assert_eq!(
            applied.iter().filter(|a| a["outcome"] == "applied").count(),
            1,
            "{v}"
        );
    }
    let r = s
        .http
        .get(format!("{}/orders/NO-SUCH-ORDER", s.sync_url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn while_sap_is_down_orders_are_taken_lag_grows_and_drains_once_sap_is_back() {
    let s = Stack::start(vec![], vec![]).await;
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let mut numbers = Vec::new();
    for i in 0..8 {
        let (_, n) = s.create_order(&unique(&format!("DOWN-{i}")), "TG11").await;
        numbers.push(n);
    }
    let status = test_support::eventually("lag reported while SAP is down", WAIT, || async {
        let st = s.status(0).await;
        (st["paused"] == true && st["lag_messages"].as_i64().unwrap_or(0) > 0).then_some(st)
    })
    .await;
    assert_eq!(
        status["parked_orders"], 0,
        "an outage parks nothing: {status}"
    );
    assert_eq!(s.sap_stored().await, (0, 0));
    s.sap_faults(json!({})).await;
    s.wait_in_sap(&numbers).await;
    s.wait_drained(0).await;
    assert_eq!(s.sap_stored().await, (8, 16));
    assert_eq!(s.status(0).await["paused"], false);
}

/// SIGTERM while SAP is down: sap-sync stops at once instead of retrying until SAP is back (it
/// did not, and `orderctl up` hung on Ctrl-C), and what it gave up is applied, once, by the
/// next instance.
#[tokio::test]
async fn sigterm_while_sap_is_down_stops_sap_sync_promptly_and_the_next_start_applies_what_it_left()
{
    let mut s = Stack::start(vec![], vec![]).await;
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let mut numbers = Vec::new();
    for i in 0..8 {
        let (_, n) = s.create_order(&unique(&format!("TERM-{i}")), "TG11").await;
        numbers.push(n);
    }
    test_support::eventually("sap-sync waiting for SAP", WAIT, || async {
        let st = s.status(0).await;
        (st["paused"] == true).then_some(())
    })
    .await;
    let mut first = s.syncs[0].0.take().expect("running");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    // The test's backoff is at most 1 s and SAP's timeout 3 s: 10 s is a stop, not a wait.
    test_support::eventually(
        "sap-sync exits after SIGTERM",
        std::time::Duration::from_secs(10),
        || {
            let gone = first.has_exited();
            async move { gone.then_some(()) }
        },
    )
    .await;
    assert!(
        s.sync_log(0).contains("event left for the next start"),
        "{}",
        s.sync_log(0)
    );
    assert_eq!(s.sap_stored().await, (0, 0));
    s.sap_faults(json!({})).await;
    let next = s.start_sync().await;
    s.wait_in_sap(&numbers).await;
    s.wait_drained(next).await;
    assert_eq!(s.sap_stored().await, (8, 16));
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 8.0);
}

#[tokio::test]
async fn a_refused_order_is_parked_others_flow_and_a_redrive_after_the_fix_applies_it() {
    let token = "redrive-test-token";
    let mut s = Stack::start(vec![], vec![("SAP_SYNC_ADMIN_TOKEN", token.to_owned())]).await;
    // TG99 is not a material SAP knows: SAP refuses the create.
    let (poison_id, poison) = s.create_order(&unique("POISON"), "TG99").await;
    let status = test_support::eventually("the order parked", WAIT, || async {
        let st = s.status(0).await;
        (st["parked_orders"] == 1).then_some(st)
    })
    .await;
    assert_eq!(
        status["paused"], false,
        "a refusal is not an outage: {status}"
    );
    // Its later changes wait behind the refused create, in order.
    for qty in ["3", "4"] {
        let (st, b) = s
            .change(
                Method::PATCH,
                &format!("{poison_id}/items/10"),
                Some(json!({ "quantity": qty })),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    test_support::eventually("the changes wait behind the refusal", WAIT, || async {
        let (_, out) = s.orderctl(&["sap-sync", "parked", "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        let events = v[0]["events"].as_array()?;
        let versions: Vec<i64> = events
            .iter()
            .filter_map(|e| e["version"].as_i64())
            .collect();
        (versions == [1, 2, 3]).then_some(())
    })
    .await;
    // Other orders flow.
    let (_, good) = s.create_order(&unique("GOOD"), "TG11").await;
    s.wait_in_sap(std::slice::from_ref(&good)).await;
    assert!(s.sap_order(&poison).await.is_none());
    let (ok, listed) = s.orderctl(&["sap-sync", "parked"]);
    assert!(ok, "{listed}");
    assert!(
        listed.contains(&poison) && listed.contains("TG99"),
        "{listed}"
    );
    // A redrive before the fix is refused again and stays parked.
    let (ok, out) = s.orderctl(&["sap-sync", "redrive", &poison, "--wait"]);
    assert!(!ok && out.contains("still parked"), "{out}");
    // The fix: SAP gets the material (the emulator restarts with it; its orders persist).
    let file = s.dir.join("master-data.json");
    std::fs::write(
        &file,
        serde_json::to_vec(
            &json!({"materials": [{"id": "TG99", "description": "Trading Good 99",
            "base_unit": "PC", "iso_unit": "PCE", "price": "9.99", "currency": "EUR",
            "material_group": "L001", "gross_weight": "0.5", "net_weight": "0.45",
            "weight_unit": "KG"}]}),
        )
        .unwrap(),
    )
    .unwrap();
    s.stop_sap();
    s.sap_env
        .push(("SAP_MOCK_MASTER_DATA", file.display().to_string()));
    s.start_sap().await;
    // This time over sap-sync's HTTP API, as the console asks for it: refused without the
    // token (and nothing asked), accepted with it.
    let url = format!("{}/parked/{poison}/redrive", s.sync_url(0));
    for auth in [None, Some("Bearer wrong-token")] {
        let mut req = s.http.post(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
    }
    let (_, out) = s.orderctl(&["sap-sync", "parked", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed[0]["redrive"], false,
        "a refused request asks nothing: {out}"
    );
    // Asked as the console asks: the proxy's admin API, which needs its own token and passes
    // sap-sync's on (`SAP_SYNC_ADMIN_TOKEN`).
    s.start_proxy_with("legacy", &[("SAP_SYNC_ADMIN_TOKEN", token.to_owned())])
        .await;
    let through_proxy = format!(
        "http://127.0.0.1:{}/admin/v1/sap-sync/parked/{poison}/redrive",
        s.proxy_admin
    );
    let r = s.http.post(&through_proxy).send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "the console's redrive needs the admin token"
    );
    let (_, out) = s.orderctl(&["sap-sync", "parked", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["redrive"], false, "nothing asked: {out}");
    let r = s
        .http
        .post(&through_proxy)
        .bearer_auth("e2e-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let asked: Value = r.json().await.unwrap();
    assert_eq!(asked["order_number"], poison.as_str());
    assert_eq!(asked["events"], 3);
    // Done when the order is no longer parked: every one of its events applied, in order.
    test_support::eventually("nothing parked after the redrive", WAIT, || async {
        (s.status(0).await["parked_orders"] == 0).then_some(())
    })
    .await;
    let o = s
        .sap_order(&poison)
        .await
        .expect("in SAP after the redrive");
    let unknown = s
        .http
        .post(format!("{}/parked/NOT-PARKED/redrive", s.sync_url(0)))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(o["to_Item"]["results"][0]["Material"], "TG99");
    let qty = sap_item(&o, "10").unwrap()["RequestedQuantity"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(qty.starts_with('4'), "the last change applied last: {qty}");
    assert_eq!(s.status(0).await["parked_orders"], 0);
    let (_, listed) = s.orderctl(&["sap-sync", "parked"]);
    assert!(listed.contains("No order is parked"), "{listed}");
    assert_eq!(s.sap_stored().await, (2, 4));
}

#[tokio::test]
async fn sigkill_a_rebalance_and_lost_answers_leave_exactly_one_sap_order_per_order() {
    let mut s = Stack::start(vec![], vec![]).await;
    // SAP commits every create but a third of its answers never arrive.
    s.sap_faults(json!({"latency_ms": 20, "lost_response_rate": 0.3}))
        .await;
    let mut numbers = Vec::new();
    for i in 0..15 {
        numbers.push(s.create_order(&unique(&format!("K-{i}")), "TG11").await.1);
    }
    test_support::eventually("some orders in SAP", WAIT, || async {
        (s.sap_stored().await.0 >= 5).then_some(())
    })
    .await;
    // Killed mid-stream, with events in work and offsets not committed.
    s.kill_sync(0);
    for i in 15..30 {
        numbers.push(s.create_order(&unique(&format!("K-{i}")), "TG11").await.1);
    }
    let a = s.start_sync().await;
    for i in 30..40 {
        numbers.push(s.create_order(&unique(&format!("K-{i}")), "TG11").await.1);
    }
    // A second instance joins: the partitions are shared out while events are in work.
    let b = s.start_sync().await;
    // And a change to ten of them while the group rebalances and answers get lost.
    let mut changed = Vec::new();
    for n in numbers.iter().take(10) {
        let id = s.order_id_by_number(n).await;
        let (st, body) = s
            .change(
                Method::PATCH,
                &format!("{id}/items/10"),
                Some(json!({"quantity": "7"})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        changed.push(n.clone());
    }
    s.wait_in_sap(&numbers).await;
    for n in &changed {
        test_support::eventually("the change in SAP", WAIT, || async {
            let o = s.sap_order(n).await?;
            sap_item(&o, "10")?["RequestedQuantity"]
                .as_str()?
                .starts_with('7')
                .then_some(())
        })
        .await;
    }
    s.sap_faults(json!({})).await;
    s.wait_drained(a).await;
    assert_eq!(s.sap_stored().await, (40, 80), "one SAP order per order");
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 40.0);
    let sap = s.sap_numbers().await;
    let mut unique_numbers = sap.clone();
    unique_numbers.sort();
    unique_numbers.dedup();
    assert_eq!(unique_numbers.len(), 40);
    assert!(numbers.iter().all(|n| sap.contains(n)));
    // Repeats were recognised by reading SAP, not by luck.
    let recognised = |i: usize| {
        let url = format!("{}/metrics", s.sync_url(i));
        let http = s.http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            text.lines()
                .find(|l| l.starts_with("sap_sync_duplicates_recognised_total"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        }
    };
    assert!(
        recognised(a).await + recognised(b).await > 0.0,
        "lost answers were retried by reading SAP first"
    );
    let parts = |st: serde_json::Value| st["partitions"].as_array().unwrap().len();
    assert_eq!(parts(s.status(a).await) + parts(s.status(b).await), 6);
}

/// SAP's item `no` of `order` (`d`).
fn sap_item<'a>(order: &'a Value, no: &str) -> Option<&'a Value> {
    order["to_Item"]["results"].as_array()?.iter().find(|i| {
        i["SalesOrderItem"]
            .as_str()
            .map(|s| s.trim_start_matches('0'))
            == Some(no)
    })
}

#[tokio::test]
async fn an_order_s_whole_life_reaches_sap_in_order_and_each_change_once() {
    let s = Stack::start(vec![], vec![]).await;
    let (id, number) = s.create_order(&unique("LIFE"), "TG11").await;
    s.wait_in_sap(std::slice::from_ref(&number)).await;
    // Quantity change, a rejected line, an added line, a header change.
    let (st, _) = s
        .change(
            Method::PATCH,
            &format!("{id}/items/10"),
            Some(json!({"quantity": "5"})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, b) = s
        .change(
            Method::PATCH,
            &format!("{id}/items/20"),
            Some(json!({"rejection_reason": "02"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .change(
            Method::POST,
            &format!("{id}/items"),
            Some(json!({"sku": "TG12", "quantity": "3", "unit": "PC", "unit_price": "9.00"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s
        .change(
            Method::PATCH,
            &id,
            Some(json!({"customer_reference": "LIFE-RENAMED"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let sap = test_support::eventually("every change in SAP", WAIT, || async {
        let o = s.sap_order(&number).await?;
        let done = sap_item(&o, "10")?["RequestedQuantity"]
            .as_str()?
            .starts_with('5')
            && sap_item(&o, "20")?["SalesDocumentRjcnReason"] == "02"
            && sap_item(&o, "30").is_some()
            && o["PurchaseOrderByCustomer"] == "LIFE-RENAMED";
        done.then_some(o)
    })
    .await;
    assert_eq!(
        sap["OverallSDDocumentRejectionSts"], "B",
        "one line of three rejected"
    );
    assert_eq!(sap_item(&sap, "30").unwrap()["Material"], "TG12");
    // Removing the added line, then cancelling: every line rejected in SAP.
    let (st, b) = s
        .change(Method::DELETE, &format!("{id}/items/30"), None)
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .change(
            Method::POST,
            &format!("{id}/cancel"),
            Some(json!({"reason": "customer"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let sap = test_support::eventually("cancelled in SAP", WAIT, || async {
        let o = s.sap_order(&number).await?;
        (sap_item(&o, "30").is_none() && o["OverallSDDocumentRejectionSts"] == "C").then_some(o)
    })
    .await;
    assert_eq!(
        sap_item(&sap, "10").unwrap()["SalesDocumentRjcnReason"],
        "00"
    );
    assert_eq!(
        sap_item(&sap, "20").unwrap()["SalesDocumentRjcnReason"],
        "02"
    );
    s.wait_drained(0).await;
    // One create; nothing SAP already had was sent again.
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 1.0);
    assert_eq!(s.sap_stored().await, (1, 2));
}

#[tokio::test]
async fn a_delivery_and_a_billing_made_in_sap_reach_the_order_service() {
    // S/4's standard: billing relevant by delivery; the invoice shows in the document flow.
    let s = Stack::start(vec![], vec![]).await;
    let (id, number) = s.create_order(&unique("FULFIL"), "TG11").await;
    s.wait_in_sap(std::slice::from_ref(&number)).await;
    let deliver = s
        .http
        .post(format!("{}/sap-mock/admin/deliveries", s.sap_url()))
        .json(&json!({"SalesOrder": number}))
        .send()
        .await
        .unwrap();
    assert!(deliver.status().is_success(), "{}", deliver.status());
    test_support::eventually("delivered on the order service", WAIT, || async {
        (s.order(&id).await["status"] == "delivered").then_some(())
    })
    .await;
    let bill = s
        .http
        .post(format!("{}/sap-mock/admin/billing", s.sap_url()))
        .json(&json!({"SalesOrder": number}))
        .send()
        .await
        .unwrap();
    assert!(bill.status().is_success(), "{}", bill.status());
    let order = test_support::eventually("billed on the order service", WAIT, || async {
        let o = s.order(&id).await;
        (o["status"] == "billed").then_some(o)
    })
    .await;
    // A delivered line cannot be rejected any more, on either side.
    let (st, b) = s
        .change(
            Method::PATCH,
            &format!("{id}/items/10"),
            Some(json!({"rejection_reason": "02"})),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(order["version"], 3, "created, delivered, billed: {order}");
}

#[tokio::test]
async fn sap_sync_started_before_the_events_topic_exists_still_feeds_sap() {
    let mut s = Stack::start(vec![], vec![]).await;
    // A fresh topic name nobody created yet; sap-sync starts first, then the order service.
    s.kill_sync(0);
    drop(s.orders.take());
    s.topic.name = format!("test-missing-{}", uuid::Uuid::new_v4().simple());
    s.group = format!("sap-sync-{}", uuid::Uuid::new_v4().simple());
    let i = s.start_sync().await;
    s.start_order_service().await;
    let (_, number) = s.create_order(&unique("LATE-TOPIC"), "TG11").await;
    s.wait_in_sap(std::slice::from_ref(&number)).await;
    s.wait_drained(i).await;
}

async fn void_order(s: &Stack, id: &str) {
    let r = s
        .http
        .post(format!("{}/api/v1/orders/{id}/void", s.orders_url()))
        .json(&json!({"reason": "sap_rejected"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "void refused: {}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_create_whose_order_was_voided_before_sap_sync_took_it_never_reaches_sap() {
    let mut s = Stack::start(vec![], vec![]).await;
    s.kill_sync(0);
    // A: created and voided, both events on the topic (the void queued behind the create).
    let (a, na) = s.create_order(&unique("VOID-A"), "TG11").await;
    void_order(&s, &a).await;
    // B: its create on the topic, its void committed while the relay is off: only the order
    // service knows the create is superseded.
    let (b, nb) = s.create_order(&unique("VOID-B"), "TG11").await;
    // C: an order that must reach SAP.
    let (_, nc) = s.create_order(&unique("VOID-C"), "TG11").await;
    let orders = s.orders_url();
    test_support::eventually("four events published", WAIT, || async {
        (s.metric(&orders, "outbox_published_total").await >= 4.0).then_some(())
    })
    .await;
    drop(s.orders.take());
    s.start_order_service_relaying(false).await;
    void_order(&s, &b).await;
    assert_eq!(s.order(&b).await["version"], 2);

    let i = s.start_sync().await;
    s.wait_in_sap(std::slice::from_ref(&nc)).await;
    s.wait_drained(i).await;
    let sync = s.sync_url(i);
    assert!(
        s.metric(&sync, "sap_sync_events_total{outcome=\"superseded\"}")
            .await
            >= 2.0,
        "both creates were taken and found superseded"
    );
    assert_eq!(s.sap_order(&na).await, None, "a voided order reached SAP");
    assert_eq!(s.sap_order(&nb).await, None, "a voided order reached SAP");

    // The relay back on: B's void reaches sap-sync too, and SAP still holds only C.
    drop(s.orders.take());
    s.start_order_service().await;
    test_support::eventually("B's void published", WAIT, || async {
        (s.metric(&orders, "outbox_published_total").await >= 1.0).then_some(())
    })
    .await;
    s.wait_drained(i).await;
    assert_eq!(s.sap_order(&nb).await, None);
    assert_eq!(s.sap_numbers().await, vec![nc]);
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 1.0);
}
