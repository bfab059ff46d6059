//! Body types and guards: the boxed streaming body used on both sides, a per-frame idle timeout
//! (slow-client guard for streamed bodies), a size limit, and bounded collection for the
//! requests the proxy must read whole (creates it translates).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ProxyError;

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the proxy handles.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()
}

/// A response body that holds the request's admission slot until it has been sent (or
/// dropped), so a long answer still counts as a request in progress.
pub struct Holding<B> {
    inner: B,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<B> Holding<B> {
    /// `inner`, holding `slot` for as long as it lives.
    pub fn new(inner: B, slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        Self { inner, _slot: slot }
    }
}

impl<B: Body + Unpin> Body for Holding<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Error raised by [`Guarded`] bodies.
#[derive(Debug, thiserror::Error)]
pub enum BodyGuardError {
    /// No frame arrived within the idle timeout.
    #[error("body idle for longer than {0:?}")]
    Idle(Duration),
    /// More bytes than the limit.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
}

/// Wraps a streaming body with an idle timeout between frames and a byte limit.
///
/// The timer is only armed when the body actually makes the reader wait (most bodies are
/// complete or arrive in one piece), so the common case costs no timer registration.
pub struct Guarded<B> {
    inner: B,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    limit: usize,
    seen: usize,
}

impl<B> Guarded<B> {
    /// Guards `inner`.
    pub fn new(inner: B, idle: Duration, limit: usize) -> Self {
        Self {
            inner,
            idle,
            sleep: None,
            limit,
            seen: 0,
        }
    }
}

impl<B> Body for Guarded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len();
                    if this.seen > this.limit {
                        return Poll::Ready(Some(Err(BodyGuardError::TooLarge(this.limit).into())));
                    }
                }
                // The next wait starts a new idle period.
                this.sleep = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this.sleep.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(Instant::now() + idle))
                });
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyGuardError::Idle(idle).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a whole request body, enforcing the limit (up front from `Content-Length` when given)
/// and the idle timeout between frames.
pub async fn collect_limited<B>(
    body: B,
    declared_len: Option<u64>,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if declared_len.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let guarded = Guarded::new(body, idle, limit);
    match guarded.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(classify_body_error(e, limit)),
    }
}

/// Maps a body error to the client-side failure it stands for.
pub fn classify_body_error(e: BoxError, limit: usize) -> ProxyError {
    match e.downcast_ref::<BodyGuardError>() {
        Some(BodyGuardError::TooLarge(_)) => ProxyError::BodyTooLarge { limit },
        Some(BodyGuardError::Idle(_)) => ProxyError::ClientTooSlow,
        None => ProxyError::ClientBody(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, stream};
    use http_body_util::StreamBody;

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_even_without_content_length() {
        let chunks = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'a'; 600]))),
            Ok(Frame::data(Bytes::from(vec![b'b'; 600]))),
        ];
        let body = StreamBody::new(stream::iter(chunks));
        let err = collect_limited(body, None, 1000, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProxyError::BodyTooLarge { limit: 1000 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let err = collect_limited(
            Empty::<Bytes>::new(),
            Some(5000),
            1000,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ProxyError::BodyTooLarge { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stalls_mid_body_times_out() {
        let first = stream::iter(vec![Ok::<_, BoxError>(Frame::data(Bytes::from_static(
            b"{",
        )))]);
        let stalled = first.chain(stream::pending());
        let body = StreamBody::new(stalled);
        let err = collect_limited(body, None, 1000, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, ProxyError::ClientTooSlow), "{err:?}");
    }
}
