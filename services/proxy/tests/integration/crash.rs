//! SIGKILL with replays pending: after restart every replay lands, and both systems hold
//! exactly the orders the client was told succeeded.

use crate::common::*;

#[tokio::test]
async fn a_proxy_killed_with_replays_pending_lands_every_one_after_restart() {
    let mut s = Stack::start(Options::default()).await;
    s.stop_order_service();
    let batch = unique("CRASH");
    let mut told_ok = Vec::new();
    for i in 0..8 {
        let reference = format!("{batch}-{i}");
        let r = s
            .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        told_ok.push((
            reference,
            r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(s.replays().await.len(), told_ok.len());
    s.kill_proxy(); // SIGKILL: no shutdown hook runs
    s.start_order_service().await;
    s.start_proxy().await;
    s.wait_replays_drained().await;
    for (reference, number) in &told_ok {
        let rows = s.db_orders(reference).await;
        assert_eq!(rows.len(), 1, "{reference}: {rows:?}");
        assert_eq!(
            rows[0].1.as_deref(),
            Some(number.as_str()),
            "{reference} linked"
        );
        assert_eq!(s.sap_orders(reference).await.len(), 1, "{reference} in SAP");
    }
    let db_total = s.db_all().await.len();
    let sap_total = s.sap_all().await.len();
    assert_eq!((db_total, sap_total), (told_ok.len(), told_ok.len()));
}

#[tokio::test]
async fn a_proxy_killed_with_store_and_forward_writes_pending_creates_each_in_sap_exactly_once() {
    let mut s = Stack::start(Options {
        policy: "store-and-forward",
        ..Options::default()
    })
    .await;
    s.sap_faults(serde_json::json!({"outage": "unavailable"}))
        .await;
    let batch = unique("CRASH-SAF");
    let refs: Vec<String> = (0..5).map(|i| format!("{batch}-{i}")).collect();
    for reference in &refs {
        let r = s
            .sdk_create(&s.proxy_url(), &order_body(reference), &[])
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    s.kill_proxy();
    s.sap_faults(serde_json::json!({})).await;
    s.start_proxy().await;
    s.wait_replays_drained().await;
    for reference in &refs {
        let sap = s.sap_orders(reference).await;
        assert_eq!(sap.len(), 1, "{reference}: {sap:?}");
        let rows = s.db_orders(reference).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.as_deref(), sap[0]["SalesOrder"].as_str());
    }
    assert_eq!(s.sap_all().await.len(), refs.len());
    assert_eq!(s.db_all().await.len(), refs.len());
}
