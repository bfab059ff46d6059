//! The proxy's one typed configuration, read once from the environment.
//!
//! Every variable the proxy understands is named here and nowhere else (habit 1 of `STYLE.md`).
//! Bad values are collected by [`platform::config::EnvReader`] and reported together.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use platform::config::{ConfigError, EnvReader, UpstreamSchemes};
use platform::telemetry::LogFormat;

use crate::routing::routes::{Mode, SapUnavailablePolicy};

/// Port of the client-facing (SAP-compatible) listener.
pub const PROXY_PORT: &str = "PROXY_PORT";
/// Address the client-facing listener binds to (default `0.0.0.0`).
pub const PROXY_BIND: &str = "PROXY_BIND";
/// Port of the admin API.
pub const PROXY_ADMIN_PORT: &str = "PROXY_ADMIN_PORT";
/// Address the admin API binds to (default loopback).
pub const PROXY_ADMIN_BIND: &str = "PROXY_ADMIN_BIND";
/// Base URL of SAP (or the emulator), e.g. `http://127.0.0.1:8082` or
/// `https://s4.example.com:44300`.
pub const SAP_URL: &str = "SAP_URL";
/// PEM file with the CA certificate(s) that sign SAP's TLS certificate, for an `https`
/// [`SAP_URL`]; they are then the only ones trusted. Unset: the system's CA store.
pub const SAP_CA_FILE: &str = "SAP_CA_FILE";
/// Base URL of the order service, e.g. `http://127.0.0.1:8081`.
pub const ORDER_SERVICE_URL: &str = "ORDER_SERVICE_URL";
/// Bearer token required for every admin change. Unset: every change is refused.
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// Folder of the replay log, the idempotency records, the route table and its audit trail.
pub const PROXY_DATA_DIR: &str = "PROXY_DATA_DIR";
/// Mode of the `sales-orders` route at first start (when no route file exists yet).
pub const PROXY_SALES_ORDERS_MODE: &str = "PROXY_SALES_ORDERS_MODE";
/// Policy of the `sales-orders` route when SAP is unavailable, at first start.
pub const PROXY_SALES_ORDERS_POLICY: &str = "PROXY_SALES_ORDERS_POLICY";
/// Technical SAP user for the proxy's own calls (replays, lookups). Clients' credentials are
/// never stored.
pub const SAP_USER: &str = "SAP_USER";
/// Password of [`SAP_USER`].
pub const SAP_PASSWORD: &str = "SAP_PASSWORD";
/// Timeout for one SAP call (until the response head), milliseconds.
pub const PROXY_SAP_TIMEOUT_MS: &str = "PROXY_SAP_TIMEOUT_MS";
/// Timeout for one order-service call, milliseconds.
pub const PROXY_ORDER_SERVICE_TIMEOUT_MS: &str = "PROXY_ORDER_SERVICE_TIMEOUT_MS";
/// Consecutive failures that open an upstream's circuit breaker.
pub const PROXY_BREAKER_FAILURES: &str = "PROXY_BREAKER_FAILURES";
/// How long an open breaker fails fast before letting one probe through, milliseconds.
pub const PROXY_BREAKER_COOLDOWN_MS: &str = "PROXY_BREAKER_COOLDOWN_MS";
/// Requests handled at once; beyond this the proxy sheds load with 503.
pub const PROXY_MAX_CONCURRENCY: &str = "PROXY_MAX_CONCURRENCY";
/// Calls in flight to one upstream at once; further calls wait (within the timeout).
pub const PROXY_UPSTREAM_MAX_CONCURRENCY: &str = "PROXY_UPSTREAM_MAX_CONCURRENCY";
/// Largest request body accepted, bytes.
pub const PROXY_MAX_BODY_BYTES: &str = "PROXY_MAX_BODY_BYTES";
/// Time a client gets to send its request head, milliseconds (slow-loris guard).
pub const PROXY_CLIENT_HEADER_TIMEOUT_MS: &str = "PROXY_CLIENT_HEADER_TIMEOUT_MS";
/// Longest pause between two pieces of a client's body, milliseconds.
pub const PROXY_CLIENT_BODY_TIMEOUT_MS: &str = "PROXY_CLIENT_BODY_TIMEOUT_MS";
/// Forward the client's `Host` header to SAP (default true, so SAP's absolute links point at
/// the proxy, where the client called); false sends SAP's own authority.
pub const PROXY_PRESERVE_HOST: &str = "PROXY_PRESERVE_HOST";
/// Comma-separated SAP header fields forming a natural key that deduplicates creates sent
/// without `Idempotency-Key` (e.g. `SoldToParty,PurchaseOrderByCustomer`). Empty: off.
pub const PROXY_NATURAL_KEY_FIELDS: &str = "PROXY_NATURAL_KEY_FIELDS";
/// Server page size of the OData face's lists (`__next` beyond it), as S/4's (default 1000,
/// the emulator's default too; 1 to 4999).
pub const PROXY_ODATA_PAGE_SIZE: &str = "PROXY_ODATA_PAGE_SIZE";
/// Currency used for the order service when the SAP request names none (SAP derives it from
/// the customer master; the proxy cannot).
pub const PROXY_DEFAULT_CURRENCY: &str = "PROXY_DEFAULT_CURRENCY";
/// First replay back-off, milliseconds (doubles per attempt, with jitter).
pub const PROXY_REPLAY_BASE_MS: &str = "PROXY_REPLAY_BASE_MS";
/// Longest replay back-off, milliseconds.
pub const PROXY_REPLAY_MAX_MS: &str = "PROXY_REPLAY_MAX_MS";
/// How often the replay worker looks for due work, milliseconds.
pub const PROXY_REPLAY_POLL_MS: &str = "PROXY_REPLAY_POLL_MS";
/// Grace period for in-flight requests at shutdown, milliseconds.
pub const PROXY_SHUTDOWN_GRACE_MS: &str = "PROXY_SHUTDOWN_GRACE_MS";
/// How many order numbers one reservation from the order service takes.
pub const PROXY_ORDER_NUMBER_BLOCK: &str = "PROXY_ORDER_NUMBER_BLOCK";
/// How long after a silent SAP call SAP may still commit it (S/4: the work process's maximum
/// runtime plus the gateway's timeout); the in-doubt create is decided only after it.
pub const PROXY_SAP_COMMIT_HORIZON_MS: &str = "PROXY_SAP_COMMIT_HORIZON_MS";
/// Longest time a client may take to send a buffered request body, in all.
pub const PROXY_CLIENT_BODY_DEADLINE_MS: &str = "PROXY_CLIENT_BODY_DEADLINE_MS";
/// The reasons for rejection SAP has configured (TVAG), comma-separated: a line rejected with
/// another is refused in `events` as SAP would refuse it.
pub const PROXY_REJECTION_REASONS: &str = "PROXY_REJECTION_REASONS";
/// sap-sync's HTTP address (`/status`), for the readiness of a switch to `events`.
pub const SAP_SYNC_URL: &str = "SAP_SYNC_URL";
/// The bearer token sap-sync takes for its changes (a redrive asked from the console); unset:
/// the admin token is sent (sap-sync falls back to the same variable names).
pub const SAP_SYNC_ADMIN_TOKEN: &str = "SAP_SYNC_ADMIN_TOKEN";
/// Most events sap-sync may lag behind for a switch to `events`.
pub const PROXY_SAP_SYNC_MAX_LAG: &str = "PROXY_SAP_SYNC_MAX_LAG";
/// How often a return from `retired` asks sap-sync whether SAP caught up, milliseconds
/// (default 500).
pub const PROXY_RETURN_POLL_MS: &str = "PROXY_RETURN_POLL_MS";
/// Shadow comparisons needed before the match rate counts for readiness.
pub const PROXY_SHADOW_MIN_SAMPLES: &str = "PROXY_SHADOW_MIN_SAMPLES";
/// Shadow match rate (0..1) required to leave dual-write.
pub const PROXY_SHADOW_MIN_MATCH_RATE: &str = "PROXY_SHADOW_MIN_MATCH_RATE";
/// Worker threads serving clients, each with its own event loop and upstream pools
/// (default: one per CPU; `1` serves on the main runtime).
pub const PROXY_WORKERS: &str = "PROXY_WORKERS";
/// Serve plain pass-through requests on the lean HTTP/1.1 path (`true`, the default) or send
/// every request through hyper (`false`). The lean path relays plain sockets, so it is off
/// whatever this says when [`SAP_URL`] is `https`.
pub const PROXY_FAST_PATH: &str = "PROXY_FAST_PATH";
/// How long an idle keep-alive client connection is kept open, in milliseconds.
pub const PROXY_KEEPALIVE_TIMEOUT_MS: &str = "PROXY_KEEPALIVE_TIMEOUT_MS";
/// How long a finished idempotency record is kept, hours (a retry after that is a new request).
pub const PROXY_IDEMPOTENCY_TTL_HOURS: &str = "PROXY_IDEMPOTENCY_TTL_HOURS";
/// Most requests (retrieves and changes, counted inside changesets too) one `$batch` may hold
/// where the proxy serves it (`events`, `retired`); a larger batch is refused whole.
pub const PROXY_BATCH_MAX_PARTS: &str = "PROXY_BATCH_MAX_PARTS";
/// The SAP-face users of a retired route: a file of `name:$argon2id$...` lines (hashes made
/// with `orderctl users hash`). Unset: a retired route refuses every client (401).
pub const PROXY_USERS_FILE: &str = "PROXY_USERS_FILE";
/// The key that signs a retired route's SAP sessions and CSRF tokens (64 hex digits; created
/// when missing). Default `<PROXY_DATA_DIR>/sap-session.key`; replicas share one.
pub const PROXY_SESSION_KEY_FILE: &str = "PROXY_SESSION_KEY_FILE";
/// SAP system id a retired route answers as (cookie `SAP_SESSIONID_<SID>_<client>`, logon
/// realm): the replaced S/4's, so clients see the same names (default `MCK`, the emulator's).
pub const PROXY_SAP_SYSTEM_ID: &str = "PROXY_SAP_SYSTEM_ID";
/// SAP client (`sap-client`) a retired route answers for (default `100`).
pub const PROXY_SAP_CLIENT: &str = "PROXY_SAP_CLIENT";
/// Kafka bootstrap servers for the live tail of the order events (`GET /admin/v1/events`, the
/// journey's outbox and Kafka steps). Unset: no tail (the endpoint answers `enabled: false`).
pub const PROXY_KAFKA_BROKERS: &str = "PROXY_KAFKA_BROKERS";
/// The order events topic the tail reads (default `order-events`, the order service's).
pub const PROXY_KAFKA_TOPIC: &str = "PROXY_KAFKA_TOPIC";
/// Most events the tail holds in memory (default 20 000; the oldest are dropped first).
pub const PROXY_EVENT_TAIL_CAPACITY: &str = "PROXY_EVENT_TAIL_CAPACITY";
/// How many of the newest events of each partition the tail reads at start (default 2 000).
pub const PROXY_EVENT_TAIL_BACKFILL: &str = "PROXY_EVENT_TAIL_BACKFILL";
/// PostgreSQL URL of the state several replicas share (route modes and their audit trail,
/// replica heartbeats, idempotency keys). Unset: each proxy keeps that state in its data
/// folder. The replay log and reserved order numbers stay in the data folder either way.
pub const PROXY_STATE_DATABASE_URL: &str = "PROXY_STATE_DATABASE_URL";
/// How often a replica re-reads the shared route table and writes its heartbeat,
/// milliseconds (default 2000; changes reach replicas at once by `LISTEN/NOTIFY`).
pub const PROXY_STATE_SYNC_MS: &str = "PROXY_STATE_SYNC_MS";
/// This replica's name in the heartbeats (default the `HOSTNAME`, a pod's name).
pub const PROXY_REPLICA_NAME: &str = "PROXY_REPLICA_NAME";
/// Log format, `text` or `json`.
pub const LOG_FORMAT: &str = "LOG_FORMAT";

