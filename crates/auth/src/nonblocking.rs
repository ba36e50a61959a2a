//! The async token manager: the caller loops ([`crate::flavour`]) awaited, waiting on a
//! runtime-agnostic event, its jobs run detached on the caller's [`AsyncRuntime`] (or, without
//! one, owned by the manager and driven by whoever waits: [`crate::held`]) so that a dropped
//! caller never cancels a request that may have reached the server.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use event_listener::{Event, EventListener};
use std::time::{Duration, Instant};

use helloflex_core::machines::{ApiCall, Fetched, TokenExchange};
use helloflex_core::{
    ClientCredentialsConfig, Error, Interruption, PendingAuthorization, StoreError, Token, TokenId,
};

use crate::drive::{AsyncTokenSource, drive_async, drive_async_then, remaining};
use crate::fill::{StoreOp, StoreReply};
use crate::flavour::{self, Flavour};
use crate::held::{Held, Owner};
use crate::manager::{Job, ManagerBuilder, Shared};
use crate::steps::{self, Rest, Steps};
use crate::store::TokenStore;
use crate::transport::{AsyncTransport, Response};

/// A boxed task handed to an [`AsyncRuntime`].
///
/// ```
/// use helloflex_auth::Task;
///
/// let task: Task = Box::pin(async { /* a token request, detached */ });
/// tokio::runtime::Runtime::new()?.block_on(task);
/// # Ok::<(), std::io::Error>(())
/// ```
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What the async manager needs from the caller's runtime (quinn's `Runtime` is the model):
/// a way to run a task detached, and a way to run blocking store I/O off the executor.
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{AsyncRuntime, Task};
///
/// /// Tokio as the manager's runtime (the reqwest client brings its own: `TokioRuntime`).
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
/// let tokio = tokio::runtime::Runtime::new()?;
/// let runtime: Arc<dyn AsyncRuntime> = Arc::new(Tokio(tokio.handle().clone()));
/// let (sender, receiver) = std::sync::mpsc::channel();
/// runtime.spawn(Box::pin(async move { sender.send("ran").unwrap_or_default() }));
/// assert_eq!(receiver.recv()?, "ran");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait AsyncRuntime: Send + Sync + std::fmt::Debug {
    /// Starts `task` detached; it runs to the end even if every caller went away. A runtime
    /// that cannot run it (it has shut down) drops it: the manager then fails the callers
    /// waiting for it at once with [`Interruption::RuntimeShutDown`].
    fn spawn(&self, task: Task);

    /// Runs `work` (blocking store I/O) where it cannot stall the executor; the returned future
    /// finishes when it has run.
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) -> Task;
}

/// The async counterpart of [`crate::BlockingTokenManager`]: one token lifecycle shared by every
/// clone and task; N concurrent callers make one token request.
///
/// No token request is owned by the caller that started it, so a caller dropped mid-request (a
/// client disconnect, a `timeout`) never abandons a request that may have reached the server,
/// and a rotated refresh token is never lost or presented twice:
///
/// - With an [`AsyncRuntime`] (the reqwest client always has one: the runtime it is built in,
///   or the one handed to it) every token request runs as a detached task: once sent, its
///   outcome is concluded and stored even if every caller was dropped, and blocking store I/O
///   runs off the executor. A runtime that has shut down fails the callers at once with
///   [`Interruption::RuntimeShutDown`] (not at the ticket's deadline); the next attempt comes
///   after the failure backoff.
/// - Without one (a transport of your own with no runtime handed in) the manager keeps the
///   request in flight and every caller that waits for it drives it: the one that started it,
///   callers arriving meanwhile, [`Self::close`]; callers whose token is still good give it a
///   poll as they pass. A caller dropped mid-request only stops driving it, and the next caller
///   resumes it, reads the answer and stores it. Nothing runs it while no caller comes, though:
///   resumed after the transport's own timeout, its answer is lost (a refresh is then retried
///   as the replay rule allows). Store I/O runs inline. Hand in a runtime where you have one.
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{AsyncTokenManager, AsyncTransport, Request, Response};
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, TransportError};
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
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
/// // No runtime handed in: the callers waiting for a token request drive it.
/// let tokens = AsyncTokenManager::client_credentials(config, Arc::new(Canned));
/// let (a, b) = tokio::join!(tokens.token(), tokens.token());
/// assert_eq!(a?.id(), b?.id()); // one token request for both
/// # Ok::<(), helloflex_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AsyncTokenManager {
    inner: Arc<Inner>,
    /// The jobs in flight without a runtime, shared with the per-user managers made from this
    /// one (a close drives them all); unused with a runtime.
    held: Arc<Held>,
}

struct Inner {
    shared: Shared,
    transport: Arc<dyn AsyncTransport>,
    runtime: Option<Arc<dyn AsyncRuntime>>,
}

impl std::fmt::Debug for AsyncTokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.shared.fmt(f)
    }
}

