//! Mode switches under load: no failed and no duplicated request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;

#[tokio::test]
async fn mode_switches_under_load_fail_no_request_and_duplicate_no_order() {
    let s = Arc::new(
        Stack::start(Options {
            mode: "legacy",
            ..Options::default()
        })
        .await,
    );
    let batch = unique("SWITCH");
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        let stop = stop.clone();
        let batch = batch.clone();
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let reference = format!("{batch}-{w}-{i}");
                let r = s
                    .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
                    .await;
                results.push((reference, r.status));
                i += 1;
            }
            results
        }));
    }
    let modes = ["dual-write", "legacy", "dual-write", "legacy", "dual-write"];
    for mode in modes {
        // Let some requests through in each mode.
        let before = s.sap_all().await.len();
        test_support::eventually("requests flowing", WAIT, || async {
            (s.sap_all().await.len() >= before + 4).then_some(())
        })
        .await;
        let r = s.set_mode(mode, true).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await.unwrap());
    }
    let failed: Vec<_> = results.iter().filter(|(_, st)| *st != 201).collect();
    assert!(failed.is_empty(), "failed during switches: {failed:?}");
    s.wait_replays_drained().await;
    let sap = s.sap_all().await;
    let mut per_ref: HashMap<String, usize> = HashMap::new();
    for o in &sap {
        *per_ref
            .entry(o["PurchaseOrderByCustomer"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(sap.len(), results.len(), "one SAP order per request");
    assert!(per_ref.values().all(|n| *n == 1), "a duplicate in SAP");
    let db = test_support::eventually("dual-written orders linked", WAIT, || async {
        let db = s.db_all().await;
        db.iter().all(|(_, _, n)| n.is_some()).then_some(db)
    })
    .await;
    let mut db_refs: HashMap<String, usize> = HashMap::new();
    for (reference, status, sap_number) in &db {
        assert_eq!(status, "created");
        assert!(sap_number.is_some(), "every dual-written order is linked");
        *db_refs.entry(reference.clone().unwrap()).or_default() += 1;
    }
    assert!(
        db_refs.values().all(|n| *n == 1),
        "a duplicate in PostgreSQL"
    );
    assert!(
        db_refs.keys().all(|r| per_ref.contains_key(r)),
        "an order only in PostgreSQL"
    );
    assert!(!db.is_empty(), "some requests ran in dual-write");
    assert!(db.len() < results.len(), "some requests ran in legacy");
}

/// sap-sync's `/status` with `lag` events behind and `parked` orders, not holding: a backlog
/// (the oldest event it works on is 30 s old, from before any return the test asks for).
fn sap_sync_behind(lag: u64, parked: u64) -> serde_json::Value {
    let age = if lag > 0 { 30.0 } else { 0.0 };
    serde_json::json!({"joined": true, "lag_messages": lag, "lag_seconds": age,
        "parked_orders": parked, "partitions": [0, 1, 2], "held": false, "hold_reason": null,
        "retention_gap": false, "retention_gap_partitions": []})
}

fn failing(r: &Resp) -> Vec<String> {
    r.json()["criteria"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["ok"] == false)
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn report(s: &Stack, body: serde_json::Value) {
    let r = s
        .admin(
            reqwest::Method::PUT,
            "/admin/v1/routes/sales-orders/reconciliation",
            Some(body),
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn switch(s: &Stack, body: serde_json::Value) -> Resp {
    s.admin(
        reqwest::Method::POST,
        "/admin/routes/sales-orders/mode",
        Some(body),
        Some(TOKEN),
    )
    .await
}

async fn audit(s: &Stack) -> Vec<serde_json::Value> {
    let r = s
        .admin(
            reqwest::Method::GET,
            "/admin/v1/routes/sales-orders/audit",
            None,
            Some(TOKEN),
        )
        .await;
    r.json()["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_switch_to_retired_is_refused_while_sap_sync_has_a_backlog_or_the_reconciliation_is_partial_and_allowed_when_clean()
 {
    let s = Stack::start(Options {
        mode: "events",
        proxy_env: vec![
            ("PROXY_SHADOW_MIN_SAMPLES", "0".into()),
            ("PROXY_SHADOW_MIN_MATCH_RATE", "0".into()),
        ],
        // Within the events bound (100), but not empty.
        sap_sync_status: Some(sap_sync_behind(3, 0)),
        ..Options::default()
    })
    .await;
    report(&s, serde_json::json!({"drift": 0})).await;
    let refused = s.set_mode("retired", false).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(
        failing(&refused),
        ["sap_sync_drained", "reconciliation_full"],
        "{:?}",
        refused.json()
    );
    let criteria = refused.json()["criteria"].as_array().cloned().unwrap();
    let detail = |name: &str| {
        criteria.iter().find(|c| c["name"] == name).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        detail("sap_sync_drained").contains("3 behind"),
        "{criteria:?}"
    );
    assert!(
        detail("reconciliation_full").contains("full reconciliation"),
        "{criteria:?}"
    );
    // A full reconciliation, as `orderctl reconcile --report-route` sends it; still a backlog.
    report(
        &s,
        serde_json::json!({"drift": 0, "scope": "full", "sap_orders": 0, "new_orders": 0}),
    )
    .await;
    let refused = s.set_mode("retired", false).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(failing(&refused), ["sap_sync_drained"]);
    s.set_sap_sync_status(sap_sync_behind(0, 1));
    let refused = s.set_mode("retired", false).await;
    assert_eq!(
        failing(&refused),
        ["sap_sync_no_parked_orders", "sap_sync_drained"]
    );
    assert_eq!(s.sales_orders_route().await["mode"], "events");
    s.set_sap_sync_status(sap_sync_behind(0, 0));
    let ok = s.set_mode("retired", false).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.json()["mode"], "retired");
}

#[tokio::test]
async fn a_switch_back_from_retired_keeps_serving_retired_until_sap_sync_caught_up_even_across_a_restart()
 {
    let mut s = Stack::start(Options {
        mode: "retired",
        sap_sync_status: Some(sap_sync_behind(4, 0)),
        ..Options::default()
    })
    .await;
    let r = switch(&s, serde_json::json!({"mode": "events", "wait_seconds": 1})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let body = r.json();
    assert_eq!(body["state"], "catching_up");
    assert_eq!(
        (body["lag"].as_u64(), body["parked"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("4 events to go"),
        "{body}"
    );
    let route = s.sales_orders_route().await;
    assert_eq!(
        (route["mode"].as_str(), route["returning_to"].as_str()),
        (Some("retired"), Some("events")),
        "{route}"
    );
    assert_eq!(route["return_progress"]["lag"], 4, "{route}");
    // The flag is persisted: a restarted proxy goes on with the return.
    s.kill_proxy();
    s.start_proxy().await;
    let route = s.sales_orders_route().await;
    assert_eq!(
        (route["mode"].as_str(), route["returning_to"].as_str()),
        (Some("retired"), Some("events"))
    );
    s.set_sap_sync_status(sap_sync_behind(0, 0));
    let route = test_support::eventually("the return completed", WAIT, || async {
        let r = s.sales_orders_route().await;
        (r["mode"] == "events").then_some(r)
    })
    .await;
    assert!(route["returning_to"].is_null(), "{route}");
    let trail: Vec<(String, String, String)> = audit(&s)
        .await
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        trail,
        [
            t("returning_to", "none", "events"),
            t("mode", "retired", "events")
        ]
    );
    let done = audit(&s).await.last().cloned().unwrap();
    assert!(
        done["who"].as_str().unwrap().contains("SAP caught up"),
        "{done}"
    );
    assert_eq!(done["forced"], false);
}

#[tokio::test]
async fn while_returning_a_new_target_retargets_retired_cancels_and_force_completes_at_once() {
    let s = Stack::start(Options {
        mode: "retired",
        sap_sync_status: Some(sap_sync_behind(7, 0)),
        ..Options::default()
    })
    .await;
    let r = switch(&s, serde_json::json!({"mode": "events", "wait_seconds": 0})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let r = switch(&s, serde_json::json!({"mode": "legacy", "wait_seconds": 0})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(s.sales_orders_route().await["returning_to"], "legacy");
    // Retired again: the return is cancelled (the route never left retired).
    let r = s.set_mode("retired", false).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.json()["returning_to"].is_null(), "{:?}", r.json());
    assert_eq!(r.json()["mode"], "retired");
    // Forced: at once, whatever sap-sync says, audited as forced.
    switch(
        &s,
        serde_json::json!({"mode": "dual-write", "wait_seconds": 0}),
    )
    .await;
    let r = switch(&s, serde_json::json!({"mode": "dual-write", "force": true})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (
            r.json()["mode"].as_str(),
            r.json()["returning_to"].is_null()
        ),
        (Some("dual-write"), true)
    );
    let last = audit(&s).await.last().cloned().unwrap();
    assert_eq!(
        (&last["field"], &last["from"], &last["to"], &last["forced"]),
        (
            &serde_json::json!("mode"),
            &serde_json::json!("retired"),
            &serde_json::json!("dual-write"),
            &serde_json::json!(true)
        )
    );
    // Caught up within the wait: the call answers 200 with the route switched.
    let r = s.set_mode("retired", true).await;
    assert_eq!(r.status, 200);
    s.set_sap_sync_status(sap_sync_behind(0, 0));
    let r = switch(
        &s,
        serde_json::json!({"mode": "events", "wait_seconds": 30}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["mode"], "events");
}
