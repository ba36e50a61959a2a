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
///
/// ```
/// use helloflex_auth::Request;
///
/// let request: Request = http::Request::post("https://api.uat-helloflex.com/items").body(b"{}".to_vec())?;
/// // A token request's body holds secrets: log the method and path, never the body or `{:?}`.
/// println!("{} {}", request.method(), request.uri().path());
/// # Ok::<(), http::Error>(())
/// ```
pub type Request = http::Request<Vec<u8>>;
/// An HTTP response as the core reads it.
///
/// ```
/// use helloflex_auth::Response;
///
/// // Every status is a response (a 401, 429 or 503 is data for the core), with all its headers.
/// let response: Response = http::Response::builder().status(503).header("retry-after", "2").body(Vec::new())?;
/// assert_eq!(response.status(), 503);
/// # Ok::<(), http::Error>(())
/// ```
pub type Response = http::Response<Vec<u8>>;

/// A blocking transport (see the module docs for the contract).
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{BlockingTransport, ClientBuilder, OwnBlocking, Request, Response};
/// use helloflex_core::{ClientSecret, TransportError, TransportErrorKind};
///
/// /// Refuses to connect: as a transport whose server is down answers.
/// struct Down;
///
/// impl BlockingTransport for Down {
///     fn send(&self, _request: Request) -> Result<Response, TransportError> {
///         Err(TransportError::new(TransportErrorKind::Connect, "connection refused"))
///     }
///
///     fn sleep(&self, _: std::time::Duration) {} // no waiting between retries in a test
/// }
///
/// let client = ClientBuilder::new(OwnBlocking(Arc::new(Down)))
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .build()?;
/// let failed = client.get("news").send().unwrap_err();
/// assert_eq!(failed.blame(), helloflex_core::Blame::Network);
/// # Ok::<(), helloflex_core::Error>(())
/// ```
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
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{AsyncTransport, ClientBuilder, OwnAsync, Request, Response};
/// use helloflex_core::{ClientSecret, TransportError};
///
/// /// A test double: a token for token requests, `[]` for API calls.
/// struct Canned;
///
/// #[async_trait::async_trait]
/// impl AsyncTransport for Canned {
///     async fn send(&self, request: Request) -> Result<Response, TransportError> {
///         let body: &[u8] = match request.uri().path() {
///             "/oauth2/token" => br#"{"access_token":"t0k","expires_in":3600}"#,
///             _ => b"[]",
///         };
///         Ok(http::Response::new(body.to_vec()))
///     }
///
///     async fn sleep(&self, duration: std::time::Duration) {
///         tokio::time::sleep(duration).await;
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let client = ClientBuilder::new(OwnAsync(Arc::new(Canned), None))
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .build()?;
/// let news = client.get("news").send().await?;
/// assert_eq!(news.bytes(), b"[]");
/// # Ok::<(), helloflex_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
