//! The replay worker: carries every durable follow-up in the log to completion.
//!
//! It wakes when a request logs work (or every poll interval), takes the due entries oldest
//! first, and attempts each. An attempt either lands (the entry leaves the log), moves the entry
//! to its next step (e.g. created → link the SAP number; persisted before it is attempted),
//! fails retryably (next attempt after an exponential back-off with jitter, so a recovering
//! upstream is not hit by every entry at once), or parks it for an operator when retrying
//! cannot help (the admin API lists, retries and discards parked entries).
//!
//! Every step is idempotent, so an attempt interrupted by a crash is simply made again after
//! restart: order-service creates carry the original idempotency key, SAP creates are preceded
//! by a look-up of their stamp, links and voids are idempotent in the order service.
//!
//! Each attempt logs in a `replay` span (replay id, kind, correlation id, order number) and,
//! with traces on, is an INTERNAL span `replay <kind>` that continues the trace of the request
//! that logged the entry (its `traceparent` and `tracestate`, stored with the entry), so the
//! attempt's calls to SAP and the order service are client spans of that trace. An entry
//! without one (logged with traces off, or by an earlier version) starts a trace of its own.

use std::sync::Arc;

use futures::StreamExt;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dual_write::store::{ReplayEntry, ReplayKind, ReplayState, Store};
use crate::observe;
use crate::upstreams::order_client::{OrderService, OrderServiceError};
use crate::upstreams::sap_client::{SapCallError, SapClient};

/// The result of one attempt.
/// Entries attempted at once.
const REPLAY_CONCURRENCY: usize = 16;

#[derive(Debug)]
enum Step {
    /// Done: remove the entry.
    Landed,
    /// Continue with this next step right away (already persisted by the caller).
    Next(ReplayKind),
    /// Try again later.
    Retry(String),
    /// Stop and wait for an operator.
    Park(String),
    /// Not this entry's turn yet (an entry of the same order is ahead): look again after the
    /// back-off base, without counting an attempt.
    Wait(String),
}

