//! The async token manager: the core's lifecycle behind a `std` mutex (never held across an
//! `.await`) and a runtime-agnostic event for waiters. Futures are `Send` and cancel-safe.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use event_listener::{Event, EventListener};
use helloflex_core::{
    Acquire, ApiCall, ApiRequest, AuthorizationCodeConfig, ClientCredentialsConfig, Endpoint,
    Error, PendingAuthorization, RetryPolicy, Ticket, Token, TokenId,
};

use crate::clock::{Clock, SystemClock};
use crate::drive::{AsyncTokenSource, drive_async, remaining};
use crate::entropy::jitter_seed;
use crate::grant::{Cache, GrantConfig, ManagerOptions, Plan, TicketGuard};
use crate::store::{StoreError, TokenStore};
use crate::transport::{AsyncTransport, Response};

/// A boxed task handed to [`Spawner`].
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs background refreshes on the caller's runtime. Without one, the caller that is due to
/// refresh does it before returning its (still valid) token.
pub trait Spawner: Send + Sync {
    /// Starts `task` detached.
    fn spawn(&self, task: Task);
}

/// The async counterpart of [`crate::BlockingTokenManager`]: one token lifecycle shared by every
/// clone and task; N concurrent callers make one token request; a dropped future never wedges
/// the others (its ticket is abandoned on drop).
#[derive(Clone)]
pub struct AsyncTokenManager {
    shared: Arc<Shared>,
}

struct Shared {
    cache: Cache,
    changed: Event,
    transport: Arc<dyn AsyncTransport>,
    clock: Arc<dyn Clock>,
    spawner: Option<Arc<dyn Spawner>>,
}

impl std::fmt::Debug for AsyncTokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTokenManager")
            .field("cache", &self.shared.cache)
            .finish_non_exhaustive()
    }
}

enum Step {
    Done(Result<Token, Error>),
    Refresh(Token, Ticket),
    Fetch(Ticket),
    Wait(EventListener, std::time::Instant),
}

impl AsyncTokenManager {
    /// A manager for the client-credentials grant, on the system clock with default options.
    pub fn client_credentials(
        config: ClientCredentialsConfig,
        transport: Arc<dyn AsyncTransport>,
    ) -> Self {
        Self::with_options(
            config,
            transport,
            Arc::new(SystemClock),
            ManagerOptions::default(),
            None,
        )
    }

