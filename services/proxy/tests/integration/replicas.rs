//! Several proxy replicas sharing their state in PostgreSQL (`PROXY_STATE_DATABASE_URL`): a
//! switch made through one replica is in force on every one, each reports the mode it runs,
//! and a client retry that lands on another replica makes no second order in either system.
//!
//! Every test runs two proxy processes (the stack's own, "A", and a second one, "B", with its
//! own ports and data folder) against one scratch state database, one emulator and one order
//! service.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::postgres::{TestDatabase, fresh_database};
use test_support::process::{ChildProcess, free_port};

use crate::common::*;

/// How long a switch may take to reach the other replica (it is announced at once; the
/// periodic re-read every 500 ms here is only the backstop).
const PROPAGATION: Duration = Duration::from_secs(5);

/// Another proxy process of the same stack.
struct Replica {
    _process: ChildProcess,
    port: u16,
    admin_port: u16,
    dir: PathBuf,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The state database and a stack whose proxy (replica A) uses it.
async fn stack_with_shared_state(mode: &'static str) -> (Stack, TestDatabase, sqlx::PgPool) {
    let state = fresh_database().await;
    let stack = Stack::start(Options {
        mode,
        proxy_env: vec![
            ("PROXY_STATE_DATABASE_URL", state.url.clone()),
            ("PROXY_STATE_SYNC_MS", "500".into()),
            ("PROXY_REPLICA_NAME", "replica-a".into()),
        ],
        ..Options::default()
    })
    .await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&state.url)
        .unwrap();
    (stack, state, pool)
}

/// Starts another replica of the stack's proxy, with the same environment (the same state
/// database) but its own ports and data folder, and the given initial mode.
async fn start_replica(s: &Stack, name: &str, mode: &str) -> Replica {
    let (port, admin_port, dir) = (free_port(), free_port(), temp_dir("replica"));
    let mut cmd = s.proxy_command(port, admin_port, &dir);
    cmd.env("PROXY_REPLICA_NAME", name)
        .env("PROXY_SALES_ORDERS_MODE", mode);
    let replica = Replica {
        _process: ChildProcess::spawn("proxy replica", cmd),
        port,
        admin_port,
        dir,
    };
    s.wait_ok(format!("{}/health", replica.admin_url()), "replica healthy")
        .await;
    replica
}

async fn admin_at(
    s: &Stack,
    admin_url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = s
        .http
        .request(method, format!("{admin_url}{path}"))
        .bearer_auth(TOKEN)
        .header("x-admin-actor", "replica-test");
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_resp(req.send().await.unwrap()).await
}

async fn switch_at(s: &Stack, admin_url: &str, mode: &str) -> Resp {
    admin_at(
        s,
        admin_url,
        reqwest::Method::PUT,
        "/admin/v1/routes/sales-orders/mode",
        Some(json!({"mode": mode})),
    )
    .await
}

/// The mode `GET /admin/v1/routes` of the replica at `admin_url` reports for sales-orders.
async fn mode_at(s: &Stack, admin_url: &str) -> String {
    let r = admin_at(
        s,
        admin_url,
        reqwest::Method::GET,
        "/admin/v1/routes?readiness=false",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "sales-orders")
        .map(|r| r["mode"].as_str().unwrap_or_default().to_owned())
        .unwrap()
}

/// Polls until the replica at `admin_url` runs `mode`; returns how long that took.
async fn wait_mode(s: &Stack, admin_url: &str, mode: &str) -> Duration {
    let started = Instant::now();
    test_support::eventually(&format!("{admin_url} runs {mode}"), PROPAGATION, || async {
        (mode_at(s, admin_url).await == mode).then_some(())
    })
    .await;
    started.elapsed()
}

