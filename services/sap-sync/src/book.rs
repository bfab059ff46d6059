//! sap-sync's durable state, kept where its input is: a compacted Kafka topic (key = order id,
//! or `watermark:<name>`), so every instance sees the same state whichever partitions it holds
//! after a rebalance, and nothing else has to be run for it.
//!
//! - **Parked orders.** A change SAP refused parks its order: the record holds the refused event
//!   and every later event of that order, in order, with SAP's message. The order's later events
//!   wait there; other orders flow. A redrive (`orderctl sap-sync redrive`) sets `redrive` on the
//!   record; the instance that holds the order's partition applies the events in their original
//!   order and writes the record `resolved`, or parks it again at the first refusal.
//! - **Watermarks** of the backward poll (SAP's `LastChangeDateTime`).
//!
//! Every instance reads the whole topic at start (it is small: compaction keeps one record per
//! key) and follows it afterwards. A record carries a `revision`; an older revision never
//! overwrites a newer one, so a follower that is behind its own writes never goes back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event waiting behind a refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedEvent {
    /// The event id.
    pub id: String,
    /// `order.created`, ...
    pub event_type: String,
    /// The order's version after this change.
    pub version: i64,
    /// The Kafka offset it was read at.
    pub offset: i64,
    /// The order after the change (the event's `data`).
    pub data: Value,
    /// Correlation id of the change.
    pub correlation_id: Option<String>,
    /// Trace context of the change.
    pub traceparent: Option<String>,
}

/// An order whose changes SAP refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedOrder {
    /// Order id (the record key).
    pub order_id: String,
    /// The order number (SAP's key).
    pub order_number: String,
    /// Partition of the order's events.
    pub partition: i32,
    /// `parked` or `resolved`.
    pub state: String,
    /// The refused event first, then every later one, in order.
    pub events: Vec<ParkedEvent>,
    /// SAP's answer to the refused change.
    pub error: String,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// An operator asked for the events to be applied again.
    pub redrive: bool,
    /// How many redrives were asked for so far.
    pub redrives: u32,
    /// +1 per write of this record.
    pub revision: u64,
}

impl ParkedOrder {
    /// True while the order's events wait.
    pub fn is_parked(&self) -> bool {
        self.state == "parked"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Order(ParkedOrder),
    Watermark {
        name: String,
        value: String,
        revision: u64,
    },
}

#[derive(Default)]
struct State {
    orders: HashMap<String, ParkedOrder>,
    watermarks: HashMap<String, (String, u64)>,
}

impl State {
    /// Applies a record unless what is known is newer (a higher revision).
    fn apply(&mut self, r: Record) {
        match r {
            Record::Order(o) => {
                if self
                    .orders
                    .get(&o.order_id)
                    .is_none_or(|old| o.revision > old.revision)
                {
                    self.orders.insert(o.order_id.clone(), o);
                }
            }
            Record::Watermark {
                name,
                value,
                revision,
            } => {
                if self.watermarks.get(&name).is_none_or(|w| revision > w.1) {
                    self.watermarks.insert(name, (value, revision));
                }
            }
        }
    }
}

/// The state topic, read whole and followed.
#[derive(Clone)]
pub struct Book {
    topic: String,
    state: Arc<Mutex<State>>,
    producer: FutureProducer,
}

/// The topic the state lives in, for an events topic.
pub fn state_topic(events_topic: &str) -> String {
    format!("{events_topic}.sap-sync-state")
}

impl Book {
    /// Creates the topic when missing (compacted, one partition), reads it to its end, and
    /// follows it. Redrive requests (from `orderctl`) are picked up from [`Book::parked`] by
    /// the instance that holds the order's partition.
    pub async fn open(brokers: &str, topic: &str, replication: i32) -> anyhow::Result<Book> {
        ensure_topic(
            brokers,
            topic,
            TopicSpec {
                partitions: 1,
                replication,
                compacted: true,
            },
        )
        .await?;
        let state = Arc::new(Mutex::new(State::default()));
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set(
                "group.id",
                format!("sap-sync-book-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10))?;
        // Read to the end before anything is decided on the state.
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
        let follow_state = state.clone();
        std::thread::Builder::new()
            .name("sap-sync-book".into())
            .spawn(move || {
                let mut loaded = Some(loaded_tx);
                let mut position = 0i64;
                if high == 0
                    && let Some(tx) = loaded.take()
                {
                    let _ = tx.send(());
                }
                loop {
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(m)) => {
                            position = m.offset() + 1;
                            let record = m
                                .payload()
                                .and_then(|p| serde_json::from_slice::<Record>(p).ok());
                            if let Some(r) = record {
                                follow_state.lock().expect("book").apply(r);
                            }
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "reading sap-sync's state"),
                        None => {}
                    }
                    if position >= high
                        && let Some(tx) = loaded.take()
                    {
                        // Redrives asked for before this instance started are picked up by
                        // the caller from `parked()`.
                        let _ = tx.send(());
                    }
                }
            })?;
        tokio::time::timeout(Duration::from_secs(60), loaded_rx)
            .await
            .map_err(|_| anyhow::anyhow!("sap-sync's state topic {topic} could not be read"))??;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()?;
        Ok(Book {
            topic: topic.to_owned(),
            state,
            producer,
        })
    }

