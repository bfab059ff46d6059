//! The order service: the modern home of orders, on PostgreSQL.
//!
//! Data flows one way through the modules:
//!
//! ```text
//! HTTP request ─► http (extractors: JSON/problem+json, routes) ─► order_domain::OrderRequest::parse
//!              ─► repository: master data completes what the caller left out (looked up only
//!                 then) ─► one statement: orders + order_items + outbox row ─► PostgreSQL
//! ```
//!
//! - [`config`]: the typed configuration (the only reader of the environment).
//! - [`startup`]: `Application::build` (database, migrations, bound port) and `run_until`.
//! - [`http`]: routes under `/api/v1`, health/ready/metrics, the OpenAPI document, and
//!   [`http::problem`], the one place where errors become RFC 9457 answers.
//! - [`repository`]: SQL for orders, idempotent creates, keyset pages, versioned changes.
//! - [`outbox`]: the event row written in the same transaction as each change.
//! - [`master_data`]: materials, customers and sales areas imported from SAP.
//! - [`db`]: pool, embedded migrations, order number range.

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod lane;
pub mod master_data;
pub mod model;
pub mod outbox;
pub mod repository;
pub mod startup;

pub use config::Config;
pub use startup::Application;
