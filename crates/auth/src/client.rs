//! The ready API client, written once for both flavours: one builder with every setter once,
//! one options type for HTTP, one request builder. A transport crate adds only a [`Connector`]
//! (its transport, built from [`HttpOptions`], and the manager flavour on it) and type aliases;
//! a user's own transport gets the same client through [`OwnBlocking`] or [`OwnAsync`].
//!
//! The two flavours differ only where waiting differs: `send`, `token` and
//! `complete_authorization` are plain calls on `Client<BlockingTokenManager, _>` and `async` on
//! `Client<AsyncTokenManager, _>`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use helloflex_core::machines::ApiCall;
use helloflex_core::{
    ApiRequest, ApiResponse, AuthorizationCodeConfig, ClientAuthMethod, ClientCredentialsConfig,
    ClientSecret, ConfigError, Endpoint, Environment, Error, PendingAuthorization, RetryPolicy,
    StoreError, Token,
};
use serde::Serialize;

use crate::blocking::BlockingTokenManager;
use crate::clock::{Clock, SystemClock};
use crate::entropy::jitter_seed;
use crate::manager::ManagerBuilder;
use crate::nonblocking::{AsyncRuntime, AsyncTokenManager};
use crate::options::ManagerOptions;
use crate::store::TokenStore;
use crate::transport::{AsyncTransport, BlockingTransport};

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

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), total: Duration::from_secs(60) }
    }
}

impl Timeouts {
    /// A connect and a total limit.
    pub fn new(connect: Duration, total: Duration) -> Self {
        Self { connect, total }
    }

    /// Both limits `each`.
    pub fn uniform(each: Duration) -> Self {
        Self { connect: each, total: each }
    }

    /// The longest limit a transport hands its HTTP library: 100 years
    /// ([`helloflex_core::machines::FAR_FUTURE`]), no limit in practice. A longer one is cut
    /// to it.
    pub const LONGEST: Duration = helloflex_core::machines::FAR_FUTURE;

    /// These limits, each cut to [`Timeouts::LONGEST`]: what a transport hands its HTTP library
    /// (a transport of your own should too, if its library adds a limit to an `Instant`).
    pub fn clamped(self) -> Self {
        Self { connect: self.connect.min(Self::LONGEST), total: self.total.min(Self::LONGEST) }
    }
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
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            user_agent: None,
            body_limit: None,
            proxy_from_env: true,
        }
    }
}

