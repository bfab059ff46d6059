//! The emulator's important events, each logged and counted in one place (habit 8).
//!
//! Every event is one structured log line (its name is the message) and one increment of
//! `sap_mock_events_total{event="<name>"}` on `/metrics`, so an operator can see how many
//! orders were created and how many faults were injected without reading logs.

/// Something worth logging and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A sales order was created (number, item count).
    OrderCreated(&'a str, usize),
    /// A sales order header was changed.
    OrderUpdated(&'a str),
    /// A sales order was deleted.
    OrderDeleted(&'a str),
    /// A request was refused with an OData error (status, SAP message id).
    Refused(u16, &'a str),
    /// Injected: latency was added (milliseconds).
    FaultLatency(u64),
    /// Injected: the request is held (milliseconds).
    FaultHang(u64),
    /// Injected: an error status.
    FaultError(u16),
    /// Injected: outage answered 503 or dropped the connection.
    FaultOutage,
    /// Injected: a committed write's answer was dropped.
    FaultResponseLost,
    /// A connection beyond the limit was refused.
    FaultConnectionLimit,
}

impl Event<'_> {
    /// The event's name (log message and metric label).
    pub fn name(&self) -> &'static str {
        match self {
            Event::OrderCreated(..) => "sap_mock_order_created",
            Event::OrderUpdated(_) => "sap_mock_order_updated",
            Event::OrderDeleted(_) => "sap_mock_order_deleted",
            Event::Refused(..) => "sap_mock_request_refused",
            Event::FaultLatency(_) => "sap_mock_fault_latency",
            Event::FaultHang(_) => "sap_mock_fault_hang",
            Event::FaultError(_) => "sap_mock_fault_error",
            Event::FaultOutage => "sap_mock_fault_outage",
            Event::FaultResponseLost => "sap_mock_fault_response_lost",
            Event::FaultConnectionLimit => "sap_mock_fault_connection_limit",
        }
    }
}

/// Logs and counts `event`.
pub fn record(event: Event<'_>) {
    let name = event.name();
    metrics::counter!("sap_mock_events_total", "event" => name).increment(1);
    match event {
        Event::OrderCreated(n, items) => tracing::info!(sales_order = n, items, "{name}"),
        Event::OrderUpdated(n) | Event::OrderDeleted(n) => {
            tracing::info!(sales_order = n, "{name}")
        }
        Event::Refused(status, code) => tracing::info!(status, code, "{name}"),
        Event::FaultLatency(ms) => tracing::debug!(latency_ms = ms, "{name}"),
        Event::FaultHang(ms) => tracing::warn!(hang_ms = ms, "{name}"),
        Event::FaultError(status) => tracing::warn!(status, "{name}"),
        Event::FaultOutage | Event::FaultResponseLost | Event::FaultConnectionLimit => {
            tracing::warn!("{name}")
        }
    }
}