/// Everything the proxy needs to run.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Client-facing listener address.
    pub listen: SocketAddr,
    /// Admin API listener address.
    pub admin_listen: SocketAddr,
    /// SAP base URL (scheme + authority, optional path prefix).
    pub sap_url: Uri,
    /// TLS client configuration for SAP: `Some` exactly when [`ProxyConfig::sap_url`] is
    /// `https` (trust anchors from [`SAP_CA_FILE`] or the system's store).
    pub sap_tls: Option<Arc<platform::tls::ClientConfig>>,
    /// Order service base URL.
    pub order_service_url: Uri,
    /// Admin bearer token; `None` refuses every change.
    pub admin_token: Option<String>,
    /// Data folder (replay log, idempotency, routes, audit).
    pub data_dir: PathBuf,
    /// Initial mode of `sales-orders`.
    pub initial_mode: Mode,
    /// Initial SAP-unavailable policy of `sales-orders`.
    pub initial_policy: SapUnavailablePolicy,
    /// Technical SAP credentials for the proxy's own calls.
    pub sap_credentials: Option<(String, String)>,
    /// Per-call SAP timeout.
    pub sap_timeout: Duration,
    /// Per-call order-service timeout.
    pub order_service_timeout: Duration,
    /// Failures that open a breaker.
    pub breaker_failures: u32,
    /// Breaker cool-down.
    pub breaker_cooldown: Duration,
    /// Concurrent requests before shedding.
    pub max_concurrency: usize,
    /// Concurrent calls per upstream.
    pub upstream_max_concurrency: usize,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Slow client: head timeout.
    pub client_header_timeout: Duration,
    /// Slow client: body idle timeout.
    pub client_body_timeout: Duration,
    /// Forward the client's Host header.
    pub preserve_host: bool,
    /// Natural-key fields, if configured.
    pub natural_key_fields: Vec<String>,
    /// Server page size of the OData face's lists.
    pub odata_page_size: usize,
    /// Fallback currency for translation.
    pub default_currency: String,
    /// Replay back-off base.
    pub replay_base: Duration,
    /// Replay back-off cap.
    pub replay_max: Duration,
    /// Replay poll interval.
    pub replay_poll: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Order numbers per reservation from the order service.
    pub order_number_block: u32,
    /// How long SAP may still commit a create after its call went silent.
    pub sap_commit_horizon: Duration,
    /// Longest time for a client to send a buffered request body, in all.
    pub client_body_deadline: Duration,
    /// SAP's configured reasons for rejection.
    pub rejection_reasons: Vec<String>,
    /// sap-sync's status address, when one runs.
    pub sap_sync_url: Option<Uri>,
    /// The token for sap-sync's changes ([`SAP_SYNC_ADMIN_TOKEN`], else the admin token).
    pub sap_sync_token: Option<String>,
    /// Most events sap-sync may lag behind for a switch to `events`.
    pub sap_sync_max_lag: u64,
    /// How often a return from `retired` asks sap-sync whether SAP caught up.
    pub return_poll: Duration,
    /// Shadow samples needed for readiness.
    pub shadow_min_samples: u64,
    /// Shadow match rate needed for readiness.
    pub shadow_min_match_rate: f64,
    /// Worker threads for the client side.
    pub workers: usize,
    /// Plain pass-through requests take the lean HTTP/1.1 path ([`crate::serve::h1`]); never when
    /// SAP is `https`.
    pub fast_path: bool,
    /// Idle time after which a keep-alive client connection is closed.
    pub keepalive_timeout: Duration,
    /// Idempotency record lifetime.
    pub idempotency_ttl: Duration,
    /// Most requests one `$batch` may hold.
    pub batch_max_parts: usize,
    /// A retired route's SAP session layer (users, session key, system id, client).
    pub sap_face: crate::face::session::FaceSettings,
    /// The live tail of the order events, when Kafka is configured.
    pub event_tail: Option<crate::insight::TailSettings>,
    /// The shared state database, when replicas share their state.
    pub state_database_url: Option<SecretUrl>,
    /// Re-read and heartbeat period of the shared state.
    pub state_sync: Duration,
    /// This replica's name in the heartbeats.
    pub replica_name: String,
    /// Log format.
    pub log_format: LogFormat,
    /// OpenTelemetry traces (the standard `OTEL_*` variables; off without an endpoint).
    pub otel: platform::telemetry::OtelConfig,
}

