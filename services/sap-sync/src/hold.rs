//! The hold: while the proxy serves the sales order route as `retired`, SAP may be switched
//! off, so sap-sync applies nothing to SAP and leaves the events in Kafka.
//!
//! sap-sync learns the route's mode by polling the proxy's admin API
//! (`GET {PROXY_ADMIN_URL}/admin/routes`, every `SAP_SYNC_MODE_POLL_MS`). The route in `retired`
//! with no `returning_to` is a hold: the consumer pauses its partitions (nothing fetched, so no
//! offset is committed past what SAP has), the workers wait before any SAP call, and the
//! backward poll of SAP is skipped. A route returning from `retired` (`returning_to` set) is
//! released: sap-sync drains what waited, and the proxy completes the switch once sap-sync
//! reports lag 0 and nothing parked.
//!
//! Until the proxy first answers, sap-sync holds (it cannot know SAP is on). When the proxy
//! cannot be reached later, the last known state stays (logged and counted). Without
//! `PROXY_ADMIN_URL` nothing ever holds.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The route sap-sync feeds SAP for.
pub const ROUTE: &str = "sales-orders";

/// What the proxy's route says sap-sync should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Apply nothing to SAP; leave events in Kafka.
    Held,
    /// Returning from `retired`: drain into SAP (partitions with a retention gap stay paused).
    Returning,
    /// Normal operation.
    Free,
}

/// The decision from one answer of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub phase: Phase,
    /// Why, for `/status` and the log.
    pub reason: String,
}

/// Reads the route's mode and return from a `GET /admin/routes` answer.
pub fn decide(routes: &Value) -> Result<Decision, String> {
    let route = routes["routes"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["name"] == ROUTE))
        .ok_or_else(|| format!("the proxy lists no route {ROUTE:?}"))?;
    let mode = route["mode"]
        .as_str()
        .ok_or_else(|| format!("route {ROUTE:?} has no mode"))?;
    let returning = route["returning_to"].as_str();
    Ok(match (mode, returning) {
        ("retired", None) => Decision {
            phase: Phase::Held,
            reason: format!("route {ROUTE} is retired: SAP is not fed"),
        },
        ("retired", Some(to)) => Decision {
            phase: Phase::Returning,
            reason: format!(
                "route {ROUTE} is returning from retired to {to}: bringing SAP up to date"
            ),
        },
        (mode, _) => Decision {
            phase: Phase::Free,
            reason: format!("route {ROUTE} is {mode}"),
        },
    })
}

#[derive(Debug, Clone)]
struct Known {
    decision: Decision,
    /// When the proxy last failed to answer (cleared by an answer), and why.
    unreachable: Option<(DateTime<Utc>, String)>,
}

/// The hold state, shared by the consumer, the workers, the backward poll and `/status`.
pub struct Hold {
    phase: watch::Sender<Phase>,
    known: Mutex<Known>,
}

