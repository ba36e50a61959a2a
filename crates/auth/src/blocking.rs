//! The blocking token manager: `Mutex` + `Condvar` around the core's lifecycle.

use std::sync::{Arc, Condvar, PoisonError};

use helloflex_core::{
    Acquire, ApiCall, ApiRequest, AuthorizationCodeConfig, ClientCredentialsConfig, Endpoint,
    Error, PendingAuthorization, RetryPolicy, Ticket, Token, TokenId,
};

use crate::clock::{Clock, SystemClock};
use crate::drive::{TokenSource, drive_blocking, remaining};
use crate::entropy::jitter_seed;
use crate::grant::{Cache, GrantConfig, ManagerOptions, Plan, TicketGuard};
use crate::store::{StoreError, TokenStore};
use crate::transport::{BlockingTransport, Response};

/// Shares one token lifecycle between every clone and thread: reuse until the refresh margin,
/// refresh in the background while the old token is served, one token request at a time.
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{BlockingTokenManager, BlockingTransport, Request, Response};
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, TransportError};
///
/// /// A stand-in transport that answers every token request.
/// struct Canned;
/// impl BlockingTransport for Canned {
///     fn send(&self, _request: Request) -> Result<Response, TransportError> {
///         Ok(http::Response::new(br#"{"access_token":"t0k","expires_in":3599}"#.to_vec()))
///     }
/// }
///
/// let config = ClientCredentialsConfig::new("id", ClientSecret::new("secret"), &Environment::Sandbox);
/// let tokens = BlockingTokenManager::client_credentials(config, Arc::new(Canned));
/// assert_eq!(tokens.token()?.access_token().expose_secret(), "t0k");
/// # Ok::<(), helloflex_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BlockingTokenManager {
    shared: Arc<Shared>,
}

struct Shared {
    cache: Cache,
    changed: Condvar,
    transport: Arc<dyn BlockingTransport>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cache", &self.cache)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl BlockingTokenManager {
    /// A manager for the client-credentials grant, on the system clock with default options.
    pub fn client_credentials(
        config: ClientCredentialsConfig,
        transport: Arc<dyn BlockingTransport>,
    ) -> Self {
        Self::with_options(config, transport, Arc::new(SystemClock), ManagerOptions::default())
    }

    /// A manager with a chosen clock and options.
    pub fn with_options(
        config: ClientCredentialsConfig,
        transport: Arc<dyn BlockingTransport>,
        clock: Arc<dyn Clock>,
        options: ManagerOptions,
    ) -> Self {
        // Infallible: only the authorization-code grant reads a store.
        match Self::build(GrantConfig::ClientCredentials(config), transport, clock, options) {
            Ok(manager) => manager,
            Err(_) => unreachable!("the client-credentials grant has no store to fail"),
        }
    }

    /// A manager for user tokens (authorization-code grant, Flextell): loads `store`, refreshes
    /// with rotation, stores every new set before it is used. Fails only if the store exists but
    /// cannot be read.
    pub fn authorization_code(
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
        transport: Arc<dyn BlockingTransport>,
        clock: Arc<dyn Clock>,
        options: ManagerOptions,
    ) -> Result<Self, StoreError> {
        Self::build(GrantConfig::AuthorizationCode { config, store }, transport, clock, options)
    }

    fn build(
        grant: GrantConfig,
        transport: Arc<dyn BlockingTransport>,
        clock: Arc<dyn Clock>,
        options: ManagerOptions,
    ) -> Result<Self, StoreError> {
        let cache = Cache::new(grant, options, &*clock)?;
        Ok(Self { shared: Arc::new(Shared { cache, changed: Condvar::new(), transport, clock }) })
    }

    /// Starts a user authorization: the URL to redirect the browser to, and the pending
    /// authorization to keep in the server-side session until the callback.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.shared.cache.start_authorization()
    }

    /// Checks the callback (`state`, errors, `iss`), exchanges the code, stores the tokens.
    pub fn complete_authorization(
        &self,
        pending: PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        let shared = &self.shared;
        let exchange = shared.cache.code_exchange(pending, callback)?;
        let fetched = drive_blocking(&*shared.transport, &*shared.clock, None, exchange);
        let token = shared.cache.install_authorized(fetched, &*shared.clock);
        shared.notify();
        token
    }

    /// A valid token: cached, or fetched by this caller or another (only one request is made).
    pub fn token(&self) -> Result<Token, Error> {
        let shared = &self.shared;
        // The condvar waits on the cache's own lock: between `acquire` answering `Wait` and the
        // wait starting, no completion can slip by unseen.
        let mut cache = shared.cache.lock();
        loop {
            let now = shared.clock.now();
            match cache.acquire(now) {
                Acquire::Use(token) => return Ok(token),
                Acquire::UseAndRefresh(token, ticket) => {
                    drop(cache);
                    self.refresh_in_background(ticket);
                    return Ok(token);
                }
                Acquire::Fetch(ticket) => {
                    drop(cache);
                    shared.run(ticket);
                    cache = shared.cache.lock();
                }
                Acquire::Wait(until) => {
                    let wait = remaining(until, now);
                    cache = shared
                        .changed
                        .wait_timeout(cache, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Acquire::Fail(error) => return Err(error),
            }
        }
    }

    /// Drops the token with `id` after the API refused it; a newer token is left alone.
    pub fn invalidate(&self, id: TokenId) {
        if self.shared.cache.lock().invalidate(id) {
            tracing::info!(target: "helloflex::token", "access token invalidated after 401");
        }
    }

    /// Runs an API call: token attached, transient failures retried, one replay after a 401.
    pub fn call(
        &self,
        request: ApiRequest,
        base: &Endpoint,
        retry: RetryPolicy,
    ) -> Result<Response, Error> {
        let exchange = ApiCall::new(request, base.clone(), retry, jitter_seed());
        drive_blocking(&*self.shared.transport, &*self.shared.clock, Some(self), exchange)
    }

    fn refresh_in_background(&self, ticket: Ticket) {
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("helloflex-refresh".into())
            .spawn(move || shared.run_owned(ticket));
        if let Err(error) = spawned {
            // No thread to be had: the ticket went with the closure and is abandoned on drop.
            tracing::warn!(target: "helloflex::token", %error, "could not start a background refresh");
        }
    }
}

impl Shared {
    fn notify(&self) {
        self.changed.notify_all();
    }

    fn run(&self, ticket: Ticket) {
        let notify = || self.notify();
        let guard = TicketGuard::new(&self.cache, ticket, &notify);
        let Some(ticket) = guard.ticket() else { return };
        let clock = &*self.clock;
        let result = match self.cache.plan(ticket, clock) {
            Ok(Plan::Adopt(set)) => Ok(set),
            Ok(Plan::Send(exchange, _lock)) => {
                let fetched = drive_blocking(&*self.transport, clock, None, exchange);
                self.cache.conclude(ticket, fetched, clock)
            }
            Err(error) => Err(error),
        };
        let _ = guard.finish(clock, result);
    }

    fn run_owned(self: Arc<Self>, ticket: Ticket) {
        self.run(ticket);
    }
}

impl TokenSource for BlockingTokenManager {
    fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error> {
        if let Some(id) = rejected {
            self.invalidate(id);
        }
        self.token()
    }
}
