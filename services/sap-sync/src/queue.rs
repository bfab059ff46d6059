//! Work keyed by order: one order's jobs one after another, in the order they came, different
//! orders at once on whichever worker is free.
//!
//! A fixed lane per key (hash modulo the number of workers) keeps per-key order too, but a
//! lane that happens to get more orders, or one slow order, holds up everything hashed to it,
//! and a full lane stops the fetch for every other lane. Here any free worker takes the next
//! order that has work and no job in progress; the number of jobs held at once is bounded, so a
//! slow SAP slows the fetch instead of filling memory.
//!
//! Each job carries its order's version. A worker that takes a job is told whether a later job
//! of the same order, with a higher version, is already queued: that job carries the whole
//! order, so the earlier one is superseded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

struct Entry<J> {
    jobs: VecDeque<(i64, J, OwnedSemaphorePermit)>,
}

struct State<J> {
    /// Keys with queued jobs or a job in progress.
    entries: HashMap<String, Entry<J>>,
    /// Keys with queued jobs and none in progress, oldest first.
    ready: VecDeque<String>,
    closed: bool,
}

/// The queue.
pub struct KeyedQueue<J> {
    state: Mutex<State<J>>,
    notify: Notify,
    room: Arc<Semaphore>,
}

/// A job taken by a worker; hand it back with [`KeyedQueue::done`].
pub struct Taken<J> {
    /// The key.
    pub key: String,
    /// The job.
    pub job: J,
    /// Its version.
    pub version: i64,
    /// A later job of the same key with a higher version is queued behind it.
    pub superseded: bool,
    _permit: OwnedSemaphorePermit,
}

