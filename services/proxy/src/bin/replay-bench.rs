//! Replay-log drain benchmark: the cost of one worker poll, and of draining, with a backlog of
//! N entries (what the log holds after a long outage).
//!
//! ```sh
//! cargo build --release -p proxy && target/release/replay-bench --entries 1000000
//! ```
//!
//! It fills a fresh `proxy.redb` with N pending entries (due now), then measures:
//! - **poll (index)**: what the worker does per poll now, `due_replays(64)` from the due index;
//! - **poll (full read)**: what it did before the index, reading every entry and filtering
//!   (`list_replays()` then keep the due ones), in the same run on the same file;
//! - **drain**: removing the first `--drain` entries the way the worker does (poll 64, remove
//!   each landed entry), as entries per second.
//!
//! The ratio `full read / index` is printed.

use std::time::Instant;

use chrono::Utc;
use proxy::dual_write::store::{ReplayEntry, ReplayKind, ReplayState, Store};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("replay-bench [--entries N (1000000)] [--drain M (20000)] [--polls P (20)]");
        return Ok(());
    }
    let entries = arg("--entries", 1_000_000);
    let drain = arg("--drain", 20_000).min(entries);
    let polls = arg("--polls", 20).max(1);
    let dir = std::env::temp_dir().join(format!("replay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir)?;
    let started = Instant::now();
    let batch = 10_000;
    let mut written = 0;
    while written < entries {
        let n = batch.min(entries - written);
        let chunk: Vec<ReplayEntry> = (0..n)
            .map(|i| {
                let mut e = ReplayEntry::new(
                    ReplayKind::CreateInOrderService {
                        body: serde_json::json!({"customer_id": "17100001", "currency": "EUR",
                            "customer_reference": format!("PO-{}", written + i),
                            "items": [{"sku": "TG11", "quantity": "2", "unit": "PC"}]}),
                        idempotency_key: uuid::Uuid::now_v7().to_string(),
                        sap_order_number: Some(format!(
                            "{}",
                            8_000_000_000u64 + (written + i) as u64
                        )),
                        pricing: None,
                    },
                    "sales-orders",
                    "bench",
                );
                e.next_attempt_at = Utc::now() - chrono::Duration::seconds(1);
                e
            })
            .collect();
        store.put_replays(chunk).await?;
        written += n;
        if written % 100_000 == 0 {
            eprintln!("  filled {written}/{entries}");
        }
    }
    println!(
        "filled {entries} pending entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    for _ in 0..polls {
        let due = store.due_replays(64).await?;
        assert_eq!(due.len(), 64.min(entries));
    }
    let index_poll = t.elapsed().as_secs_f64() / polls as f64;

    let full_polls = polls.clamp(1, 3);
    let t = Instant::now();
    for _ in 0..full_polls {
        // The worker's poll before the due index: read everything, keep what is due.
        let now = Utc::now();
        let mut all = store.list_replays().await?;
        all.retain(|e| e.state == ReplayState::Pending && e.next_attempt_at <= now);
        all.truncate(64);
        assert_eq!(all.len(), 64.min(entries));
    }
    let full_poll = t.elapsed().as_secs_f64() / full_polls as f64;

    let t = Instant::now();
    let mut removed = 0;
    while removed < drain {
        let due = store.due_replays(64).await?;
        for e in due {
            store.remove_replay(e.id).await?;
            removed += 1;
        }
    }
    let drain_s = t.elapsed().as_secs_f64();
    let backlog = store.backlog().await?;

    println!(
        "| backlog | poll, due index | poll, full read (before) | ratio | drain (poll + remove, fsync each) |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {entries} | {:.3} ms | {:.1} ms | {:.0}x | {:.0} entries/s ({} removed, {} left) |",
        index_poll * 1e3,
        full_poll * 1e3,
        full_poll / index_poll,
        removed as f64 / drain_s,
        removed,
        backlog.pending
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
