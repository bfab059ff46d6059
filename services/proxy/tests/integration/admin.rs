//! The admin API: token required for every change; a refused change changes nothing.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn admin_changes_without_the_token_are_refused_and_change_nothing() {
    let mut s = Stack::start(Options {
        mode: "legacy",
        ..Options::default()
    })
    .await;
    // A parked replay to try to retry and discard.
    s.set_mode("dual-write", true).await;
    s.stop_order_service();
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&unique("ADM")), &[])
        .await;
    assert_eq!(r.status, 201);
    let replay_id = s.replays().await[0]["id"].as_str().unwrap().to_owned();
    let audit_before = s
        .admin(
            Method::GET,
            "/admin/v1/routes/sales-orders/audit",
            None,
            Some(TOKEN),
        )
        .await
        .json();

    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (
            Method::PUT,
            "/admin/v1/routes/sales-orders/mode".into(),
            Some(json!({"mode": "legacy", "force": true})),
        ),
        (
            Method::PUT,
            "/admin/v1/routes/sales-orders/policy".into(),
            Some(json!({"policy": "store-and-forward"})),
        ),
        (
            Method::POST,
            format!("/admin/v1/replays/{replay_id}/discard"),
            None,
        ),
        (
            Method::POST,
            format!("/admin/v1/replays/{replay_id}/retry"),
            None,
        ),
        (
            Method::PUT,
            "/admin/v1/routes/sales-orders/reconciliation".into(),
            Some(json!({"drift": 0})),
        ),
    ];
    // Reads under /admin carry customer data (replay bodies): refused without the token too.
    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = attempts
        .into_iter()
        .chain([
            (Method::GET, "/admin/v1/replays".to_owned(), None),
            (Method::GET, "/admin/v1/routes".to_owned(), None),
            (Method::GET, "/admin/v1/counters".to_owned(), None),
            (
                Method::GET,
                "/admin/v1/routes/sales-orders/audit".to_owned(),
                None,
            ),
        ])
        .collect();
    for (method, path, body) in attempts {
        for token in [None, Some("wrong-token"), Some("")] {
            let r = s.admin(method.clone(), &path, body.clone(), token).await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}");
        }
    }
    let routes = s
        .admin(Method::GET, "/admin/v1/routes", None, Some(TOKEN))
        .await
        .json();
    assert_eq!(routes["routes"][0]["mode"], "dual-write");
    assert_eq!(routes["routes"][0]["policy"], "strict");
    let replays = s.replays().await;
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0]["id"], replay_id.as_str());
    let audit_after = s
        .admin(
            Method::GET,
            "/admin/v1/routes/sales-orders/audit",
            None,
            Some(TOKEN),
        )
        .await
        .json();
    assert_eq!(audit_before, audit_after);
    // With the token the same change goes through and is audited with who, from and to.
    let ok = s
        .http
        .put(format!(
            "{}/admin/v1/routes/sales-orders/mode",
            s.admin_url()
        ))
        .bearer_auth(TOKEN)
        .header("x-admin-actor", "alice")
        .json(&json!({"mode": "legacy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let audit = s
        .admin(
            Method::GET,
            "/admin/v1/routes/sales-orders/audit",
            None,
            Some(TOKEN),
        )
        .await
        .json();
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("dual-write"), Some("legacy"))
    );
    assert!(last["who"].as_str().unwrap().starts_with("alice@127.0.0.1"));
}

#[tokio::test]
async fn a_forward_switch_is_refused_until_readiness_holds_unless_forced_and_a_switch_back_always_works()
 {
    let mut s = Stack::start(Options {
        mode: "legacy",
        ..Options::default()
    })
    .await;
    s.stop_order_service();
    let refused = s.set_mode("dual-write", false).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    let criteria = refused.json()["criteria"].clone();
    assert!(
        criteria
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "order_service_ready" && c["ok"] == false)
    );
    s.start_order_service().await;
    let ok = s.set_mode("dual-write", false).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // dual-write → events needs a reconciliation report with zero drift.
    assert_eq!(s.set_mode("events", false).await.status, 409);
    let forced = s.set_mode("events", true).await;
    assert_eq!(forced.status, 200);
    assert_eq!(
        s.set_mode("legacy", false).await.status,
        200,
        "back is always allowed"
    );
    // The mode survives a restart.
    s.set_mode("dual-write", false).await;
    s.kill_proxy();
    s.start_proxy().await;
    let routes = s
        .admin(Method::GET, "/admin/v1/routes", None, Some(TOKEN))
        .await
        .json();
    assert_eq!(routes["routes"][0]["mode"], "dual-write");
    let audit = s
        .admin(
            Method::GET,
            "/admin/v1/routes/sales-orders/audit",
            None,
            Some(TOKEN),
        )
        .await
        .json();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[1]["forced"], true);
}

