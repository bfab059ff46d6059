//! The order service as the proxy sees it: a trait (so the dual-write logic can be exercised
//! against a fake) and its HTTP implementation over the pooled [`Upstream`].

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::error::UpstreamFailure;
use crate::serve::body::{empty, full};
use crate::upstreams::upstream::Upstream;

/// How an order-service call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderServiceError {
    /// The service answered 4xx: the request itself is wrong; retrying will not help.
    #[error("order service rejected the request ({status}): {detail}")]
    Rejected {
        /// Status.
        status: u16,
        /// Problem detail (body text).
        detail: String,
    },
    /// The service answered 5xx: nothing was stored (its writes are transactional).
    #[error("order service failed ({status}): {detail}")]
    ServerError {
        /// Status.
        status: u16,
        /// Body text.
        detail: String,
    },
    /// No answer.
    #[error("order service unreachable: {0}")]
    Unavailable(UpstreamFailure),
}

impl OrderServiceError {
    /// True when the order may have been stored despite the error.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, OrderServiceError::Unavailable(f) if f.is_ambiguous())
    }

    /// True when a retry can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, OrderServiceError::Rejected { .. })
    }
}

/// The order the service answered with (the fields the proxy needs, plus the whole JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCreated {
    /// Order id.
    pub id: String,
    /// The service's order number.
    pub order_number: String,
    /// The whole order.
    pub order: Value,
}

/// What a search answers: the orders of the window and, when asked, the count of all matches.
pub type SearchAnswer = (Vec<Value>, Option<u64>);

/// The calls the proxy makes to the order service.
pub trait OrderService: Send + Sync + 'static {
    /// `POST /api/v1/orders` with an idempotency key.
    fn create<'a>(
        &'a self,
        body: &'a Value,
        idempotency_key: &'a str,
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<OrderCreated, OrderServiceError>>;
    /// `POST /api/v1/orders/{id}/void`.
    fn void<'a>(
        &'a self,
        order_id: &'a str,
        reason: &'a str,
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<(), OrderServiceError>>;
    /// `PUT /api/v1/orders/{id}/sap-order-number`, adopting what SAP derived (`pricing`:
    /// currency, total, per item unit, unit price, net amount) when given.
    fn link_sap_order_number<'a>(
        &'a self,
        order_id: &'a str,
        sap_order_number: &'a str,
        pricing: Option<&'a Value>,
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<(), OrderServiceError>>;
    /// `GET /api/v1/orders?...` (query string given), the `items` array.
    fn list<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Value>, OrderServiceError>>;
    /// `POST /api/v1/orders/search` with `body` (a filter tree, order, window, count): the
    /// answer's `items` and `count`. Fakes that serve no reads may leave it out.
    fn search<'a>(
        &'a self,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<SearchAnswer, OrderServiceError>> {
        let _ = body;
        Box::pin(async {
            Err(OrderServiceError::Rejected {
                status: 501,
                detail: "search is not implemented by this order service".into(),
            })
        })
    }
    /// `GET /api/v1/master-data/{kind}/{key}` (`kind`: `materials` or `customers`); `None` on
    /// 404. Fakes that hold no master data may leave it out.
    fn master_data<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, OrderServiceError>> {
        let _ = (kind, key);
        Box::pin(async {
            Err(OrderServiceError::Rejected {
                status: 501,
                detail: "master data is not implemented by this order service".into(),
            })
        })
    }
    /// `GET /api/v1/orders/by-number/{n}`; `None` on 404.
    fn by_number<'a>(
        &'a self,
        order_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, OrderServiceError>>;
    /// `GET /ready` answered 200.
    fn ready(&self) -> BoxFuture<'_, bool>;
    /// A change of an order on the REST face (`PATCH /api/v1/orders/{id}/items/10`, ...) with
    /// `If-Match` (and `Idempotency-Key`, which a line add honours); the order as answered
    /// (`Null` for a `204`).
    fn change<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<&'a Value>,
        if_match: Option<&'a str>,
        correlation_id: &'a str,
        idempotency_key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Value, OrderServiceError>>;
    /// `POST /api/v1/order-numbers`: reserves `count` order numbers for this caller (numbers
    /// from the range SAP's order type has as its external range), ascending.
    fn reserve_numbers(&self, count: u32) -> BoxFuture<'_, Result<Vec<String>, OrderServiceError>>;
    /// `POST /api/v1/changesets`: `changes` (each `{"op", "order", "version", ...}`) applied in
    /// one transaction, all or none; the order after each change. A refusal is the refused
    /// change's problem, with its `change_index`.
    fn changeset<'a>(
        &'a self,
        changes: &'a [Value],
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, OrderServiceError>>;
}

/// The HTTP implementation.
#[derive(Debug, Clone)]
pub struct HttpOrderService {
    upstream: Arc<Upstream>,
}

