//! Database set-up at start: pool, embedded migrations, order number range.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;
use crate::lane::PING_WHEN_IDLE_FOR;

/// The schema, embedded in the binary and applied at start (under sqlx's advisory lock, so
/// several instances starting at once apply it once).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long start-up keeps retrying an unreachable database before giving up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Connects the pool, retrying while the database is not yet reachable.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            // A connection idle longer than PING_WHEN_IDLE_FOR (the create lane's rule too)
            // is pinged before use; sqlx's default pings on every acquire, a whole extra round
            // trip per request. Busy connections have just proved themselves; one that sat
            // idle (say, across a database restart) is checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(&settings.url)
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if Instant::now() < deadline && is_transient(&e) => {
                tracing::warn!(database = %settings.redacted(), error = %e, "database not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
        || e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "57P03") // the database system is starting up
}

/// Applies migrations and moves the order number sequence up to `order_number_start` if it is
/// below it (never down: numbers already handed out stay unique).
pub async fn prepare(pool: &PgPool, order_number_start: i64) -> Result<(), sqlx::Error> {
    MIGRATOR.run(pool).await?;
    sqlx::query(
        "SELECT setval('order_number_seq', $1, false) \
         WHERE (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END \
                FROM order_number_seq) < $1",
    )
    .bind(order_number_start)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether every embedded migration is applied.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    Ok(applied as usize >= MIGRATOR.iter().count())
}
