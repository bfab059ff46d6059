//! A real Apache Kafka for tests, with a random topic per test.
//!
//! [`bootstrap_servers`] makes sure the project's broker runs (`scripts/kafka.sh start`, once per
//! test process) or checks the cluster named by `KAFKA_BROKERS`. When no broker can be had, the
//! test panics with the script's reason: tests that need Kafka never silently skip.
//!
//! Tests that stop the broker on purpose (Kafka outages) get their own [`PrivateBroker`] on free
//! ports, so they never take down the broker other tests and engineers share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};

fn kafka_script() -> PathBuf {
    crate::workspace_root().join("scripts/kafka.sh")
}

fn run_script(args: &[&str], envs: &[(&str, String)]) {
    let script = kafka_script();
    let mut cmd = Command::new(&script);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "Kafka: `{} {}` failed (exit {:?}):\n{}{}",
        script.display(),
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bootstrap servers tests use, starting the project's broker when needed.
///
/// `KAFKA_BROKERS` selects an external cluster (it must answer); otherwise
/// `scripts/kafka.sh start` runs once per test process (idempotent, shared across processes).
pub fn bootstrap_servers() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(|| {
        run_script(&["start"], &[]);
        match std::env::var("KAFKA_BROKERS") {
            Ok(b) if !b.trim().is_empty() => b,
            _ => format!(
                "127.0.0.1:{}",
                std::env::var("KAFKA_PORT").unwrap_or_else(|_| "9092".into())
            ),
        }
    })
}

/// A topic created for one test. Left in place afterwards for inspection.
#[derive(Debug, Clone)]
pub struct TestTopic {
    /// Topic name (`test-<uuid>`).
    pub name: String,
    /// Bootstrap servers of the broker holding it.
    pub brokers: String,
}

/// Creates a fresh topic with `partitions` partitions (replication factor 1) on the test broker.
pub async fn fresh_topic(partitions: i32) -> TestTopic {
    create_topic(bootstrap_servers(), partitions).await
}

/// Creates a fresh topic on `brokers`, waiting until its partitions have leaders.
pub async fn create_topic(brokers: &str, partitions: i32) -> TestTopic {
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap_or_else(|e| panic!("cannot create a Kafka admin client for {brokers}: {e}"));
    let results = admin
        .create_topics(
            &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot create topic {name} on {brokers}: {e}"));
    for r in results {
        if let Err((topic, code)) = r {
            panic!("cannot create topic {topic} on {brokers}: {code}");
        }
    }
    wait_for_leaders(brokers, &name, partitions as usize).await;
    TestTopic {
        name,
        brokers: brokers.to_owned(),
    }
}

async fn wait_for_leaders(brokers: &str, topic: &str, partitions: usize) {
    let consumer = consumer_on(brokers, "metadata-probe");
    let topic = topic.to_owned();
    crate::eventually(
        &format!("topic {topic} has {partitions} partitions with leaders"),
        Duration::from_secs(30),
        || {
            let ok = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == partitions
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            std::future::ready(ok.then_some(()))
        },
    )
    .await;
}

fn consumer_on(brokers: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap_or_else(|e| panic!("cannot create a Kafka consumer for {brokers}: {e}"))
}

/// A consumer of `topic` in a random group, reading from the beginning.
pub fn consumer(topic: &TestTopic) -> StreamConsumer {
    let group = format!("test-group-{}", uuid::Uuid::new_v4().simple());
    let consumer = consumer_on(&topic.brokers, &group);
    consumer
        .subscribe(&[&topic.name])
        .unwrap_or_else(|e| panic!("cannot subscribe to {}: {e}", topic.name));
    consumer
}

/// One record as received, detached from the consumer.
#[derive(Debug, Clone)]
pub struct ReceivedRecord {
    /// Partition it was read from.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
    /// Key as UTF-8 text, when present.
    pub key: Option<String>,
    /// Value bytes.
    pub payload: Vec<u8>,
    /// Headers as UTF-8 text (lossy).
    pub headers: HashMap<String, String>,
    /// When the record was received (for lag measurements).
    pub received_at: Instant,
}

impl ReceivedRecord {
    /// Copies what a test needs out of a borrowed message.
    pub fn from_message<M: Message>(m: &M) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
            received_at: Instant::now(),
        }
    }
}

