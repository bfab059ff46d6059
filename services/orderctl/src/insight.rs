//! `orderctl trace` and `orderctl status`: one order's journey, and the whole stack at a glance.
//!
//! - `trace <order number | order id | correlation id>` asks the proxy's admin API for the
//!   journey (`GET /admin/v1/journey/{key}`: proxy, order service, outbox, Kafka, sap-sync,
//!   SAP) and prints it as a table with sentences; `--log FILE` adds the lines of the proxy's
//!   JSON log that mention the order or one of its correlation ids.
//! - `status` checks every component at the addresses `orderctl up` uses (each overridable)
//!   and prints one table: address, up/ready, one key number each; exit status 1 when
//!   something is down.
//!
//! Tables and sentences by default, `--json` for scripts. Expected failures (the proxy cannot
//! be reached, the token is refused) are one sentence on stderr and exit status 1.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::admin::Target;

/// Options of `trace`.
#[derive(clap::Args)]
pub struct TraceArgs {
    /// The order number, order id or a correlation id of one of its requests.
    key: String,
    #[command(flatten)]
    target: Target,
    /// The proxy's JSON log file: its lines that mention the order are printed too.
    #[arg(long)]
    log: Option<PathBuf>,
}

/// Most log lines `trace --log` prints.
const LOG_LINES: usize = 200;

/// Stops with one sentence on stderr (an expected failure, no backtrace) and status 1.
fn refuse(command: &str, sentence: String) -> ! {
    eprintln!("orderctl {command}: {sentence}");
    std::process::exit(1);
}

/// `12:04:05.123` for today's times, the date too for older ones.
fn when(at: &str, today: chrono::NaiveDate) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            if t.date_naive() == today {
                t.format("%H:%M:%S%.3f").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
            }
        }
        Err(_) => at.to_owned(),
    }
}

/// The journey as a table and sentences.
pub fn render_journey(j: &Value, today: chrono::NaiveDate) -> String {
    let steps = j["steps"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    let query = j["query"].as_str().unwrap_or("?");
    match (j["order_number"].as_str(), j["order_id"].as_str()) {
        (Some(n), Some(id)) => {
            out.push_str(&format!("Order {n} (id {id}), traced from {query}.\n"))
        }
        (Some(n), None) => out.push_str(&format!("Order {n}, traced from {query}.\n")),
        (None, Some(id)) => out.push_str(&format!("Order id {id}, traced from {query}.\n")),
        (None, None) => out.push_str(&format!("No order was found for {query}.\n")),
    }
    if !steps.is_empty() {
        let times: Vec<String> = steps
            .iter()
            .map(|s| when(s["at"].as_str().unwrap_or("?"), today))
            .collect();
        let w = times.iter().map(String::len).max().unwrap_or(4).max(4);
        out.push('\n');
        out.push_str(&format!("{:<w$}  {:<13}  STEP\n", "TIME", "SYSTEM"));
        for (s, t) in steps.iter().zip(&times) {
            out.push_str(&format!(
                "{t:<w$}  {:<13}  {}\n",
                s["system"].as_str().unwrap_or("?"),
                s["step"].as_str().unwrap_or("")
            ));
        }
        let mut systems: Vec<&str> = Vec::new();
        for s in &steps {
            if let Some(sys) = s["system"].as_str()
                && !systems.contains(&sys)
            {
                systems.push(sys);
            }
        }
        out.push('\n');
        let span = match (
            steps.first().and_then(|s| s["at"].as_str()),
            steps.last().and_then(|s| s["at"].as_str()),
        ) {
            (Some(a), Some(b)) => match (
                DateTime::parse_from_rfc3339(a),
                DateTime::parse_from_rfc3339(b),
            ) {
                (Ok(a), Ok(b)) => format!(" over {} ms", (b - a).num_milliseconds()),
                _ => String::new(),
            },
            _ => String::new(),
        };
        out.push_str(&format!(
            "{} step(s) across {}{span}.\n",
            steps.len(),
            systems.join(", ")
        ));
    }
    let unavailable = j["unavailable"].as_array().cloned().unwrap_or_default();
    for u in &unavailable {
        out.push_str(&format!(
            "Not shown from {}: {}.\n",
            u["system"].as_str().unwrap_or("?"),
            u["reason"].as_str().unwrap_or("").trim_end_matches('.')
        ));
    }
    out
}

/// Every key the journey names: the order number and id, and each correlation id.
fn journey_keys(j: &Value) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut add = |v: &Value| {
        if let Some(s) = v.as_str().filter(|s| s.len() >= 3)
            && !keys.iter().any(|k| k == s)
        {
            keys.push(s.to_owned());
        }
    };
    add(&j["query"]);
    add(&j["order_number"]);
    add(&j["order_id"]);
    for s in j["steps"].as_array().into_iter().flatten() {
        add(&s["detail"]["correlation_id"]);
    }
    keys
}

