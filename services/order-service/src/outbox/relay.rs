//! The relay: publishes pending outbox rows to Kafka, in order per order, and marks them
//! published once the broker acknowledged them.
//!
//! Pending events are the rows of the queue table `outbox_pending` (one narrow row per event
//! of the append-only `outbox` log, written by a trigger in the event's own statement; see
//! migration 0006). One pass ([`Relay::publish_batch`]):
//!
//! 1. **Claim.** Take the orders of the oldest queue rows and try an advisory lock per order
//!    (session-level, on the relay's own connection). Orders another relay holds are skipped:
//!    two relays never publish events of the same order at once. If the relay dies, PostgreSQL
//!    drops its connection and with it the locks.
//! 2. **Fetch.** In a new statement, so the snapshot is taken *after* the locks: every pending
//!    row of the claimed orders, by order and `order_version`. A row another relay published
//!    just before releasing the lock is seen as published and not sent again.
//! 3. **Publish.** Enqueue every row in that order (one idempotent producer keeps a partition's
//!    order across retries), then wait for every acknowledgement.
//! 4. **Mark** the acknowledged prefix of each order published (delete its queue rows; never a
//!    row after a failed one), then **unlock**.
//!
//! Steps 1 and 2, and the unlock of the previous batch, are one round trip: the SQL function
//! `outbox_claim` (migration 0006), whose fetch runs as its own query after the locks, under a
//! fresh snapshot. A pass costs two round trips (claim, mark).
//!
//! [`Relay::run`] overlaps passes: steps 1 to 3 of the next batches run while earlier batches
//! wait for their acks (up to [`MAX_IN_FLIGHT_BATCHES`]). Each claim excludes the orders still
//! in flight, so an order is in one batch at a time (a session's advisory locks are
//! re-entrant: the exclusion, not the lock, keeps the same relay from taking an order twice).
//! An order's next batch is claimed only after its previous batch was acknowledged and marked.
//!
//! No high-water mark: each pass starts again from all pending rows, so rows whose transaction
//! committed after rows with higher ids are never skipped.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use order_events::{CloudEvent, EventType, STRUCTURED_CONTENT_TYPE, headers};
use platform::shutdown::CancellationToken;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use super::kafka::RelayProducer;

/// Most batches a relay has handed to the producer without their acks yet. Each holds its own
/// orders (the next claim excludes every order in flight), so deeper pipelining never puts one
/// order in two batches; it hides the broker round trip when the machine is busy.
pub const MAX_IN_FLIGHT_BATCHES: usize = 4;

/// Shortest idle wait between two looks for work; it doubles while the outbox stays empty, up
/// to the configured poll interval, and drops back here as soon as there is work.
pub const MIN_IDLE_WAIT: Duration = Duration::from_millis(2);

/// First key of the relay's two-key advisory locks (the second is a hash of the order id).
/// Two-key locks live apart from single-key ones (such as sqlx's migration lock).
pub const LOCK_NAMESPACE: i32 = 0x0b0c_5e1a;

/// Why a pass failed. The relay drops its connection (releasing its locks) and starts over.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The producer refused a record outright (not a delivery failure).
    #[error("producer: {0}")]
    Producer(KafkaError),
    /// A row that cannot be an event (a bug: rows are written by [`super::append`] only).
    #[error("outbox row {id}: {reason}")]
    CorruptRow {
        /// Row id.
        id: i64,
        /// What is wrong.
        reason: String,
    },
}

/// A row of `outbox_claim`'s answer: a pending event, or (every event column NULL) the marker
/// of an order the claim locked.
#[derive(Debug, sqlx::FromRow)]
struct ClaimRow {
    id: Option<i64>,
    event_id: Option<Uuid>,
    aggregate_id: Uuid,
    event_type: Option<String>,
    payload: Option<String>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
    created_at: Option<DateTime<Utc>>,
    envelope: Option<String>,
}

impl ClaimRow {
    /// The event, or `None` for an order marker.
    fn into_pending(self) -> Option<PendingRow> {
        let body = match (self.envelope, self.payload) {
            (Some(envelope), _) => Body::Envelope(envelope),
            (None, Some(payload)) => Body::Data(payload),
            (None, None) => return None,
        };
        Some(PendingRow {
            id: self.id?,
            event_id: self.event_id?,
            aggregate_id: self.aggregate_id,
            event_type: self.event_type?,
            body,
            correlation_id: self.correlation_id,
            traceparent: self.traceparent,
            created_at: self.created_at?,
        })
    }
}

