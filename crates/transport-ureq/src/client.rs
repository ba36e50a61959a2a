//! The ready blocking client: [`helloflex_auth::Client`] over [`UreqTransport`].

use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::{BlockingTokenManager, Connector, HttpOptions, ManagerBuilder, Timeouts};
use helloflex_core::Error;

use crate::transport::UreqTransport;

/// The blocking HelloFlex / Flextell client (see [`helloflex_auth::Client`]): `send()`.
pub type Client = helloflex_auth::Client<BlockingTokenManager, Ureq>;
/// Builds a [`Client`].
pub type ClientBuilder = helloflex_auth::ClientBuilder<Ureq>;
/// A request being built by a [`Client`].
pub type RequestBuilder<'a> = helloflex_auth::RequestBuilder<'a, BlockingTokenManager>;

/// The ureq connector of a [`ClientBuilder`]: its own agent by default, or yours (its pool, TLS
/// and proxy settings; the transport contract is still applied per request) through
/// [`Ureq::with_agent`].
#[derive(Debug, Clone, Default)]
pub struct Ureq {
    agent: Option<ureq::Agent>,
}

impl Ureq {
    /// Uses an existing ureq agent.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        Self { agent: Some(agent) }
    }
}

impl Connector for Ureq {
    type Manager = BlockingTokenManager;

    fn connect(self, http: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        let transport = match self.agent {
            Some(agent) => UreqTransport::with_agent(agent, http.timeouts)
                .with_user_agent(&http.user_agent_for("ureq"))
                .with_body_limit(http.body_limit()),
            None => UreqTransport::from_options(http),
        };
        Ok(tokens.blocking(Arc::new(transport)))
    }

    /// ureq bounds each phase (connect, send, response, body) separately.
    fn attempt_timeout(&self, timeouts: &Timeouts) -> Duration {
        timeouts.connect.saturating_add(timeouts.total.saturating_mul(3))
    }
}