/// The lines of `text` that mention one of `keys`, at most [`LOG_LINES`] (the last ones).
pub fn lines_mentioning(text: &str, keys: &[String]) -> Vec<String> {
    let hits: Vec<String> = text
        .lines()
        .filter(|l| keys.iter().any(|k| l.contains(k.as_str())))
        .map(str::to_owned)
        .collect();
    let skip = hits.len().saturating_sub(LOG_LINES);
    hits.into_iter().skip(skip).collect()
}

/// Runs `trace`.
pub async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let token = match args.target.token() {
        Ok(t) => t,
        Err(e) => refuse(
            "trace",
            format!("{e:#}: set ADMIN_TOKEN or pass --admin-token"),
        ),
    };
    let mut url = match reqwest::Url::parse(&args.target.url("/admin/v1/journey/")) {
        Ok(u) => u,
        Err(e) => refuse("trace", format!("the admin URL is not a URL ({e}).")),
    };
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty().push(args.key.trim());
    }
    let r = match reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(60))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => refuse(
            "trace",
            format!(
                "the proxy's admin API at {} cannot be reached ({e}).",
                args.target.base()
            ),
        ),
    };
    let status = r.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        refuse(
            "trace",
            format!(
                "the proxy at {} refused the admin token (401).",
                args.target.base()
            ),
        );
    }
    if !status.is_success() {
        refuse(
            "trace",
            format!("the proxy answered {status} to the journey."),
        );
    }
    let mut journey: Value = match r.json().await {
        Ok(b) => b,
        Err(e) => refuse(
            "trace",
            format!("the proxy's answer is not a journey ({e})."),
        ),
    };
    let log_lines = match &args.log {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(lines_mentioning(&text, &journey_keys(&journey))),
            Err(e) => refuse(
                "trace",
                format!("the log file {} cannot be read ({e}).", path.display()),
            ),
        },
    };
    if args.target.json {
        if let (Some(lines), Some(o)) = (&log_lines, journey.as_object_mut()) {
            o.insert("log_lines".into(), json!(lines));
        }
        println!("{}", serde_json::to_string_pretty(&journey)?);
        return Ok(());
    }
    print!("{}", render_journey(&journey, Utc::now().date_naive()));
    if let (Some(lines), Some(path)) = (log_lines, &args.log) {
        println!();
        if lines.is_empty() {
            println!("No line of {} mentions this order.", path.display());
        } else {
            println!(
                "{} line(s) of {} mention this order:",
                lines.len(),
                path.display()
            );
            for l in lines {
                println!("{l}");
            }
        }
    }
    Ok(())
}

/// Options of `status`: where each component is (the addresses `orderctl up` uses).
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// The proxy's client-facing (SAP) listener.
    #[arg(long, env = "PROXY_URL", default_value = "http://127.0.0.1:8080")]
    proxy_url: String,
    /// The order service.
    #[arg(
        long,
        env = "ORDER_SERVICE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    orders_url: String,
    /// The SAP emulator (or SAP).
    #[arg(long, env = "SAP_URL", default_value = "http://127.0.0.1:8082")]
    sap_url: String,
    /// sap-sync's HTTP listener.
    #[arg(long, env = "SAP_SYNC_URL", default_value = "http://127.0.0.1:8083")]
    sap_sync_url: String,
    /// Kafka's bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    /// The order events topic.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "order-events")]
    topic: String,
    /// PostgreSQL (host:port, or a `postgres://` URL whose host and port are used).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "127.0.0.1:5432",
        hide_env_values = true
    )]
    database: String,
}

/// One component's line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Component {
    /// Its name.
    pub name: &'static str,
    /// Where it was asked.
    pub address: String,
    /// Whether it answered.
    pub up: bool,
    /// Whether it is ready for work.
    pub ready: bool,
    /// One key number or fact.
    pub key: String,
    /// What went wrong, when something did.
    pub problem: Option<String>,
}

