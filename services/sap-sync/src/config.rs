//! sap-sync's configuration, read once at start. The only module that reads the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `KAFKA_BROKERS` | 127.0.0.1:9092 | bootstrap servers |
//! | `KAFKA_TOPIC` | order-events | the order events |
//! | `SAP_SYNC_GROUP` | sap-sync | consumer group |
//! | `SAP_SYNC_INSTANCE_ID` | — | static group membership (`group.instance.id`): a restart within the session timeout keeps its partitions |
//! | `KAFKA_TOPIC_PARTITIONS` | 6 | partitions of the events topic when sap-sync finds it missing (as the relay) |
//! | `KAFKA_TOPIC_REPLICATION_FACTOR` | 1 | replication factor of the topics sap-sync creates (use 3 on a real cluster) |
//! | `SAP_SYNC_STATE_TOPIC` | `<KAFKA_TOPIC>.sap-sync-state` | compacted topic of parked orders and watermarks |
//! | `SAP_URL` | http://127.0.0.1:8082 | SAP (scheme, host, port): `http://` or `https://` |
//! | `SAP_CA_FILE` | — | for an `https` `SAP_URL`: PEM file of the CA certificate(s) that sign SAP's certificate, then the only ones trusted; unset: the system's CA store (`SSL_CERT_FILE`/`SSL_CERT_DIR` override it). Checked at start (missing, not PEM, no certificate: sap-sync does not start). Verification is never switched off |
//! | `SAP_USER`, `SAP_PASSWORD` | — | SAP logon (basic); never logged |
//! | `SAP_CLIENT` | — | `sap-client` |
//! | `SAP_TIMEOUT_MS` | 10000 | longest SAP call |
//! | `ORDER_SERVICE_URL` | http://127.0.0.1:8081 | the order service |
//! | `SAP_SYNC_PORT` | 8083 | `/health`, `/ready`, `/metrics`, `/parked` |
//! | `SAP_SYNC_BIND` | 0.0.0.0 | address to bind |
//! | `SAP_SYNC_CONCURRENCY` | 16 | orders applied at once (each order's events stay in order) |
//! | `SAP_SYNC_BACKOFF_BASE_MS`, `SAP_SYNC_BACKOFF_MAX_MS` | 200, 30000 | retry delays while SAP is down (full jitter) |
//! | `SAP_SYNC_BACKWARD` | true | poll SAP for what it did to orders (delivery, billing, rejections) |
//! | `SAP_SYNC_POLL_MS` | 2000 | interval of that poll |
//! | `PROXY_ADMIN_URL` | — | the proxy's admin API: while its route `sales-orders` is `retired` (and not returning), sap-sync holds (applies nothing to SAP, skips the backward poll); unset: never holds |
//! | `PROXY_ADMIN_TOKEN` | `ADMIN_TOKEN` | bearer token for that admin API |
//! | `SAP_SYNC_MODE_POLL_MS` | 1000 | how often the route's mode is asked |
//! | `SAP_SYNC_ADMIN_TOKEN` | `PROXY_ADMIN_TOKEN`, `ADMIN_TOKEN` | bearer token for sap-sync's own changes (`POST /parked/{order}/redrive`, which the proxy's console calls with the admin token); unset: every change is refused |
//! | `LOG_FORMAT` | text | `text` or `json` |

use std::net::IpAddr;
use std::time::Duration;

use platform::config::{ConfigError, EnvReader, UpstreamSchemes};
use platform::telemetry::LogFormat;

use crate::sap::SapSettings;

/// Everything sap-sync needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Events topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// State topic.
    pub state_topic: String,
    /// Partitions of the events topic, when it must be created.
    pub topic_partitions: i32,
    /// Replication factor of created topics.
    pub replication: i32,
    /// SAP.
    pub sap: SapSettings,
    /// Order service base URL.
    pub order_service_url: String,
    /// Bind address.
    pub bind: IpAddr,
    /// HTTP port (0 = any, for tests).
    pub port: u16,
    /// Lanes.
    pub concurrency: usize,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Poll SAP backward.
    pub backward: bool,
    /// Backward poll interval.
    pub poll_interval: Duration,
    /// The proxy's admin API, polled for the route's mode (the hold).
    pub proxy_admin: Option<crate::hold::ProxyAdmin>,
    /// Bearer token for changes through sap-sync's own HTTP API (a redrive); `None`: refused.
    pub admin_token: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// OpenTelemetry traces (the standard `OTEL_*` variables; off without an endpoint).
    pub otel: platform::telemetry::OtelConfig,
}

