//! SIGKILL with replays pending: after restart every replay lands, and both systems hold
//! exactly the orders the client was told succeeded.

use serde_json::json;

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

#[tokio::test]
async fn a_proxy_killed_while_creates_are_in_flight_toward_sap_leaves_one_order_each_after_retries()
{
    let mut s = Stack::start(Options::default()).await;
    let batch = unique("INFLIGHT");
    // SAP takes a second per create; the proxy dies while all of them are with SAP, which
    // finishes them anyway (as an SAP work process does).
    let sessions = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(s.csrf(&s.proxy_url()).await);
        }
        v
    };
    s.sap_faults(json!({"latency_ms": 1000})).await;
    let clients: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, session)| {
            let (url, reference, key) = (
                s.proxy_url(),
                format!("{batch}-{i}"),
                format!("{batch}-key-{i}"),
            );
            let http = s.http.clone();
            tokio::spawn(async move {
                let _ = http
                    .post(format!("{url}{ROOT}/A_SalesOrder"))
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .header("x-csrf-token", &session.0)
                    .header("cookie", &session.1)
                    .header("idempotency-key", key)
                    .body(serde_json::to_vec(&order_body(&reference)).unwrap())
                    .send()
                    .await;
            })
        })
        .collect();
    // SAP counts every request it holds for the latency: six means all six creates reached it.
    test_support::eventually("all six creates held by SAP", WAIT, || async {
        (s.sap_requests_delayed().await >= 6.0).then_some(())
    })
    .await;
    s.kill_proxy(); // SIGKILL with every create in flight toward SAP
    for c in clients {
        let _ = c.await;
    }
    s.sap_faults(json!({})).await;
    test_support::eventually("SAP finished every create", WAIT, || async {
        (s.sap_all().await.len() == 6).then_some(())
    })
    .await;
    s.start_proxy().await;
    // Every client retries with its key: the retry names the same number, SAP refuses a
    // second create of it, and the proxy answers with the order SAP made.
    for i in 0..6 {
        let reference = format!("{batch}-{i}");
        let r = s
            .sdk_create(
                &s.proxy_url(),
                &order_body(&reference),
                &[("idempotency-key", &format!("{batch}-key-{i}"))],
            )
            .await;
        assert_eq!(r.status, 201, "{reference}: {:?}", r.body);
        let sap = s.sap_orders(&reference).await;
        assert_eq!(sap.len(), 1, "{reference}: {sap:?}");
        assert_eq!(r.json()["d"]["SalesOrder"], sap[0]["SalesOrder"]);
    }
    s.wait_replays_drained().await;
    for i in 0..6 {
        let reference = format!("{batch}-{i}");
        let rows = test_support::eventually("one live, linked order", WAIT, || async {
            let rows = s.db_orders(&reference).await;
            let live: Vec<_> = rows.iter().filter(|r| r.0 != "voided").cloned().collect();
            (live.len() == 1 && live[0].1.is_some()).then_some(rows)
        })
        .await;
        assert!(
            rows.iter().filter(|r| r.0 != "voided").count() == 1,
            "{reference}: {rows:?}"
        );
    }
    assert_eq!(
        s.sap_all().await.len(),
        6,
        "no second SAP order for any key"
    );
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status <> 'voided'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(live, 6, "no second live order in PostgreSQL");
}

#[tokio::test]
async fn a_proxy_killed_while_store_and_forward_replays_are_in_flight_toward_sap_creates_each_once()
{
    let mut s = Stack::start(Options {
        policy: "store-and-forward",
        ..Options::default()
    })
    .await;
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let batch = unique("SAF-INFLIGHT");
    let refs: Vec<String> = (0..4).map(|i| format!("{batch}-{i}")).collect();
    for reference in &refs {
        let r = s
            .sdk_create(&s.proxy_url(), &order_body(reference), &[])
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    // SAP comes back slow: the replays' creates reach it and are held there when the proxy
    // dies; SAP finishes them anyway.
    let before = s.sap_requests_delayed().await;
    s.sap_faults(json!({"latency_ms": 1500})).await;
    test_support::eventually("replay creates held by SAP", WAIT, || async {
        // Each replay fetches a CSRF token and then creates: both are held.
        (s.sap_requests_delayed().await - before >= 2.0 * refs.len() as f64).then_some(())
    })
    .await;
    s.kill_proxy();
    s.sap_faults(json!({})).await;
    s.start_proxy().await;
    s.wait_replays_drained().await;
    for reference in &refs {
        let sap = s.sap_orders(reference).await;
        assert_eq!(sap.len(), 1, "{reference}: {sap:?}");
        let rows = s.db_orders(reference).await;
        assert_eq!(rows.len(), 1, "{reference}: {rows:?}");
        assert_eq!(rows[0].1.as_deref(), sap[0]["SalesOrder"].as_str());
    }
    assert_eq!(s.sap_all().await.len(), refs.len());
    assert_eq!(s.db_all().await.len(), refs.len());
}
