//! Real infrastructure for tests, never mocks (habit 6 of `STYLE.md`).
//!
//! - [`postgres`]: makes sure a PostgreSQL server is running (the project's own cluster, started
//!   through `scripts/postgres.sh`, or the server named by `TEST_DATABASE_URL`) and hands each
//!   test a fresh, empty database. When no server can be had, the test panics and says why:
//!   tests that need PostgreSQL never silently skip.
//! - [`kafka`]: makes sure an Apache Kafka broker is running (the project's own, started through
//!   `scripts/kafka.sh`, or `KAFKA_BROKERS`), creates a random topic per test, consumes with a
//!   random group; [`kafka::PrivateBroker`] gives outage tests a broker of their own to stop.
//! - [`process`]: child processes of the real binaries that are killed when dropped, with
//!   SIGKILL available for crash tests, and free loopback ports.
//! - [`relay`]: a TCP relay that loses a server's answers after the request reached it whole.
//! - [`tls`]: a test CA made at test time and a TLS-terminating relay that puts a plain server
//!   (the SAP emulator) behind `https`.
//! - [`otel`]: the OpenTelemetry spans a test process makes, collected in memory.
//! - [`eventually`]: poll a condition until a deadline instead of sleeping.
//!
//! Only ever a dev-dependency.

pub mod kafka;
pub mod otel;
pub mod postgres;
pub mod process;
pub mod relay;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The workspace root (where `Cargo.toml` with `[workspace]` and `scripts/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