impl<J> KeyedQueue<J> {
    /// A queue holding at most `capacity` jobs (queued or in progress).
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                ready: VecDeque::new(),
                closed: false,
            }),
            notify: Notify::new(),
            room: Arc::new(Semaphore::new(capacity.max(1))),
        }
    }

    /// Adds a job; waits while the queue is full.
    pub async fn push(&self, key: &str, version: i64, job: J) {
        let permit = self
            .room
            .clone()
            .acquire_owned()
            .await
            .expect("the queue's semaphore is never closed");
        let mut s = self.state.lock().expect("queue");
        match s.entries.get_mut(key) {
            Some(e) => e.jobs.push_back((version, job, permit)),
            None => {
                s.entries.insert(
                    key.to_owned(),
                    Entry {
                        jobs: VecDeque::from([(version, job, permit)]),
                    },
                );
                s.ready.push_back(key.to_owned());
                drop(s);
                self.notify.notify_one();
            }
        }
    }

    /// The next job whose key has none in progress; `None` once closed and empty.
    pub async fn next(&self) -> Option<Taken<J>> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().expect("queue");
                if let Some(key) = s.ready.pop_front() {
                    let more_ready = !s.ready.is_empty();
                    let e = s.entries.get_mut(&key).expect("a ready key has an entry");
                    let (version, job, permit) = e.jobs.pop_front().expect("a ready key has a job");
                    let superseded = e.jobs.iter().any(|(v, _, _)| *v > version);
                    drop(s);
                    if more_ready {
                        // Pass the wake-up on: another worker may take the next key.
                        self.notify.notify_one();
                    }
                    return Some(Taken {
                        key,
                        job,
                        version,
                        superseded,
                        _permit: permit,
                    });
                }
                if s.closed && s.entries.is_empty() {
                    drop(s);
                    self.notify.notify_one();
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The worker finished `taken`: the key's next job, if any, becomes ready.
    pub fn done(&self, taken: Taken<J>) {
        let mut s = self.state.lock().expect("queue");
        let empty = s.entries.get(&taken.key).is_none_or(|e| e.jobs.is_empty());
        if empty {
            s.entries.remove(&taken.key);
            if s.closed && s.entries.is_empty() {
                drop(s);
                self.notify.notify_waiters();
                return;
            }
        } else {
            s.ready.push_back(taken.key.clone());
        }
        drop(s);
        self.notify.notify_one();
        drop(taken);
    }

    /// No more jobs will be pushed; workers end once the queued ones are done.
    pub fn close(&self) {
        self.state.lock().expect("queue").closed = true;
        self.notify.notify_waiters();
    }

    /// Jobs queued or in progress.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .expect("queue")
            .entries
            .values()
            .map(|e| e.jobs.len())
            .sum()
    }

    /// True when nothing is queued (jobs may be in progress).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_key_in_order_and_one_at_a_time_other_keys_at_once() {
        let q = Arc::new(KeyedQueue::<(String, u32)>::new(1000));
        for i in 0..50u32 {
            for k in ["a", "b", "c", "d"] {
                q.push(k, i64::from(i), (k.to_owned(), i)).await;
            }
        }
        q.close();
        let seen = Arc::new(Mutex::new(HashMap::<String, Vec<u32>>::new()));
        let in_progress = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (q, seen, busy, peak) =
                (q.clone(), seen.clone(), in_progress.clone(), peak.clone());
            workers.push(tokio::spawn(async move {
                while let Some(t) = q.next().await {
                    {
                        let mut b = busy.lock().unwrap();
                        assert!(b.insert(t.key.clone()), "{} taken twice at once", t.key);
                        peak.fetch_max(b.len(), Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    seen.lock()
                        .unwrap()
                        .entry(t.job.0.clone())
                        .or_default()
                        .push(t.job.1);
                    busy.lock().unwrap().remove(&t.key);
                    q.done(t);
                }
            }));
        }
        for w in workers {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("workers end once closed and drained")
                .unwrap();
        }
        let seen = seen.lock().unwrap();
        for k in ["a", "b", "c", "d"] {
            assert_eq!(seen[k], (0..50).collect::<Vec<_>>(), "{k} out of order");
        }
        assert!(
            peak.load(Ordering::SeqCst) > 1,
            "keys were never worked at once"
        );
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_slow_key_does_not_hold_up_the_others() {
        let q = Arc::new(KeyedQueue::<u32>::new(100));
        for i in 0..5 {
            q.push("slow", i, 0).await;
        }
        for i in 0..20u32 {
            q.push(&format!("k{i}"), 1, i).await;
        }
        let slow = q.next().await.unwrap();
        assert_eq!(slow.key, "slow");
        // While "slow" is in progress, every other key is handed out; "slow" is not again.
        for _ in 0..20 {
            let t = q.next().await.unwrap();
            assert_ne!(t.key, "slow");
            q.done(t);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), q.next())
                .await
                .is_err(),
            "the slow key's next job was handed out while its first is in progress"
        );
        q.done(slow);
        assert_eq!(q.next().await.unwrap().key, "slow");
    }

    #[tokio::test]
    async fn a_job_with_a_later_version_queued_behind_it_is_superseded() {
        let q = KeyedQueue::<()>::new(10);
        q.push("o", 1, ()).await;
        q.push("o", 2, ()).await;
        q.push("p", 5, ()).await;
        q.push("p", 5, ()).await; // a redelivered duplicate is not "later"
        let t = q.next().await.unwrap();
        assert_eq!((t.key.as_str(), t.version, t.superseded), ("o", 1, true));
        let p = q.next().await.unwrap();
        assert_eq!((p.key.as_str(), p.superseded), ("p", false));
        q.done(t);
        let t = q.next().await.unwrap();
        assert_eq!((t.version, t.superseded), (2, false));
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_producer_wait() {
        let q = Arc::new(KeyedQueue::<u32>::new(2));
        q.push("a", 1, 1).await;
        q.push("b", 1, 2).await;
        let q2 = q.clone();
        let third = tokio::spawn(async move { q2.push("c", 1, 3).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!third.is_finished(), "a third job fit into room for two");
        let t = q.next().await.unwrap();
        q.done(t);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("room was made")
            .unwrap();
        assert_eq!(q.len(), 2);
    }
}
