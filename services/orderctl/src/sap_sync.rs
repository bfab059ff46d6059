//! `orderctl sap-sync ...`: sap-sync's parked orders (changes SAP refused, with SAP's message)
//! and their redrive. Read from and written to sap-sync's state topic on Kafka, so it works
//! whichever sap-sync instance holds the order; the instance that holds the order's partition
//! applies the events in their original order.

use std::time::Duration;

use anyhow::bail;
use sap_sync::book::{Book, ParkedOrder, state_topic};

/// Where sap-sync's state is.
#[derive(clap::Args)]
pub struct Target {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The order events topic (the state topic is named after it).
    #[arg(long, env = "KAFKA_TOPIC", default_value = "order-events")]
    topic: String,
    /// sap-sync's state topic, when not the default `<topic>.sap-sync-state`.
    #[arg(long, env = "SAP_SYNC_STATE_TOPIC")]
    state_topic: Option<String>,
    /// Replication factor should the state topic have to be created.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    replication: i32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What to do.
#[derive(clap::Subcommand)]
pub enum Action {
    /// List parked orders with SAP's message.
    Parked(Target),
    /// Apply a parked order's events again, in their original order (after fixing the cause).
    Redrive {
        /// Order number or order id.
        order: String,
        /// Wait until sap-sync reports the outcome.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: Target,
    },
}

async fn open(t: &Target) -> anyhow::Result<Book> {
    let topic = t
        .state_topic
        .clone()
        .unwrap_or_else(|| state_topic(&t.topic));
    Book::open(&t.brokers, &topic, t.replication).await
}

fn table(orders: &[ParkedOrder]) {
    if orders.is_empty() {
        println!("No order is parked: every change reached SAP.");
        return;
    }
    println!(
        "{:<12} {:<38} {:>6} {:<20} {:<9} SAP's message",
        "ORDER", "ORDER ID", "EVENTS", "PARKED AT", "REDRIVE"
    );
    for o in orders {
        println!(
            "{:<12} {:<38} {:>6} {:<20} {:<9} {}",
            o.order_number,
            o.order_id,
            o.events.len(),
            o.parked_at.format("%Y-%m-%d %H:%M:%S"),
            if o.redrive { "asked" } else { "-" },
            o.error
        );
    }
    println!(
        "{} order(s) parked. Fix the cause, then: orderctl sap-sync redrive <ORDER>",
        orders.len()
    );
}

/// Runs the action.
pub async fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Parked(t) => {
            let book = open(&t).await?;
            let parked = book.parked();
            if t.json {
                println!("{}", serde_json::to_string_pretty(&parked)?);
            } else {
                table(&parked);
            }
        }
        Action::Redrive {
            order,
            wait,
            target,
        } => {
            let book = open(&target).await?;
            let Some(asked) = book.request_redrive(&order).await? else {
                bail!(
                    "order {order} is not parked; `orderctl sap-sync parked` lists those that are"
                );
            };
            if !wait {
                if target.json {
                    println!("{}", serde_json::to_string_pretty(&asked)?);
                } else {
                    println!(
                        "Redrive of order {} asked for: {} event(s) will be applied in their original order.",
                        asked.order_number,
                        asked.events.len()
                    );
                }
                return Ok(());
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let now = book
                    .all()
                    .into_iter()
                    .find(|o| o.order_id == asked.order_id);
                match now {
                    Some(o) if o.revision > asked.revision && !o.redrive => {
                        if target.json {
                            println!("{}", serde_json::to_string_pretty(&o)?);
                        } else if o.is_parked() {
                            println!(
                                "Order {} is still parked: SAP refused again: {}",
                                o.order_number, o.error
                            );
                        } else {
                            println!("Order {} redriven: SAP has every change.", o.order_number);
                        }
                        if o.is_parked() {
                            std::process::exit(1);
                        }
                        return Ok(());
                    }
                    _ => {}
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "no sap-sync instance picked the redrive up within 120 s: is sap-sync running?"
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}
