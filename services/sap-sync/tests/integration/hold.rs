//! The hold: while the proxy serves the route as `retired`, sap-sync applies nothing to SAP and
//! the events wait in Kafka; a switch back makes sap-sync drain them into SAP, and the proxy
//! completes the switch only then. The real proxy, whose admin API sap-sync polls.

use reqwest::Method;
use serde_json::{Value, json};
use test_support::process::free_port;

use crate::common::*;

const TOKEN: &str = "e2e-admin-token";

/// Milliseconds of an OData `/Date(...)/`.
fn millis(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_default();
    let digits: String = s
        .trim_start_matches("/Date(")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap()
}

async fn admin(s: &Stack, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = s
        .http
        .request(method, format!("http://127.0.0.1:{}{path}", s.proxy_admin))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn route(s: &Stack) -> Value {
    let (_, v) = admin(s, Method::GET, "/admin/routes", None).await;
    v["routes"][0].clone()
}

#[tokio::test]
async fn nothing_reaches_sap_while_retired_and_the_return_brings_every_change_once_before_the_mode_changes()
 {
    let admin_port = free_port();
    let mut s = Stack::start(
        vec![],
        vec![
            ("PROXY_ADMIN_URL", format!("http://127.0.0.1:{admin_port}")),
            ("PROXY_ADMIN_TOKEN", TOKEN.to_owned()),
            ("SAP_SYNC_MODE_POLL_MS", "200".to_owned()),
        ],
    )
    .await;
    s.start_proxy_on("retired", admin_port).await;
    let status = test_support::eventually("sap-sync holds", WAIT, || async {
        let st = s.status(0).await;
        (st["held"] == true && st["hold_reason"].as_str()?.contains("retired")).then_some(st)
    })
    .await;
    assert_eq!(status["retention_gap"], false, "{status}");
    // Held is not a failure.
    let ready = s
        .http
        .get(format!("{}/ready", s.sync_url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let mut numbers = Vec::new();
    for i in 0..3 {
        numbers.push(s.create_order(&unique(&format!("HOLD-{i}")), "TG11").await);
    }
    let (id, changed) = numbers[1].clone();
    let (st, body) = s
        .change(
            Method::PATCH,
            &format!("{id}/items/10"),
            Some(json!({"quantity": "7"})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // Four events wait in Kafka, uncommitted, and SAP gets none of them.
    test_support::eventually("the events wait in Kafka", WAIT, || async {
        (s.status(0).await["lag_messages"] == 4).then_some(())
    })
    .await;
    for _ in 0..10 {
        assert_eq!(s.sap_stored().await, (0, 0), "SAP was fed while retired");
        let st = s.status(0).await;
        assert_eq!(
            (st["held"].as_bool(), st["lag_messages"].as_u64()),
            (Some(true), Some(4))
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 0.0);

    // Back to events: answered 202 at once (nothing is in SAP yet); the route keeps serving
    // as retired while sap-sync drains.
    let (st, body) = admin(
        &s,
        Method::POST,
        "/admin/routes/sales-orders/mode",
        Some(json!({"mode": "events", "wait_seconds": 0})),
    )
    .await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["state"], "catching_up", "{body}");
    let r = route(&s).await;
    assert_eq!(
        (r["mode"].as_str(), r["returning_to"].as_str()),
        (Some("retired"), Some("events"))
    );
    let r = test_support::eventually("the switch back completed", WAIT, || async {
        let r = route(&s).await;
        (r["mode"] == "events").then_some(r)
    })
    .await;
    assert!(r["returning_to"].is_null(), "{r}");

    // Every order once, the change after its create.
    let all: Vec<String> = numbers.iter().map(|(_, n)| n.clone()).collect();
    s.wait_in_sap(&all).await;
    assert_eq!(s.sap_stored().await, (3, 6), "one SAP order per order");
    assert_eq!(s.sap_event_count("sap_mock_order_created").await, 3.0);
    let order = s.sap_order(&changed).await.unwrap();
    let item10 = order["to_Item"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["SalesOrderItem"]
                .as_str()
                .unwrap()
                .trim_start_matches('0')
                == "10"
        })
        .unwrap()
        .clone();
    assert!(
        item10["RequestedQuantity"]
            .as_str()
            .unwrap()
            .starts_with('7'),
        "{item10}"
    );
    // The mode changed only after SAP had every change.
    let (_, trail) = admin(&s, Method::GET, "/admin/v1/routes/sales-orders/audit", None).await;
    let done = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["field"] == "mode" && e["to"] == "events")
        .cloned()
        .unwrap();
    let switched = chrono::DateTime::parse_from_rfc3339(done["at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    for (_, n) in &numbers {
        let o = s.sap_order(n).await.unwrap();
        assert!(
            millis(&o["LastChangeDateTime"]) <= switched,
            "order {n} changed in SAP at {} after the switch at {switched}",
            o["LastChangeDateTime"]
        );
    }
    let st = test_support::eventually("sap-sync free again", WAIT, || async {
        let st = s.status(0).await;
        (st["held"] == false).then_some(st)
    })
    .await;
    assert_eq!(st["lag_messages"], 0, "{st}");
}
