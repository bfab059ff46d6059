//! Dual write of changes (`dual-write` mode): a change of an order (`PATCH`/`MERGE`/`PUT` of
//! `A_SalesOrder('n')` or `A_SalesOrderItem(...)`, `POST A_SalesOrder('n')/to_Item`, `DELETE`
//! of a line) goes to SAP first, and SAP's answer goes to the client unchanged. Once SAP
//! answered 2xx, the same change is applied to the order service's order with that number
//! through the SAP face's translation ([`crate::face::write::apply_dual_write`]).
//!
//! Durability: when the order service does not take the change at once (down, slow, the order
//! not there yet, or a change of the same order already waiting in the log), an `apply_change`
//! entry is committed to the replay log **before** the client gets SAP's answer, so a change the
//! client was told succeeded reaches the order service even after a SIGKILL. A refusal by the
//! order service of what SAP accepted is parked (counted, logged with the order number).
//!
//! Order per order: changes of one order are serialised in this process from SAP's call to
//! their follow-up (so both systems see them in the same order), and a change never overtakes
//! an entry logged earlier for its order: it is applied directly only when nothing is logged
//! for that order, else it is logged behind it, and the worker applies an `apply_change` only
//! when it is the oldest entry of its order.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use bytes::Bytes;
use http::{Method, Response};

use crate::dual_write::store::{ReplayEntry, ReplayKind, ReplayState};
use crate::face::write::{ApplyError, Change, apply_dual_write, number_of};
use crate::observe;
use crate::routing::routes::SALES_ORDERS;
use crate::routing::sales_orders::SalesOrders;
use crate::serve::body::ProxyBody;

type Turn = tokio::sync::Mutex<()>;

/// One lock per order number with a change in progress.
static TURNS: LazyLock<Mutex<HashMap<String, Weak<Turn>>>> = LazyLock::new(Default::default);

/// Waits for the turn of order `number`: held from SAP's call to the change's follow-up.
async fn turn(number: &str) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = {
        let mut turns = TURNS.lock().unwrap_or_else(|p| p.into_inner());
        if turns.len() > 1024 {
            turns.retain(|_, w| w.strong_count() > 0);
        }
        match turns.get(number).and_then(Weak::upgrade) {
            Some(l) => l,
            None => {
                let l = Arc::new(Turn::new(()));
                turns.insert(number.to_owned(), Arc::downgrade(&l));
                l
            }
        }
    };
    lock.lock_owned().await
}

impl SalesOrders {
    /// A change in `dual-write`: SAP first (its answer to the client byte for byte), then the
    /// order service (directly, or through the replay log). Runs on a tracked task of its own,
    /// so a client that hangs up never cuts it between SAP's answer and its follow-up.
    pub async fn dual_write_change(
        self: &Arc<Self>,
        parts: http::request::Parts,
        change: Change,
        method: Method,
        resource: String,
        body: Bytes,
    ) -> Response<ProxyBody> {
        use tracing::Instrument as _;
        let this = self.clone();
        let change = async move {
            let number = number_of(&change).to_owned();
            let _turn = turn(&number).await;
            let correlation = platform::correlation::correlation_from_headers(&parts.headers).0;
            platform::otel::set_current("correlation_id", correlation.clone());
            let sent = crate::serve::passthrough::send(
                parts,
                if body.is_empty() {
                    crate::serve::body::empty()
                } else {
                    crate::serve::body::full(body.clone())
                },
                &this.sap,
                this.config.preserve_host,
                this.config.sap_timeout,
            )
            .await;
            let resp = match sent {
                Ok(r) => r,
                // SAP unavailable: the client gets the error, the order service nothing.
                Err(e) => return e.to_response(),
            };
            if resp.status().is_success() {
                this.follow_change(&change, &method, resource, body, &correlation)
                    .await;
            }
            resp
        }
        .in_current_span();
        // The tracked task logs in the request's log span and runs under its trace context
        // (traces on only).
        let handle = if platform::otel::enabled() {
            use platform::otel::FutureExt as _;
            self.writes
                .spawn(change.with_context(platform::otel::Context::current()))
        } else {
            self.writes.spawn(change)
        };
        match handle.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "dual-write change task failed");
                crate::error::ProxyError::Storage("the change could not be completed".into())
                    .to_response()
            }
        }
    }

    /// The order service's side of a change SAP accepted.
    async fn follow_change(
        &self,
        change: &Change,
        method: &Method,
        resource: String,
        body: Bytes,
        correlation: &str,
    ) {
        use base64::Engine;
        let number = number_of(change).to_owned();
        let mut entry = ReplayEntry::new(
            ReplayKind::ApplyChange {
                sales_order: number.clone(),
                method: method.as_str().to_owned(),
                resource,
                body_b64: base64::engine::general_purpose::STANDARD.encode(&body),
            },
            SALES_ORDERS,
            correlation,
        );
        let outcome = match self.store.first_for_order(number.clone()).await {
            Ok(Some(ahead)) => Err(ApplyError::Unavailable(format!(
                "queued behind replay {ahead} of the same order"
            ))),
            Ok(None) => {
                apply_dual_write(
                    self.orders.as_ref(),
                    &self.config.rejection_reasons,
                    change,
                    &body,
                    &entry.id,
                    correlation,
                )
                .await
            }
            Err(e) => Err(ApplyError::Unavailable(e.to_string())),
        };
        let (label, detail) = match outcome {
            Ok(()) => {
                observe::dual_write_change("applied", &number, correlation, "");
                return;
            }
            Err(ApplyError::NotFound) => (
                "logged",
                "the order is not in the order service yet".to_owned(),
            ),
            Err(ApplyError::Unavailable(d)) => ("logged", d),
            Err(ApplyError::Refused(d)) => {
                entry.state = ReplayState::Parked;
                ("refused", d)
            }
        };
        entry.last_error = Some(detail.clone());
        match self.store.put_replay(entry).await {
            Ok(()) => {
                observe::dual_write_change(label, &number, correlation, &detail);
                self.replay_wakeup.notify_one();
            }
            Err(e) => observe::dual_write_change("lost", &number, correlation, &e.to_string()),
        }
    }
}
