//! Integration tests of the proxy against the real `sap-mock` and `order-service` binaries and a
//! real PostgreSQL (one fresh database per test). One test binary, so the stack's binaries are
//! built once.

mod admin;
mod common;
mod console;
mod crash;
mod dual_change;
mod events_face;
mod fastpath;
mod holes;
mod insight;
mod migration_cli;
mod odata_reads;
mod outcomes;
mod replicas;
mod resilience;
mod retired_face;
mod switching;
mod tls;
mod wire;
