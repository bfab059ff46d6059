//! Live numbers for the console's charts, without touching the request path.
//!
//! Every [`TICK`] a sampler reads what the proxy already records for Prometheus (the
//! `proxy_request_duration_seconds` and `proxy_upstream_duration_seconds` histograms, the
//! dual-write outcome counters) and keeps the last [`KEEP`] samples. A series is the difference
//! of two neighbouring samples: request rates, error rates and latency percentiles per route and
//! per upstream over each interval, interpolated inside the histogram's buckets as Prometheus'
//! `histogram_quantile` does. The request path records nothing new for this.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How often the sampler reads the counters.
pub const TICK: Duration = Duration::from_secs(2);
/// Samples kept: ten minutes at [`TICK`].
pub const KEEP: usize = 300;

/// The upstreams charted: the two systems behind the SAP face.
const TRAFFIC_UPSTREAMS: [&str; 2] = ["sap", "order-service"];

/// Cumulative bucket counts of one histogram (upper bounds ascending; `+Inf` last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    bounds: Vec<f64>,
    counts: Vec<f64>,
}

impl Buckets {
    fn add(&mut self, bound: f64, count: f64) {
        match self.bounds.iter().position(|b| *b == bound) {
            Some(i) => self.counts[i] += count,
            None => {
                let at = self.bounds.partition_point(|b| *b < bound);
                self.bounds.insert(at, bound);
                self.counts.insert(at, count);
            }
        }
    }

    fn total(&self) -> f64 {
        self.counts.last().copied().unwrap_or(0.0)
    }

    /// `self - earlier`, bucket by bucket (a restarted counter counts from zero).
    fn since(&self, earlier: Option<&Buckets>) -> Buckets {
        let Some(e) = earlier.filter(|e| e.bounds == self.bounds && e.total() <= self.total())
        else {
            return self.clone();
        };
        Buckets {
            bounds: self.bounds.clone(),
            counts: self
                .counts
                .iter()
                .zip(&e.counts)
                .map(|(a, b)| (a - b).max(0.0))
                .collect(),
        }
    }

    /// The `q` quantile in seconds, interpolated linearly inside its bucket; `None` without
    /// observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = 0.0;
        let mut below = 0.0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if *count >= rank {
                if bound.is_infinite() {
                    // Beyond the last finite bound: that bound is the best estimate.
                    return Some(lower);
                }
                let inside = count - below;
                let frac = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return Some(lower + (bound - lower) * frac);
            }
            lower = *bound;
            below = *count;
        }
        Some(lower)
    }
}

/// One reading of the counters.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Per route: request latencies of every answer.
    pub routes: BTreeMap<String, Buckets>,
    /// Per route: answers with a 5xx status.
    pub route_errors: BTreeMap<String, f64>,
    /// Per upstream: call latencies of every outcome.
    pub upstreams: BTreeMap<String, Buckets>,
    /// Per upstream: calls that failed (no answer, timeout, a 5xx).
    pub upstream_failures: BTreeMap<String, f64>,
    /// Dual-write outcome counts by class.
    pub dual_write: BTreeMap<String, f64>,
}

