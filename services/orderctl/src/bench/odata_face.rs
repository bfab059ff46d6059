//! `orderctl bench odata-face`: the SAP face a retired route serves by itself (the proxy, the
//! order service and PostgreSQL) against the SAP emulator answering the same OData reads.
//!
//! One run, on a fresh database and a fresh emulator data folder:
//!
//! 1. **Seed** `orders` orders into both systems under the same numbers: each order is created
//!    in the order service (`POST /api/v1/orders`, which draws its number from SAP's external
//!    range), and then in the emulator by the deep insert sap-sync would send for it
//!    (`order_acl::order_to_deep_insert`, naming that number in `SalesOrder`), by
//!    `seed_concurrency` workers. The orders look like a shop's: the emulator's ten demo
//!    customers, one to three lines of its trading goods, a `PurchaseOrderByCustomer` per order,
//!    and `SalesOrderDate` / `RequestedDeliveryDate` spread over a year. (`CreationDate` is the
//!    day the order was created on both sides, as in S/4, where it is not creatable: that is
//!    why the daily list filters on the delivery date.)
//! 2. **Check**: for `samples` requests of each kind, both sides must answer 200 with a
//!    non-empty answer, and the same order numbers (and `__count`, line counts).
//! 3. **Measure**, per request kind, `rounds` times (who goes first alternates), the same
//!    request sequence against (a) the proxy with `sales-orders` in mode `retired` and (b) the
//!    emulator directly, from `concurrency` closed-loop workers, each on one keep-alive
//!    connection, with basic authentication on every request as SAP's clients send it (both
//!    sides have a logon user):
//!    - `key-read`: `A_SalesOrder('<n>')?$expand=to_Item` over random existing numbers;
//!    - `filtered-list`: a customer's next deliveries from a date,
//!      `A_SalesOrder?$filter=SoldToParty eq '<c>' and RequestedDeliveryDate ge datetime'<d>'
//!      &$orderby=RequestedDeliveryDate,SalesOrder&$top=20&$select=...&$inlinecount=allpages`.
//!
//!    Requests/s, p50 and p99 of both sides and the ratio ours/peer (requests/s) are printed
//!    (goal: ≥ 1), with the order service's own mean time per search during our side's runs
//!    (the part of our latency spent behind the proxy).
//!
//! Progress goes to stderr, the report to stdout (a table, or JSON with `--json`). PostgreSQL
//! is used as it runs; Kafka is not needed (the outbox relay is off, the events wait in the
//! outbox of the bench's own database, which is dropped afterwards).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{Days, NaiveDate};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::Connection as _;

use super::sap_sync::{Process, ensure_postgres, progress, wait_ok};
use crate::infra;
use crate::load::Reconnecting;

/// The OData service both sides answer.
const ODATA_ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
/// The logon user of both sides.
const USER: &str = "BENCH";
/// The emulator's demo customers (`17100001` to `17100010`).
const CUSTOMERS: u64 = 10;
/// The emulator's demo trading goods and their prices (EUR per piece).
const MATERIALS: &[(&str, &str)] = &[
    ("TG10", "10.00"),
    ("TG11", "12.50"),
    ("TG12", "18.00"),
    ("TG13", "22.00"),
    ("TG14", "25.00"),
    ("TG15", "30.00"),
];
/// Days over which delivery dates are spread, from [`first_day`].
const DAYS: u64 = 365;
/// The latest delivery date a list starts from: lists are never empty (about a tenth of a
/// customer's orders lie after it).
const LAST_LIST_DAY: u64 = 330;
/// Properties the daily list selects.
const LIST_SELECT: &str = "SalesOrder,SoldToParty,PurchaseOrderByCustomer,SalesOrderDate,\
                           RequestedDeliveryDate,TotalNetAmount,TransactionCurrency";