impl HttpOrderService {
    /// Over the given upstream.
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), OrderServiceError> {
        let mut req = Request::builder()
            .method(method)
            .uri(self.upstream.uri_for(path))
            .header(header::ACCEPT, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(full(serde_json::to_vec(b).expect("json serialises"))),
            None => req.body(empty()),
        }
        .map_err(|e| OrderServiceError::Unavailable(UpstreamFailure::Broken(e.to_string())))?;
        let resp = self
            .upstream
            .send(req)
            .await
            .map_err(OrderServiceError::Unavailable)?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| OrderServiceError::Unavailable(UpstreamFailure::Broken(e.to_string())))?
            .to_bytes();
        if status.is_client_error() {
            return Err(OrderServiceError::Rejected {
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        if !status.is_success() {
            return Err(OrderServiceError::ServerError {
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok((status, bytes))
    }
}

fn parse_order(bytes: &[u8]) -> Result<OrderCreated, OrderServiceError> {
    let order: Value =
        serde_json::from_slice(bytes).map_err(|e| OrderServiceError::ServerError {
            status: 200,
            detail: format!("unparseable order: {e}"),
        })?;
    let s = |k: &str| order.get(k).and_then(Value::as_str).map(str::to_owned);
    match (s("id"), s("order_number")) {
        (Some(id), Some(order_number)) => Ok(OrderCreated {
            id,
            order_number,
            order,
        }),
        _ => Err(OrderServiceError::ServerError {
            status: 200,
            detail: "order without id or order_number".into(),
        }),
    }
}

impl OrderService for HttpOrderService {
    fn create<'a>(
        &'a self,
        body: &'a Value,
        idempotency_key: &'a str,
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<OrderCreated, OrderServiceError>> {
        Box::pin(async move {
            let (_, bytes) = self
                .call(
                    Method::POST,
                    "/api/v1/orders",
                    Some(body),
                    &[
                        ("idempotency-key", idempotency_key),
                        ("x-correlation-id", correlation_id),
                    ],
                )
                .await?;
            parse_order(&bytes)
        })
    }

    fn void<'a>(
        &'a self,
        order_id: &'a str,
        reason: &'a str,
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<(), OrderServiceError>> {
        Box::pin(async move {
            self.call(
                Method::POST,
                &format!("/api/v1/orders/{order_id}/void"),
                Some(&json!({ "reason": reason })),
                &[("x-correlation-id", correlation_id)],
            )
            .await
            .map(|_| ())
        })
    }

    fn link_sap_order_number<'a>(
        &'a self,
        order_id: &'a str,
        sap_order_number: &'a str,
        pricing: Option<&'a Value>,
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<(), OrderServiceError>> {
        Box::pin(async move {
            let mut body = json!({ "sap_order_number": sap_order_number });
            if let Some(p) = pricing {
                body["pricing"] = p.clone();
            }
            self.call(
                Method::PUT,
                &format!("/api/v1/orders/{order_id}/sap-order-number"),
                Some(&body),
                &[("x-correlation-id", correlation_id)],
            )
            .await
            .map(|_| ())
        })
    }

    fn list<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Vec<Value>, OrderServiceError>> {
        Box::pin(async move {
            let (_, bytes) = self
                .call(Method::GET, &format!("/api/v1/orders?{query}"), None, &[])
                .await?;
            let mut v: Value =
                serde_json::from_slice(&bytes).map_err(|e| OrderServiceError::ServerError {
                    status: 200,
                    detail: e.to_string(),
                })?;
            Ok(match v.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            })
        })
    }

    fn search<'a>(
        &'a self,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<SearchAnswer, OrderServiceError>> {
        Box::pin(async move {
            let (_, bytes) = self
                .call(Method::POST, "/api/v1/orders/search", Some(body), &[])
                .await?;
            let mut v: Value =
                serde_json::from_slice(&bytes).map_err(|e| OrderServiceError::ServerError {
                    status: 200,
                    detail: e.to_string(),
                })?;
            let count = v.get("count").and_then(Value::as_u64);
            let items = match v.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            Ok((items, count))
        })
    }

    fn by_number<'a>(
        &'a self,
        order_number: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, OrderServiceError>> {
        Box::pin(async move {
            let path = format!("/api/v1/orders/by-number/{order_number}");
            match self.call(Method::GET, &path, None, &[]).await {
                Ok((_, bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
                Err(OrderServiceError::Rejected { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn master_data<'a>(
        &'a self,
        kind: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, OrderServiceError>> {
        Box::pin(async move {
            // The key travels percent-encoded: a material number may hold `/` or spaces.
            let path = format!(
                "/api/v1/master-data/{kind}/{}",
                crate::routing::sales_orders::pct(key)
            );
            match self.call(Method::GET, &path, None, &[]).await {
                Ok((_, bytes)) => Ok(serde_json::from_slice(&bytes).ok()),
                Err(OrderServiceError::Rejected { status: 404, .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { self.call(Method::GET, "/ready", None, &[]).await.is_ok() })
    }

    fn change<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<&'a Value>,
        if_match: Option<&'a str>,
        correlation_id: &'a str,
        idempotency_key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Value, OrderServiceError>> {
        Box::pin(async move {
            let mut headers = vec![("x-correlation-id", correlation_id)];
            if let Some(m) = if_match {
                headers.push(("if-match", m));
            }
            if let Some(k) = idempotency_key {
                headers.push(("idempotency-key", k));
            }
            let (_, bytes) = self.call(method, path, body, &headers).await?;
            Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }

    fn changeset<'a>(
        &'a self,
        changes: &'a [Value],
        correlation_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, OrderServiceError>> {
        Box::pin(async move {
            let (_, bytes) = self
                .call(
                    Method::POST,
                    "/api/v1/changesets",
                    Some(&json!({ "changes": changes })),
                    &[("x-correlation-id", correlation_id)],
                )
                .await?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| OrderServiceError::ServerError {
                    status: 200,
                    detail: format!("changeset answer is not JSON: {e}"),
                })?;
            match v["orders"].as_array() {
                Some(orders) if orders.len() == changes.len() => Ok(orders.clone()),
                _ => Err(OrderServiceError::ServerError {
                    status: 200,
                    detail: format!("changeset answer without one order per change: {v}"),
                }),
            }
        })
    }

    fn reserve_numbers(&self, count: u32) -> BoxFuture<'_, Result<Vec<String>, OrderServiceError>> {
        Box::pin(async move {
            let (_, bytes) = self
                .call(
                    Method::POST,
                    "/api/v1/order-numbers",
                    Some(&json!({ "count": count })),
                    &[],
                )
                .await?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| OrderServiceError::ServerError {
                    status: 201,
                    detail: e.to_string(),
                })?;
            Ok(v.get("numbers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default())
        })
    }
}

/// An order service for unit tests: `list` answers the scripted orders in turn (the last one
/// again once they run out), `reserve_numbers` hands out numbers from a counter; any other call
/// is the test's mistake. Both are counted.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures::future::BoxFuture;
    use serde_json::Value;

    use super::{OrderCreated, OrderService, OrderServiceError};

    #[derive(Default)]
    pub(crate) struct FakeOrders {
        answers: Mutex<VecDeque<Value>>,
        /// Calls of `list`.
        pub reads: AtomicU64,
        next: AtomicU64,
        /// Calls of `reserve_numbers`.
        pub reservations: AtomicU64,
    }

    impl FakeOrders {
        /// A fake whose `list` answers `answers` in turn.
        pub(crate) fn listing(answers: Vec<Value>) -> Self {
            Self {
                answers: Mutex::new(answers.into()),
                ..Self::default()
            }
        }
    }

    impl OrderService for FakeOrders {
        fn create<'a>(
            &'a self,
            _: &'a Value,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<OrderCreated, OrderServiceError>> {
            unreachable!("not used by the test")
        }
        fn void<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), OrderServiceError>> {
            unreachable!("not used by the test")
        }
        fn link_sap_order_number<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Option<&'a Value>,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), OrderServiceError>> {
            unreachable!("not used by the test")
        }
        fn list<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<Value>, OrderServiceError>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let mut q = self.answers.lock().unwrap();
            let next = if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().cloned()
            };
            Box::pin(async move { Ok(next.into_iter().collect()) })
        }
        fn by_number<'a>(
            &'a self,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<Value>, OrderServiceError>> {
            unreachable!("not used by the test")
        }
        fn change<'a>(
            &'a self,
            _: http::Method,
            _: &'a str,
            _: Option<&'a Value>,
            _: Option<&'a str>,
            _: &'a str,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Value, OrderServiceError>> {
            unreachable!("not used by the test")
        }
        fn ready(&self) -> BoxFuture<'_, bool> {
            Box::pin(async { true })
        }
        fn changeset<'a>(
            &'a self,
            _: &'a [Value],
            _: &'a str,
        ) -> BoxFuture<'a, Result<Vec<Value>, OrderServiceError>> {
            unreachable!("not used by the test")
        }
        fn reserve_numbers(
            &self,
            count: u32,
        ) -> BoxFuture<'_, Result<Vec<String>, OrderServiceError>> {
            Box::pin(async move {
                self.reservations.fetch_add(1, Ordering::SeqCst);
                let first = self.next.fetch_add(u64::from(count), Ordering::SeqCst);
                Ok((first..first + u64::from(count))
                    .map(|i| format!("{}", 8_000_000_000u64 + i))
                    .collect())
            })
        }
    }
}
