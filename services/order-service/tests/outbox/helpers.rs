//! A real order service (in process, port 0, fresh database) wired to a real broker, the
//! `outbox-relay` binary as a child process, and checks of what arrives on Kafka.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use order_events::EventType;
use order_service::{Application, Config};
use platform::config::EnvReader;
use platform::shutdown::CancellationToken;
use serde_json::{Value, json};
use sqlx::PgPool;
use test_support::kafka::{ReceivedRecord, TestTopic};
use test_support::postgres::TestDatabase;
use test_support::process::ChildProcess;
use uuid::Uuid;

/// The environment a service or relay under test gets.
pub fn env_for(
    db: &TestDatabase,
    topic: &TestTopic,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        ("ORDER_SERVICE_PORT".into(), "0".into()),
        ("ORDER_SERVICE_HOST".into(), "127.0.0.1".into()),
        ("DATABASE_URL".into(), db.url.clone()),
        ("DB_POOL_SIZE".into(), "20".into()),
        ("KAFKA_BROKERS".into(), topic.brokers.clone()),
        ("KAFKA_TOPIC".into(), topic.name.clone()),
        ("OUTBOX_POLL_INTERVAL_MS".into(), "100".into()),
        ("SHUTDOWN_GRACE_MS".into(), "2000".into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).into(), (*v).into()));
    }
    vars
}

/// The order service, in this process.
pub struct Service {
    pub base: String,
    pub pool: PgPool,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    shutdown: CancellationToken,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the service on a fresh database, publishing to `topic`.
pub async fn spawn_service(topic: &TestTopic, extra: &[(&str, &str)]) -> Service {
    let db = test_support::postgres::fresh_database().await;
    spawn_service_on(db, topic, extra).await
}

/// Starts the service on `db`, publishing to `topic`.
pub async fn spawn_service_on(
    db: TestDatabase,
    topic: &TestTopic,
    extra: &[(&str, &str)],
) -> Service {
    let vars: HashMap<String, String> = env_for(&db, topic, extra).into_iter().collect();
    let config = Config::load(EnvReader::from_map(vars)).expect("test configuration is valid");
    let app = Application::build(config)
        .await
        .expect("order-service starts");
    let port = app.port();
    let pool = PgPool::connect(&db.url).await.expect("test pool connects");
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until(shutdown.clone()));
    Service {
        base: format!("http://127.0.0.1:{port}"),
        pool,
        client: reqwest::Client::new(),
        db,
        shutdown,
    }
}

/// The `outbox-relay` binary as a child process, its log in a file.
pub fn spawn_relay(
    name: &str,
    db: &TestDatabase,
    topic: &TestTopic,
    extra: &[(&str, &str)],
) -> (ChildProcess, PathBuf) {
    let log = std::env::temp_dir().join(format!("{name}-{}.log", Uuid::new_v4().simple()));
    let file = std::fs::File::create(&log).expect("relay log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info,order_service::outbox=debug")
        .envs(env_for(db, topic, extra))
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file);
    (ChildProcess::spawn(name, cmd), log)
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let r = self
            .client
            .request(method.clone(), self.url(path))
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .json(body)
            .send()
            .await
            .expect("request reaches the service");
        let status = r.status();
        let json: Value = r.json().await.expect("JSON body");
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {json}"
        );
        json
    }

    /// Places an order; returns (id, version).
    pub async fn create_order(&self, reference: &str) -> (Uuid, i64) {
        let body = json!({
            "customer_id": "17100001",
            "currency": "EUR",
            "customer_reference": reference,
            "items": [
                {"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "12.50",
                 "specifications": {"color": "red"}},
                {"sku": "TG12", "quantity": "1.5", "unit": "KG"}
            ]
        });
        let order = self
            .send(reqwest::Method::POST, "/api/v1/orders", &body)
            .await;
        (
            order["id"].as_str().unwrap().parse().unwrap(),
            order["version"].as_i64().unwrap(),
        )
    }

    /// Runs the standard life of an order after its creation: an update, the SAP link, a
    /// confirmation and a cancellation, one event each. Returns the final version (5).
    pub async fn change_order(&self, id: Uuid, mut version: i64, sap_number: &str) -> i64 {
        let base = format!("/api/v1/orders/{id}");
        let steps: Vec<(reqwest::Method, String, Value)> = vec![
            (
                reqwest::Method::PATCH,
                base.clone(),
                json!({"customer_reference": "PO-changed"}),
            ),
            (
                reqwest::Method::PUT,
                format!("{base}/sap-order-number"),
                json!({"sap_order_number": sap_number}),
            ),
            (
                reqwest::Method::POST,
                format!("{base}/transitions"),
                json!({"to": "confirmed"}),
            ),
            (
                reqwest::Method::POST,
                format!("{base}/cancel"),
                json!({"reason": "customer asked"}),
            ),
        ];
        for (method, path, mut body) in steps {
            if method != reqwest::Method::PUT {
                body["version"] = json!(version);
            }
            let order = self.send(method, &path, &body).await;
            version = order["version"].as_i64().unwrap();
        }
        version
    }

    pub async fn outbox_counts(&self) -> (i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox_pending)",
        )
        .fetch_one(&self.pool)
        .await
        .expect("outbox counts")
    }

    pub async fn event_ids(&self) -> HashSet<String> {
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox")
            .fetch_all(&self.pool)
            .await
            .expect("outbox ids");
        ids.into_iter().map(|u| u.to_string()).collect()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the service");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the service")
            .text()
            .await
            .expect("text body")
    }
}

