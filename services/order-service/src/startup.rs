//! Building and running the service: `build` binds the port (0 in tests) and prepares the
//! database; `run_until` serves until the shutdown token fires, then drains in-flight requests
//! for at most the grace period.

use std::net::SocketAddr;
use std::time::Duration;

use platform::shutdown::CancellationToken;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db;
use crate::http::{self, AppState};
use crate::repository::OrderRepository;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database {url}: {source}")]
    Database {
        /// Redacted URL.
        url: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// The Kafka producer could not be configured.
    #[error("Kafka producer: {0}")]
    Kafka(#[source] rdkafka::error::KafkaError),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A built, not yet running service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    grace: Duration,
    state: AppState,
    outbox: crate::outbox::OutboxWorkers,
}

impl Application {
    /// Connects and migrates the database, then binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // Install the metrics recorder before anything records.
        platform::http_metrics::prometheus_handle();
        let db_err = |source| StartupError::Database {
            url: config.database.redacted(),
            source,
        };
        let pool = db::connect(&config.database).await.map_err(db_err)?;
        db::prepare(&pool, config.order_number_start)
            .await
            .map_err(db_err)?;
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let outbox = crate::outbox::OutboxWorkers::prepare(pool.clone(), &config)
            .map_err(StartupError::Kafka)?;
        let state = AppState {
            repository: OrderRepository::new(pool),
            kafka: outbox.health(),
        };
        let router = http::router(state.clone(), &config);
        Ok(Self {
            listener,
            router,
            grace: config.shutdown_grace,
            state,
            outbox,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests use its pool to count rows).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` fires, then drains for at most the grace period.
    pub async fn run_until(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(port = self.port(), "order-service listening");
        self.outbox.spawn(shutdown.clone());
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace = self.grace;
        let deadline = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!(?grace, "grace period over, dropping remaining requests");
                Ok(())
            }
        }
    }
}