impl ManagerBuilder {
    /// An async manager over `transport`, its token requests run detached on `runtime` (see
    /// [`AsyncTokenManager`] for what changes without one).
    pub fn nonblocking(
        self,
        transport: Arc<dyn AsyncTransport>,
        runtime: Option<Arc<dyn AsyncRuntime>>,
    ) -> AsyncTokenManager {
        let shared = Shared::new(self.grant, Arc::new(self.options), self.clock, self.entropy);
        let inner = Arc::new(Inner { shared, transport, runtime });
        AsyncTokenManager { inner, held: Arc::default() }
    }
}

impl AsyncTokenManager {
    /// A manager for the client-credentials grant, on the system clock with default options and
    /// no runtime (see [`ManagerBuilder`] for the rest).
    pub fn client_credentials(
        config: ClientCredentialsConfig,
        transport: Arc<dyn AsyncTransport>,
    ) -> Self {
        ManagerBuilder::client_credentials(config).nonblocking(transport, None)
    }

    /// Starts a user authorization: the URL to redirect the browser to, and the pending
    /// authorization to keep in the server-side session until the callback.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.inner.shared.start_authorization()
    }

    /// Checks the callback (`state`, errors, `iss`), exchanges the code, stores the tokens and
    /// starts a new generation. `pending` is only borrowed: a forged callback (wrong `state`)
    /// leaves it good for the genuine one, and a callback accepted once is refused the second
    /// time. The exchange is no caller's (see [`AsyncTokenManager`]): dropping this future does
    /// not lose the tokens.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        flavour::complete_authorization(self, pending, callback).await
    }

    /// A valid token: cached, or fetched by this caller or another (only one request is made).
    pub async fn token(&self) -> Result<Token, Error> {
        flavour::token(self).await
    }

    /// The same authorization-code manager for another user whose tokens live in `store`
    /// (see [`crate::BlockingTokenManager::for_store`]).
    pub fn for_store(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        let shared = self.inner.shared.for_store(store)?;
        let (transport, runtime) = (Arc::clone(&self.inner.transport), self.inner.runtime.clone());
        let inner = Arc::new(Inner { shared, transport, runtime });
        Ok(Self { inner, held: Arc::clone(&self.held) })
    }

    /// Drops the token with `id` after the API refused it; a newer token is left alone.
    pub fn invalidate(&self, id: TokenId) {
        self.inner.shared.invalidate(id);
    }

    /// Closes the manager before the process (or its runtime) ends: no refresh ahead of expiry
    /// starts from now on, and this waits up to `within` until no token request of this
    /// manager or of one made from it with [`Self::for_store`] is in flight. Returns `true`
    /// when none is. A runtime shut down under a detached refresh cancels it, and a rotated
    /// refresh token the server already issued is lost (see
    /// [`crate::BlockingTokenManager::close`]). Without a runtime, this drives the requests in
    /// flight itself.
    #[must_use = "`false` means a token request was still in flight"]
    pub async fn close(&self, within: Duration) -> bool {
        flavour::close(self, within).await
    }

    /// The last store write that failed after a token request succeeded, until a write
    /// succeeds again (see [`crate::BlockingTokenManager::store_error`]).
    pub fn store_error(&self) -> Option<StoreError> {
        self.inner.shared.store_error()
    }

    /// Runs an API call (see [`crate::BlockingTokenManager::call`]).
    pub fn call(&self, call: ApiCall) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        self.call_boxed(Box::new(call))
    }

    /// [`Self::call`] on a boxed call: the call is the largest part of the future, which is
    /// moved as the layers above it are built.
    pub(crate) fn call_boxed(
        &self,
        call: Box<ApiCall>,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        self.call_then(call, std::convert::identity)
    }

    /// [`Self::call_boxed`], its result mapped by `finish` as the drive loop returns it (no
    /// future around the loop's is polled for it).
    pub(crate) fn call_then<'a, O: Send + 'a>(
        &'a self,
        call: Box<ApiCall>,
        finish: impl FnOnce(Result<Response, Error>) -> O + Send + 'a,
    ) -> impl Future<Output = O> + Send + 'a {
        drive_async_then(&*self.inner.transport, &*self.inner.shared.clock, self, call, finish)
    }

    /// Whose held jobs are this manager's (see [`Owner`]).
    fn owner(&self) -> Owner {
        Arc::as_ptr(&self.inner) as Owner
    }
}

impl Inner {
    /// `job` as a task for the runtime. A task the runtime drops before its first poll (it has
    /// shut down) fails the job's ticket, so the callers waiting for it get
    /// [`Interruption::RuntimeShutDown`] at once rather than at the ticket's deadline. A task
    /// dropped later gives its ticket back (the ticket guard of [`crate::steps`]) and the next caller's
    /// task meets the same end.
    fn detached(self: &Arc<Self>, job: Box<Job>) -> Task {
        let unstarted = Unstarted { inner: Arc::clone(self), job: Some(job) };
        Box::pin(async move {
            if let Some((inner, job)) = unstarted.start() {
                let _ = steps::run_job(&inner, *job).await;
            }
        })
    }

    /// `job` as a task the manager keeps and its callers drive ([`Held`]).
    fn owned(self: &Arc<Self>, job: Box<Job>) -> Task {
        let inner = Arc::clone(self);
        Box::pin(async move {
            let _ = steps::run_job(&inner, *job).await;
        })
    }
}

