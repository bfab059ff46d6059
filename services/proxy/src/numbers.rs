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

use crate::order_client::OrderService;
use crate::store::Store;

/// How many numbers move from the store into memory at a time.
const TAKE: usize = 32;

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
                low_water: u64::from(block / 2),
                block: block.max(1),
            }),
        }
    }

    /// The next number, or `None` when none is reserved and the order service cannot reserve
    /// any now (the create then goes without one: SAP numbers it internally).
    pub async fn next(&self) -> Option<String> {
        if let Some(n) = self.pop() {
            return Some(n);
        }
        for _ in 0..2 {
            match self.inner.store.take_numbers(TAKE).await {
                Ok((taken, left)) if !taken.is_empty() => {
                    if left < self.inner.low_water {
                        self.refill_in_background();
                    }
                    let mut memory = self.lock();
                    memory.extend(taken);
                    return memory.pop_front();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "order number pool unreadable");
                    return None;
                }
            }
            // Nothing in the store: reserve now, once.
            if !self.refill().await {
                break;
            }
        }
        crate::observe::order_numbers_exhausted();
        None
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
