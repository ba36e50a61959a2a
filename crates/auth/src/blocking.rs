//! The blocking token manager: the caller loops ([`crate::flavour`]) run on the calling thread,
//! waiting on the manager's event with a timeout; its jobs run on the calling thread (a
//! background refresh, and a write-back, on a thread of their own).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::{EventListener, Listener};

use helloflex_core::machines::{ApiCall, Fetched, TokenExchange};
use helloflex_core::{
    ClientCredentialsConfig, Error, PendingAuthorization, StoreError, Token, TokenId,
};

use crate::drive::{TokenSource, drive_blocking, remaining};
use crate::fill::{StoreOp, StoreReply};
use crate::flavour::{self, Flavour};
use crate::manager::{Job, ManagerBuilder, Shared};
use crate::ready::run_ready;
use crate::steps::{self, Rest, Steps};
use crate::store::TokenStore;
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
    inner: Arc<Inner>,
}

struct Inner {
    shared: Shared,
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
        let shared = Shared::new(self.grant, Arc::new(self.options), self.clock, self.entropy);
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
        run_ready(flavour::complete_authorization(self, pending, callback))
    }

    /// A valid token: cached, or fetched by this caller or another (only one request is made).
    pub fn token(&self) -> Result<Token, Error> {
        run_ready(flavour::token(self))
    }

    /// The same authorization-code manager for another user whose tokens live in `store`:
    /// the transport (and its connection pool) and the memory of completed authorizations are
    /// shared, the token cache is the user's own. Fails for the client-credentials grant.
    pub fn for_store(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        let shared = self.inner.shared.for_store(store)?;
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
        run_ready(flavour::close(self, within))
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
        drive_blocking(&*self.inner.transport, &*self.inner.shared.clock, self, call)
    }
}

/// The blocking caller: jobs run on its thread, a refresh ahead of expiry on a thread of its
/// own; it waits on the manager's event with a timeout.
impl Flavour for BlockingTokenManager {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn start(&self, job: Box<Job>) -> impl Future<Output = ()> + Send {
        let inner = Arc::clone(&self.inner);
        let task = move || drop(run_ready(steps::run_job(&inner, *job)));
        if let Err((error, task)) = on_thread("helloflex-refresh", task) {
            // No thread to be had: refresh on this one rather than give the ticket up.
            tracing::warn!(target: "helloflex::token", %error, "no thread for a background refresh; refreshing inline");
            task();
        }
        std::future::ready(())
    }

    fn run(&self, job: Box<Job>) -> impl Future<Output = ()> + Send {
        let _ = run_ready(steps::run_job(&self.inner, *job));
        std::future::ready(())
    }

    fn conclude(&self, job: Job) -> impl Future<Output = Result<Token, Error>> + Send {
        std::future::ready(run_ready(steps::run_job(&self.inner, job)))
    }

    fn wait(
        &self,
        listener: EventListener,
        until: Instant,
        _closing: bool,
    ) -> impl Future<Output = ()> + Send {
        let _ = listener.wait_timeout(remaining(until, self.inner.shared.clock.now()));
        std::future::ready(())
    }
}

/// Runs `task` on a new thread named `name`; without one to be had, hands it back.
fn on_thread<T: FnOnce() + Send + 'static>(name: &str, task: T) -> Result<(), (std::io::Error, T)> {
    // The task reaches the thread through a channel, so that a thread that never started
    // leaves it here to be handed back.
    let (tx, rx) = std::sync::mpsc::sync_channel::<T>(1);
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
        if let Ok(task) = rx.recv() {
            task();
        }
    });
    match spawned {
        Ok(_) => {
            // Fails only if the thread is gone, which it is not before it received.
            let _ = tx.send(task);
            Ok(())
        }
        Err(error) => Err((error, task)),
    }
}

/// The blocking flavour's steps: each does its I/O on the calling thread, then is ready.
impl Steps for Inner {
    fn shared(&self) -> &Shared {
        &self.shared
    }
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
        std::future::ready(drive_blocking(
            &*self.transport,
            clock,
            &crate::drive::NoTokens,
            exchange,
        ))
    }
    fn sleep(&self, until: Instant) -> impl Future<Output = ()> + Send {
        self.transport.sleep(remaining(until, self.shared.clock.now()));
        std::future::ready(())
    }
    /// On a thread of its own: it lasts as long as the store is away, never on a caller's.
    fn write_back(self: &Arc<Self>, rest: Box<Rest>) -> impl Future<Output = ()> + Send {
        let inner = Arc::clone(self);
        let task = move || run_ready(steps::resume(&*inner, rest));
        if let Err((error, task)) = on_thread("helloflex-write-back", task) {
            drop(task);
            // The next refresh job finds the store behind and writes the set back.
            tracing::warn!(target: "helloflex::store", %error, "no thread to write new tokens back; the next refresh will");
            self.shared.write_back_dropped();
        }
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
