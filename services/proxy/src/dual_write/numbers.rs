//! Order numbers the proxy names on creates: one number in SAP and in the order service.
//!
//! SAP has no idempotency key for `A_SalesOrder` creates: a repeated create makes a second
//! sales order (SAP KBA 2931385, whose remedy is to supply the `SalesOrder` key externally). So
//! the proxy names the number itself. The numbers come from the order service
//! (`POST /api/v1/order-numbers`), whose range is the one SAP's order type has as its
//! *external* number range: SAP keeps a number it is given in that range and refuses a second
//! create of a number it has. That refusal is the duplicate guard, and finding out whether an
//! earlier attempt landed is a read by key.
//!
//! Numbers are reserved in blocks and kept in the proxy's store, so a create needs no round trip
//! of its own and creates keep their guard while the order service is down. A handful are taken
//! out of the store at a time into memory (one fsync per handful, not per create); numbers in
//! memory when the process dies are simply never used (gaps, never duplicates).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::dual_write::store::Store;
use crate::upstreams::order_client::OrderService;

/// How many numbers move from the store into memory at a time.
const TAKE: usize = 32;
/// Memory is topped up in the background when it holds fewer than this.
const TOP_UP_BELOW: usize = TAKE / 4;

/// The number pool.
#[derive(Clone)]
pub struct Numbers {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    orders: Arc<dyn OrderService>,
    memory: std::sync::Mutex<VecDeque<String>>,
    /// Held while a reservation runs: one at a time, and a caller that waited for another's
    /// finds the store filled instead of reserving again.
    refilling: tokio::sync::Mutex<()>,
    /// Held while numbers move from the store into memory.
    topping_up: tokio::sync::Mutex<()>,
    /// Reserve more when fewer than this are left in the store.
    low_water: u64,
    /// How many one reservation asks for.
    block: u32,
}

impl std::fmt::Debug for Numbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Numbers").finish_non_exhaustive()
    }
}

impl Numbers {
    /// A pool over the store's reserved numbers, refilled from `orders` in blocks of `block`.
    pub fn new(store: Store, orders: Arc<dyn OrderService>, block: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                orders,
                memory: std::sync::Mutex::new(VecDeque::new()),
                refilling: tokio::sync::Mutex::new(()),
                topping_up: tokio::sync::Mutex::new(()),
                low_water: u64::from(block / 2),
                block: block.max(1),
            }),
        }
    }

    /// The next number, or `None` when none is reserved and the order service cannot reserve
    /// any now. Memory is topped up from the store in the background before it runs dry, so
    /// a create waits for the store (an fsync) only when numbers were used up faster than that.
    pub async fn next(&self) -> Option<String> {
        let (number, left) = {
            let mut memory = self.lock();
            (memory.pop_front(), memory.len())
        };
        if left < TOP_UP_BELOW {
            self.top_up_in_background();
        }
        if number.is_some() {
            return number;
        }
        for _ in 0..2 {
            if let Err(e) = self.top_up().await {
                tracing::error!(error = %e, "order number pool unreadable");
                return None;
            }
            if let Some(n) = self.pop() {
                return Some(n);
            }
            // Nothing in the store: reserve now, once.
            if !self.refill().await {
                break;
            }
        }
        crate::observe::order_numbers_exhausted();
        None
    }

    /// Moves the next numbers from the store into memory unless memory holds enough (another
    /// top-up may just have run), and starts a reservation when the store runs low.
    async fn top_up(&self) -> Result<(), crate::dual_write::store::StoreError> {
        let _one_at_a_time = self.inner.topping_up.lock().await;
        if self.lock().len() >= TOP_UP_BELOW {
            return Ok(());
        }
        let (taken, left) = self.inner.store.take_numbers(TAKE).await?;
        self.lock().extend(taken);
        if left < self.inner.low_water {
            self.refill_in_background();
        }
        Ok(())
    }

    fn top_up_in_background(&self) {
        if self.inner.topping_up.try_lock().is_err() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.top_up().await {
                tracing::error!(error = %e, "order number pool unreadable");
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns a number drawn but not used; it is handed out next.
    pub fn give_back(&self, number: String) {
        self.lock().push_front(number);
    }

    fn pop(&self) -> Option<String> {
        self.lock().pop_front()
    }

    /// Reserves a block from the order service into the store unless the store holds enough
    /// already (a concurrent refill may just have filled it). `false` if nothing could be had.
    pub async fn refill(&self) -> bool {
        let _one_at_a_time = self.inner.refilling.lock().await;
        match self.inner.store.count_numbers().await {
            Ok(n) if n >= self.inner.low_water.max(1) => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "order number pool unreadable");
                return false;
            }
        }
        match self.inner.orders.reserve_numbers(self.inner.block).await {
            Ok(numbers) if !numbers.is_empty() => {
                let n = numbers.len();
                match self.inner.store.add_numbers(numbers).await {
                    Ok(()) => {
                        tracing::info!(reserved = n, "order numbers reserved");
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reserved order numbers not stored");
                        false
                    }
                }
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "reserving order numbers failed");
                false
            }
        }
    }

    /// Starts a refill unless one is running.
    pub fn refill_in_background(&self) {
        if self.inner.refilling.try_lock().is_err() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.refill().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstreams::order_client::fake::FakeOrders;
    use std::sync::atomic::Ordering;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_never_get_the_same_number_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let orders = Arc::new(FakeOrders::default());
        let mut seen = std::collections::HashSet::new();
        for _restart in 0..2 {
            let store = Store::open(dir.path()).unwrap();
            let pool = Numbers::new(store, orders.clone(), 100);
            let tasks: Vec<_> = (0..300)
                .map(|_| {
                    let pool = pool.clone();
                    tokio::spawn(async move { pool.next().await })
                })
                .collect();
            for t in tasks {
                let n = t.await.unwrap().expect("a number");
                assert!(seen.insert(n.clone()), "{n} handed out twice");
            }
        }
        assert_eq!(seen.len(), 600);
        // Reservations ran one at a time and only as needed: about 600 / 100, never one per
        // waiting create.
        let r = orders.reservations.load(Ordering::SeqCst);
        assert!((6..=12).contains(&r), "{r} reservations");
    }

    #[tokio::test]
    async fn a_number_given_back_is_the_next_one_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Numbers::new(
            Store::open(dir.path()).unwrap(),
            Arc::new(FakeOrders::default()),
            10,
        );
        let first = pool.next().await.unwrap();
        pool.give_back(first.clone());
        assert_eq!(pool.next().await.unwrap(), first);
        assert_ne!(pool.next().await.unwrap(), first);
    }
}
