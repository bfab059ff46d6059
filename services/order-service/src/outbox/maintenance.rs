//! Keeping the outbox small and visible: backlog figures and pruning of published rows.
//!
//! An event is pending while it has a row in the queue table `outbox_pending` (migration
//! 0006) and published once a relay deleted that row.

use std::time::Duration;

use platform::shutdown::CancellationToken;
use serde::Serialize;
use sqlx::PgPool;

/// Pending events, for `/ready` and `/metrics`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Backlog {
    /// Rows not yet published.
    pub pending: i64,
    /// Age of the oldest pending row in seconds (0 when none).
    pub oldest_age_seconds: f64,
}

/// Reads the backlog (a look at the narrow queue table) and updates the gauges.
pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let (pending, oldest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8 \
         FROM outbox_pending",
    )
    .fetch_one(pool)
    .await?;
    let backlog = Backlog {
        pending,
        oldest_age_seconds: oldest.unwrap_or(0.0).max(0.0),
    };
    metrics::gauge!("outbox_backlog_events").set(backlog.pending as f64);
    metrics::gauge!("outbox_oldest_pending_age_seconds").set(backlog.oldest_age_seconds);
    Ok(backlog)
}

/// Rows deleted per statement, so pruning never holds many locks or a long transaction.
const PRUNE_CHUNK: i64 = 5_000;

/// Deletes published events written more than `retention` ago; returns how many. A pending
/// event is never deleted, however old: it goes once it is published and past the retention.
pub async fn prune_published(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE id IN ( \
               SELECT o.id FROM outbox o \
               WHERE o.created_at < now() - make_interval(secs => $1) \
                 AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id) \
               LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(PRUNE_CHUNK)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < PRUNE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// Prunes every `interval` until `shutdown`.
pub async fn run_pruner(
    pool: PgPool,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match prune_published(&pool, retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, ?retention, "pruned published outbox rows"),
            Err(e) => tracing::warn!(error = %e, "pruning the outbox failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