/// A URL that may carry a password: never printed.
#[derive(Clone)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretUrl(..)")
    }
}

impl ProxyConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(EnvReader::from_process())
    }

    /// Reads a prepared reader (tests build one from a map).
    pub fn from_reader(mut r: EnvReader) -> Result<Self, ConfigError> {
        let bind: IpAddr = r.read(PROXY_BIND, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let port: u16 = r.read(PROXY_PORT, 8080);
        let admin_bind: IpAddr = r.read(PROXY_ADMIN_BIND, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let admin_port: u16 = r.read(PROXY_ADMIN_PORT, 9080);
        let sap = r.read_upstream_url(
            SAP_URL,
            "http://127.0.0.1:8082",
            UpstreamSchemes::HttpOrHttps {
                ca_file_var: SAP_CA_FILE,
            },
        );
        let order_service_url = read_base_url(&mut r, ORDER_SERVICE_URL, "http://127.0.0.1:8081");
        let admin_token = r.raw(ADMIN_TOKEN);
        let data_dir = PathBuf::from(r.read_string(PROXY_DATA_DIR, ".data/proxy"));
        let initial_mode: Mode = r.read(PROXY_SALES_ORDERS_MODE, Mode::Legacy);
        let initial_policy: SapUnavailablePolicy =
            r.read(PROXY_SALES_ORDERS_POLICY, SapUnavailablePolicy::Strict);
        let sap_credentials = match (r.raw(SAP_USER), r.raw(SAP_PASSWORD)) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                r.problem(format!(
                    "{SAP_USER} and {SAP_PASSWORD} must be set together"
                ));
                None
            }
        };
        let ms = |r: &mut EnvReader, name: &str, default: u64| {
            Duration::from_millis(r.read::<u64>(name, default))
        };
        let sap_timeout = ms(&mut r, PROXY_SAP_TIMEOUT_MS, 30_000);
        let order_service_timeout = ms(&mut r, PROXY_ORDER_SERVICE_TIMEOUT_MS, 5_000);
        let breaker_failures = r.read(PROXY_BREAKER_FAILURES, 5u32).max(1);
        let breaker_cooldown = ms(&mut r, PROXY_BREAKER_COOLDOWN_MS, 5_000);
        let max_concurrency = r.read(PROXY_MAX_CONCURRENCY, 4096usize).max(1);
        let upstream_max_concurrency = r.read(PROXY_UPSTREAM_MAX_CONCURRENCY, 1024usize).max(1);
        let max_body_bytes = r.read(PROXY_MAX_BODY_BYTES, 10 * 1024 * 1024usize);
        let client_header_timeout = ms(&mut r, PROXY_CLIENT_HEADER_TIMEOUT_MS, 10_000);
        let client_body_timeout = ms(&mut r, PROXY_CLIENT_BODY_TIMEOUT_MS, 30_000);
        let preserve_host = r.read_bool(PROXY_PRESERVE_HOST, true);
        let odata_page_size = r.read(PROXY_ODATA_PAGE_SIZE, 1000usize).clamp(1, 4999);
        let natural_key_fields = r
            .raw(PROXY_NATURAL_KEY_FIELDS)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let default_currency = r.read_string(PROXY_DEFAULT_CURRENCY, "EUR");
        let replay_base = ms(&mut r, PROXY_REPLAY_BASE_MS, 500);
        let replay_max = ms(&mut r, PROXY_REPLAY_MAX_MS, 60_000);
        let replay_poll = ms(&mut r, PROXY_REPLAY_POLL_MS, 250);
        let shutdown_grace = ms(&mut r, PROXY_SHUTDOWN_GRACE_MS, 10_000);
        let order_number_block = r.read(PROXY_ORDER_NUMBER_BLOCK, 1000u32).clamp(1, 10_000);
        let sap_commit_horizon = ms(&mut r, PROXY_SAP_COMMIT_HORIZON_MS, 600_000);
        let client_body_deadline = ms(&mut r, PROXY_CLIENT_BODY_DEADLINE_MS, 60_000);
        let sap_sync_url = r
            .raw(SAP_SYNC_URL)
            .map(|_| read_base_url(&mut r, SAP_SYNC_URL, "http://127.0.0.1:8083"));
        let sap_sync_token = r.raw(SAP_SYNC_ADMIN_TOKEN).or_else(|| admin_token.clone());
        let sap_sync_max_lag = r.read(PROXY_SAP_SYNC_MAX_LAG, 100u64);
        let return_poll = ms(&mut r, PROXY_RETURN_POLL_MS, 500);
        // S/4's standard reasons, the emulator's default too.
        let rejection_reasons = r
            .read_string(
                PROXY_REJECTION_REASONS,
                &sap_odata::STANDARD_REJECTION_REASONS.join(","),
            )
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let shadow_min_samples = r.read(PROXY_SHADOW_MIN_SAMPLES, 100u64);
        let shadow_min_match_rate = r.read(PROXY_SHADOW_MIN_MATCH_RATE, 0.99f64);
        if !(0.0..=1.0).contains(&shadow_min_match_rate) {
            r.problem(format!(
                "{PROXY_SHADOW_MIN_MATCH_RATE} must be between 0 and 1"
            ));
        }
        let idempotency_ttl =
            Duration::from_secs(r.read(PROXY_IDEMPOTENCY_TTL_HOURS, 24u64).max(1) * 3600);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = r.read(PROXY_WORKERS, cpus).clamp(1, 256);
        // The lean path relays plain sockets: with TLS to SAP every request goes through hyper.
        let fast_path = r.read_bool(PROXY_FAST_PATH, true) && sap.tls.is_none();
        let keepalive_timeout = ms(&mut r, PROXY_KEEPALIVE_TIMEOUT_MS, 75_000);
        let batch_max_parts = r.read(PROXY_BATCH_MAX_PARTS, 100usize).max(1);
        let sap_face = crate::face::session::FaceSettings {
            system_id: r.read_string(PROXY_SAP_SYSTEM_ID, "MCK"),
            client: r.read_string(PROXY_SAP_CLIENT, "100"),
            users_file: r.raw(PROXY_USERS_FILE).map(PathBuf::from),
            session_key_file: r
                .raw(PROXY_SESSION_KEY_FILE)
                .map_or_else(|| data_dir.join("sap-session.key"), PathBuf::from),
        };
        if sap_face.client.len() != 3 || !sap_face.client.bytes().all(|b| b.is_ascii_digit()) {
            r.problem(format!("{PROXY_SAP_CLIENT} must be three digits"));
        }
        if sap_face.system_id.is_empty()
            || !sap_face
                .system_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            r.problem(format!("{PROXY_SAP_SYSTEM_ID} must be letters and digits"));
        }
        let event_tail = r
            .raw(PROXY_KAFKA_BROKERS)
            .filter(|b| !b.trim().is_empty())
            .map(|brokers| crate::insight::TailSettings {
                brokers,
                topic: String::new(),
                capacity: 0,
                backfill: 0,
            });
        let event_tail = event_tail.map(|mut t| {
            t.topic = r.read_string(PROXY_KAFKA_TOPIC, order_events::DEFAULT_TOPIC);
            t.capacity = r
                .read(PROXY_EVENT_TAIL_CAPACITY, 20_000usize)
                .clamp(1, 1_000_000);
            t.backfill = r
                .read(PROXY_EVENT_TAIL_BACKFILL, 2_000i64)
                .clamp(0, 1_000_000);
            t
        });
        if let Some(t) = &event_tail
            && (t.topic.is_empty()
                || t.topic.len() > 249
                || !t
                    .topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            r.problem(format!(
                "{PROXY_KAFKA_TOPIC}: only letters, digits, '.', '_' and '-', at most 249"
            ));
        }
        let state_database_url = r.raw(PROXY_STATE_DATABASE_URL).map(SecretUrl);
        if let Some(u) = &state_database_url
            && !(u.0.starts_with("postgres://") || u.0.starts_with("postgresql://"))
        {
            r.problem(format!(
                "{PROXY_STATE_DATABASE_URL} must be a postgres:// URL"
            ));
        }
        let state_sync = ms(&mut r, PROXY_STATE_SYNC_MS, 2_000).max(Duration::from_millis(100));
        let replica_name = r
            .raw(PROXY_REPLICA_NAME)
            .or_else(|| r.raw("HOSTNAME"))
            .unwrap_or_else(|| "proxy".to_owned());
        let log_format: LogFormat = r.read(LOG_FORMAT, LogFormat::Text);
        let otel = platform::telemetry::OtelConfig::read(&mut r, "proxy");
        r.finish()?;
        Ok(Self {
            listen: SocketAddr::new(bind, port),
            admin_listen: SocketAddr::new(admin_bind, admin_port),
            sap_url: sap.url,
            sap_tls: sap.tls,
            order_service_url,
            admin_token,
            data_dir,
            initial_mode,
            initial_policy,
            sap_credentials,
            sap_timeout,
            order_service_timeout,
            breaker_failures,
            breaker_cooldown,
            max_concurrency,
            upstream_max_concurrency,
            max_body_bytes,
            client_header_timeout,
            client_body_timeout,
            preserve_host,
            natural_key_fields,
            odata_page_size,
            default_currency,
            replay_base,
            replay_max,
            replay_poll,
            shutdown_grace,
            order_number_block,
            sap_commit_horizon,
            client_body_deadline,
            rejection_reasons,
            sap_sync_url,
            sap_sync_token,
            sap_sync_max_lag,
            return_poll,
            shadow_min_samples,
            shadow_min_match_rate,
            workers,
            fast_path,
            keepalive_timeout,
            idempotency_ttl,
            batch_max_parts,
            sap_face,
            event_tail,
            state_database_url,
            state_sync,
            replica_name,
            log_format,
            otel,
        })
    }
}

