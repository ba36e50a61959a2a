//! The blocking token manager: the shared body ([`crate::manager`]) waited on with a `Condvar`,
//! its jobs run on the calling thread (a background refresh on a thread of its own).

use std::future::Future;
use std::sync::{Arc, Condvar, PoisonError};
use std::time::{Duration, Instant};

use event_listener::Listener;

use helloflex_core::machines::{ApiCall, Fetched, TokenExchange};
use helloflex_core::{
    ClientCredentialsConfig, Error, PendingAuthorization, StoreError, Token, TokenId,
};

use crate::drive::{TokenSource, drive_blocking, remaining};
use crate::fill::{StoreOp, StoreReply};
use crate::manager::{self, Drain, Job, ManagerBuilder, Next, Ran, Shared, Signal, Steps};
use crate::store::TokenStore;
use crate::transport::{BlockingTransport, Response};

impl Signal for Condvar {
    fn notify(&self) {
        self.notify_all();
    }
}

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
    inner: Arc<Inner>,
}

struct Inner {
    shared: Shared<Condvar>,
    transport: Arc<dyn BlockingTransport>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

impl ManagerBuilder {
    /// A blocking manager over `transport`.
    pub fn blocking(self, transport: Arc<dyn BlockingTransport>) -> BlockingTokenManager {
        let shared =
            Shared::new(self.grant, self.options, self.clock, self.entropy, Condvar::new());
        BlockingTokenManager { inner: Arc::new(Inner { shared, transport }) }
    }
}

impl BlockingTokenManager {
    /// A manager for the client-credentials grant, on the system clock with default options
    /// (see [`ManagerBuilder`] for the rest).
    pub fn client_credentials(
        config: ClientCredentialsConfig,
        transport: Arc<dyn BlockingTransport>,
    ) -> Self {
        ManagerBuilder::client_credentials(config).blocking(transport)
    }

    /// Starts a user authorization: the URL to redirect the browser to, and the pending
    /// authorization to keep in the server-side session until the callback.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.inner.shared.start_authorization()
    }

