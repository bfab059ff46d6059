//! Forward: the consumer group on the order events, applying each change to SAP.
//!
//! - **Order per order, concurrency across orders.** `SAP_SYNC_CONCURRENCY` workers take events
//!   from one queue keyed by order ([`crate::queue`]): an order's events one after another,
//!   different orders on whichever worker is free, so one slow order holds up no other. The
//!   queue holds a bounded number of events, so a slow SAP slows the fetch instead of filling
//!   memory.
//! - **Offsets after the effect.** An event's offset is stored only once SAP has the effect, or
//!   the order was parked (written to the state topic and acknowledged). The offset committed
//!   for a partition is the lowest one still in work, so a crash or a rebalance re-delivers
//!   events, never skips one. Re-delivered events end as "SAP already has it"
//!   ([`crate::apply`]); an event that a later change of the same order superseded (a later
//!   event of the order is queued behind it, or the order service's version is higher, asked
//!   in batches) is not applied after it.
//! - **Parking.** A change SAP refuses parks its order ([`crate::book`]); its later events are
//!   added to the parked record and wait; other orders flow. Redrives are picked up by the
//!   instance that holds the order's partition.
//! - **SAP down.** A worker that gets no answer waits and tries again; the wait is shared by
//!   every worker (one gate with exponential backoff and full jitter), so a down SAP is probed,
//!   not hammered, and the consumer resumes by itself.
//! - **Held** ([`crate::hold`]): while the route is retired the partitions are paused (nothing
//!   fetched, no offset committed past what SAP has; the events wait in Kafka) and no worker
//!   calls SAP. On the way back, a partition whose committed offset fell below the log start
//!   (events deleted by retention while held) stays paused and is reported as a retention gap:
//!   resuming it would silently skip to the log start.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applied, ApplyError, apply};
use crate::book::{Book, ParkedEvent, ParkedOrder};
use crate::config::Config;
use crate::hold::{Hold, Phase};
use crate::orders::{Asked, AskedFor, Orders, Versions};
use crate::queue::KeyedQueue;
use crate::sap::{CallContext, Sap};

/// Positions in work per partition.
#[derive(Default)]
struct Partition {
    /// Offset → event time, of the events taken but not finished.
    in_work: BTreeMap<i64, DateTime<Utc>>,
    /// One past the highest finished offset.
    next: i64,
}

/// Which offsets are safe to commit, per partition, and the assignment.
#[derive(Default)]
pub struct Tracker {
    partitions: Mutex<HashMap<i32, Partition>>,
    assigned: Mutex<HashSet<i32>>,
    joined: AtomicBool,
    /// Partitions paused for the hold.
    paused: Mutex<BTreeSet<i32>>,
    /// Partitions kept paused on the way back for a retention gap.
    gaps: Mutex<BTreeMap<i32, RetentionGap>>,
}

/// A partition whose committed offset lies below its log start: Kafka deleted events sap-sync
/// never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RetentionGap {
    /// Partition.
    pub partition: i32,
    /// The group's committed offset.
    pub committed: i64,
    /// The first offset Kafka still holds.
    pub log_start: i64,
}

/// One partition's positions: the group's committed offset (`None`: none yet), log start and
/// end.
#[derive(Debug, Clone, Copy)]
pub struct Positions {
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub committed: Option<i64>,
    /// Low watermark.
    pub low: i64,
    /// High watermark.
    pub high: i64,
}

/// The partitions whose committed offset is below the log start.
pub fn retention_gaps(positions: &[Positions]) -> Vec<RetentionGap> {
    positions
        .iter()
        .filter_map(|p| {
            let committed = p.committed?;
            (committed < p.low).then_some(RetentionGap {
                partition: p.partition,
                committed,
                log_start: p.low,
            })
        })
        .collect()
}

impl Tracker {
    fn begin(&self, partition: i32, offset: i64, time: DateTime<Utc>) {
        self.partitions
            .lock()
            .expect("tracker")
            .entry(partition)
            .or_default()
            .in_work
            .insert(offset, time);
    }

    /// Marks `offset` done; the position to commit when it moved.
    fn done(&self, partition: i32, offset: i64) -> Option<i64> {
        let mut parts = self.partitions.lock().expect("tracker");
        let p = parts.get_mut(&partition)?;
        p.in_work.remove(&offset)?;
        p.next = p.next.max(offset + 1);
        Some(p.in_work.keys().next().copied().unwrap_or(p.next))
    }

