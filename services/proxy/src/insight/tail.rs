//! The live tail of the order events on Kafka: what the seed's Kafka UI was for, for this one
//! topic, built into the proxy's admin API.
//!
//! A background consumer on a thread of its own reads the topic **without a consumer group
//! commit**: it assigns every partition itself, starts from the last [`TailSettings::backfill`]
//! events of each, and follows. Nothing about the tail is stored in Kafka, so any number of
//! proxies can tail without disturbing each other or the real consumers (sap-sync's group).
//! Each message is parsed with the `order-events` envelope and kept in a bounded ring
//! ([`TailSettings::capacity`] events, the oldest dropped first), which the admin API searches
//! by order number, order id or correlation id.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Where and how much to tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailSettings {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The order events topic.
    pub topic: String,
    /// Most events held (the oldest are dropped first).
    pub capacity: usize,
    /// How many of the newest events of each partition are read at start.
    pub backfill: i64,
}

/// One order event as the tail keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct TailEvent {
    /// Kafka partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The record's timestamp (when the relay published it).
    pub timestamp: Option<DateTime<Utc>>,
    /// The record key (the order id).
    pub key: Option<String>,
    /// The CloudEvents type, e.g. `order.created`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The CloudEvents id (one per committed change).
    pub event_id: Option<String>,
    /// When the change was committed in the order service (its outbox row was written).
    pub event_time: Option<DateTime<Utc>>,
    /// The order id (`subject`).
    pub order_id: Option<String>,
    /// The order number (`data.order_number`).
    pub order_number: Option<String>,
    /// The correlation id (extension or header).
    pub correlation_id: Option<String>,
    /// The order's version after the change (`data.version`).
    pub version: Option<i64>,
    /// The event's `data`, as published.
    pub payload: Option<Box<RawValue>>,
}

impl TailEvent {
    /// Whether `q` names this event's order number, order id or correlation id exactly
    /// (ignoring case).
    pub fn matches(&self, q: &str) -> bool {
        [&self.order_number, &self.order_id, &self.correlation_id]
            .into_iter()
            .any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(q)))
    }

    /// Parses one Kafka record. Anything that is not a JSON object is `None` (counted as
    /// skipped); a JSON object that is no order CloudEvent is kept with what could be read.
    pub fn parse(
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        header_correlation: Option<String>,
        value: &[u8],
    ) -> Option<Self> {
        let v: Value = serde_json::from_slice(value).ok()?;
        let obj = v.as_object()?;
        let text = |o: &serde_json::Map<String, Value>, k: &str| {
            o.get(k).and_then(Value::as_str).map(str::to_owned)
        };
        let data = obj.get("data");
        let data_obj = data.and_then(Value::as_object);
        Some(TailEvent {
            partition,
            offset,
            timestamp: timestamp_ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            event_type: text(obj, "type"),
            event_id: text(obj, "id"),
            event_time: obj
                .get("time")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            order_id: text(obj, "subject").or_else(|| data_obj.and_then(|d| text(d, "order_id"))),
            order_number: data_obj.and_then(|d| text(d, "order_number")),
            correlation_id: text(obj, "correlationid").or(header_correlation),
            version: data_obj
                .and_then(|d| d.get("version"))
                .and_then(Value::as_i64),
            payload: data.and_then(|d| serde_json::value::to_raw_value(d).ok()),
        })
    }
}

/// How the tail is doing.
#[derive(Debug, Clone, Serialize)]
pub struct TailStatus {
    /// Whether a tail is configured (`PROXY_KAFKA_BROKERS`).
    pub enabled: bool,
    /// Whether the consumer has the topic's partitions assigned and the broker answered lately.
    pub connected: bool,
    /// The topic tailed (`null` when disabled).
    pub topic: Option<String>,
    /// Events held.
    pub held: usize,
    /// Records that were not order events (not JSON objects), since start.
    pub skipped: u64,
    /// The last problem, while it lasts.
    pub error: Option<String>,
}

