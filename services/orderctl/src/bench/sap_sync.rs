//! `orderctl bench sap-sync`: how close sap-sync comes to the SAP emulator's own create
//! capacity, and how far behind the order service it runs at a steady rate.
//!
//! One run, on a fresh database, a fresh events topic (6 partitions) and two fresh emulators
//! (one per side, so the orders one side stored never slow the other side's commits):
//!
//! 1. **Throughput**, `rounds` times, who goes first alternating:
//!    - *the peer*: `orders` deep inserts straight to the emulator (the body sap-sync sends,
//!      built by the same `order_acl::order_to_deep_insert`, under numbers of the external
//!      range) by `concurrency` closed-loop workers, each on one connection with one CSRF
//!      session that it reuses;
//!    - *sap-sync*: `orders` orders created in the order service (outbox relay on) while
//!      sap-sync is stopped, so their events wait on Kafka; then sap-sync is started with
//!      `SAP_SYNC_CONCURRENCY=concurrency`. The start-up before the first order (state topic,
//!      group join) is printed apart.
//!
//!    Both rates run from the first order the emulator stored to the last, read afterwards from
//!    the emulator's own `LastChangeDateTime`s (`n - 1` orders over that window), so no poll
//!    loads the emulator while it is measured and both sides are timed the same way. The round
//!    then waits until sap-sync has handled every event of the round, its own link events
//!    included (printed as the "drained" rate), and stops sap-sync.
//!
//!    The ratio printed is sap-sync / emulator, of the means over the rounds (goal: ≥ 0.8).
//! 2. **Lag**: sap-sync running, orders created through the order service at `rate` per second
//!    (open loop: one request every 1/rate s, whether the earlier ones answered or not) for
//!    `duration`. Then sap-sync's own `sap_sync_event_age_seconds` (p50, p99) and, measured
//!    apart, for every `sample_every`-th order the time from its `created_at` to the first read
//!    that finds it in the emulator (reads every 5 ms). Goal: p99 < 1 s.
//! 3. **Checks**: the emulator holds exactly one order per order the order service stores,
//!    the peer's emulator one per acknowledged deep insert, and sap-sync parked none.
//!
//! Progress goes to stderr, the report to stdout (a table, or JSON with `--json`). PostgreSQL
//! and Kafka are used as they run; the project scripts are called to start them only when
//! nothing answers (the scripts are no-ops on a running server).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::infra;
use crate::load::{Connection, Reconnecting};

/// The OData service sap-sync and the peer write to.
const ODATA_ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
/// Partitions of the events topic (as in production and in sap-sync's tests).
const PARTITIONS: i32 = 6;
/// Connections that create the backlog in the order service.
const BACKLOG_CLIENTS: usize = 32;
/// First number of the peer's deep inserts (the emulator's external range).
const PEER_FIRST_NUMBER: u64 = 9_000_000_000;
/// Longest wait for any one step (a drain, a start, a count).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// Options of the benchmark.
#[derive(clap::Args)]
pub struct Args {
    /// Orders per side in each throughput round.
    #[arg(long, default_value_t = 5000)]
    orders: usize,
    /// Throughput rounds (each measures both sides once; who goes first alternates).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrency of both sides: the peer's workers and sap-sync's `SAP_SYNC_CONCURRENCY`.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Orders per second created in the lag phase (open loop).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Length of the lag phase (0 skips it).
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Every n-th order of the lag phase is followed into the emulator.
    #[arg(long, default_value_t = 5)]
    sample_every: usize,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The PostgreSQL server (a URL to any database on it; the bench creates its own database);
    /// by default the project's cluster (`scripts/postgres.sh url`).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark and prints its report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.orders == 0 || args.concurrency == 0 || args.rate == 0 || args.sample_every == 0 {
        bail!("--orders, --concurrency, --rate and --sample-every must be at least 1");
    }
    let root = infra::repo_root()?;
    let base_url = ensure_postgres(&root, args.database_url.as_deref()).await?;
    ensure_kafka(&root, &args.brokers).await?;

    let id = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("bench_{id}");
    let mut admin_db = sqlx::PgConnection::connect(&format!("{base_url}/postgres"))
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&mut admin_db)
        .await?;
    let db_url = format!("{base_url}/{db_name}");
    let topic = format!("sap-sync-bench-{id}");
    create_topic(&args.brokers, &topic).await?;
    let dir = std::env::temp_dir().join(format!("sap-sync-bench-{id}"));
    std::fs::create_dir_all(&dir)?;
    progress(format!(
        "sap-sync bench: {} orders per side, {} rounds, concurrency {}, then {} orders/s for {:?}; \
         database {db_name}, topic {topic}, logs in {}",
        args.orders,
        args.rounds,
        args.concurrency,
        args.rate,
        args.duration,
        dir.display()
    ));

    let outcome = measure(&args, &dir, &db_url, &topic).await;

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
    )))
    .execute(&mut admin_db)
    .await
    .ok();
    delete_topics(
        &args.brokers,
        &[topic.clone(), sap_sync::book::state_topic(&topic)],
    )
    .await;
    let report = outcome?;
    let _ = std::fs::remove_dir_all(&dir);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json(&args))?);
    } else {
        report.print(&args);
    }
    if !report.checks.passed() {
        bail!("checks failed: {}", report.checks.describe());
    }
    Ok(())
}

/// Everything one run measured.
struct Report {
    rounds: Vec<Round>,
    lag: Option<LagPhase>,
    checks: Checks,
}

