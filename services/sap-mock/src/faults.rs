//! Legacy realism: the ways a real SAP system misbehaves, as knobs.
//!
//! [`FaultSettings`] are read from `SAP_MOCK_*` at start and can be changed at runtime through
//! the admin endpoint (`/sap-mock/admin/faults`). For every OData request [`Faults::plan`] draws
//! what happens to it ([`RequestFaults`]); the HTTP layer carries the plan out:
//!
//! - **latency**: `latency_ms` + uniform `0..=latency_jitter_ms`, plus with probability
//!   `tail_rate` a heavy tail (Pareto, alpha 1.5, scale `tail_ms`, capped at 10 × `tail_ms`);
//! - **errors**: with probability `error_rate` a 500 or 503 (`error_status`) *before* any work,
//!   so nothing is stored;
//! - **hangs**: with probability `hang_rate` the request is held for `hang_ms` (past any sane
//!   caller timeout) and then processed normally, like a stuck work process that finally runs;
//! - **outage**: `unavailable` answers every request 503, `reset` drops every connection
//!   without an answer;
//! - **lost responses**: with probability `lost_response_rate` a successful write is committed
//!   and then the connection is dropped before the answer, the case that makes duplicates in
//!   real SAP (which has no idempotency);
//! - **connection limit**: connections beyond `max_connections` are answered 503.
//!
//! The admin endpoint and `/metrics` are exempt, so an operator can always turn faults off.

use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which status an injected error has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorStatus {
    /// Half 500, half 503.
    Mixed,
    /// Always 500 Internal Server Error.
    #[serde(rename = "500")]
    InternalError,
    /// Always 503 Service Unavailable.
    #[serde(rename = "503")]
    Unavailable,
}

impl FromStr for ErrorStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mixed" => Ok(Self::Mixed),
            "500" => Ok(Self::InternalError),
            "503" => Ok(Self::Unavailable),
            _ => Err("expected 500, 503 or mixed".to_owned()),
        }
    }
}

/// Full outage mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outage {
    /// Normal service.
    Off,
    /// Every OData request answers 503.
    Unavailable,
    /// Every OData request gets its connection dropped without an answer.
    Reset,
}

impl FromStr for Outage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" | "false" | "0" => Ok(Self::Off),
            "unavailable" | "503" | "on" | "true" | "1" => Ok(Self::Unavailable),
            "reset" => Ok(Self::Reset),
            _ => Err("expected off, unavailable or reset".to_owned()),
        }
    }
}

/// The fault knobs. A JSON object of the same shape is what the admin endpoint takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// `SAP_MOCK_LATENCY_MS`: added to every request.
    pub latency_ms: u64,
    /// `SAP_MOCK_LATENCY_JITTER_MS`: plus uniform `0..=jitter`.
    pub latency_jitter_ms: u64,
    /// `SAP_MOCK_TAIL_RATE` (0..1): share of requests that get the heavy tail.
    pub tail_rate: f64,
    /// `SAP_MOCK_TAIL_MS`: scale of the heavy tail.
    pub tail_ms: u64,
    /// `SAP_MOCK_ERROR_RATE` (0..1): share of requests answered 500/503 without effect.
    pub error_rate: f64,
    /// `SAP_MOCK_ERROR_STATUS` (`500`, `503`, `mixed`).
    pub error_status: ErrorStatus,
    /// `SAP_MOCK_HANG_RATE` (0..1): share of requests held for `hang_ms`.
    pub hang_rate: f64,
    /// `SAP_MOCK_HANG_MS` (default 120000).
    pub hang_ms: u64,
    /// `SAP_MOCK_OUTAGE` (`off`, `unavailable`, `reset`).
    pub outage: Outage,
    /// `SAP_MOCK_LOST_RESPONSE_RATE` (0..1): share of successful writes whose answer is lost.
    pub lost_response_rate: f64,
    /// `SAP_MOCK_MAX_CONNECTIONS`: open connections served at once; more get 503.
    pub max_connections: Option<usize>,
    /// `SAP_MOCK_GZIP_RESPONSES`: answers are gzip-compressed for clients that accept it
    /// (`Accept-Encoding: gzip`), as SAP's ICM does with HTTP compression switched on.
    pub gzip_responses: bool,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            latency_jitter_ms: 0,
            tail_rate: 0.0,
            tail_ms: 0,
            error_rate: 0.0,
            error_status: ErrorStatus::Mixed,
            hang_rate: 0.0,
            hang_ms: 120_000,
            outage: Outage::Off,
            lost_response_rate: 0.0,
            max_connections: None,
            gzip_responses: false,
        }
    }
}

