//! `orderctl routes | mode | replays`: the proxy's admin API from the command line. Tables and
//! sentences by default, the admin API's JSON with `--json`; a refused switch is explained by
//! its failing criteria, and every refusal is one sentence on stderr with a non-zero exit.

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
    /// Print the admin API's JSON instead of tables and sentences.
    #[arg(long)]
    pub json: bool,
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

/// The admin API's answer, or its refusal in one sentence (the problem's detail, and for a
/// switch that is not ready its failing criteria, one per line).
async fn answer(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{}", refusal(status.as_u16(), &body));
    }
    Ok(body)
}

fn refusal(status: u16, body: &Value) -> String {
    let detail = body["detail"]
        .as_str()
        .or(body["title"].as_str())
        .unwrap_or("no reason given");
    let mut out = match status {
        401 => format!(
            "the proxy refused the admin token (401): {detail}. Pass --admin-token or set ADMIN_TOKEN"
        ),
        _ => format!("the proxy refused ({status}): {detail}"),
    };
    let failing: Vec<&Value> = body["criteria"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["ok"] != true).collect())
        .unwrap_or_default();
    if !failing.is_empty() {
        out.push_str("\nnot ready because:");
        for c in failing {
            out.push_str(&format!(
                "\n  ✗ {}: {}",
                c["name"].as_str().unwrap_or("?"),
                c["detail"].as_str().unwrap_or("")
            ));
        }
        out.push_str("\nfix those, or switch anyway with --force (recorded in the audit trail)");
    }
    out
}

/// Lists the routes with their mode and readiness.
pub async fn routes(target: Target) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .get(target.url("/admin/v1/routes"))
        .bearer_auth(target.token()?)
        .send()
        .await?;
    let body = answer(r).await?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", routes_table(&body));
    }
    Ok(())
}

fn routes_table(body: &Value) -> String {
    let mut out = format!(
        "{:<16} {:<11} {:<18} {:<26} {:<11} {}\n",
        "ROUTE", "MODE", "POLICY", "SINCE", "NEXT", "READY"
    );
    let empty = Vec::new();
    let routes = body["routes"].as_array().unwrap_or(&empty);
    for r in routes {
        let readiness = &r["readiness"];
        let next = readiness["next_mode"].as_str().unwrap_or("-");
        let ready = match readiness["ready"].as_bool() {
            Some(true) => "yes".to_owned(),
            Some(false) => "no".to_owned(),
            None => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<16} {:<11} {:<18} {:<26} {:<11} {}\n",
            r["name"].as_str().unwrap_or("?"),
            r["mode"].as_str().unwrap_or("?"),
            r["policy"].as_str().unwrap_or("?"),
            r["updated_at"].as_str().unwrap_or("?"),
            next,
            ready
        ));
        if let Some(to) = r["returning_to"].as_str() {
            out.push_str(&format!(
                "  returning to {to}: SAP is being brought up to date\n"
            ));
        }
        for c in readiness["criteria"].as_array().unwrap_or(&empty) {
            out.push_str(&format!(
                "  {} {}: {}\n",
                if c["ok"] == true { "✓" } else { "✗" },
                c["name"].as_str().unwrap_or("?"),
                c["detail"].as_str().unwrap_or("")
            ));
        }
    }
    if routes.is_empty() {
        out.push_str("(no routes)\n");
    }
    out
}

/// Switches one route's mode.
pub async fn mode(target: Target, route: String, mode: String, force: bool) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .put(target.url(&format!("/admin/v1/routes/{route}/mode")))
        .bearer_auth(target.token()?)
        .header("x-admin-actor", "orderctl")
        .json(&json!({ "mode": mode, "force": force }))
        .send()
        .await?;
    let accepted = r.status() == reqwest::StatusCode::ACCEPTED;
    let body = answer(r).await?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else if accepted {
        println!(
            "{route} is returning to {mode}: sap-sync is bringing SAP up to date ({}); it keeps \
             serving as retired until then. `orderctl migration` shows the progress.",
            body["detail"].as_str().unwrap_or("catching up")
        );
    } else {
        println!(
            "{route} now runs in {}{}.",
            body["mode"].as_str().unwrap_or(&mode),
            if force {
                " (forced past its readiness criteria)"
            } else {
                ""
            }
        );
    }
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
    let (action_kind, id_shown) = match &action {
        ReplayAction::List => ("list", String::new()),
        ReplayAction::Retry { id } => ("retry", id.clone()),
        ReplayAction::Discard { id } => ("discard", id.clone()),
    };
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
    let list = matches!(action_kind, "list");
    let body = answer(r).await?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else if list {
        print!("{}", replays_table(&body));
    } else {
        println!("Replay {id_shown}: {action_kind} done.");
    }
    Ok(())
}

