//! sap-sync against the real parts: PostgreSQL, Kafka, the order service with its outbox relay,
//! the SAP emulator, and sap-sync's own binary (killed with SIGKILL where a test says so).

mod client_spans;
mod common;
mod events;
mod forward;
mod hold;
mod migration;
mod tls;
mod trace;