/// A pending outbox row.
#[derive(Debug)]
struct PendingRow {
    id: i64,
    event_id: Uuid,
    aggregate_id: Uuid,
    event_type: String,
    body: Body,
    correlation_id: Option<String>,
    traceparent: Option<String>,
    created_at: DateTime<Utc>,
}

/// What a row stores of its event.
#[derive(Debug)]
enum Body {
    /// The whole CloudEvent as it goes on the wire (rows written since migration 0007).
    Envelope(String),
    /// Only its `data`, as JSON text (older rows): the envelope is built around it.
    Data(String),
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Orders claimed.
    pub orders: usize,
    /// Rows acknowledged by the broker and marked published.
    pub published: usize,
    /// Rows whose delivery failed (left pending).
    pub failed: usize,
}

/// A batch handed to the producer, not yet acknowledged.
struct InFlight {
    claimed: Vec<Uuid>,
    rows: Vec<PendingRow>,
    deliveries: Vec<rdkafka::producer::DeliveryFuture>,
    /// Each row's producer span (traces on), ended when its ack arrives.
    spans: Vec<Option<platform::otel::ActiveSpan>>,
    started: Instant,
}

/// Builds a new producer when the current one hit a fatal error.
pub type ProducerFactory = Arc<dyn Fn() -> Result<RelayProducer, KafkaError> + Send + Sync>;

/// A relay: one PostgreSQL connection for its locks, one producer.
pub struct Relay {
    pool: PgPool,
    producer: RelayProducer,
    renew: Option<ProducerFactory>,
    topic: String,
    batch_size: i64,
    mark_delay: Duration,
    conn: Option<PgConnection>,
    /// Orders of marked batches whose locks are still held: released by the next claim (same
    /// round trip) or, when the relay goes idle, on their own.
    held: Vec<Uuid>,
}

impl Relay {
    /// A relay publishing to `topic` at most `batch_size` rows per pass.
    pub fn new(pool: PgPool, producer: RelayProducer, topic: String, batch_size: i64) -> Self {
        Self {
            pool,
            producer,
            renew: None,
            topic,
            batch_size,
            mark_delay: Duration::ZERO,
            conn: None,
            held: Vec::new(),
        }
    }

    /// Fault injection for crash tests: pause between the acks and the marking.
    pub fn with_mark_delay(mut self, delay: Duration) -> Self {
        self.mark_delay = delay;
        self
    }

    /// How to build a new producer after a fatal error. An idempotent producer that loses its
    /// guarantees (e.g. the broker reports a sequence gap) turns fatal: librdkafka then fails
    /// every record of that instance, forever. Without a factory the relay keeps failing (and
    /// says so); with one it replaces the producer and sends the unmarked rows again, under
    /// the same event ids.
    pub fn renew_producer_with(mut self, factory: ProducerFactory) -> Self {
        self.renew = Some(factory);
        self
    }