/// Parses `name{a="x",b="y"} value` into (name, labels, value); `None` for comments and lines
/// that are not a sample.
fn parse_line(line: &str) -> Option<(&str, HashMap<&str, &str>, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = match value.trim() {
        "+Inf" => f64::INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let mut map = HashMap::new();
    let mut rest = labels;
    while let Some((key, after)) = rest.split_once("=\"") {
        let end = after.find('"')?;
        map.insert(key.trim_start_matches(',').trim(), &after[..end]);
        rest = &after[end + 1..];
    }
    Some((name, map, value))
}

fn bound_of(labels: &HashMap<&str, &str>) -> Option<f64> {
    match *labels.get("le")? {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

/// Reads a sample out of the Prometheus text the proxy renders.
pub fn read_sample(text: &str, at: DateTime<Utc>, dual_write: &serde_json::Value) -> Sample {
    let mut s = Sample {
        at,
        ..Sample::default()
    };
    for line in text.lines() {
        let Some((name, labels, value)) = parse_line(line) else {
            continue;
        };
        match name {
            "proxy_request_duration_seconds_bucket" => {
                let (Some(route), Some(bound)) = (labels.get("route"), bound_of(&labels)) else {
                    continue;
                };
                s.routes
                    .entry((*route).to_owned())
                    .or_default()
                    .add(bound, value);
                if bound.is_infinite() && labels.get("status") == Some(&"5xx") {
                    *s.route_errors.entry((*route).to_owned()).or_default() += value;
                }
            }
            "proxy_upstream_duration_seconds_bucket" => {
                let (Some(up), Some(bound)) = (labels.get("upstream"), bound_of(&labels)) else {
                    continue;
                };
                // Only the upstreams that carry the shop's traffic; the admin side's own reads
                // (sap-sync's status, the console's) are not what an operator watches here.
                if !TRAFFIC_UPSTREAMS.contains(up) {
                    continue;
                }
                s.upstreams
                    .entry((*up).to_owned())
                    .or_default()
                    .add(bound, value);
                // "response": an answer below 500; every other outcome is a failed call.
                let ok = labels.get("outcome") == Some(&"response");
                if bound.is_infinite() && !ok {
                    *s.upstream_failures.entry((*up).to_owned()).or_default() += value;
                }
            }
            _ => {}
        }
    }
    if let Some(m) = dual_write.as_object() {
        for (k, v) in m {
            s.dual_write.insert(k.clone(), v.as_f64().unwrap_or(0.0));
        }
    }
    s
}

/// Rates and percentiles of one thing (a route, an upstream) over each interval.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Line {
    /// Requests (or calls) per second.
    pub rate: Vec<f64>,
    /// Requests (or calls) in the interval: exact where a rate times a nominal interval is not
    /// (a tick the sampler missed under load makes its interval longer).
    pub requests: Vec<f64>,
    /// Errors (5xx answers, failed calls) per second.
    pub errors: Vec<f64>,
    /// Latency percentiles in milliseconds (`null` for an interval without requests).
    pub p50_ms: Vec<Option<f64>>,
    /// 95th percentile.
    pub p95_ms: Vec<Option<f64>>,
    /// 99th percentile.
    pub p99_ms: Vec<Option<f64>>,
}

/// What the console's charts draw: one point per interval between samples.
#[derive(Debug, Default, Serialize)]
pub struct Series {
    /// End of each interval, Unix seconds.
    pub t: Vec<i64>,
    /// Per route.
    pub routes: BTreeMap<String, Line>,
    /// Per upstream (`sap`, `order-service`).
    pub upstreams: BTreeMap<String, Line>,
    /// Dual-write outcomes per second, by class.
    pub dual_write: BTreeMap<String, Vec<f64>>,
}

fn push(
    line: &mut Line,
    now: &Buckets,
    before: Option<&Buckets>,
    errs: (f64, f64),
    secs: f64,
    fill: usize,
) {
    // A line that appeared later starts with empty points so every line has one per interval.
    while line.rate.len() < fill {
        line.rate.push(0.0);
        line.requests.push(0.0);
        line.errors.push(0.0);
        line.p50_ms.push(None);
        line.p95_ms.push(None);
        line.p99_ms.push(None);
    }
    let d = now.since(before);
    let ms = |q| d.quantile(q).map(|s| (s * 1000.0 * 100.0).round() / 100.0);
    line.rate.push(d.total() / secs);
    line.requests.push(d.total());
    line.errors.push((errs.0 - errs.1).max(0.0) / secs);
    line.p50_ms.push(ms(0.50));
    line.p95_ms.push(ms(0.95));
    line.p99_ms.push(ms(0.99));
}

/// The series over the samples (oldest first).
pub fn series(samples: &[Sample]) -> Series {
    let mut out = Series::default();
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let secs = ((b.at - a.at).num_milliseconds() as f64 / 1000.0).max(0.001);
        let fill = out.t.len();
        for (name, buckets) in &b.routes {
            let errs = (
                b.route_errors.get(name).copied().unwrap_or(0.0),
                a.route_errors.get(name).copied().unwrap_or(0.0),
            );
            let line = out.routes.entry(name.clone()).or_default();
            push(line, buckets, a.routes.get(name), errs, secs, fill);
        }
        for (name, buckets) in &b.upstreams {
            let errs = (
                b.upstream_failures.get(name).copied().unwrap_or(0.0),
                a.upstream_failures.get(name).copied().unwrap_or(0.0),
            );
            let line = out.upstreams.entry(name.clone()).or_default();
            push(line, buckets, a.upstreams.get(name), errs, secs, fill);
        }
        for (class, n) in &b.dual_write {
            let v = out.dual_write.entry(class.clone()).or_default();
            v.resize(fill, 0.0);
            let before = a.dual_write.get(class).copied().unwrap_or(0.0);
            v.push((n - before).max(0.0) / secs);
        }
        out.t.push(b.at.timestamp());
    }
    out
}

/// The last [`KEEP`] samples.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Adds a sample, dropping the oldest beyond [`KEEP`].
    pub fn push(&self, s: Sample) {
        let mut q = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// The series over the last `points` intervals.
    pub fn series(&self, points: usize) -> Series {
        let q = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let skip = q.len().saturating_sub(points + 1);
        let samples: Vec<Sample> = q.iter().skip(skip).cloned().collect();
        series(&samples)
    }
}

/// Takes a sample every [`TICK`] until `stop`.
pub async fn run(history: std::sync::Arc<History>, stop: tokio_util::sync::CancellationToken) {
    let handle = platform::http_metrics::prometheus_handle();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let text = handle.render();
        history.push(read_sample(
            &text,
            Utc::now(),
            &crate::observe::outcome_counts(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_A: &str = r#"# TYPE proxy_request_duration_seconds histogram
proxy_request_duration_seconds_bucket{route="sales-orders",operation="create",mode="dual-write",status="2xx",le="0.005"} 0
proxy_request_duration_seconds_bucket{route="sales-orders",operation="create",mode="dual-write",status="2xx",le="0.01"} 0
proxy_request_duration_seconds_bucket{route="sales-orders",operation="create",mode="dual-write",status="2xx",le="+Inf"} 0
proxy_request_duration_seconds_count{route="sales-orders",operation="create",mode="dual-write",status="2xx"} 0
proxy_upstream_duration_seconds_bucket{upstream="sap",outcome="response",le="0.01"} 0
proxy_upstream_duration_seconds_bucket{upstream="sap",outcome="response",le="+Inf"} 0
"#;

    const TEXT_B: &str = r#"proxy_request_duration_seconds_bucket{route="sales-orders",operation="create",mode="dual-write",status="2xx",le="0.005"} 10
proxy_request_duration_seconds_bucket{route="sales-orders",operation="create",mode="dual-write",status="2xx",le="0.01"} 18
proxy_request_duration_seconds_bucket{route="sales-orders",operation="create",mode="dual-write",status="2xx",le="+Inf"} 20
proxy_request_duration_seconds_bucket{route="sales-orders",operation="read",mode="dual-write",status="5xx",le="0.005"} 0
proxy_request_duration_seconds_bucket{route="sales-orders",operation="read",mode="dual-write",status="5xx",le="0.01"} 0
proxy_request_duration_seconds_bucket{route="sales-orders",operation="read",mode="dual-write",status="5xx",le="+Inf"} 4
proxy_upstream_duration_seconds_bucket{upstream="sap",outcome="response",le="0.01"} 6
proxy_upstream_duration_seconds_bucket{upstream="sap",outcome="response",le="+Inf"} 6
proxy_upstream_duration_seconds_bucket{upstream="sap",outcome="timeout",le="0.01"} 0
proxy_upstream_duration_seconds_bucket{upstream="sap",outcome="timeout",le="+Inf"} 2
proxy_upstream_duration_seconds_bucket{upstream="sap-sync",outcome="response",le="+Inf"} 7
"#;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn rates_errors_and_percentiles_come_from_the_difference_of_two_samples() {
        let dw_a = serde_json::json!({"both_ok": 1, "sap_only": 0});
        let dw_b = serde_json::json!({"both_ok": 9, "sap_only": 2});
        let a = read_sample(TEXT_A, at(0), &dw_a);
        let b = read_sample(TEXT_B, at(2), &dw_b);
        let s = series(&[a, b]);
        assert_eq!(s.t, vec![at(2).timestamp()]);
        let r = &s.routes["sales-orders"];
        // 24 answers in 2 s, 4 of them 5xx.
        assert_eq!(r.rate, vec![12.0]);
        assert_eq!(r.requests, vec![24.0]);
        assert_eq!(r.errors, vec![2.0]);
        // Rank 12 of 24: the 10 below 5 ms, 2 of the 8 between 5 and 10 ms -> 6.25 ms.
        assert_eq!(r.p50_ms, vec![Some(6.25)]);
        // Rank 23.76: beyond 10 ms, in the +Inf bucket: the last finite bound.
        assert_eq!(r.p99_ms, vec![Some(10.0)]);
        let sap = &s.upstreams["sap"];
        assert_eq!(sap.rate, vec![4.0]);
        assert_eq!(sap.errors, vec![1.0]);
        assert!(
            !s.upstreams.contains_key("sap-sync"),
            "admin-side calls are not charted"
        );
        assert_eq!(s.dual_write["both_ok"], vec![4.0]);
        assert_eq!(s.dual_write["sap_only"], vec![1.0]);
    }

    #[test]
    fn an_interval_stretched_by_a_missed_tick_keeps_its_exact_count() {
        let none = serde_json::json!({});
        let a = read_sample(TEXT_A, at(0), &none);
        let b = read_sample(TEXT_B, at(5), &none);
        let r = &series(&[a, b]).routes["sales-orders"];
        assert_eq!(r.requests, vec![24.0]);
        assert!((r.rate[0] - 4.8).abs() < 1e-9, "{:?}", r.rate);
    }

    #[test]
    fn an_interval_without_requests_has_no_percentile_and_a_restart_counts_from_zero() {
        let none = serde_json::json!({});
        let b = read_sample(TEXT_B, at(0), &none);
        let b2 = read_sample(TEXT_B, at(2), &none);
        let a = read_sample(TEXT_A, at(4), &none);
        let s = series(&[b, b2, a]);
        let r = &s.routes["sales-orders"];
        assert_eq!(r.rate, vec![0.0, 0.0]);
        assert_eq!(r.p50_ms, vec![None, None]);
    }

    #[test]
    fn the_history_keeps_the_newest_samples_only() {
        let h = History::default();
        for i in 0..(KEEP as i64 + 10) {
            h.push(read_sample(TEXT_A, at(i * 2), &serde_json::json!({})));
        }
        let s = h.series(5);
        assert_eq!(s.t.len(), 5);
        assert_eq!(*s.t.last().unwrap(), at((KEEP as i64 + 9) * 2).timestamp());
        assert_eq!(h.series(10_000).t.len(), KEEP - 1);
    }
}