    /// The order's record when it is parked.
    pub fn parked_order(&self, order_id: &str) -> Option<ParkedOrder> {
        self.state
            .lock()
            .expect("book")
            .orders
            .get(order_id)
            .filter(|o| o.is_parked())
            .cloned()
    }

    /// Every parked order, oldest first.
    pub fn parked(&self) -> Vec<ParkedOrder> {
        let mut v: Vec<ParkedOrder> = self
            .state
            .lock()
            .expect("book")
            .orders
            .values()
            .filter(|o| o.is_parked())
            .cloned()
            .collect();
        v.sort_by_key(|o| o.parked_at);
        v
    }

    /// Every order record, parked or resolved.
    pub fn all(&self) -> Vec<ParkedOrder> {
        self.state
            .lock()
            .expect("book")
            .orders
            .values()
            .cloned()
            .collect()
    }

    /// Writes `order` (its revision one above what is known) and waits for the broker.
    pub async fn put(&self, mut order: ParkedOrder) -> anyhow::Result<ParkedOrder> {
        order.revision = self
            .state
            .lock()
            .expect("book")
            .orders
            .get(&order.order_id)
            .map_or(0, |o| o.revision)
            .max(order.revision)
            + 1;
        order.updated_at = Utc::now();
        let key = order.order_id.clone();
        self.send(&key, &Record::Order(order.clone())).await?;
        self.state
            .lock()
            .expect("book")
            .apply(Record::Order(order.clone()));
        Ok(order)
    }

    /// A watermark.
    pub fn watermark(&self, name: &str) -> Option<String> {
        self.state
            .lock()
            .expect("book")
            .watermarks
            .get(name)
            .map(|w| w.0.clone())
    }

    /// Sets a watermark and waits for the broker.
    pub async fn set_watermark(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let revision = self
            .state
            .lock()
            .expect("book")
            .watermarks
            .get(name)
            .map_or(0, |w| w.1)
            + 1;
        let r = Record::Watermark {
            name: name.to_owned(),
            value: value.to_owned(),
            revision,
        };
        self.send(&format!("watermark:{name}"), &r).await?;
        self.state.lock().expect("book").apply(r);
        Ok(())
    }

    /// Asks for a parked order's events to be applied again (by whichever instance holds its
    /// partition). `None` when the order is not parked.
    pub async fn request_redrive(&self, order: &str) -> anyhow::Result<Option<ParkedOrder>> {
        let found = self
            .parked()
            .into_iter()
            .find(|o| o.order_id == order || o.order_number == order);
        let Some(mut o) = found else {
            return Ok(None);
        };
        o.redrive = true;
        o.redrives += 1;
        self.put(o).await.map(Some)
    }

    async fn send(&self, key: &str, record: &Record) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(record)?;
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("writing sap-sync's state: {e}"))?;
        Ok(())
    }
}

/// How a topic sap-sync depends on is created when it is missing.
#[derive(Debug, Clone, Copy)]
pub struct TopicSpec {
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Compacted (state) instead of deleted by age (events).
    pub compacted: bool,
}

/// Creates `topic` unless it exists (the events topic too: sap-sync may start before the
/// order service's relay provisioned it, and a consumer subscribed to a missing topic waits
/// for the next metadata refresh).
pub async fn ensure_topic(brokers: &str, topic: &str, spec: TopicSpec) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut new = NewTopic::new(
        topic,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    );
    if spec.compacted {
        new = new
            .set("cleanup.policy", "compact")
            .set("min.compaction.lag.ms", "60000");
    }
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .map_err(|e| anyhow::anyhow!("Kafka at {brokers} is not reachable: {e}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("creating topic {t}: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(revision: u64, redrive: bool) -> Record {
        Record::Order(ParkedOrder {
            order_id: "o1".into(),
            order_number: "8000000001".into(),
            partition: 0,
            state: "parked".into(),
            events: Vec::new(),
            error: "V1/392".into(),
            parked_at: Utc::now(),
            updated_at: Utc::now(),
            redrive,
            redrives: 0,
            revision,
        })
    }

    #[test]
    fn a_follower_behind_its_own_writes_never_goes_back() {
        let mut s = State::default();
        s.apply(parked(2, true));
        // The follower reads revision 1 after this instance wrote 2.
        s.apply(parked(1, false));
        assert!(s.orders["o1"].redrive, "revision 2 kept");
        s.apply(parked(3, false));
        assert!(!s.orders["o1"].redrive);
        let w = |v: &str, revision| Record::Watermark {
            name: "w".into(),
            value: v.into(),
            revision,
        };
        s.apply(w("t2", 2));
        s.apply(w("t1", 1));
        assert_eq!(s.watermarks["w"].0, "t2");
    }
}
