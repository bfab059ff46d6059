//! `orderctl up` / `orderctl down`: the whole stack on one machine.
//!
//! PostgreSQL and Kafka come from the project scripts (installed and started under `.data/`);
//! the services are the binaries built next to `orderctl`, each logging to `.data/logs/`.
//! Ctrl-C (or SIGTERM) stops the services gracefully; the databases keep running for a quick
//! restart until `orderctl down`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::infra;

/// Options of `up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// Start PostgreSQL and Kafka only (for running services from an IDE).
    #[arg(long)]
    infra_only: bool,
}

struct Service {
    name: &'static str,
    port: u16,
    env: Vec<(String, String)>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn services(data: &Path, database_url: &str, brokers: &str, admin_token: &str) -> Vec<Service> {
    let port =
        |var: &str, default: u16| env_or(var, &default.to_string()).parse().unwrap_or(default);
    let (proxy, admin, orders, sap, sync) = (
        port("PROXY_PORT", 8080),
        port("PROXY_ADMIN_PORT", 9080),
        port("ORDER_SERVICE_PORT", 8081),
        port("SAP_MOCK_PORT", 8082),
        port("SAP_SYNC_PORT", 8083),
    );
    let kv = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let sap_url = env_or("SAP_URL", &format!("http://127.0.0.1:{sap}"));
    let orders_url = env_or("ORDER_SERVICE_URL", &format!("http://127.0.0.1:{orders}"));
    vec![
        Service {
            name: "order-service",
            port: orders,
            env: kv(&[
                ("ORDER_SERVICE_PORT", orders.to_string()),
                ("DATABASE_URL", database_url.to_owned()),
                ("KAFKA_BROKERS", brokers.to_owned()),
            ]),
        },
        Service {
            name: "sap-mock",
            port: sap,
            env: kv(&[
                ("SAP_MOCK_PORT", sap.to_string()),
                (
                    "SAP_MOCK_DATA_DIR",
                    data.join("sap-mock").display().to_string(),
                ),
            ]),
        },
        Service {
            name: "sap-sync",
            port: sync,
            env: kv(&[
                ("SAP_SYNC_PORT", sync.to_string()),
                ("KAFKA_BROKERS", brokers.to_owned()),
                ("SAP_URL", sap_url.clone()),
                ("ORDER_SERVICE_URL", orders_url.clone()),
            ]),
        },
        Service {
            name: "proxy",
            port: proxy,
            env: kv(&[
                ("PROXY_PORT", proxy.to_string()),
                ("PROXY_ADMIN_PORT", admin.to_string()),
                ("SAP_URL", sap_url),
                ("ORDER_SERVICE_URL", orders_url),
                ("PROXY_DATA_DIR", data.join("proxy").display().to_string()),
                ("ADMIN_TOKEN", admin_token.to_owned()),
                ("SAP_SYNC_URL", format!("http://127.0.0.1:{sync}")),
            ]),
        },
    ]
}

/// The admin token: `ADMIN_TOKEN`, else one generated once and kept (mode 0600) under `.data/`.
fn admin_token(data: &Path) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Ok(t) = std::env::var("ADMIN_TOKEN") {
        return Ok((t, None));
    }
    let path = data.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok((t.trim().to_owned(), Some(path)));
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(&path, &token)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((token, Some(path)))
}

fn wait_for_port(port: u16, child: &mut Child, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited during start ({status}); see its log");
        }
        if Instant::now() > deadline {
            bail!("{name} did not listen on port {port} within 60 s; see its log");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(children: &mut Vec<(&'static str, Child)>) {
    for (_, child) in children.iter() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for (name, child) in children.iter_mut().rev() {
        let _ = child.wait();
        println!("stopped {name}");
    }
    children.clear();
}

/// Starts everything and waits for Ctrl-C.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let root = infra::repo_root()?;
    let data = PathBuf::from(env_or(
        "ORDERS_DATA_DIR",
        &root.join(".data").display().to_string(),
    ));
    std::fs::create_dir_all(data.join("logs"))?;
    println!("starting PostgreSQL ...");
    infra::script(&root, "postgres.sh", &["start"])?;
    let database_url = infra::script(&root, "postgres.sh", &["url"])?;
    println!("starting Kafka ...");
    infra::script(&root, "kafka.sh", &["start"])?;
    let brokers = infra::script(&root, "kafka.sh", &["brokers"])?;
    println!("infrastructure up: PostgreSQL (database orders), Kafka at {brokers}");
    if args.infra_only {
        return Ok(());
    }
    let (token, token_file) = admin_token(&data)?;
    let mut children: Vec<(&'static str, Child)> = Vec::new();
    for svc in services(&data, &database_url, &brokers, &token) {
        let binary = infra::sibling_binary(svc.name)?;
        let log_path = data.join("logs").join(format!("{}.log", svc.name));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(&binary)
            .envs(svc.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        if let Err(e) = wait_for_port(svc.port, &mut child, svc.name) {
            children.push((svc.name, child));
            terminate(&mut children);
            return Err(e.context(format!("log: {}", log_path.display())));
        }
        println!(
            "{:<14} http://127.0.0.1:{:<5} log {}",
            svc.name,
            svc.port,
            log_path.display()
        );
        children.push((svc.name, child));
    }
    match token_file {
        Some(path) => println!("admin token for the proxy admin API: in {}", path.display()),
        None => println!("admin token for the proxy admin API: from ADMIN_TOKEN"),
    }
    println!(
        "stack is up; Ctrl-C stops the services (orderctl down also stops PostgreSQL and Kafka)"
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let failure = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            _ = sigterm.recv() => break None,
            _ = tick.tick() => {
                if let Some((name, status)) = children
                    .iter_mut()
                    .find_map(|(n, c)| c.try_wait().ok().flatten().map(|s| (*n, s)))
                {
                    break Some(format!("{name} exited unexpectedly ({status})"));
                }
            }
        }
    };
    terminate(&mut children);
    match failure {
        Some(msg) => bail!(msg),
        None => Ok(()),
    }
}

/// Stops PostgreSQL and Kafka.
pub fn down() -> anyhow::Result<()> {
    let root = infra::repo_root()?;
    infra::script(&root, "kafka.sh", &["stop"])?;
    infra::script(&root, "postgres.sh", &["stop"])?;
    println!("PostgreSQL and Kafka stopped");
    Ok(())
}
