//! The ready API client, written once for both flavours: one builder with every setter once,
//! one options type for HTTP, one request builder. A transport crate adds only a [`Connector`]
//! (its transport, built from [`HttpOptions`], and the manager flavour on it) and type aliases;
//! a user's own transport gets the same client through [`OwnBlocking`] or [`OwnAsync`].
//!
//! The two flavours differ only where waiting differs: `send`, `token` and
//! `complete_authorization` are plain calls on `Client<BlockingTokenManager, _>` and `async` on
//! `Client<AsyncTokenManager, _>`.
//!
//! The types are defined here, the methods in the files beside: a type's defining module is
//! printed in the public API of every crate that names it (the transport crates' and the
//! facade's `public-api.txt`), so it stays `client`. `http_options` holds what [`Timeouts`] and
//! [`HttpOptions`] do, `own_transport` a user's own transport as a connector ([`OwnBlocking`],
//! [`OwnAsync`]), `builder` [`ClientBuilder`]'s setters and `build`, `calls` the [`Client`]'s
//! calls (the flavour's own: `send`, `token`, `complete_authorization`, `close`), `request`
//! [`RequestBuilder`]'s.

mod builder;
mod calls;
mod http_options;
mod own_transport;
mod request;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use helloflex_core::{
    ApiRequest, AuthorizationCodeConfig, ClientAuthMethod, ClientSecret, Endpoint, Environment,
    Error, RetryPolicy,
};

use crate::clock::Clock;
use crate::manager::ManagerBuilder;
use crate::options::ManagerOptions;
use crate::store::TokenStore;

pub use own_transport::{OwnAsync, OwnBlocking};

/// Time limits of one HTTP attempt, for every transport.
///
/// `Duration::MAX` (or any limit from [`Timeouts::LONGEST`], 100 years, up) means **no limit**:
/// every transport of the workspace cuts each limit to `LONGEST` ([`Timeouts::clamped`]) before
/// handing it to its HTTP library, which adds it to the current instant (ureq would panic on
/// the overflow), and the token manager's deadlines built on these limits (a ticket, a store
/// lease) saturate the same way, to the far future, never to "now". A zero limit is refused
/// ([`HttpOptions::validate`]).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::Timeouts;
///
/// let unlimited = Timeouts::uniform(Duration::MAX).clamped();
/// assert_eq!(unlimited, Timeouts::uniform(Timeouts::LONGEST));
/// let usual = Timeouts::default();
/// assert_eq!(usual.clamped(), usual);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Connecting, TLS included.
    pub connect: Duration,
    /// The whole exchange after connecting: sending, waiting, reading the body (a server
    /// dribbling bytes cannot stretch it). Transports that bound phases separately bound each
    /// phase by it.
    pub total: Duration,
}

/// How a client's HTTP transport is set up (the one options type of every transport).
///
/// ```
/// use std::time::Duration;
/// use helloflex_auth::{HttpOptions, Timeouts};
///
/// // What a client builder collects (`.timeouts(..)`, `.user_agent(..)`, `.body_limit(..)`,
/// // `.proxy_from_env(..)`) and hands to its transport.
/// let mut options = HttpOptions::default();
/// options.timeouts = Timeouts::new(Duration::from_secs(3), Duration::from_secs(15));
/// assert!(options.user_agent_for("ureq").starts_with("helloflex-rs/"));
/// assert_eq!(options.body_limit(), helloflex_auth::MAX_BODY_BYTES);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Time limits.
    pub timeouts: Timeouts,
    /// The `User-Agent` (default: `helloflex-rs/<version> (<transport>)`).
    pub user_agent: Option<String>,
    /// The response body cap (default: [`crate::MAX_BODY_BYTES`]).
    pub body_limit: Option<usize>,
    /// Whether the `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` environment variables
    /// route requests through a proxy (default: yes, as curl does). Turn it off where the
    /// environment is not yours to trust: a proxy sees every request's host.
    pub proxy_from_env: bool,
    /// PEM certificates trusted as the only roots of TLS connections, in place of the
    /// transport's own (the system's store for reqwest, Mozilla's roots for ureq): a private CA,
    /// such as one in front of the emulator, or a company's own (default: none). Applies to the
    /// transport the client builds itself, not to an HTTP client you hand in.
    pub root_certificates: Option<String>,
    /// Every endpoint the client calls is plain HTTP (see [`HttpOptions::needs_tls`]); set by
    /// [`ClientBuilder::build`].
    plain_http_only: bool,
}

