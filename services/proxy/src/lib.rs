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
//! # Modules
//!
//! - [`config`]: every environment variable, typed, read once.
//! - [`server`]: listener and the request path phases; [`passthrough`]: the SAP pass-through.
//! - [`routes`]: route table with modes and policies, persisted and audited.
//! - [`sales_orders`]: the create and reads of the `sales-orders` route in each mode;
//!   [`odata_create`]: S/4's checks and refusals of a create the order service serves;
//!   [`odata_face`]: SAP's writes served by the order service; [`batch`]: `$batch` where the
//!   order service serves the route.
//! - [`outcome`]: **the dual-write outcome table**, one pure function.
//! - [`shadow`]: shadow comparison of dual-write reads (a readiness criterion).
//! - the anti-corruption layer (OData deep insert ↔ order service) is the `order-acl` crate,
//!   shared with `orderctl backfill`.
//! - [`store`]: redb file with the replay log and idempotency records (fsync per commit);
//!   [`replay`]: the worker that lands every logged follow-up, with back-off and jitter.
//! - [`upstream`], [`breaker`]: pooled clients with timeout, circuit breaker, concurrency bound.
//! - [`order_client`], [`sap_client`]: the calls to each system.
//! - [`sap_face`]: SAP's session layer for a retired route (logon with hashed passwords, CSRF
//!   tokens and session cookies, `$metadata`, the service document), so SAP can be stopped.
//! - [`admin`]: admin API (routes, replays, counters, metrics); [`observe`]: logs + metrics of
//!   each important event in one place; [`error`]: one error type by side, OData errors.
//! - [`app`]: build and run.

pub mod admin;
pub mod app;
pub mod batch;
pub mod body;
pub mod breaker;
pub mod config;
pub mod dual_change;
pub mod error;
pub mod h1;
pub mod numbers;
pub mod observe;
pub mod odata_create;
pub mod odata_face;
pub mod odata_read;
pub mod order_client;
pub mod outcome;
pub mod passthrough;
pub mod replay;
pub mod routes;
pub mod sales_orders;
pub mod sap_client;
pub mod sap_face;
pub mod server;
pub mod shadow;
pub mod store;
pub mod upstream;