#[tokio::test]
async fn dual_write_reads_are_shadow_compared_and_their_match_rate_gates_leaving_dual_write() {
    let s = Stack::start(Options {
        proxy_env: vec![
            ("PROXY_SHADOW_MIN_SAMPLES", "2".into()),
            ("PROXY_SHADOW_MIN_MATCH_RATE", "1.0".into()),
        ],
        sap_sync_status: healthy_sap_sync(),
        ..Options::default()
    })
    .await;
    let mut numbers = Vec::new();
    for i in 0..2 {
        let reference = unique(&format!("SHADOW-{i}"));
        let r = s
            .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
            .await;
        assert_eq!(r.status, 201);
        let n = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
        test_support::eventually("linked", WAIT, || async {
            let rows = s.db_orders(&reference).await;
            (rows.len() == 1 && rows[0].1.is_some()).then_some(())
        })
        .await;
        numbers.push(n);
    }
    for n in &numbers {
        let url = format!(
            "{}{ROOT}/A_SalesOrder('{n}')?$select=*,to_Item/*&$expand=to_Item",
            s.proxy_url()
        );
        let direct = s.get(url.replace(&s.proxy_url(), &s.sap_url())).await;
        let proxied = s.get(url).await;
        assert_eq!(proxied.status, 200);
        // SAP builds its links from the Host the client called; otherwise the bytes are SAP's.
        let proxied_text = String::from_utf8_lossy(&proxied.body).replace(
            &format!("127.0.0.1:{}", s.proxy_port),
            &format!("127.0.0.1:{}", s.sap_port),
        );
        assert!(
            proxied_text.as_bytes() == &direct.body[..],
            "the client still gets SAP's answer"
        );
    }
    async fn counters(s: &Stack) -> serde_json::Value {
        s.admin(Method::GET, "/admin/v1/counters", None, Some(TOKEN))
            .await
            .json()
    }
    test_support::eventually("two shadow matches", WAIT, || async {
        let c = counters(&s).await;
        (c["shadow_reads"]["matched"] == 2 && c["shadow_reads"]["compared"] == 2).then_some(())
    })
    .await;
    // An order only SAP has (created around the proxy) is a shadow miss.
    let only_sap = s
        .sdk_create(&s.sap_url(), &order_body(&unique("SHADOW-SAP-ONLY")), &[])
        .await;
    let n = only_sap.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.get(format!("{}{ROOT}/A_SalesOrder('{n}')", s.proxy_url()))
            .await
            .status,
        200
    );
    test_support::eventually("a shadow miss", WAIT, || async {
        (counters(&s).await["shadow_reads"]["compared"] == 3).then_some(())
    })
    .await;
    s.admin(
        Method::PUT,
        "/admin/v1/routes/sales-orders/reconciliation",
        Some(json!({"drift": 0})),
        Some(TOKEN),
    )
    .await;
    let refused = s.set_mode("events", false).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    let failing: Vec<_> = refused.json()["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failing, ["shadow_match_rate"]);
}

