//! `outbox-bench`: how fast order events get from a committed transaction to a Kafka consumer.
//!
//! One run prints, as a Markdown section for `docs/benchmarks.md`:
//!
//! 1. **Commit-to-consumer lag** at each target rate (default 500 and 2,000 orders/s, open
//!    loop): orders are placed through the real repository (one transaction: order, items,
//!    outbox row), the in-process relay publishes, a consumer in a fresh group reads; lag is the
//!    consumer's receive time minus the moment the creating transaction committed.
//! 2. **Relay throughput**: a backlog of events is written with the relay stopped, then one relay
//!    drains it; events/s from its start until the last row is marked published.
//! 3. **Kafka's own producer performance tool** (`kafka-producer-perf-test`, from the same jars as
//!    the broker) with the same value size, `acks=all`, idempotence and linger, on the same broker,
//!    and the ratio relay / raw producer.
//!
//! Infrastructure: the project's PostgreSQL (`scripts/postgres.sh start`) unless
//! `BENCH_DATABASE_URL` names a server whose user may create databases; the project's Kafka
//! (`scripts/kafka.sh start`) unless `KAFKA_BROKERS` is set. A fresh database and fresh topics
//! per run.
//!
//! ```text
//! cargo run --release -p order-service --bin outbox-bench -- [--rates 500,2000] [--seconds 10]
//!     [--backlog 50000] [--batch 1000] [--linger-ms 2] [--concurrency 16]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use order_domain::{OrderDraft, OrderRequest};
use order_service::outbox::{kafka, relay::Relay};
use order_service::repository::{OrderRepository, PlaceOutcome, RequestContext};
use order_service::{Config, db};
use platform::config::EnvReader;
use platform::shutdown::CancellationToken;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use sqlx::Connection;
use uuid::Uuid;

struct Args {
    rates: Vec<u32>,
    seconds: u64,
    backlog: i64,
    batch: i64,
    linger_ms: u64,
    concurrency: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        rates: vec![500, 2000],
        seconds: 10,
        backlog: 50_000,
        batch: 1000,
        linger_ms: 2,
        concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rates" => {
                args.rates = value()?
                    .split(',')
                    .map(|r| r.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => args.seconds = value()?.parse()?,
            "--backlog" => args.backlog = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--linger-ms" => args.linger_ms = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "outbox-bench [--rates 500,2000] [--seconds 10] [--backlog 50000] [--batch 1000] [--linger-ms 2] [--concurrency 16]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_script(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let path = repo_root().join("scripts").join(script);
    let out = Command::new(&path)
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed:\n{}{}",
            path.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn admin_url() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        return Ok(url);
    }
    run_script("postgres.sh", &["start"])?;
    let port = std::env::var("PG_PORT").unwrap_or_else(|_| "5432".into());
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn brokers() -> anyhow::Result<String> {
    run_script("kafka.sh", &["start"])?;
    Ok(match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => format!(
            "127.0.0.1:{}",
            std::env::var("KAFKA_PORT").unwrap_or_else(|_| "9092".into())
        ),
    })
}

fn new_order() -> OrderRequest {
    let draft: OrderDraft = serde_json::from_value(serde_json::json!({
        "customer_id": "17100001",
        "currency": "EUR",
        "customer_reference": "PO-4711",
        "sales_organization": "1010",
        "distribution_channel": "10",
        "division": "00",
        "items": [
            {"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "12.50",
             "specifications": {"color": "red"}},
            {"sku": "TG12", "quantity": "5", "unit": "PC", "unit_price": "3.10"}
        ]
    }))
    .expect("static draft");
    OrderRequest::parse(&draft).expect("static draft is valid")
}

/// The 1-minute load average, to say how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

struct LagResult {
    target: u32,
    achieved: f64,
    orders: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Places orders at `rate`/s for `seconds` (open loop) and measures commit-to-consumer lag.
async fn measure_lag(
    repository: &OrderRepository,
    consumer: &StreamConsumer,
    rate: u32,
    seconds: u64,
    concurrency: usize,
    value_sizes: &Mutex<Vec<usize>>,
) -> anyhow::Result<LagResult> {
    let total = (rate as u64 * seconds) as usize;
    let committed: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let received: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();

    // Consumer: note when each order's event arrives.
    let stop = CancellationToken::new();
    let reader = {
        let received = received.clone();
        let stop = stop.clone();
        async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    m = consumer.recv() => {
                        let Ok(m) = m else { continue };
                        let now = Instant::now();
                        if let Some(id) = m.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| k.parse().ok()) {
                            received.lock().unwrap().entry(id).or_insert(now);
                        }
                        value_sizes.lock().unwrap().push(m.payload().map_or(0, <[u8]>::len));
                    }
                }
            }
        }
    };

    // Generator: one create every 1/rate s, at most `concurrency` in flight.
    let generator = async {
        let order = Arc::new(new_order());
        let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
        let start = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            tokio::time::sleep_until(start + interval * i as u32).await;
            let permit = limit.clone().acquire_owned().await.expect("open semaphore");
            let repository = repository.clone();
            let order = order.clone();
            let committed = committed.clone();
            tasks.spawn(async move {
                let ctx = RequestContext {
                    correlation_id: Uuid::new_v4().to_string(),
                    idempotency_key: None,
                    traceparent: None,
                };
                let outcome = repository.place_order(&order, &ctx).await;
                let now = Instant::now();
                drop(permit);
                match outcome {
                    Ok(PlaceOutcome::Created(o)) => {
                        committed.lock().unwrap().insert(o.id, now);
                        Ok(())
                    }
                    Ok(PlaceOutcome::Replayed(..)) => Err(anyhow::anyhow!("unexpected replay")),
                    Err(e) => Err(anyhow::anyhow!("place_order: {e}")),
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(start.elapsed())
    };

    let wait_all = async {
        let elapsed = generator.await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = {
                let c = committed.lock().unwrap();
                let r = received.lock().unwrap();
                c.keys().all(|k| r.contains_key(k))
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                bail!("not every event reached the consumer within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        anyhow::Ok(elapsed)
    };
    let (elapsed, ()) = tokio::join!(wait_all, reader);
    let elapsed = elapsed?;

    let committed = committed.lock().unwrap();
    let received = received.lock().unwrap();
    let mut h = Histogram::<u64>::new(3)?;
    // The first 10% warm the connections and JIT of the broker: not counted.
    let mut by_commit: Vec<(&Uuid, &Instant)> = committed.iter().collect();
    by_commit.sort_by_key(|(_, t)| **t);
    for (id, at) in by_commit.iter().skip(total / 10) {
        let lag = received[*id].saturating_duration_since(**at);
        h.record(lag.as_micros() as u64)?;
    }
    Ok(LagResult {
        target: rate,
        achieved: total as f64 / elapsed.as_secs_f64(),
        orders: total,
        p50: percentile_ms(&h, 0.50),
        p99: percentile_ms(&h, 0.99),
        max: h.max() as f64 / 1000.0,
    })
}

/// Writes `events` pending rows (orders of 5 events each), each carrying the stored envelope
/// of a real event: the bytes the relay ships are those of the service's events (the ids inside
/// the copied JSON repeat; the rows' own event ids, which go in the headers, do not).
async fn write_backlog(pool: &sqlx::PgPool, events: i64) -> anyhow::Result<()> {
    let orders = (events / 5).max(1);
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_id, order_version, event_type, payload, \
           envelope, correlation_id, traceparent) \
         SELECT gen_random_uuid(), md5($3 || g::text)::uuid, v, t.event_type, t.payload, \
           t.envelope, t.correlation_id, t.traceparent \
         FROM (SELECT * FROM outbox ORDER BY id LIMIT 1) t, \
              generate_series(1, $1::bigint) g, generate_series(1, $2::int) v \
         ORDER BY g, v",
    )
    .bind(orders)
    .bind(5_i32)
    .bind(Uuid::new_v4().to_string())
    .execute(pool)
    .await?;
    Ok(())
}

async fn pending(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
        .fetch_one(pool)
        .await?)
}

async fn any_pending(pool: &sqlx::PgPool) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox_pending)")
            .fetch_one(pool)
            .await?,
    )
}

