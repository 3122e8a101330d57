//! Admission control for the public API, before any request body is decoded: a bound on
//! the calls in flight and on the request bytes they hold, so that no mix of requests can
//! make the node allocate without bound.
//!
//! - A call takes a permit from `--max-concurrent-requests`; with none free it is refused at
//!   once with RESOURCE_EXHAUSTED and its body is never read.
//! - Each body frame is charged to a node-wide byte budget (`--max-request-mib`) as it
//!   arrives; a frame past the budget fails the call with RESOURCE_EXHAUSTED. The charge is
//!   held until the call has answered, so it covers what the handler builds from the body
//!   (decoded messages, log entries) as well as the bytes themselves.
//! - The transport refuses an over-size message with OUT_OF_RANGE; gRPC's convention for a
//!   message over the limit is RESOURCE_EXHAUSTED, which is what the client gets.
//!
//! Health checks pass without a permit, so a saturated node still reports itself. The JSON
//! gateway (`crate::rest`) takes its permits and charges its bodies through the same
//! [`Limits`] ([`Limits::admit`], [`Ticket::charge`]), so both transports share one budget.

use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::Status;

/// How the transport's decode errors begin.
const DECODE_ERRORS: [&str; 4] =
    ["failed to decode", "Unexpected EOF", "protocol error", "Error decompressing"];

/// The limits, shared by every connection.
#[derive(Debug)]
pub struct Limits {
    calls: Arc<tokio::sync::Semaphore>,
    /// Request bytes charged by calls in flight.
    bytes: AtomicUsize,
    max_bytes: usize,
}

impl Limits {
    pub fn new(max_calls: usize, max_bytes: usize) -> Arc<Limits> {
        Arc::new(Limits {
            calls: Arc::new(tokio::sync::Semaphore::new(max_calls.max(1))),
            bytes: AtomicUsize::new(0),
            max_bytes: max_bytes.max(1),
        })
    }

    /// Charges `n` bytes, or refuses when that would pass the budget.
    fn charge(&self, n: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&t| t <= self.max_bytes)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
    }

    /// A permit for one call, or RESOURCE_EXHAUSTED at once when none is free.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, Status> {
        let permit = self.calls.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many concurrent requests; retry with backoff")
        })?;
        Ok(self.ticket(Some(permit)))
    }

    /// A ticket without a permit (health checks), still charged for its bytes.
    pub fn exempt(self: &Arc<Self>) -> Ticket {
        self.ticket(None)
    }

    fn ticket(self: &Arc<Self>, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Ticket {
        Ticket(Arc::new(Charge {
            limits: self.clone(),
            bytes: AtomicUsize::new(0),
            _permit: permit,
        }))
    }
}

/// What one admitted call holds (its permit and the request bytes charged to it) until it is
/// dropped, after the call answered.
#[derive(Debug, Clone)]
pub struct Ticket(Arc<Charge>);

impl Ticket {
    /// Charges `n` more request bytes to the node's budget, or RESOURCE_EXHAUSTED when they
    /// would pass it.
    pub fn charge(&self, n: usize) -> Result<(), Status> {
        let limits = &self.0.limits;
        if !limits.charge(n) {
            return Err(Status::resource_exhausted(format!(
                "the node holds its limit of {} MiB of request data in flight; retry with \
                 backoff",
                limits.max_bytes >> 20
            )));
        }
        self.0.bytes.fetch_add(n, Ordering::AcqRel);
        Ok(())
    }
}

/// What one call holds: its permit and the bytes charged for it, released on drop.
#[derive(Debug)]
struct Charge {
    limits: Arc<Limits>,
    bytes: AtomicUsize,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.limits.release(self.bytes.load(Ordering::Acquire));
    }
}

/// The tower layer applying [`Limits`] to every call.
#[derive(Debug, Clone)]
pub struct AdmissionLayer(pub Arc<Limits>);

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission { inner, limits: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    limits: Arc<Limits>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Admission<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let health = req.uri().path().starts_with("/grpc.health.v1.Health/");
        let charge = if health {
            self.limits.exempt()
        } else {
            match self.limits.admit() {
                Ok(t) => t,
                Err(refused) => return Box::pin(std::future::ready(Ok(refused.into_http()))),
            }
        };
        let req = req.map(|body| Body::new(Counted { inner: body, charge: charge.clone() }));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut r = fut.await;
            if let Ok(resp) = &mut r {
                // OUT_OF_RANGE comes only from the transport's message-size check here (no
                // handler answers it), before any response was sent: a trailers-only header.
                let h = resp.headers_mut();
                if h.get("grpc-status").is_some_and(|v| v == "11") {
                    h.insert("grpc-status", http::HeaderValue::from_static("8"));
                }
                // A request that does not decode (bad framing, a compressed flag without an
                // encoding, bytes that are not the message) is the client's fault: the
                // transport says INTERNAL, the client gets INVALID_ARGUMENT. INTERNAL stays
                // reserved for a node that is broken.
                let undecodable = h.get("grpc-message").is_some_and(|m| {
                    let m = String::from_utf8_lossy(m.as_bytes()).replace("%20", " ");
                    DECODE_ERRORS.iter().any(|p| m.starts_with(p))
                });
                if undecodable && h.get("grpc-status").is_some_and(|v| v == "13") {
                    h.insert("grpc-status", http::HeaderValue::from_static("3"));
                }
            }
            drop(charge);
            r
        })
    }
}

/// A request body whose frames are charged to the byte budget as they arrive.
struct Counted {
    inner: Body,
    charge: Ticket,
}

impl HttpBody for Counted {
    type Data = <Body as HttpBody>::Data;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len());
                if n > 0 {
                    if let Err(refused) = this.charge.charge(n) {
                        return Poll::Ready(Some(Err(refused)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
