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
