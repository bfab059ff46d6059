//! `order-service`: see the library documentation.

use order_service::{Application, Config};

/// mimalloc instead of glibc's allocator: a create allocates a few hundred small objects, and
/// glibc's malloc/free took about 14% of the service's CPU under load (perf), mimalloc a fraction.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // For `orderctl bench order-create`: the exact statement a create runs, so pgbench runs it
    // too and the comparison can never drift from the code.
    if std::env::args().nth(1).as_deref() == Some("--print-create-sql") {
        println!("{}", order_service::repository::CREATE_ORDER_SQL);
        return Ok(());
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("order-service: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = platform::telemetry::init(config.log_format, &config.otel);
    tracing::info!(database = %config.database.redacted(), port = config.port, "starting order-service");
    let app = Application::build(config).await?;
    let result = app.run_until(platform::shutdown::token_on_signal()).await;
    telemetry.shutdown();
    result?;
    tracing::info!("order-service stopped");
    Ok(())
}