    /// The event time of the oldest event in work.
    fn oldest_in_work(&self) -> Option<DateTime<Utc>> {
        self.partitions
            .lock()
            .expect("tracker")
            .values()
            .filter_map(|p| p.in_work.values().min().copied())
            .min()
    }

    /// True when this instance holds `partition`.
    pub fn holds(&self, partition: i32) -> bool {
        self.assigned.lock().expect("tracker").contains(&partition)
    }

    /// The partitions held.
    pub fn assigned(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .assigned
            .lock()
            .expect("tracker")
            .iter()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// True once the group was joined.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }
}

/// The consumer's context: forgets the positions of revoked partitions (their next owner starts
/// from the committed offset), records the assignment.
pub struct Context {
    tracker: Arc<Tracker>,
    hold: Arc<Hold>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut parts = self.tracker.partitions.lock().expect("tracker");
            let mut assigned = self.tracker.assigned.lock().expect("tracker");
            let mut paused = self.tracker.paused.lock().expect("tracker");
            let mut gaps = self.tracker.gaps.lock().expect("tracker");
            for e in tpl.elements() {
                parts.remove(&e.partition());
                assigned.remove(&e.partition());
                paused.remove(&e.partition());
                gaps.remove(&e.partition());
            }
            tracing::info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            {
                let mut assigned = self.tracker.assigned.lock().expect("tracker");
                for e in tpl.elements() {
                    assigned.insert(e.partition());
                }
            }
            // Held or returning: a new partition starts paused, so nothing of it reaches SAP
            // before the hold lifts and its retention gap (if any) was looked for.
            if self.hold.phase() != Phase::Free && tpl.count() > 0 {
                match consumer.pause(tpl) {
                    Ok(()) => {
                        let mut paused = self.tracker.paused.lock().expect("tracker");
                        paused.extend(tpl.elements().iter().map(|e| e.partition()));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "assigned partitions could not be paused for the hold")
                    }
                }
            }
            tracing::info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions assigned");
        }
        self.tracker.joined.store(true, Ordering::SeqCst);
    }
}

/// The wait shared by every lane while SAP does not answer.
pub struct Gate {
    until: Mutex<Option<Instant>>,
    failures: AtomicU32,
    base: Duration,
    max: Duration,
}

impl Gate {
    fn new(base: Duration, max: Duration) -> Self {
        Self {
            until: Mutex::new(None),
            failures: AtomicU32::new(0),
            base,
            max,
        }
    }

    async fn wait(&self) {
        let until = *self.until.lock().expect("gate");
        if let Some(t) = until {
            tokio::time::sleep_until(t.into()).await;
        }
    }

    fn failed(&self) {
        let n = self.failures.fetch_add(1, Ordering::SeqCst).min(16);
        let cap = self.base.saturating_mul(1 << n).min(self.max);
        let delay = cap.mul_f64(rand::rng().random_range(0.5..1.0));
        *self.until.lock().expect("gate") = Some(Instant::now() + delay);
        metrics::gauge!("sap_sync_paused").set(1.0);
    }

    fn succeeded(&self) {
        if self.failures.swap(0, Ordering::SeqCst) > 0 {
            *self.until.lock().expect("gate") = None;
            metrics::gauge!("sap_sync_paused").set(0.0);
        }
    }

    /// True while SAP is being waited for.
    pub fn paused(&self) -> bool {
        self.failures.load(Ordering::SeqCst) > 0
    }
}

/// One event taken from Kafka.
struct Taken {
    partition: i32,
    offset: i64,
    /// The order service's version of the order, asked when the event was fetched.
    latest: Option<Asked>,
    event: order_events::CloudEvent<Value>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
}

enum Job {
    Event(Taken),
    Redrive(ParkedOrder),
}