/// Polls `GET /admin/v1/replicas` (asked of `admin_url`) until exactly `count` replicas are
/// alive and every one of them is current and runs `mode`.
async fn wait_replicas_run(s: &Stack, admin_url: &str, count: usize, mode: &str) -> Value {
    test_support::eventually(
        &format!("{count} replicas current in {mode}"),
        PROPAGATION,
        || async {
            let r = admin_at(
                s,
                admin_url,
                reqwest::Method::GET,
                "/admin/v1/replicas",
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let body = r.json();
            let alive: Vec<&Value> = body["replicas"]
                .as_array()?
                .iter()
                .filter(|r| r["alive"] == true)
                .collect();
            let all_run = alive
                .iter()
                .all(|r| r["current"] == true && r["modes"]["sales-orders"] == mode);
            (alive.len() == count && all_run).then(|| body.clone())
        },
    )
    .await
}

fn order_number(r: &Resp) -> String {
    r.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap_or_else(|| panic!("no SalesOrder in {:?}", r.body))
        .to_owned()
}

#[tokio::test]
async fn a_switch_made_through_one_replica_is_in_force_on_the_other_and_back() {
    let (s, _state, _pool) = stack_with_shared_state("dual-write").await;
    let b = start_replica(&s, "replica-b", "dual-write").await;
    wait_replicas_run(&s, &s.admin_url(), 2, "dual-write").await;

    // A switch back to legacy through A...
    let r = switch_at(&s, &s.admin_url(), "legacy").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(mode_at(&s, &s.admin_url()).await, "legacy");
    // ... is in force on B: its route table and its behaviour (a create goes to SAP only).
    let took = wait_mode(&s, &b.admin_url(), "legacy").await;
    eprintln!("switch to legacy seen by replica B after {took:?}");
    let reference = unique("rep-legacy");
    let created = s.sdk_create(&b.url(), &order_body(&reference), &[]).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    assert_eq!(
        s.db_orders(&reference).await.len(),
        0,
        "legacy on B: the order service gets nothing"
    );
    let listing = wait_replicas_run(&s, &b.admin_url(), 2, "legacy").await;
    let names: Vec<&str> = listing["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        names.contains(&"replica-a") && names.contains(&"replica-b"),
        "{listing}"
    );
    assert_eq!(
        listing["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["this"] == true)
            .count(),
        1
    );

    // A switch forward through B (readiness decided by B) is in force on A.
    let r = switch_at(&s, &b.admin_url(), "dual-write").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let took = wait_mode(&s, &s.admin_url(), "dual-write").await;
    eprintln!("switch to dual-write seen by replica A after {took:?}");
    let reference = unique("rep-dual");
    let created = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    assert_eq!(
        s.db_orders(&reference).await.len(),
        1,
        "dual-write on A: the order service has it too"
    );
    wait_replicas_run(&s, &s.admin_url(), 2, "dual-write").await;

    // One audit trail, in the shared state, read alike through either replica.
    for admin in [s.admin_url(), b.admin_url()] {
        let audit = admin_at(
            &s,
            &admin,
            reqwest::Method::GET,
            "/admin/v1/routes/sales-orders/audit",
            None,
        )
        .await;
        let changes: Vec<(String, String)> = audit.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["from"].as_str().unwrap().to_owned(),
                    e["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                ("dual-write".to_owned(), "legacy".to_owned()),
                ("legacy".to_owned(), "dual-write".to_owned())
            ]
        );
    }
}

#[tokio::test]
async fn a_create_retried_on_the_other_replica_after_it_was_done_makes_no_second_order() {
    let (s, _state, _pool) = stack_with_shared_state("dual-write").await;
    let b = start_replica(&s, "replica-b", "dual-write").await;
    let reference = unique("rep-retry");
    let key = unique("key");
    let headers = [("Idempotency-Key", key.as_str())];

    let first = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &headers)
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let retried = s
        .sdk_create(&b.url(), &order_body(&reference), &headers)
        .await;
    assert_eq!(retried.status, 201, "{:?}", retried.body);
    assert_eq!(
        retried
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true"),
        "B answers what A stored"
    );
    assert_eq!(order_number(&first), order_number(&retried));

    s.wait_replays_drained().await;
    let sap = s.sap_orders(&reference).await;
    let new = s.db_orders(&reference).await;
    assert_eq!(sap.len(), 1, "one order in SAP: {sap:?}");
    assert_eq!(new.len(), 1, "one order in the order service: {new:?}");
    assert_eq!(new[0].1.as_deref(), Some(order_number(&first).as_str()));
}