impl HttpOptions {
    /// The `User-Agent`: the one set, or `helloflex-rs/<version> (<transport>)`.
    pub fn user_agent_for(&self, transport: &str) -> String {
        match &self.user_agent {
            Some(ua) => ua.clone(),
            None => format!("helloflex-rs/{} ({transport})", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The response body cap: the one set, or [`crate::MAX_BODY_BYTES`].
    pub fn body_limit(&self) -> usize {
        self.body_limit.unwrap_or(crate::MAX_BODY_BYTES)
    }

    /// Refuses settings that cannot work, rather than have a transport drop or misread them: a
    /// `User-Agent` that is no header value (a control character, a line break), a zero
    /// timeout (every request would time out). [`ClientBuilder::build`] calls it.
    ///
    /// ```
    /// use helloflex_auth::HttpOptions;
    ///
    /// let mut options = HttpOptions::default();
    /// assert!(options.validate().is_ok());
    /// options.user_agent = Some("my-app/1.0\r\nX-Injected: 1".into());
    /// assert!(options.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.user_agent.as_deref().is_some_and(|ua| http::HeaderValue::from_str(ua).is_err()) {
            return Err(ConfigError::Invalid {
                name: "user_agent",
                reason: "not a header value (control characters and line breaks are refused)",
            });
        }
        if self.timeouts.connect.is_zero() || self.timeouts.total.is_zero() {
            return Err(ConfigError::Invalid {
                name: "timeouts",
                reason: "a zero timeout fails every request",
            });
        }
        Ok(())
    }
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
    /// [`BlockingTokenManager`] or [`AsyncTokenManager`].
    type Manager;

    /// The transport and the manager over it.
    fn connect(self, http: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error>;

    /// The longest one attempt can take on this transport with `timeouts` (it bounds how long a
    /// token request's ticket and lease live).
    fn attempt_timeout(&self, timeouts: &Timeouts) -> Duration {
        timeouts.connect.saturating_add(timeouts.total)
    }
}

/// Your own blocking transport as a client's connector.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::sync::Arc;
/// use helloflex::auth::{BlockingTransport, ClientBuilder, OwnBlocking, Request, Response};
/// use helloflex::{ClientSecret, Environment, InsecureLoopback, Timeouts, TransportError};
/// use helloflex::blocking::UreqTransport;
/// # let emulator = helloflex::emulator::start(Default::default())?;
///
/// /// Counts the requests it sends: a transport of your own around the shipped one.
/// struct Counted(UreqTransport, std::sync::atomic::AtomicU32);
///
/// impl BlockingTransport for Counted {
///     fn send(&self, request: Request) -> Result<Response, TransportError> {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.send(request)
///     }
/// }
///
/// let transport = Arc::new(Counted(UreqTransport::new(Timeouts::default()), Default::default()));
/// let client = ClientBuilder::new(OwnBlocking(transport.clone()))
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// client.get("news").send()?;
/// assert_eq!(transport.1.load(std::sync::atomic::Ordering::Relaxed), 2); // the token, the call
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OwnBlocking(pub Arc<dyn BlockingTransport>);

impl Connector for OwnBlocking {
    type Manager = BlockingTokenManager;
    fn connect(self, _: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        Ok(tokens.blocking(self.0))
    }
}

/// Your own async transport (and runtime) as a client's connector. Hand it your runtime where
/// you have one (token requests then run detached on it, store I/O off the executor); without
/// one (`None`) the manager keeps each token request and the callers waiting for it drive it
/// (see [`AsyncTokenManager`]).
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{AsyncRuntime, AsyncTransport, ClientBuilder, OwnAsync, Request, Response, Task};
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
/// /// Your runtime: token requests run detached on it, store I/O on its blocking pool.
/// #[derive(Debug)]
/// struct Tokio(tokio::runtime::Handle);
///
/// impl AsyncRuntime for Tokio {
///     fn spawn(&self, task: Task) {
///         drop(self.0.spawn(task));
///     }
///
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) -> Task {
///         let done = self.0.spawn_blocking(work);
///         Box::pin(async move {
///             let _ = done.await;
///         })
///     }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
/// let runtime = Arc::new(Tokio(tokio::runtime::Handle::current()));
/// let client = ClientBuilder::new(OwnAsync(Arc::new(Canned), Some(runtime)))
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .build()?;
/// assert_eq!(client.get("news").send().await?.status(), 200);
/// # Ok::<(), helloflex_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OwnAsync(pub Arc<dyn AsyncTransport>, pub Option<Arc<dyn AsyncRuntime>>);

impl Connector for OwnAsync {
    type Manager = AsyncTokenManager;
    fn connect(self, _: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        Ok(tokens.nonblocking(self.0, self.1))
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

impl<M, C: Connector<Manager = M> + Default> Client<M, C> {
    /// A builder with the transport's default connector.
    pub fn builder() -> ClientBuilder<C> {
        ClientBuilder::new(C::default())
    }
}

impl<C: Connector> ClientBuilder<C> {
    /// A builder over `connector`.
    pub fn new(connector: C) -> Self {
        Self {
            connector,
            http: HttpOptions::default(),
            environment: None,
            client_id: None,
            auth_method: ClientAuthMethod::default(),
            scopes: Vec::new(),
            token_url: None,
            authorization_code: None,
            retry: RetryPolicy::default(),
            manager: ManagerOptions::default(),
            shared_store: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the connector (for example one over your own HTTP client).
    pub fn connector(mut self, connector: C) -> Self {
        self.connector = connector;
        self
    }

    /// Where the API lives. HelloFlex (client credentials) defaults to
    /// [`Environment::Sandbox`]; Flextell (authorization code) has no default: its API is not
    /// HelloFlex's, so name it (`Environment::custom(..)`).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Client-credentials grant (HelloFlex) with this id and secret.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        self.client_id = Some((client_id.into(), secret));
        self
    }

    /// How the client secret is sent (default: in the form body, as HelloFlex documents).
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Scopes for the client-credentials grant.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A token endpoint other than the environment's `/oauth2/token`.
    pub fn token_url(mut self, url: Endpoint) -> Self {
        self.token_url = Some(url);
        self
    }

    /// Authorization-code grant (Flextell): user tokens kept in `store`.
    pub fn authorization_code(
        mut self,
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        self.authorization_code = Some((config, store));
        self
    }

    /// Client credentials (HelloFlex): shares the token with every process using `store` (a
    /// fleet of service instances): one of them fetches while holding the store's lease, the
    /// others adopt its token. See `docs/fleet.md` and the `helloflex-store-redis` crate.
    pub fn shared_token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.shared_store = Some(store);
        self
    }

    /// Retries of API calls (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Token lifecycle and token-request retries.
    pub fn token_options(mut self, options: ManagerOptions) -> Self {
        self.manager = options;
        self
    }

    /// Time limits of one HTTP attempt (default: [`Timeouts::default`]).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.http.timeouts = timeouts;
        self
    }

    /// The `User-Agent` sent with every request (`build` refuses one that is no header value).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.http.user_agent = Some(user_agent.into());
        self
    }

    /// Caps response bodies (default: 8 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.http.body_limit = Some(bytes);
        self
    }

    /// Whether `*_PROXY` environment variables apply (default: yes; see
    /// [`HttpOptions::proxy_from_env`]). Applies to the transport the client builds itself, not
    /// to an HTTP client you hand in.
    pub fn proxy_from_env(mut self, yes: bool) -> Self {
        self.http.proxy_from_env = yes;
        self
    }

    /// The clock (a manual clock in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the client. Fails if no grant was chosen, a setting cannot work (see
    /// [`HttpOptions::validate`]) or the transport cannot be built. A
    /// token store is read by the first call that needs a token, not here.
    pub fn build(self) -> Result<Client<C::Manager, C>, Error> {
        let (environment, mut tokens) = match (self.authorization_code, self.client_id) {
            (Some((config, store)), _) => {
                config.client().validate()?;
                let environment = self.environment.ok_or(ConfigError::Missing(
                    "the Flextell API's environment (.environment(Environment::custom(..))): \
                     an authorization-code client has no default",
                ))?;
                (environment, ManagerBuilder::authorization_code(config, store))
            }
            (None, Some((id, secret))) => {
                let environment = self.environment.unwrap_or(Environment::Sandbox);
                let mut config = ClientCredentialsConfig::new(id, secret, &environment)
                    .with_auth_method(self.auth_method)
                    .with_scopes(self.scopes);
                if let Some(url) = self.token_url {
                    config = config.with_token_url(url);
                }
                config.client().validate()?;
                (environment, ManagerBuilder::client_credentials(config))
            }
            (None, None) => {
                return Err(ConfigError::Missing("credentials (client id and secret)").into());
            }
        };
        if let Some(store) = self.shared_store {
            tokens = tokens.shared_store(store);
        }
        self.http.validate()?;
        let attempt = self.connector.attempt_timeout(&self.http.timeouts);
        let options = self.manager.with_attempt_timeout(attempt);
        let tokens =
            self.connector.connect(&self.http, tokens.clock(self.clock).options(options))?;
        Ok(Client {
            tokens,
            base: environment.base_url(),
            retry: self.retry,
            connector: PhantomData,
        })
    }
}

impl<M, C> Client<M, C> {
    /// `GET path`
    pub fn get(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::get(path))
    }
    /// `POST path`
    pub fn post(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::post(path))
    }
    /// `PUT path`
    pub fn put(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::put(path))
    }
    /// `PATCH path`
    pub fn patch(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::patch(path))
    }
    /// `DELETE path`
    pub fn delete(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::delete(path))
    }

    /// A request built from a core [`ApiRequest`]. A request made often can be built once and
    /// cloned per call: its path and query were percent-encoded when it was built, and the
    /// client's base URL was parsed when the client was, so a call only assembles them.
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
    /// use helloflex::{ApiRequest, ClientSecret, Environment, InsecureLoopback};
    ///
    /// let emulator = helloflex::emulator::start(Default::default())?;
    /// let client = helloflex::blocking::Client::builder()
    ///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
    ///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
    ///     .build()?;
    /// let values = ApiRequest::get("domainTypes/7/domainValues").query("Lang", "en");
    /// for _ in 0..3 {
    ///     assert_eq!(client.request(values.clone()).send()?.status(), 200);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&self, request: ApiRequest) -> RequestBuilder<'_, M> {
        RequestBuilder { tokens: &self.tokens, base: &self.base, retry: &self.retry, request }
    }

    /// This client with another token manager (`for_user`).
    fn with_tokens(&self, tokens: M) -> Self {
        Self { tokens, base: self.base.clone(), retry: self.retry.clone(), connector: PhantomData }
    }

    /// The token manager behind the client.
    pub fn tokens(&self) -> &M {
        &self.tokens
    }

    /// The API base URL.
    pub fn base_url(&self) -> &Endpoint {
        &self.base
    }
}

