//! `sap-sync`: see the library documentation.

use sap_sync::{Config, SapSync};

/// mimalloc instead of glibc's allocator: each event is parsed into a tree of small JSON values
/// and dropped once applied, and glibc's malloc/free took about a fifth of sap-sync's CPU while
/// it drained a backlog (perf, `orderctl bench sap-sync`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sap-sync: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = platform::telemetry::init(config.log_format, &config.otel);
    tracing::info!(topic = %config.topic, group = %config.group, sap = %config.sap.url, "starting sap-sync");
    let app = SapSync::start(config).await?;
    tracing::info!(port = app.port(), "sap-sync listening");
    let result = app.run(platform::shutdown::token_on_signal()).await;
    telemetry.shutdown();
    result?;
    tracing::info!("sap-sync stopped");
    Ok(())
}