#[tokio::test]
async fn a_create_retried_on_the_other_replica_while_in_flight_on_the_first_makes_no_second_order()
{
    let (s, _state, pool) = stack_with_shared_state("dual-write").await;
    let b = start_replica(&s, "replica-b", "dual-write").await;
    let reference = unique("rep-inflight");
    let key = unique("key");
    // CSRF sessions first: the latency below holds every SAP request.
    let session_a = s.csrf(&s.proxy_url()).await;
    let session_b = s.csrf(&b.url()).await;
    s.sap_faults(json!({"latency_ms": 2000})).await;

    let first = {
        let (s_http, url, body, key, session) = (
            s.http.clone(),
            s.proxy_url(),
            order_body(&reference),
            key.clone(),
            session_a.clone(),
        );
        tokio::spawn(async move {
            let r = s_http
                .post(format!("{url}{ROOT}/A_SalesOrder"))
                .header("accept", "application/json")
                .header("content-type", "application/json")
                .header("x-csrf-token", &session.0)
                .header("cookie", &session.1)
                .header("Idempotency-Key", &key)
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            into_resp(r).await
        })
    };
    // A holds the key in flight (in the shared state) while SAP is slow.
    test_support::eventually("the key in flight on A", WAIT, || async {
        let row: Option<(bool,)> =
            sqlx::query_as("SELECT in_flight FROM proxy_idempotency WHERE key = $1")
                .bind(format!("client:{key}"))
                .fetch_optional(&pool)
                .await
                .unwrap();
        (row == Some((true,))).then_some(())
    })
    .await;
    let during = s
        .create_in_session(
            &b.url(),
            &session_b,
            &order_body(&reference),
            &[("Idempotency-Key", key.as_str())],
        )
        .await;
    assert_eq!(
        during.status, 409,
        "B answers as for a duplicate in flight: {:?}",
        during.body
    );
    assert!(
        !first.is_finished(),
        "A's create was still in flight when B answered"
    );
    let first = first.await.unwrap();
    assert_eq!(first.status, 201, "{:?}", first.body);
    s.sap_faults(json!({})).await;

    let after = s
        .create_in_session(
            &b.url(),
            &session_b,
            &order_body(&reference),
            &[("Idempotency-Key", key.as_str())],
        )
        .await;
    assert_eq!(after.status, 201, "{:?}", after.body);
    assert_eq!(order_number(&first), order_number(&after));

    s.wait_replays_drained().await;
    let sap = s.sap_orders(&reference).await;
    let new = s.db_orders(&reference).await;
    assert_eq!(sap.len(), 1, "one order in SAP: {sap:?}");
    assert_eq!(new.len(), 1, "one order in the order service: {new:?}");
}

#[tokio::test]
async fn a_replica_that_starts_after_a_switch_comes_up_in_the_switched_mode() {
    let (s, _state, _pool) = stack_with_shared_state("dual-write").await;
    let r = switch_at(&s, &s.admin_url(), "legacy").await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Configured for dual-write, as at first start: the shared table decides.
    let late = start_replica(&s, "replica-late", "dual-write").await;
    assert_eq!(mode_at(&s, &late.admin_url()).await, "legacy");
    let reference = unique("rep-late");
    let created = s
        .sdk_create(&late.url(), &order_body(&reference), &[])
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(s.sap_orders(&reference).await.len(), 1);
    assert_eq!(s.db_orders(&reference).await.len(), 0);
    wait_replicas_run(&s, &late.admin_url(), 2, "legacy").await;
}

