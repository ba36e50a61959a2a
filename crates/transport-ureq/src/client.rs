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
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{ClientSecret, Environment, InsecureLoopback};
/// use helloflex::blocking::{Client, Ureq};
/// # let emulator = helloflex::emulator::start(Default::default())?;
///
/// // Your own ureq agent (its pool, TLS, proxy; `ureq` in your dependencies): the transport
/// // contract (no redirects, every status returned, timeouts) is still applied per request.
/// let agent = ureq::Agent::config_builder().max_idle_connections(64).build().new_agent();
/// let client = Client::builder()
///     .connector(Ureq::with_agent(agent))
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// assert_eq!(client.get("news").send()?.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Ureq {
    agent: Option<ureq::Agent>,
}

impl Ureq {
    /// Uses an existing ureq agent. It keeps its own resolver: under the contract's total
    /// deadline, ureq's default resolver looks each call's host up on a new thread (an IP
    /// literal too), which the client's own agent spares. For a private CA, a proxy setting or
    /// timeouts, the builder's settings keep the client's own agent
    /// ([`ClientBuilder::root_certificates`](helloflex_auth::ClientBuilder::root_certificates)).
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
