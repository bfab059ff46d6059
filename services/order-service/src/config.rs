//! The order service's configuration: defaults, then environment, converted to typed values
//! once at start. This is the only module that reads the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `ORDER_SERVICE_PORT` | 8081 | HTTP port |
//! | `ORDER_SERVICE_HOST` | 0.0.0.0 | address to bind |
//! | `DATABASE_URL` | — | full PostgreSQL URL; wins over the `DB_*` parts |
//! | `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME` | 127.0.0.1, 5432, postgres, —, orders | parts of the URL |
//! | `DB_POOL_SIZE` | 32 | most connections in the pool |
//! | `DB_ACQUIRE_TIMEOUT_MS` | 5000 | wait for a pooled connection before answering 503 |
//! | `ORDER_NUMBER_START` | 8000000000 | first order number; keeps ours apart from SAP's (which count from 1) |
//! | `MAX_BODY_BYTES` | 262144 | largest request body accepted (413 above) |
//! | `REQUEST_TIMEOUT_MS` | 15000 | longest a request may take (503 after) |
//! | `SHUTDOWN_GRACE_MS` | 10000 | how long SIGTERM waits for in-flight requests |
//! | `LOG_FORMAT` | text | `text` or `json` |
//! | `KAFKA_BROKERS` | 127.0.0.1:9092 | bootstrap servers of the event broker |
//! | `KAFKA_TOPIC` | order-events | topic the outbox relay publishes to |
//! | `KAFKA_TOPIC_PARTITIONS` | 6 | partitions when the relay provisions the topic |
//! | `KAFKA_TOPIC_REPLICATION_FACTOR` | 1 | replication factor when the relay provisions the topic |
//! | `KAFKA_LINGER_MS` | 2 | producer batching delay |
//! | `KAFKA_MESSAGE_TIMEOUT_MS` | 0 | producer delivery timeout; 0 = retry until the broker is back (keeps per-order order) |
//! | `OUTBOX_RELAY_ENABLED` | true | run the relay inside the service (the `outbox-relay` binary runs it alone) |
//! | `OUTBOX_BATCH_SIZE` | 1000 | most events one relay batch publishes |
//! | `OUTBOX_POLL_INTERVAL_MS` | 50 | longest wait of an idle relay between two looks for work (it starts at 2 ms and doubles) |
//! | `OUTBOX_RETENTION_SECS` | 86400 | published events are pruned once this much older (pending ones never are) |
//! | `OUTBOX_PRUNE_INTERVAL_SECS` | 60 | how often published rows are pruned |
//! | `OUTBOX_MARK_DELAY_MS` | 0 | fault injection for crash tests: wait between broker ack and marking rows published |

use std::net::IpAddr;
use std::time::Duration;

use platform::config::{ConfigError, EnvReader};
use platform::telemetry::LogFormat;

/// Where the database is.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Full connection URL (may hold a password: never log it, see [`DatabaseSettings::redacted`]).
    pub url: String,
    /// Most pooled connections.
    pub pool_size: u32,
    /// Wait for a pooled connection.
    pub acquire_timeout: Duration,
}

impl DatabaseSettings {
    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0 picks a free one, for tests).
    pub port: u16,
    /// Database connection.
    pub database: DatabaseSettings,
    /// The first order number handed out.
    pub order_number_start: i64,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest request.
    pub request_timeout: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Log output format.
    pub log_format: LogFormat,
    /// OpenTelemetry traces (the standard `OTEL_*` variables; off without an endpoint).
    pub otel: platform::telemetry::OtelConfig,
    /// The event broker.
    pub kafka: KafkaSettings,
    /// The transactional outbox's relay.
    pub outbox: OutboxSettings,
}

/// The event broker and topic.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topic of order events.
    pub topic: String,
    /// Partitions when the topic is provisioned.
    pub topic_partitions: i32,
    /// Replication factor when the topic is provisioned.
    pub topic_replication_factor: i32,
    /// Producer batching delay.
    pub linger: Duration,
    /// Producer delivery timeout; zero means no timeout.
    pub message_timeout: Duration,
}

/// The outbox relay.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Whether the service runs a relay itself.
    pub relay_enabled: bool,
    /// Most events per batch.
    pub batch_size: i64,
    /// Longest wait of an idle relay between two looks for work.
    pub poll_interval: Duration,
    /// Age after which published rows are deleted.
    pub retention: Duration,
    /// Interval of the pruning pass.
    pub prune_interval: Duration,
    /// Fault injection: pause between the broker's ack and marking rows published.
    pub mark_delay: Duration,
}

impl KafkaSettings {
    fn load(env: &mut EnvReader) -> Self {
        let brokers = env.read_string("KAFKA_BROKERS", "127.0.0.1:9092");
        let topic = env.read_string("KAFKA_TOPIC", order_events::DEFAULT_TOPIC);
        if !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || topic.len() > 249
        {
            env.problem("KAFKA_TOPIC: only letters, digits, '.', '_' and '-', at most 249");
        }
        let topic_partitions = env.read("KAFKA_TOPIC_PARTITIONS", 6_i32);
        if topic_partitions < 1 {
            env.problem("KAFKA_TOPIC_PARTITIONS: must be at least 1");
        }
        let topic_replication_factor = env.read("KAFKA_TOPIC_REPLICATION_FACTOR", 1_i32);
        if topic_replication_factor < 1 {
            env.problem("KAFKA_TOPIC_REPLICATION_FACTOR: must be at least 1");
        }
        let linger = Duration::from_millis(env.read("KAFKA_LINGER_MS", 2_u64));
        let message_timeout = Duration::from_millis(env.read("KAFKA_MESSAGE_TIMEOUT_MS", 0_u64));
        Self {
            brokers,
            topic,
            topic_partitions,
            topic_replication_factor,
            linger,
            message_timeout,
        }
    }
}

