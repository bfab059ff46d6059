//! `orderctl bench order-create`: how close the order service's create path comes to the
//! database's own limit.
//!
//! In one run, against one fresh database on the project's PostgreSQL, `rounds` times (who goes
//! first alternates, so drifting machine load and a checkpoint hit both sides alike):
//! 1. the real `order-service` binary takes `POST /api/v1/orders` from `concurrency` closed-loop
//!    workers for `duration` (after one warm-up); orders/s, p50 and p99 are printed;
//! 2. `pgbench` runs the same SQL the service runs for a create (one statement inserting the
//!    order, its items and its outbox row; printed by `order-service --print-create-sql`) at the
//!    same concurrency for the same time.
//!
//! Then the ratio of the totals, service/pgbench, is printed (goal: at least 0.7 at
//! concurrency 32), and the orders stored by the service are checked against the creates it
//! acknowledged.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use sqlx::Connection;

use crate::infra;
use crate::load;

/// Options of the benchmark.
#[derive(clap::Args)]
pub struct Args {
    /// Concurrent clients (HTTP workers and pgbench clients alike).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured time of each side in each round.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Rounds (each measures both sides once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Warm-up before the service is measured.
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    warmup: Duration,
    /// Also run the outbox relay inside the service (needs Kafka); by default only the create
    /// path is measured, as pgbench measures only the transaction.
    #[arg(long)]
    with_relay: bool,
    /// The service's database pool (`DB_POOL_SIZE`); by default the service's own default.
    #[arg(long)]
    db_pool_size: Option<u32>,
}

/// pgbench's value for each parameter of the service's create statement (`$1` is the first):
/// fresh ids per transaction, the benchmark body's values otherwise. The statement itself comes
/// from `order-service --print-create-sql`, so both sides always run the same SQL.
const PGBENCH_PARAMS: &[&str] = &[
    "gen_random_uuid()",                                // $1 order id
    "lpad(nextval('order_number_seq')::text, 10, '0')", // $2 order number (the service buffers blocks)
    "'17100001'",                                       // $3 customer
    "'PGBENCH'",                                        // $4 customer reference
    "'EUR'",                                            // $5 currency
    "NULL",                                             // $6 sales organization
    "NULL",                                             // $7 distribution channel
    "NULL",                                             // $8 division
    "NULL",                                             // $9 order type
    "NULL::date",                                       // $10 requested delivery date
    "25.00",                                            // $11 total
    "'{}'::jsonb",                                      // $12 specifications
    "gen_random_uuid()::text",                          // $13 correlation id
    "NULL::text",                                       // $14 idempotency key
    "'6f1ed002ab5595859014ebf0951522d9d6f1ed002ab5595859014ebf0951522d'", // $15 request hash
    "now()",                                            // $16 created at
    "ARRAY[10,20]",                                     // $17 item numbers
    "ARRAY['TG11','TG12']",                             // $18 skus
    "ARRAY[2,5]",                                       // $19 quantities
    "ARRAY['PC','PC']",                                 // $20 units
    "ARRAY[12.50,NULL]",                                // $21 unit prices
    "ARRAY[25.00,NULL]",                                // $22 net amounts
    "ARRAY['{\"color\": \"red\"}','{}']",               // $23 item specifications
    "gen_random_uuid()",                                // $24 event id
    "'order.created'",                                  // $25 event type
    "'{envelope}'",                                     // $26 event (CloudEvent JSON)
    "'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'", // $27 traceparent
];

