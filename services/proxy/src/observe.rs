//! Each important event is logged and counted here, in one function each (habit 8 of
//! `STYLE.md`), so the log line and the metric can never disagree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::dual_write::outcome::{Decision, OutcomeClass};
use crate::dual_write::store::{Backlog, ReplayEntry};

/// Outcome counts since start, in [`OutcomeClass`] order (for the admin API; Prometheus has
/// the same numbers as `proxy_dual_write_outcomes_total`).
static OUTCOMES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn outcome_index(c: OutcomeClass) -> usize {
    match c {
        OutcomeClass::BothOk => 0,
        OutcomeClass::SapOnly => 1,
        OutcomeClass::NewOnly => 2,
        OutcomeClass::BothFailed => 3,
    }
}

/// Outcome counts since start, by class name.
pub fn outcome_counts() -> serde_json::Value {
    let get = |c| OUTCOMES[outcome_index(c)].load(Ordering::Relaxed);
    serde_json::json!({
        "both_ok": get(OutcomeClass::BothOk),
        "sap_only": get(OutcomeClass::SapOnly),
        "new_only": get(OutcomeClass::NewOnly),
        "both_failed": get(OutcomeClass::BothFailed),
    })
}

/// A dual write finished with this decision.
pub fn dual_write_outcome(decision: &Decision, correlation_id: &str, elapsed: Duration) {
    OUTCOMES[outcome_index(decision.class)].fetch_add(1, Ordering::Relaxed);
    crate::insight::writes::note(
        "dual_write",
        correlation_id,
        None,
        serde_json::json!({"outcome": decision.class.as_str(), "row": decision.row,
            "follow_ups": format!("{:?}", decision.follow_ups), "elapsed_ms": elapsed.as_millis() as u64}),
    );
    metrics::counter!(
        "proxy_dual_write_outcomes_total",
        "outcome" => decision.class.as_str(),
        "row" => decision.row
    )
    .increment(1);
    tracing::info!(
        correlation_id,
        outcome = decision.class.as_str(),
        row = decision.row,
        follow_ups = ?decision.follow_ups,
        elapsed_ms = elapsed.as_millis() as u64,
        "dual_write"
    );
}

/// The order a request (or a replay) is about became known: its number goes on the log span
/// (`order_number` of the `request` or `replay` span, so every later line carries it) and on
/// the OpenTelemetry span in effect (traces on).
pub fn order_known(number: &str) {
    tracing::Span::current().record("order_number", number);
    platform::otel::set_current("order_number", number.to_owned());
}

/// A replay was logged durably.
pub fn replay_enqueued(entry: &ReplayEntry) {
    metrics::counter!("proxy_replay_enqueued_total", "kind" => entry.kind.label()).increment(1);
    tracing::info!(
        replay_id = %entry.id,
        kind = entry.kind.label(),
        correlation_id = %entry.correlation_id,
        state = ?entry.state,
        "replay_enqueued"
    );
}

/// A replay landed and left the log.
pub fn replay_landed(entry: &ReplayEntry) {
    crate::insight::writes::note(
        "replay_landed",
        &entry.correlation_id,
        entry.kind.order_number(),
        serde_json::json!({"replay_id": entry.id, "kind": entry.kind.label(), "attempts": entry.attempts}),
    );
    metrics::counter!("proxy_replay_attempts_total", "kind" => entry.kind.label(), "result" => "landed")
        .increment(1);
    tracing::info!(replay_id = %entry.id, kind = entry.kind.label(), attempts = entry.attempts, correlation_id = %entry.correlation_id, "replay_landed");
}

/// A replay attempt failed and will be retried.
pub fn replay_failed(entry: &ReplayEntry, error: &str, retry_in: Duration) {
    metrics::counter!("proxy_replay_attempts_total", "kind" => entry.kind.label(), "result" => "failed")
        .increment(1);
    tracing::warn!(replay_id = %entry.id, kind = entry.kind.label(), attempts = entry.attempts, error, retry_in_ms = retry_in.as_millis() as u64, "replay_failed");
}