fn validators() -> &'static HashMap<EventType, jsonschema::Validator> {
    static V: OnceLock<HashMap<EventType, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        EventType::ALL
            .into_iter()
            .map(|t| {
                let schema = order_events::schema::current_schema(t);
                let v = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .expect("schema compiles");
                (t, v)
            })
            .collect()
    })
}

/// One event as a consumer sees it, checked against the contract.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    pub id: String,
    pub order_id: String,
    pub version: i64,
}

/// Checks one record against the contract (schema, key, headers) and extracts its identity.
pub fn check_record(r: &ReceivedRecord) -> SeenEvent {
    let value: Value = serde_json::from_slice(&r.payload).expect("the value is JSON");
    let event_type: EventType = value["type"]
        .as_str()
        .expect("type")
        .parse()
        .expect("known type");
    let errors: Vec<String> = validators()[&event_type]
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "event does not match its schema: {errors:#?}\n{value:#}"
    );
    let typed = order_events::CloudEvent::decode(&r.payload).expect("decodes as an order event");
    let id = typed.id.clone();
    assert_eq!(
        r.key.as_deref(),
        Some(typed.subject.as_str()),
        "key = order id"
    );
    assert_eq!(r.headers.get("ce_id"), Some(&id), "ce_id header = event id");
    assert_eq!(
        r.headers.get("ce_type").map(String::as_str),
        Some(event_type.as_str())
    );
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/cloudevents+json")
    );
    let tp = r.headers.get("traceparent").expect("traceparent header");
    assert!(order_events::traceparent::is_valid(tp), "traceparent {tp}");
    assert_eq!(typed.traceparent.as_ref(), Some(tp));
    assert!(
        r.headers.contains_key("correlation_id"),
        "correlation_id header"
    );
    SeenEvent {
        id,
        order_id: typed.subject.clone(),
        version: typed.data.order().version,
    }
}

/// Per order, the versions of its events in the order they were first seen (duplicates, which
/// a consumer drops by id, are skipped). Also checks that one event id never carries two
/// different (order, version) pairs and one (order, version) never two ids.
pub fn first_seen_versions(records: &[ReceivedRecord]) -> BTreeMap<String, Vec<i64>> {
    let mut by_id: HashMap<String, (String, i64)> = HashMap::new();
    let mut id_of: HashMap<(String, i64), String> = HashMap::new();
    let mut versions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in records {
        let e = check_record(r);
        let identity = (e.order_id.clone(), e.version);
        if let Some(prev) = by_id.get(&e.id) {
            assert_eq!(
                prev, &identity,
                "event id {} re-sent with other content",
                e.id
            );
            continue;
        }
        if let Some(other) = id_of.get(&identity) {
            panic!(
                "order {} version {} published under two ids: {other} and {}",
                identity.0, identity.1, e.id
            );
        }
        by_id.insert(e.id.clone(), identity.clone());
        id_of.insert(identity, e.id.clone());
        versions.entry(e.order_id).or_default().push(e.version);
    }
    versions
}

/// Asserts every order's events arrived complete and in order: versions 1..=k.
pub fn assert_in_order(versions: &BTreeMap<String, Vec<i64>>, orders: usize, k: i64) {
    assert_eq!(versions.len(), orders, "orders seen on Kafka");
    let expected: Vec<i64> = (1..=k).collect();
    for (order, v) in versions {
        assert_eq!(
            v, &expected,
            "events of order {order} out of order or missing"
        );
    }
}

/// Distinct event ids among `records`.
pub fn distinct_ids(records: &[ReceivedRecord]) -> HashSet<String> {
    records
        .iter()
        .map(|r| r.headers.get("ce_id").cloned().unwrap_or_default())
        .collect()
}

/// Generous deadline for a broker-bound wait on a busy 2-core machine.
pub const KAFKA_PATIENCE: Duration = Duration::from_secs(90);