impl FaultSettings {
    /// Checks rates are within 0..=1 and durations are sane.
    pub fn validate(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        for (name, rate) in [
            ("tail_rate", self.tail_rate),
            ("error_rate", self.error_rate),
            ("hang_rate", self.hang_rate),
            ("lost_response_rate", self.lost_response_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bad.push(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        let hour = 3_600_000;
        for (name, ms) in [
            ("latency_ms", self.latency_ms),
            ("latency_jitter_ms", self.latency_jitter_ms),
            ("tail_ms", self.tail_ms),
            ("hang_ms", self.hang_ms),
        ] {
            if ms > hour {
                bad.push(format!("{name} must be at most one hour, got {ms}"));
            }
        }
        if self.max_connections == Some(0) {
            bad.push("max_connections must be at least 1 (omit it for no limit)".to_owned());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestFaults {
    /// Added latency.
    pub delay: Duration,
    /// Hold the request this long first.
    pub hang: Option<Duration>,
    /// Answer this status without doing anything.
    pub error: Option<u16>,
    /// After a successful write, drop the connection instead of answering.
    pub lose_response: bool,
    /// Compress the answer when the client accepts gzip.
    pub gzip: bool,
}

/// The live fault settings, shared by all requests.
#[derive(Debug)]
pub struct Faults {
    at_start: FaultSettings,
    current: RwLock<FaultSettings>,
}

impl Faults {
    /// Starts with `settings` (also what a reset returns to).
    pub fn new(settings: FaultSettings) -> Self {
        Self {
            at_start: settings.clone(),
            current: RwLock::new(settings),
        }
    }

    /// The settings in force.
    pub fn current(&self) -> FaultSettings {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the settings after validating them.
    pub fn replace(&self, settings: FaultSettings) -> Result<FaultSettings, String> {
        settings.validate()?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = settings.clone();
        Ok(settings)
    }

    /// Returns to the settings the process started with.
    pub fn reset(&self) -> FaultSettings {
        let s = self.at_start.clone();
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = s.clone();
        s
    }

    /// Draws the faults of one request.
    pub fn plan(&self) -> RequestFaults {
        plan_with(&self.current(), &mut rand::rng())
    }
}

/// Draws the faults of one request from `s` with `rng`.
pub fn plan_with(s: &FaultSettings, rng: &mut impl Rng) -> RequestFaults {
    let hit = |rng: &mut dyn rand::RngCore, rate: f64| rate > 0.0 && rng.random::<f64>() < rate;
    let mut delay_ms = s.latency_ms as f64;
    if s.latency_jitter_ms > 0 {
        delay_ms += rng.random_range(0..=s.latency_jitter_ms) as f64;
    }
    if s.tail_ms > 0 && hit(rng, s.tail_rate) {
        // Pareto(alpha = 1.5): most tails near tail_ms, a few much longer.
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let tail = s.tail_ms as f64 / u.powf(1.0 / 1.5);
        delay_ms += tail.min(s.tail_ms as f64 * 10.0);
    }
    let error = hit(rng, s.error_rate).then(|| match s.error_status {
        ErrorStatus::InternalError => 500,
        ErrorStatus::Unavailable => 503,
        ErrorStatus::Mixed => {
            if rng.random::<bool>() {
                500
            } else {
                503
            }
        }
    });
    RequestFaults {
        delay: Duration::from_micros((delay_ms * 1000.0) as u64),
        hang: hit(rng, s.hang_rate).then(|| Duration::from_millis(s.hang_ms)),
        error,
        lose_response: hit(rng, s.lost_response_rate),
        gzip: s.gzip_responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn no_settings_means_no_faults() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            assert_eq!(
                plan_with(&FaultSettings::default(), &mut rng),
                RequestFaults::default()
            );
        }
    }

    #[test]
    fn rates_of_one_always_fire_and_latency_stays_within_its_bounds() {
        let s = FaultSettings {
            latency_ms: 10,
            latency_jitter_ms: 5,
            error_rate: 1.0,
            error_status: ErrorStatus::InternalError,
            hang_rate: 1.0,
            lost_response_rate: 1.0,
            ..FaultSettings::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..1000 {
            let p = plan_with(&s, &mut rng);
            assert!(p.delay >= Duration::from_millis(10) && p.delay <= Duration::from_millis(15));
            assert_eq!(p.error, Some(500));
            assert_eq!(p.hang, Some(Duration::from_millis(120_000)));
            assert!(p.lose_response);
        }
    }

    #[test]
    fn the_tail_is_heavy_but_capped_and_mixed_errors_use_both_statuses() {
        let s = FaultSettings {
            tail_rate: 1.0,
            tail_ms: 100,
            error_rate: 0.5,
            ..FaultSettings::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let plans: Vec<RequestFaults> = (0..2000).map(|_| plan_with(&s, &mut rng)).collect();
        assert!(plans.iter().all(|p| p.delay >= Duration::from_millis(100)));
        assert!(plans.iter().all(|p| p.delay <= Duration::from_millis(1000)));
        assert!(plans.iter().any(|p| p.delay >= Duration::from_millis(300)));
        let errors: Vec<u16> = plans.iter().filter_map(|p| p.error).collect();
        assert!(
            errors.len() > 800 && errors.len() < 1200,
            "{}",
            errors.len()
        );
        assert!(errors.contains(&500) && errors.contains(&503));
    }

    #[test]
    fn invalid_settings_are_refused_and_reset_restores_the_start() {
        let f = Faults::new(FaultSettings::default());
        assert!(
            f.replace(FaultSettings {
                error_rate: 1.5,
                ..FaultSettings::default()
            })
            .is_err()
        );
        f.replace(FaultSettings {
            latency_ms: 5,
            ..FaultSettings::default()
        })
        .unwrap();
        assert_eq!(f.current().latency_ms, 5);
        assert_eq!(f.reset(), FaultSettings::default());
    }
}
