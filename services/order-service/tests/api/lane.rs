//! The create statement's connection lane, against the real PostgreSQL: which connections go
//! back for reuse and which are closed.

use std::time::Duration;

use order_service::lane::Lane;
use sqlx::postgres::PgPoolOptions;

async fn backend_alive(pool: &sqlx::PgPool, pid: i32) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Leases a connection, asks for its backend's pid and ends the lease normally.
async fn leased_backend(lane: &Lane) -> i32 {
    let mut lease = lane.lease().await.unwrap();
    let r = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(lease.conn())
        .await;
    lease.finished(r).unwrap()
}

#[tokio::test]
async fn finished_statements_reuse_the_connection_and_cancelled_ones_close_it() {
    let db = test_support::postgres::fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&db.url)
        .await
        .unwrap();
    let observer = sqlx::PgPool::connect(&db.url).await.unwrap();
    let lane = Lane::beside(&pool);
    assert_eq!(lane.size(), 2);

    // A statement that succeeds: the connection goes back.
    let pid = leased_backend(&lane).await;
    assert_eq!(lane.idle(), 1);

    // An error PostgreSQL reports: the connection is idle and ready, so it goes back too, and
    // the next lease gets the same backend.
    let mut lease = lane.lease().await.unwrap();
    let r = sqlx::query_scalar::<_, i32>("SELECT 1/0")
        .fetch_one(lease.conn())
        .await;
    let err = lease.finished(r).unwrap_err();
    assert!(err.as_database_error().is_some(), "{err}");
    assert_eq!(lane.idle(), 1);
    let again = leased_backend(&lane).await;
    assert_eq!(again, pid, "the connection was reused");

    // A statement cancelled half way (the request timed out): the connection is closed, never
    // reused with a half-read answer; its backend goes away.
    let mut lease = lane.lease().await.unwrap();
    assert!(backend_alive(&observer, pid).await);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query("SELECT pg_sleep(3)").execute(lease.conn()),
    )
    .await;
    assert!(cancelled.is_err(), "the statement should have been cut off");
    drop(lease);
    assert_eq!(lane.idle(), 0);
    test_support::eventually(
        "the cancelled connection's backend ends",
        Duration::from_secs(10),
        || async { (!backend_alive(&observer, pid).await).then_some(()) },
    )
    .await;

    // Both leases at once use both permits; a third waits and times out like the pool.
    let a = lane.lease().await.unwrap();
    let b = lane.lease().await.unwrap();
    let third = lane.lease().await;
    assert!(matches!(third, Err(sqlx::Error::PoolTimedOut)), "{third:?}");
    drop((a, b));
    pool.close().await;
}