impl Component {
    fn down(name: &'static str, address: String, problem: String) -> Self {
        Self {
            name,
            address,
            up: false,
            ready: false,
            key: "-".into(),
            problem: Some(problem),
        }
    }
}

/// The table of `status`.
pub fn render_status(all: &[Component]) -> String {
    let w = all
        .iter()
        .map(|c| c.address.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "{:<16} {:<w$}  {:<5} {:<5}  KEY\n",
        "COMPONENT", "ADDRESS", "UP", "READY"
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    for c in all {
        out.push_str(&format!(
            "{:<16} {:<w$}  {:<5} {:<5}  {}\n",
            c.name,
            c.address,
            yes(c.up),
            yes(c.ready),
            c.key
        ));
    }
    let bad: Vec<&Component> = all.iter().filter(|c| !c.up || !c.ready).collect();
    out.push('\n');
    if bad.is_empty() {
        out.push_str("Everything is up and ready.\n");
    }
    for c in bad {
        let what = if c.up {
            "is up but not ready"
        } else {
            "is down"
        };
        match &c.problem {
            Some(p) => out.push_str(&format!("{} {what}: {p}.\n", c.name)),
            None => out.push_str(&format!("{} {what}.\n", c.name)),
        }
    }
    out
}

/// `host:port` of an address (`host:port`, or a URL whose port is used, else `default_port`).
fn host_port(address: &str, default_port: u16) -> String {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hp = rest.split(['/', '?']).next().unwrap_or(rest);
    if hp.contains(':') {
        hp.to_owned()
    } else {
        format!("{hp}:{default_port}")
    }
}

async fn tcp_up(address: &str) -> Result<(), String> {
    match tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.map_err(|e| {
        if e.is_connect() {
            "connection refused".to_owned()
        } else {
            e.to_string()
        }
    })?;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn postgres(address: String) -> Component {
    let hp = host_port(&address, 5432);
    match tcp_up(&hp).await {
        Ok(()) => Component {
            name: "PostgreSQL",
            address: hp,
            up: true,
            ready: true,
            key: "accepts connections".into(),
            problem: None,
        },
        Err(e) => Component::down("PostgreSQL", hp, e),
    }
}

async fn kafka(brokers: String, topic: String) -> Component {
    let b = brokers.clone();
    let t = topic.clone();
    let probe = tokio::task::spawn_blocking(move || -> Result<String, String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &b)
            .create()
            .map_err(|e| e.to_string())?;
        let md = c
            .fetch_metadata(Some(&t), Duration::from_secs(3))
            .map_err(|e| format!("no metadata ({e})"))?;
        let brokers = md.brokers().len();
        let parts = md
            .topics()
            .iter()
            .find(|x| x.name() == t && x.error().is_none())
            .map(|x| x.partitions().len());
        let mut end = 0i64;
        if let Some(n) = parts {
            for p in 0..n as i32 {
                if let Ok((_, high)) = c.fetch_watermarks(&t, p, Duration::from_secs(3)) {
                    end += high;
                }
            }
        }
        Ok(match parts {
            Some(n) => format!("{brokers} broker(s); {t}: {n} partitions, {end} events"),
            None => format!("{brokers} broker(s); topic {t} not created yet"),
        })
    })
    .await;
    match probe {
        Ok(Ok(key)) => Component {
            name: "Kafka",
            address: brokers,
            up: true,
            ready: true,
            key,
            problem: None,
        },
        Ok(Err(e)) => Component::down("Kafka", brokers, e),
        Err(e) => Component::down("Kafka", brokers, e.to_string()),
    }
}

async fn emulator(http: &reqwest::Client, base: &str) -> Component {
    let url = format!("{base}/sap-mock/health");
    match get(http, &url, None).await {
        Ok((200, _)) => Component {
            name: "SAP emulator",
            address: base.to_owned(),
            up: true,
            ready: true,
            key: "healthy".into(),
            problem: None,
        },
        Ok((s, _)) => Component {
            name: "SAP emulator",
            address: base.to_owned(),
            up: true,
            ready: false,
            key: "-".into(),
            problem: Some(format!("GET /sap-mock/health answered {s}")),
        },
        Err(e) => Component::down("SAP emulator", base.to_owned(), e),
    }
}

