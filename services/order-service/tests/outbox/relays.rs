//! Must-show 4: two relays at once under concurrent inserts lose nothing and never reorder an
//! order's events.

use std::time::Duration;

use futures::future::join_all;
use test_support::kafka;

use crate::helpers::*;

#[tokio::test]
async fn two_relays_publishing_while_orders_change_concurrently_lose_nothing_and_keep_each_order_in_order()
 {
    const WRITERS: usize = 8;
    const ORDERS_PER_WRITER: usize = 8;
    const K: i64 = 5;
    let n = WRITERS * ORDERS_PER_WRITER;
    let topic = kafka::fresh_topic(3).await;
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    // Small batches and no linger so the two relays interleave a lot.
    let relay_env = [
        ("OUTBOX_BATCH_SIZE", "7"),
        ("KAFKA_LINGER_MS", "0"),
        ("OUTBOX_POLL_INTERVAL_MS", "5"),
    ];
    let (mut relay_a, log_a) = spawn_relay("relay-a", &service.db, &topic, &relay_env);
    let (mut relay_b, log_b) = spawn_relay("relay-b", &service.db, &topic, &relay_env);
    let consumer = kafka::consumer(&topic);

    // Writers change their orders one step at a time, interleaved with the other writers,
    // while both relays run.
    join_all((0..WRITERS).map(|w| {
        let service = &service;
        async move {
            let mut orders = Vec::new();
            for i in 0..ORDERS_PER_WRITER {
                orders.push(service.create_order(&format!("PO-{w}-{i}")).await);
            }
            for (i, (id, v)) in orders.into_iter().enumerate() {
                service
                    .change_order(id, v, &format!("{}", 400_000 + w * 100 + i))
                    .await;
            }
        }
    }))
    .await;

    let records = kafka::consume_exactly(
        &consumer,
        n * K as usize,
        KAFKA_PATIENCE,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        records.len(),
        n * K as usize,
        "no record lost, none duplicated"
    );
    assert_eq!(distinct_ids(&records), service.event_ids().await);
    assert_in_order(&first_seen_versions(&records), n, K);
    // Raw wire order too (not only first occurrences): within an order, offsets follow versions.
    for key in first_seen_versions(&records).keys() {
        let mut of_order: Vec<(i64, i64)> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_str()))
            .map(|r| (r.offset, check_record(r).version))
            .collect();
        of_order.sort();
        let versions: Vec<i64> = of_order.iter().map(|(_, v)| *v).collect();
        assert_eq!(
            versions,
            (1..=K).collect::<Vec<_>>(),
            "order {key} reordered on the wire"
        );
    }
    assert!(
        !relay_a.has_exited() && !relay_b.has_exited(),
        "both relays stayed up"
    );
    relay_a.terminate();
    relay_b.terminate();
    for log in [log_a, log_b] {
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("outbox batch published"),
            "relay {} published nothing: both must share the work\n{text}",
            log.display()
        );
    }
}
