//! The gap problem, pruning and the one-event-per-version rule, against real PostgreSQL.

use std::time::Duration;

use chrono::Utc;
use order_events::{OrderEventData, OrderItem, OrderSnapshot};
use order_service::outbox::maintenance;
use sqlx::PgPool;
use test_support::kafka;
use uuid::Uuid;

use crate::helpers::*;

fn created(order_id: Uuid) -> OrderEventData {
    OrderEventData::Created(OrderSnapshot {
        order_id,
        order_number: "8000000999".into(),
        status: "created".into(),
        version: 1,
        customer_id: "17100001".into(),
        currency: "EUR".into(),
        customer_reference: None,
        sales_organization: None,
        distribution_channel: None,
        division: None,
        order_type: None,
        requested_delivery_date: None,
        sap_order_number: None,
        total_net_amount: None,
        specifications: Default::default(),
        items: vec![OrderItem {
            item_number: 10,
            sku: "TG11".into(),
            quantity: "1".into(),
            unit: "PC".into(),
            unit_price: None,
            net_amount: None,
            specifications: Default::default(),
            rejection_reason: None,
        }],
        created_at: Utc::now(),
        updated_at: Utc::now(),
    })
}

const INSERT: &str = "INSERT INTO outbox (event_id, aggregate_id, order_version, event_type, payload, \
     correlation_id, traceparent) VALUES ($1, $2, 1, 'order.created', $3, 'gap-test', \
     '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01') RETURNING id";

#[tokio::test]
async fn an_event_whose_transaction_commits_after_a_later_id_was_published_is_not_skipped() {
    let topic = kafka::fresh_topic(1).await;
    let service = spawn_service(&topic, &[]).await;
    let consumer = kafka::consumer(&topic);

    // Transaction A takes the lower id but commits last.
    let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx_a = service.pool.begin().await.unwrap();
    let id_a: i64 = sqlx::query_scalar(INSERT)
        .bind(Uuid::now_v7())
        .bind(early)
        .bind(sqlx::types::Json(created(early)))
        .fetch_one(&mut *tx_a)
        .await
        .unwrap();
    let id_b: i64 = sqlx::query_scalar(INSERT)
        .bind(Uuid::now_v7())
        .bind(late)
        .bind(sqlx::types::Json(created(late)))
        .fetch_one(&service.pool)
        .await
        .unwrap();
    assert!(id_a < id_b);
    let first = kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::ZERO).await;
    assert_eq!(first[0].key.as_deref(), Some(late.to_string().as_str()));
    test_support::eventually(
        "the higher id is marked published",
        KAFKA_PATIENCE,
        || async {
            let pending: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox_pending WHERE id = $1)")
                    .bind(id_b)
                    .fetch_one(&service.pool)
                    .await
                    .unwrap();
            (!pending).then_some(())
        },
    )
    .await;

    tx_a.commit().await.unwrap();
    let second =
        kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::from_millis(500)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].key.as_deref(), Some(early.to_string().as_str()));
    check_record(&second[0]);
}

/// An event written `age_secs` ago, published (its queue row deleted, as a relay does) or not.
async fn insert_row(pool: &PgPool, age_secs: i64, published: bool) -> i64 {
    let order = Uuid::now_v7();
    let id: i64 = sqlx::query_scalar(INSERT)
        .bind(Uuid::now_v7())
        .bind(order)
        .bind(sqlx::types::Json(created(order)))
        .fetch_one(pool)
        .await
        .unwrap();
    for table in ["outbox", "outbox_pending"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET created_at = now() - make_interval(secs => $2) WHERE id = $1"
        )))
        .bind(id)
        .bind(age_secs as f64)
        .execute(pool)
        .await
        .unwrap();
    }
    if published {
        sqlx::query("DELETE FROM outbox_pending WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    }
    id
}

#[tokio::test]
async fn pruning_deletes_only_published_rows_older_than_the_retention() {
    let topic = kafka::fresh_topic(1).await;
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    let old = insert_row(&service.pool, 7200, true).await;
    let recent = insert_row(&service.pool, 60, true).await;
    let pending = insert_row(&service.pool, 7200, false).await;

    let deleted = maintenance::prune_published(&service.pool, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&service.pool)
        .await
        .unwrap();
    assert_eq!(left, vec![recent, pending]);
    assert!(!left.contains(&old));
    let backlog = maintenance::backlog(&service.pool).await.unwrap();
    assert_eq!(backlog.pending, 1);
    assert!(
        (7200.0..7300.0).contains(&backlog.oldest_age_seconds),
        "oldest pending age {}",
        backlog.oldest_age_seconds
    );
}

#[tokio::test]
async fn the_outbox_refuses_a_second_event_for_the_same_order_version() {
    let topic = kafka::fresh_topic(1).await;
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    let order = Uuid::now_v7();
    for attempt in 0..2 {
        let result = sqlx::query(INSERT)
            .bind(Uuid::now_v7())
            .bind(order)
            .bind(sqlx::types::Json(created(order)))
            .execute(&service.pool)
            .await;
        assert_eq!(
            result.is_ok(),
            attempt == 0,
            "attempt {attempt}: {result:?}"
        );
    }
}
