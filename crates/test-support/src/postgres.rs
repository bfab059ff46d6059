//! A real PostgreSQL for tests, with a fresh database per test.

use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection;

/// A database created for one test. It is left in place afterwards for inspection; the
/// project's cluster is disposable (`.data/postgres`).
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Connection URL of the fresh database.
    pub url: String,
    /// Its name.
    pub name: String,
}

/// The admin URL of the server tests use, starting the project's cluster when needed.
///
/// `TEST_DATABASE_URL` (a URL whose user may create databases) selects an external server;
/// otherwise `scripts/postgres.sh start` runs once per test process.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return url;
        }
        run_script("start", &[]);
        let port = std::env::var("PG_PORT").unwrap_or_else(|_| "5432".into());
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    })
}

/// Creates a fresh, empty database on the test server.
pub async fn fresh_database() -> TestDatabase {
    let admin = server_url();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    TestDatabase {
        url: format!("{base}/{name}"),
        name,
    }
}

/// A PostgreSQL cluster of one test's own, on a free port, which the test may crash and
/// restart (the shared server must stay up for every other test). Removed when dropped.
#[derive(Debug)]
pub struct PrivateCluster {
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Initialises and starts a new cluster (about a second), panicking with the reason if it
    /// cannot.
    pub fn start() -> Self {
        let dir = crate::workspace_root()
            .join(".data/tmp")
            .join(format!("pg-{}", uuid::Uuid::new_v4().simple()));
        let cluster = Self {
            dir,
            port: crate::process::free_port(),
        };
        cluster.run("start");
        cluster
    }

    fn run(&self, action: &str) {
        run_script(action, &self.env());
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            ("PG_CLUSTER_DIR", self.dir.display().to_string()),
            ("PG_PORT", self.port.to_string()),
        ]
    }

    /// URL of the cluster's `orders` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/orders", self.port)
    }

    /// Stops the server at once, without a checkpoint, as a crash would.
    pub fn crash(&self) {
        self.run("crash");
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&self) {
        self.run("start");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = script_command("crash", &self.env()).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `scripts/postgres.sh <action>` with `env`, never diverted by the shell's `DATABASE_URL`.
fn script_command(action: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(crate::workspace_root().join("scripts/postgres.sh"));
    cmd.arg(action)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // The tests own their server choice; a DATABASE_URL from the shell must not divert it.
        .env_remove("DATABASE_URL")
        .env_remove("DB_HOST");
    cmd
}

/// Runs `scripts/postgres.sh <action>`, panicking with its output when it fails: tests that
/// need PostgreSQL fail loudly, never skip.
fn run_script(action: &str, env: &[(&str, String)]) {
    let out = script_command(action, env)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/postgres.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/postgres.sh {action} failed (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