/// The pgbench script: the service's statement with pgbench's values in place of `$n`.
fn pgbench_script(statement: &str) -> anyhow::Result<String> {
    let mut script = statement.trim().to_owned();
    let highest = (1..=99)
        .rev()
        .find(|n| script.contains(&format!("${n}")))
        .unwrap_or(0);
    if highest != PGBENCH_PARAMS.len() {
        bail!(
            "the create statement has {highest} parameters, the benchmark knows {}: update PGBENCH_PARAMS",
            PGBENCH_PARAMS.len()
        );
    }
    let envelope = outbox_envelope().replace(':', ": ");
    // Highest first, so `$1` does not match inside `$12`.
    for n in (1..=highest).rev() {
        let value = PGBENCH_PARAMS[n - 1].replace("{envelope}", &envelope);
        script = script.replace(&format!("${n}"), &value);
    }
    Ok(format!("{};\n", script.replace('\n', " ")))
}

/// An outbox payload of the same size as the service's (an order with two items). Colons get a
/// space after them because pgbench would read `:name` as one of its variables.
const OUTBOX_PAYLOAD: &str = r#"{"id":"00000000-0000-0000-0000-000000000000","order_number":"8000000001","status":"created","status_reason":null,"version":1,"customer_id":"17100001","customer_reference":"PGBENCH","currency":"EUR","sales_organization":null,"distribution_channel":null,"division":null,"order_type":null,"requested_delivery_date":null,"total_net_amount":"25.00","sap_order_number":null,"specifications":{},"correlation_id":"00000000-0000-0000-0000-000000000000","items":[{"item_number":10,"sku":"TG11","quantity":"2","unit":"PC","unit_price":"12.50","net_amount":"25.00","specifications":{"color":"red"}},{"item_number":20,"sku":"TG12","quantity":"5","unit":"PC","unit_price":null,"net_amount":null,"specifications":{}}],"created_at":"2026-11-24T15:00:00.000000Z","updated_at":"2026-11-24T15:00:00.000000Z"}"#;

/// The stored event of a create: [`OUTBOX_PAYLOAD`] in its CloudEvent envelope, as the service
/// writes it (same members, same sizes).
fn outbox_envelope() -> String {
    format!(
        r#"{{"specversion":"1.0","id":"00000000-0000-0000-0000-000000000000","source":"/order-service","type":"order.created","subject":"00000000-0000-0000-0000-000000000000","time":"2026-11-24T15:00:00.000000Z","datacontenttype":"application/json","dataschema":"urn:order-events:schema:order.created.v1","correlationid":"00000000-0000-0000-0000-000000000000","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{OUTBOX_PAYLOAD}}}"#
    )
}