fn replays_table(body: &Value) -> String {
    let empty = Vec::new();
    let all = body["replays"].as_array().unwrap_or(&empty);
    if all.is_empty() {
        return "The replay log is empty: every write reached both systems.\n".to_owned();
    }
    let mut out = format!(
        "{:<38} {:<14} {:<12} {:<8} {:>8} {:<26} LAST ERROR\n",
        "ID", "KIND", "ORDER", "STATE", "ATTEMPTS", "CREATED"
    );
    for e in all {
        let kind = &e["kind"];
        out.push_str(&format!(
            "{:<38} {:<14} {:<12} {:<8} {:>8} {:<26} {}\n",
            e["id"].as_str().unwrap_or("?"),
            kind["kind"].as_str().unwrap_or("?"),
            kind["sales_order"]
                .as_str()
                .or(kind["order_number"].as_str())
                .unwrap_or("-"),
            e["state"].as_str().unwrap_or("?"),
            e["attempts"].as_u64().unwrap_or(0),
            e["created_at"].as_str().unwrap_or("?"),
            e["last_error"].as_str().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "{} entr{} waiting. Retry one now: orderctl replays retry <ID>\n",
        all.len(),
        if all.len() == 1 { "y" } else { "ies" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_switch_names_its_failing_criteria_only() {
        let body = json!({"title": "Route not ready", "status": 409,
        "detail": "sales-orders is not ready for events",
        "criteria": [
            {"name": "replay_backlog_empty", "ok": true, "detail": "0 pending"},
            {"name": "sap_sync_lag", "ok": false, "detail": "500 events behind (need <= 100)"}
        ]});
        let text = refusal(409, &body);
        assert!(
            text.contains("sales-orders is not ready for events"),
            "{text}"
        );
        assert!(text.contains("✗ sap_sync_lag: 500 events behind"), "{text}");
        assert!(!text.contains("replay_backlog_empty"), "{text}");
        assert!(text.contains("--force"), "{text}");
        assert!(refusal(401, &json!({})).contains("ADMIN_TOKEN"));
    }

    #[test]
    fn the_routes_table_shows_mode_readiness_and_each_criterion() {
        let body = json!({"routes": [{"name": "sales-orders", "mode": "dual-write",
            "policy": "strict", "updated_at": "2026-12-01T10:00:00Z", "returning_to": null,
            "readiness": {"next_mode": "events", "ready": false, "criteria": [
                {"name": "shadow_match_rate", "ok": false, "detail": "9/10 matched"}]}}]});
        let t = routes_table(&body);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ROUTE"), "{t}");
        assert!(
            lines[1].contains("sales-orders")
                && lines[1].contains("dual-write")
                && lines[1].contains("events"),
            "{t}"
        );
        assert!(lines[1].trim_end().ends_with("no"), "{t}");
        assert!(
            lines[2].contains("✗ shadow_match_rate: 9/10 matched"),
            "{t}"
        );
    }

    #[test]
    fn an_empty_replay_log_is_a_sentence_and_entries_a_table() {
        assert!(replays_table(&json!({"replays": []})).starts_with("The replay log is empty"));
        let t = replays_table(
            &json!({"replays": [{"id": "r1", "kind": {"kind": "create_order", "sales_order": "4711"},
            "state": "pending", "attempts": 2, "created_at": "2026-12-01T10:00:00Z", "last_error": "order service down"}]}),
        );
        assert!(
            t.contains("4711") && t.contains("order service down") && t.contains("1 entry waiting"),
            "{t}"
        );
    }
}