/// What the forward direction shares with the rest of sap-sync.
pub struct Forward {
    /// SAP.
    pub sap: Arc<Sap>,
    /// The order service.
    pub orders: Orders,
    /// Current versions of orders, asked in batches.
    versions: Versions,
    /// State.
    pub book: Book,
    /// Positions and assignment.
    pub tracker: Arc<Tracker>,
    /// SAP's availability.
    pub gate: Gate,
    /// The hold while the route is retired.
    pub hold: Arc<Hold>,
    consumer: Arc<StreamConsumer<Context>>,
    topic: String,
    redriving: Mutex<HashSet<String>>,
    /// Cancelled once `run` is told to stop: work waiting on SAP, on the hold or on the state
    /// topic is left undone then (its offset stays uncommitted and the next start takes it up;
    /// every apply reads SAP first or names the number, so a repeat is recognised), instead of
    /// holding the shutdown for as long as SAP is away.
    stopping: CancellationToken,
}

/// Lag of the whole group over every partition of the topic.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Lag {
    /// Events not yet committed.
    pub messages: i64,
    /// Age of the oldest event in work, seconds (0 when idle).
    pub seconds: f64,
    /// Partitions whose committed offset is below the log start.
    pub gaps: Vec<RetentionGap>,
}

impl Forward {
    /// Joins the group (static membership when configured, cooperative rebalancing).
    pub fn new(
        config: &Config,
        sap: Arc<Sap>,
        orders: Orders,
        book: Book,
        hold: Arc<Hold>,
    ) -> anyhow::Result<Self> {
        let tracker = Arc::new(Tracker::default());
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "500")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "300000");
        if let Some(id) = &config.instance_id {
            cc.set("group.instance.id", id);
        }
        let consumer: StreamConsumer<Context> = cc.create_with_context(Context {
            tracker: tracker.clone(),
            hold: hold.clone(),
        })?;
        consumer.subscribe(&[&config.topic])?;
        Ok(Self {
            sap,
            versions: Versions::start(orders.clone()),
            orders,
            book,
            tracker,
            gate: Gate::new(config.backoff_base, config.backoff_max),
            hold,
            consumer: Arc::new(consumer),
            topic: config.topic.clone(),
            redriving: Mutex::new(HashSet::new()),
            stopping: CancellationToken::new(),
        })
    }

    /// Consumes until `stop`; then each worker finishes the SAP call it has in flight (bounded
    /// by SAP's timeout), nothing more is retried or taken from the queue, and the offsets of
    /// what was finished are committed: the rest is applied at the next start.
    pub async fn run(self: Arc<Self>, workers: usize, stop: CancellationToken) {
        // Room for a few fetches' worth of events per worker: enough that one slow order never
        // stops the fetch for the others, bounded so a slow SAP slows the fetch.
        let queue = Arc::new(KeyedQueue::<Job>::new(workers * 64));
        let mut tasks = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (me, queue) = (self.clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let idle = Instant::now();
                    let Some(mut taken) = queue.next().await else {
                        break;
                    };
                    // Stopping: what is still queued is left to the next start (uncommitted).
                    if me.stopping.is_cancelled() {
                        break;
                    }
                    stage("idle", idle);
                    let superseded = taken.superseded;
                    match &mut taken.job {
                        Job::Event(t) => me.handle(t, superseded).await,
                        Job::Redrive(o) => me.redrive(o.clone()).await,
                    }
                    queue.done(taken);
                }
            }));
        }
        {
            let (stop, stopping) = (stop.clone(), self.stopping.clone());
            tokio::spawn(async move {
                stop.cancelled().await;
                stopping.cancel();
            });
        }
        let mut sweep = tokio::time::interval(Duration::from_millis(500));
        let mut hold = self.hold.subscribe();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = hold.changed() => {
                    if changed.is_ok() {
                        self.apply_hold().await;
                    }
                }
                _ = sweep.tick() => {
                    self.apply_hold().await;
                    if self.hold.held() {
                        continue;
                    }
                    for o in self.redrives_due() {
                        // Version 0: a redrive is never "later" than an event queued behind it.
                        let id = o.order_id.clone();
                        if self.unless_stopping(queue.push(&id, 0, Job::Redrive(o))).await.is_none() {
                            break;
                        }
                    }
                }
                m = self.consumer.recv() => {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "Kafka");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let header = |name: &str| {
                        m.headers().and_then(|h| {
                            h.iter()
                                .find(|x| x.key == name)
                                .and_then(|x| x.value)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .map(str::to_owned)
                        })
                    };
                    let time = m
                        .timestamp()
                        .to_millis()
                        .and_then(DateTime::from_timestamp_millis)
                        .unwrap_or_else(Utc::now);
                    let (partition, offset) = (m.partition(), m.offset());
                    let event: order_events::CloudEvent<Value> =
                        match serde_json::from_slice(m.payload().unwrap_or_default()) {
                            Ok(e) => e,
                            Err(e) => {
                                // Not an order event: nothing SAP could be told. Counted, never
                                // retried.
                                tracing::error!(error = %e, partition, offset, "undecodable event skipped");
                                metrics::counter!("sap_sync_events_total", "outcome" => "undecodable").increment(1);
                                drop(m);
                                self.tracker.begin(partition, offset, time);
                                self.finish(partition, offset);
                                continue;
                            }
                        };
                    let traceparent = header(order_events::headers::TRACEPARENT);
                    // Asked now, answered (in a batch with the events fetched alongside) by the
                    // time a worker takes the event; with traces on, for the span that
                    // produced the event (the look-up's parent or link).
                    let asked_for = match traceparent.clone().or_else(|| event.traceparent.clone()) {
                        Some(t) if platform::otel::enabled() => AskedFor::Event(t),
                        _ => AskedFor::Nothing,
                    };
                    let latest = self.versions.ask(&event.subject, asked_for);
                    let taken = Taken {
                        partition,
                        offset,
                        latest: Some(latest),
                        correlation_id: header(order_events::headers::CORRELATION_ID),
                        traceparent,
                        event,
                    };
                    drop(m);
                    self.tracker.begin(partition, offset, time);
                    let version = taken.event.data["version"].as_i64().unwrap_or(0);
                    let key = taken.event.subject.clone();
                    // A full queue (SAP slow) waits here; a stop does not.
                    if self.unless_stopping(queue.push(&key, version, Job::Event(taken))).await.is_none() {
                        break;
                    }
                }
            }
        }
        queue.close();
        for w in tasks {
            let _ = w.await;
        }
        let consumer = self.consumer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        })
        .await;
    }

    fn store(&self, partition: i32, next: i64) {
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&self.topic, partition, Offset::Offset(next))
            .is_ok()
            && let Err(e) = self.consumer.store_offsets(&tpl)
        {
            // The partition went to another instance; it starts from the committed offset.
            tracing::debug!(error = %e, partition, "offset not stored");
        }
    }

    fn finish(&self, partition: i32, offset: i64) {
        if let Some(next) = self.tracker.done(partition, offset) {
            self.store(partition, next);
        }
    }

    /// Applies one event under its log span (correlation id, order id and number, and the
    /// trace ids when traces are on) and, with traces on, its CONSUMER span
    /// ([`Self::consumer_span`]), under which the SAP calls hang.
    async fn handle(&self, t: &mut Taken, superseded: bool) {
        let event = &t.event;
        let correlation_id = t
            .correlation_id
            .clone()
            .or_else(|| event.correlationid.clone());
        let producer = t.traceparent.clone().or_else(|| event.traceparent.clone());
        let span = self.consumer_span(t, correlation_id.as_deref(), producer.as_deref());
        let log_span = tracing::info_span!(
            "event",
            correlation_id = correlation_id.as_deref().unwrap_or_default(),
            order_id = %event.subject,
            order_number = crate::plan::sap_number(&event.data).unwrap_or_default(),
            event_id = %event.id,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let ctx = CallContext {
            correlation_id,
            traceparent: match &span {
                Some(s) => {
                    log_span.record("trace_id", s.trace_id());
                    log_span.record("span_id", s.span_id());
                    Some(s.traceparent())
                }
                None => producer,
            },
        };
        use tracing::Instrument as _;
        self.handle_event(t, superseded, ctx, span.as_ref())
            .instrument(log_span)
            .await;
        drop(span);
    }

    /// The CONSUMER span of one event, "<topic> process" (OpenTelemetry messaging conventions):
    /// a child of the producer span the `traceparent` header names, and linked to it.
    fn consumer_span(
        &self,
        t: &Taken,
        correlation_id: Option<&str>,
        producer: Option<&str>,
    ) -> Option<platform::otel::ActiveSpan> {
        use platform::otel::KeyValue;
        if !platform::otel::enabled() {
            return None;
        }
        let event = &t.event;
        let mut attributes = vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.destination.name", self.topic.clone()),
            KeyValue::new(
                "messaging.destination.partition.id",
                t.partition.to_string(),
            ),
            KeyValue::new("messaging.kafka.offset", t.offset),
            KeyValue::new("messaging.kafka.message.key", event.subject.clone()),
            KeyValue::new("messaging.message.id", event.id.clone()),
            KeyValue::new("cloudevents.event_type", event.event_type.as_str()),
            KeyValue::new("order_id", event.subject.clone()),
        ];
        if let Some(c) = correlation_id {
            attributes.push(KeyValue::new("correlation_id", c.to_owned()));
        }
        if let Some(n) = crate::plan::sap_number(&event.data) {
            attributes.push(KeyValue::new("order_number", n.to_owned()));
        }
        platform::otel::start_linked(
            format!("{} process", self.topic),
            platform::otel::SpanKind::Consumer,
            platform::otel::Parent::traceparent(producer),
            producer,
            attributes,
        )
    }

    /// Applies one event. `superseded`: a later event of the same order is already queued
    /// behind it (it carries the whole order, so this one is skipped).
    async fn handle_event(
        &self,
        t: &mut Taken,
        superseded: bool,
        ctx: CallContext,
        span: Option<&platform::otel::ActiveSpan>,
    ) {
        let mut latest = t.latest.take();
        let t = &*t;
        let event = &t.event;
        let order_id = event.subject.clone();
        let version = event.data["version"].as_i64().unwrap_or(0);
        let is_first = event.event_type == order_events::EventType::OrderCreated;
        let correlation_id = ctx.correlation_id.clone().unwrap_or_default();
        let mut first_attempt = true;
        let note = |outcome: &'static str| {
            crate::recent::record(crate::recent::Outcome {
                at: Utc::now(),
                order_id: order_id.clone(),
                order_number: event.data["order_number"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                sap_number: crate::plan::sap_number(&event.data).map(str::to_owned),
                event_type: event.event_type.as_str().to_owned(),
                version,
                outcome,
                correlation_id: correlation_id.clone(),
                partition: t.partition,
                offset: t.offset,
            })
        };
        loop {
            if let Some(parked) = self.book.parked_order(&order_id) {
                let mut parked = parked;
                parked.events.push(parked_event(event, t));
                if self.write_book(parked).await {
                    note("waiting_behind_parked");
                    metrics::counter!("sap_sync_events_total", "outcome" => "waiting_behind_parked").increment(1);
                    break;
                }
                if self.stopping.is_cancelled() {
                    return self.left_undone(&order_id, version);
                }
                continue;
            }
            let asked = Instant::now();
            let is_superseded = superseded
                || self
                    .superseded(&order_id, version, latest.take(), &ctx, span)
                    .await;
            stage("look_up", asked);
            if is_superseded {
                note("superseded");
                metrics::counter!("sap_sync_events_total", "outcome" => "superseded").increment(1);
                break;
            }
            // Held: SAP may be off; the event stays in work, its offset uncommitted.
            if self.unless_stopping(self.hold.released()).await.is_none()
                || self.unless_stopping(self.gate.wait()).await.is_none()
            {
                return self.left_undone(&order_id, version);
            }
            let applying = Instant::now();
            let applied = apply(&self.sap, &event.data, first_attempt && is_first, &ctx).await;
            stage("sap", applying);
            match applied {
                Ok(applied) => {
                    self.gate.succeeded();
                    let outcome = match applied {
                        Applied::Changed { .. } => "applied",
                        Applied::AlreadyThere => "duplicate",
                        Applied::NotForSap(_) => "not_for_sap",
                    };
                    note(outcome);
                    metrics::counter!("sap_sync_events_total", "outcome" => outcome).increment(1);
                    tracing::debug!(%order_id, version, %correlation_id, ?applied, "event applied");
                    break;
                }
                Err(ApplyError::Refused(e)) => {
                    self.gate.succeeded();
                    let parked = ParkedOrder {
                        order_id: order_id.clone(),
                        order_number: crate::plan::sap_number(&event.data)
                            .unwrap_or_default()
                            .to_owned(),
                        partition: t.partition,
                        state: "parked".into(),
                        events: vec![parked_event(event, t)],
                        error: e.to_string(),
                        parked_at: Utc::now(),
                        updated_at: Utc::now(),
                        redrive: false,
                        redrives: 0,
                        revision: 0,
                    };
                    if self.write_book(parked).await {
                        tracing::warn!(%order_id, version, %correlation_id, error = %e, "SAP refused the change; order parked");
                        note("parked");
                        metrics::counter!("sap_sync_events_total", "outcome" => "parked")
                            .increment(1);
                        break;
                    }
                }
                Err(ApplyError::Unavailable(e)) => {
                    first_attempt = false;
                    tracing::warn!(%order_id, %correlation_id, error = %e, "SAP unavailable; waiting");
                    self.gate.failed();
                }
            }
            if self.stopping.is_cancelled() {
                return self.left_undone(&order_id, version);
            }
        }
        // Lag in seconds as the event's age when its effect is in SAP (from the event time).
        let age = (Utc::now() - event.time).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("sap_sync_event_age_seconds").record(age);
        self.finish(t.partition, t.offset);
    }

    /// True when the order service already holds a later version: a later event of the same
    /// order follows on the partition and carries the whole order. Asked in batches
    /// ([`Versions`]); when the order service does not answer, the event is applied (its later
    /// events follow and bring SAP to the latest state).
    ///
    /// With traces on, a look-up asked now is a child of the event's span (`ctx`); one asked
    /// at fetch time that served other events too lives in a trace of its own, and the event's
    /// span links to it.
    async fn superseded(
        &self,
        order_id: &str,
        version: i64,
        asked: Option<Asked>,
        ctx: &CallContext,
        span: Option<&platform::otel::ActiveSpan>,
    ) -> bool {
        let answer = match asked {
            Some(a) => {
                let (answer, call) = a.answer_traced().await;
                if let (Some(span), Some(call)) = (span, call)
                    && !call.contains(&span.trace_id())
                {
                    span.add_link(&call, Vec::new());
                }
                answer
            }
            None => {
                let asked_for = match &ctx.traceparent {
                    Some(t) if span.is_some() => AskedFor::Span(t.clone()),
                    _ => AskedFor::Nothing,
                };
                self.versions.get(order_id, asked_for).await
            }
        };
        match answer {
            Ok(Some(v)) => v > version,
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(%order_id, error = %e, "version look-up failed; applying");
                false
            }
        }
    }

    /// Writes `order` to the state topic, retrying until it is written (true) or sap-sync is
    /// stopping (false).
    async fn write_book_until_stopping(&self, order: &ParkedOrder) -> bool {
        while !self.stopping.is_cancelled() {
            if self.write_book(order.clone()).await {
                return true;
            }
        }
        false
    }

    /// `work`'s result, or `None` when sap-sync is told to stop first.
    async fn unless_stopping<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.stopping.cancelled() => None,
            v = work => Some(v),
        }
    }

    /// An event given up because sap-sync is stopping: not finished, so its offset (and every
    /// later one of its partition) stays uncommitted and the next start applies it.
    fn left_undone(&self, order_id: &str, version: i64) {
        tracing::info!(%order_id, version, "stopping: event left for the next start");
        metrics::counter!("sap_sync_events_total", "outcome" => "left_for_restart").increment(1);
    }

    async fn write_book(&self, order: ParkedOrder) -> bool {
        match self.book.put(order).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "state topic unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                false
            }
        }
    }

    fn redrives_due(&self) -> Vec<ParkedOrder> {
        let mut busy = self.redriving.lock().expect("redriving");
        self.book
            .parked()
            .into_iter()
            .filter(|o| o.redrive && self.tracker.holds(o.partition))
            .filter(|o| busy.insert(o.order_id.clone()))
            .collect()
    }

    /// Applies a parked order's events in their original order.
    async fn redrive(&self, order: ParkedOrder) {
        let id = order.order_id.clone();
        let mut current = match self.book.parked_order(&id) {
            Some(o) if o.redrive => o,
            _ => {
                self.redriving.lock().expect("redriving").remove(&id);
                return;
            }
        };
        tracing::info!(order_id = %id, events = current.events.len(), "redrive");
        while let Some(ev) = current.events.first().cloned() {
            let ctx = CallContext {
                correlation_id: ev.correlation_id.clone(),
                traceparent: ev.traceparent.clone(),
            };
            if self.unless_stopping(self.hold.released()).await.is_none()
                || self.unless_stopping(self.gate.wait()).await.is_none()
            {
                // Still marked for redrive in the book: the next start takes it up.
                return;
            }
            match apply(&self.sap, &ev.data, false, &ctx).await {
                Ok(_) => {
                    self.gate.succeeded();
                    current.events.remove(0);
                    metrics::counter!("sap_sync_events_total", "outcome" => "redriven")
                        .increment(1);
                }
                Err(ApplyError::Refused(e)) => {
                    self.gate.succeeded();
                    current.error = e.to_string();
                    current.redrive = false;
                    if !self.write_book_until_stopping(&current).await {
                        return;
                    }
                    tracing::warn!(order_id = %id, error = %e, "redrive refused again; still parked");
                    self.redriving.lock().expect("redriving").remove(&id);
                    return;
                }
                Err(ApplyError::Unavailable(_)) => {
                    self.gate.failed();
                    if self.stopping.is_cancelled() {
                        return;
                    }
                }
            }
        }
        current.state = "resolved".into();
        current.redrive = false;
        if !self.write_book_until_stopping(&current).await {
            return;
        }
        tracing::info!(order_id = %id, "redrive complete");
        self.redriving.lock().expect("redriving").remove(&id);
    }

    /// Pauses the assigned partitions while held; on the way back resumes them, except those
    /// with a retention gap while the route is still returning (they wait for the operator: a
    /// forced switch back, after which they resume at the log start).
    async fn apply_hold(&self) {
        let phase = self.hold.phase();
        if phase == Phase::Held {
            // Lock order as in the rebalance callbacks: assigned before paused.
            let assigned = self.tracker.assigned();
            let fresh: Vec<i32> = {
                let paused = self.tracker.paused.lock().expect("tracker");
                assigned
                    .into_iter()
                    .filter(|p| !paused.contains(p))
                    .collect()
            };
            if fresh.is_empty() {
                return;
            }
            match self.consumer.pause(&self.partition_list(&fresh)) {
                Ok(()) => {
                    self.tracker
                        .paused
                        .lock()
                        .expect("tracker")
                        .extend(fresh.iter().copied());
                    tracing::info!(partitions = ?fresh, reason = ?self.hold.reason(), "held: partitions paused, nothing goes to SAP");
                }
                Err(e) => {
                    tracing::error!(error = %e, "partitions could not be paused for the hold")
                }
            }
            return;
        }
        let paused: Vec<i32> = self
            .tracker
            .paused
            .lock()
            .expect("tracker")
            .iter()
            .copied()
            .collect();
        if paused.is_empty() {
            return;
        }
        let gaps = match self.positions(Some(&paused)).await {
            Ok(p) => retention_gaps(&p),
            Err(e) => {
                // Cannot tell whether events were lost: stay paused, ask again next round.
                tracing::warn!(error = %e, "positions unknown; partitions stay paused");
                return;
            }
        };
        let mut resume = paused.clone();
        if phase == Phase::Returning {
            resume.retain(|p| !gaps.iter().any(|g| g.partition == *p));
            let mut kept = self.tracker.gaps.lock().expect("tracker");
            for g in &gaps {
                if kept.insert(g.partition, *g).is_none() {
                    metrics::counter!("sap_sync_retention_gaps_total").increment(1);
                    tracing::error!(
                        partition = g.partition,
                        committed = g.committed,
                        log_start = g.log_start,
                        "retention gap: Kafka deleted events SAP never got; the partition stays paused until the switch back is forced"
                    );
                }
            }
        } else if !gaps.is_empty() {
            tracing::error!(gaps = ?gaps, "resuming past a retention gap (the switch back was forced): those events never reach SAP");
        }
        if resume.is_empty() {
            return;
        }
        match self.consumer.resume(&self.partition_list(&resume)) {
            Ok(()) => {
                let mut p = self.tracker.paused.lock().expect("tracker");
                let mut g = self.tracker.gaps.lock().expect("tracker");
                for r in &resume {
                    p.remove(r);
                    g.remove(r);
                }
                tracing::info!(partitions = ?resume, "hold lifted: partitions resumed");
            }
            Err(e) => tracing::error!(error = %e, "partitions could not be resumed"),
        }
    }

    fn partition_list(&self, partitions: &[i32]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&self.topic, *p);
        }
        tpl
    }

    /// The group's committed offset and the log's bounds, per partition (`only`: of these,
    /// else of every partition of the topic).
    pub async fn positions(&self, only: Option<&[i32]>) -> anyhow::Result<Vec<Positions>> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let only = only.map(<[i32]>::to_vec);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Positions>> {
            let partitions = match only {
                Some(p) => p,
                None => {
                    let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
                    md.topics()
                        .iter()
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect()
                }
            };
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                tpl.add_partition(&topic, *p);
            }
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(5))?;
            let mut out = Vec::new();
            for e in committed.elements() {
                let (low, high) =
                    consumer.fetch_watermarks(&topic, e.partition(), Duration::from_secs(5))?;
                out.push(Positions {
                    partition: e.partition(),
                    committed: match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    },
                    low,
                    high,
                });
            }
            Ok(out)
        })
        .await?
    }

    /// The group's lag over every partition (any instance can tell it), with the retention
    /// gaps.
    pub async fn lag(&self) -> anyhow::Result<Lag> {
        let positions = self.positions(None).await?;
        let messages = positions
            .iter()
            .map(|p| (p.high - p.committed.unwrap_or(p.low)).max(0))
            .sum();
        let seconds = self
            .tracker
            .oldest_in_work()
            .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok(Lag {
            messages,
            seconds,
            gaps: retention_gaps(&positions),
        })
    }

    /// Partitions kept paused for a retention gap.
    pub fn kept_for_gaps(&self) -> Vec<RetentionGap> {
        self.tracker
            .gaps
            .lock()
            .expect("tracker")
            .values()
            .copied()
            .collect()
    }
}

