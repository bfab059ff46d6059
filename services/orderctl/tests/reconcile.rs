//! `orderctl reconcile` against the real SAP emulator and the real order service: agreeing
//! orders are paired, and each kind of drift is named by order.
//!
//! Needs the `sap-mock` and `order-service` binaries built next to this test's target folder
//! (`cargo test --workspace`, as `scripts/test` runs it, builds them).

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Runs `orderctl reconcile FLAG` against the two systems (no SAP credentials).
fn reconcile(sap: &str, orders: &str, flag: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orderctl"))
        .args(["reconcile", flag, "--sap-url", sap, "--orders-url", orders])
        .env_remove("SAP_USER")
        .output()
        .unwrap()
}

#[tokio::test]
async fn reconcile_pairs_agreeing_orders_and_names_each_kind_of_drift() {
    let sys = Systems::start().await;
    let (sap, orders, client) = (sys.sap.clone(), sys.orders.clone(), sys.client.clone());

    // Agreeing pair, linked by number (as dual write links them); quantities at other scales.
    let a = new_create(&client, &orders, "AGREE", "2.000").await;
    let sap_a = sap_create(&client, &sap, sap_body("AGREE", "2", None)).await;
    link(&client, &orders, &a, &sap_a).await;
    // Agreeing pair found through the proxy's stamp (ExternalDocumentID = correlation id).
    let b = new_create(&client, &orders, "STAMPED", "1").await;
    let sap_b = sap_create(
        &client,
        &sap,
        sap_body("STAMPED", "1", b["correlation_id"].as_str()),
    )
    .await;
    // Mismatch: quantities differ.
    let c = new_create(&client, &orders, "MISMATCH", "3").await;
    let sap_c = sap_create(&client, &sap, sap_body("MISMATCH", "4", None)).await;
    link(&client, &orders, &c, &sap_c).await;
    // Duplicate: two SAP orders carry the same stamp.
    let d = new_create(&client, &orders, "DUP", "1").await;
    let sap_d1 = sap_create(
        &client,
        &sap,
        sap_body("DUP", "1", d["correlation_id"].as_str()),
    )
    .await;
    let sap_d2 = sap_create(
        &client,
        &sap,
        sap_body("DUP", "1", d["correlation_id"].as_str()),
    )
    .await;
    // Missing on each side.
    let e = new_create(&client, &orders, "ONLY-NEW", "1").await;
    let sap_f = sap_create(&client, &sap, sap_body("ONLY-SAP", "1", None)).await;

    let out = reconcile(&sap, &orders, "--json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &result["report"];
    assert_eq!(r["sap_orders"], 6);
    assert_eq!(r["new_orders"], 5);
    assert_eq!(r["paired"], 4, "{r}");
    assert_eq!(r["missing_in_sap"], json!([e["order_number"]]));
    assert_eq!(r["missing_in_order_service"], json!([sap_f]));
    assert_eq!(
        r["duplicates"][d["order_number"].as_str().unwrap()],
        json!([sap_d1, sap_d2])
    );
    assert_eq!(r["mismatches"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["mismatches"][0][0], c["order_number"]);
    assert_eq!(result["drift"], 4);
    assert_eq!(
        r["unlinked"],
        json!([{"order_id": b["id"], "order_number": b["order_number"], "sap_number": sap_b}]),
        "the stamped pair is listed as unlinked (the duplicate's pairs are drift already)"
    );

    // --repair-links sets SAP's number on the unlinked order, and a second run finds none.
    let repaired = reconcile(&sap, &orders, "--repair-links");
    assert!(
        String::from_utf8_lossy(&repaired.stdout).contains("linked 1 of 1 unlinked orders"),
        "{}",
        String::from_utf8_lossy(&repaired.stdout)
    );
    let b_url = format!("{orders}/api/v1/orders/{}", b["id"].as_str().unwrap());
    let b_now = get_json(&client, &b_url).await;
    assert_eq!(b_now["sap_order_number"], json!(sap_b));
    let again = reconcile(&sap, &orders, "--json");
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["report"]["unlinked"], json!([]));
    assert_eq!(again["drift"], 4, "repairing links changes no drift");

    let failing = reconcile(&sap, &orders, "--fail-on-drift");
    assert_eq!(
        failing.status.code(),
        Some(1),
        "drift makes --fail-on-drift exit 1"
    );
}