struct Round {
    peer_first: bool,
    peer: PeerSide,
    sync: SyncSide,
}

struct PeerSide {
    creates: usize,
    errors: u64,
    /// From the first order the emulator stored to the last (its own timestamps).
    window: Duration,
}

impl PeerSide {
    fn rate(&self) -> f64 {
        store_rate(self.creates as u64, self.window)
    }
}

/// Orders per second stored over `window`, the first order to the last: the first opens the
/// window, so `n - 1` orders were stored in it.
fn store_rate(n: u64, window: Duration) -> f64 {
    n.saturating_sub(1) as f64 / window.as_secs_f64().max(1e-3)
}

struct SyncSide {
    orders: usize,
    /// From the spawn of sap-sync to the first order in the emulator.
    startup: Duration,
    /// From the first order in the emulator to the last (the emulator's own timestamps).
    window: Duration,
    /// From the first order in the emulator until every event of the round was handled.
    drained: Duration,
    /// Events sap-sync handled in the round, by outcome.
    outcomes: Vec<(String, f64)>,
    /// SAP calls in the round, by call.
    calls: Vec<(String, f64)>,
}

impl SyncSide {
    fn rate(&self) -> f64 {
        store_rate(self.orders as u64, self.window)
    }
    fn drained_rate(&self) -> f64 {
        self.orders as f64 / self.drained.as_secs_f64().max(1e-9)
    }
}

struct LagPhase {
    offered: u64,
    acknowledged: u64,
    errors: u64,
    sending: Duration,
    /// sap-sync's `sap_sync_event_age_seconds`: p50, p99 (seconds) and count.
    event_age: Option<(f64, f64, u64)>,
    /// The independent measure: created_at to found in the emulator, milliseconds, sorted.
    sampled_ms: Vec<f64>,
    missing_samples: u64,
}

#[derive(Default)]
struct Checks {
    orders_in_service: i64,
    orders_in_sap: u64,
    peer_acknowledged: u64,
    peer_in_sap: u64,
    parked: Option<u64>,
}

impl Checks {
    fn passed(&self) -> bool {
        self.orders_in_sap as i64 == self.orders_in_service
            && self.peer_in_sap == self.peer_acknowledged
            && self.parked == Some(0)
    }

    fn describe(&self) -> String {
        format!(
            "emulator (sap-sync) {} orders for {} in the order service; emulator (peer) {} for {} \
             acknowledged deep inserts; sap-sync parked {}",
            self.orders_in_sap,
            self.orders_in_service,
            self.peer_in_sap,
            self.peer_acknowledged,
            self.parked
                .map_or_else(|| "unknown".to_owned(), |p| p.to_string())
        )
    }
}

/// The processes and clients of one run.
struct Bench<'a> {
    args: &'a Args,
    dir: &'a Path,
    topic: &'a str,
    group: String,
    db: sqlx::PgConnection,
    http: reqwest::Client,
    peer_sap: Emulator,
    sync_sap: Emulator,
    orders_port: u16,
    _order_service: Process,
}

async fn measure(args: &Args, dir: &Path, db_url: &str, topic: &str) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let peer_sap = Emulator::start(dir, "peer", &http).await?;
    let sync_sap = Emulator::start(dir, "sync", &http).await?;
    let orders_port = infra::free_port()?;
    let mut command = Command::new(infra::sibling_binary("order-service")?);
    command
        .env("DATABASE_URL", db_url)
        .env("ORDER_SERVICE_HOST", "127.0.0.1")
        .env("ORDER_SERVICE_PORT", orders_port.to_string())
        .env("KAFKA_BROKERS", &args.brokers)
        .env("KAFKA_TOPIC", topic)
        .env("OUTBOX_RELAY_ENABLED", "true")
        .env("RUST_LOG", "warn")
        .env_remove("DB_POOL_SIZE");
    let order_service = Process::spawn("order-service", command, &dir.join("order-service.log"))?;
    wait_ok(
        &http,
        &format!("http://127.0.0.1:{orders_port}/ready"),
        "order-service ready",
    )
    .await?;
    let mut bench = Bench {
        args,
        dir,
        topic,
        group: format!("sap-sync-bench-{}", uuid::Uuid::new_v4().simple()),
        db: sqlx::PgConnection::connect(db_url).await?,
        http,
        peer_sap,
        sync_sap,
        orders_port,
        _order_service: order_service,
    };

    let mut rounds = Vec::new();
    let mut peer_acknowledged = 0u64;
    for r in 0..args.rounds.max(1) {
        let peer_first = r % 2 == 0;
        let first_number = PEER_FIRST_NUMBER + (r * args.orders) as u64;
        let (peer, sync) = if peer_first {
            let peer = bench.peer_side(first_number).await?;
            (peer, bench.sync_side(r).await?)
        } else {
            let sync = bench.sync_side(r).await?;
            (bench.peer_side(first_number).await?, sync)
        };
        peer_acknowledged += peer.creates as u64;
        progress(format!(
            "round {}: emulator {:.0} creates/s, sap-sync {:.0} orders/s, ratio {:.2}",
            r + 1,
            peer.rate(),
            sync.rate(),
            sync.rate() / peer.rate()
        ));
        rounds.push(Round {
            peer_first,
            peer,
            sync,
        });
    }
    let (lag, parked) = bench.lag_phase().await?;
    let orders_in_service: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut bench.db)
        .await?;
    let checks = Checks {
        orders_in_service,
        orders_in_sap: bench.sync_sap.stored(&bench.http).await?,
        peer_acknowledged,
        peer_in_sap: bench.peer_sap.stored(&bench.http).await?,
        parked,
    };
    Ok(Report {
        rounds,
        lag,
        checks,
    })
}

