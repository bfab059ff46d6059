//! `sap-mock-bench`: creates/s and reads/s of the SAP emulator at zero added latency.
//!
//! ```text
//! cargo run --release -p sap-mock --bin sap-mock-bench -- [--creates N] [--reads N]
//!     [--concurrency C] [--url http://host:port] [--user name:password]
//! ```
//!
//! Without `--url` it starts an emulator in this process on a free port with a fresh data
//! folder (removed afterwards). Creates go the way SAP's JavaScript client sends them: a CSRF
//! fetch (`HEAD .../A_SalesOrder/`) and then the deep insert (`POST`, two items), so one
//! "create" is two requests and one durable commit. Reads are `GET A_SalesOrder('<n>')` with
//! `$select=*,to_Item/*&$expand=to_Item` over the orders just created. It prints throughput and
//! latency percentiles per phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sap_mock::{Application, Config};
use tokio_util::sync::CancellationToken;

const ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

struct Options {
    creates: usize,
    reads: usize,
    concurrency: usize,
    url: Option<String>,
    user: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        creates: 2000,
        reads: 20000,
        concurrency: 16,
        url: None,
        user: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--creates" => o.creates = value()?.parse().map_err(|e| format!("--creates: {e}"))?,
            "--reads" => o.reads = value()?.parse().map_err(|e| format!("--reads: {e}"))?,
            "--concurrency" => {
                o.concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--url" => o.url = Some(value()?),
            "--user" => o.user = Some(value()?),
            "-h" | "--help" => {
                return Err("usage: sap-mock-bench [--creates N] [--reads N] [--concurrency C] [--url URL] [--user name:password]".into());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.concurrency == 0 || o.creates == 0 {
        return Err("--concurrency and --creates must be at least 1".into());
    }
    Ok(o)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Target {
    client: HttpClient,
    base: String,
    auth: Option<String>,
}

impl Target {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<http::Response<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{ROOT}{path}", self.base))
            .header("accept", "application/json");
        if let Some(a) = &self.auth {
            b = b.header("authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let response = self.client.request(b.body(Full::new(body))?).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, bytes))
    }

    async fn create(&self, n: usize) -> anyhow::Result<String> {
        let head = self
            .send(
                Method::HEAD,
                "/A_SalesOrder/",
                &[("x-csrf-token", "Fetch")],
                Bytes::new(),
            )
            .await?;
        let token = head
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let cookie = head
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join(";");
        let body = format!(
            r#"{{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","PurchaseOrderByCustomer":"BENCH-{n}","CustomerPurchaseOrderDate":"/Date(1795478400000+0000)/","to_Item":[{{"Material":"TG11","RequestedQuantity":"2","RequestedQuantityUnit":"PC"}},{{"Material":"TG12","RequestedQuantity":"5","RequestedQuantityUnit":"PC"}}]}}"#
        );
        let r = self
            .send(
                Method::POST,
                "/A_SalesOrder",
                &[
                    ("x-csrf-token", &token),
                    ("cookie", &cookie),
                    ("content-type", "application/json"),
                ],
                Bytes::from(body),
            )
            .await?;
        anyhow::ensure!(
            r.status() == StatusCode::CREATED,
            "create answered {}",
            r.status()
        );
        let v: serde_json::Value = serde_json::from_slice(r.body())?;
        Ok(v["d"]["SalesOrder"].as_str().unwrap_or_default().to_owned())
    }

    async fn read(&self, number: &str) -> anyhow::Result<()> {
        let r = self
            .send(
                Method::GET,
                &format!(
                    "/A_SalesOrder(SalesOrder=%27{number}%27)?$select=*,to_Item/*&$expand=to_Item"
                ),
                &[],
                Bytes::new(),
            )
            .await?;
        anyhow::ensure!(r.status() == StatusCode::OK, "read answered {}", r.status());
        Ok(())
    }
}

struct PhaseResult {
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl PhaseResult {
    fn report(&self, name: &str, unit: &str) {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        println!(
            "{name:<8} {:>7} {unit} in {:>6.2} s = {:>8.0} {unit}/s   p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
            self.count,
            self.elapsed.as_secs_f64(),
            self.count as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
            l.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        );
    }
}

async fn run_phase<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<PhaseResult>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for w in workers {
        latencies.extend(w.await??);
    }
    Ok(PhaseResult {
        count: total,
        elapsed: start.elapsed(),
        latencies,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(options.concurrency)
        .build(connector);
    let auth = options.user.as_ref().map(|u| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(u)
        )
    });

    let shutdown = CancellationToken::new();
    let mut data_dir = None;
    let mut server = None;
    let base = match &options.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let dir = std::env::temp_dir().join(format!("sap-mock-bench-{}", uuid::Uuid::new_v4()));
            let mut config = Config::for_tests(&dir);
            config.page_size = 1000;
            let app = Application::build(config).await?;
            let addr = app.local_addr()?;
            server = Some(tokio::spawn(app.run_until(shutdown.clone())));
            data_dir = Some(dir);
            format!("http://{addr}")
        }
    };
    let target = Arc::new(Target { client, base, auth });
    println!(
        "sap-mock-bench: {} creates, {} reads, concurrency {}, target {}{}",
        options.creates,
        options.reads,
        options.concurrency,
        target.base,
        if options.url.is_none() {
            " (in-process, fresh data folder)"
        } else {
            ""
        }
    );

    let numbers = Arc::new(std::sync::Mutex::new(Vec::with_capacity(options.creates)));
    let creates = {
        let target = target.clone();
        let numbers = numbers.clone();
        run_phase(options.creates, options.concurrency, move |i| {
            let target = target.clone();
            let numbers = numbers.clone();
            async move {
                let n = target.create(i).await?;
                numbers
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(n);
                Ok(())
            }
        })
        .await?
    };
    creates.report("creates", "orders");

    let numbers: Arc<Vec<String>> = Arc::new(
        numbers
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone(),
    );
    if options.reads > 0 {
        let reads = {
            let target = target.clone();
            let numbers = numbers.clone();
            run_phase(options.reads, options.concurrency, move |i| {
                let target = target.clone();
                let numbers = numbers.clone();
                async move { target.read(&numbers[i * 7919 % numbers.len()]).await }
            })
            .await?
        };
        reads.report("reads", "reads");
    }

    shutdown.cancel();
    if let Some(s) = server {
        s.await??;
    }
    if let Some(dir) = data_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
