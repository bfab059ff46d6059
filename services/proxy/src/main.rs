//! The `proxy` binary: configuration, logging, run until SIGTERM/SIGINT.

use proxy::app::Application;
use proxy::config::ProxyConfig;

/// mimalloc instead of glibc's allocator: the SAP face of `events`/`retired` parses the order
/// service's JSON into a tree, translates it into SAP's entity and writes it out again, and
/// glibc's malloc/free (with `malloc_consolidate`) took about 29 % of the proxy's CPU on
/// key reads (perf, `orderctl bench odata-face`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match ProxyConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let telemetry = platform::telemetry::init(config.log_format, &config.otel);
    let app = Application::build(config).await?;
    let result = app.run(platform::shutdown::token_on_signal()).await;
    telemetry.shutdown();
    result
}