/// Options of the benchmark.
#[derive(clap::Args)]
pub struct Args {
    /// Orders seeded into both systems (the same orders under the same numbers).
    #[arg(long, default_value_t = 100_000)]
    orders: usize,
    /// Measured time of each side, per request kind and round.
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Closed-loop workers of both sides (each on its own connection).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rounds (each measures both sides once per kind; who goes first alternates).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Warm-up of each side before its first measured run of a kind.
    #[arg(long, default_value = "2s", value_parser = crate::parse_duration)]
    warmup: Duration,
    /// Requests of each kind sent to both sides and compared before measuring.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Workers that seed the orders (each creates an order in the order service, then in the
    /// emulator).
    #[arg(long, default_value_t = 48)]
    seed_concurrency: usize,
    /// The PostgreSQL server (a URL to any database on it; the bench creates its own database);
    /// by default the project's cluster (`scripts/postgres.sh url`).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark and prints its report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.orders == 0 || args.concurrency == 0 || args.seed_concurrency == 0 {
        bail!("--orders, --concurrency and --seed-concurrency must be at least 1");
    }
    let root = infra::repo_root()?;
    let base_url = ensure_postgres(&root, args.database_url.as_deref()).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("bench_{id}");
    let mut admin_db = sqlx::PgConnection::connect(&format!("{base_url}/postgres"))
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
        .execute(&mut admin_db)
        .await?;
    let dir = std::env::temp_dir().join(format!("odata-face-bench-{id}"));
    std::fs::create_dir_all(&dir)?;
    progress(format!(
        "odata-face bench: {} orders, concurrency {}, {} rounds of {:?} per side and kind; \
         database {db_name}, logs in {}",
        args.orders,
        args.concurrency,
        args.rounds,
        args.duration,
        dir.display()
    ));

    let outcome = measure(&args, &dir, &format!("{base_url}/{db_name}")).await;

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
    )))
    .execute(&mut admin_db)
    .await
    .ok();
    let report = outcome?;
    let _ = std::fs::remove_dir_all(&dir);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json(&args))?);
    } else {
        report.print(&args);
    }
    Ok(())
}

/// The two request kinds measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KeyRead,
    FilteredList,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::KeyRead, Kind::FilteredList];

    fn name(self) -> &'static str {
        match self {
            Kind::KeyRead => "key-read",
            Kind::FilteredList => "filtered-list",
        }
    }

    /// The path and query of one request of this kind, drawn from `rng`.
    fn request(self, rng: &mut Rng, numbers: &[String]) -> String {
        match self {
            Kind::KeyRead => {
                let n = &numbers[rng.below(numbers.len() as u64) as usize];
                format!("{ODATA_ROOT}/A_SalesOrder('{n}')?$expand=to_Item")
            }
            Kind::FilteredList => {
                let customer = customer(rng.below(CUSTOMERS));
                let from = day(rng.below(LAST_LIST_DAY));
                format!(
                    "{ODATA_ROOT}/A_SalesOrder?$filter=SoldToParty%20eq%20'{customer}'%20and%20\
                     RequestedDeliveryDate%20ge%20datetime'{from}T00%3A00%3A00'\
                     &$orderby=RequestedDeliveryDate,SalesOrder&$top=20\
                     &$select={LIST_SELECT}&$inlinecount=allpages"
                )
            }
        }
    }

    /// What identifies the answer: the order numbers it names (and the count, lines).
    fn identity(self, body: &Value) -> anyhow::Result<String> {
        let d = &body["d"];
        match self {
            Kind::KeyRead => {
                let number = d["SalesOrder"].as_str().context("no SalesOrder")?;
                let lines = d["to_Item"]["results"]
                    .as_array()
                    .context("no to_Item results")?;
                if lines.is_empty() {
                    bail!("order {number} without lines");
                }
                let lines: Vec<&str> = lines
                    .iter()
                    .map(|l| l["SalesOrderItem"].as_str().unwrap_or("?"))
                    .collect();
                Ok(format!("{number} lines {}", lines.join(",")))
            }
            Kind::FilteredList => {
                let results = d["results"].as_array().context("no results")?;
                if results.is_empty() {
                    bail!("an empty list");
                }
                let numbers: Vec<&str> = results
                    .iter()
                    .map(|r| r["SalesOrder"].as_str().unwrap_or("?"))
                    .collect();
                let count = d["__count"].as_str().context("no __count")?;
                Ok(format!("count {count}: {}", numbers.join(",")))
            }
        }
    }

    /// A cheap check of a measured answer's body (the full comparison ran before).
    fn looks_served(self, body: &[u8]) -> bool {
        let needle: &[u8] = match self {
            Kind::KeyRead => b"\"to_Item\":{\"results\":[{",
            Kind::FilteredList => b"\"results\":[{",
        };
        body.windows(needle.len()).any(|w| w == needle)
    }
}

