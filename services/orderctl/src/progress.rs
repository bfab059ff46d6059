//! Progress of long work (`orderctl backfill`'s copies, every long read of SAP's orders): a bar
//! when stdout is a terminal, otherwise a plain line on stderr at most every two seconds and at
//! the end, so what a script reads on stdout stays the same.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a plain progress line is written at most.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// One piece of long work with a known size.
pub struct Progress {
    what: &'static str,
    total: u64,
    done: AtomicU64,
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Instant>,
}

impl Progress {
    /// `total` items of `what` (e.g. "orders copied"); a bar only on a terminal and when
    /// `shown` (not for `--json`).
    pub fn new(what: &'static str, total: u64, shown: bool) -> Self {
        let bar = (shown && std::io::stdout().is_terminal() && total > 0).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} {msg} ({elapsed}, about {eta} left)",
            ) {
                bar.set_style(style);
            }
            bar.set_message(what);
            bar
        });
        Self {
            what,
            total,
            done: AtomicU64::new(0),
            bar,
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// One more item done.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// `n` more items done.
    pub fn inc_by(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(done));
                }
            }
        }
    }

    /// The plain line for `done` items.
    pub fn line(&self, done: u64) -> String {
        format!("{} of {} {}", done, self.total, self.what)
    }

    /// The work is over.
    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if self.total > 0 => eprintln!("{}", self.line(self.done.load(Ordering::Relaxed))),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_progress_counts_in_plain_lines() {
        let p = Progress::new("orders copied", 3, false);
        assert!(p.bar.is_none());
        p.inc();
        p.inc();
        assert_eq!(
            p.line(p.done.load(Ordering::Relaxed)),
            "2 of 3 orders copied"
        );
        p.finish();
    }

    #[test]
    fn pages_count_by_their_size() {
        let p = Progress::new("read from SAP", 1200, false);
        p.inc_by(500);
        p.inc_by(500);
        assert_eq!(
            p.line(p.done.load(Ordering::Relaxed)),
            "1000 of 1200 read from SAP"
        );
        p.finish();
    }
}
