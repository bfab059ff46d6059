//! Must-show 3: a relay killed with SIGKILL in the middle of a batch loses nothing, and what it
//! had sent is sent again under the same event ids.

use futures::future::join_all;
use test_support::kafka;

use crate::helpers::*;

#[tokio::test]
async fn a_relay_killed_by_sigkill_mid_batch_loses_nothing_and_resent_events_keep_their_ids() {
    const N: usize = 30;
    const K: i64 = 5;
    const BATCH: usize = 40;
    let topic = kafka::fresh_topic(3).await;
    // The service only writes; the relays under test are separate processes.
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    join_all((0..N).map(|i| {
        let service = &service;
        async move {
            let (id, v) = service.create_order(&format!("PO-crash-{i}")).await;
            service
                .change_order(id, v, &format!("{}", 300_000 + i))
                .await
        }
    }))
    .await;
    assert_eq!(service.outbox_counts().await, (N as i64 * K, N as i64 * K));

    // Relay A publishes a batch, gets the broker's acks, then is held before marking
    // (fault injection) and killed there: the worst moment, events out but not recorded.
    let (mut relay_a, log_a) = spawn_relay(
        "relay-a",
        &service.db,
        &topic,
        &[
            ("OUTBOX_BATCH_SIZE", &BATCH.to_string()),
            ("OUTBOX_MARK_DELAY_MS", "600000"),
        ],
    );
    let consumer = kafka::consumer(&topic);
    let first = kafka::consume_until(&consumer, KAFKA_PATIENCE, |seen| seen.len() >= BATCH).await;
    test_support::eventually(
        "relay A is holding an acked batch",
        KAFKA_PATIENCE,
        || async {
            let log = std::fs::read_to_string(&log_a).unwrap_or_default();
            log.contains("fault injection: acked").then_some(())
        },
    )
    .await;
    assert!(!relay_a.has_exited(), "relay A is still running");
    relay_a.kill_hard();
    let (_, pending) = service.outbox_counts().await;
    assert_eq!(
        pending,
        N as i64 * K,
        "relay A marked nothing before it died"
    );

    // Relay B finishes the job, sending A's batch again.
    let (_relay_b, _log_b) = spawn_relay("relay-b", &service.db, &topic, &[]);
    let rest = kafka::consume_until(&consumer, KAFKA_PATIENCE, |seen| {
        let mut all = first.clone();
        all.extend_from_slice(seen);
        distinct_ids(&all).len() >= N * K as usize
    })
    .await;
    let mut all = first.clone();
    all.extend(rest);
    test_support::eventually(
        "relay B marks everything published",
        KAFKA_PATIENCE,
        || async { (service.outbox_counts().await.1 == 0).then_some(()) },
    )
    .await;
    // B marks rows only after their acks: every copy it sent is on the broker by now.
    all.extend(
        kafka::consume_exactly(
            &consumer,
            0,
            KAFKA_PATIENCE,
            std::time::Duration::from_secs(3),
        )
        .await,
    );

    assert_eq!(
        distinct_ids(&all),
        service.event_ids().await,
        "nothing lost"
    );
    // A marked nothing, so B sent every event again: A's copies plus B's.
    assert!(
        all.len() >= N * K as usize + first.len(),
        "A's events went out twice ({} records for {} events, {} from A seen first)",
        all.len(),
        N * K as usize,
        first.len()
    );
    // Re-sent events keep their ids: every event A got out before it died is on the wire at
    // least twice under the same id; the same (order, version) never shows under a second id,
    // and an id never carries other content (checked by first_seen_versions).
    for id in distinct_ids(&first) {
        let copies = all.iter().filter(|r| r.headers["ce_id"] == id).count();
        assert!(
            copies >= 2,
            "event {id} from A was not re-sent by B under its id"
        );
    }
    let versions = first_seen_versions(&all);
    assert_in_order(&versions, N, K);
}

#[tokio::test]
async fn a_relay_killed_by_sigkill_at_an_arbitrary_moment_of_a_drain_loses_nothing_and_keeps_order()
{
    const N: usize = 60;
    const K: i64 = 5;
    let topic = kafka::fresh_topic(3).await;
    let service = spawn_service(&topic, &[("OUTBOX_RELAY_ENABLED", "false")]).await;
    join_all((0..N).map(|i| {
        let service = &service;
        async move {
            let (id, v) = service.create_order(&format!("PO-kill-{i}")).await;
            service
                .change_order(id, v, &format!("{}", 500_000 + i))
                .await
        }
    }))
    .await;

    // Small batches, each held 20 ms between its acks and its mark, so the drain takes about a
    // second and the kill lands with batches marked, acked but unmarked, and in flight.
    let relay_env = [
        ("OUTBOX_BATCH_SIZE", "10"),
        ("KAFKA_LINGER_MS", "0"),
        ("OUTBOX_MARK_DELAY_MS", "20"),
    ];
    let (mut relay_a, _log_a) = spawn_relay("relay-a", &service.db, &topic, &relay_env);
    let consumer = kafka::consumer(&topic);
    let first = kafka::consume_until(&consumer, KAFKA_PATIENCE, |seen| seen.len() >= 50).await;
    relay_a.kill_hard();
    let (_, pending_after_kill) = service.outbox_counts().await;

    let (_relay_b, _log_b) = spawn_relay("relay-b", &service.db, &topic, &relay_env[..2]);
    test_support::eventually(
        "relay B marks everything published",
        KAFKA_PATIENCE,
        || async { (service.outbox_counts().await.1 == 0).then_some(()) },
    )
    .await;
    let mut all = first;
    all.extend(
        kafka::consume_exactly(
            &consumer,
            0,
            KAFKA_PATIENCE,
            std::time::Duration::from_secs(3),
        )
        .await,
    );
    assert!(
        pending_after_kill > 0,
        "relay A was killed before the drain ended"
    );
    assert_eq!(
        distinct_ids(&all),
        service.event_ids().await,
        "nothing lost"
    );
    assert_in_order(&first_seen_versions(&all), N, K);
}