/// The two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Peer,
}

/// The processes of one run and what the bench needs to reach them.
struct Stack {
    proxy: String,
    emulator: String,
    orders: String,
    authorization: String,
    http: reqwest::Client,
    _processes: Vec<Process>,
}

impl Stack {
    fn authority(&self, side: Side) -> &str {
        match side {
            Side::Ours => &self.proxy,
            Side::Peer => &self.emulator,
        }
    }

    /// The order service's searches so far: (count, seconds).
    async fn searches(&self) -> anyhow::Result<(f64, f64)> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.orders))
            .send()
            .await?
            .text()
            .await?;
        Ok(search_time(&text))
    }
}

/// Starts the emulator, the order service and the proxy (route `sales-orders` retired).
async fn start(dir: &Path, db_url: &str) -> anyhow::Result<Stack> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let mut processes = Vec::new();

    let sap_port = infra::free_port()?;
    let mut command = Command::new(infra::sibling_binary("sap-mock")?);
    command
        .env("SAP_MOCK_BIND", "127.0.0.1")
        .env("SAP_MOCK_PORT", sap_port.to_string())
        .env("SAP_MOCK_DATA_DIR", dir.join("sap-mock"))
        .env("SAP_MOCK_USERS", format!("{USER}:{password}"))
        .env("RUST_LOG", "warn");
    processes.push(Process::spawn(
        "sap-mock",
        command,
        &dir.join("sap-mock.log"),
    )?);
    let emulator = format!("127.0.0.1:{sap_port}");
    wait_ok(
        &http,
        &format!("http://{emulator}/sap-mock/health"),
        "sap-mock healthy",
    )
    .await?;

    let orders_port = infra::free_port()?;
    let mut command = Command::new(infra::sibling_binary("order-service")?);
    command
        .env("DATABASE_URL", db_url)
        .env("ORDER_SERVICE_HOST", "127.0.0.1")
        .env("ORDER_SERVICE_PORT", orders_port.to_string())
        .env("OUTBOX_RELAY_ENABLED", "false")
        .env("RUST_LOG", "warn")
        .env_remove("DB_POOL_SIZE");
    processes.push(Process::spawn(
        "order-service",
        command,
        &dir.join("order-service.log"),
    )?);
    let orders = format!("127.0.0.1:{orders_port}");
    wait_ok(
        &http,
        &format!("http://{orders}/ready"),
        "order-service ready",
    )
    .await?;

    let users = dir.join("proxy-users");
    std::fs::write(
        &users,
        format!("{USER}:{}\n", crate::users::hash(&password)?),
    )?;
    let (proxy_port, admin_port) = (infra::free_port()?, infra::free_port()?);
    let mut command = Command::new(infra::sibling_binary("proxy")?);
    command
        .env("PROXY_BIND", "127.0.0.1")
        .env("PROXY_PORT", proxy_port.to_string())
        .env("PROXY_ADMIN_PORT", admin_port.to_string())
        // Reads of a retired route never reach SAP; the emulator stays its address.
        .env("SAP_URL", format!("http://{emulator}"))
        .env("ORDER_SERVICE_URL", format!("http://{orders}"))
        .env("ADMIN_TOKEN", uuid::Uuid::new_v4().simple().to_string())
        .env("PROXY_DATA_DIR", dir.join("proxy"))
        .env("PROXY_SALES_ORDERS_MODE", "retired")
        .env("PROXY_USERS_FILE", &users)
        .env("RUST_LOG", "warn");
    processes.push(Process::spawn("proxy", command, &dir.join("proxy.log"))?);
    let proxy = format!("127.0.0.1:{proxy_port}");
    wait_ok(
        &http,
        &format!("http://127.0.0.1:{admin_port}/health"),
        "proxy healthy",
    )
    .await?;
    Ok(Stack {
        proxy,
        emulator,
        orders,
        authorization: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
        ),
        http,
        _processes: processes,
    })
}

/// Everything one run measured.
struct Report {
    seeded: usize,
    seed_time: Duration,
    checked: usize,
    runs: Vec<Run>,
}