/// Back-off before attempt `attempts + 1`: `base * 2^(attempts-1)` capped at `max`, then
/// "equal jitter" (half fixed, half random) so retries spread out but never collapse to zero.
pub fn backoff(attempts: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let half = raw / 2;
    let jitter_ms = rng.random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

/// The worker.
pub struct ReplayWorker {
    /// Durable log.
    pub store: Store,
    /// Idempotency keys (local, or shared by the replicas).
    pub keys: crate::dual_write::keys::Keys,
    /// Order service.
    pub orders: Arc<dyn OrderService>,
    /// SAP.
    pub sap: SapClient,
    /// Wake-ups from request handlers and the admin API.
    pub wakeup: Arc<Notify>,
    /// Back-off base.
    pub base: Duration,
    /// Back-off cap.
    pub max: Duration,
    /// Poll interval.
    pub poll: Duration,
    /// Lifetime of finished idempotency records (expired here, once an hour).
    pub idempotency_ttl: Duration,
    /// The rejection reasons the SAP face's translation accepts (`PROXY_REJECTION_REASONS`).
    pub rejection_reasons: Vec<String>,
}

impl ReplayWorker {
    /// Runs until `shutdown` fires. An attempt in progress at shutdown finishes first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut next_expiry = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_expiry {
                next_expiry += Duration::from_secs(3600);
                let ttl = chrono::Duration::from_std(self.idempotency_ttl)
                    .unwrap_or(chrono::Duration::hours(24));
                match self.keys.expire_keys(ttl).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "idempotency records expired"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "expiring idempotency records failed"),
                }
            }
            let worked = self.run_once().await;
            if let Ok(b) = self.store.backlog().await {
                observe::replay_backlog(&b);
            }
            if worked > 0 {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wakeup.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Attempts every due entry once; returns how many were attempted.
    pub async fn run_once(&self) -> usize {
        let due = match self.store.due_replays(64).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "replay log unreadable");
                return 0;
            }
        };
        let n = due.len();
        // Entries are independent (each carries one order's follow-up, its steps in order
        // inside `process`), so several go at once: after an outage the backlog drains at SAP's
        // concurrency, not one round trip at a time.
        futures::stream::iter(due)
            .for_each_concurrent(REPLAY_CONCURRENCY, |entry| self.process(entry))
            .await;
        n
    }

    /// Carries one entry as far as it goes now, in its `replay` log span.
    async fn process(&self, entry: ReplayEntry) {
        use tracing::Instrument as _;
        let log_span = tracing::info_span!(
            "replay",
            replay_id = %entry.id,
            kind = entry.kind.label(),
            correlation_id = %entry.correlation_id,
            order_number = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        if let Some(n) = entry.kind.order_number() {
            log_span.record("order_number", n);
        }
        self.process_entry(entry).instrument(log_span).await
    }

    async fn process_entry(&self, mut entry: ReplayEntry) {
        loop {
            entry.attempts += 1;
            let step = self.attempt_traced(&entry).await;
            let stored = match step {
                Step::Landed => {
                    observe::replay_landed(&entry);
                    self.store.remove_replay(entry.id.clone()).await.map(|_| ())
                }
                Step::Next(kind) => {
                    entry.kind = kind;
                    entry.last_error = None;
                    if let Err(e) = self.store.put_replay(entry.clone()).await {
                        tracing::error!(error = %e, "could not persist replay step");
                        return;
                    }
                    continue;
                }
                Step::Retry(error) => {
                    let wait = backoff(entry.attempts, self.base, self.max, &mut rand::rng());
                    observe::replay_failed(&entry, &error, wait);
                    entry.last_error = Some(error);
                    entry.next_attempt_at = Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
                    self.store.put_replay(entry.clone()).await
                }
                Step::Wait(why) => {
                    entry.attempts -= 1;
                    entry.last_error = Some(why);
                    entry.next_attempt_at = Utc::now()
                        + chrono::Duration::from_std(self.base).unwrap_or(chrono::Duration::zero());
                    self.store.put_replay(entry.clone()).await
                }
                Step::Park(reason) => {
                    observe::replay_parked(&entry, &reason);
                    entry.state = ReplayState::Parked;
                    entry.last_error = Some(reason);
                    self.store.put_replay(entry.clone()).await
                }
            };
            if let Err(e) = stored {
                tracing::error!(error = %e, replay_id = %entry.id, "could not record replay result");
            }
            return;
        }
    }

    /// One attempt under its span (traces on): a child of the request's span the entry
    /// recorded, else a new trace; marked failed when the attempt is retried or parked.
    async fn attempt_traced(&self, entry: &ReplayEntry) -> Step {
        let Some(span) = replay_span(entry) else {
            return self.attempt(entry).await;
        };
        let log_span = tracing::Span::current();
        log_span.record("trace_id", span.trace_id());
        log_span.record("span_id", span.span_id());
        use platform::otel::FutureExt as _;
        let step = self.attempt(entry).with_context(span.context()).await;
        let outcome = match &step {
            Step::Landed => "landed",
            Step::Next(_) => "next_step",
            Step::Retry(e) => {
                span.fail("replay_retry", e.clone());
                "retry"
            }
            Step::Park(e) => {
                span.fail("replay_parked", e.clone());
                "parked"
            }
            Step::Wait(_) => "wait",
        };
        span.set("replay.outcome", outcome);
        step
    }

    async fn attempt(&self, entry: &ReplayEntry) -> Step {
        let corr = entry.correlation_id.as_str();
        match &entry.kind {
            ReplayKind::CreateInOrderService {
                body,
                idempotency_key,
                sap_order_number,
                pricing,
            } => match self.orders.create(body, idempotency_key, corr).await {
                Ok(order) => match sap_order_number {
                    Some(n) => Step::Next(ReplayKind::LinkSapOrderNumber {
                        order_id: order.id,
                        sap_order_number: n.clone(),
                        pricing: pricing.clone(),
                    }),
                    None => Step::Landed,
                },
                Err(e) => order_service_step(e),
            },
            ReplayKind::LinkSapOrderNumber {
                order_id,
                sap_order_number,
                pricing,
            } => match self
                .orders
                .link_sap_order_number(order_id, sap_order_number, pricing.as_ref(), corr)
                .await
            {
                Ok(()) => Step::Landed,
                Err(e) => order_service_step(e),
            },
            ReplayKind::VoidOrder { order_id, reason } => {
                match self.orders.void(order_id, reason, corr).await {
                    Ok(()) => Step::Landed,
                    Err(e) => order_service_step(e),
                }
            }
            ReplayKind::CompensateUnknownCreate {
                body,
                idempotency_key,
                reason,
            } => match self.orders.create(body, idempotency_key, corr).await {
                Ok(order) => Step::Next(ReplayKind::VoidOrder {
                    order_id: order.id,
                    reason: reason.clone(),
                }),
                // The service refuses this body: the unknown create cannot have landed either.
                Err(OrderServiceError::Rejected { .. }) => Step::Landed,
                Err(e) => Step::Retry(e.to_string()),
            },
            ReplayKind::CreateInSap {
                body,
                stamp,
                order_id,
            } => {
                // Entries of earlier versions carry a stamp instead of a number.
                if let Some((field, value)) = stamp {
                    match self.sap.find_by_stamp(field, value, None).await {
                        Ok(Some(found)) => {
                            return Step::Next(ReplayKind::LinkSapOrderNumber {
                                order_id: order_id.clone(),
                                sap_order_number: found.sales_order,
                                pricing: None,
                            });
                        }
                        Ok(None) => {}
                        Err(e) => return sap_step(e),
                    }
                }
                // A create naming its number is safe to repeat: SAP refuses a number it has,
                // and `create` then reads the order by that key.
                match self.sap.create(body).await {
                    Ok(number) => Step::Next(ReplayKind::LinkSapOrderNumber {
                        order_id: order_id.clone(),
                        pricing: self.sap_pricing(&number).await,
                        sap_order_number: number,
                    }),
                    Err(e) => sap_step(e),
                }
            }
            ReplayKind::ApplyChange {
                sales_order,
                method,
                resource,
                body_b64,
            } => {
                self.apply_change(entry, sales_order, method, resource, body_b64)
                    .await
            }
            ReplayKind::ResolveSilentSap {
                sales_order,
                order_id,
                order_body,
                idempotency_key,
                client_key,
            } => match self.sap.read_by_key(sales_order, None).await {
                Ok(Some(found)) => {
                    let pricing = serde_json::from_slice::<serde_json::Value>(&found.entity_body)
                        .ok()
                        .and_then(|v| order_acl::sap_pricing(&v["d"]));
                    match (order_id, order_body) {
                        (Some(id), _) => Step::Next(ReplayKind::LinkSapOrderNumber {
                            order_id: id.clone(),
                            sap_order_number: found.sales_order,
                            pricing,
                        }),
                        (None, Some(body)) => Step::Next(ReplayKind::CreateInOrderService {
                            body: body.clone(),
                            idempotency_key: idempotency_key.clone(),
                            sap_order_number: Some(found.sales_order),
                            pricing,
                        }),
                        (None, None) => Step::Landed,
                    }
                }
                Ok(None) => {
                    // SAP does not hold it and can no longer commit it. A client retry of the
                    // same key must then take a fresh number; one running now decides first.
                    if let Some(k) = client_key {
                        match self
                            .keys
                            .release_key_number(k.clone(), sales_order.clone())
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => {
                                return Step::Retry("a retry of the same key is running".into());
                            }
                            Err(e) => return Step::Retry(e.to_string()),
                        }
                    }
                    match (order_id, order_body) {
                        (Some(id), _) => Step::Next(ReplayKind::VoidOrder {
                            order_id: id.clone(),
                            reason: "sap_unavailable".into(),
                        }),
                        (None, Some(body)) => Step::Next(ReplayKind::CompensateUnknownCreate {
                            body: body.clone(),
                            idempotency_key: idempotency_key.clone(),
                            reason: "dual_write_failed".into(),
                        }),
                        (None, None) => Step::Landed,
                    }
                }
                Err(e) => Step::Retry(e.to_string()),
            },
        }
    }
}

