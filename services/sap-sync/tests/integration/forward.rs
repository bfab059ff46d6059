//! Forward: order events into SAP.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn orders_taken_by_the_order_service_reach_sap_under_their_own_number_once() {
    let s = Stack::start(vec![], vec![]).await;
    let mut numbers = Vec::new();
    for i in 0..3 {
        let (_, n) = s.create_order(&unique(&format!("FWD-{i}")), "TG11").await;
        numbers.push(n);
    }
    s.wait_in_sap(&numbers).await;
    for n in &numbers {
        let o = s.sap_order(n).await.expect("in SAP");
        assert_eq!(o["SalesOrder"], n.as_str());
        assert_eq!(o["SoldToParty"], "17100001");
        let items = o["to_Item"]["results"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["Material"], "TG11");
        // SAP priced it from its own conditions; nothing S/4 does not accept was sent.
        assert_ne!(o["TotalNetAmount"], "0.00");
    }
    s.wait_drained(0).await;
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 3.0);
    assert_eq!(s.sap_stored().await, (3, 6));
}

#[tokio::test]
async fn while_sap_is_down_orders_are_taken_lag_grows_and_drains_once_sap_is_back() {
    let s = Stack::start(vec![], vec![]).await;
    s.sap_faults(json!({"outage": "unavailable"})).await;
    let mut numbers = Vec::new();
    for i in 0..8 {
        let (_, n) = s.create_order(&unique(&format!("DOWN-{i}")), "TG11").await;
        numbers.push(n);
    }
    let status = test_support::eventually("lag reported while SAP is down", WAIT, || async {
        let st = s.status(0).await;
        (st["paused"] == true && st["lag_messages"].as_i64().unwrap_or(0) > 0).then_some(st)
    })
    .await;
    assert_eq!(
        status["parked_orders"], 0,
        "an outage parks nothing: {status}"
    );
    assert_eq!(s.sap_stored().await, (0, 0));
    s.sap_faults(json!({})).await;
    s.wait_in_sap(&numbers).await;
    s.wait_drained(0).await;
    assert_eq!(s.sap_stored().await, (8, 16));
    assert_eq!(s.status(0).await["paused"], false);
}
