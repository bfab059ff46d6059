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
