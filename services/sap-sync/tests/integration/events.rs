//! Phase 3 end to end: SAP's own JavaScript client through the proxy with the route in
//! `events`; the order service takes every write, sap-sync brings each to SAP.

use std::process::Command;

use crate::common::*;

fn item<'a>(order: &'a serde_json::Value, no: &str) -> Option<&'a serde_json::Value> {
    order["to_Item"]["results"].as_array()?.iter().find(|i| {
        i["SalesOrderItem"]
            .as_str()
            .map(|s| s.trim_start_matches('0'))
            == Some(no)
    })
}

#[tokio::test]
async fn sap_s_client_through_the_proxy_in_events_and_sap_ends_with_the_same_order_changed() {
    let mut s = Stack::start(vec![], vec![]).await;
    // Before a route leaves dual-write the order service gets SAP's master data, so that it
    // prices alone what SAP would price.
    let (ok, out) = s.orderctl(&["master-data", "import", "--from-sap"]);
    assert!(ok, "{out}");
    let proxy = s.start_proxy("events").await;
    let proxy_url = proxy.clone();
    let number_file = s.dir.join("sdk-order-number");
    let script = test_support::workspace_root().join("e2e/sap-sdk/run.sh");
    let out = tokio::task::spawn_blocking({
        let number_file = number_file.clone();
        move || {
            Command::new("bash")
                .arg(script)
                .env("SAP_URL", proxy_url)
                .env("SAP_SDK_TESTS", "test/order-life.test.js")
                .env("SAP_SDK_ORDER_FILE", number_file)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "SAP's client through the proxy in events:\n{text}"
    );
    assert!(
        text.contains("4 passed, 0 failed, 0 cancelled, 0 skipped"),
        "{text}"
    );
    let number = std::fs::read_to_string(&number_file).unwrap();
    // The client got the order service's number; SAP ends with that order, changed.
    let sap = test_support::eventually("SAP has the order with its changes", WAIT, || async {
        let o = s.sap_order(&number).await?;
        let qty = item(&o, "10")?["RequestedQuantity"].as_str()?.to_owned();
        (qty.starts_with('7') && item(&o, "20")?["SalesDocumentRjcnReason"] == "02").then_some(o)
    })
    .await;
    assert_eq!(sap["SalesOrder"], number.as_str());
    assert_eq!(sap["OverallSDDocumentRejectionSts"], "B");
    assert_eq!(
        item(&sap, "10").unwrap()["SalesDocumentRjcnReason"],
        "",
        "the refused reason never reached SAP"
    );
    // Priced alike: the order service from the master data it imported, SAP from its own.
    let id = s.order_id_by_number(&number).await;
    let ours = s.order(&id).await;
    let total = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        (total(&ours["total_net_amount"]) - total(&sap["TotalNetAmount"])).abs() < 0.005,
        "order service {} vs SAP {}",
        ours["total_net_amount"],
        sap["TotalNetAmount"]
    );
    s.wait_drained(0).await;
    assert_eq!(s.sap_stored().await, (1, 2));
    assert_eq!(s.status(0).await["parked_orders"], 0);
    // A switch back is always allowed and loses nothing: through the proxy in dual-write the
    // client reads SAP again and finds its order, under its number, with its changes.
    assert_eq!(s.switch("dual-write", false).await, 200);
    let via_proxy: serde_json::Value = s
        .http
        .get(format!(
            "{proxy}{ROOT}/A_SalesOrder('{number}')?$expand=to_Item"
        ))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &via_proxy["d"];
    assert_eq!(d["SalesOrder"], number.as_str());
    assert!(
        item(d, "10").unwrap()["RequestedQuantity"]
            .as_str()
            .unwrap()
            .starts_with('7')
    );
    assert_eq!(item(d, "20").unwrap()["SalesDocumentRjcnReason"], "02");
}
