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
    // Agreeing pair found through the shared number alone (created in SAP under the order
    // service's own number, not linked yet).
    let b = new_create(&client, &orders, "SAME-NUMBER", "1").await;
    let sap_b = sap_create(
        &client,
        &sap,
        sap_body("SAME-NUMBER", "1", b["order_number"].as_str()),
    )
    .await;
    assert_eq!(sap_b, b["order_number"].as_str().unwrap());
    // Mismatch: quantities differ.
    let c = new_create(&client, &orders, "MISMATCH", "3").await;
    let sap_c = sap_create(&client, &sap, sap_body("MISMATCH", "4", None)).await;
    link(&client, &orders, &c, &sap_c).await;
    // Duplicate: a copy of one SAP order (its number kept in the specifications) linked to
    // another.
    let sap_d1 = sap_create(&client, &sap, sap_body("DUP", "1", None)).await;
    let sap_d2 = sap_create(&client, &sap, sap_body("DUP", "1", None)).await;
    let d: Value = client
        .post(format!("{orders}/api/v1/orders"))
        .json(
            &json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": "DUP",
            "specifications": {"SalesOrder": sap_d1},
            "items": [{"sku": "TG11", "quantity": "1", "unit": "PC", "unit_price": "12.50"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    link(&client, &orders, &d, &sap_d2).await;
    // Linked, but without what SAP derived (no price sent, none known): drift until
    // --repair-links gives it SAP's pricing.
    let g: Value = client
        .post(format!("{orders}/api/v1/orders"))
        .json(
            &json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": "UNPRICED",
            "items": [{"sku": "TG11", "quantity": "2", "unit": "PC"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sap_g = sap_create(&client, &sap, sap_body("UNPRICED", "2", None)).await;
    link(&client, &orders, &g, &sap_g).await;
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
    assert_eq!(r["sap_orders"], 7);
    assert_eq!(r["new_orders"], 6);
    assert_eq!(r["paired"], 5, "{r}");
    assert_eq!(r["missing_in_sap"], json!([e["order_number"]]));
    assert_eq!(r["missing_in_order_service"], json!([sap_f]));
    assert_eq!(
        r["duplicates"][d["order_number"].as_str().unwrap()],
        json!([sap_d2, sap_d1])
    );
    let mut mismatched: Vec<&str> = r["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m[0].as_str())
        .collect();
    mismatched.sort();
    let mut expected = [
        c["order_number"].as_str().unwrap(),
        g["order_number"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(mismatched, expected, "{r}");
    assert_eq!(result["drift"], 5);
    assert_eq!(
        r["unlinked"],
        json!([{"order_id": b["id"], "order_number": b["order_number"], "sap_number": sap_b}]),
        "the pair by number alone is listed as unlinked"
    );
    assert_eq!(
        r["unpriced"],
        json!([{"order_id": g["id"], "order_number": g["order_number"], "sap_number": sap_g}])
    );

    // --repair-links sets SAP's number on the unlinked order, and a second run finds none.
    let repaired = reconcile(&sap, &orders, "--repair-links");
    let said = String::from_utf8_lossy(&repaired.stdout);
    assert!(said.contains("linked 1 of 1 unlinked orders"), "{said}");
    assert!(
        said.contains("gave SAP's amounts to 1 of 1 orders that lacked them"),
        "{said}"
    );
    let b_url = format!("{orders}/api/v1/orders/{}", b["id"].as_str().unwrap());
    let b_now = get_json(&client, &b_url).await;
    assert_eq!(b_now["sap_order_number"], json!(sap_b));
    let again = reconcile(&sap, &orders, "--json");
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["report"]["unlinked"], json!([]));
    assert_eq!(again["report"]["unpriced"], json!([]));
    assert_eq!(
        again["drift"], 4,
        "the unpriced pair agrees now; linking changes no other drift"
    );

    let failing = reconcile(&sap, &orders, "--fail-on-drift");
    assert_eq!(
        failing.status.code(),
        Some(1),
        "drift makes --fail-on-drift exit 1"
    );
}