#[tokio::test]
async fn a_key_left_in_flight_by_a_killed_replica_is_retried_on_the_other_under_the_same_number() {
    let (mut s, _state, pool) = stack_with_shared_state("dual-write").await;
    let b = start_replica(&s, "replica-b", "dual-write").await;
    let reference = unique("rep-killed");
    let key = unique("key");
    let session_a = s.csrf(&s.proxy_url()).await;
    let session_b = s.csrf(&b.url()).await;
    s.sap_faults(json!({"latency_ms": 3000})).await;
    let first = {
        let (http, url, body, key, session) = (
            s.http.clone(),
            s.proxy_url(),
            order_body(&reference),
            key.clone(),
            session_a,
        );
        tokio::spawn(async move {
            http.post(format!("{url}{ROOT}/A_SalesOrder"))
                .header("accept", "application/json")
                .header("content-type", "application/json")
                .header("x-csrf-token", &session.0)
                .header("cookie", &session.1)
                .header("Idempotency-Key", &key)
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
        })
    };
    let record = || async {
        sqlx::query_as::<_, (bool, Value)>(
            "SELECT in_flight, record FROM proxy_idempotency WHERE key = $1",
        )
        .bind(format!("client:{key}"))
        .fetch_optional(&pool)
        .await
        .unwrap()
    };
    let held = test_support::eventually("the key in flight on A", WAIT, || async {
        record().await.filter(|(in_flight, _)| *in_flight)
    })
    .await;
    let number = held.1["number"].as_str().unwrap().to_owned();
    // A dies with the create in flight (SAP holds it in its latency, then drops it).
    s.kill_proxy();
    let _ = first.await;
    s.sap_faults(json!({})).await;

    // B answers "in progress" while A's heartbeat is fresh, then retries the key.
    let killed = Instant::now();
    let retried = test_support::eventually("B retries the key of the killed replica", WAIT, || {
        let (s, b, session_b, reference, key) = (&s, &b, &session_b, &reference, &key);
        async move {
            let r = s
                .create_in_session(
                    &b.url(),
                    session_b,
                    &order_body(reference),
                    &[("Idempotency-Key", key.as_str())],
                )
                .await;
            (r.status != 409).then_some(r)
        }
    })
    .await;
    eprintln!(
        "B retried the killed replica's key {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(retried.status, 201, "{:?}", retried.body);
    assert_eq!(
        order_number(&retried),
        number,
        "the key's number, not a new one"
    );
    let (in_flight, rec) = record().await.unwrap();
    assert!(!in_flight);
    assert_eq!(rec["attempt"], 1, "{rec}");

    test_support::eventually("B's replay log drained", WAIT, || async {
        let r = admin_at(
            &s,
            &b.admin_url(),
            reqwest::Method::GET,
            "/admin/v1/replays",
            None,
        )
        .await;
        r.json()["replays"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    })
    .await;
    let sap = s.sap_orders(&reference).await;
    let new = s.db_orders(&reference).await;
    assert_eq!(sap.len(), 1, "one order in SAP: {sap:?}");
    assert_eq!(new.len(), 1, "one order in the order service: {new:?}");
}

/// Takes the state database away: its connections ended and its name changed, so no replica
/// can reconnect. Returns the name it has now (renaming it back restores it).
async fn take_state_database_away(s: &Stack, state: &TestDatabase) -> String {
    let gone = format!("{}_gone", state.name);
    for _ in 0..50 {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&state.name)
            .execute(&s.pool)
            .await
            .unwrap();
        // The names are the test's own (fresh_database's), never outside input.
        let renamed = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{}\" RENAME TO \"{gone}\"",
            state.name
        )))
        .execute(&s.pool)
        .await;
        if renamed.is_ok() {
            return gone;
        }
        // A replica reconnected in between: end it again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the state database could not be taken away");
}

#[tokio::test]
async fn with_the_state_database_gone_replicas_serve_their_last_mode_refuse_switches_and_keyed_creates_and_store_nothing()
 {
    let (s, state, _pool) = stack_with_shared_state("dual-write").await;
    let b = start_replica(&s, "replica-b", "dual-write").await;
    let gone = take_state_database_away(&s, &state).await;

    // A switch cannot be shared: refused, and neither replica changes its mode.
    let refused = switch_at(&s, &s.admin_url(), "legacy").await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(mode_at(&s, &s.admin_url()).await, "dual-write");
    assert_eq!(mode_at(&s, &b.admin_url()).await, "dual-write");

    // A keyed create cannot be told apart from another replica's: refused in SAP's error
    // shape, and nothing reaches either system.
    let keyed_ref = unique("rep-gone-keyed");
    let keyed = s
        .sdk_create(
            &b.url(),
            &order_body(&keyed_ref),
            &[("Idempotency-Key", unique("key").as_str())],
        )
        .await;
    // Temporarily unavailable (the client may retry), in SAP's error shape.
    assert_eq!(keyed.status, 503, "{:?}", keyed.body);
    assert_eq!(
        keyed.json()["error"]["code"],
        "PROXY/503S",
        "an OData error: {:?}",
        keyed.body
    );
    // Serving goes on in the last known mode: a create without a key is dual-written.
    let plain_ref = unique("rep-gone-plain");
    let plain = s.sdk_create(&b.url(), &order_body(&plain_ref), &[]).await;
    assert_eq!(plain.status, 201, "{:?}", plain.body);
    s.wait_replays_drained().await;
    assert!(s.sap_orders(&keyed_ref).await.is_empty(), "nothing in SAP");
    assert!(
        s.db_orders(&keyed_ref).await.is_empty(),
        "nothing in the order service"
    );
    assert_eq!(s.sap_orders(&plain_ref).await.len(), 1);
    test_support::eventually("the plain create in the order service", WAIT, || async {
        (s.db_orders(&plain_ref).await.len() == 1).then_some(())
    })
    .await;

    // Back: switches are shared again.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{gone}\" RENAME TO \"{}\"",
        state.name
    )))
    .execute(&s.pool)
    .await
    .unwrap();
    test_support::eventually("a switch accepted again", PROPAGATION * 4, || async {
        (switch_at(&s, &s.admin_url(), "legacy").await.status == 200).then_some(())
    })
    .await;
    test_support::eventually("the switch in force on B", PROPAGATION, || async {
        (mode_at(&s, &b.admin_url()).await == "legacy").then_some(())
    })
    .await;
}
