//! [`ReqwestTransport`]: the workspace's [`AsyncTransport`] over reqwest 0.13.

use std::time::Duration;

use async_trait::async_trait;
use helloflex_auth::{
    AsyncRuntime, AsyncTransport, MAX_BODY_BYTES, Request, Response, Task, Timeouts,
};
use helloflex_core::{TransportError, TransportErrorKind};

/// An async transport over reqwest that honours the transport contract: every status returned
/// with headers and body, no redirects followed, body capped while reading, timeouts on.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    body_limit: usize,
}

impl ReqwestTransport {
    /// A transport with its own client: rustls, redirects off, connect and total timeouts.
    pub fn new(timeouts: Timeouts, user_agent: &str) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .pool_max_idle_per_host(64)
            .user_agent(user_agent)
            .build()
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Other,
                    format!("building the HTTP client: {e}"),
                )
            })?;
        Ok(Self::with_client(client))
    }

    /// A transport over an existing client. Build it with
    /// `redirect(reqwest::redirect::Policy::none())` and timeouts: reqwest cannot turn redirects
    /// off per request. A response that arrives after a redirect is refused as
    /// [`TransportErrorKind::Redirect`], but by then the request was re-sent.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client, body_limit: MAX_BODY_BYTES }
    }

    /// Caps response bodies at `bytes`.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

#[async_trait]
impl AsyncTransport for ReqwestTransport {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let sent_to = request.uri().clone();
        let request = reqwest::Request::try_from(request).map_err(|e| {
            TransportError::new(TransportErrorKind::Other, format!("invalid request: {e}"))
        })?;
        let mut response = self.client.execute(request).await.map_err(map_error)?;
        let url = response.url();
        let same_target = url.host_str() == sent_to.host()
            && url.port_or_known_default()
                == sent_to.port_u16().or(match sent_to.scheme_str() {
                    Some("https") => Some(443),
                    _ => Some(80),
                })
            && url.path().trim_end_matches('/') == sent_to.path().trim_end_matches('/');
        if !same_target {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                "the HTTP client followed a redirect",
            ));
        }
        if response.content_length().is_some_and(|len| len > self.body_limit as u64) {
            return Err(too_large(self.body_limit));
        }
        let mut body = Vec::with_capacity(response.content_length().map_or(0, |l| l as usize));
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if body.len() + chunk.len() > self.body_limit {
                return Err(too_large(self.body_limit));
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = response.status();
        *out.version_mut() = response.version();
        *out.headers_mut() = std::mem::take(response.headers_mut());
        Ok(out)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn too_large(limit: usize) -> TransportError {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        format!("response body exceeds {limit} bytes"),
    )
}

/// Sorts reqwest's errors by what they say about whether the request was sent.
fn map_error(error: reqwest::Error) -> TransportError {
    let kind = if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_redirect() {
        TransportErrorKind::Redirect
    } else if error.is_body() || error.is_request() || error.is_decode() {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    };
    // Drop the URL: ours never carries secrets, but a caller's query might.
    TransportError::new(kind, error.without_url().to_string())
}

/// The token manager's [`AsyncRuntime`] on tokio: token requests run as detached tasks, store
/// I/O on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct TokioRuntime(tokio::runtime::Handle);

impl TokioRuntime {
    /// The runtime this is called from, if any.
    pub fn current() -> Option<Self> {
        tokio::runtime::Handle::try_current().ok().map(Self)
    }

    /// A given runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        Self(handle)
    }
}

impl AsyncRuntime for TokioRuntime {
    fn spawn(&self, task: Task) {
        drop(self.0.spawn(task));
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) -> Task {
        let handle = self.0.spawn_blocking(work);
        Box::pin(async move {
            let _ = handle.await;
        })
    }
}