async fn order_service(http: &reqwest::Client, base: &str) -> Component {
    match get(http, &format!("{base}/ready"), None).await {
        Ok((s, v)) => {
            let backlog = &v["checks"]["outbox"]["backlog"];
            let kafka = v["checks"]["kafka"]["status"].as_str().unwrap_or("?");
            Component {
                name: "order service",
                address: base.to_owned(),
                up: true,
                ready: s == 200,
                key: format!(
                    "outbox backlog {}; Kafka {kafka}",
                    if backlog.is_null() {
                        "?".to_owned()
                    } else {
                        backlog.to_string()
                    }
                ),
                problem: (s != 200).then(|| format!("GET /ready answered {s}: {v}")),
            }
        }
        Err(e) => Component::down("order service", base.to_owned(), e),
    }
}

async fn proxy(base: &str) -> Component {
    let hp = host_port(base, if base.starts_with("https") { 443 } else { 80 });
    match tcp_up(&hp).await {
        Ok(()) => Component {
            name: "proxy",
            address: base.to_owned(),
            up: true,
            ready: true,
            key: "accepts connections".into(),
            problem: None,
        },
        Err(e) => Component::down("proxy", base.to_owned(), e),
    }
}

async fn proxy_admin(http: &reqwest::Client, target: &Target) -> Component {
    let base = target.base().to_owned();
    let ready = match get(http, &target.url("/ready"), None).await {
        Ok((s, _)) => s == 200,
        Err(e) => return Component::down("proxy admin", base, e),
    };
    let token = target.token().ok();
    let (routes, counters) = match &token {
        Some(t) => (
            get(http, &target.url("/admin/v1/routes"), Some(t)).await,
            get(http, &target.url("/admin/v1/counters"), Some(t)).await,
        ),
        None => (Err("no admin token".into()), Err("no admin token".into())),
    };
    let mut problem = (!ready).then(|| "GET /ready did not answer 200".to_owned());
    let modes = match routes {
        Ok((200, v)) => v["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} {}",
                    r["name"].as_str().unwrap_or("?"),
                    r["mode"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Ok((s, _)) => {
            problem.get_or_insert(format!("GET /admin/v1/routes answered {s}"));
            "routes ?".into()
        }
        Err(e) => {
            problem.get_or_insert(e);
            "routes ?".into()
        }
    };
    let backlog = match counters {
        Ok((200, v)) => format!(
            "replay backlog {} pending, {} parked",
            v["replay_backlog"]["pending"], v["replay_backlog"]["parked"]
        ),
        _ => "replay backlog ?".into(),
    };
    Component {
        name: "proxy admin",
        address: base,
        up: true,
        ready: ready && problem.is_none(),
        key: format!("{modes}; {backlog}"),
        problem,
    }
}

async fn sap_sync(http: &reqwest::Client, base: &str) -> Component {
    let ready = match get(http, &format!("{base}/ready"), None).await {
        Ok((s, _)) => s == 200,
        Err(e) => return Component::down("sap-sync", base.to_owned(), e),
    };
    let key = match get(http, &format!("{base}/status"), None).await {
        Ok((200, v)) => format!(
            "lag {} events, {} parked",
            v["lag_messages"], v["parked_orders"]
        ),
        _ => "status ?".into(),
    };
    Component {
        name: "sap-sync",
        address: base.to_owned(),
        up: true,
        ready,
        key,
        problem: (!ready).then(|| "GET /ready did not answer 200".to_owned()),
    }
}

/// Runs `status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let trim = |s: &str| s.trim_end_matches('/').to_owned();
    let (sap_url, orders_url, proxy_url, sap_sync_url) = (
        trim(&args.sap_url),
        trim(&args.orders_url),
        trim(&args.proxy_url),
        trim(&args.sap_sync_url),
    );
    let (pg, kf, sap, orders, px, admin, sync) = tokio::join!(
        postgres(args.database.clone()),
        kafka(args.kafka_brokers.clone(), args.topic.clone()),
        emulator(&http, &sap_url),
        order_service(&http, &orders_url),
        proxy(&proxy_url),
        proxy_admin(&http, &args.target),
        sap_sync(&http, &sap_sync_url),
    );
    let all = vec![pg, kf, sap, orders, px, admin, sync];
    let healthy = all.iter().all(|c| c.up && c.ready);
    if args.target.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"healthy": healthy, "components": all}))?
        );
    } else {
        print!("{}", render_status(&all));
    }
    if !healthy {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journey_prints_as_a_table_in_time_order_with_what_is_missing() {
        let j = json!({"query": "corr-1", "order_number": "5000001", "order_id": "abc",
            "steps": [
                {"at": "2026-12-01T10:00:00.100Z", "system": "proxy", "step": "POST A_SalesOrder answered 201 in dual-write (35 ms)", "detail": {"correlation_id": "corr-1"}},
                {"at": "2026-12-01T10:00:00.120Z", "system": "order-service", "step": "order 5000001 created in the order service", "detail": {}},
                {"at": "2026-12-01T10:00:00.300Z", "system": "kafka", "step": "order.created (version 1) published on partition 2 at offset 7", "detail": {}}],
            "unavailable": [{"system": "sap-sync", "reason": "no sap-sync is configured (SAP_SYNC_URL)"}]});
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let text = render_journey(&j, today);
        assert!(
            text.starts_with("Order 5000001 (id abc), traced from corr-1."),
            "{text}"
        );
        let table: Vec<&str> = text.lines().filter(|l| l.starts_with("10:00")).collect();
        assert_eq!(table.len(), 3, "{text}");
        assert!(
            table[0].contains("proxy") && table[0].contains("answered 201"),
            "{text}"
        );
        assert!(table[2].starts_with("10:00:00.300  kafka"), "{text}");
        assert!(
            text.contains("3 step(s) across proxy, order-service, kafka over 200 ms."),
            "{text}"
        );
        assert!(
            text.contains("Not shown from sap-sync: no sap-sync is configured (SAP_SYNC_URL)."),
            "{text}"
        );
        // Another day's times carry their date.
        let other = render_journey(&j, chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap());
        assert!(other.contains("2026-12-01 10:00:00.100"), "{other}");
    }

    #[test]
    fn a_journey_without_an_order_says_so() {
        let j = json!({"query": "nope", "order_number": null, "order_id": null, "steps": [],
            "unavailable": [{"system": "sap", "reason": "no order number is known for this key"}]});
        let text = render_journey(&j, Utc::now().date_naive());
        assert!(text.contains("No order was found for nope."), "{text}");
        assert!(!text.contains("STEP"), "{text}");
    }

    #[test]
    fn log_lines_are_those_naming_the_order_or_its_correlation_ids() {
        let j = json!({"query": "5000001", "order_number": "5000001", "order_id": "id-9",
            "steps": [{"detail": {"correlation_id": "corr-7"}}]});
        let keys = journey_keys(&j);
        let log = "{\"msg\":\"a\",\"correlation_id\":\"corr-7\"}\n{\"msg\":\"b\"}\n{\"sales_order\":\"5000001\"}\n";
        let lines = lines_mentioning(log, &keys);
        assert_eq!(lines.len(), 2, "{lines:?}");
    }

    #[test]
    fn the_status_table_names_what_is_down_and_why() {
        let all = vec![
            Component {
                name: "PostgreSQL",
                address: "127.0.0.1:5432".into(),
                up: true,
                ready: true,
                key: "accepts connections".into(),
                problem: None,
            },
            Component::down(
                "sap-sync",
                "http://127.0.0.1:8083".into(),
                "connection refused".into(),
            ),
        ];
        let text = render_status(&all);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("COMPONENT") && lines[0].contains("READY"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("PostgreSQL") && lines[1].contains("yes"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("sap-sync") && lines[2].contains(" no "),
            "{text}"
        );
        assert!(
            text.contains("sap-sync is down: connection refused."),
            "{text}"
        );
        let ok = render_status(&all[..1]);
        assert!(ok.contains("Everything is up and ready."), "{ok}");
    }

    #[test]
    fn postgres_addresses_are_read_from_urls_and_pairs() {
        assert_eq!(host_port("postgres://u:p@db:6543/orders", 5432), "db:6543");
        assert_eq!(host_port("postgres://u@db/orders", 5432), "db:5432");
        assert_eq!(host_port("127.0.0.1:5432", 5432), "127.0.0.1:5432");
        assert_eq!(host_port("http://proxy.example/", 80), "proxy.example:80");
    }
}
