//! `order-service`: see the library documentation.

use order_service::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("order-service: {e}");
            std::process::exit(2);
        }
    };
    platform::telemetry::init(config.log_format);
    tracing::info!(database = %config.database.redacted(), port = config.port, "starting order-service");
    let app = Application::build(config).await?;
    app.run_until(platform::shutdown::token_on_signal()).await?;
    tracing::info!("order-service stopped");
    Ok(())
}
