//! `spawn_app`: the real service on port 0 with its own fresh database.

use std::collections::HashMap;

use order_service::{Application, Config};
use platform::config::EnvReader;
use platform::shutdown::CancellationToken;
use serde_json::{Value, json};
use sqlx::PgPool;

pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The configuration a test service gets: port 0 and the given database.
pub fn test_config(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("ORDER_SERVICE_PORT".into(), "0".into()),
        ("ORDER_SERVICE_HOST".into(), "127.0.0.1".into()),
        ("DATABASE_URL".into(), database_url.into()),
        ("DB_POOL_SIZE".into(), "20".into()),
        // The relay has tests of its own (tests/outbox); here the outbox rows are counted.
        ("OUTBOX_RELAY_ENABLED".into(), "false".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::load(EnvReader::from_map(vars)).expect("test configuration is valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = test_support::postgres::fresh_database().await;
    spawn_app_on(&db.url, extra).await
}

/// The service on an existing database (e.g. a private cluster the test will crash).
pub async fn spawn_app_on(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let app = Application::build(test_config(database_url, extra))
        .await
        .expect("order-service starts");
    let port = app.port();
    let pool = PgPool::connect(database_url)
        .await
        .expect("test pool connects");
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        pool,
        client: reqwest::Client::new(),
        shutdown,
    }
}

/// The contract's example body, with a customer reference of the caller's choice.
pub fn order_body(reference: &str) -> Value {
    json!({
        "customer_id": "17100001",
        "currency": "EUR",
        "customer_reference": reference,
        "items": [
            {"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "12.50",
             "specifications": {"color": "red"}},
            {"sku": "TG12", "quantity": "5", "unit": "PC"}
        ]
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request reaches the service")
    }

    /// Creates an order and returns its JSON, asserting 201.
    pub async fn create(&self, body: &Value) -> Value {
        let r = self.post_json("/api/v1/orders", body).await;
        let status = r.status();
        let json: Value = r.json().await.expect("JSON body");
        assert_eq!(status, 201, "create failed: {json}");
        json
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

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    /// Rows in every table a create writes to.
    pub async fn counts(&self) -> (i64, i64, i64) {
        (
            self.count("orders").await,
            self.count("order_items").await,
            self.count("outbox").await,
        )
    }
}

/// The real `order-service` binary on a free port (for SIGKILL and SIGTERM tests), ready.
pub async fn spawn_binary(database_url: &str) -> (test_support::process::ChildProcess, String) {
    use std::process::{Command, Stdio};
    let port = test_support::process::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_order-service"));
    cmd.env("DATABASE_URL", database_url)
        .env("ORDER_SERVICE_PORT", port.to_string())
        .env("ORDER_SERVICE_HOST", "127.0.0.1")
        .env("OUTBOX_RELAY_ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let service = test_support::process::ChildProcess::spawn("order-service", cmd);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    test_support::eventually(
        "order-service ready",
        std::time::Duration::from_secs(30),
        || {
            let (client, url) = (client.clone(), format!("{base}/ready"));
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
            }
        },
    )
    .await;
    (service, base)
}
