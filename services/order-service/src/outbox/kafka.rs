//! Kafka plumbing of the relay: the idempotent producer, topic provisioning and the
//! connectivity probe behind `/ready`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use serde::Serialize;

use crate::config::KafkaSettings;

/// Client context that turns librdkafka's client-level errors (e.g. every broker down) into a
/// metric and a log line instead of stderr noise.
#[derive(Debug, Default, Clone)]
pub struct RelayContext;

impl ClientContext for RelayContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            _ => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        metrics::counter!("outbox_publish_errors_total", "kind" => "client").increment(1);
        tracing::warn!(%error, reason, "Kafka client error");
    }
}

/// The relay's producer type.
pub type RelayProducer = FutureProducer<RelayContext>;

/// The idempotent producer: `acks=all`, `enable.idempotence=true` (so retries never duplicate
/// or reorder within a partition), keys partitioned like the Java client (murmur2).
pub fn producer(settings: &KafkaSettings, client_id: &str) -> Result<RelayProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", settings.linger.as_millis().to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        .set("compression.type", "none")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .create_with_context(RelayContext)
}

/// A factory of producers like [`producer`]'s, for replacing one that failed fatally.
pub fn producer_factory(
    settings: &KafkaSettings,
    client_id: &str,
) -> super::relay::ProducerFactory {
    let (settings, client_id) = (settings.clone(), client_id.to_owned());
    Arc::new(move || producer(&settings, &client_id))
}

/// What provisioning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicProvisioned {
    /// The topic was created with the configured partitions and replication factor.
    Created,
    /// It existed already (its layout is left as it is).
    AlreadyExisted,
}

/// Creates the topic with the configured partitions and replication factor unless it exists.
pub async fn ensure_topic(settings: &KafkaSettings) -> Result<TopicProvisioned, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("socket.connection.setup.timeout.ms", "5000")
        .create()?;
    let topic = NewTopic::new(
        &settings.topic,
        settings.topic_partitions,
        TopicReplication::Fixed(settings.topic_replication_factor),
    );
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics([&topic], &options).await?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(TopicProvisioned::Created),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
            Ok(TopicProvisioned::AlreadyExisted)
        }
        Some(Err((_, code))) => Err(KafkaError::AdminOp(code)),
        None => Err(KafkaError::AdminOpCreation(
            "no result for the topic".into(),
        )),
    }
}

/// Provisions the topic, retrying with backoff until it works or `give_up` fires.
pub async fn provision_topic_with_retry(
    settings: &KafkaSettings,
    give_up: &platform::shutdown::CancellationToken,
) -> Option<TopicProvisioned> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match ensure_topic(settings).await {
            Ok(done) => {
                tracing::info!(topic = %settings.topic, partitions = settings.topic_partitions,
                    replication_factor = settings.topic_replication_factor, outcome = ?done,
                    "Kafka topic provisioned");
                return Some(done);
            }
            Err(e) => {
                tracing::warn!(topic = %settings.topic, brokers = %settings.brokers, error = %e,
                    "cannot provision the Kafka topic yet, retrying");
            }
        }
        tokio::select! {
            () = give_up.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The broker as last seen by the probe.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaStatus {
    /// `ok`, `unreachable`, `topic_missing`, `unknown` (not probed yet) or `disabled`.
    pub status: &'static str,
    /// The error of the last failed probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds since the last probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_seconds_ago: Option<f64>,
}

/// Shared, cheap-to-read broker connectivity, refreshed in the background.
#[derive(Debug, Clone)]
pub struct KafkaHealth {
    inner: Arc<RwLock<(KafkaStatus, Option<Instant>)>>,
}

impl KafkaHealth {
    /// Health of a service that runs without Kafka (no relay).
    pub fn disabled() -> Self {
        Self::with("disabled")
    }

    fn with(status: &'static str) -> Self {
        Self {
            inner: Arc::new(RwLock::new((
                KafkaStatus {
                    status,
                    error: None,
                    checked_seconds_ago: None,
                },
                None,
            ))),
        }
    }

    /// The latest status.
    pub fn current(&self) -> KafkaStatus {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut status = guard.0.clone();
        status.checked_seconds_ago = guard.1.map(|t| t.elapsed().as_secs_f64());
        status
    }

    fn set(&self, status: &'static str, error: Option<String>) {
        metrics::gauge!("kafka_up").set(if status == "ok" { 1.0 } else { 0.0 });
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *guard = (
            KafkaStatus {
                status,
                error,
                checked_seconds_ago: None,
            },
            Some(Instant::now()),
        );
    }

    /// Health not probed yet.
    pub fn unknown() -> Self {
        Self::with("unknown")
    }

    /// Asks the broker for the topic's metadata every `every` until `shutdown`.
    pub async fn run_probe(
        self,
        producer: RelayProducer,
        topic: String,
        every: Duration,
        shutdown: platform::shutdown::CancellationToken,
    ) {
        loop {
            let p = producer.clone();
            let t = topic.clone();
            let probe = tokio::task::spawn_blocking(move || {
                p.client()
                    .fetch_metadata(Some(&t), Duration::from_secs(2))
                    .map(|m| {
                        m.topics()
                            .first()
                            .is_some_and(|t| t.error().is_none() && !t.partitions().is_empty())
                    })
            })
            .await;
            match probe {
                Ok(Ok(true)) => self.set("ok", None),
                Ok(Ok(false)) => self.set("topic_missing", None),
                Ok(Err(e)) => self.set("unreachable", Some(e.to_string())),
                Err(e) => self.set("unreachable", Some(e.to_string())),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