impl OutboxSettings {
    fn load(env: &mut EnvReader) -> Self {
        let relay_enabled = env.read_bool("OUTBOX_RELAY_ENABLED", true);
        let batch_size = env.read("OUTBOX_BATCH_SIZE", 1000_i64);
        if !(1..=100_000).contains(&batch_size) {
            env.problem("OUTBOX_BATCH_SIZE: must be between 1 and 100000");
        }
        let poll_interval = Duration::from_millis(env.read("OUTBOX_POLL_INTERVAL_MS", 50_u64));
        if poll_interval.is_zero() {
            env.problem("OUTBOX_POLL_INTERVAL_MS: must be at least 1");
        }
        let retention = Duration::from_secs(env.read("OUTBOX_RETENTION_SECS", 86_400_u64));
        let prune_interval =
            Duration::from_secs(env.read("OUTBOX_PRUNE_INTERVAL_SECS", 60_u64).max(1));
        let mark_delay = Duration::from_millis(env.read("OUTBOX_MARK_DELAY_MS", 0_u64));
        Self {
            relay_enabled,
            batch_size,
            poll_interval,
            retention,
            prune_interval,
            mark_delay,
        }
    }
}

impl Config {
    /// Loads from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(EnvReader::from_process())
    }

    /// Loads from a reader, reporting every bad variable at once.
    pub fn load(mut env: EnvReader) -> Result<Self, ConfigError> {
        let host = env.read("ORDER_SERVICE_HOST", IpAddr::from([0, 0, 0, 0]));
        let port = env.read("ORDER_SERVICE_PORT", 8081_u16);
        let url = match env.raw("DATABASE_URL") {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    env.problem("DATABASE_URL: must start with postgres:// or postgresql://");
                }
                url
            }
            None => {
                let db_host = env.read_string("DB_HOST", "127.0.0.1");
                let db_port = env.read("DB_PORT", 5432_u16);
                let user = env.read_string("DB_USER", "postgres");
                let password = env.raw("DB_PASSWORD");
                let name = env.read_string("DB_NAME", "orders");
                let auth = match password {
                    Some(p) => format!("{}:{}", encode(&user), encode(&p)),
                    None => encode(&user),
                };
                format!("postgres://{auth}@{db_host}:{db_port}/{}", encode(&name))
            }
        };
        let pool_size = env.read("DB_POOL_SIZE", 32_u32);
        if pool_size == 0 {
            env.problem("DB_POOL_SIZE: must be at least 1");
        }
        let acquire_timeout = Duration::from_millis(env.read("DB_ACQUIRE_TIMEOUT_MS", 5000_u64));
        let order_number_start = env.read("ORDER_NUMBER_START", 8_000_000_000_i64);
        if !(1..=9_999_999_999).contains(&order_number_start) {
            env.problem("ORDER_NUMBER_START: must be between 1 and 9999999999");
        }
        let max_body_bytes = env.read("MAX_BODY_BYTES", 256 * 1024_usize);
        let request_timeout = Duration::from_millis(env.read("REQUEST_TIMEOUT_MS", 15_000_u64));
        let shutdown_grace = Duration::from_millis(env.read("SHUTDOWN_GRACE_MS", 10_000_u64));
        let log_format = env.read("LOG_FORMAT", LogFormat::Text);
        let otel = platform::telemetry::OtelConfig::read(&mut env, "order-service");
        let kafka = KafkaSettings::load(&mut env);
        let outbox = OutboxSettings::load(&mut env);
        env.finish()?;
        Ok(Self {
            host,
            port,
            database: DatabaseSettings {
                url,
                pool_size,
                acquire_timeout,
            },
            order_number_start,
            max_body_bytes,
            request_timeout,
            shutdown_grace,
            log_format,
            otel,
            kafka,
            outbox,
        })
    }
}

/// Percent-encodes a URL component (user, password, database name).
fn encode(raw: &str) -> String {
    form_urlencoded::byte_serialize(raw.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(EnvReader::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ))
    }

    #[test]
    fn the_database_url_is_built_from_the_seed_variables() {
        let c = load(&[
            ("DB_HOST", "db"),
            ("DB_PORT", "6543"),
            ("DB_USER", "app"),
            ("DB_PASSWORD", "p@ss word"),
            ("DB_NAME", "orders"),
        ])
        .unwrap();
        assert_eq!(
            c.database.url,
            "postgres://app:p%40ss%20word@db:6543/orders"
        );
        assert_eq!(c.database.redacted(), "postgres://app:***@db:6543/orders");
        assert_eq!(c.port, 8081);
    }

    #[test]
    fn database_url_wins_over_the_parts() {
        let c = load(&[("DATABASE_URL", "postgres://x@h/d"), ("DB_HOST", "other")]).unwrap();
        assert_eq!(c.database.url, "postgres://x@h/d");
    }

    #[test]
    fn kafka_and_outbox_settings_have_working_defaults_and_are_validated() {
        let c = load(&[]).unwrap();
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.kafka.topic, "order-events");
        assert!(c.outbox.relay_enabled);
        let err = load(&[
            ("KAFKA_TOPIC", "bad topic"),
            ("KAFKA_TOPIC_PARTITIONS", "0"),
            ("OUTBOX_BATCH_SIZE", "0"),
            ("OUTBOX_RELAY_ENABLED", "maybe"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 4, "{err}");
    }

    #[test]
    fn all_bad_variables_are_reported_together() {
        let err = load(&[
            ("ORDER_SERVICE_PORT", "http"),
            ("DB_POOL_SIZE", "0"),
            ("LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }
}
