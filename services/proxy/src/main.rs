//! The `proxy` binary: configuration, logging, run until SIGTERM/SIGINT.

use proxy::app::Application;
use proxy::config::ProxyConfig;

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
