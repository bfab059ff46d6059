//! A lane of PostgreSQL connections for the hottest statement (the create), without the
//! health-check round trips of sqlx's pool.
//!
//! sqlx 0.9's pool pings a connection with a round trip every time one is given back (a
//! task spawned from the drop of every pooled connection), and by default once more on every
//! acquire. A create is a single statement, so on the pool it cost three round trips, each one
//! a wake-up of a PostgreSQL backend: measured under `orderctl bench order-create`, PostgreSQL
//! spent about 60 µs more CPU per create than for the same statement from pgbench.
//!
//! Here a connection is leased for one statement and handed back as it is:
//!
//! - a statement that finished (with rows or with a database error such as a unique
//!   violation) leaves the connection idle and ready, so it goes straight back;
//! - a lease dropped before its statement finished (the request was cancelled or timed out)
//!   or ended by an I/O or protocol error closes the connection instead: nothing half-read is
//!   ever reused;
//! - a connection idle for more than [`PING_WHEN_IDLE_FOR`] is pinged before use, so one
//!   that sat through a database restart is replaced instead of failing a request.
//!
//! At most `size` connections are open; a lease waits up to the pool's acquire timeout and
//! then fails with [`sqlx::Error::PoolTimedOut`], as the pool would.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An idle connection older than this is pinged before its next statement.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connections for one kind of statement (see the module documentation).
#[derive(Debug, Clone)]
pub struct Lane {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: Arc<PgConnectOptions>,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    size: usize,
}

/// A connection leased for one statement; see [`Lease::finished`].
#[derive(Debug)]
pub struct Lease {
    conn: Option<PgConnection>,
    reusable: bool,
    lane: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl Lane {
    /// A lane as large as `pool`, connecting like it and waiting as long as it does.
    pub fn beside(pool: &PgPool) -> Self {
        let size = pool.options().get_max_connections().max(1) as usize;
        Self {
            inner: Arc::new(Inner {
                options: pool.connect_options(),
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size)),
                acquire_timeout: pool.options().get_acquire_timeout(),
                size,
            }),
        }
    }

    /// Most connections the lane opens.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Idle connections right now.
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Leases a connection: an idle one (pinged first if it was idle long), or a new one.
    pub async fn lease(&self) -> Result<Lease, sqlx::Error> {
        let permit = tokio::time::timeout(
            self.inner.acquire_timeout,
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let idle = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
            let conn = match idle {
                Some((mut conn, since)) => {
                    if since.elapsed() > PING_WHEN_IDLE_FOR && conn.ping().await.is_err() {
                        // Went stale while idle (a restart, a dropped socket): try the next.
                        continue;
                    }
                    conn
                }
                None => self.inner.options.connect().await?,
            };
            return Ok(Lease {
                conn: Some(conn),
                reusable: false,
                lane: Arc::clone(&self.inner),
                _permit: permit,
            });
        }
    }
}

impl Lease {
    /// The connection, for one statement.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// Records how the statement ended: the connection goes back to the lane on success or on
    /// an error PostgreSQL reported (the connection is then idle and ready), and is closed on
    /// anything else. A lease dropped without this call closes its connection.
    pub fn finished<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        self.reusable = match &result {
            Ok(_) => true,
            Err(e) => e.as_database_error().is_some(),
        };
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.reusable
            && let Ok(mut idle) = self.lane.idle.lock()
        {
            idle.push((conn, Instant::now()));
        }
        // Otherwise the connection is dropped here, which closes its socket; the permit goes
        // back with the lease either way.
    }
}
