//! The event tail (`GET /admin/v1/events`) and an order's journey (`GET /admin/v1/journey/…`)
//! against the real stack with a real Kafka: the order service's relay publishes to a fresh
//! topic, the proxy tails it.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

/// A stack in `mode` whose order service publishes its outbox to a fresh topic that the
/// proxy tails.
async fn stack_with_kafka(mode: &'static str) -> (Stack, String) {
    let topic = test_support::kafka::fresh_topic(3).await;
    let brokers = topic.brokers.clone();
    let s = Stack::start(Options {
        mode,
        order_env: vec![
            ("OUTBOX_RELAY_ENABLED", "true".into()),
            ("KAFKA_BROKERS", brokers.clone()),
            ("KAFKA_TOPIC", topic.name.clone()),
        ],
        proxy_env: vec![
            ("PROXY_KAFKA_BROKERS", brokers),
            ("PROXY_KAFKA_TOPIC", topic.name.clone()),
        ],
        ..Options::default()
    })
    .await;
    (s, topic.name)
}

async fn events(s: &Stack, query: &str) -> Value {
    let r = s
        .admin(
            Method::GET,
            &format!("/admin/v1/events{query}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()
}

/// Creates an order through the proxy with a correlation id; its number.
async fn create(s: &Stack, correlation: &str) -> String {
    let r = s
        .sdk_create(
            &s.proxy_url(),
            &order_body(&unique("INS")),
            &[("X-Correlation-ID", correlation)],
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned()
}

/// The order's id and how many outbox rows it has, all published (none pending), once the
/// relay published them and the dual write linked the SAP number (the link is the create's
/// last change).
async fn published_outbox_rows(s: &Stack, number: &str) -> (String, i64) {
    let pool = s.pool.clone();
    let number = number.to_owned();
    test_support::eventually("the order's outbox rows are published", WAIT, || {
        let pool = pool.clone();
        let number = number.clone();
        async move {
            let row: Option<(uuid::Uuid, i64, i64)> = sqlx::query_as(
                "SELECT o.id,
                        (SELECT count(*) FROM outbox x WHERE x.aggregate_id = o.id),
                        (SELECT count(*) FROM outbox_pending p WHERE p.aggregate_id = o.id)
                   FROM orders o WHERE o.order_number = $1 AND o.sap_order_number IS NOT NULL",
            )
            .bind(&number)
            .fetch_optional(&pool)
            .await
            .ok()?;
            match row {
                Some((id, rows, 0)) if rows > 0 => Some((id.to_string(), rows)),
                _ => None,
            }
        }
    })
    .await
}

/// Waits until the tail holds exactly `rows` events of `q`.
async fn tail_holds(s: &Stack, q: &str, rows: i64) -> Value {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        last = events(s, &format!("?q={q}")).await;
        if last["events"].as_array().unwrap().len() as i64 >= rows {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the tail did not get {rows} events of {q}: {last}");
}

#[tokio::test]
async fn the_event_tail_finds_exactly_one_orders_events_by_number_id_and_correlation_id() {
    let (s, topic) = stack_with_kafka("dual-write").await;
    let corr_a = unique("corr-a");
    let corr_b = unique("corr-b");
    let a = create(&s, &corr_a).await;
    let b = create(&s, &corr_b).await;
    assert_ne!(a, b);
    let (id_a, rows_a) = published_outbox_rows(&s, &a).await;
    let (_, rows_b) = published_outbox_rows(&s, &b).await;

    // By number: exactly A's events, as many as A has outbox rows, newest first.
    let by_number = tail_holds(&s, &a, rows_a).await;
    let tail = &by_number["tail"];
    assert_eq!(tail["enabled"], true, "{tail}");
    assert_eq!(tail["connected"], true, "{tail}");
    assert_eq!(tail["topic"], topic.as_str());
    assert!(tail["error"].is_null(), "{tail}");
    assert!(tail["held"].as_i64().unwrap() >= rows_a + rows_b, "{tail}");
    let found = by_number["events"].as_array().unwrap();
    assert_eq!(found.len() as i64, rows_a, "{by_number}");
    for e in found {
        assert_eq!(e["order_number"], a.as_str(), "{e}");
        assert_eq!(e["order_id"], id_a.as_str(), "{e}");
        assert_eq!(e["key"], id_a.as_str(), "{e}");
        assert_eq!(e["correlation_id"], corr_a.as_str(), "{e}");
        assert!(e["payload"].is_object(), "{e}");
        assert!(e["partition"].is_i64() && e["offset"].is_i64(), "{e}");
        chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
    }
    assert!(
        found
            .iter()
            .any(|e| e["type"] == "order.created" && e["version"] == 1),
        "{by_number}"
    );
    let versions: Vec<i64> = found
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    let mut newest_first = versions.clone();
    newest_first.sort_by(|x, y| y.cmp(x));
    assert_eq!(versions, newest_first, "newest first");

    // By correlation id (any case) and by order id: the same events.
    let offsets = |v: &Value| -> Vec<(i64, i64)> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["partition"].as_i64().unwrap(),
                    e["offset"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let by_corr = events(&s, &format!("?q={}", corr_a.to_uppercase())).await;
    assert_eq!(offsets(&by_corr), offsets(&by_number));
    let by_id = events(&s, &format!("?q={id_a}")).await;
    assert_eq!(offsets(&by_id), offsets(&by_number));
    // B's are B's alone.
    let by_b = events(&s, &format!("?q={corr_b}")).await;
    assert_eq!(by_b["events"].as_array().unwrap().len() as i64, rows_b);
    assert!(
        by_b["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["order_number"] == b.as_str())
    );
    // Without q: the newest, at most `limit`.
    let newest = events(&s, "?limit=1").await;
    assert_eq!(newest["events"].as_array().unwrap().len(), 1);
    // An unknown key, or a part of a number, finds none.
    for q in ["no-such-order", &a[..a.len() - 1]] {
        let none = events(&s, &format!("?q={q}")).await;
        assert_eq!(none["events"].as_array().unwrap().len(), 0, "{q}: {none}");
    }
    // A bad limit is refused.
    let bad = s
        .admin(Method::GET, "/admin/v1/events?limit=0", None, Some(TOKEN))
        .await;
    assert_eq!(bad.status, 400);

    // Without the token, or with a wrong one: 401, and nothing of the orders in the answer.
    for token in [None, Some("wrong-token")] {
        for path in [
            format!("/admin/v1/events?q={a}"),
            format!("/admin/v1/journey/{a}"),
        ] {
            let r = s.admin(Method::GET, &path, None, token).await;
            assert_eq!(r.status, 401, "{path}");
            let body = String::from_utf8_lossy(&r.body);
            assert!(
                !body.contains(&a) && !body.contains(&corr_a) && !body.contains(&id_a),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn an_orders_journey_after_a_dual_write_create_lists_every_system_in_time_order() {
    let (s, _) = stack_with_kafka("dual-write").await;
    let corr = unique("journey");
    let number = create(&s, &corr).await;
    let (id, rows) = published_outbox_rows(&s, &number).await;
    tail_holds(&s, &number, rows).await;

    for key in [number.clone(), corr.clone(), id.clone()] {
        let r = s
            .admin(
                Method::GET,
                &format!("/admin/v1/journey/{key}"),
                None,
                Some(TOKEN),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let j = r.json();
        assert_eq!(j["query"], key.as_str());
        assert_eq!(j["order_number"], number.as_str(), "{j}");
        assert_eq!(j["order_id"], id.as_str(), "{j}");
        let steps = j["steps"].as_array().unwrap();
        let systems: Vec<&str> = steps
            .iter()
            .map(|s| s["system"].as_str().unwrap())
            .collect();
        for system in ["proxy", "order-service", "outbox", "kafka", "sap"] {
            assert!(systems.contains(&system), "{system} missing: {j:#}");
        }
        // One outbox and one Kafka step per outbox row.
        assert_eq!(
            systems.iter().filter(|s| **s == "outbox").count() as i64,
            rows,
            "{j:#}"
        );
        assert_eq!(
            systems.iter().filter(|s| **s == "kafka").count() as i64,
            rows,
            "{j:#}"
        );
        let times: Vec<chrono::DateTime<chrono::FixedOffset>> = steps
            .iter()
            .map(|s| chrono::DateTime::parse_from_rfc3339(s["at"].as_str().unwrap()).unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "not in time order: {j:#}"
        );
        // The proxy's record of the create: a POST answered 201 in dual-write, with its decision.
        assert!(
            steps.iter().any(|s| s["system"] == "proxy"
                && s["detail"]["method"] == "POST"
                && s["detail"]["status"] == 201
                && s["detail"]["mode"] == "dual-write"
                && s["detail"]["correlation_id"] == corr.as_str()),
            "{j:#}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s["system"] == "proxy" && s["detail"]["outcome"] == "both_ok"),
            "{j:#}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s["system"] == "sap" && s["detail"]["SalesOrder"] == number.as_str()),
            "{j:#}"
        );
        // No sap-sync is configured in this stack: said, not failed.
        assert!(
            j["unavailable"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["system"] == "sap-sync"),
            "{j:#}"
        );
    }

    // `orderctl trace` prints it as a table in time order, with the proxy's log lines of it.
    let log = s.proxy_dir.join("proxy.log").display().to_string();
    let (ok, out, err) = s
        .orderctl(&["trace", &corr, "--log", &log], &s.admin_url())
        .await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("Order {number} (id {id}), traced from {corr}.")),
        "{out}"
    );
    let header = out.lines().position(|l| l.starts_with("TIME")).expect(&out);
    let rows: Vec<&str> = out
        .lines()
        .skip(header + 1)
        .take_while(|l| !l.is_empty())
        .collect();
    for system in ["proxy", "order-service", "outbox", "kafka", "sap"] {
        assert!(
            rows.iter()
                .any(|r| r.split_whitespace().nth(1) == Some(system)),
            "{system} missing: {out}"
        );
    }
    assert!(out.contains("Not shown from sap-sync:"), "{out}");
    assert!(
        out.contains("mention this order:") && out.contains(&corr),
        "{out}"
    );
    let (ok, json_out, err) = s
        .orderctl(&["trace", &number, "--json"], &s.admin_url())
        .await;
    assert!(ok, "{err}");
    let j: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(j["order_number"], number.as_str());
    // A refused token: one sentence, no backtrace, status 1.
    let out = tokio::process::Command::new(binaries().join("orderctl"))
        .args([
            "trace",
            &number,
            "--admin-url",
            &s.admin_url(),
            "--admin-token",
            "wrong",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("refused the admin token (401)") && !err.contains("panicked"),
        "{err}"
    );

    // `orderctl status`: this stack runs no sap-sync, so it is down and the exit status is 1.
    let (ok, out, err) = s
        .orderctl(
            &[
                "status",
                "--proxy-url",
                &s.proxy_url(),
                "--orders-url",
                &s.orders_url(),
                "--sap-url",
                &s.sap_url(),
                "--sap-sync-url",
                &format!("http://127.0.0.1:{}", test_support::process::free_port()),
                "--kafka-brokers",
                test_support::kafka::bootstrap_servers(),
            ],
            &s.admin_url(),
        )
        .await;
    assert!(!ok, "{out}{err}");
    let line = |name: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line: {out}"))
            .to_owned()
    };
    for name in [
        "PostgreSQL",
        "Kafka",
        "SAP emulator",
        "order service",
        "proxy admin",
    ] {
        assert!(line(name).contains(" yes   yes "), "{name}: {out}");
    }
    assert!(
        line("proxy admin").contains("sales-orders dual-write"),
        "{out}"
    );
    assert!(
        line("proxy admin").contains("replay backlog 0 pending, 0 parked"),
        "{out}"
    );
    assert!(line("order service").contains("outbox backlog 0"), "{out}");
    assert!(line("sap-sync").contains(" no "), "{out}");
    assert!(out.contains("sap-sync is down"), "{out}");

    // An unknown key: an empty journey, every source saying why, still 200.
    let r = s
        .admin(Method::GET, "/admin/v1/journey/NOPE-404", None, Some(TOKEN))
        .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["steps"].as_array().unwrap().len(), 0, "{j:#}");
    assert!(j["order_number"].is_null());
    assert!(!j["unavailable"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn without_kafka_the_tail_is_disabled_and_the_journey_says_so() {
    let s = Stack::start(Options::default()).await;
    let number = create(&s, &unique("nokafka")).await;
    let e = events(&s, "").await;
    assert_eq!(e["tail"]["enabled"], false, "{e}");
    assert_eq!(e["tail"]["connected"], false, "{e}");
    assert_eq!(e["events"].as_array().unwrap().len(), 0);
    let j = s
        .admin(
            Method::GET,
            &format!("/admin/v1/journey/{number}"),
            None,
            Some(TOKEN),
        )
        .await
        .json();
    let unavailable: Vec<&str> = j["unavailable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["system"].as_str().unwrap())
        .collect();
    assert!(
        unavailable.contains(&"kafka") && unavailable.contains(&"outbox"),
        "{j:#}"
    );
    let systems: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    for system in ["proxy", "order-service", "sap"] {
        assert!(systems.contains(&system), "{system} missing: {j:#}");
    }
}
