//! Tracing subscriber and OpenTelemetry set-up, shared by every binary.
//!
//! Logs go to stdout as text or JSON ([`LogFormat`]). Traces are exported over OTLP/HTTP
//! (protobuf) only when an endpoint is configured ([`OtelConfig`], the standard `OTEL_*`
//! variables); otherwise no exporter, no batch thread and no span exist ([`crate::otel`]).

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use tracing_subscriber::EnvFilter;

use crate::config::EnvReader;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

/// Signal-specific OTLP endpoint for traces, used verbatim (it includes `/v1/traces`).
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Base OTLP endpoint; `/v1/traces` is appended for traces.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The `service.name` resource attribute (default: the binary's own name).
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `true` turns traces off whatever else is set (the SDK's standard switch).
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `none` turns traces off; `otlp` (the default) is the only exporter there is.
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

/// Where traces go, if anywhere. Off unless an endpoint is set. The sampler
/// (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; default `parentbased_always_on`), the
/// export timeout and headers (`OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS` and
/// their `_TRACES_` forms) and the batch limits (`OTEL_BSP_*`) are read by the OpenTelemetry SDK
/// itself, as their specification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// The full URL spans are POSTed to (`…/v1/traces`); `None`: traces off.
    pub traces_endpoint: Option<String>,
    /// `service.name`.
    pub service_name: String,
}

impl OtelConfig {
    /// Off.
    pub fn off(service_name: &str) -> Self {
        Self {
            traces_endpoint: None,
            service_name: service_name.to_owned(),
        }
    }

    /// Reads the standard variables; `default_service_name` when `OTEL_SERVICE_NAME` is unset.
    pub fn read(env: &mut EnvReader, default_service_name: &str) -> Self {
        let service_name = env.read_string(OTEL_SERVICE_NAME, default_service_name);
        let disabled = env.read_bool(OTEL_SDK_DISABLED, false);
        let exporter = env.read_string(OTEL_TRACES_EXPORTER, "otlp");
        let off = disabled
            || match exporter.as_str() {
                "otlp" => false,
                "none" => true,
                other => {
                    env.problem(format!(
                        "{OTEL_TRACES_EXPORTER}={other:?}: only otlp (over HTTP) or none"
                    ));
                    true
                }
            };
        let endpoint = env.raw(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).or_else(|| {
            env.raw(OTEL_EXPORTER_OTLP_ENDPOINT)
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        });
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            env.problem(format!("OTLP endpoint {e:?}: expected an http:// URL"));
        }
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("https://"))
        {
            // The exporter's HTTP client is built without TLS (see the root Cargo.toml): send
            // to a local collector's plain port, which forwards over TLS.
            env.problem(format!(
                "OTLP endpoint {:?}: https is not supported, point it at a local collector over http",
                endpoint.as_deref().unwrap_or_default()
            ));
        }
        Self {
            traces_endpoint: if off { None } else { endpoint },
            service_name,
        }
    }
}

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the spans still buffered.
#[derive(Debug)]
#[must_use = "call shutdown() at exit so buffered spans are sent"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether an exporter was installed.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered (within a few seconds) and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch processor's own thread does the export; this waits for it.
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                tracing::warn!(error = %e, "trace exporter shutdown incomplete");
            }
        }
    }
}

/// Installs the global subscriber (logs) and, when `otel` names an endpoint, the OTLP trace
/// exporter. `RUST_LOG` sets the filter (default `info`). Calling it twice is harmless (the
/// second call is ignored), which keeps tests simple.
pub fn init(format: LogFormat, otel: &OtelConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    let provider = match build_provider(otel) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "trace exporter not started; traces are off");
            None
        }
    };
    if let Some(p) = &provider {
        crate::otel::install(p.tracer(otel.service_name.clone()));
        tracing::info!(
            endpoint = otel.traces_endpoint.as_deref().unwrap_or_default(),
            service = %otel.service_name,
            "exporting traces over OTLP/HTTP"
        );
    }
    Telemetry { provider }
}

/// The tracer provider for `otel`, `None` when no endpoint is configured.
fn build_provider(
    otel: &OtelConfig,
) -> Result<
    Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    opentelemetry_otlp::ExporterBuildError,
> {
    let Some(endpoint) = &otel.traces_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(otel.service_name.clone())
        .build();
    Ok(Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> (OtelConfig, Result<(), crate::config::ConfigError>) {
        let mut env = EnvReader::from_map(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        );
        let c = OtelConfig::read(&mut env, "svc");
        (c, env.finish())
    }

    #[test]
    fn without_an_endpoint_traces_are_off_and_no_exporter_is_installed() {
        let (c, ok) = read(&[("OTEL_SERVICE_NAME", "x")]);
        assert!(ok.is_ok());
        assert_eq!(c.traces_endpoint, None);
        assert_eq!(c.service_name, "x");
        let t = init(LogFormat::Text, &c);
        assert!(!t.exporting());
        assert!(!crate::otel::enabled());
        assert!(
            crate::otel::start(
                "s",
                crate::otel::SpanKind::Server,
                crate::otel::Parent::Root,
                vec![]
            )
            .is_none()
        );
        assert_eq!(crate::otel::current_traceparent(), None);
        t.shutdown();
    }

    #[test]
    fn the_signal_specific_endpoint_wins_and_the_base_one_gets_the_traces_path() {
        let (c, _) = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]);
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(c.service_name, "svc");
        let (c, _) = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/x"),
        ]);
        assert_eq!(c.traces_endpoint.as_deref(), Some("http://t:9/x"));
    }

    #[test]
    fn traces_can_be_switched_off_and_bad_values_are_reported() {
        let (c, _) = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(c.traces_endpoint, None);
        let (c, _) = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert_eq!(c.traces_endpoint, None);
        assert!(read(&[("OTEL_TRACES_EXPORTER", "zipkin")]).1.is_err());
        assert!(
            read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")])
                .1
                .is_err()
        );
        assert!(
            read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")])
                .1
                .is_err()
        );
    }
}