impl<C> Client<BlockingTokenManager, C> {
    /// The same Flextell client for another user, whose tokens live in `store`. A web service
    /// builds one client at start-up and one of these per signed-in user: every user shares the
    /// HTTP connection pool and the memory of completed authorizations (a callback replayed
    /// into another session is refused too); each has a token cache of its own. Fails for the
    /// client-credentials grant. See [`BlockingTokenManager::for_store`].
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
    /// use std::sync::Arc;
    /// use helloflex::MemoryStore;
    /// # use helloflex::{AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment};
    /// # use helloflex::InsecureLoopback::Allow;
    /// # let emulator = helloflex::emulator::start(Default::default())?;
    /// # let app = emulator.flextell("http://127.0.0.1:3000/callback");
    /// # let config = AuthorizationCodeConfig::builder(ClientIdentity::confidential(app.client_id, ClientSecret::new(app.client_secret)))
    /// #     .authorize_url(Endpoint::parse(&app.authorize_url, Allow)?)
    /// #     .token_url(Endpoint::parse(&app.token_url, Allow)?)
    /// #     .redirect_uri(Endpoint::parse(&app.redirect_uri, Allow)?)
    /// #     .build()?;
    /// # let environment = Environment::custom(&app.base_url, Allow)?;
    ///
    /// // One client for the service, and one per signed-in user (`Client::for_user`).
    /// let client = helloflex::blocking::Client::builder()
    ///     .environment(environment)
    ///     .authorization_code(config, Arc::new(MemoryStore::new()))
    ///     .build()?;
    /// let alice = client.for_user(Arc::new(MemoryStore::new()))?;
    /// let bob = client.for_user(Arc::new(MemoryStore::new()))?;
    /// let (url, pending) = alice.start_authorization()?;
    /// alice.complete_authorization(&pending, &emulator.approve(&url)?)?;
    /// assert_eq!(alice.get("news").send()?.status(), 200);
    /// // Bob has not signed in: his calls say so.
    /// assert!(matches!(bob.get("news").send(), Err(e) if e.requires_reauthorization()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_user(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        Ok(self.with_tokens(self.tokens.for_store(store)?))
    }

    /// A valid access token (cached, or fetched once for all callers).
    pub fn token(&self) -> Result<Token, Error> {
        self.tokens.token()
    }

    /// Flextell: the URL to send the user to, and the pending authorization to keep server-side.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.tokens.start_authorization()
    }

    /// Flextell: checks the callback, exchanges the code, stores the tokens. `pending` is
    /// borrowed: a forged callback leaves it usable, and a callback accepted once is refused.
    pub fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        self.tokens.complete_authorization(pending, callback)
    }

    /// The last failed store write, if no write succeeded since.
    pub fn store_error(&self) -> Option<StoreError> {
        self.tokens.store_error()
    }

    /// Call before the process exits: starts no more refreshes ahead of expiry and waits up to
    /// `within` for a token request in flight (a background refresh), so the tokens the server
    /// rotated are stored, not lost with the process. `true` when nothing was left in flight.
    /// See [`BlockingTokenManager::close`].
    #[must_use = "`false` means a token request was still in flight"]
    pub fn close(&self, within: Duration) -> bool {
        self.tokens.close(within)
    }
}