/// The async flavour's steps: requests through the async transport, store calls off the
/// executor when a runtime is at hand.
impl Steps for Inner {
    fn shared(&self) -> &Shared {
        &self.shared
    }
    async fn store(&self, op: StoreOp) -> StoreReply {
        let Some(store) = self.shared.store() else { return op.lost() };
        let Some(runtime) = &self.runtime else { return op.run(&**store) };
        let lost = op.lost();
        let slot = Arc::new(Mutex::new(None));
        let (filled, store) = (Arc::clone(&slot), Arc::clone(store));
        runtime
            .spawn_blocking(Box::new(move || {
                let reply = op.run(&*store);
                *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(reply);
            }))
            .await;
        let reply = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        reply.unwrap_or(lost)
    }
    async fn fetch(&self, exchange: Box<TokenExchange>) -> Result<Fetched, Error> {
        drive_async(&*self.transport, &*self.shared.clock, &crate::drive::NoTokens, exchange).await
    }
    async fn sleep(&self, until: Instant) {
        self.transport.sleep(remaining(until, self.shared.clock.now())).await;
    }
    /// Its own task with a runtime; without one, the caller drives it to its end.
    async fn write_back(self: &Arc<Self>, rest: Box<Rest>) {
        match &self.runtime {
            Some(runtime) => {
                let inner = Arc::clone(self);
                runtime.spawn(Box::pin(async move { steps::resume(&*inner, rest).await }));
            }
            None => steps::resume(&**self, rest).await,
        }
    }
}

/// The async caller: with a runtime, every job runs detached on it; without one, the manager
/// holds the job and the callers that wait drive it ([`Held`]).
impl Flavour for AsyncTokenManager {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn pass_by(&self) {
        if self.inner.runtime.is_none() {
            self.held.nudge(self.owner());
        }
    }

    async fn start(&self, job: Box<Job>) {
        let inner = &self.inner;
        match &inner.runtime {
            Some(runtime) => runtime.spawn(inner.detached(job)),
            // Without a runtime its starter drives it (every older job first).
            None => {
                self.held.push(self.owner(), inner.owned(job));
                self.held.drive(Some(self.owner())).await;
            }
        }
    }

    /// No caller's, as a refresh is: this caller then waits like any other, and may be dropped.
    async fn run(&self, job: Box<Job>) {
        self.start(job).await;
    }

    async fn conclude(&self, job: Job) -> Result<Token, Error> {
        let handoff = Arc::new(Handoff::default());
        let (inner, sender) = (Arc::clone(&self.inner), Sender(Arc::clone(&handoff)));
        let task = Box::pin(async move {
            let result = steps::run_job(&inner, job).await;
            sender.send(result);
        });
        match &self.inner.runtime {
            Some(runtime) => {
                runtime.spawn(task);
                handoff.recv().await
            }
            None => {
                self.held.push(self.owner(), task);
                self.held.while_driving(Some(self.owner()), handoff.recv()).await
            }
        }
    }

    async fn wait(&self, listener: EventListener, until: Instant, closing: bool) {
        let timeout = self.inner.transport.sleep(remaining(until, self.inner.shared.clock.now()));
        let waited = first_of(listener, timeout);
        match &self.inner.runtime {
            Some(_) => waited.await,
            // A close drives every manager's jobs, a caller its own manager's.
            None => {
                let whose = if closing { None } else { Some(self.owner()) };
                self.held.while_driving(whose, waited).await;
            }
        }
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
        self.inner.shared.peek()
    }
}

/// A detached job not yet started; dropped so (its runtime has shut down), it fails the job.
struct Unstarted {
    inner: Arc<Inner>,
    job: Option<Box<Job>>,
}

impl Unstarted {
    /// The job, now running: dropping the task from here on is the ticket guard's to handle.
    fn start(mut self) -> Option<(Arc<Inner>, Box<Job>)> {
        let job = self.job.take()?;
        Some((Arc::clone(&self.inner), job))
    }
}

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.inner.shared.fail_unstarted(*job, Interruption::RuntimeShutDown.into());
        }
    }
}

/// Carries a job's result back to the caller that started it.
#[derive(Default)]
struct Handoff {
    slot: Mutex<Option<Result<Token, Error>>>,
    ready: Event,
}

impl Handoff {
    async fn recv(&self) -> Result<Token, Error> {
        loop {
            let listener = self.ready.listen();
            if let Some(result) = self.slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                return result;
            }
            listener.await;
        }
    }
}

/// Fills the [`Handoff`]; if the task is dropped unfinished (the runtime shut down), says so.
/// (A held task is only dropped with its manager, when no caller is left to hear it.)
struct Sender(Arc<Handoff>);

impl Sender {
    fn send(self, result: Result<Token, Error>) {
        *self.0.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        self.0.ready.notify(usize::MAX);
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut slot = self.0.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Err(Interruption::RuntimeShutDown.into()));
            drop(slot);
            self.0.ready.notify(usize::MAX);
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