/// Runs the benchmark and prints its report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let root = infra::repo_root()?;
    infra::script(&root, "postgres.sh", &["start"])?;
    let server_url = infra::script(&root, "postgres.sh", &["url"])?;
    let base_url = server_url
        .rsplit_once('/')
        .map_or(server_url.as_str(), |(b, _)| b)
        .to_owned();
    let db_name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{base_url}/postgres"))
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&mut admin)
        .await?;
    let db_url = format!("{base_url}/{db_name}");

    let port = infra::free_port()?;
    let mut command = Command::new(infra::sibling_binary("order-service")?);
    command
        .env("DATABASE_URL", &db_url)
        .env("ORDER_SERVICE_PORT", port.to_string())
        .env("ORDER_SERVICE_HOST", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .env("OUTBOX_RELAY_ENABLED", args.with_relay.to_string())
        .env_remove("DB_POOL_SIZE")
        .stdout(Stdio::null());
    if let Some(size) = args.db_pool_size {
        command.env("DB_POOL_SIZE", size.to_string());
    }
    let mut service = command.spawn().context("starting order-service")?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("{base}/ready")).await?;

    let body = json!({
        "customer_id": "17100001", "currency": "EUR", "customer_reference": "BENCH",
        "items": [
            {"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "12.50", "specifications": {"color": "red"}},
            {"sku": "TG12", "quantity": "5", "unit": "PC"}
        ]
    })
    .to_string();
    let spec = load::RequestSpec {
        authority: format!("127.0.0.1:{port}"),
        method: http::Method::POST,
        path: "/api/v1/orders".into(),
        headers: vec![("content-type", "application/json".into())],
        body: body.into(),
        expect: http::StatusCode::CREATED,
    };
    println!(
        "order-create benchmark: concurrency {}, {} rounds of {:?} per side (warm-up {:?}), \
         database {db_name}",
        args.concurrency, args.rounds, args.duration, args.warmup
    );
    let statement = Command::new(infra::sibling_binary("order-service")?)
        .arg("--print-create-sql")
        .output()
        .context("asking order-service for its create statement")?;
    let script = std::env::temp_dir().join(format!("order-create-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        pgbench_script(&String::from_utf8(statement.stdout)?)?,
    )?;

    let warm = load::closed_loop(args.concurrency, args.warmup, spec.clone()).await;
    let mut acknowledged = warm.ok;
    let mut rounds = Vec::new();
    for round in 0..args.rounds.max(1) {
        let (ours, peer) = if round % 2 == 0 {
            let ours = load::closed_loop(args.concurrency, args.duration, spec.clone()).await;
            (
                ours,
                run_pgbench(&script, &db_url, args.concurrency, args.duration)?,
            )
        } else {
            let peer = run_pgbench(&script, &db_url, args.concurrency, args.duration)?;
            (
                load::closed_loop(args.concurrency, args.duration, spec.clone()).await,
                peer,
            )
        };
        acknowledged += ours.ok;
        eprintln!(
            "round {}: order-service {:.0} orders/s, pgbench {:.0} tx/s, ratio {:.2}",
            round + 1,
            ours.rate(),
            peer.tps,
            ours.rate() / peer.tps
        );
        rounds.push((ours, peer));
    }
    let _ = std::fs::remove_file(&script);
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    let _ = service.wait();

    let mut db = sqlx::PgConnection::connect(&db_url).await?;
    // pgbench's orders carry the customer reference 'PGBENCH', the service's 'BENCH'.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE customer_reference = 'BENCH'")
            .fetch_one(&mut db)
            .await?;
    db.close().await.ok();
    if stored as u64 != acknowledged {
        bail!("the service acknowledged {acknowledged} creates but {stored} orders are stored");
    }

    println!();
    println!(
        "| round | order-service orders/s | p50 ms | p99 ms | errors | pgbench tx/s | mean ms | errors | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (ours, peer)) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {} | {:.2} |",
            i + 1,
            ours.rate(),
            ours.ms(0.50),
            ours.ms(0.99),
            ours.errors,
            peer.tps,
            peer.latency_avg_ms,
            peer.failed,
            ours.rate() / peer.tps
        );
    }
    let ours_total: f64 = rounds.iter().map(|(o, _)| o.rate()).sum();
    let peer_total: f64 = rounds.iter().map(|(_, p)| p.tps).sum();
    let ratio = ours_total / peer_total;
    println!();
    println!(
        "mean: order-service {:.0} orders/s, pgbench {:.0} tx/s; ratio order-service / pgbench = \
         {ratio:.2} (goal >= 0.70); {stored} orders stored = acknowledged",
        ours_total / rounds.len() as f64,
        peer_total / rounds.len() as f64,
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .ok();
    Ok(())
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("order-service did not become ready at {url}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct PgbenchResult {
    tps: f64,
    latency_avg_ms: f64,
    failed: u64,
}

fn run_pgbench(
    script: &std::path::Path,
    db_url: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<PgbenchResult> {
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &duration.as_secs().max(1).to_string(),
            "-f",
        ])
        .arg(script)
        .arg(db_url)
        .output()
        .context("running pgbench (Debian package postgresql-contrib / postgresql-client)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "pgbench failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let number_after = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Ok(PgbenchResult {
        tps: number_after("tps = ").context("no tps in pgbench output")?,
        latency_avg_ms: number_after("latency average = ").unwrap_or(f64::NAN),
        failed: number_after("number of failed transactions: ").unwrap_or(0.0) as u64,
    })
}
