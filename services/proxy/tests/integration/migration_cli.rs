//! `orderctl migration` against a real proxy: phase, time there, a return in progress, and what
//! blocks the next step; one sentence and a failing status when the proxy cannot be reached.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn orderctl_migration_tells_the_phase_the_time_there_a_return_and_what_blocks_the_next_step()
{
    let s = Stack::start(Options {
        mode: "events",
        proxy_env: vec![
            ("PROXY_SHADOW_MIN_SAMPLES", "0".into()),
            ("PROXY_SHADOW_MIN_MATCH_RATE", "0".into()),
        ],
        sap_sync_status: Some(
            json!({"joined": true, "lag_messages": 3, "lag_seconds": 30.0,
            "parked_orders": 0, "partitions": [0], "held": false}),
        ),
        ..Options::default()
    })
    .await;
    let admin = s.admin_url();
    let (ok, out, err) = s.orderctl(&["migration"], &admin).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("sales-orders") && out.contains("3 events"),
        "{out}"
    );
    assert!(out.contains("phase 3 (events) since"), "{out}");
    assert!(out.contains("Not ready for retired"), "{out}");
    assert!(
        out.contains("sap_sync_drained:") && out.contains("3 behind"),
        "{out}"
    );
    assert!(out.contains("reconciliation_full:"), "{out}");
    let (ok, out, err) = s.orderctl(&["migration", "--json"], &admin).await;
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let route = &v["routes"][0];
    assert_eq!(
        (route["phase"].as_u64(), route["mode"].as_str()),
        (Some(3), Some("events"))
    );
    assert!(route["seconds_in_phase"].as_i64().unwrap() >= 0);
    let blocking: Vec<&str> = route["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(blocking.contains(&"sap_sync_drained"), "{blocking:?}");
    assert!(
        blocking.contains(&"reconciliation_drift_zero"),
        "{blocking:?}"
    );
    // Retired, then a return that waits for sap-sync.
    assert_eq!(s.set_mode("retired", true).await.status, 200);
    let r = s
        .admin(
            reqwest::Method::PUT,
            "/admin/v1/routes/sales-orders/mode",
            Some(json!({"mode": "events", "wait_seconds": 0})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let (ok, out, err) = s.orderctl(&["migration"], &admin).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("4 retired"), "{out}");
    assert!(out.contains("It is returning to events"), "{out}");
    let (_, out, _) = s.orderctl(&["migration", "--json"], &admin).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["routes"][0]["returning_to"], "events");
    // Unreachable: one sentence, failing status, no backtrace.
    let (ok, out, err) = s.orderctl(&["migration"], "http://127.0.0.1:1").await;
    assert!(!ok, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("cannot be reached"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !err.contains("backtrace") && !err.contains("panicked"),
        "{err}"
    );
}