impl Bench<'_> {
    fn orders_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.orders_port)
    }

    /// The emulator's own capacity: deep inserts straight to it.
    async fn peer_side(&self, first_number: u64) -> anyhow::Result<PeerSide> {
        let n = self.args.orders;
        let bodies: Arc<Vec<Bytes>> = Arc::new(
            (0..n)
                .map(|i| {
                    let order = order_json(&(first_number + i as u64).to_string());
                    Bytes::from(order_acl::order_to_deep_insert(&order).to_string())
                })
                .collect(),
        );
        let before = self.peer_sap.stored(&self.http).await?;
        progress(format!(
            "emulator: {n} deep inserts, {} workers",
            self.args.concurrency
        ));
        let authority = format!("127.0.0.1:{}", self.peer_sap.port);
        let next = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let created = Arc::new(AtomicUsize::new(0));
        let since = Utc::now() - chrono::Duration::milliseconds(1);
        let mut workers = Vec::new();
        for _ in 0..self.args.concurrency {
            let (authority, bodies, next, errors, created) = (
                authority.clone(),
                bodies.clone(),
                next.clone(),
                errors.clone(),
                created.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut worker = PeerWorker::new(authority);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    // A failed create is retried under the same number: an answer lost
                    // after the commit ends as "already exists", which counts as created.
                    let mut attempts = 0;
                    loop {
                        match worker.create(body.clone()).await {
                            Ok(()) => {
                                created.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(_) if attempts < 5 => {
                                attempts += 1;
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            }));
        }
        for w in workers {
            w.await?;
        }
        let creates = created.load(Ordering::Relaxed);
        let after = self.peer_sap.stored(&self.http).await?;
        if after - before != creates as u64 {
            bail!(
                "the peer's emulator stored {} orders for {creates} acknowledged deep inserts",
                after - before
            );
        }
        let (first, last, in_window) = self.peer_sap.store_window(&self.http, since).await?;
        if in_window != creates as u64 {
            bail!(
                "the peer's emulator shows {in_window} orders since the round began, not {creates}"
            );
        }
        let text = get_text(&self.http, &format!("{}/metrics", self.peer_sap.url)).await?;
        server_report("peer's emulator", &text);
        Ok(PeerSide {
            creates,
            errors: errors.load(Ordering::Relaxed),
            window: (last - first).to_std().unwrap_or_default(),
        })
    }

    /// sap-sync's rate over a backlog of `orders` orders waiting on Kafka.
    async fn sync_side(&mut self, round: usize) -> anyhow::Result<SyncSide> {
        let n = self.args.orders;
        let events_before = self.events_written().await?;
        progress(format!(
            "sap-sync: {n} orders into the order service while sap-sync is stopped"
        ));
        let created = create_orders(&format!("127.0.0.1:{}", self.orders_port), n).await?;
        if created != n {
            bail!("the order service acknowledged {created} of {n} creates");
        }
        self.wait_published().await?;
        let events = self.events_written().await? - events_before;
        let base = self.sync_sap.stored(&self.http).await?;
        progress(format!(
            "sap-sync: {events} events wait on Kafka; starting sap-sync"
        ));
        let spawned = Instant::now();
        let since = Utc::now() - chrono::Duration::milliseconds(1);
        let sync = self.start_sync(round)?;
        // Polled gently: the rate comes from the emulator's own timestamps afterwards, so the
        // poll only has to notice the end.
        loop {
            let stored = self.sync_sap.stored(&self.http).await? - base;
            if stored >= n as u64 {
                break;
            }
            if spawned.elapsed() > STEP_TIMEOUT {
                bail!("sap-sync stored {stored} of {n} orders in {STEP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.wait_handled(&sync, events_before).await?;
        let handled_at = Utc::now();
        let (first, last, in_window) = self.sync_sap.store_window(&self.http, since).await?;
        if in_window != n as u64 {
            bail!("the emulator shows {in_window} orders since sap-sync started, not {n}");
        }
        let drained = (handled_at - first).to_std().unwrap_or_default();
        let metrics = sync.metrics(&self.http).await?;
        drop(sync);
        let sums = labelled(&metrics, "sap_sync_stage_duration_seconds_sum", "stage");
        let counts = labelled(&metrics, "sap_sync_stage_duration_seconds_count", "stage");
        for (stage, sum) in &sums {
            if let Some((_, n)) = counts.iter().find(|(s, _)| s == stage)
                && *n > 0.0
            {
                progress(format!(
                    "  sap-sync worker stage {stage}: {n:.0} times, mean {:.2} ms, {sum:.1} s in all",
                    sum / n * 1000.0
                ));
            }
        }
        for (who, url) in [
            ("order-service", self.orders_url()),
            ("emulator", self.sync_sap.url.clone()),
        ] {
            let text = get_text(&self.http, &format!("{url}/metrics")).await?;
            server_report(who, &text);
        }
        Ok(SyncSide {
            orders: n,
            startup: (first - since).to_std().unwrap_or_default(),
            window: (last - first).to_std().unwrap_or_default(),
            drained,
            outcomes: labelled(&metrics, "sap_sync_events_total", "outcome"),
            calls: labelled(&metrics, "sap_sync_sap_calls_total", "call"),
        })
    }

    /// sap-sync running, orders at a steady rate; the lag, and sap-sync's parked count at the
    /// end.
    async fn lag_phase(&mut self) -> anyhow::Result<(Option<LagPhase>, Option<u64>)> {
        let events_before = self.events_written().await?;
        let sync = self.start_sync(self.args.rounds.max(1))?;
        wait_ok(&self.http, &format!("{}/ready", sync.url), "sap-sync ready").await?;
        if self.args.duration.is_zero() {
            let parked = sync.parked(&self.http).await?;
            return Ok((None, Some(parked)));
        }
        let total = (self.args.rate as f64 * self.args.duration.as_secs_f64()).round() as u64;
        progress(format!(
            "lag: {} orders/s for {:?} ({total} orders), every {}th followed into the emulator",
            self.args.rate, self.args.duration, self.args.sample_every
        ));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()?;
        let body = Bytes::from(order_service_body().to_string());
        let orders_url = format!("{}/api/v1/orders", self.orders_url());
        let sap_url = self.sync_sap.url.clone();
        let acknowledged = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let missing = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / self.args.rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        for i in 0..total {
            tick.tick().await;
            let sampled = (i as usize).is_multiple_of(self.args.sample_every);
            let (client, body, orders_url, sap_url) = (
                client.clone(),
                body.clone(),
                orders_url.clone(),
                sap_url.clone(),
            );
            let (acknowledged, errors, missing, samples) = (
                acknowledged.clone(),
                errors.clone(),
                missing.clone(),
                samples.clone(),
            );
            tasks.spawn(async move {
                let created = client
                    .post(&orders_url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let order: Value = match created {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        r.json().await.unwrap_or(Value::Null)
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                acknowledged.fetch_add(1, Ordering::Relaxed);
                if !sampled {
                    return;
                }
                let number = order["order_number"].as_str().unwrap_or_default();
                let created_at = order["created_at"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let Some(created_at) = created_at else {
                    missing.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match arrival(&client, &sap_url, number).await {
                    Some(at) => samples
                        .lock()
                        .expect("samples")
                        .push((at - created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0),
                    None => {
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let sending = start.elapsed();
        while tasks.join_next().await.is_some() {}
        self.wait_handled(&sync, events_before).await?;
        let metrics = sync.metrics(&self.http).await?;
        let parked = sync.parked(&self.http).await?;
        drop(sync);
        let mut sampled_ms = std::mem::take(&mut *samples.lock().expect("samples"));
        sampled_ms.sort_by(f64::total_cmp);
        Ok((
            Some(LagPhase {
                offered: total,
                acknowledged: acknowledged.load(Ordering::Relaxed),
                errors: errors.load(Ordering::Relaxed),
                sending,
                event_age: event_age(&metrics),
                sampled_ms,
                missing_samples: missing.load(Ordering::Relaxed),
            }),
            Some(parked),
        ))
    }

    fn start_sync(&self, index: usize) -> anyhow::Result<SapSyncProcess> {
        let port = infra::free_port()?;
        let mut command = Command::new(infra::sibling_binary("sap-sync")?);
        command
            .env("KAFKA_BROKERS", &self.args.brokers)
            .env("KAFKA_TOPIC", self.topic)
            .env("SAP_SYNC_GROUP", &self.group)
            .env("SAP_URL", &self.sync_sap.url)
            .env("ORDER_SERVICE_URL", self.orders_url())
            .env("SAP_SYNC_BIND", "127.0.0.1")
            .env("SAP_SYNC_PORT", port.to_string())
            .env("SAP_SYNC_CONCURRENCY", self.args.concurrency.to_string())
            .env("RUST_LOG", "warn");
        let process = Process::spawn(
            "sap-sync",
            command,
            &self.dir.join(format!("sap-sync-{index}.log")),
        )?;
        Ok(SapSyncProcess {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Events the order service wrote so far (published or not).
    async fn events_written(&mut self) -> anyhow::Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&mut self.db)
            .await?;
        Ok(n as u64)
    }

    /// Waits until the relay has published every event written so far.
    async fn wait_published(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
                .fetch_one(&mut self.db)
                .await?;
            if pending == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{pending} events still unpublished after {STEP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `sync` has handled every event written since `events_before` (its own link
    /// events included), with nothing left to publish.
    async fn wait_handled(
        &mut self,
        sync: &SapSyncProcess,
        events_before: u64,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let metrics = sync.metrics(&self.http).await.unwrap_or_default();
            let handled: f64 = labelled(&metrics, "sap_sync_events_total", "outcome")
                .iter()
                .map(|(_, v)| v)
                .sum();
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending")
                .fetch_one(&mut self.db)
                .await?;
            let written = self.events_written().await? - events_before;
            if pending == 0 && handled as u64 >= written {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("sap-sync handled {handled} of {written} events in {STEP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One closed-loop worker of the peer: one connection, one CSRF session, reused.
struct PeerWorker {
    connection: Reconnecting,
    session: Option<(String, String)>,
}

impl PeerWorker {
    fn new(authority: String) -> Self {
        Self {
            connection: Reconnecting::new(authority),
            session: None,
        }
    }

    async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<http::Response<Bytes>> {
        let mut all = vec![("accept", "application/json")];
        all.extend_from_slice(headers);
        self.connection
            .send(method, &format!("{ODATA_ROOT}{path}"), &all, body)
            .await
    }

    async fn create(&mut self, body: Bytes) -> anyhow::Result<()> {
        if self.session.is_none() {
            let r = self
                .send(
                    http::Method::HEAD,
                    "/A_SalesOrder",
                    &[("x-csrf-token", "Fetch")],
                    Bytes::new(),
                )
                .await?;
            let (token, cookies) = sap_odata::csrf_session(r.headers());
            self.session = Some((token.unwrap_or_default(), cookies));
        }
        let (token, cookies) = self.session.clone().unwrap_or_default();
        let r = self
            .send(
                http::Method::POST,
                "/A_SalesOrder",
                &[
                    ("x-csrf-token", &token),
                    ("cookie", &cookies),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await?;
        match r.status() {
            http::StatusCode::CREATED => Ok(()),
            http::StatusCode::FORBIDDEN => {
                self.session = None;
                bail!("CSRF token refused")
            }
            s if String::from_utf8_lossy(r.body()).contains("already exists") => {
                // A retry of a create whose answer was lost.
                let _ = s;
                Ok(())
            }
            s => bail!("create answered {s}"),
        }
    }
}

/// Creates `n` orders through the order service from [`BACKLOG_CLIENTS`] connections; the
/// count acknowledged.
async fn create_orders(authority: &str, n: usize) -> anyhow::Result<usize> {
    let body = Bytes::from(order_service_body().to_string());
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..BACKLOG_CLIENTS.min(n) {
        let (authority, body, next) = (authority.to_owned(), body.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let mut connection: Option<Connection> = None;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if connection.is_none() {
                    connection = Connection::open(&authority).await.ok();
                }
                let Some(c) = connection.as_mut() else {
                    continue;
                };
                let req = http::Request::builder()
                    .method(http::Method::POST)
                    .uri("/api/v1/orders")
                    .header(http::header::HOST, &authority)
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()));
                let Ok(req) = req else { continue };
                match c.request(req).await {
                    Ok(r) if r.status() == http::StatusCode::CREATED => ok += 1,
                    Ok(_) => {}
                    Err(_) => connection = None,
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for w in workers {
        ok += w.await?;
    }
    Ok(ok)
}

/// When `number` is first found in the emulator (read every 5 ms, for at most a minute).
async fn arrival(client: &reqwest::Client, sap_url: &str, number: &str) -> Option<DateTime<Utc>> {
    let url = format!("{sap_url}{ODATA_ROOT}/A_SalesOrder('{number}')?$select=SalesOrder");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
        {
            let found = r.status() == reqwest::StatusCode::OK;
            let _ = r.bytes().await;
            if found {
                return Some(Utc::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// The order the benchmark creates in the order service (two items, as in sap-sync's tests).
fn order_service_body() -> Value {
    json!({
        "customer_id": "17100001", "currency": "EUR", "customer_reference": "BENCH",
        "order_type": "OR", "sales_organization": "1010", "distribution_channel": "10",
        "division": "00",
        "items": [
            {"sku": "TG11", "quantity": "2", "unit": "PC", "unit_price": "12.50"},
            {"sku": "TG12", "quantity": "1", "unit": "PC", "unit_price": "9.00"}
        ]
    })
}

/// The same order as the order service hands it to sap-sync (an event's `data`), numbered
/// `number`: the peer's deep insert is built from it exactly as sap-sync builds its own.
fn order_json(number: &str) -> Value {
    json!({
        "order_number": number, "status": "created", "version": 1,
        "customer_id": "17100001", "currency": "EUR", "customer_reference": "BENCH",
        "order_type": "OR", "sales_organization": "1010", "distribution_channel": "10",
        "division": "00", "requested_delivery_date": null, "sap_order_number": null,
        "specifications": {},
        "items": [
            {"item_number": 10, "sku": "TG11", "quantity": "2", "unit": "PC",
             "unit_price": "12.50", "rejection_reason": null, "specifications": {}},
            {"item_number": 20, "sku": "TG12", "quantity": "1", "unit": "PC",
             "unit_price": "9.00", "rejection_reason": null, "specifications": {}}
        ]
    })
}

/// Values of `name` in a Prometheus text, summed by the value of `label`.
fn labelled(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let key = format!("{label}=\"");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('{') {
            continue;
        }
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some(v) = labels
            .split_once(&key)
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(v, _)| v.to_owned())
        else {
            continue;
        };
        match out.iter_mut().find(|(k, _)| *k == v) {
            Some(e) => e.1 += value,
            None => out.push((v, value)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// p50, p99 (seconds) and count of `sap_sync_event_age_seconds`: the quantiles as rendered
/// when it is a summary, interpolated in its buckets when it is a histogram.
fn event_age(text: &str) -> Option<(f64, f64, u64)> {
    const NAME: &str = "sap_sync_event_age_seconds";
    let value_of = |line: &str| {
        line.rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok())
    };
    let count = text
        .lines()
        .find(|l| l.starts_with(&format!("{NAME}_count")))
        .and_then(value_of)? as u64;
    let quantile = |q: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{NAME}{{quantile=\"{q}\"}}")))
            .and_then(value_of)
    };
    if let (Some(p50), Some(p99)) = (quantile("0.5"), quantile("0.99")) {
        return Some((p50, p99, count));
    }
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{NAME}_bucket{{le=\""))?;
            let (le, _) = rest.split_once('"')?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value_of(l)?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |q: f64| -> Option<f64> {
        let target = q * count as f64;
        let mut below = (0.0, 0.0);
        for &(le, cumulative) in &buckets {
            if cumulative >= target {
                if le.is_infinite() {
                    // Beyond the top bucket: all that is known is that it is larger.
                    return Some(f64::INFINITY);
                }
                let span = cumulative - below.1;
                let share = if span > 0.0 {
                    (target - below.1) / span
                } else {
                    1.0
                };
                return Some(below.0 + (le - below.0) * share);
            }
            below = (le, cumulative);
        }
        None
    };
    Some((at(0.5)?, at(0.99)?, count))
}

async fn get_text(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(http.get(url).send().await?.text().await?)
}

/// Prints a service's own request times, and an emulator's creates per group commit (the
/// flush its concurrent creates share), from its `/metrics` text.
fn server_report(who: &str, text: &str) {
    for (labels, count, mean_ms) in server_times(text) {
        progress(format!(
            "  {who} {labels}: {count:.0} requests, mean {mean_ms:.2} ms (since start)"
        ));
    }
    if let Some((batches, per, commit_ms)) = batching(text) {
        progress(format!(
            "  {who}: {batches:.0} group commits, {per:.1} creates and {commit_ms:.2} ms of commit (flush) each (since start)"
        ));
    }
}

/// The emulator's group commits: how many, creates per commit, and the mean commit (flush) time
/// in ms, from its counters (`None` before any commit).
fn batching(text: &str) -> Option<(f64, f64, f64)> {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    let batches = value("sap_mock_create_batches_total")?;
    let creates = value("sap_mock_create_batched_total")?;
    let micros = value("sap_mock_create_commit_micros_total").unwrap_or(0.0);
    (batches > 0.0).then(|| (batches, creates / batches, micros / batches / 1000.0))
}

/// Requests and mean server time per label set of `http_request_duration_seconds`.
fn server_times(text: &str) -> Vec<(String, f64, f64)> {
    let series = |suffix: &str| -> Vec<(String, f64)> {
        let prefix = format!("http_request_duration_seconds_{suffix}{{");
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (labels, value) = rest.rsplit_once("} ")?;
                Some((labels.to_owned(), value.parse().ok()?))
            })
            .collect()
    };
    let sums = series("sum");
    series("count")
        .into_iter()
        .filter(|(_, n)| *n > 0.0)
        .map(|(labels, n)| {
            let sum = sums
                .iter()
                .find(|(l, _)| *l == labels)
                .map_or(0.0, |(_, s)| *s);
            (labels, n, sum / n * 1000.0)
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

impl Report {
    fn ratio(&self) -> f64 {
        mean(self.rounds.iter().map(|r| r.sync.rate()))
            / mean(self.rounds.iter().map(|r| r.peer.rate()))
    }

    fn print(&self, args: &Args) {
        println!();
        println!(
            "sap-sync bench: {} orders per side per round, concurrency {}",
            args.orders, args.concurrency
        );
        println!();
        println!(
            "| round | first | emulator creates/s | errors | sap-sync orders/s | ratio | sap-sync start-up s | drained incl. link events, orders/s |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|");
        for (i, r) in self.rounds.iter().enumerate() {
            println!(
                "| {} | {} | {:.0} | {} | {:.0} | {:.2} | {:.2} | {:.0} |",
                i + 1,
                if r.peer_first { "emulator" } else { "sap-sync" },
                r.peer.rate(),
                r.peer.errors,
                r.sync.rate(),
                r.sync.rate() / r.peer.rate(),
                r.sync.startup.as_secs_f64(),
                r.sync.drained_rate()
            );
        }
        let ratio = self.ratio();
        println!();
        println!(
            "mean: emulator {:.0} creates/s, sap-sync {:.0} orders/s; ratio sap-sync / emulator = \
             {ratio:.2} (goal >= 0.80: {})",
            mean(self.rounds.iter().map(|r| r.peer.rate())),
            mean(self.rounds.iter().map(|r| r.sync.rate())),
            if ratio >= 0.8 { "met" } else { "not met" }
        );
        if let Some(last) = self.rounds.last() {
            let show = |v: &[(String, f64)]| {
                v.iter()
                    .map(|(k, n)| format!("{k} {n:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "sap-sync, last round: events {}; SAP calls {}",
                show(&last.sync.outcomes),
                show(&last.sync.calls)
            );
        }
        if let Some(l) = &self.lag {
            println!();
            println!(
                "lag at {} orders/s offered for {:?}: {} of {} created ({:.0}/s achieved), {} errors",
                args.rate,
                args.duration,
                l.acknowledged,
                l.offered,
                l.acknowledged as f64 / l.sending.as_secs_f64(),
                l.errors
            );
            println!();
            println!("| measure | p50 ms | p99 ms | samples |");
            println!("|---|---:|---:|---:|");
            if let Some((p50, p99, n)) = l.event_age {
                println!(
                    "| sap-sync `sap_sync_event_age_seconds` | {} | {} | {n} |",
                    ms_or_beyond(p50),
                    ms_or_beyond(p99)
                );
            }
            println!(
                "| created_at to found in the emulator (polled every 5 ms) | {:.1} | {:.1} | {} |",
                percentile(&l.sampled_ms, 0.5),
                percentile(&l.sampled_ms, 0.99),
                l.sampled_ms.len()
            );
            let p99 =
                percentile(&l.sampled_ms, 0.99).max(l.event_age.map_or(0.0, |a| a.1 * 1000.0));
            println!();
            println!(
                "lag p99 goal < 1000 ms: {}{}",
                if p99 < 1000.0 { "met" } else { "not met" },
                if l.missing_samples > 0 {
                    format!(" ({} samples never found)", l.missing_samples)
                } else {
                    String::new()
                }
            );
        }
        println!();
        println!(
            "checks: {} ({})",
            if self.checks.passed() {
                "passed"
            } else {
                "FAILED"
            },
            self.checks.describe()
        );
    }

    fn to_json(&self, args: &Args) -> Value {
        let rounds: Vec<Value> = self
            .rounds
            .iter()
            .map(|r| {
                json!({
                    "first": if r.peer_first { "emulator" } else { "sap-sync" },
                    "emulator_creates_per_s": r.peer.rate(),
                    "emulator_errors": r.peer.errors,
                    "sap_sync_orders_per_s": r.sync.rate(),
                    "ratio": r.sync.rate() / r.peer.rate(),
                    "sap_sync_startup_s": r.sync.startup.as_secs_f64(),
                    "sap_sync_drained_orders_per_s": r.sync.drained_rate(),
                    "sap_sync_events": as_object(&r.sync.outcomes),
                    "sap_calls": as_object(&r.sync.calls),
                })
            })
            .collect();
        let lag = self.lag.as_ref().map(|l| {
            json!({
                "rate_offered": args.rate,
                "duration_s": args.duration.as_secs_f64(),
                "orders_offered": l.offered,
                "orders_acknowledged": l.acknowledged,
                "errors": l.errors,
                "rate_achieved": l.acknowledged as f64 / l.sending.as_secs_f64(),
                "event_age_p50_ms": l.event_age.map(|a| a.0 * 1000.0),
                "event_age_p99_ms": l.event_age.map(|a| a.1 * 1000.0),
                "event_age_count": l.event_age.map(|a| a.2),
                "sampled_p50_ms": percentile(&l.sampled_ms, 0.5),
                "sampled_p99_ms": percentile(&l.sampled_ms, 0.99),
                "samples": l.sampled_ms.len(),
                "samples_missing": l.missing_samples,
            })
        });
        json!({
            "orders_per_round": args.orders,
            "concurrency": args.concurrency,
            "rounds": rounds,
            "ratio": self.ratio(),
            "ratio_goal_met": self.ratio() >= 0.8,
            "lag": lag,
            "checks": {
                "passed": self.checks.passed(),
                "orders_in_service": self.checks.orders_in_service,
                "orders_in_sap": self.checks.orders_in_sap,
                "peer_acknowledged": self.checks.peer_acknowledged,
                "peer_in_sap": self.checks.peer_in_sap,
                "parked": self.checks.parked,
            },
        })
    }
}

/// Seconds as milliseconds, or "beyond the top bucket" when a histogram cannot tell.
fn ms_or_beyond(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{:.1}", seconds * 1000.0)
    } else {
        "> top bucket (30 000)".to_owned()
    }
}

fn as_object(pairs: &[(String, f64)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

pub(crate) fn progress(line: String) {
    eprintln!("{line}");
}

/// A child process, stopped (SIGTERM, then SIGKILL after 20 s) when dropped.
pub(crate) struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log)?;
        let child = command
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop after SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An emulator with a data folder of its own.
struct Emulator {
    _process: Process,
    port: u16,
    url: String,
}

impl Emulator {
    async fn start(dir: &Path, name: &str, http: &reqwest::Client) -> anyhow::Result<Self> {
        let port = infra::free_port()?;
        let data: PathBuf = dir.join(format!("sap-mock-{name}"));
        let mut command = Command::new(infra::sibling_binary("sap-mock")?);
        command
            .env("SAP_MOCK_BIND", "127.0.0.1")
            .env("SAP_MOCK_PORT", port.to_string())
            .env("SAP_MOCK_DATA_DIR", &data)
            .env("RUST_LOG", "warn");
        let process = Process::spawn(
            "sap-mock",
            command,
            &dir.join(format!("sap-mock-{name}.log")),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ok(http, &format!("{url}/sap-mock/health"), "sap-mock healthy").await?;
        Ok(Self {
            _process: process,
            port,
            url,
        })
    }

    /// When the emulator stored the first and the last order changed at or after `since`, by
    /// its own `LastChangeDateTime` (no order is changed after its create in a round), and how
    /// many such orders it holds. Read after the round, so measuring never loads the emulator
    /// while it works.
    async fn store_window(
        &self,
        http: &reqwest::Client,
        since: DateTime<Utc>,
    ) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>, u64)> {
        let filter = format!(
            "LastChangeDateTime%20ge%20datetimeoffset'{}'",
            since.format("%Y-%m-%dT%H:%M:%S%.3fZ")
        );
        let edge = |order: &'static str| {
            let url = format!(
                "{}{ODATA_ROOT}/A_SalesOrder?$filter={filter}&$orderby=LastChangeDateTime%20{order}&$top=1&$select=LastChangeDateTime",
                self.url
            );
            async move {
                let v: Value = http
                    .get(&url)
                    .header("accept", "application/json")
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let first = &v["d"]["results"][0];
                sap_sync::backward::last_change(first)
                    .with_context(|| format!("no LastChangeDateTime in {v}"))
            }
        };
        let first = edge("asc").await?;
        let last = edge("desc").await?;
        let count: u64 = get_text(
            http,
            &format!(
                "{}{ODATA_ROOT}/A_SalesOrder/$count?$filter={filter}",
                self.url
            ),
        )
        .await?
        .trim()
        .parse()
        .context("the emulator's $count")?;
        Ok((first, last, count))
    }

    /// Orders the emulator stores.
    async fn stored(&self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let v: Value = http
            .get(format!("{}/sap-mock/admin/stats", self.url))
            .send()
            .await?
            .json()
            .await?;
        v["orders"]
            .as_u64()
            .context("no order count in admin/stats")
    }
}

/// A running sap-sync, stopped when dropped (it commits its offsets on SIGTERM).
struct SapSyncProcess {
    _process: Process,
    url: String,
}

impl SapSyncProcess {
    async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        Ok(http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?)
    }

    async fn parked(&self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let v: Value = http
            .get(format!("{}/status", self.url))
            .send()
            .await?
            .json()
            .await?;
        v["parked_orders"]
            .as_u64()
            .context("no parked_orders in sap-sync's /status")
    }
}

pub(crate) async fn wait_ok(http: &reqwest::Client, url: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: no answer at {url}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The PostgreSQL server's base URL (without the database). The project script is run only
/// when nothing answers, so a running server is never touched.
pub(crate) async fn ensure_postgres(root: &Path, given: Option<&str>) -> anyhow::Result<String> {
    let url = match given {
        Some(u) => u.to_owned(),
        None => infra::script(root, "postgres.sh", &["url"])?,
    };
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(b, _)| b)
        .to_owned();
    let admin = format!("{base}/postgres");
    if sqlx::PgConnection::connect(&admin).await.is_err() {
        progress("PostgreSQL does not answer; scripts/postgres.sh start".into());
        infra::script(root, "postgres.sh", &["start"])?;
    }
    Ok(base)
}

/// Makes sure Kafka answers at `brokers`; runs `scripts/kafka.sh start` only when it does not.
async fn ensure_kafka(root: &Path, brokers: &str) -> anyhow::Result<()> {
    let answers = {
        let brokers = brokers.to_owned();
        tokio::task::spawn_blocking(move || -> bool {
            let consumer: Result<BaseConsumer, _> = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create();
            consumer.is_ok_and(|c| c.fetch_metadata(None, Duration::from_secs(5)).is_ok())
        })
        .await?
    };
    if !answers {
        progress(format!(
            "Kafka does not answer at {brokers}; scripts/kafka.sh start"
        ));
        infra::script(root, "kafka.sh", &["start"])?;
    }
    Ok(())
}

async fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for r in results {
        if let Err((t, e)) = r {
            bail!("creating topic {t}: {e}");
        }
    }
    Ok(())
}

async fn delete_topics(brokers: &str, topics: &[String]) {
    let admin: Result<AdminClient<DefaultClientContext>, _> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create();
    if let Ok(admin) = admin {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_age_reads_summaries_and_interpolates_histograms() {
        let summary = "sap_sync_event_age_seconds{quantile=\"0.5\"} 0.02\n\
                       sap_sync_event_age_seconds{quantile=\"0.99\"} 0.3\n\
                       sap_sync_event_age_seconds_sum 4\nsap_sync_event_age_seconds_count 100\n";
        assert_eq!(event_age(summary), Some((0.02, 0.3, 100)));
        let histogram = "sap_sync_event_age_seconds_bucket{le=\"0.01\"} 0\n\
                         sap_sync_event_age_seconds_bucket{le=\"0.02\"} 50\n\
                         sap_sync_event_age_seconds_bucket{le=\"0.1\"} 90\n\
                         sap_sync_event_age_seconds_bucket{le=\"1\"} 100\n\
                         sap_sync_event_age_seconds_bucket{le=\"+Inf\"} 100\n\
                         sap_sync_event_age_seconds_sum 4\nsap_sync_event_age_seconds_count 100\n";
        let (p50, p99, n) = event_age(histogram).unwrap();
        assert!((p50 - 0.02).abs() < 1e-9, "{p50}");
        assert!((p99 - 0.91).abs() < 1e-9, "{p99}");
        let beyond = histogram.replace("le=\"1\"} 100", "le=\"1\"} 98");
        assert_eq!(event_age(&beyond).map(|a| a.1), Some(f64::INFINITY));
        assert_eq!(n, 100);
    }

    #[test]
    fn labelled_sums_by_one_label() {
        let text = "sap_sync_sap_calls_total{call=\"create\",outcome=\"ok\"} 10\n\
                    sap_sync_sap_calls_total{call=\"create\",outcome=\"refused\"} 2\n\
                    sap_sync_sap_calls_total{call=\"read\",outcome=\"ok\"} 5\n";
        assert_eq!(
            labelled(text, "sap_sync_sap_calls_total", "call"),
            vec![("create".to_owned(), 12.0), ("read".to_owned(), 5.0)]
        );
    }

    #[test]
    fn the_peer_sends_the_deep_insert_sap_sync_builds() {
        let body = order_acl::order_to_deep_insert(&order_json("9000000001"));
        assert_eq!(body["SalesOrder"], "9000000001");
        assert_eq!(body["to_Item"]["results"].as_array().map(Vec::len), Some(2));
    }
}
