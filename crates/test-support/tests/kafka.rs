//! The Kafka helpers work against the real broker.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use test_support::kafka;

#[tokio::test]
async fn a_record_produced_to_a_fresh_topic_reaches_a_fresh_consumer_group_with_its_headers() {
    let topic = kafka::fresh_topic(3).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &topic.brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for i in 0..10 {
        let key = format!("order-{}", i % 3);
        let value = format!("value-{i}");
        producer
            .send(
                FutureRecord::to(&topic.name)
                    .key(&key)
                    .payload(&value)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "ce_id",
                        value: Some(&format!("id-{i}")),
                    })),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let consumer = kafka::consumer(&topic);
    let got = kafka::consume_exactly(
        &consumer,
        10,
        Duration::from_secs(30),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(got.len(), 10);
    let mut ids: Vec<String> = got.iter().map(|r| r.headers["ce_id"].clone()).collect();
    ids.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("id-{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    // one key, one partition, in produce order
    for key in ["order-0", "order-1", "order-2"] {
        let of_key: Vec<&kafka::ReceivedRecord> = got
            .iter()
            .filter(|r| r.key.as_deref() == Some(key))
            .collect();
        assert!(of_key.windows(2).all(|w| w[0].partition == w[1].partition));
        assert!(of_key.windows(2).all(|w| w[0].offset < w[1].offset));
    }
}

#[tokio::test]
async fn a_private_broker_stops_and_restarts_with_its_topics_and_records() {
    let broker = kafka::PrivateBroker::start();
    let topic = kafka::create_topic(&broker.brokers, 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic.name).key("k").payload("before"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    broker.stop();
    let addr: std::net::SocketAddr = broker.brokers.parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "the broker still accepts connections after stop"
    );
    broker.restart();
    producer
        .send(
            FutureRecord::to(&topic.name).key("k").payload("after"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let consumer = kafka::consumer(&topic);
    let got = kafka::consume_exactly(&consumer, 2, Duration::from_secs(30), Duration::ZERO).await;
    let values: Vec<&[u8]> = got.iter().map(|r| r.payload.as_slice()).collect();
    assert_eq!(values, [b"before".as_slice(), b"after".as_slice()]);
}