/// One measured run of one side and kind.
struct Run {
    kind: Kind,
    side: Side,
    round: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
    /// Ours only: the order service's searches during the run, and their mean time (ms).
    searches: Option<(f64, f64)>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

async fn measure(args: &Args, dir: &Path, db_url: &str) -> anyhow::Result<Report> {
    let stack = start(dir, db_url).await?;
    let started = Instant::now();
    let numbers = seed(&stack, args).await?;
    let seed_time = started.elapsed();
    progress(format!(
        "seeded {} orders into both systems in {:.1} s ({:.0} orders/s)",
        numbers.len(),
        seed_time.as_secs_f64(),
        numbers.len() as f64 / seed_time.as_secs_f64()
    ));
    // The tables as autovacuum leaves them in a running system: statistics taken and the
    // visibility map set (a count can then read an index alone). Measured on tables just
    // filled, before autovacuum came round, the plans depend on when it did.
    let vacuumed = Instant::now();
    let mut db = sqlx::PgConnection::connect(db_url)
        .await
        .context("connecting to the bench database")?;
    sqlx::raw_sql("VACUUM (ANALYZE) orders, order_items")
        .execute(&mut db)
        .await
        .context("VACUUM (ANALYZE) of the seeded tables")?;
    progress(format!(
        "VACUUM (ANALYZE) orders, order_items in {:.1} s",
        vacuumed.elapsed().as_secs_f64()
    ));
    let numbers = Arc::new(numbers);
    let checked = compare(&stack, &numbers, args.samples).await?;
    progress(format!(
        "{checked} sampled requests answered alike by both sides"
    ));

    let mut runs = Vec::new();
    for kind in Kind::ALL {
        for side in [Side::Ours, Side::Peer] {
            load(&stack, kind, side, args.warmup, args.concurrency, &numbers).await;
        }
        for round in 0..args.rounds.max(1) {
            let order = if round % 2 == 0 {
                [Side::Ours, Side::Peer]
            } else {
                [Side::Peer, Side::Ours]
            };
            for side in order {
                let before = stack.searches().await.ok();
                let mut run = load(
                    &stack,
                    kind,
                    side,
                    args.duration,
                    args.concurrency,
                    &numbers,
                )
                .await;
                run.round = round + 1;
                if side == Side::Ours
                    && let (Some(b), Ok(a)) = (before, stack.searches().await)
                {
                    let n = a.0 - b.0;
                    run.searches = Some((n, (a.1 - b.1) / n.max(1.0) * 1000.0));
                }
                progress(format!(
                    "{} round {}, {}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                    kind.name(),
                    run.round,
                    side_name(side),
                    run.rate(),
                    run.ms(0.5),
                    run.ms(0.99),
                    run.errors
                ));
                runs.push(run);
            }
        }
    }
    Ok(Report {
        seeded: numbers.len(),
        seed_time,
        checked,
        runs,
    })
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Ours => "proxy (retired)",
        Side::Peer => "emulator",
    }
}

/// Seeds `args.orders` orders into both systems; their numbers.
async fn seed(stack: &Stack, args: &Args) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.seed_concurrency.min(args.orders) {
        let (next, done) = (next.clone(), done.clone());
        let (orders, emulator) = (stack.orders.clone(), stack.emulator.clone());
        let authorization = stack.authorization.clone();
        let total = args.orders;
        workers.push(tokio::spawn(async move {
            let mut seeder = Seeder {
                orders: Reconnecting::new(orders),
                emulator: Reconnecting::new(emulator),
                authorization,
                session: None,
            };
            let mut numbers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(numbers);
                }
                numbers.push(seeder.seed_one(i).await?);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 10_000 == 0 {
                    progress(format!("seeded {d} of {total}"));
                }
            }
        }));
    }
    let mut numbers = Vec::with_capacity(args.orders);
    for w in workers {
        numbers.extend(w.await??);
    }
    numbers.sort();
    Ok(numbers)
}

/// A seeding worker: one connection to each system and one CSRF session with the emulator.
struct Seeder {
    orders: Reconnecting,
    emulator: Reconnecting,
    authorization: String,
    session: Option<(String, String)>,
}

