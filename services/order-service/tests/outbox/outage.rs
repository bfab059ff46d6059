//! Must-show 2: with Kafka down, orders are still accepted; their events arrive after it is back.

use std::time::Duration;

use futures::future::join_all;
use test_support::kafka::{self, PrivateBroker};

use crate::helpers::*;

#[tokio::test]
async fn orders_created_while_kafka_is_down_succeed_and_all_their_events_arrive_after_it_restarts()
{
    // A broker of this test's own: stopping the shared one would break other tests.
    let broker = PrivateBroker::start();
    let topic = kafka::create_topic(&broker.brokers, 3).await;
    let service = spawn_service(&topic, &[]).await;

    // The relay works before the outage.
    let (first, _) = service.create_order("PO-before").await;
    let consumer = kafka::consumer(&topic);
    let before = kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::ZERO).await;
    assert_eq!(before[0].key.as_deref(), Some(first.to_string().as_str()));

    broker.stop();
    const N: usize = 15;
    const K: i64 = 5;
    let created = join_all((0..N).map(|i| {
        let service = &service;
        async move {
            let (id, v) = service.create_order(&format!("PO-outage-{i}")).await;
            service
                .change_order(id, v, &format!("{}", 200_000 + i))
                .await
        }
    }))
    .await;
    assert_eq!(
        created.len(),
        N,
        "every create and change succeeded with Kafka down"
    );

    // The outage is visible but the service stays ready (degraded): orders are still taken.
    let ready = test_support::eventually(
        "/ready reports Kafka unreachable with a backlog",
        KAFKA_PATIENCE,
        || async {
            let (status, body) = service.get_json("/ready").await;
            let down = status == 200
                && body["status"] == "degraded"
                && body["checks"]["kafka"]["status"] != "ok"
                && body["checks"]["outbox"]["backlog"].as_i64() >= Some(N as i64);
            down.then_some(body)
        },
    )
    .await;
    assert!(
        ready["checks"]["outbox"]["oldest_age_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let (total, pending) = service.outbox_counts().await;
    assert_eq!(total, 1 + N as i64 * K);
    assert!(
        pending >= N as i64 * K,
        "the backlog holds the outage events ({pending})"
    );

    broker.restart();
    // A fresh consumer group reads the topic from the start: what is checked is that every
    // event is in Kafka after the outage, not how quickly a consumer that lived through the
    // outage rejoins its group (which, on a busy machine, took longer than the patience here).
    drop(consumer);
    let consumer = kafka::consumer(&topic);
    let all = kafka::consume_until(&consumer, KAFKA_PATIENCE, |seen| {
        distinct_ids(seen).len() > N * K as usize
    })
    .await;
    assert_eq!(
        distinct_ids(&all),
        service.event_ids().await,
        "every committed event arrived"
    );
    let versions = first_seen_versions(&all);
    let outage_orders: std::collections::BTreeMap<_, _> = versions
        .into_iter()
        .filter(|(order, _)| *order != first.to_string())
        .collect();
    assert_in_order(&outage_orders, N, K);
    test_support::eventually("the backlog drains to zero", KAFKA_PATIENCE, || async {
        (service.outbox_counts().await.1 == 0).then_some(())
    })
    .await;
    let metrics = service.get_text("/metrics").await;
    assert!(
        metrics.contains("outbox_publish_errors_total"),
        "the outage shows as publish errors"
    );
}

#[tokio::test]
async fn a_service_started_while_kafka_is_down_takes_orders_and_provisions_its_topic_once_kafka_is_up()
 {
    let broker = PrivateBroker::start();
    broker.stop();
    let topic = kafka::TestTopic {
        name: format!("late-{}", uuid::Uuid::new_v4().simple()),
        brokers: broker.brokers.clone(),
    };
    let service = spawn_service(&topic, &[("KAFKA_TOPIC_PARTITIONS", "2")]).await;
    let (id, _) = service.create_order("PO-no-kafka-yet").await;
    let (status, body) = service.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["outbox"]["backlog"], 1, "{body}");

    broker.restart();
    let consumer = kafka::consumer(&topic);
    let records = kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::ZERO).await;
    assert_eq!(records[0].key.as_deref(), Some(id.to_string().as_str()));
    check_record(&records[0]);
}

#[tokio::test]
async fn a_producer_that_fails_fatally_is_replaced_and_every_event_still_arrives() {
    use order_service::outbox::{kafka as relay_kafka, relay::Relay};
    use rdkafka::producer::Producer;

    const N: usize = 6;
    const K: i64 = 5;
    let topic = kafka::fresh_topic(3).await;
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    let env = env_for(&service.db, &topic, &[("KAFKA_LINGER_MS", "0")]);
    let config = order_service::Config::load(platform::config::EnvReader::from_map(
        env.into_iter().collect(),
    ))
    .expect("configuration");
    let producer = relay_kafka::producer(&config.kafka, "fatal-test").expect("producer");
    let first = producer.clone();
    let shutdown = platform::shutdown::CancellationToken::new();
    let relay = tokio::spawn(
        Relay::new(service.pool.clone(), producer, topic.name.clone(), 20)
            .renew_producer_with(relay_kafka::producer_factory(&config.kafka, "fatal-test"))
            .run(
                Duration::from_millis(20),
                Duration::from_secs(2),
                shutdown.clone(),
            ),
    );
    let consumer = kafka::consumer(&topic);
    let (before, _) = service.create_order("PO-before-fatal").await;
    let seen = kafka::consume_exactly(&consumer, 1, KAFKA_PATIENCE, Duration::ZERO).await;
    assert_eq!(seen[0].key.as_deref(), Some(before.to_string().as_str()));

    // The first producer turns fatal (librdkafka's own test hook, as after a sequence gap):
    // librdkafka refuses every later record of that instance, so whatever arrives from now on
    // was sent by a replacement.
    assert!(kafka::inject_fatal_error(
        first.client(),
        c"test: sequence gap"
    ));
    assert!(first.client().fatal_error().is_some());
    join_all((0..N).map(|i| {
        let service = &service;
        async move {
            let (id, v) = service.create_order(&format!("PO-after-fatal-{i}")).await;
            service
                .change_order(id, v, &format!("{}", 300_000 + i))
                .await
        }
    }))
    .await;
    let mut all = seen;
    all.extend(
        kafka::consume_until(&consumer, KAFKA_PATIENCE, |later| {
            distinct_ids(later).len() >= N * K as usize
        })
        .await,
    );
    assert_eq!(
        distinct_ids(&all),
        service.event_ids().await,
        "every committed event arrived after the fatal error"
    );
    let versions: std::collections::BTreeMap<_, _> = first_seen_versions(&all)
        .into_iter()
        .filter(|(order, _)| *order != before.to_string())
        .collect();
    assert_in_order(&versions, N, K);
    test_support::eventually("the backlog drains to zero", KAFKA_PATIENCE, || async {
        (service.outbox_counts().await.1 == 0).then_some(())
    })
    .await;
    shutdown.cancel();
    relay.await.expect("the relay stops cleanly");
}
