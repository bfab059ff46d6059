//! `orderctl up` / `orderctl down`: the whole stack on one machine.
//!
//! PostgreSQL and Kafka come from the project scripts (installed and started under `.data/`),
//! or from `DATABASE_URL` / `KAFKA_BROKERS` when set; the services are the binaries built next
//! to `orderctl`, each logging to `.data/logs/`, started in order and each waited for until it
//! answers ready. A table then says where everything is. With `--demo`, realistic traffic runs
//! through the proxy ([`crate::demo`]). Ctrl-C (or SIGTERM) stops the services gracefully; the
//! databases keep running for a quick restart until `orderctl down`.

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
    /// Drive realistic traffic through the proxy (creates, reads, quantity changes,
    /// rejections, the occasional bad request, SAP slowness) until Ctrl-C.
    #[arg(long)]
    demo: bool,
    /// Steps per second of the demo traffic.
    #[arg(long, default_value_t = 5.0)]
    demo_rate: f64,
}

struct Service {
    name: &'static str,
    port: u16,
    /// The path that answers 200 once the service is ready.
    ready: &'static str,
    env: Vec<(String, String)>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn services(
    data: &Path,
    database_url: &str,
    brokers: &str,
    admin_token: &str,
    users_file: &Path,
) -> Vec<Service> {
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
            ready: "/ready",
            env: kv(&[
                ("ORDER_SERVICE_PORT", orders.to_string()),
                ("DATABASE_URL", database_url.to_owned()),
                ("KAFKA_BROKERS", brokers.to_owned()),
            ]),
        },
        Service {
            name: "sap-mock",
            port: sap,
            ready: "/sap-mock/health",
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
            ready: "/ready",
            env: kv(&[
                ("SAP_SYNC_PORT", sync.to_string()),
                // Route modes from the proxy: sap-sync holds while a route is retired.
                ("PROXY_ADMIN_URL", format!("http://127.0.0.1:{admin}")),
                ("PROXY_ADMIN_TOKEN", admin_token.to_owned()),
                ("KAFKA_BROKERS", brokers.to_owned()),
                ("SAP_URL", sap_url.clone()),
                ("ORDER_SERVICE_URL", orders_url.clone()),
            ]),
        },
        Service {
            name: "proxy",
            port: admin,
            ready: "/ready",
            env: kv(&[
                ("PROXY_PORT", proxy.to_string()),
                ("PROXY_ADMIN_PORT", admin.to_string()),
                ("SAP_URL", sap_url),
                ("ORDER_SERVICE_URL", orders_url),
                ("PROXY_DATA_DIR", data.join("proxy").display().to_string()),
                ("ADMIN_TOKEN", admin_token.to_owned()),
                ("SAP_SYNC_URL", format!("http://127.0.0.1:{sync}")),
                // The live tail of the order events (console, `orderctl trace`).
                ("PROXY_KAFKA_BROKERS", brokers.to_owned()),
                ("PROXY_KAFKA_TOPIC", env_or("KAFKA_TOPIC", "order-events")),
                ("PROXY_USERS_FILE", users_file.display().to_string()),
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

/// The user the demo (and anyone trying a retired route) logs on with at the proxy's SAP
/// face: `DEMO`, its password generated once and kept (mode 0600) under `.data/`, only its
/// argon2 hash in the users file the proxy reads.
fn face_user(data: &Path) -> anyhow::Result<(String, String, PathBuf)> {
    let password_file = data.join("sap-face-password");
    let users_file = data.join("sap-face-users");
    let password = match std::fs::read_to_string(&password_file) {
        Ok(p) if users_file.exists() => p.trim().to_owned(),
        _ => {
            let p = uuid::Uuid::new_v4().simple().to_string();
            write_private(&password_file, &p)?;
            write_private(&users_file, &format!("DEMO:{}\n", crate::users::hash(&p)?))?;
            p
        }
    };
    Ok(("DEMO".to_owned(), password, users_file))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Waits until `GET http://127.0.0.1:<port><path>` answers 200.
async fn wait_ready(port: u16, path: &str, child: &mut Child, name: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("http://127.0.0.1:{port}{path}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last: String;
    loop {
        match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("{} answered {}", url, r.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited during start ({status}); see its log");
        }
        if Instant::now() > deadline {
            bail!("{name} was not ready within 90 s ({last}); see its log");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long one service may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Stops the services one at a time, the last started first (the proxy before sap-sync, both
/// before SAP and the order service they call, so each finishes its work against live peers):
/// SIGTERM, then SIGKILL if it has not exited within [`STOP_GRACE`].
fn terminate(children: &mut Vec<(&'static str, Child)>) {
    for (name, child) in children.iter_mut().rev() {
        if let Ok(Some(status)) = child.try_wait() {
            crate::say!("{name} had already exited ({status})");
            continue;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break true,
                Ok(None) if Instant::now() > deadline => break false,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        if exited {
            crate::say!("stopped {name}");
        } else {
            let _ = child.kill();
            let _ = child.wait();
            crate::say!(
                "stopped {name} by SIGKILL: it had not exited {} s after SIGTERM (see its log)",
                STOP_GRACE.as_secs()
            );
        }
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
    let database_url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            crate::say!("starting PostgreSQL ...");
            infra::script(&root, "postgres.sh", &["start"])?;
            infra::script(&root, "postgres.sh", &["url"])?
        }
    };
    let brokers = match std::env::var("KAFKA_BROKERS") {
        Ok(b) => b,
        Err(_) => {
            crate::say!("starting Kafka ...");
            infra::script(&root, "kafka.sh", &["start"])?;
            infra::script(&root, "kafka.sh", &["brokers"])?
        }
    };
    crate::say!("infrastructure up: PostgreSQL, Kafka at {brokers}");
    if args.infra_only {
        return Ok(());
    }
    let (token, token_file) = admin_token(&data)?;
    let (face_name, face_password, users_file) = face_user(&data)?;
    let mut children: Vec<(&'static str, Child)> = Vec::new();
    let mut ports = std::collections::HashMap::new();
    for svc in services(&data, &database_url, &brokers, &token, &users_file) {
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
        if let Err(e) = wait_ready(svc.port, svc.ready, &mut child, svc.name).await {
            children.push((svc.name, child));
            terminate(&mut children);
            return Err(e.context(format!("log: {}", log_path.display())));
        }
        crate::say!("{:<14} ready", svc.name);
        ports.insert(svc.name, svc.port);
        children.push((svc.name, child));
    }
    let port = |name: &str| ports.get(name).copied().unwrap_or_default();
    let env_port =
        |var: &str, default: u16| env_or(var, &default.to_string()).parse().unwrap_or(default);
    let proxy_url = format!("http://127.0.0.1:{}", env_port("PROXY_PORT", 8080));
    let admin_url = format!("http://127.0.0.1:{}", port("proxy"));
    let emulator_url = format!("http://127.0.0.1:{}", port("sap-mock"));
    crate::say!();
    crate::say!("{:<26} {}", "what", "where");
    for (what, at) in [
        (
            "SAP's API (the shop's entry)",
            format!("{proxy_url}/sap/opu/odata/sap/API_SALES_ORDER_SRV/"),
        ),
        (
            "migration console",
            format!("{admin_url}/console (the admin token logs on)"),
        ),
        ("proxy admin API", format!("{admin_url}/admin/v1/routes")),
        (
            "order service REST API",
            format!("http://127.0.0.1:{}/api/v1/orders", port("order-service")),
        ),
        (
            "SAP emulator",
            format!("{emulator_url}/sap/opu/odata/sap/API_SALES_ORDER_SRV/"),
        ),
        (
            "sap-sync status",
            format!("http://127.0.0.1:{}/status", port("sap-sync")),
        ),
        ("PostgreSQL", redact(&database_url)),
        ("Kafka", brokers.clone()),
        ("logs", data.join("logs").display().to_string()),
    ] {
        crate::say!("{what:<26} {at}");
    }
    match &token_file {
        Some(path) => crate::say!("{:<26} in {}", "admin token", path.display()),
        None => crate::say!("{:<26} from ADMIN_TOKEN", "admin token"),
    }
    crate::say!(
        "{:<26} user {face_name}, password in {} (used when a route is retired)",
        "SAP face logon",
        data.join("sap-face-password").display()
    );
    crate::say!();
    crate::say!(
        "stack is up; Ctrl-C stops the services (orderctl down also stops PostgreSQL and Kafka)"
    );
    let demo = args.demo.then(|| {
        crate::say!(
            "demo traffic: {} steps/s through {proxy_url} (creates, reads, quantity changes, rejections, bad requests, SAP slowness)",
            args.demo_rate
        );
        let target = crate::demo::Target {
            proxy: proxy_url.clone(),
            admin: admin_url.clone(),
            admin_token: token.clone(),
            emulator: Some(emulator_url.clone()),
            user: Some((face_name.clone(), face_password.clone())),
        };
        tokio::spawn(crate::demo::run(
            target,
            args.demo_rate,
            Default::default(),
        ))
    });

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
    if let Some(d) = demo {
        d.abort();
        crate::demo::reset_emulator(&emulator_url).await;
    }
    terminate(&mut children);
    match failure {
        Some(msg) => bail!(msg),
        None => Ok(()),
    }
}

/// `url` without its password (`postgres://user:secret@host/db` → `postgres://user:***@host/db`).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let auth = &url[scheme + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Stops PostgreSQL and Kafka.
pub fn down() -> anyhow::Result<()> {
    let root = infra::repo_root()?;
    infra::script(&root, "kafka.sh", &["stop"])?;
    infra::script(&root, "postgres.sh", &["stop"])?;
    crate::say!("PostgreSQL and Kafka stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_database_url_is_printed_without_its_password() {
        assert_eq!(
            redact("postgres://orders:s3cret@db:5432/orders"),
            "postgres://orders:***@db:5432/orders"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/orders"),
            "postgres://postgres@127.0.0.1:5432/orders"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