impl<C> Client<AsyncTokenManager, C> {
    /// The same Flextell client for another user, whose tokens live in `store`; as the blocking
    /// client's `for_user`. See [`AsyncTokenManager::for_store`].
    pub fn for_user(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        Ok(self.with_tokens(self.tokens.for_store(store)?))
    }

    /// A valid access token (cached, or fetched once for all callers).
    pub async fn token(&self) -> Result<Token, Error> {
        self.tokens.token().await
    }

    /// Flextell: the URL to send the user to, and the pending authorization to keep server-side.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.tokens.start_authorization()
    }

    /// Flextell: checks the callback, exchanges the code, stores the tokens. `pending` is
    /// borrowed: a forged callback leaves it usable, and a callback accepted once is refused.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        self.tokens.complete_authorization(pending, callback).await
    }

    /// The last failed store write, if no write succeeded since.
    pub fn store_error(&self) -> Option<StoreError> {
        self.tokens.store_error()
    }

    /// Await before the runtime shuts down: starts no more refreshes ahead of expiry and waits
    /// up to `within` for a token request in flight (a detached refresh, which a runtime shut
    /// down would cancel), so the tokens the server rotated are stored. `true` when nothing was
    /// left in flight. See [`AsyncTokenManager::close`].
    #[must_use = "`false` means a token request was still in flight"]
    pub async fn close(&self, within: Duration) -> bool {
        self.tokens.close(within).await
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

impl<M> RequestBuilder<'_, M> {
    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.request = self.request.query(key, value);
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.request = self.request.json(body);
        self
    }

    /// Adds a header (`Authorization` and `Host` are refused: the SDK sets them).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Declares whether replaying this request after a failure is safe (default: by method).
    pub fn retry_safe(mut self, safe: bool) -> Self {
        self.request = self.request.retry_safe(safe);
        self
    }
}

impl RequestBuilder<'_, BlockingTokenManager> {
    /// Sends the request: a success, or a typed error with the core's classification.
    pub fn send(self) -> Result<ApiResponse, Error> {
        let tokens = self.tokens;
        let call = ApiCall::new(self.request, self.base.clone(), self.retry.clone(), jitter_seed());
        tokens.call_boxed(Box::new(call)).map(ApiResponse::new)
    }
}

impl<'a> RequestBuilder<'a, AsyncTokenManager> {
    /// Sends the request: a success, or a typed error with the core's classification.
    pub fn send(self) -> impl std::future::Future<Output = Result<ApiResponse, Error>> + Send + 'a {
        let tokens = self.tokens;
        let call = ApiCall::new(self.request, self.base.clone(), self.retry.clone(), jitter_seed());
        // Only the box and the manager are carried into the future: a user's task holds the
        // call's future beside its own state, and each layer's copy is moved as it is built.
        let call = Box::new(call);
        async move { tokens.call_boxed(call).await.map(ApiResponse::new) }
    }
}
