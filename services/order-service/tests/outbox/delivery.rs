//! Must-show 1: every change of N orders reaches Kafka once by id, valid, in order per order.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::Consumer;
use test_support::kafka;

use crate::helpers::*;

#[tokio::test]
async fn n_orders_with_k_changes_each_reach_kafka_as_n_times_k_distinct_valid_events_in_order_per_order()
 {
    const N: usize = 20;
    const K: i64 = 5;
    let topic = kafka::fresh_topic(3).await;
    let service = spawn_service(&topic, &[]).await;

    // Orders change concurrently with each other, sequentially within an order.
    let lives = (0..N).map(|i| {
        let service = &service;
        async move {
            let (id, v) = service.create_order(&format!("PO-{i}")).await;
            service
                .change_order(id, v, &format!("{}", 100_000 + i))
                .await
        }
    });
    let finals = join_all(lives).await;
    assert!(
        finals.iter().all(|v| *v == K),
        "every order went through {K} versions"
    );

    let consumer = kafka::consumer(&topic);
    let records = kafka::consume_exactly(
        &consumer,
        N * K as usize,
        KAFKA_PATIENCE,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        records.len(),
        N * K as usize,
        "no duplicate and nothing extra on the wire"
    );
    let ids = distinct_ids(&records);
    assert_eq!(ids.len(), N * K as usize, "distinct event ids");
    assert_eq!(
        ids,
        service.event_ids().await,
        "exactly the committed events"
    );
    let versions = first_seen_versions(&records);
    assert_in_order(&versions, N, K);
    // The event types follow the life of each order.
    let types: Vec<&str> = records
        .iter()
        .filter(|r| r.key == records[0].key)
        .map(|r| r.headers["ce_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "order.created",
            "order.updated",
            "order.updated",
            "order.status_changed",
            "order.cancelled"
        ]
    );
    // One order, one partition.
    for key in versions.keys() {
        let partitions: std::collections::HashSet<i32> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_str()))
            .map(|r| r.partition)
            .collect();
        assert_eq!(partitions.len(), 1, "order {key} spread over partitions");
    }
    test_support::eventually(
        "every outbox row marked published",
        KAFKA_PATIENCE,
        || async { (service.outbox_counts().await.1 == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_relay_provisions_its_topic_with_the_configured_partitions() {
    let brokers = kafka::bootstrap_servers().to_owned();
    let name = format!("provisioned-{}", uuid::Uuid::new_v4().simple());
    let topic = kafka::TestTopic {
        name: name.clone(),
        brokers: brokers.clone(),
    };
    let service = spawn_service(&topic, &[("KAFKA_TOPIC_PARTITIONS", "4")]).await;
    let (id, _) = service.create_order("PO-provision").await;

    let consumer = kafka::consumer(&topic);
    let records = kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::ZERO).await;
    assert_eq!(records[0].key.as_deref(), Some(id.to_string().as_str()));
    let metadata = consumer
        .fetch_metadata(Some(&name), Duration::from_secs(10))
        .expect("topic metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 4);
}

#[tokio::test]
async fn ready_reports_kafka_and_the_outbox_backlog_and_metrics_expose_the_relay() {
    let topic = kafka::fresh_topic(1).await;
    let service = spawn_service(&topic, &[]).await;
    service.create_order("PO-ready").await;
    let body = test_support::eventually(
        "/ready shows Kafka ok and an empty backlog",
        KAFKA_PATIENCE,
        || async {
            let (status, body) = service.get_json("/ready").await;
            let ok = status == 200
                && body["status"] == "ready"
                && body["checks"]["kafka"]["status"] == "ok"
                && body["checks"]["outbox"]["backlog"] == 0;
            ok.then_some(body)
        },
    )
    .await;
    assert_eq!(body["checks"]["outbox"]["oldest_age_seconds"], 0.0);
    let metrics = service.get_text("/metrics").await;
    for name in [
        "outbox_backlog_events",
        "outbox_oldest_pending_age_seconds",
        "outbox_commit_to_ack_duration_seconds_bucket",
        "outbox_published_total",
        "kafka_up",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
}

#[tokio::test]
async fn a_voided_order_publishes_order_cancelled_with_status_voided_and_its_reason() {
    let topic = kafka::fresh_topic(1).await;
    let service = spawn_service(&topic, &[]).await;
    let (id, _) = service.create_order("PO-void").await;
    let r = service
        .client
        .post(service.url(&format!("/api/v1/orders/{id}/void")))
        .json(&serde_json::json!({"reason": "sap_rejected"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "void answered {}", r.status());

    let consumer = kafka::consumer(&topic);
    let records =
        kafka::consume_exactly(&consumer, 2, KAFKA_PATIENCE, Duration::from_millis(500)).await;
    assert_eq!(records.len(), 2);
    let void = order_events::CloudEvent::decode(&records[1].payload).unwrap();
    check_record(&records[1]);
    let order_events::OrderEventData::Cancelled(c) = void.data else {
        panic!("expected order.cancelled, got {:?}", void.event_type);
    };
    assert_eq!(c.order.status, "voided");
    assert_eq!(c.previous_status, "created");
    assert_eq!(c.reason.as_deref(), Some("sap_rejected"));
    assert_eq!(c.order.version, 2);
}

#[tokio::test]
async fn rows_written_before_migration_0007_with_only_their_data_are_still_published_valid() {
    let topic = kafka::fresh_topic(1).await;
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    let (id, _) = service.create_order("PO-old-row").await;
    // The row as writers stored it before 0007: the event's data as jsonb, no envelope.
    let moved = sqlx::query(
        "UPDATE outbox SET payload = (envelope::jsonb) -> 'data', envelope = NULL \
         WHERE aggregate_id = $1",
    )
    .bind(id)
    .execute(&service.pool)
    .await
    .expect("rewrite as an old row")
    .rows_affected();
    assert_eq!(moved, 1);

    let (mut relay, _log) = spawn_relay("relay-old-rows", &service.db, &topic, &[]);
    let consumer = kafka::consumer(&topic);
    let records = kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::ZERO).await;
    let seen = check_record(&records[0]);
    assert_eq!(seen.order_id, id.to_string());
    assert_eq!(
        std::collections::HashSet::from([seen.id]),
        service.event_ids().await
    );
    assert!(!relay.has_exited());
}