impl ReplayWorker {
    /// A change SAP accepted in `dual-write`, applied to the order service in its order's turn:
    /// only when no entry logged earlier for the same order is left (its create, an earlier
    /// change, pending or parked), so a late replay never overwrites a later change.
    async fn apply_change(
        &self,
        entry: &ReplayEntry,
        sales_order: &str,
        method: &str,
        resource: &str,
        body_b64: &str,
    ) -> Step {
        use base64::Engine;
        match self.store.first_for_order(sales_order.to_owned()).await {
            Ok(Some(first)) if first != entry.id => {
                return Step::Wait(format!("waiting behind replay {first} of the same order"));
            }
            Ok(_) => {}
            Err(e) => return Step::Retry(e.to_string()),
        }
        let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::PATCH);
        let Some(change) = crate::face::write::change_of(&method, resource) else {
            return Step::Park(format!(
                "not a change of the sales order service: {method} {resource}"
            ));
        };
        let body = match base64::engine::general_purpose::STANDARD.decode(body_b64) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => return Step::Park(format!("unreadable body: {e}")),
        };
        match crate::face::write::apply_dual_write(
            self.orders.as_ref(),
            &self.rejection_reasons,
            &change,
            &body,
            &entry.id,
            &entry.correlation_id,
        )
        .await
        {
            Ok(()) => Step::Landed,
            Err(crate::face::write::ApplyError::NotFound) => Step::Retry(format!(
                "order {sales_order} is not in the order service (yet)"
            )),
            Err(crate::face::write::ApplyError::Unavailable(e)) => Step::Retry(e),
            Err(crate::face::write::ApplyError::Refused(e)) => {
                tracing::error!(sales_order, replay_id = %entry.id, reason = %e, "the order service refuses a change SAP accepted");
                Step::Park(format!("order {sales_order}: {e}"))
            }
        }
    }

    /// What SAP derived for an order it holds, to adopt with the link.
    async fn sap_pricing(&self, number: &str) -> Option<serde_json::Value> {
        let found = self.sap.read_by_key(number, None).await.ok()??;
        let v: serde_json::Value = serde_json::from_slice(&found.entity_body).ok()?;
        order_acl::sap_pricing(&v["d"])
    }
}