/// A transport crate's part of a client: builds its transport from [`HttpOptions`] and puts the
/// token manager of its flavour on it.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::sync::Arc;
/// use helloflex::auth::{BlockingTokenManager, Client, Connector, HttpOptions, ManagerBuilder};
/// use helloflex::{ClientSecret, Environment, Error, InsecureLoopback};
/// use helloflex::blocking::UreqTransport;
/// # let emulator = helloflex::emulator::start(Default::default())?;
///
/// /// A connector of your own: the shipped ureq transport, with one header on every request
/// /// would go here; it gets every setting the builder collected.
/// #[derive(Default)]
/// struct MyUreq;
///
/// impl Connector for MyUreq {
///     type Manager = BlockingTokenManager;
///
///     fn connect(self, http: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
///         Ok(tokens.blocking(Arc::new(UreqTransport::from_options(http))))
///     }
/// }
///
/// let client = Client::<BlockingTokenManager, MyUreq>::builder()
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// assert_eq!(client.get("news").send()?.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Connector: Sized {
    /// [`BlockingTokenManager`](crate::BlockingTokenManager) or
    /// [`AsyncTokenManager`](crate::AsyncTokenManager).
    type Manager;

    /// The transport and the manager over it.
    fn connect(self, http: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error>;

    /// The longest one attempt can take on this transport with `timeouts` (it bounds how long a
    /// token request's ticket and lease live).
    fn attempt_timeout(&self, timeouts: &Timeouts) -> Duration {
        timeouts.connect.saturating_add(timeouts.total)
    }
}

/// A HelloFlex / Flextell API client: tokens fetched, cached, refreshed early and single-flighted
/// behind every call; a 401 replays the call once with a fresh token. Cheap to clone; clones
/// share one token manager. The transport crates name it `Client` for their flavour.
///
/// Against the emulator, with the blocking flavour (the async one is the same with `.await`):
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{ClientSecret, Environment, InsecureLoopback};
///
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let settings = emulator.helloflex();
/// let client = helloflex::blocking::Client::builder()
///     .environment(Environment::custom(&settings.base_url, InsecureLoopback::Allow)?)
///     .client_credentials(settings.client_id, ClientSecret::new(settings.client_secret))
///     .build()?;
/// let news: serde_json::Value = client.get("news").send()?.json()?;
/// assert!(news.is_array());
/// // One token served both the call above and this one.
/// client.get("news").send()?;
/// assert_eq!(emulator.counters().total_token_requests(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client<M, C> {
    tokens: M,
    base: Endpoint,
    retry: RetryPolicy,
    connector: PhantomData<fn() -> C>,
}

impl<M: Clone, C> Clone for Client<M, C> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            base: self.base.clone(),
            retry: self.retry.clone(),
            connector: PhantomData,
        }
    }
}

impl<M: std::fmt::Debug, C> std::fmt::Debug for Client<M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("tokens", &self.tokens).finish()
    }
}

/// Builds a [`Client`]: where the API is, which grant, then HTTP and token tuning.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::{ClientSecret, Environment, RetryPolicy, Timeouts};
/// use helloflex::blocking::Client;
///
/// let client = Client::builder()
///     .environment(Environment::Sandbox)
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .scopes(["news.read"])
///     .timeouts(Timeouts::new(Duration::from_secs(5), Duration::from_secs(20)))
///     .retry_policy(RetryPolicy::default())
///     .user_agent("my-app/1.0")
///     .build()?; // nothing is sent until the first call
/// # drop(client);
/// // No grant chosen: a configuration error, not a panic.
/// assert!(Client::builder().build().is_err());
/// # Ok::<(), helloflex::Error>(())
/// ```
#[must_use = "a builder does nothing until built"]
pub struct ClientBuilder<C> {
    connector: C,
    http: HttpOptions,
    environment: Option<Environment>,
    client_id: Option<(String, ClientSecret)>,
    auth_method: ClientAuthMethod,
    scopes: Vec<String>,
    token_url: Option<Endpoint>,
    authorization_code: Option<(AuthorizationCodeConfig, Arc<dyn TokenStore>)>,
    retry: RetryPolicy,
    manager: ManagerOptions,
    shared_store: Option<Arc<dyn TokenStore>>,
    clock: Arc<dyn Clock>,
}

impl<C> std::fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("environment", &self.environment)
            .field("client_id", &self.client_id.as_ref().map(|(id, _)| id))
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// A request being built; `send` runs it (with retries, and one replay after a 401).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{ClientSecret, Environment, Error, InsecureLoopback};
///
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let client = helloflex::blocking::Client::builder()
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// let created = client
///     .post("items")
///     .header("x-request-id", "42")
///     .json(&serde_json::json!({"name": "first"}))
///     .send()?;
/// assert_eq!(created.status(), 201);
/// let values = client.get("domainTypes/7/domainValues").query("Lang", "en").send()?;
/// assert!(values.json::<serde_json::Value>()?.is_array());
/// // An error status is an `Err`, typed.
/// assert!(matches!(client.get("nowhere").send(), Err(Error::Api(e)) if e.status() == 404));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "a request does nothing until sent"]
pub struct RequestBuilder<'a, M> {
    tokens: &'a M,
    base: &'a Endpoint,
    retry: &'a RetryPolicy,
    request: ApiRequest,
}
