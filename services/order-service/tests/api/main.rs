//! Integration tests of the order service against a real PostgreSQL (one fresh database per
//! test). One test binary, several modules, to keep linking cheap.

mod crash;
mod helpers;
mod idempotency;
mod lane;
mod life;
mod master_data;
mod numbers;
mod orders;
mod outage;
mod sap_link;
mod search;
mod validation;