/// Time a worker spent in one stage of its cycle (`idle`: waiting for an event; `look_up`:
/// the superseded check; `sap`: applying the event to SAP, of which `http` is each call's
/// round trip), so a slow drain shows where.
pub(crate) fn stage(name: &'static str, since: Instant) {
    metrics::histogram!("sap_sync_stage_duration_seconds", "stage" => name)
        .record(since.elapsed().as_secs_f64());
}

fn parked_event(event: &order_events::CloudEvent<Value>, t: &Taken) -> ParkedEvent {
    ParkedEvent {
        id: event.id.clone(),
        event_type: event.event_type.as_str().to_owned(),
        version: event.data["version"].as_i64().unwrap_or(0),
        offset: t.offset,
        data: event.data.clone(),
        correlation_id: t.correlation_id.clone(),
        traceparent: t.traceparent.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_position_never_passes_an_event_still_in_work() {
        let t = Tracker::default();
        let now = Utc::now();
        for o in 10..14 {
            t.begin(0, o, now);
        }
        assert_eq!(t.done(0, 11), Some(10), "10 is still in work");
        assert_eq!(t.done(0, 13), Some(10));
        assert_eq!(t.done(0, 10), Some(12), "12 is still in work");
        assert_eq!(t.done(0, 12), Some(14));
        assert_eq!(t.done(0, 12), None, "finished twice");
    }

    #[test]
    fn a_committed_offset_below_the_log_start_is_a_retention_gap() {
        let at = |partition, committed, low, high| Positions {
            partition,
            committed,
            low,
            high,
        };
        let gaps = retention_gaps(&[
            at(0, Some(10), 10, 20),
            at(1, Some(3), 7, 20),
            at(2, None, 5, 9),
            at(3, Some(20), 0, 20),
        ]);
        assert_eq!(
            gaps,
            vec![RetentionGap {
                partition: 1,
                committed: 3,
                log_start: 7
            }],
            "at the log start is no gap, nor is a partition never committed"
        );
    }

    #[test]
    fn the_gate_backs_off_with_jitter_and_opens_on_success() {
        let g = Gate::new(Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..10 {
            g.failed();
        }
        let until = g.until.lock().unwrap().unwrap();
        let wait = until.saturating_duration_since(Instant::now());
        assert!(
            wait <= Duration::from_millis(1000) && wait >= Duration::from_millis(400),
            "{wait:?}"
        );
        assert!(g.paused());
        g.succeeded();
        assert!(!g.paused());
        assert!(g.until.lock().unwrap().is_none());
    }
}