/// A replay was parked for an operator.
pub fn replay_parked(entry: &ReplayEntry, reason: &str) {
    metrics::counter!("proxy_replay_attempts_total", "kind" => entry.kind.label(), "result" => "parked")
        .increment(1);
    tracing::error!(replay_id = %entry.id, kind = entry.kind.label(), correlation_id = %entry.correlation_id, reason, "replay_parked");
}

/// A change SAP accepted in `dual-write` was followed up in the order service: `applied` at
/// once, `logged` to the replay log (order service down, the order not there yet, or a change
/// of the same order ahead of it), `refused` by the order service (parked for an operator),
/// `lost` (the replay log could not be written: reconciliation shows the drift).
pub fn dual_write_change(
    outcome: &'static str,
    sales_order: &str,
    correlation_id: &str,
    detail: &str,
) {
    metrics::counter!("proxy_dual_write_changes_total", "outcome" => outcome).increment(1);
    match outcome {
        "applied" => tracing::debug!(sales_order, correlation_id, "dual_write_change_applied"),
        "logged" => tracing::info!(
            sales_order,
            correlation_id,
            detail,
            "dual_write_change_logged"
        ),
        _ => tracing::error!(
            sales_order,
            correlation_id,
            outcome,
            detail,
            "dual_write_change_not_applied"
        ),
    }
}

/// An operator retried or discarded a replay.
pub fn replay_operator_action(id: &str, action: &str, who: &str) {
    metrics::counter!("proxy_replay_operator_actions_total", "action" => action.to_owned())
        .increment(1);
    tracing::warn!(replay_id = id, action, who, "replay_operator_action");
}

/// The replay backlog gauges.
pub fn replay_backlog(backlog: &Backlog) {
    metrics::gauge!("proxy_replay_backlog", "state" => "pending").set(backlog.pending as f64);
    metrics::gauge!("proxy_replay_backlog", "state" => "parked").set(backlog.parked as f64);
    let age = backlog
        .oldest_created_at
        .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics::gauge!("proxy_replay_oldest_age_seconds").set(age);
}

/// A route's mode or policy changed.
pub fn route_changed(route: &str, field: &str, from: &str, to: &str, who: &str, forced: bool) {
    metrics::counter!("proxy_route_changes_total", "route" => route.to_owned(), "to" => to.to_owned())
        .increment(1);
    tracing::warn!(route, field, from, to, who, forced, "route_changed");
}

/// A follow-up that could not be logged durably (the storage failed): the client gets an error
/// instead of a promise the proxy cannot keep.
pub fn follow_up_not_stored(correlation_id: &str, error: &str) {
    metrics::counter!("proxy_follow_up_store_failures_total").increment(1);
    tracing::error!(correlation_id, error, "follow_up_not_stored");
}

/// No order number could be had for a create (none reserved, the order service unreachable):
/// the create goes to SAP without one, and SAP numbers it internally.
pub fn order_numbers_exhausted() {
    metrics::counter!("proxy_order_numbers_exhausted_total").increment(1);
    tracing::warn!("order_numbers_exhausted");
}

/// A `$batch` changeset of several changes was refused whole (the order service cannot apply
/// them atomically yet): how often clients meet this limit decides when it must go.
pub fn batch_changeset_refused(changes: usize) {
    metrics::counter!("proxy_batch_changesets_refused_total").increment(1);
    tracing::info!(changes, "batch_changeset_refused");
}

/// A retired route's SAP face refused a logon (`401`). The user name is not logged: a client
/// that typed its password into the name field would leave it in the log.
pub fn sap_face_logon_refused(reason: crate::face::session::users::LogonFailure) {
    use crate::face::session::users::LogonFailure;
    let reason = match reason {
        LogonFailure::Missing => "missing",
        LogonFailure::Wrong => "wrong",
        LogonFailure::NoUsers => "no_users",
    };
    metrics::counter!("proxy_sap_face_logon_refused_total", "reason" => reason).increment(1);
    tracing::info!(reason, "sap_face_logon_refused");
}

/// A retired route's SAP face refused a write without a valid CSRF token (`403 Required`).
pub fn sap_face_csrf_refused() {
    metrics::counter!("proxy_sap_face_csrf_refused_total").increment(1);
    tracing::info!("sap_face_csrf_refused");
}