impl Seeder {
    /// Creates order `i` in the order service, then the same order in the emulator.
    async fn seed_one(&mut self, i: usize) -> anyhow::Result<String> {
        let body = Bytes::from(shop_order(i).to_string());
        let mut attempt = 0;
        let order: Value = loop {
            attempt += 1;
            let key = format!("odata-face-bench-{i}");
            match self
                .orders
                .send(
                    http::Method::POST,
                    "/api/v1/orders",
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", &key),
                    ],
                    body.clone(),
                )
                .await
            {
                Ok(r) if r.status().is_success() => break serde_json::from_slice(r.body())?,
                Ok(r) if attempt >= 3 => bail!(
                    "order-service create answered {}: {}",
                    r.status(),
                    String::from_utf8_lossy(r.body())
                ),
                Err(e) if attempt >= 3 => return Err(e.context("order-service create")),
                _ => {}
            }
        };
        let number = order["order_number"]
            .as_str()
            .context("no order_number in the order service's answer")?
            .to_owned();
        let deep_insert = Bytes::from(order_acl::order_to_deep_insert(&order).to_string());
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.create_in_emulator(deep_insert.clone()).await {
                Ok(()) => return Ok(number),
                Err(e) if attempt >= 3 => {
                    return Err(e.context(format!("emulator create of {number}")));
                }
                Err(_) => {}
            }
        }
    }

    async fn create_in_emulator(&mut self, body: Bytes) -> anyhow::Result<()> {
        let path = format!("{ODATA_ROOT}/A_SalesOrder");
        if self.session.is_none() {
            let r = self
                .emulator
                .send(
                    http::Method::HEAD,
                    &path,
                    &[
                        ("x-csrf-token", "Fetch"),
                        ("authorization", &self.authorization),
                    ],
                    Bytes::new(),
                )
                .await?;
            let (token, cookies) = sap_odata::csrf_session(r.headers());
            self.session = Some((token.context("no CSRF token")?, cookies));
        }
        let (token, cookies) = self.session.clone().unwrap_or_default();
        let r = self
            .emulator
            .send(
                http::Method::POST,
                &path,
                &[
                    ("x-csrf-token", &token),
                    ("cookie", &cookies),
                    ("authorization", &self.authorization),
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
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
            // A retry of a create whose answer was lost: the number is SAP's duplicate guard.
            _ if String::from_utf8_lossy(r.body()).contains("already exists") => Ok(()),
            s => bail!("create answered {s}: {}", String::from_utf8_lossy(r.body())),
        }
    }
}

/// The first delivery date of the spread.
fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date")
}

/// Day `n` of the spread, `YYYY-MM-DD`.
fn day(n: u64) -> String {
    (first_day() + Days::new(n)).format("%Y-%m-%d").to_string()
}

/// Demo customer `n` (0-based): `17100001` ...
fn customer(n: u64) -> String {
    format!("171000{:02}", n % CUSTOMERS + 1)
}

/// Order `i` of the seed, as a shop sends it to the order service: always the same for the
/// same `i`, so a rerun seeds the same orders.
fn shop_order(i: usize) -> Value {
    let mut rng = Rng::new(i as u64 ^ 0x5eed);
    let delivery = rng.below(DAYS);
    let ordered = delivery.saturating_sub(1 + rng.below(14));
    let lines = 1 + rng.below(3);
    let items: Vec<Value> = (0..lines)
        .map(|_| {
            let (sku, price) = MATERIALS[rng.below(MATERIALS.len() as u64) as usize];
            json!({"sku": sku, "quantity": (1 + rng.below(5)).to_string(), "unit": "PC",
                   "unit_price": price})
        })
        .collect();
    let order_date = first_day() + Days::new(ordered);
    json!({
        "customer_id": customer(rng.below(CUSTOMERS)),
        "currency": "EUR",
        "customer_reference": format!("PO-{}-{:06}", order_date.format("%Y%m"), rng.below(1_000_000)),
        "order_type": "OR", "sales_organization": "1010", "distribution_channel": "10",
        "division": "00",
        "requested_delivery_date": day(delivery),
        "specifications": {"SalesOrderDate": order_acl::format_odata_date(order_date)},
        "items": items,
    })
}