/// An inside upstream (order service, sap-sync): plain `http` only.
fn read_base_url(r: &mut EnvReader, name: &str, default: &str) -> Uri {
    r.read_upstream_url(name, default, UpstreamSchemes::HttpOnly)
        .url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pairs: &[(&str, &str)]) -> EnvReader {
        EnvReader::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn defaults_follow_the_architecture_ports_and_keep_admin_on_loopback() {
        let c = ProxyConfig::from_reader(reader(&[])).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.admin_listen, "127.0.0.1:9080".parse().unwrap());
        assert_eq!(c.initial_mode, Mode::Legacy);
        assert_eq!(c.initial_policy, SapUnavailablePolicy::Strict);
        assert!(c.admin_token.is_none());
        assert!(c.sap_sync_token.is_none());
    }

    #[test]
    fn sap_sync_gets_its_own_token_or_the_admin_token() {
        let c = ProxyConfig::from_reader(reader(&[(ADMIN_TOKEN, "admin")])).unwrap();
        assert_eq!(c.sap_sync_token.as_deref(), Some("admin"));
        let c = ProxyConfig::from_reader(reader(&[
            (ADMIN_TOKEN, "admin"),
            (SAP_SYNC_ADMIN_TOKEN, "sync"),
        ]))
        .unwrap();
        assert_eq!(c.sap_sync_token.as_deref(), Some("sync"));
        assert_eq!(c.admin_token.as_deref(), Some("admin"));
    }

    #[test]
    fn every_bad_variable_is_reported_together() {
        let err = ProxyConfig::from_reader(reader(&[
            (PROXY_PORT, "x"),
            (SAP_URL, "ftp://sap"),
            (PROXY_SALES_ORDERS_MODE, "phase-7"),
            (SAP_USER, "only-user"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems.len(), 4, "{err}");
    }

    #[test]
    fn plain_http_sap_keeps_the_lean_path_and_loads_no_tls() {
        let c = ProxyConfig::from_reader(reader(&[(SAP_URL, "http://sap:8000")])).unwrap();
        assert!(c.sap_tls.is_none());
        assert!(c.fast_path);
    }

    #[test]
    fn a_sap_ca_file_that_is_missing_is_reported_by_name() {
        let err = ProxyConfig::from_reader(reader(&[
            (SAP_URL, "https://s4.example.com:44300"),
            (SAP_CA_FILE, "/nonexistent/sap-ca.pem"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].starts_with("SAP_CA_FILE"), "{err}");
    }

    #[test]
    fn https_sap_with_a_ca_file_gets_tls_and_turns_the_lean_path_off() {
        let ca = test_support::tls::TestCa::new("config test CA");
        let c = ProxyConfig::from_reader(reader(&[
            (SAP_URL, "https://127.0.0.1:44300"),
            (SAP_CA_FILE, ca.pem_file().to_str().unwrap()),
            (PROXY_FAST_PATH, "true"),
        ]))
        .unwrap();
        assert!(c.sap_tls.is_some());
        assert!(!c.fast_path);
    }

    #[test]
    fn only_sap_may_be_https() {
        let err = ProxyConfig::from_reader(reader(&[(ORDER_SERVICE_URL, "https://orders:8081")]))
            .unwrap_err();
        assert!(err.problems[0].starts_with(ORDER_SERVICE_URL), "{err}");
    }
}