    /// A manager with a chosen clock, options and background spawner.
    pub fn with_options(
        config: ClientCredentialsConfig,
        transport: Arc<dyn AsyncTransport>,
        clock: Arc<dyn Clock>,
        options: ManagerOptions,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> Self {
        // Infallible: only the authorization-code grant reads a store.
        match Self::build(
            GrantConfig::ClientCredentials(config),
            transport,
            clock,
            options,
            spawner,
        ) {
            Ok(manager) => manager,
            Err(_) => unreachable!("the client-credentials grant has no store to fail"),
        }
    }

    /// A manager for user tokens (authorization-code grant, Flextell): loads `store`, refreshes
    /// with rotation, stores every new set before it is used. Fails only if the store exists but
    /// cannot be read. Pass a `spawner` so a refresh is never cancelled halfway by a dropped
    /// caller (a rotated refresh token would be lost with it).
    pub fn authorization_code(
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
        transport: Arc<dyn AsyncTransport>,
        clock: Arc<dyn Clock>,
        options: ManagerOptions,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> Result<Self, StoreError> {
        Self::build(
            GrantConfig::AuthorizationCode { config, store },
            transport,
            clock,
            options,
            spawner,
        )
    }

    fn build(
        grant: GrantConfig,
        transport: Arc<dyn AsyncTransport>,
        clock: Arc<dyn Clock>,
        options: ManagerOptions,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> Result<Self, StoreError> {
        let cache = Cache::new(grant, options, &*clock)?;
        Ok(Self {
            shared: Arc::new(Shared { cache, changed: Event::new(), transport, clock, spawner }),
        })
    }

    /// Starts a user authorization: the URL to redirect the browser to, and the pending
    /// authorization to keep in the server-side session until the callback.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.shared.cache.start_authorization()
    }

    /// Checks the callback (`state`, errors, `iss`), exchanges the code, stores the tokens.
    pub async fn complete_authorization(
        &self,
        pending: PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        let shared = &self.shared;
        let exchange = shared.cache.code_exchange(pending, callback)?;
        let fetched = drive_async(&*shared.transport, &*shared.clock, None, exchange).await;
        let token = shared.cache.install_authorized(fetched, &*shared.clock);
        shared.changed.notify(usize::MAX);
        token
    }

    /// A valid token: cached, or fetched by this caller or another (only one request is made).
    pub async fn token(&self) -> Result<Token, Error> {
        let shared = &self.shared;
        loop {
            let step = {
                let mut cache = shared.cache.lock();
                let now = shared.clock.now();
                match cache.acquire(now) {
                    Acquire::Use(token) => Step::Done(Ok(token)),
                    Acquire::Fail(error) => Step::Done(Err(error)),
                    Acquire::UseAndRefresh(token, ticket) => Step::Refresh(token, ticket),
                    Acquire::Fetch(ticket) => Step::Fetch(ticket),
                    // Listening before the lock is released: no completion can be missed.
                    Acquire::Wait(until) => Step::Wait(shared.changed.listen(), until),
                }
            };
            match step {
                Step::Done(result) => return result,
                Step::Refresh(token, ticket) => {
                    match &shared.spawner {
                        Some(spawner) => {
                            let owned = Arc::clone(shared);
                            spawner.spawn(Box::pin(async move { owned.run(ticket).await }));
                        }
                        None => shared.run(ticket).await,
                    }
                    return Ok(token);
                }
                Step::Fetch(ticket) => shared.run(ticket).await,
                Step::Wait(listener, until) => {
                    let timeout = shared.transport.sleep(remaining(until, shared.clock.now()));
                    first_of(listener, timeout).await;
                }
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
    pub async fn call(
        &self,
        request: ApiRequest,
        base: &Endpoint,
        retry: RetryPolicy,
    ) -> Result<Response, Error> {
        let exchange = ApiCall::new(request, base.clone(), retry, jitter_seed());
        drive_async(&*self.shared.transport, &*self.shared.clock, Some(self), exchange).await
    }
}

impl Shared {
    async fn run(&self, ticket: Ticket) {
        let notify = || {
            self.changed.notify(usize::MAX);
        };
        let guard = TicketGuard::new(&self.cache, ticket, &notify);
        let Some(ticket) = guard.ticket() else { return };
        let clock = &*self.clock;
        let result = match self.cache.plan(ticket, clock) {
            Ok(Plan::Adopt(set)) => Ok(set),
            Ok(Plan::Send(exchange, _lock)) => {
                // If this future is dropped here, `guard` abandons the ticket and wakes the
                // waiters. For a refresh that may already have rotated the token, pass a
                // `Spawner` so refreshes run detached and are never cancelled midway.
                let fetched = drive_async(&*self.transport, clock, None, exchange).await;
                self.cache.conclude(ticket, fetched, clock)
            }
            Err(error) => Err(error),
        };
        let _ = guard.finish(clock, result);
    }
}

#[async_trait::async_trait]
impl AsyncTokenSource for AsyncTokenManager {
    async fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error> {
        if let Some(id) = rejected {
            self.invalidate(id);
        }
        self.token().await
    }

    fn try_token_now(&self) -> Option<Token> {
        // Bound first: the lock is released at the end of this statement, before any arm locks.
        let step = self.shared.cache.lock().acquire(self.shared.clock.now());
        match step {
            Acquire::Use(token) => Some(token),
            // Anything else (a refresh to start, a fetch, a wait) goes the full way; give a
            // ticket straight back so the full path can take it.
            Acquire::UseAndRefresh(_, ticket) | Acquire::Fetch(ticket) => {
                self.shared.cache.lock().abandon(ticket);
                None
            }
            Acquire::Wait(_) | Acquire::Fail(_) => None,
        }
    }
}

/// Waits until either future finishes.
async fn first_of<A: Future, B: Future>(a: A, b: B) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}