#[derive(Default)]
struct Ring {
    events: VecDeque<Arc<TailEvent>>,
    skipped: u64,
    connected: bool,
    error: Option<String>,
}

/// The tail's handle: cheap to clone; `disabled()` when no Kafka is configured.
#[derive(Clone, Default)]
pub struct EventTail {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    settings: TailSettings,
    ring: Mutex<Ring>,
    stop: AtomicBool,
}

impl EventTail {
    /// No tail (no Kafka configured): status `enabled: false`, never any event.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the consumer thread. It runs until [`EventTail::stop`]; a broker that is down or
    /// a topic that does not exist yet is retried, and shown in the status meanwhile.
    pub fn start(settings: TailSettings) -> Self {
        let inner = Arc::new(Inner {
            settings,
            ring: Mutex::new(Ring::default()),
            stop: AtomicBool::new(false),
        });
        let worker = inner.clone();
        let spawned = std::thread::Builder::new()
            .name("proxy-event-tail".into())
            .spawn(move || worker.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "event tail thread could not start");
            inner.ring.lock().expect("tail ring").error = Some(e.to_string());
        }
        Self { inner: Some(inner) }
    }

    /// Stops the consumer thread (at shutdown).
    pub fn stop(&self) {
        if let Some(i) = &self.inner {
            i.stop.store(true, Ordering::Relaxed);
        }
    }

    /// The status, for the admin API.
    pub fn status(&self) -> TailStatus {
        match &self.inner {
            None => TailStatus {
                enabled: false,
                connected: false,
                topic: None,
                held: 0,
                skipped: 0,
                error: None,
            },
            Some(i) => {
                let ring = i.ring.lock().expect("tail ring");
                TailStatus {
                    enabled: true,
                    connected: ring.connected,
                    topic: Some(i.settings.topic.clone()),
                    held: ring.events.len(),
                    skipped: ring.skipped,
                    error: ring.error.clone(),
                }
            }
        }
    }

    /// The newest events first, at most `limit`, only those `q` names when given.
    pub fn search(&self, q: Option<&str>, limit: usize) -> Vec<Arc<TailEvent>> {
        let Some(i) = &self.inner else {
            return Vec::new();
        };
        let ring = i.ring.lock().expect("tail ring");
        ring.events
            .iter()
            .rev()
            .filter(|e| q.is_none_or(|q| e.matches(q)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Whether a tail runs.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }
}

impl Inner {
    fn set_state(&self, connected: bool, error: Option<String>) {
        let mut ring = self.ring.lock().expect("tail ring");
        if error.is_some() && ring.error != error {
            tracing::warn!(topic = %self.settings.topic, error = ?error, "event tail: Kafka problem");
        }
        ring.connected = connected;
        ring.error = error;
    }

    fn push(&self, event: Option<TailEvent>) {
        let mut ring = self.ring.lock().expect("tail ring");
        match event {
            Some(e) => {
                if ring.events.len() >= self.settings.capacity {
                    ring.events.pop_front();
                }
                ring.events.push_back(Arc::new(e));
            }
            None => ring.skipped += 1,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Connect, assign, follow; on any failure wait a moment and start over (from the last
    /// offset seen per partition, so nothing is held twice).
    fn run(self: Arc<Self>) {
        let mut next: std::collections::HashMap<i32, i64> = Default::default();
        while !self.stopped() {
            if let Err(e) = self.follow(&mut next) {
                self.set_state(false, Some(e));
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until && !self.stopped() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn follow(&self, next: &mut std::collections::HashMap<i32, i64>) -> Result<(), String> {
        let topic = self.settings.topic.as_str();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.brokers)
            // A group id librdkafka wants, never joined (partitions are assigned, not
            // subscribed) and never committed to.
            .set(
                "group.id",
                format!("proxy-tail-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .set("socket.timeout.ms", "10000")
            .create()
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
        let mut assigned: HashSet<i32> = HashSet::new();
        let mut last_metadata = Instant::now() - Duration::from_secs(3600);
        while !self.stopped() {
            // New partitions (and the first assignment) from the metadata, every few seconds.
            if last_metadata.elapsed() >= Duration::from_secs(5) {
                last_metadata = Instant::now();
                let partitions = self.partitions(&consumer)?;
                let fresh: Vec<i32> = partitions
                    .into_iter()
                    .filter(|p| !assigned.contains(p))
                    .collect();
                if !fresh.is_empty() {
                    let mut tpl = TopicPartitionList::new();
                    for p in &fresh {
                        let start = match next.get(p) {
                            Some(o) => *o,
                            None => {
                                let (low, high) = consumer
                                    .fetch_watermarks(topic, *p, Duration::from_secs(5))
                                    .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
                                (high - self.settings.backfill).max(low)
                            }
                        };
                        tpl.add_partition_offset(topic, *p, Offset::Offset(start))
                            .map_err(|e| e.to_string())?;
                    }
                    consumer
                        .incremental_assign(&tpl)
                        .map_err(|e| format!("cannot assign {topic}: {e}"))?;
                    assigned.extend(fresh);
                }
                self.set_state(true, None);
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(e)) => {
                    // Transient errors (a broker restart) come through here; librdkafka
                    // reconnects itself, so only the status shows them.
                    self.set_state(false, Some(e.to_string()));
                    last_metadata = Instant::now() - Duration::from_secs(3600);
                }
                Some(Ok(m)) => {
                    next.insert(m.partition(), m.offset() + 1);
                    let correlation = m.headers().and_then(|h| {
                        h.iter()
                            .find(|h| h.key == order_events::headers::CORRELATION_ID)
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    });
                    let event = TailEvent::parse(
                        m.partition(),
                        m.offset(),
                        m.timestamp().to_millis(),
                        m.key(),
                        correlation,
                        m.payload().unwrap_or_default(),
                    );
                    self.push(event);
                }
            }
        }
        Ok(())
    }

    fn partitions(&self, consumer: &BaseConsumer) -> Result<Vec<i32>, String> {
        let topic = self.settings.topic.as_str();
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map_err(|e| format!("Kafka at {} did not answer: {e}", self.settings.brokers))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("topic {topic} not found"))?;
        if let Some(e) = t.error() {
            return Err(format!("topic {topic}: {e:?}"));
        }
        if t.partitions().is_empty() {
            return Err(format!("topic {topic} has no partitions yet"));
        }
        Ok(t.partitions().iter().map(|p| p.id()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_event_is_parsed_and_matched_by_number_id_and_correlation_id() {
        let value = br#"{"specversion":"1.0","id":"e1","source":"/order-service","type":"order.created",
            "subject":"0190c0de-0000-7000-8000-000000000001","time":"2026-12-01T10:00:00Z",
            "datacontenttype":"application/json","dataschema":"urn:x","correlationid":"Corr-1",
            "data":{"order_id":"0190c0de-0000-7000-8000-000000000001","order_number":"5000001","version":1}}"#;
        let e = TailEvent::parse(2, 7, Some(1_764_583_200_000), Some(b"k"), None, value).unwrap();
        assert_eq!(e.event_type.as_deref(), Some("order.created"));
        assert_eq!(e.version, Some(1));
        assert!(e.matches("5000001"));
        assert!(e.matches("corr-1"));
        assert!(e.matches("0190C0DE-0000-7000-8000-000000000001"));
        assert!(!e.matches("500000"));
        assert!(TailEvent::parse(0, 0, None, None, None, b"not json").is_none());
    }

    #[test]
    fn the_header_correlation_id_is_used_when_the_envelope_has_none() {
        let e = TailEvent::parse(0, 0, None, None, Some("h-1".into()), br#"{"type":"x"}"#).unwrap();
        assert_eq!(e.correlation_id.as_deref(), Some("h-1"));
    }
}