    /// Replaces the producer if it hit a fatal error.
    fn renew_producer_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else {
            return;
        };
        metrics::counter!("outbox_publish_errors_total", "kind" => "fatal").increment(1);
        let Some(factory) = &self.renew else {
            tracing::error!(
                ?code,
                reason,
                "Kafka producer failed fatally and cannot be renewed; \
                events stay pending until the relay restarts"
            );
            return;
        };
        match factory() {
            Ok(producer) => {
                tracing::error!(
                    ?code,
                    reason,
                    "Kafka producer failed fatally; replaced it with \
                    a new one, unmarked events will be sent again under their event ids"
                );
                self.producer = producer;
            }
            Err(error) => {
                tracing::error!(?code, reason, %error, "Kafka producer failed fatally and a new \
                    one could not be built; will try again");
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if self.conn.is_none() {
            // A connection of its own, never returned to the pool: session advisory locks
            // must not leak to another user of the connection.
            let conn = self.pool.acquire().await?.detach();
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection just set"))
    }

    /// Drops the relay's connection; PostgreSQL releases every lock it held.
    async fn reset_connection(&mut self) {
        self.held.clear();
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// One pass, not overlapped with another: claim, fetch, publish, mark, unlock.
    pub async fn publish_batch(&mut self) -> Result<BatchOutcome, RelayError> {
        let outcome = match self.start_batch(&[], 0).await? {
            Some(batch) => self.finish_batch(batch).await?,
            None => BatchOutcome::default(),
        };
        self.release_held().await;
        Ok(outcome)
    }

    /// Claims orders (except `exclude`, the orders of the batch still in flight: session locks
    /// are re-entrant, so the exclusion is what keeps an order in one batch at a time), fetches
    /// their pending rows and hands them to the producer. `None` when there is nothing to claim.
    async fn start_batch(
        &mut self,
        exclude: &[Uuid],
        in_flight_rows: usize,
    ) -> Result<Option<InFlight>, RelayError> {
        let started = Instant::now();
        let batch_size = i32::try_from(self.batch_size).unwrap_or(i32::MAX);
        let release = std::mem::take(&mut self.held);
        let conn = self.connection().await?;
        // Release the previous batch's orders, claim orders, fetch their pending rows: one
        // round trip (`outbox_claim`, migration 0006, explains the snapshot it relies on).
        let answer: Vec<ClaimRow> = sqlx::query_as(
            "SELECT out_id AS id, out_event_id AS event_id, out_aggregate_id AS aggregate_id, \
               out_event_type AS event_type, out_payload AS payload, \
               out_correlation_id AS correlation_id, out_traceparent AS traceparent, \
               out_created_at AS created_at, out_envelope AS envelope \
             FROM outbox_claim($1, $2, $3, $4, $5)",
        )
        .bind(batch_size)
        .bind(LOCK_NAMESPACE)
        .bind(exclude)
        .bind(i32::try_from(in_flight_rows).unwrap_or(i32::MAX))
        .bind(&release)
        .fetch_all(&mut *conn)
        .await?;
        // Every event first, then one marker per claimed order (held until the batch is done,
        // whether or not it still had events).
        let mut rows = Vec::with_capacity(answer.len());
        let mut claimed = Vec::new();
        for row in answer {
            let order = row.aggregate_id;
            match row.into_pending() {
                Some(pending) => rows.push(pending),
                None => claimed.push(order),
            }
        }
        if rows.is_empty() {
            if !claimed.is_empty() {
                self.unlock(&claimed).await;
            }
            return Ok(None);
        }
        let mut batch = InFlight {
            claimed,
            rows: Vec::new(),
            deliveries: Vec::new(),
            spans: Vec::new(),
            started,
        };
        batch.deliveries.reserve(rows.len());
        for row in &rows {
            match self.enqueue(row).await {
                Ok((delivery, span)) => {
                    batch.deliveries.push(delivery);
                    batch.spans.push(span);
                }
                Err(e) => {
                    self.unlock(&batch.claimed).await;
                    return Err(e);
                }
            }
        }
        batch.rows = rows;
        Ok(Some(batch))
    }

    /// Waits for every ack of `batch` and marks the acknowledged prefix of each order
    /// published. Its orders stay locked until the next claim releases them (same round trip)
    /// or the relay goes idle.
    async fn finish_batch(&mut self, batch: InFlight) -> Result<BatchOutcome, RelayError> {
        let InFlight {
            claimed,
            rows,
            deliveries,
            spans,
            started,
        } = batch;
        // Every ack, in enqueue order; a failed row holds back the rest of its order's rows for
        // this pass (they stay pending and go out, in order, in a later pass).
        let mut blocked: HashSet<Uuid> = HashSet::new();
        let mut acked: Vec<i64> = Vec::with_capacity(rows.len());
        let mut outcome = BatchOutcome {
            orders: claimed.len(),
            ..BatchOutcome::default()
        };
        for ((row, delivery), span) in rows.iter().zip(deliveries).zip(spans) {
            let delivered = match delivery.await {
                Ok(Ok(d)) => {
                    if let Some(span) = &span {
                        span.set(
                            "messaging.destination.partition.id",
                            d.partition.to_string(),
                        );
                        span.set("messaging.kafka.offset", d.offset);
                    }
                    Ok(())
                }
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("producer dropped the delivery".to_owned()),
            };
            if let (Some(span), Err(e)) = (&span, &delivered) {
                span.fail("delivery_failed", e.clone());
            }
            drop(span);
            match delivered {
                Ok(()) if !blocked.contains(&row.aggregate_id) => {
                    acked.push(row.id);
                    let lag = (Utc::now() - row.created_at).to_std().unwrap_or_default();
                    metrics::histogram!("outbox_commit_to_ack_duration_seconds")
                        .record(lag.as_secs_f64());
                }
                Ok(()) => {
                    // Acked after an earlier event of the same order failed: stays pending and
                    // is sent again after that one (the consumer drops the copy by event id).
                    outcome.failed += 1;
                }
                Err(error) => {
                    blocked.insert(row.aggregate_id);
                    outcome.failed += 1;
                    metrics::counter!("outbox_publish_errors_total", "kind" => "delivery")
                        .increment(1);
                    tracing::warn!(event_id = %row.event_id, order_id = %row.aggregate_id,
                        %error, "event not delivered, will retry");
                }
            }
        }
        if !self.mark_delay.is_zero() {
            tracing::info!(events = acked.len(), delay = ?self.mark_delay,
                "fault injection: acked, waiting before marking published");
            tokio::time::sleep(self.mark_delay).await;
        }
        if !acked.is_empty() {
            let marked = match self.connection().await {
                Ok(conn) => sqlx::query("DELETE FROM outbox_pending WHERE id = ANY($1)")
                    .bind(&acked)
                    .execute(conn)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = marked {
                self.unlock(&claimed).await;
                return Err(e.into());
            }
        }
        self.held.extend_from_slice(&claimed);
        outcome.published = acked.len();
        metrics::counter!("outbox_published_total").increment(acked.len() as u64);
        metrics::histogram!("outbox_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// Releases the locks of marked batches now (the relay is about to idle).
    async fn release_held(&mut self) {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.unlock(&held).await;
        }
    }

    /// Releases the locks of `orders`; when that fails, drops the connection, which releases
    /// every lock the relay holds.
    async fn unlock(&mut self, orders: &[Uuid]) {
        let unlocked = match self.conn.as_mut() {
            Some(conn) => sqlx::query(
                "SELECT pg_advisory_unlock($2, hashtext(a::text)) FROM unnest($1::uuid[]) a",
            )
            .bind(orders)
            .bind(LOCK_NAMESPACE)
            .execute(conn)
            .await
            .map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = unlocked {
            tracing::warn!(error = %e, "cannot unlock orders; dropping the relay's connection");
            self.reset_connection().await;
        }
    }

    /// The producer span of one row (OpenTelemetry messaging conventions), `None` when traces
    /// are off.
    fn producer_span(
        &self,
        row: &PendingRow,
        key: &str,
        event_id: &str,
        event_type: EventType,
    ) -> Option<platform::otel::ActiveSpan> {
        use platform::otel::KeyValue;
        if !platform::otel::enabled() {
            return None;
        }
        let mut attributes = vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "publish"),
            KeyValue::new("messaging.operation.name", "publish"),
            KeyValue::new("messaging.destination.name", self.topic.clone()),
            KeyValue::new("messaging.kafka.message.key", key.to_owned()),
            KeyValue::new("messaging.message.id", event_id.to_owned()),
            KeyValue::new("cloudevents.event_type", event_type.as_str()),
            KeyValue::new("order_id", key.to_owned()),
        ];
        if let Some(c) = &row.correlation_id {
            attributes.push(KeyValue::new("correlation_id", c.clone()));
        }
        platform::otel::start(
            format!("{} publish", self.topic),
            platform::otel::SpanKind::Producer,
            platform::otel::Parent::traceparent(row.traceparent.as_deref()),
            attributes,
        )
    }

    /// Hands one row to the producer, waiting while its queue is full.
    async fn enqueue(
        &self,
        row: &PendingRow,
    ) -> Result<
        (
            rdkafka::producer::DeliveryFuture,
            Option<platform::otel::ActiveSpan>,
        ),
        RelayError,
    > {
        let event_type: EventType =
            row.event_type
                .parse()
                .map_err(
                    |e: order_events::envelope::UnknownEventType| RelayError::CorruptRow {
                        id: row.id,
                        reason: e.to_string(),
                    },
                )?;
        let built;
        let value: &[u8] = match &row.body {
            Body::Envelope(envelope) => envelope.as_bytes(),
            Body::Data(payload) => {
                let data: &serde_json::value::RawValue =
                    serde_json::from_str(payload).map_err(|e| RelayError::CorruptRow {
                        id: row.id,
                        reason: format!("payload is not JSON: {e}"),
                    })?;
                built = CloudEvent::for_order(
                    row.event_id,
                    row.aggregate_id,
                    event_type,
                    row.created_at,
                    data,
                    row.correlation_id.clone(),
                    row.traceparent.clone(),
                )
                .encode();
                &built
            }
        };
        let key = row.aggregate_id.to_string();
        let id = row.event_id.to_string();
        let mut hdrs = OwnedHeaders::new_with_capacity(6)
            .insert(Header {
                key: headers::CONTENT_TYPE,
                value: Some(STRUCTURED_CONTENT_TYPE),
            })
            .insert(Header {
                key: headers::EVENT_ID,
                value: Some(&id),
            })
            .insert(Header {
                key: headers::EVENT_TYPE,
                value: Some(event_type.as_str()),
            })
            .insert(Header {
                key: headers::SPEC_VERSION,
                value: Some(order_events::SPEC_VERSION),
            });
        if let Some(c) = &row.correlation_id {
            hdrs = hdrs.insert(Header {
                key: headers::CORRELATION_ID,
                value: Some(c),
            });
        }
        // With traces on, the PRODUCER span ("<topic> publish", a child of the request's span
        // the row stored) is what the header names, so the consumer's span hangs under it.
        let span = self.producer_span(row, &key, &id, event_type);
        let traceparent = match &span {
            Some(s) => Some(s.traceparent()),
            None => row.traceparent.clone(),
        };
        if let Some(t) = &traceparent {
            hdrs = hdrs.insert(Header {
                key: headers::TRACEPARENT,
                value: Some(t),
            });
        }
        let mut record = FutureRecord::to(&self.topic)
            .key(&key)
            .payload(value)
            .headers(hdrs);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok((delivery, span)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(RelayError::Producer(e)),
            }
        }
    }

    /// Runs until `shutdown` fires. Batches overlap: new batches are claimed, fetched and handed
    /// to the producer while up to [`MAX_IN_FLIGHT_BATCHES`] earlier ones wait for their acks
    /// (never for the same orders), so the database work hides behind the broker round trip. When there is no work,
    /// looks again after [`MIN_IDLE_WAIT`], doubling the wait up to `poll_interval` while the
    /// outbox stays empty. The batch in flight when
    /// `shutdown` fires gets `grace` to finish; rows it could not mark stay pending for the
    /// next relay.
    pub async fn run(
        mut self,
        poll_interval: Duration,
        grace: Duration,
        shutdown: CancellationToken,
    ) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut backoff = Duration::from_millis(100);
        let mut idle_wait = MIN_IDLE_WAIT;
        loop {
            if shutdown.is_cancelled() && in_flight.is_empty() {
                break;
            }
            // One step: start a batch if the pipeline has room; finish the oldest batch when
            // the pipeline is full or there was nothing new to start.
            let step = async {
                let mut started = false;
                if !shutdown.is_cancelled() && in_flight.len() < MAX_IN_FLIGHT_BATCHES {
                    let exclude: Vec<Uuid> = in_flight
                        .iter()
                        .flat_map(|b| b.claimed.iter().copied())
                        .collect();
                    let rows = in_flight.iter().map(|b| b.rows.len()).sum();
                    if let Some(batch) = self.start_batch(&exclude, rows).await? {
                        in_flight.push_back(batch);
                        started = true;
                    }
                }
                let outcome = if !started || in_flight.len() >= MAX_IN_FLIGHT_BATCHES {
                    match in_flight.pop_front() {
                        Some(batch) => self.finish_batch(batch).await?,
                        None => BatchOutcome::default(),
                    }
                } else {
                    BatchOutcome::default()
                };
                Ok::<_, RelayError>(outcome)
            };
            let deadline = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            let result = tokio::select! {
                r = step => r,
                () = deadline => {
                    tracing::warn!("relay stopped mid-batch; unmarked events will be sent again");
                    break;
                }
            };
            if matches!(&result, Ok(o) if o.failed > 0) || result.is_err() {
                // The batches still in flight went to the failed producer: they fail too, and
                // their rows stay pending for the new one.
                self.renew_producer_if_fatal();
            }
            match result {
                Ok(outcome) if outcome.failed > 0 => {
                    // Deliveries failed (only with a finite message timeout): give the broker
                    // a moment before the next attempt.
                    tracing::warn!(?outcome, "outbox batch partly delivered");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Ok(outcome) => {
                    if outcome.published > 0 {
                        backoff = Duration::from_millis(100);
                        tracing::debug!(?outcome, "outbox batch published");
                    }
                    if !in_flight.is_empty() || outcome.published > 0 {
                        idle_wait = MIN_IDLE_WAIT;
                        continue;
                    }
                }
                Err(e) => {
                    metrics::counter!("outbox_publish_errors_total", "kind" => "relay")
                        .increment(1);
                    tracing::warn!(error = %e, "outbox relay pass failed; reconnecting");
                    // Dropping the connection releases every lock; unmarked rows are sent
                    // again later under the same event ids.
                    in_flight.clear();
                    self.reset_connection().await;
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            // Idle: let other relays have this relay's last orders, then look again soon, a
            // little later each time the outbox is still empty.
            self.release_held().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(idle_wait) => {}
            }
            idle_wait = (idle_wait * 2).min(poll_interval.max(MIN_IDLE_WAIT));
        }
        self.reset_connection().await;
        tracing::info!("outbox relay stopped");
    }
}