impl Config {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(EnvReader::from_process())
    }

    /// From a reader (tests).
    pub fn from_reader(mut env: EnvReader) -> Result<Self, ConfigError> {
        let topic = env.read_string("KAFKA_TOPIC", order_events::DEFAULT_TOPIC);
        let state_topic = env
            .raw("SAP_SYNC_STATE_TOPIC")
            .unwrap_or_else(|| crate::book::state_topic(&topic));
        let credentials = match (env.raw("SAP_USER"), env.raw("SAP_PASSWORD")) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                env.problem("SAP_USER and SAP_PASSWORD go together");
                None
            }
        };
        let concurrency: usize = env.read("SAP_SYNC_CONCURRENCY", 16);
        if concurrency == 0 {
            env.problem("SAP_SYNC_CONCURRENCY must be at least 1");
        }
        let sap = env.read_upstream_url(
            "SAP_URL",
            "http://127.0.0.1:8082",
            UpstreamSchemes::HttpOrHttps {
                ca_file_var: "SAP_CA_FILE",
            },
        );
        let mode_poll = Duration::from_millis(env.read("SAP_SYNC_MODE_POLL_MS", 1000u64).max(10));
        let proxy_admin = env
            .raw("PROXY_ADMIN_URL")
            .map(|url| crate::hold::ProxyAdmin {
                url,
                token: env
                    .raw("PROXY_ADMIN_TOKEN")
                    .or_else(|| env.raw("ADMIN_TOKEN")),
                poll: mode_poll,
            });
        if let Some(a) = &proxy_admin
            && !(a.url.starts_with("http://") || a.url.starts_with("https://"))
        {
            env.problem("PROXY_ADMIN_URL must be an http:// or https:// URL");
        }
        let admin_token = env
            .raw("SAP_SYNC_ADMIN_TOKEN")
            .or_else(|| env.raw("PROXY_ADMIN_TOKEN"))
            .or_else(|| env.raw("ADMIN_TOKEN"))
            .filter(|t| !t.trim().is_empty());
        let c = Config {
            admin_token,
            proxy_admin,
            brokers: env.read_string("KAFKA_BROKERS", "127.0.0.1:9092"),
            topic,
            group: env.read_string("SAP_SYNC_GROUP", "sap-sync"),
            instance_id: env.raw("SAP_SYNC_INSTANCE_ID"),
            state_topic,
            topic_partitions: env.read("KAFKA_TOPIC_PARTITIONS", 6),
            replication: env.read("KAFKA_TOPIC_REPLICATION_FACTOR", 1),
            sap: SapSettings {
                url: sap.base(),
                tls: sap.tls,
                credentials,
                client: env.raw("SAP_CLIENT"),
                timeout: Duration::from_millis(env.read("SAP_TIMEOUT_MS", 10_000)),
            },
            order_service_url: env.read_string("ORDER_SERVICE_URL", "http://127.0.0.1:8081"),
            bind: env.read("SAP_SYNC_BIND", IpAddr::from([0, 0, 0, 0])),
            port: env.read("SAP_SYNC_PORT", 8083),
            concurrency: concurrency.max(1),
            backoff_base: Duration::from_millis(env.read("SAP_SYNC_BACKOFF_BASE_MS", 200)),
            backoff_max: Duration::from_millis(env.read("SAP_SYNC_BACKOFF_MAX_MS", 30_000)),
            backward: env.read_bool("SAP_SYNC_BACKWARD", true),
            poll_interval: Duration::from_millis(env.read("SAP_SYNC_POLL_MS", 2000)),
            log_format: env.read("LOG_FORMAT", LogFormat::Text),
            otel: platform::telemetry::OtelConfig::read(&mut env, "sap-sync"),
        };
        env.finish()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_and_bad_values_are_all_reported() {
        let c = Config::from_reader(EnvReader::from_map(Default::default())).unwrap();
        assert_eq!(c.topic, "order-events");
        assert_eq!(c.state_topic, "order-events.sap-sync-state");
        assert_eq!(c.concurrency, 16);
        assert!(c.proxy_admin.is_none());
        let c = Config::from_reader(EnvReader::from_map(
            [
                (
                    "PROXY_ADMIN_URL".to_owned(),
                    "http://127.0.0.1:9080".to_owned(),
                ),
                ("ADMIN_TOKEN".to_owned(), "t".to_owned()),
            ]
            .into(),
        ))
        .unwrap();
        let admin = c.proxy_admin.unwrap();
        assert_eq!(
            (admin.token.as_deref(), admin.poll),
            (Some("t"), Duration::from_secs(1))
        );
        let e = Config::from_reader(EnvReader::from_map(
            [
                ("SAP_USER".to_owned(), "u".to_owned()),
                ("SAP_SYNC_CONCURRENCY".to_owned(), "zero".to_owned()),
            ]
            .into(),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("SAP_PASSWORD") && e.contains("SAP_SYNC_CONCURRENCY"),
            "{e}"
        );
    }

    #[test]
    fn plain_sap_needs_no_tls_and_a_bad_ca_file_stops_the_start() {
        let c = Config::from_reader(EnvReader::from_map(
            [("SAP_URL".to_owned(), "http://sap:8000/".to_owned())].into(),
        ))
        .unwrap();
        assert_eq!(c.sap.url, "http://sap:8000");
        assert!(c.sap.tls.is_none());
        let e = Config::from_reader(EnvReader::from_map(
            [
                ("SAP_URL".to_owned(), "https://sap:44300".to_owned()),
                ("SAP_CA_FILE".to_owned(), "/nonexistent/ca.pem".to_owned()),
            ]
            .into(),
        ))
        .unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert!(e.problems[0].starts_with("SAP_CA_FILE"), "{e}");
    }
}
