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

#[tokio::test]
async fn orderctl_routes_mode_and_replays_speak_in_tables_and_sentences_and_a_refusal_names_its_criteria()
 {
    let s = Stack::start(Options {
        mode: "dual-write",
        proxy_env: vec![("PROXY_SHADOW_MIN_SAMPLES", "1000".into())],
        ..Options::default()
    })
    .await;
    let admin = s.admin_url();
    let (ok, out, err) = s.orderctl(&["routes"], &admin).await;
    assert!(ok, "{out}{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("ROUTE") && first.contains("MODE"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("sales-orders") && l.contains("dual-write")),
        "{out}"
    );
    assert!(out.contains("✗ shadow_match_rate"), "{out}");
    // Forward without readiness: refused, explained by the failing criteria, nothing changed.
    let (ok, out, err) = s
        .orderctl(&["mode", "sales-orders", "events"], &admin)
        .await;
    assert!(!ok, "a refused switch exits non-zero: {out}{err}");
    assert!(
        err.starts_with("orderctl: the proxy refused (409)"),
        "{err}"
    );
    assert!(
        err.contains("not ready because:") && err.contains("✗ shadow_match_rate"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains("Error {"),
        "no backtrace or debug dump for an expected refusal: {err}"
    );
    assert_eq!(
        s.sales_orders_route().await["mode"],
        "dual-write",
        "the mode did not change"
    );
    // A wrong token is one sentence too.
    let out2 = tokio::process::Command::new(binaries().join("orderctl"))
        .args(["routes", "--admin-token", "wrong"])
        .env("PROXY_ADMIN_URL", &admin)
        .output()
        .await
        .unwrap();
    let err2 = String::from_utf8_lossy(&out2.stderr);
    assert!(!out2.status.success());
    assert!(err2.contains("refused the admin token (401)"), "{err2}");
    // Back is always allowed: a sentence; --json gives the route.
    let (ok, out, err) = s
        .orderctl(&["mode", "sales-orders", "legacy"], &admin)
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "sales-orders now runs in legacy.");
    let (ok, out, err) = s
        .orderctl(
            &["mode", "sales-orders", "dual-write", "--force", "--json"],
            &admin,
        )
        .await;
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "dual-write");
    let (ok, out, err) = s.orderctl(&["replays", "list"], &admin).await;
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("The replay log is empty"), "{out}");
}
