//! `orderctl migration`: where each route stands in the migration, from the proxy's admin API
//! (`GET /admin/routes`): its phase (1 legacy, 2 dual-write, 3 events, 4 retired) and since when
//! (the route's `updated_at`), a return from `retired` in progress, and what blocks the next
//! step (the failing readiness criteria with what they measured).
//!
//! A table and sentences by default, `--json` for scripts. Expected failures (the proxy cannot
//! be reached, the token is refused) are one sentence on stderr and exit status 1.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::admin::Target;

/// Options of `migration`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
}

/// The phase number of a mode (`None` for a name this tool does not know).
fn phase(mode: &str) -> Option<u8> {
    match mode {
        "legacy" => Some(1),
        "dual-write" => Some(2),
        "events" => Some(3),
        "retired" => Some(4),
        _ => None,
    }
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (d, h, _) if d > 0 => format!("{d}d {h}h"),
        (_, h, m) if h > 0 => format!("{h}h {m}m"),
        (_, _, m) if m > 0 => format!("{m}m {}s", s % 60),
        _ => format!("{s}s"),
    }
}

/// One route's standing, as `--json` prints it.
pub fn standing(route: &Value, now: DateTime<Utc>) -> Value {
    let mode = route["mode"].as_str().unwrap_or("unknown");
    let since = route["updated_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let readiness = &route["readiness"];
    let blocking: Vec<Value> = readiness["criteria"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ok"] == false)
        .map(|c| json!({"name": c["name"], "detail": c["detail"]}))
        .collect();
    json!({
        "route": route["name"],
        "phase": phase(mode),
        "mode": mode,
        "since": since,
        "seconds_in_phase": since.map(|s| (now - s).num_seconds().max(0)),
        "returning_to": route["returning_to"],
        "returning_since": route["returning_since"],
        "returning_by": route["returning_by"],
        "return_progress": route["return_progress"],
        "next_mode": readiness["next_mode"],
        "ready": readiness["ready"],
        "blocking": blocking,
    })
}

/// The sentences for one route.
pub fn sentences(s: &Value) -> Vec<String> {
    let name = s["route"].as_str().unwrap_or("?");
    let mode = s["mode"].as_str().unwrap_or("?");
    let phase = s["phase"]
        .as_u64()
        .map_or("?".to_owned(), |p| p.to_string());
    let since = s["since"].as_str().unwrap_or("an unknown time");
    let how_long = s["seconds_in_phase"]
        .as_i64()
        .map(|x| format!(" ({})", human(x)))
        .unwrap_or_default();
    let mut out = vec![format!(
        "{name} is in phase {phase} ({mode}) since {since}{how_long}."
    )];
    if let Some(to) = s["returning_to"].as_str() {
        let p = &s["return_progress"];
        let progress = if p.is_null() {
            "the proxy has not asked sap-sync yet".to_owned()
        } else {
            format!(
                "{} (lag {}, parked {})",
                p["detail"].as_str().unwrap_or(""),
                p["lag"],
                p["parked"]
            )
        };
        out.push(format!(
            "It is returning to {to} since {} (asked by {}) and keeps serving as {mode} until SAP has caught up: {progress}.",
            s["returning_since"].as_str().unwrap_or("?"),
            s["returning_by"].as_str().unwrap_or("?"),
        ));
        out.push(format!(
            "To return at once regardless: orderctl mode {name} {to} --force."
        ));
        return out;
    }
    match s["next_mode"].as_str() {
        None => out.push("It is in the last phase: there is no next step.".to_owned()),
        Some(next) if s["blocking"].as_array().is_none_or(Vec::is_empty) => {
            out.push(format!("Ready for {next}: orderctl mode {name} {next}."))
        }
        Some(next) => {
            out.push(format!("Not ready for {next}; blocked by:"));
            for c in s["blocking"].as_array().into_iter().flatten() {
                out.push(format!(
                    "  - {}: {}",
                    c["name"].as_str().unwrap_or("?"),
                    c["detail"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
}

fn table(all: &[Value]) {
    println!(
        "{:<14} {:<14} {:<10} {:<12} NEXT",
        "ROUTE", "PHASE", "IN PHASE", "RETURNING"
    );
    for s in all {
        let phase = format!(
            "{} {}",
            s["phase"]
                .as_u64()
                .map_or("?".to_owned(), |p| p.to_string()),
            s["mode"].as_str().unwrap_or("?")
        );
        let next = match (s["next_mode"].as_str(), s["blocking"].as_array()) {
            _ if s["returning_to"].is_string() => "catching up".to_owned(),
            (None, _) => "-".to_owned(),
            (Some(n), Some(b)) if !b.is_empty() => format!("{n}: {} blocking", b.len()),
            (Some(n), _) => format!("{n}: ready"),
        };
        println!(
            "{:<14} {:<14} {:<10} {:<12} {next}",
            s["route"].as_str().unwrap_or("?"),
            phase,
            s["seconds_in_phase"].as_i64().map_or("?".to_owned(), human),
            s["returning_to"].as_str().unwrap_or("-"),
        );
    }
    for s in all {
        println!();
        for line in sentences(s) {
            println!("{line}");
        }
    }
}

/// Stops with one sentence on stderr (an expected failure, no backtrace) and status 1.
fn refuse(sentence: String) -> ! {
    eprintln!("orderctl migration: {sentence}");
    std::process::exit(1);
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let token = match args.target.token() {
        Ok(t) => t,
        Err(e) => refuse(format!("{e:#}: set ADMIN_TOKEN or pass --admin-token")),
    };
    let url = args.target.url("/admin/routes");
    let r = match reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => refuse(format!(
            "the proxy's admin API at {} cannot be reached ({e}).",
            args.target.base()
        )),
    };
    let status = r.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        refuse(format!(
            "the proxy at {} refused the admin token (401).",
            args.target.base()
        ));
    }
    if !status.is_success() {
        refuse(format!("the proxy answered {status} to GET /admin/routes."));
    }
    let body: Value = match r.json().await {
        Ok(b) => b,
        Err(e) => refuse(format!("the proxy's answer is not the routes list ({e}).")),
    };
    let now = Utc::now();
    let all: Vec<Value> = body["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| standing(r, now))
        .collect();
    if args.target.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "routes": all }))?
        );
    } else {
        table(&all);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_s_standing_names_its_phase_its_time_there_and_what_blocks_it() {
        let now = Utc::now();
        let route = json!({"name": "sales-orders", "mode": "events",
            "updated_at": (now - chrono::Duration::seconds(3 * 3600 + 120)).to_rfc3339(),
            "returning_to": null,
            "readiness": {"next_mode": "retired", "ready": false, "criteria": [
                {"name": "shadow_match_rate", "ok": true, "detail": "9/9"},
                {"name": "sap_sync_drained", "ok": false, "detail": "3 behind"}]}});
        let s = standing(&route, now);
        assert_eq!(
            (s["phase"].as_u64(), s["mode"].as_str()),
            (Some(3), Some("events"))
        );
        assert_eq!(
            s["blocking"],
            json!([{"name": "sap_sync_drained", "detail": "3 behind"}])
        );
        let text = sentences(&s).join("\n");
        assert!(
            text.contains("phase 3 (events)") && text.contains("(3h 2m)"),
            "{text}"
        );
        assert!(text.contains("sap_sync_drained: 3 behind"), "{text}");
    }

    #[test]
    fn a_return_in_progress_is_told_with_its_progress() {
        let route = json!({"name": "sales-orders", "mode": "retired",
            "updated_at": Utc::now().to_rfc3339(), "returning_to": "events",
            "returning_since": Utc::now().to_rfc3339(), "returning_by": "alice",
            "return_progress": {"detail": "4 events to go", "lag": 4, "parked": 0},
            "readiness": {"next_mode": null, "ready": true, "criteria": []}});
        let text = sentences(&standing(&route, Utc::now())).join("\n");
        assert!(text.contains("returning to events"), "{text}");
        assert!(text.contains("4 events to go (lag 4, parked 0)"), "{text}");
    }

    #[test]
    fn durations_read_as_an_operator_says_them() {
        assert_eq!(human(12), "12s");
        assert_eq!(human(250), "4m 10s");
        assert_eq!(human(7500), "2h 5m");
        assert_eq!(human(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
    }
}
