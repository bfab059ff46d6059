//! Plumbing shared by every service of the migration stack.
//!
//! Nothing here knows about orders or SAP. Each module owns one concern:
//!
//! - [`config`]: read environment variables into typed values, collecting *every* bad variable
//!   so a service can report them all at once and exit (habit 1 of `STYLE.md`).
//! - [`telemetry`]: the tracing subscriber (human or JSON logs) and, when an OTLP endpoint is
//!   configured, the OpenTelemetry trace exporter (flushed by [`telemetry::Telemetry::shutdown`]).
//! - [`otel`]: the spans that cross a boundary (server, client, producer, consumer) and W3C
//!   `traceparent` parsing; nothing at all when traces are off.
//! - [`correlation`]: the correlation id every request carries across the systems
//!   (`X-Correlation-ID`, else `Idempotency-Key`, else generated), echoed on the response and
//!   recorded on the request span.
//! - [`http_metrics`]: the Prometheus recorder and a middleware counting requests and timing
//!   them by route and status.
//! - [`shutdown`]: SIGTERM/SIGINT turned into a cancellation token that servers drain on.
//! - [`tls`]: the one rustls client configuration for an `https://` upstream (ring provider,
//!   the system's CA store or a configured CA file, verification always on);
//!   [`config::EnvReader::read_upstream_url`] reads an upstream URL with it, so a bad CA file is
//!   a configuration error at start.
//! - [`http_client`]: a pooled HTTP/1.1 client over plain TCP or that TLS, for whole-body calls.

pub mod config;
pub mod correlation;
pub mod http_client;
pub mod http_metrics;
pub mod otel;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
