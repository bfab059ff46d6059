//! `orderctl routes | mode | replays`: the proxy's admin API from the command line.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Where the admin API is and the token for changes.
#[derive(clap::Args)]
pub struct Target {
    /// The proxy's admin API.
    #[arg(long, env = "PROXY_ADMIN_URL", default_value = "http://127.0.0.1:9080")]
    admin_url: String,
    /// Bearer token for changes (`.data/admin-token` when `orderctl up` generated it).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl Target {
    /// The admin API's base URL.
    pub fn base(&self) -> &str {
        self.admin_url.trim_end_matches('/')
    }

    /// A path on the admin API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The bearer token: given, or the one `orderctl up` generated.
    pub fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.admin_token {
            return Ok(t.clone());
        }
        let root = crate::infra::repo_root()?;
        std::fs::read_to_string(root.join(".data/admin-token"))
            .map(|t| t.trim().to_owned())
            .context("no ADMIN_TOKEN and no .data/admin-token")
    }
}

async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("the proxy answered {status}: {body}");
    }
    Ok(body)
}

/// Lists the routes with their mode and readiness.
pub async fn routes(target: Target) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .get(target.url("/admin/v1/routes"))
        .bearer_auth(target.token()?)
        .send()
        .await?;
    let body = answer(r).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// Switches one route's mode.
pub async fn mode(target: Target, route: String, mode: String, force: bool) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .put(target.url(&format!("/admin/v1/routes/{route}/mode")))
        .bearer_auth(target.token()?)
        .json(&json!({ "mode": mode, "force": force }))
        .send()
        .await?;
    let body = answer(r).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// What to do with the replay log.
#[derive(clap::Subcommand)]
pub enum ReplayAction {
    /// List pending and parked replays.
    List,
    /// Retry one now.
    Retry {
        /// Replay id.
        id: String,
    },
    /// Discard one (after handling it by hand).
    Discard {
        /// Replay id.
        id: String,
    },
}

/// Works on the proxy's replay log.
pub async fn replays(target: Target, action: ReplayAction) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let r = match action {
        ReplayAction::List => {
            client
                .get(target.url("/admin/v1/replays"))
                .bearer_auth(target.token()?)
                .send()
                .await?
        }
        ReplayAction::Retry { id } => {
            client
                .post(target.url(&format!("/admin/v1/replays/{id}/retry")))
                .bearer_auth(target.token()?)
                .send()
                .await?
        }
        ReplayAction::Discard { id } => {
            client
                .post(target.url(&format!("/admin/v1/replays/{id}/discard")))
                .bearer_auth(target.token()?)
                .send()
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&answer(r).await?)?);
    Ok(())
}
