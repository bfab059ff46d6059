//! The strangler-fig proxy: the only entry point for SAP's sales order clients while order
//! handling moves off SAP.
//!
//! # How a request flows
//!
//! ```text
//! client ──► server (admit → classify → route → handle → log)
//!              │
//!              ├─ anything not owned by a route ──► passthrough ──► SAP (streamed, byte-compatible)
//!              │
//!              └─ sales-orders route, in the mode snapshotted for this request:
//!                   legacy      create/read ──► SAP (pass-through; creates with a key are buffered)
//!                   dual-write  create ──► sales_orders: SAP ∥ order service ──► outcome::decide
//!                                             └─► durable follow-ups in store ──► replay worker
//!                               read   ──► SAP
//!                   events/retired ──► order service (translate), legacy-shaped answers
//!                               $batch ──► batch: each part as the same request alone
//! ```
//!
//! # Modules, by part
//!
//! - [`serve`] — serving and the lean path: [`serve::server`] (listener, the request path's
//!   phases), [`serve::h1`] (the lean HTTP/1.1 path for what is only relayed),
//!   [`serve::passthrough`] (the SAP pass-through), [`serve::body`] (body types and guards).
//! - [`routing`] — routes and modes: [`routing::routes`] (the route table with modes and
//!   policies, persisted and audited), [`routing::sales_orders`] (the `sales-orders` route's
//!   create and reads in each mode).
//! - [`dual_write`] — dual write and replay: [`dual_write::outcome`] (**the dual-write outcome
//!   table**, one pure function), [`dual_write::numbers`] (order numbers named on creates),
//!   [`dual_write::change`] (changes: SAP first, then the order service, logged when it fails),
//!   [`dual_write::store`] (redb file with the replay log and idempotency records, fsync per
//!   commit), [`dual_write::replay`] (the worker that lands every logged follow-up, with
//!   back-off and jitter), [`dual_write::shadow`] (shadow comparison of reads, a readiness
//!   criterion).
//! - [`face`] — the OData face served by the new side in `events` and `retired`:
//!   [`face::read`], [`face::create`], [`face::write`], [`face::batch`], and
//!   [`face::session`] (logon with hashed passwords, CSRF tokens and session cookies,
//!   `$metadata`, the service document, so SAP can be stopped). The anti-corruption layer
//!   (OData deep insert ↔ order service) is the `order-acl` crate, shared with `orderctl`.
//! - [`upstreams`] — [`upstreams::upstream`], [`upstreams::breaker`] (pooled clients with
//!   timeout, circuit breaker, concurrency bound), [`upstreams::order_client`],
//!   [`upstreams::sap_client`] (the calls to each system).
//! - [`console`]: the migration console (a page on the admin listener, its assets embedded)
//!   and its read models ([`console::series`]: live rates and percentiles).
//! - [`admin`]: admin API (routes and the return from `retired`, replays, counters, metrics);
//!   [`observe`]: logs + metrics of each important event in one place; [`error`]: one error
//!   type by side, OData errors; [`config`]: every environment variable, typed, read once;
//!   [`app`]: build and run; [`insight`]: the event tail and an order's journey (console,
//!   `orderctl trace`); [`shared_state`]: route modes, replica heartbeats and
//!   idempotency keys shared by several replicas in PostgreSQL, when configured.

pub mod admin;
pub mod app;
pub mod config;
pub mod console;
pub mod dual_write;
pub mod error;
pub mod face;
pub mod insight;
pub mod observe;
pub mod routing;
pub mod serve;
pub mod shared_state;
pub mod upstreams;
