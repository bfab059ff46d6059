//! A closed-loop HTTP load driver: N workers, each sending its next request as soon as the
//! previous one answers, for a fixed time. Latency goes into an HDR histogram (microseconds).

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What a load run measured.
pub struct LoadReport {
    /// Requests answered as expected.
    pub ok: u64,
    /// Requests that failed or answered unexpectedly.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latency of successful requests, microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Runs `concurrency` workers for `duration`; `request(worker, n)` performs one request and
/// says whether it succeeded.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, request: F) -> LoadReport
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut ok, mut errors) = (0_u64, 0_u64);
            let mut n = 0_u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                if request(w, n).await {
                    ok += 1;
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (ok, errors, hist)
        }));
    }
    let mut report = LoadReport {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
    };
    for w in workers {
        if let Ok((ok, errors, hist)) = w.await {
            report.ok += ok;
            report.errors += errors;
            let _ = report.latency_us.add(&hist);
        }
    }
    report.elapsed = start.elapsed();
    report
}