fn parse_perf_rate(output: &str) -> Option<f64> {
    // "50000 records sent, 26130.1 records/sec (14.95 MB/sec), ..."
    let line = output.lines().rev().find(|l| l.contains("records sent"))?;
    let after = line.split("records sent,").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

/// Drops the run's database and deletes its topics (best effort: a failure is reported, and
/// `scripts/postgres.sh drop-scratch` / `scripts/kafka.sh drop-scratch` catch what is left).
async fn clean_up(admin: &str, db_name: &str, brokers: &str, topics: &[&str]) {
    let dropped = async {
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
    };
    if let Err(e) = dropped.await {
        eprintln!("outbox-bench: could not drop database {db_name}: {e}");
    }
    let deleted = async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()?;
        admin
            .delete_topics(
                topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
    };
    if let Err(e) = deleted.await {
        eprintln!("outbox-bench: could not delete topics {topics:?}: {e}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let load_before = load_average();
    let admin = admin_url()?;
    let brokers = brokers()?;
    let run = Uuid::new_v4().simple().to_string();
    let db_name = format!("outbox_bench_{}", &run[..12]);
    {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut conn)
            .await?;
    }
    let db_url = format!(
        "{}/{db_name}",
        admin.rsplit_once('/').map_or(&*admin, |(b, _)| b)
    );
    let topic = format!("outbox-bench-{}", &run[..12]);
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db_url.as_str()),
        ("DB_POOL_SIZE", "80"),
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_TOPIC", topic.as_str()),
        ("KAFKA_TOPIC_PARTITIONS", "6"),
        ("KAFKA_LINGER_MS", &args.linger_ms.to_string()),
        ("OUTBOX_BATCH_SIZE", &args.batch.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::load(EnvReader::from_map(vars))?;
    let pool = db::connect(&config.database).await?;
    db::prepare(&pool, config.order_number_start).await?;
    kafka::ensure_topic(&config.kafka).await?;
    let repository = OrderRepository::new(pool.clone());

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("outbox-bench-{run}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    consumer.subscribe(&[&topic])?;

    // The relay under test, in process, as the service runs it.
    let relay_stop = CancellationToken::new();
    let producer = kafka::producer(&config.kafka, "outbox-bench")?;
    let relay = Relay::new(pool.clone(), producer.clone(), topic.clone(), args.batch);
    let relay_task = tokio::spawn(relay.run(
        config.outbox.poll_interval,
        Duration::from_secs(5),
        relay_stop.clone(),
    ));

    let value_sizes = Mutex::new(Vec::new());
    // Let the consumer join its group before measuring.
    measure_lag(
        &repository,
        &consumer,
        50,
        2,
        args.concurrency,
        &value_sizes,
    )
    .await?;
    let mut lags = Vec::new();
    for &rate in &args.rates {
        eprintln!("outbox-bench: {rate} orders/s for {} s", args.seconds);
        lags.push(
            measure_lag(
                &repository,
                &consumer,
                rate,
                args.seconds,
                args.concurrency,
                &value_sizes,
            )
            .await?,
        );
    }
    relay_stop.cancel();
    relay_task.await?;
    let sizes = value_sizes.into_inner().unwrap();
    let value_size = sizes.iter().sum::<usize>() / sizes.len().max(1);

    // Relay throughput on a backlog.
    eprintln!("outbox-bench: relay draining {} events", args.backlog);
    write_backlog(&pool, args.backlog).await?;
    let backlog = pending(&pool).await?;
    let relay_stop = CancellationToken::new();
    let relay = Relay::new(pool.clone(), producer, topic.clone(), args.batch);
    let started = Instant::now();
    let relay_task = tokio::spawn(relay.run(
        config.outbox.poll_interval,
        Duration::from_secs(5),
        relay_stop.clone(),
    ));
    // A cheap look (the first queue row), not a count: counting a large queue every 20 ms took
    // a backend's worth of CPU away from the relay under test.
    while any_pending(&pool).await? {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the relay did not drain the backlog within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = started.elapsed();
    relay_stop.cancel();
    relay_task.await?;
    let relay_rate = backlog as f64 / drain.as_secs_f64();

    // Kafka's own tool, same value size, same guarantees, same broker.
    eprintln!("outbox-bench: kafka-producer-perf-test, {backlog} records of {value_size} bytes");
    let perf_topic = order_service::config::KafkaSettings {
        topic: format!("outbox-bench-perf-{}", &run[..12]),
        ..config.kafka.clone()
    };
    kafka::ensure_topic(&perf_topic).await?;
    let perf = run_script(
        "kafka.sh",
        &[
            "perf-producer",
            "--topic",
            &perf_topic.topic,
            "--num-records",
            &backlog.to_string(),
            "--record-size",
            &value_size.to_string(),
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={brokers}"),
            "acks=all",
            "enable.idempotence=true",
            &format!("linger.ms={}", args.linger_ms),
        ],
    )?;
    let raw_rate = parse_perf_rate(&perf).context("cannot read kafka-producer-perf-test output")?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_after = load_average();
    println!("## Outbox to Kafka (issue 3)\n");
    println!(
        "`cargo run --release -p order-service --bin outbox-bench -- --rates {} --seconds {} --backlog {}` \
         on {cores} cores (load average {load_before} before, {load_after} after); at most {} creates in flight; PostgreSQL and Apache Kafka 4.1.1 (single KRaft node) on the same machine; \
         relay batch {} events, linger {} ms, acks=all, idempotent producer, topic of 6 partitions; \
         event value {value_size} bytes (structured CloudEvent JSON) plus key and 6 headers.\n",
        args.rates
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.seconds,
        args.backlog,
        args.concurrency,
        args.batch,
        args.linger_ms
    );
    println!("| target orders/s | achieved | orders | lag p50 ms | lag p99 ms | lag max ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for l in &lags {
        println!(
            "| {} | {:.0} | {} | {:.1} | {:.1} | {:.1} |",
            l.target, l.achieved, l.orders, l.p50, l.p99, l.max
        );
    }
    println!(
        "\nLag: from the commit of the order's transaction to the consumer's receipt of its \
         `order.created` event (first 10% of each run not counted).\n"
    );
    println!("| throughput | events/s |");
    println!("|---|---:|");
    println!("| relay draining a backlog of {backlog} events (one relay) | {relay_rate:.0} |");
    println!(
        "| kafka-producer-perf-test, {backlog} records of {value_size} bytes | {raw_rate:.0} |"
    );
    println!(
        "| ratio relay / raw producer | {:.2} |",
        relay_rate / raw_rate
    );
    println!(
        "\nkafka-producer-perf-test said: `{}`",
        perf.lines()
            .rev()
            .find(|l| l.contains("records sent"))
            .unwrap_or("")
            .trim()
    );
    pool.close().await;
    clean_up(&admin, &db_name, &brokers, &[&topic, &perf_topic.topic]).await;
    Ok(())
}