    /// Checks the callback (`state`, errors, `iss`), exchanges the code, stores the tokens and
    /// starts a new generation (a refresh of the previous grant still in flight is discarded).
    /// `pending` is only borrowed: a forged callback (wrong `state`) leaves it good for the
    /// genuine one, and a callback accepted once is refused the second time.
    pub fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        let job = self.inner.shared.begin_authorization(pending, callback)?;
        self.inner.run(job)
    }

    /// A valid token: cached, or fetched by this caller or another (only one request is made).
    pub fn token(&self) -> Result<Token, Error> {
        let shared = &self.inner.shared;
        // The condvar waits on the state's own lock: between the decision to wait and the wait
        // starting, no completion can slip by unseen.
        let mut state = shared.lock();
        loop {
            let now = shared.clock.now();
            match shared.decide(&mut state, now) {
                Next::Use(token) => return Ok(token),
                Next::Fail(error) => return Err(error),
                Next::Refresh(token, job) => {
                    drop(state);
                    self.refresh_in_background(job);
                    return Ok(token);
                }
                Next::Fetch(job) => {
                    drop(state);
                    let _ = self.inner.run(*job);
                    state = shared.lock();
                }
                Next::Wait(until) => {
                    let wait = remaining(until, now);
                    state = shared
                        .signal
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// The same authorization-code manager for another user whose tokens live in `store`:
    /// the transport (and its connection pool) and the memory of completed authorizations are
    /// shared, the token cache is the user's own. Fails for the client-credentials grant.
    pub fn for_store(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        let shared = self.inner.shared.for_store(store, Condvar::new())?;
        let transport = Arc::clone(&self.inner.transport);
        Ok(Self { inner: Arc::new(Inner { shared, transport }) })
    }

    /// Drops the token with `id` after the API refused it; a newer token is left alone.
    pub fn invalidate(&self, id: TokenId) {
        self.inner.shared.invalidate(id);
    }

    /// Closes the manager before the process exits: no refresh ahead of expiry starts from now
    /// on (a caller whose token expired still gets a new one), and this waits up to `within`
    /// until no token request of this manager, or of a per-user manager made from it
    /// ([`Self::for_store`]), is in flight. Returns `true` when none is.
    ///
    /// A refresh runs in the background while callers use the old token. A process that exits
    /// while one is in flight may lose the rotated refresh token the server already issued:
    /// the next refresh presents the spent one, and a server with reuse detection revokes the
    /// grant (the user signs in again; a fleet sharing the store is told to re-authorize).
    /// Calling this last, with a few seconds to spare, prevents that.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use helloflex_auth::{BlockingTokenManager, BlockingTransport, Request, Response};
    /// # use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, TransportError};
    /// # struct Canned;
    /// # impl BlockingTransport for Canned {
    /// #     fn send(&self, _request: Request) -> Result<Response, TransportError> {
    /// #         Ok(http::Response::new(br#"{"access_token":"t0k","expires_in":3599}"#.to_vec()))
    /// #     }
    /// # }
    /// # let config = ClientCredentialsConfig::new("id", ClientSecret::new("s"), &Environment::Sandbox);
    /// let tokens = BlockingTokenManager::client_credentials(config, Arc::new(Canned));
    /// tokens.token()?;
    /// assert!(tokens.close(Duration::from_secs(5)), "nothing left in flight");
    /// # Ok::<(), helloflex_core::Error>(())
    /// ```
    #[must_use = "`false` means a token request was still in flight"]
    pub fn close(&self, within: Duration) -> bool {
        let clock = &*self.inner.shared.clock;
        let give_up = self.inner.shared.close_by(within);
        loop {
            let now = clock.now();
            match self.inner.shared.drain(now, give_up) {
                Drain::Done(drained) => return drained,
                Drain::Wait(listener, until) => {
                    let _ = listener.wait_timeout(remaining(until, now));
                }
            }
        }
    }

    /// The last store write that failed after a token request succeeded, until a write
    /// succeeds again. The new tokens were kept in memory (the refresh token they replaced is
    /// spent), so this process works on; a restart would find the older set in the store.
    pub fn store_error(&self) -> Option<StoreError> {
        self.inner.shared.store_error()
    }

    /// Runs an API call (`ApiCall::new(request, base, retry, OsEntropy.jitter_seed())`): token
    /// attached, transient failures retried, one replay after a 401.
    pub fn call(&self, call: ApiCall) -> Result<Response, Error> {
        self.call_boxed(Box::new(call))
    }

    /// [`Self::call`] on a boxed call: the loop's state then holds a pointer, not the whole
    /// call, so building and pinning it moves a few bytes instead of the call each time.
    pub(crate) fn call_boxed(&self, call: Box<ApiCall>) -> Result<Response, Error> {
        drive_blocking(&*self.inner.transport, &*self.inner.shared.clock, Some(self), call)
    }

    fn refresh_in_background(&self, job: Box<Job>) {
        let inner = Arc::clone(&self.inner);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Box<Job>>(1);
        let spawned =
            std::thread::Builder::new().name("helloflex-refresh".into()).spawn(move || {
                if let Ok(job) = rx.recv() {
                    let _ = inner.run(*job);
                }
            });
        match spawned {
            Ok(_) => {
                let _ = tx.send(job);
            }
            Err(error) => {
                // No thread to be had: refresh on this one rather than give the ticket up.
                tracing::warn!(target: "helloflex::token", %error, "no thread for a background refresh; refreshing inline");
                let _ = self.inner.run(*job);
            }
        }
    }
}

impl Inner {
    /// Runs a job on this thread: the shared loop, whose blocking steps are ready at once. A
    /// set the store has not taken is written back on a thread of its own: that lasts as long
    /// as the store is away, never on a caller's thread.
    fn run(self: &Arc<Self>, job: Job) -> Result<Token, Error> {
        match crate::ready::run_ready(manager::run(&self.shared, &**self, job)) {
            Ran::Done(result) => result,
            Ran::Delivered(token, rest) => {
                let inner = Arc::clone(self);
                let spawned = std::thread::Builder::new()
                    .name("helloflex-write-back".into())
                    .spawn(move || {
                        crate::ready::run_ready(manager::resume(&inner.shared, &*inner, rest))
                    });
                if let Err(error) = spawned {
                    // The next refresh job finds the store behind and writes the set back.
                    tracing::warn!(target: "helloflex::store", %error, "no thread to write new tokens back; the next refresh will");
                    self.shared.write_back_dropped();
                }
                Ok(token)
            }
        }
    }
}

/// The blocking flavour's steps: each does its I/O on the calling thread, then is ready.
impl Steps for Inner {
    fn store(&self, op: StoreOp) -> impl Future<Output = StoreReply> + Send {
        std::future::ready(match self.shared.store() {
            Some(store) => op.run(&**store),
            None => op.lost(),
        })
    }
    fn fetch(
        &self,
        exchange: Box<TokenExchange>,
    ) -> impl Future<Output = Result<Fetched, Error>> + Send {
        let clock = &*self.shared.clock;
        std::future::ready(drive_blocking(&*self.transport, clock, None, exchange))
    }
    fn sleep(&self, until: Instant) -> impl Future<Output = ()> + Send {
        self.transport.sleep(remaining(until, self.shared.clock.now()));
        std::future::ready(())
    }
}

impl TokenSource for BlockingTokenManager {
    fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error> {
        if let Some(id) = rejected {
            self.invalidate(id);
        }
        self.token()
    }

    fn try_token_now(&self) -> Option<Token> {
        self.inner.shared.peek()
    }
}