impl Hold {
    /// Holding until the proxy first answers (`watching`), or free for good.
    pub fn new(watching: bool) -> Self {
        let decision = if watching {
            Decision {
                phase: Phase::Held,
                reason: "waiting for the proxy's first answer about the route's mode".into(),
            }
        } else {
            Decision {
                phase: Phase::Free,
                reason: "PROXY_ADMIN_URL is not set".into(),
            }
        };
        metrics::gauge!("sap_sync_held").set(if watching { 1.0 } else { 0.0 });
        Self {
            phase: watch::Sender::new(decision.phase),
            known: Mutex::new(Known {
                decision,
                unreachable: None,
            }),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// True while held.
    pub fn held(&self) -> bool {
        self.phase() == Phase::Held
    }

    /// Why sap-sync holds (`None` when it does not).
    pub fn reason(&self) -> Option<String> {
        let k = self.known.lock().expect("hold");
        if k.decision.phase != Phase::Held {
            return None;
        }
        Some(match &k.unreachable {
            Some((since, e)) => format!(
                "{}; the proxy is unreachable since {since} ({e}): keeping the last known state",
                k.decision.reason
            ),
            None => k.decision.reason.clone(),
        })
    }

    /// Waits until not held.
    pub async fn released(&self) {
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Held).await;
    }

    /// A receiver that sees every phase change.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Takes the proxy's answer.
    pub fn answered(&self, d: Decision) {
        let mut k = self.known.lock().expect("hold");
        if k.decision != d || k.unreachable.is_some() {
            tracing::info!(phase = ?d.phase, reason = %d.reason, "route mode from the proxy");
        }
        metrics::gauge!("sap_sync_held").set(if d.phase == Phase::Held { 1.0 } else { 0.0 });
        let phase = d.phase;
        k.decision = d;
        k.unreachable = None;
        drop(k);
        self.phase
            .send_if_modified(|p| std::mem::replace(p, phase) != phase);
    }

    /// Records that the proxy did not answer: the last known state stays.
    pub fn unreachable(&self, error: String) {
        metrics::counter!("sap_sync_mode_poll_failures_total").increment(1);
        let mut k = self.known.lock().expect("hold");
        if k.unreachable.is_none() {
            tracing::warn!(error = %error, phase = ?k.decision.phase, "the proxy's admin API did not answer; keeping the last known route mode");
            k.unreachable = Some((Utc::now(), error));
        } else {
            tracing::debug!(error = %error, "the proxy's admin API still does not answer");
        }
    }
}

/// Where the proxy's admin API is.
#[derive(Debug, Clone)]
pub struct ProxyAdmin {
    /// Base URL (`http://127.0.0.1:9080`).
    pub url: String,
    /// Bearer token of the admin API.
    pub token: Option<String>,
    /// Poll interval.
    pub poll: Duration,
}

/// Polls the proxy until `stop`.
pub async fn watch_routes(admin: ProxyAdmin, hold: std::sync::Arc<Hold>, stop: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the proxy's admin API");
            return;
        }
    };
    // Readiness is not needed here, and computing it makes the proxy ask sap-sync and the order
    // service on every poll.
    let url = format!(
        "{}/admin/routes?readiness=false",
        admin.url.trim_end_matches('/')
    );
    let mut tick = tokio::time::interval(admin.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut req = client.get(&url);
        if let Some(t) = &admin.token {
            req = req.bearer_auth(t);
        }
        let answer = async {
            let r = req.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            if !status.is_success() {
                return Err(format!("GET /admin/routes answered {status}"));
            }
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            decide(&body)
        }
        .await;
        match answer {
            Ok(d) => hold.answered(d),
            Err(e) => hold.unreachable(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routes(mode: &str, returning_to: Option<&str>) -> Value {
        json!({"routes": [{"name": "sales-orders", "mode": mode, "returning_to": returning_to}]})
    }

    #[test]
    fn retired_holds_returning_releases_and_every_other_mode_is_free() {
        assert_eq!(decide(&routes("retired", None)).unwrap().phase, Phase::Held);
        assert_eq!(
            decide(&routes("retired", Some("events"))).unwrap().phase,
            Phase::Returning
        );
        for mode in ["legacy", "dual-write", "events"] {
            assert_eq!(decide(&routes(mode, None)).unwrap().phase, Phase::Free);
        }
        assert!(decide(&json!({"routes": []})).is_err());
        assert!(decide(&json!({"title": "Unauthorized"})).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_proxy_keeps_the_last_known_state() {
        let hold = Hold::new(true);
        assert!(hold.held(), "held until the proxy first answers");
        hold.answered(decide(&routes("retired", None)).unwrap());
        hold.unreachable("connection refused".into());
        assert!(hold.held());
        assert!(hold.reason().unwrap().contains("unreachable"));
        hold.answered(decide(&routes("retired", Some("legacy"))).unwrap());
        assert_eq!(hold.phase(), Phase::Returning);
        assert_eq!(hold.reason(), None);
        hold.released().await;
        hold.unreachable("timeout".into());
        assert_eq!(hold.phase(), Phase::Returning);
        assert!(
            !Hold::new(false).held(),
            "nothing holds without PROXY_ADMIN_URL"
        );
    }
}
