//! The ready async client: [`helloflex_auth::Client`] over [`ReqwestTransport`], run on the
//! tokio runtime it is built in.

use std::sync::Arc;

use helloflex_auth::{AsyncRuntime, AsyncTokenManager, Connector, HttpOptions, ManagerBuilder};
use helloflex_core::Error;

use crate::transport::{ReqwestTransport, TokioRuntime};

/// The async HelloFlex / Flextell client (see [`helloflex_auth::Client`]): `send().await`.
pub type Client = helloflex_auth::Client<AsyncTokenManager, Reqwest>;
/// Builds a [`Client`].
pub type ClientBuilder = helloflex_auth::ClientBuilder<Reqwest>;
/// A request being built by a [`Client`].
pub type RequestBuilder<'a> = helloflex_auth::RequestBuilder<'a, AsyncTokenManager>;

/// The reqwest connector of a [`ClientBuilder`]: its own `reqwest::Client` by default, or yours
/// (its pool, TLS and proxy settings) through [`Reqwest::with_client`].
#[derive(Debug, Clone, Default)]
pub struct Reqwest {
    client: Option<reqwest::Client>,
}

impl Reqwest {
    /// Uses an existing reqwest client. Build it with
    /// `redirect(reqwest::redirect::Policy::none())` and timeouts (see
    /// [`ReqwestTransport::with_client`]).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client: Some(client) }
    }
}

impl Connector for Reqwest {
    type Manager = AsyncTokenManager;

    /// Called inside a tokio runtime, token requests run detached on it and store I/O on its
    /// blocking pool (see [`AsyncTokenManager`] for what changes without one).
    fn connect(self, http: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        let transport = match self.client {
            Some(client) => {
                ReqwestTransport::with_client(client).with_body_limit(http.body_limit())
            }
            None => ReqwestTransport::from_options(http)?,
        };
        let transport = Arc::new(transport);
        let runtime = TokioRuntime::current().map(|r| Arc::new(r) as Arc<dyn AsyncRuntime>);
        Ok(tokens.nonblocking(transport, runtime))
    }
}
