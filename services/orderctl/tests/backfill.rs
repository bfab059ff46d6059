//! `orderctl backfill` against the real SAP emulator and the real order service: SAP's orders
//! that the order service does not hold are copied (every field kept) and linked, the ones it
//! holds are left alone, one a backfill created but did not link before it died is linked (not
//! copied again), a second run copies nothing, and an order the service refuses is named without
//! stopping the others.
//!
//! Needs the `sap-mock` and `order-service` binaries built next to this test's target folder
//! (`cargo test --workspace`, as `scripts/test` runs it, builds them).

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn orderctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orderctl"))
        .args(args)
        .env_remove("SAP_USER")
        .output()
        .unwrap()
}

fn backfill(sys: &Systems) -> (Option<i32>, Value) {
    let out = orderctl(&[
        "backfill",
        "--json",
        "--sap-url",
        &sys.sap,
        "--orders-url",
        &sys.orders,
    ]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "backfill printed no JSON: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

async fn all_orders(sys: &Systems) -> Vec<Value> {
    let url = format!("{}/api/v1/orders?limit=200", sys.orders);
    let page = get_json(&sys.client, &url).await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn backfill_copies_every_sap_order_the_order_service_lacks_once_and_links_it() {
    let sys = Systems::start().await;
    let (sap, orders, client) = (&sys.sap, &sys.orders, &sys.client);

    // Two orders only in SAP, one with a second item and a delivery date.
    let mut rich = sap_body("HIST-1", "3", None);
    rich["RequestedDeliveryDate"] = json!("/Date(1767225600000)/");
    rich["to_Item"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Material": "TG12", "RequestedQuantity": "1", "RequestedQuantityUnit": "PC"}));
    let sap_1 = sap_create(client, sap, rich).await;
    let sap_2 = sap_create(client, sap, sap_body("HIST-2", "5", None)).await;
    // One order both sides hold already (as dual write leaves it).
    let both = new_create(client, orders, "BOTH", "1").await;
    let sap_both = sap_create(client, sap, sap_body("BOTH", "1", None)).await;
    link(client, orders, &both, &sap_both).await;
    // One the order service refuses: 251 items (it takes 250; with SAP's item properties the
    // body also passes its 256 KiB limit).
    let mut huge = sap_body("HUGE", "1", None);
    huge["to_Item"] = json!(
        (0..251)
            .map(|_| json!({"Material": "TG11", "RequestedQuantity": "1", "RequestedQuantityUnit": "PC"}))
            .collect::<Vec<_>>()
    );
    let sap_huge = sap_create(client, sap, huge).await;
    // One an earlier backfill created and died before linking: the order exists under the
    // backfill's correlation id, without SAP's number.
    let sap_3 = sap_create(client, sap, sap_body("HIST-3", "1", None)).await;
    let r = client
        .post(format!("{orders}/api/v1/orders"))
        .header("x-correlation-id", format!("backfill-sap-{sap_3}"))
        .json(
            &json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": "HIST-3",
                      "items": [{"sku": "TG11", "quantity": "1", "unit": "PC"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let (code, first) = backfill(&sys);
    assert_eq!(code, Some(1), "a refused order makes the run fail: {first}");
    assert_eq!(first["sap_orders"], 5, "{first}");
    assert_eq!(first["already_present"], 2, "{first}");
    assert_eq!(
        first["linked"],
        json!([sap_3]),
        "the half-done copy is linked: {first}"
    );
    assert_eq!(
        first["priced"],
        json!([]),
        "BOTH already holds SAP's amounts: {first}"
    );
    let mut copied = vec![sap_1.clone(), sap_2.clone()];
    copied.sort();
    assert_eq!(first["copied"], json!(copied), "{first}");
    assert_eq!(first["failed"][0][0], json!(sap_huge), "{first}");
    assert_eq!(
        first["failed"].as_array().unwrap().len(),
        1,
        "only HUGE fails: {first}"
    );
    assert!(
        first["failed"][0][1]
            .as_str()
            .unwrap()
            .contains("the order service refused it (413"),
        "the reason is the order service's answer: {first}"
    );

    let stored = all_orders(&sys).await;
    assert_eq!(
        stored.len(),
        4,
        "BOTH, the half-done copy and the two new copies; nothing of HUGE"
    );
    assert_eq!(
        stored
            .iter()
            .filter(|o| o["customer_reference"] == "HIST-3")
            .map(|o| &o["sap_order_number"])
            .collect::<Vec<_>>(),
        [&json!(sap_3)],
        "the half-done copy is linked, and not copied a second time"
    );
    let copy_1 = stored
        .iter()
        .find(|o| o["sap_order_number"] == json!(sap_1))
        .expect("the first copy is linked to its SAP order");
    assert_eq!(copy_1["customer_reference"], "HIST-1");
    assert_eq!(copy_1["customer_id"], "17100001");
    assert_eq!(copy_1["currency"], "EUR");
    assert_eq!(copy_1["requested_delivery_date"], "2026-01-01");
    assert_eq!(copy_1["correlation_id"], format!("backfill-sap-{sap_1}"));
    assert_eq!(copy_1["specifications"]["SalesOrder"], json!(sap_1));
    let items = copy_1["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (&items[1]["sku"], &items[1]["quantity"]),
        (&json!("TG12"), &json!("1"))
    );
    assert!(
        stored.iter().any(|o| o["sap_order_number"] == json!(sap_2)),
        "the second copy is linked"
    );

    // A second run copies nothing and stores nothing more.
    let (_, second) = backfill(&sys);
    assert_eq!(second["already_present"], 4, "{second}");
    assert_eq!(second["copied"], json!([]), "{second}");
    assert_eq!(second["linked"], json!([]), "{second}");
    assert_eq!(
        second["priced"],
        json!([]),
        "SAP's amounts were adopted once: {second}"
    );
    assert_eq!(all_orders(&sys).await.len(), 4);

    // Reconciliation sees the copies as agreeing, linked pairs; only HUGE is still missing.
    let out = orderctl(&[
        "reconcile",
        "--json",
        "--sap-url",
        sap,
        "--orders-url",
        orders,
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["report"]["paired"], 4, "{r}");
    assert_eq!(r["report"]["unlinked"], json!([]), "{r}");
    assert_eq!(
        r["report"]["missing_in_order_service"],
        json!([sap_huge]),
        "{r}"
    );
    assert_eq!(r["drift"], 1, "{r}");
}

#[tokio::test]
async fn two_backfills_running_at_once_copy_each_sap_order_once() {
    let sys = Systems::start().await;
    let mut sap_numbers = Vec::new();
    for i in 0..20 {
        sap_numbers.push(
            sap_create(
                &sys.client,
                &sys.sap,
                sap_body(&format!("PAR-{i}"), "1", None),
            )
            .await,
        );
    }
    // Both runs read both systems before either has copied anything, most likely, and then
    // both create every order: the Idempotency-Key `backfill-sap-<SalesOrder>` makes the second
    // create of each one a replay (a correlation id would not: it never deduplicates).
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_orderctl"))
            .args([
                "backfill",
                "--json",
                "--sap-url",
                &sys.sap,
                "--orders-url",
                &sys.orders,
            ])
            .env_remove("SAP_USER")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for run in [a, b] {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let stored = all_orders(&sys).await;
    assert_eq!(stored.len(), 20, "one copy per SAP order");
    let mut linked: Vec<String> = stored
        .iter()
        .map(|o| o["sap_order_number"].as_str().unwrap().to_owned())
        .collect();
    linked.sort();
    sap_numbers.sort();
    assert_eq!(linked, sap_numbers, "each copy linked to its own SAP order");
}
