//! `orderctl up --demo`, the README's first command, as a user runs it: every component comes
//! up ready, demo traffic flows through the proxy, the same orders appear in PostgreSQL, on
//! Kafka and in SAP, and Ctrl-C (SIGINT) stops every service.
//!
//! The real PostgreSQL and Kafka of the test run (a fresh database and topic), the real
//! binaries; only the ports, the data folder and the names are this test's own.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use serde_json::Value;
use sqlx::Connection;
use test_support::process::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn up_with_the_demo_brings_every_component_to_ready_and_orders_reach_postgres_kafka_and_sap()
{
    test_support::process::built_binaries(&["order-service", "sap-mock", "sap-sync", "proxy"]);
    let db = test_support::postgres::fresh_database().await;
    let topic = test_support::kafka::fresh_topic(6).await;
    let data = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (proxy, admin, orders, sap, sync) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let mut child = Command::new(common::workspace_binary("orderctl"))
        .args(["up", "--demo", "--demo-rate", "20"])
        .env("ORDERS_DATA_DIR", data.path())
        .env("DATABASE_URL", &db.url)
        .env("KAFKA_BROKERS", &topic.brokers)
        .env("KAFKA_TOPIC", &topic.name)
        .env("SAP_SYNC_GROUP", format!("up-test-{id}"))
        .env("SAP_SYNC_STATE_TOPIC", format!("up-test-state-{id}"))
        .env("PROXY_PORT", proxy.to_string())
        .env("PROXY_ADMIN_PORT", admin.to_string())
        .env("ORDER_SERVICE_PORT", orders.to_string())
        .env("SAP_MOCK_PORT", sap.to_string())
        .env("SAP_SYNC_PORT", sync.to_string())
        .env("ADMIN_TOKEN", "up-test-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(data.path().join("orderctl.err")).unwrap(),
        ))
        .spawn()
        .expect("orderctl starts");
    // Whatever happens to the test, orderctl gets Ctrl-C (and its services with it).
    let guard = StopOnDrop(child.id());
    let output = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (out, stdout) = (output.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("orderctl: {line}");
                out.lock().unwrap().push_str(&format!("{line}\n"));
            }
        })
    };
    let printed = |needle: &'static str| {
        let output = output.clone();
        move || {
            let found = output.lock().unwrap().contains(needle);
            async move { found.then_some(()) }
        }
    };
    test_support::eventually(
        "orderctl says the stack is up",
        Duration::from_secs(120),
        printed("stack is up"),
    )
    .await;
    {
        let text = output.lock().unwrap().clone();
        for svc in ["order-service", "sap-mock", "sap-sync", "proxy"] {
            assert!(
                text.contains(&format!("{svc:<14} ready")),
                "{svc} not reported ready:\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "http://127.0.0.1:{proxy}/sap/opu/odata/sap/API_SALES_ORDER_SRV/"
            )),
            "the table names where SAP's API is:\n{text}"
        );
    }
    let http = reqwest::Client::new();
    // The demo switched the route to dual-write, so creates reach both systems.
    test_support::eventually(
        "the demo switched sales-orders to dual-write",
        Duration::from_secs(30),
        || {
            let (http, url) = (
                http.clone(),
                format!("http://127.0.0.1:{admin}/admin/v1/routes"),
            );
            async move {
                let v: Value = http
                    .get(url)
                    .bearer_auth("up-test-token")
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                v["routes"]
                    .as_array()?
                    .iter()
                    .any(|r| r["name"] == "sales-orders" && r["mode"] == "dual-write")
                    .then_some(())
            }
        },
    )
    .await;

    // Orders in PostgreSQL, with the number SAP has.
    let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let numbers: Vec<String> = test_support::eventually(
        "at least 10 demo orders in PostgreSQL",
        Duration::from_secs(60),
        || {
            let url = db.url.clone();
            async move {
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT order_number FROM orders ORDER BY created_at LIMIT 10")
                        .fetch_all(&mut c)
                        .await
                        .ok()?;
                (rows.len() >= 10).then(|| rows.into_iter().map(|r| r.0).collect())
            }
        },
    )
    .await;
    let ids: Vec<(String,)> =
        sqlx::query_as("SELECT id::text FROM orders WHERE order_number = ANY($1)")
            .bind(&numbers)
            .fetch_all(&mut pg)
            .await
            .unwrap();
    assert_eq!(ids.len(), numbers.len());

    // The same orders in SAP, by key.
    for n in &numbers {
        let r = http
            .get(format!(
                "http://127.0.0.1:{sap}/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('{n}')"
            ))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "order {n} of PostgreSQL is not in SAP");
    }

    // Their events on Kafka (keyed by order id).
    let consumer = test_support::kafka::consumer(&topic);
    let mut wanted: std::collections::HashSet<String> = ids.into_iter().map(|r| r.0).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !wanted.is_empty() {
        let m = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("no event on Kafka for orders {wanted:?}"))
            .expect("a Kafka message");
        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
            wanted.remove(key);
        }
    }
    consumer.unsubscribe();

    // The other kinds of demo traffic happened and nothing failed unexplained.
    test_support::eventually(
        "a demo report line with reads and refused bad creates",
        Duration::from_secs(40),
        printed("bad creates refused"),
    )
    .await;
    let report = output
        .lock()
        .unwrap()
        .lines()
        .rev()
        .find(|l| l.starts_with("demo (dual-write)"))
        .map(str::to_owned)
        .expect("a report line");
    assert!(report.contains(" 0 failed"), "demo failures: {report}");
    // Changes too, in dual-write: quantity changes and line rejections went through.
    let count_of = |what: &str| -> u64 {
        let words: Vec<&str> = report.split([',', ':']).map(str::trim).collect();
        words
            .iter()
            .find_map(|w| w.strip_suffix(what).and_then(|n| n.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no count of {what} in: {report}"))
    };
    assert!(count_of("quantity changes") > 0, "{report}");
    assert!(count_of("rejections") > 0, "{report}");
    assert!(count_of("read") > 0, "{report}");
    // Every change SAP took, the order service took too: nothing parked in the replay log.
    let parked: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{admin}/admin/v1/replays?state=parked"
        ))
        .bearer_auth("up-test-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        parked["replays"].as_array().map(Vec::len),
        Some(0),
        "dual writes the order service refused: {parked}"
    );

    // Ctrl-C stops everything.
    drop(guard);
    // Each service gets 20 s after SIGTERM before orderctl kills it; none may need that.
    let status = test_support::eventually("orderctl exits", Duration::from_secs(90), || {
        let done = child.try_wait().ok().flatten();
        async move { done }
    })
    .await;
    assert!(status.success(), "orderctl exited with {status}");
    reader.join().unwrap();
    let text = output.lock().unwrap().clone();
    for svc in ["order-service", "sap-mock", "sap-sync", "proxy"] {
        assert!(
            text.contains(&format!("stopped {svc}")),
            "{svc} not stopped:\n{text}"
        );
    }
    assert!(
        !text.contains("SIGKILL"),
        "a service did not stop on SIGTERM:\n{text}"
    );
    for port in [proxy, admin, orders, sap, sync] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something still listens on {port} after Ctrl-C"
        );
    }
}

/// Sends SIGINT to orderctl when dropped (a failing test included), then SIGKILL if it has not
/// exited within 30 s.
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let pid = self.0.to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        if std::thread::panicking() {
            for _ in 0..300 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}