/// Sends `samples` requests of each kind to both sides and compares the answers; how many.
async fn compare(stack: &Stack, numbers: &[String], samples: usize) -> anyhow::Result<usize> {
    let mut rng = Rng::new(0xc0ffee);
    let mut clients = [
        Reconnecting::new(stack.proxy.clone()),
        Reconnecting::new(stack.emulator.clone()),
    ];
    let mut checked = 0;
    for kind in Kind::ALL {
        for _ in 0..samples {
            let path = kind.request(&mut rng, numbers);
            let mut identities = Vec::new();
            for (client, side) in clients.iter_mut().zip([Side::Ours, Side::Peer]) {
                let r = client
                    .send(
                        http::Method::GET,
                        &path,
                        &[
                            ("authorization", &stack.authorization),
                            ("accept", "application/json"),
                        ],
                        Bytes::new(),
                    )
                    .await?;
                if r.status() != http::StatusCode::OK {
                    bail!(
                        "{} answered {} to {path}: {}",
                        side_name(side),
                        r.status(),
                        String::from_utf8_lossy(r.body())
                    );
                }
                let body: Value = serde_json::from_slice(r.body())
                    .with_context(|| format!("{} answered no JSON to {path}", side_name(side)))?;
                let identity = kind
                    .identity(&body)
                    .with_context(|| format!("{} to {path}", side_name(side)))?;
                identities.push(identity);
            }
            if identities[0] != identities[1] {
                bail!(
                    "the two sides answered {path} differently:\n  proxy:    {}\n  emulator: {}",
                    identities[0],
                    identities[1]
                );
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// `concurrency` closed-loop workers sending requests of `kind` to `side` for `duration`.
/// Worker `w` draws the same request sequence on both sides.
async fn load(
    stack: &Stack,
    kind: Kind,
    side: Side,
    duration: Duration,
    concurrency: usize,
    numbers: &Arc<Vec<String>>,
) -> Run {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let authority = stack.authority(side).to_owned();
        let authorization = stack.authorization.clone();
        let numbers = numbers.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut ok, mut errors) = (0_u64, 0_u64);
            let mut rng = Rng::new(((kind as u64) << 32) | w as u64);
            let mut client = Reconnecting::new(authority);
            let headers = [
                ("authorization", authorization.as_str()),
                ("accept", "application/json"),
            ];
            while Instant::now() < deadline {
                let path = kind.request(&mut rng, &numbers);
                let t = Instant::now();
                match client
                    .send(http::Method::GET, &path, &headers, Bytes::new())
                    .await
                {
                    Ok(r) if r.status() == http::StatusCode::OK && kind.looks_served(r.body()) => {
                        ok += 1;
                        let _ = hist.record(t.elapsed().as_micros() as u64);
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (ok, errors, hist)
        }));
    }
    let mut run = Run {
        kind,
        side,
        round: 0,
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
        searches: None,
    };
    for w in workers {
        if let Ok((ok, errors, hist)) = w.await {
            run.ok += ok;
            run.errors += errors;
            let _ = run.latency_us.add(&hist);
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// The order service's `POST /api/v1/orders/search` requests in its metrics: (count, seconds).
fn search_time(text: &str) -> (f64, f64) {
    let sum = |suffix: &str| -> f64 {
        let prefix = format!("http_request_duration_seconds_{suffix}{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix) && l.contains("/api/v1/orders/search"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    (sum("count"), sum("sum"))
}

impl Report {
    /// Both sides' runs of one kind, merged over the rounds.
    fn merged(&self, kind: Kind, side: Side) -> Option<Run> {
        let mut merged: Option<Run> = None;
        for r in self
            .runs
            .iter()
            .filter(|r| r.kind == kind && r.side == side)
        {
            let m = merged.get_or_insert_with(|| Run {
                kind,
                side,
                round: 0,
                ok: 0,
                errors: 0,
                elapsed: Duration::ZERO,
                latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
                searches: None,
            });
            m.ok += r.ok;
            m.errors += r.errors;
            m.elapsed += r.elapsed;
            let _ = m.latency_us.add(&r.latency_us);
            if let Some((n, ms)) = r.searches {
                let (n0, ms0) = m.searches.unwrap_or((0.0, 0.0));
                m.searches = Some((n0 + n, (n0 * ms0 + n * ms) / (n0 + n).max(1.0)));
            }
        }
        merged
    }

    fn print(&self, args: &Args) {
        println!();
        println!(
            "OData face (retired) vs the emulator: {} orders seeded in {:.1} s, {} sampled answers \
             alike, concurrency {}, {} rounds of {:?}",
            self.seeded,
            self.seed_time.as_secs_f64(),
            self.checked,
            args.concurrency,
            args.rounds,
            args.duration
        );
        println!();
        println!(
            "| kind | proxy req/s | p50 ms | p99 ms | errors | emulator req/s | p50 ms | p99 ms | errors | ratio ours/peer | order-service search ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for kind in Kind::ALL {
            let (Some(ours), Some(peer)) =
                (self.merged(kind, Side::Ours), self.merged(kind, Side::Peer))
            else {
                continue;
            };
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.2} | {} | **{:.2}** | {} |",
                kind.name(),
                ours.rate(),
                ours.ms(0.5),
                ours.ms(0.99),
                ours.errors,
                peer.rate(),
                peer.ms(0.5),
                peer.ms(0.99),
                peer.errors,
                ours.rate() / peer.rate(),
                ours.searches
                    .map_or_else(|| "-".to_owned(), |(_, ms)| format!("{ms:.2}")),
            );
        }
        println!();
        println!("goal: ratio ≥ 1 for both kinds (ratio = proxy requests/s / emulator requests/s)");
    }

    fn to_json(&self, args: &Args) -> Value {
        let side = |r: &Run| {
            json!({
                "requests_per_s": r.rate(), "p50_ms": r.ms(0.5), "p99_ms": r.ms(0.99),
                "ok": r.ok, "errors": r.errors,
            })
        };
        let kinds: Vec<Value> = Kind::ALL
            .iter()
            .filter_map(|&kind| {
                let ours = self.merged(kind, Side::Ours)?;
                let peer = self.merged(kind, Side::Peer)?;
                let mut o = side(&ours);
                if let Some((n, ms)) = ours.searches {
                    o["order_service_searches"] = json!(n);
                    o["order_service_search_mean_ms"] = json!(ms);
                }
                Some(json!({
                    "kind": kind.name(),
                    "ours": o,
                    "peer": side(&peer),
                    "ratio": ours.rate() / peer.rate(),
                }))
            })
            .collect();
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                let mut v = side(r);
                v["kind"] = json!(r.kind.name());
                v["side"] = json!(match r.side {
                    Side::Ours => "ours",
                    Side::Peer => "peer",
                });
                v["round"] = json!(r.round);
                v
            })
            .collect();
        json!({
            "benchmark": "odata-face",
            "orders": self.seeded,
            "seed_seconds": self.seed_time.as_secs_f64(),
            "checked_samples": self.checked,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "duration_s": args.duration.as_secs_f64(),
            "kinds": kinds,
            "runs": runs,
        })
    }
}

/// A small deterministic generator (SplitMix64): the same seed, the same requests.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_order_is_the_same_for_the_same_index_and_spread_over_customers_and_days() {
        assert_eq!(shop_order(7), shop_order(7));
        let orders: Vec<Value> = (0..500).map(shop_order).collect();
        let customers: std::collections::HashSet<&str> = orders
            .iter()
            .map(|o| o["customer_id"].as_str().unwrap())
            .collect();
        assert_eq!(customers.len(), CUSTOMERS as usize);
        let days: std::collections::HashSet<&str> = orders
            .iter()
            .map(|o| o["requested_delivery_date"].as_str().unwrap())
            .collect();
        assert!(days.len() > 200, "{} days", days.len());
        for o in &orders {
            let lines = o["items"].as_array().unwrap().len();
            assert!((1..=3).contains(&lines));
        }
    }

    #[test]
    fn search_time_sums_the_search_series_only() {
        let text = "http_request_duration_seconds_count{method=\"POST\",path=\"/api/v1/orders/search\",status=\"200\"} 4\n\
                    http_request_duration_seconds_sum{method=\"POST\",path=\"/api/v1/orders/search\",status=\"200\"} 0.02\n\
                    http_request_duration_seconds_count{method=\"POST\",path=\"/api/v1/orders\",status=\"201\"} 9\n";
        assert_eq!(search_time(text), (4.0, 0.02));
    }
}
