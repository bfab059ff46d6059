//! `sap-mock`: the SAP S/4HANA sales order API emulator. See the library docs and
//! `docs/sap-mock.md`.

use sap_mock::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sap-mock: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = platform::telemetry::init(config.log_format, &config.otel);
    let app = Application::build(config).await?;
    let result = app.run_until(platform::shutdown::token_on_signal()).await;
    telemetry.shutdown();
    result
}