/// The INTERNAL span of one attempt, `replay <kind>`; `None` when traces are off.
fn replay_span(entry: &ReplayEntry) -> Option<platform::otel::ActiveSpan> {
    use platform::otel::KeyValue;
    if !platform::otel::enabled() {
        return None;
    }
    let mut attributes = vec![
        KeyValue::new("replay.id", entry.id.clone()),
        KeyValue::new("replay.kind", entry.kind.label()),
        KeyValue::new("replay.attempt", i64::from(entry.attempts)),
        KeyValue::new("correlation_id", entry.correlation_id.clone()),
    ];
    if let Some(n) = entry.kind.order_number() {
        attributes.push(KeyValue::new("order_number", n.to_owned()));
    }
    platform::otel::start(
        format!("replay {}", entry.kind.label()),
        platform::otel::SpanKind::Internal,
        platform::otel::Parent::Remote {
            traceparent: entry.traceparent.as_deref(),
            tracestate: entry.tracestate.as_deref(),
        },
        attributes,
    )
}

fn order_service_step(e: OrderServiceError) -> Step {
    if e.is_retryable() {
        Step::Retry(e.to_string())
    } else {
        Step::Park(e.to_string())
    }
}

fn sap_step(e: SapCallError) -> Step {
    match e {
        SapCallError::Rejected { .. } => Step::Park(e.to_string()),
        _ => Step::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_is_capped_and_jitters_within_half_to_full() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempts in 1..12u32 {
            let full = base.saturating_mul(1 << (attempts - 1)).min(max);
            for _ in 0..50 {
                let d = backoff(attempts, base, max, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempts}: {d:?} vs {full:?}"
                );
            }
        }
    }

    #[test]
    fn backoff_spreads_retries_instead_of_synchronising_them() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let waits: std::collections::BTreeSet<_> = (0..20)
            .map(|_| {
                backoff(
                    5,
                    Duration::from_millis(100),
                    Duration::from_secs(60),
                    &mut rng,
                )
            })
            .collect();
        assert!(waits.len() > 10, "{waits:?}");
    }
}
