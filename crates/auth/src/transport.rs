//! The transport seam: how the SDK sends one HTTP request. Defined once for the workspace.
//!
//! # Contract
//!
//! A transport, blocking or async:
//!
//! 1. Sends the request as given (method, URI, headers, body; the core declares the body's
//!    framing: a request without `Content-Length` and with an empty body is sent bodiless) and
//!    returns the response's status,
//!    **all** headers and body for **every** status: a 401, 429 or 503 is a response, not an
//!    error (the core classifies it).
//! 2. Does **not follow redirects** (a 3xx is returned as it is), so a token request's secret
//!    is never re-sent elsewhere and `Authorization` never reaches another origin.
//! 3. **Caps the response body** (`MAX_BODY_BYTES` by default) while reading, however it is
//!    framed (declared length, chunked, until close), and refuses a declared length above the
//!    cap before reading; overflow is a [`TransportErrorKind::BodyTooLarge`]. A
//!    `Content-Length` with no body after it (a HEAD answer's, a 304's) declares no body.
//! 4. **Bounds time**: connect and whole-call timeouts on by default; a timeout is a
//!    [`TransportErrorKind::Timeout`], a refused or failed connection (the request surely not
//!    sent) a [`TransportErrorKind::Connect`], a failure after sending an
//!    [`TransportErrorKind::Io`]. A limit of `Duration::MAX` means no limit, never a panic:
//!    cut to [`crate::Timeouts::LONGEST`] ([`crate::Timeouts::clamped`]) before it reaches a
//!    library that adds it to an `Instant`; a `sleep` of any length is slept (or cancelled).
//! 5. **Owns sleeping** for backoff and `Retry-After` ([`BlockingTransport::sleep`],
//!    [`AsyncTransport::sleep`]), so tests can replace time.
//! 6. Makes **no decision** of its own: no retries, no token handling. The core decides.

use std::time::Duration;

use async_trait::async_trait;
use helloflex_core::TransportError;
pub use helloflex_core::TransportErrorKind;

/// The default response body cap (8 MiB).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// An HTTP request as the core builds it.
pub type Request = http::Request<Vec<u8>>;
/// An HTTP response as the core reads it.
pub type Response = http::Response<Vec<u8>>;

/// A blocking transport (see the module docs for the contract).
pub trait BlockingTransport: Send + Sync {
    /// Sends `request` and returns the response, whatever its status.
    fn send(&self, request: Request) -> Result<Response, TransportError>;

    /// Blocks the calling thread for `duration` (backoff, `Retry-After`).
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// An async transport (see the module docs for the contract). Futures are `Send`, so it works
/// inside axum/tokio handlers.
#[async_trait]
pub trait AsyncTransport: Send + Sync {
    /// Sends `request` and returns the response, whatever its status.
    async fn send(&self, request: Request) -> Result<Response, TransportError>;

    /// Waits for `duration` on the transport's runtime (backoff, `Retry-After`).
    async fn sleep(&self, duration: Duration);
}

impl<T: BlockingTransport + ?Sized> BlockingTransport for std::sync::Arc<T> {
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        (**self).send(request)
    }
    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

#[async_trait]
impl<T: AsyncTransport + ?Sized> AsyncTransport for std::sync::Arc<T> {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        (**self).send(request).await
    }
    async fn sleep(&self, duration: Duration) {
        (**self).sleep(duration).await;
    }
}