/// Receives records until `done(&received)` holds, panicking after `timeout` with what arrived.
pub async fn consume_until(
    consumer: &StreamConsumer,
    timeout: Duration,
    mut done: impl FnMut(&[ReceivedRecord]) -> bool,
) -> Vec<ReceivedRecord> {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    while !done(&received) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out after {timeout:?}: received {} records so far",
            received.len()
        );
        match tokio::time::timeout(left.min(Duration::from_millis(500)), consumer.recv()).await {
            Ok(Ok(m)) => received.push(ReceivedRecord::from_message(&m)),
            Ok(Err(e)) => eprintln!("consumer error (retrying): {e}"),
            Err(_) => {}
        }
    }
    received
}

/// Receives exactly `count` records (and panics on timeout), then keeps reading for `settle` to
/// make sure no extra record follows.
pub async fn consume_exactly(
    consumer: &StreamConsumer,
    count: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<ReceivedRecord> {
    let mut received = consume_until(consumer, timeout, |r| r.len() >= count).await;
    let until = Instant::now() + settle;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Ok(Ok(m)) = tokio::time::timeout(left, consumer.recv()).await {
            received.push(ReceivedRecord::from_message(&m));
        }
    }
    received
}

/// A broker of its own for one test (free ports, own data folder), for tests that stop and
/// restart Kafka. Stopped and its data removed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    port: u16,
    controller_port: u16,
    data_dir: PathBuf,
    /// Bootstrap servers (`127.0.0.1:<port>`).
    pub brokers: String,
}

impl PrivateBroker {
    /// Starts a new single-node broker on free loopback ports; panics with the reason if it
    /// cannot start.
    pub fn start() -> Self {
        let port = crate::process::free_port();
        let mut controller_port = crate::process::free_port();
        while controller_port == port {
            controller_port = crate::process::free_port();
        }
        let data_dir = std::env::temp_dir().join(format!("orders-kafka-{port}"));
        let broker = Self {
            port,
            controller_port,
            data_dir,
            brokers: format!("127.0.0.1:{port}"),
        };
        broker.run("start");
        broker
    }

    fn run(&self, action: &str) {
        // The jars are shared with the project broker; only the node data is private.
        let root = std::env::var("ORDERS_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| crate::workspace_root().join(".data"));
        run_script(
            &[action],
            &[
                ("KAFKA_PORT", self.port.to_string()),
                ("KAFKA_CONTROLLER_PORT", self.controller_port.to_string()),
                ("KAFKA_NODE_DIR", self.data_dir.display().to_string()),
                ("KAFKA_HEAP", "256m".into()),
                ("ORDERS_DATA_DIR", root.display().to_string()),
                ("KAFKA_BROKERS", String::new()),
            ],
        );
    }

    /// Stops the broker (SIGTERM, clean shutdown); its data stays for [`Self::restart`].
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Starts the stopped broker again on the same ports with the same data.
    pub fn restart(&self) {
        self.run("start");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new(kafka_script())
            .arg("stop")
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("KAFKA_NODE_DIR", self.data_dir.display().to_string())
            .env("KAFKA_BROKERS", "")
            .output();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Makes `client` (a real librdkafka producer) fail fatally, as an idempotent producer does when
/// the broker reports a sequence gap: from then on librdkafka refuses every record of that
/// instance. Uses librdkafka's own test hook `rd_kafka_test_fatal_error`. Returns whether the
/// error was raised (false when the instance had failed fatally already).
#[allow(unsafe_code)]
pub fn inject_fatal_error<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    reason: &std::ffi::CStr,
) -> bool {
    use rdkafka::bindings::{rd_kafka_resp_err_t, rd_kafka_test_fatal_error};
    // SAFETY: `native_ptr` is the live rd_kafka_t owned by `client`, borrowed for the call;
    // `reason` is a NUL-terminated string that outlives the call (librdkafka copies it).
    let err = unsafe {
        rd_kafka_test_fatal_error(
            client.native_ptr(),
            rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason.as_ptr(),
        )
    };
    err == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
}