#[tokio::test]
async fn an_operator_can_retry_a_waiting_replay_at_once_and_discard_another() {
    let mut s = Stack::start(Options {
        proxy_env: vec![
            ("PROXY_REPLAY_BASE_MS", "120000".into()),
            ("PROXY_REPLAY_MAX_MS", "120000".into()),
        ],
        ..Options::default()
    })
    .await;
    s.stop_order_service();
    let (a, b) = (unique("OP-RETRY"), unique("OP-DISCARD"));
    for reference in [&a, &b] {
        let r = s
            .sdk_create(&s.proxy_url(), &order_body(reference), &[])
            .await;
        assert_eq!(r.status, 201);
    }
    // Both failed their first attempt and now wait a long back-off.
    let entries = test_support::eventually("both replays attempted once", WAIT, || async {
        let e = s.replays().await;
        (e.len() == 2 && e.iter().all(|x| x["attempts"].as_u64() >= Some(1))).then_some(e)
    })
    .await;
    let id_of = |reference: &str| {
        entries
            .iter()
            .find(|e| e["body"]["customer_reference"] == reference)
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (id_a, id_b) = (id_of(&a), id_of(&b));
    s.start_order_service().await;
    let r = s
        .admin(
            Method::POST,
            &format!("/admin/v1/replays/{id_a}/retry"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, 200);
    test_support::eventually("the retried replay landed", WAIT, || async {
        let rows = s.db_orders(&a).await;
        (rows.len() == 1 && rows[0].1.is_some()).then_some(())
    })
    .await;
    // The entry leaves the log just after its link landed.
    let left = test_support::eventually("the retried entry left the log", WAIT, || async {
        let left = s.replays().await;
        (left.len() == 1).then_some(left)
    })
    .await;
    assert_eq!(
        left[0]["id"],
        id_b.as_str(),
        "the other one still waits its back-off"
    );
    let r = s
        .admin(
            Method::POST,
            &format!("/admin/v1/replays/{id_b}/discard"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(s.replays().await.is_empty());
    assert_eq!(s.db_orders(&b).await.len(), 0);
    let counters = s
        .admin(Method::GET, "/admin/v1/counters", None, Some(TOKEN))
        .await
        .json();
    assert_eq!(counters["replay_backlog"]["pending"], 0);
    assert_eq!(counters["dual_write_outcomes"]["sap_only"], 2);
}

#[tokio::test]
async fn a_configured_natural_key_deduplicates_a_create_sent_twice_without_idempotency_key() {
    let s = Stack::start(Options {
        proxy_env: vec![(
            "PROXY_NATURAL_KEY_FIELDS",
            "SoldToParty,PurchaseOrderByCustomer".into(),
        )],
        ..Options::default()
    })
    .await;
    let reference = unique("NATURAL");
    let first = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    let second = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body, second.body);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    test_support::eventually("one linked order", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.is_some()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_replay_backlog_and_reconciliation_drift_each_refuse_leaving_dual_write_on_their_own() {
    let mut s = Stack::start(Options {
        proxy_env: vec![
            ("PROXY_SHADOW_MIN_SAMPLES", "0".into()),
            ("PROXY_SHADOW_MIN_MATCH_RATE", "0".into()),
            ("PROXY_REPLAY_BASE_MS", "120000".into()),
            ("PROXY_REPLAY_MAX_MS", "120000".into()),
        ],
        sap_sync_status: healthy_sap_sync(),
        ..Options::default()
    })
    .await;
    let failing = |r: &Resp| -> Vec<String> {
        r.json()["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    async fn report(s: &Stack, drift: u64) -> Resp {
        s.admin(
            Method::PUT,
            "/admin/v1/routes/sales-orders/reconciliation",
            Some(json!({ "drift": drift })),
            Some(TOKEN),
        )
        .await
    }
    // Drift alone refuses.
    assert_eq!(report(&s, 1).await.status, 200);
    let refused = s.set_mode("events", false).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(
        failing(&refused),
        ["reconciliation_drift_zero"],
        "{:?}",
        refused.body
    );
    // A pending replay alone refuses (the order service was down for one create; the entry
    // waits a long back-off).
    s.stop_order_service();
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&unique("GATE")), &[])
        .await;
    assert_eq!(r.status, 201);
    s.start_order_service().await;
    assert_eq!(report(&s, 0).await.status, 200);
    let refused = s.set_mode("events", false).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(failing(&refused), ["replay_backlog_empty"]);
    // Once the entry landed, the switch goes through.
    let id = s.replays().await[0]["id"].as_str().unwrap().to_owned();
    let retry = s
        .admin(
            Method::POST,
            &format!("/admin/v1/replays/{id}/retry"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(retry.status, 200);
    s.wait_replays_drained().await;
    let ok = s.set_mode("events", false).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
}

#[tokio::test]
async fn a_switch_to_events_needs_a_sap_sync_that_keeps_up_with_nothing_parked() {
    let gate = |status: Option<serde_json::Value>| async move {
        let s = Stack::start(Options {
            proxy_env: vec![
                ("PROXY_SHADOW_MIN_SAMPLES", "0".into()),
                ("PROXY_SHADOW_MIN_MATCH_RATE", "0".into()),
            ],
            sap_sync_status: status,
            ..Options::default()
        })
        .await;
        s.admin(
            Method::PUT,
            "/admin/v1/routes/sales-orders/reconciliation",
            Some(json!({"drift": 0})),
            Some(TOKEN),
        )
        .await;
        let r = s.set_mode("events", false).await;
        let failing: Vec<String> = r.json()["criteria"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| c["ok"] == false)
                    .map(|c| c["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        (r.status, failing)
    };
    // No sap-sync configured: nothing would feed SAP.
    assert_eq!(gate(None).await, (409, vec!["sap_sync_running".to_owned()]));
    // Behind and with a parked order: both named.
    let behind = json!({"joined": true, "lag_messages": 5000, "lag_seconds": 42.0,
                        "parked_orders": 2, "partitions": [0]});
    assert_eq!(
        gate(Some(behind)).await,
        (
            409,
            vec![
                "sap_sync_lag".to_owned(),
                "sap_sync_no_parked_orders".to_owned()
            ]
        )
    );
    // Keeping up with nothing parked: the switch goes through.
    assert_eq!(gate(healthy_sap_sync()).await, (200, vec![]));
}
