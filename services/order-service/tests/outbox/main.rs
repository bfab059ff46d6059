//! The transactional outbox against a real PostgreSQL and a real Apache Kafka broker: every
//! committed order change reaches Kafka exactly once by event id, valid against its JSON
//! Schema, in order per order, through broker outages, relay crashes and concurrent relays.
//! One test binary, several modules, to keep linking cheap.

mod crash;
mod delivery;
mod helpers;
mod maintenance;
mod outage;
mod relays;
