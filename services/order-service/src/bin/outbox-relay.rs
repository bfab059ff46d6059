//! `outbox-relay`: the outbox relay alone, without the HTTP API.
//!
//! Runs next to (or instead of) the relays inside the service instances, with the same
//! configuration variables (`DATABASE_URL`/`DB_*`, `KAFKA_*`, `OUTBOX_*`). Any number may run at
//! once: each order's events are published by one relay at a time, in order.

use order_service::outbox::{kafka, relay::Relay};
use order_service::{Config, db};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("outbox-relay: {e}");
            std::process::exit(2);
        }
    };
    let telemetry = platform::telemetry::init(config.log_format, &config.otel);
    let shutdown = platform::shutdown::token_on_signal();
    tracing::info!(database = %config.database.redacted(), brokers = %config.kafka.brokers,
        topic = %config.kafka.topic, "starting outbox-relay");
    let pool = db::connect(&config.database).await?;
    db::prepare(&pool, config.order_number_start).await?;
    let producer = kafka::producer(&config.kafka, "outbox-relay")?;
    if kafka::provision_topic_with_retry(&config.kafka, &shutdown)
        .await
        .is_none()
    {
        telemetry.shutdown();
        return Ok(());
    }
    Relay::new(
        pool,
        producer,
        config.kafka.topic.clone(),
        config.outbox.batch_size,
    )
    .with_mark_delay(config.outbox.mark_delay)
    .renew_producer_with(kafka::producer_factory(&config.kafka, "outbox-relay"))
    .run(config.outbox.poll_interval, config.shutdown_grace, shutdown)
    .await;
    telemetry.shutdown();
    Ok(())
}
