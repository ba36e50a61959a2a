//! The token manager's one body: every decision the blocking and async managers make, made
//! here once. A flavour adds only how it waits and runs a job's steps (the `flavour` and `steps` modules).
//!
//! The lock wraps the core's pure calls and this module's bookkeeping only; no store or network
//! call ever runs under it.
//!
//! Here: the lock's state and the decisions taken under it (`decide`, and the job each
//! decision starts). Beside it: `finish` (a job's end handed back), `jobs` (the jobs in flight,
//! what `close` waits for), `authorization` (the callback check and the memory of completed
//! authorizations) and `builder` (`ManagerBuilder`'s setters; the type is defined here, since
//! its defining module shows in the public API of the crates that name it).

mod authorization;
mod builder;
mod finish;
mod jobs;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use event_listener::Event;

use helloflex_core::machines::{Acquire, Grant, Ticket, TokenCache, TokenExchange};
use helloflex_core::{
    AccessToken, AuthorizationCodeConfig, ClientCredentialsConfig, Error, StoreError,
    StoreErrorKind, Token, TokenId,
};

use crate::clock::Clock;
use crate::entropy::Entropy;
use crate::fill::{FillJob, Held, Purpose, Watch};
use crate::options::ManagerOptions;
use crate::store::{StoredTokens, TokenStore};

use authorization::Completed;
use jobs::Jobs;
pub(crate) use jobs::{Drain, Running};

/// How a manager's cache is filled.
#[derive(Debug, Clone)]
pub(crate) enum GrantConfig {
    /// A shared `store` makes one fetch serve every process using it (a fleet).
    ClientCredentials { config: ClientCredentialsConfig, store: Option<Arc<dyn TokenStore>> },
    /// The config is shared by every user's manager made with `for_store` (one copy, not one
    /// per signed-in user).
    AuthorizationCode { config: Arc<AuthorizationCodeConfig>, store: Arc<dyn TokenStore> },
}

/// What the lock guards.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) cache: TokenCache,
    /// The access token the API last refused (client credentials): a shared store may still
    /// hold it, and it must not be adopted again.
    rejected: Option<AccessToken>,
    /// The last store write that failed after the server answered, until a write succeeds.
    store_error: Option<StoreError>,
    /// The highest record version this manager held: it never adopts an older one.
    version: u64,
    /// Another holder's claim, as long as it was watched unchanged (jobs come and go).
    watch: Option<Watch>,
    /// A job that keeps the others from starting, if any.
    busy: Option<Busy>,
    /// When the store is read again, while callers call (user tokens).
    next_check: Instant,
    /// Since when this manager has been in contact with its store (no call failed since).
    contact_since: Option<Instant>,
}

/// A job of this manager that keeps the others from starting.
#[derive(Debug, Clone, Copy)]
enum Busy {
    /// A look at the store (it asks a failing store until it answers), begun then.
    Check(Instant),
    /// New tokens being written back, for as long as the store takes.
    WriteBack,
}
/// What a caller that needs a token does next.
pub(crate) enum Next {
    Use(Token),
    /// Use the token, and start this job in the background.
    Refresh(Token, Box<Job>),
    /// Run (or start) this job, then ask again.
    Fetch(Box<Job>),
    /// Someone else's job runs: wait for a signal, or until then, and ask again.
    Wait(Instant),
    Fail(Error),
}

/// A job and the ticket it completes (none for an authorization, which makes a generation).
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) ticket: Option<Ticket>,
    /// A look at the store (no ticket, not an authorization).
    pub(crate) check: bool,
    pub(crate) fill: FillJob,
    /// Counts the job as in flight until it is dropped (finished, or its runner cancelled).
    pub(crate) running: Running,
}

/// The shared body of a manager.
pub(crate) struct Shared {
    state: Mutex<State>,
    completed: Completed,
    jobs: Arc<Jobs>,
    /// Wakes the callers waiting for a job (a caller listens under the lock, before it waits).
    pub(crate) signal: Event,
    grant: GrantConfig,
    /// Shared by every user's manager made with `for_store`.
    options: Arc<ManagerOptions>,
    pub(crate) clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("TokenManager");
        out.field("grant", &self.grant);
        // `try_lock`: formatting must never wait for (or deadlock on) the lock.
        match self.state.try_lock() {
            Ok(state) => out.field("cache", &state.cache),
            Err(_) => out.field("cache", &"<locked>"),
        };
        out.finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        grant: GrantConfig,
        options: Arc<ManagerOptions>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        let cache = match &grant {
            GrantConfig::ClientCredentials { .. } => {
                TokenCache::client_credentials(options.lifecycle.clone())
            }
            GrantConfig::AuthorizationCode { .. } => {
                TokenCache::refreshing(options.lifecycle.clone())
            }
        };
        let state = State {
            cache,
            rejected: None,
            store_error: None,
            version: 0,
            watch: None,
            busy: None,
            next_check: helloflex_core::machines::saturating_add(clock.now(), options.store_check),
            contact_since: None,
        };
        let (completed, jobs) = (Completed::default(), Arc::default());
        let signal = Event::new();
        Self { state: Mutex::new(state), completed, jobs, signal, grant, options, clock, entropy }
    }

    /// The same authorization-code client for another user, whose tokens live in `store`: an
    /// empty cache of its own, the configuration, the memory of completed authorizations and
    /// the jobs in flight (closing one closes all) shared.
    pub(crate) fn for_store(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        let config = Arc::clone(self.auth_code()?);
        let grant = GrantConfig::AuthorizationCode { config, store };
        let (clock, entropy) = (Arc::clone(&self.clock), Arc::clone(&self.entropy));
        let mut sibling = Self::new(grant, Arc::clone(&self.options), clock, entropy);
        sibling.completed = Arc::clone(&self.completed);
        sibling.jobs = Arc::clone(&self.jobs);
        Ok(sibling)
    }

    /// The lock. Each step under it is one pure call, so a panic cannot leave it half-updated
    /// and a poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store tokens live in, if this grant has one.
    pub(crate) fn store(&self) -> Option<&Arc<dyn TokenStore>> {
        match &self.grant {
            GrantConfig::AuthorizationCode { store, .. } => Some(store),
            GrantConfig::ClientCredentials { store, .. } => store.as_ref(),
        }
    }

    /// Decides what a caller that needs a token does, under the lock.
    pub(crate) fn decide(&self, state: &mut State, now: Instant) -> Next {
        let acquired = state.cache.acquire(now);
        // While a check or a write-back runs, that job alone speaks to the store: the token
        // held serves; once it expired, callers wait for the check, or are told why, typed.
        if let Some(busy) = state.busy {
            match (acquired, busy) {
                (Acquire::UseAndRefresh(token, ticket), _) => {
                    state.cache.abandon(ticket);
                    return Next::Use(token);
                }
                // A check that has not heard from the store yet: refreshing could not either.
                (Acquire::Fetch(ticket), Busy::Check(began)) => {
                    state.cache.abandon(ticket);
                    let wait =
                        helloflex_core::machines::saturating_add(began, self.options.store_timeout);
                    if now < wait {
                        return Next::Wait(wait);
                    }
                    let error = StoreError::new(
                        "read",
                        StoreErrorKind::TimedOut,
                        "the store has not answered since the token expired",
                    );
                    return Next::Fail(error.into());
                }
                (Acquire::Fetch(ticket), Busy::WriteBack) => {
                    state.cache.abandon(ticket);
                    // The write-back's own failure, if it has one yet.
                    let error = state.store_error.clone().unwrap_or_else(|| {
                        StoreError::new(
                            "write",
                            StoreErrorKind::TimedOut,
                            "the store has not taken the new tokens since the token expired",
                        )
                    });
                    return Next::Fail(error.into());
                }
                (other, _) => return self.decided(state, now, other),
            }
        }
        self.decided(state, now, acquired)
    }

    /// The decision for what the cache answered (nothing else running).
    fn decided(&self, state: &mut State, now: Instant, acquired: Acquire) -> Next {
        match acquired {
            Acquire::Use(token) => match self.check(state, now) {
                Some(job) => Next::Refresh(token, job),
                None => Next::Use(token),
            },
            Acquire::Wait(until) => Next::Wait(until),
            Acquire::Fail(error) => Next::Fail(error),
            Acquire::UseAndRefresh(token, ticket) => {
                // Closing: no refresh starts that the process might not live to store. The job
                // is counted in before `closing` is read, and `drain` sets `closing` before it
                // counts: one side always sees the other, so no refresh starts unseen by a
                // close that returned.
                let running = Running::start(&self.jobs);
                if self.jobs.closing.load(Ordering::SeqCst) {
                    drop(running);
                    state.cache.abandon(ticket);
                    return Next::Use(token);
                }
                match self.job(state, ticket, now, running) {
                    Ok(job) => Next::Refresh(token, job),
                    // The token is still good: serve it; the failure is recorded for later
                    // callers.
                    Err(_) => Next::Use(token),
                }
            }
            Acquire::Fetch(ticket) => {
                match self.job(state, ticket, now, Running::start(&self.jobs)) {
                    Ok(job) => Next::Fetch(job),
                    Err(error) => Next::Fail(error),
                }
            }
        }
    }

    /// The job for `ticket`, whose ticket then lives as long as the job can run.
    fn job(
        &self,
        state: &mut State,
        ticket: Ticket,
        now: Instant,
        running: Running,
    ) -> Result<Box<Job>, Error> {
        let seed = self.entropy.jitter_seed();
        let retry = self.options.retry.clone();
        let built = match (&self.grant, ticket.grant()) {
            (GrantConfig::ClientCredentials { config, store }, _) => {
                config.token_request().map(|r| {
                    let purpose = match store {
                        None => Purpose::ClientCredentials,
                        Some(_) => {
                            let held = state.cache.current().map(|t| t.access_token().clone());
                            Purpose::SharedClientCredentials {
                                held: held.into_iter().chain(state.rejected.clone()).collect(),
                                watch: state.watch.clone(),
                            }
                        }
                    };
                    (purpose, Some(TokenExchange::new(r, retry, seed)))
                })
            }
            (GrantConfig::AuthorizationCode { config, .. }, Grant::Refresh(held)) => {
                config.refresh_request(held).map(|r| {
                    let purpose = Purpose::Refresh(self.held(state, now));
                    (purpose, Some(TokenExchange::new(r, retry, seed)))
                })
            }
            (GrantConfig::AuthorizationCode { .. }, _) => {
                Ok((Purpose::Reload(self.held(state, now)), None))
            }
        };
        let (purpose, exchange) = match built {
            Ok(built) => built,
            Err(error) => {
                let _ = state.cache.complete(now, ticket, Err(error.clone()), seed);
                return Err(error);
            }
        };
        let fill = FillJob::new(purpose, exchange, now, self.holder_name(), &self.options);
        state.cache.hold(&ticket, fill.deadline());
        Ok(Box::new(Job { ticket: Some(ticket), check: false, fill, running }))
    }

    /// A look at the store, if one is due: user tokens in a store, nothing in flight, not
    /// closing. Rate-limited whatever its outcome.
    fn check(&self, state: &mut State, now: Instant) -> Option<Box<Job>> {
        if !self.check_due(state, now) {
            return None;
        }
        state.next_check = helloflex_core::machines::saturating_add(now, self.options.store_check);
        let running = Running::start(&self.jobs);
        if self.jobs.closing.load(Ordering::SeqCst) {
            return None;
        }
        let purpose = Purpose::Check(self.held(state, now));
        let fill = FillJob::new(purpose, None, now, self.holder_name(), &self.options);
        state.busy = Some(Busy::Check(now));
        Some(Box::new(Job { ticket: None, check: true, fill, running }))
    }

    /// Whether a look at the store is due (see [`Self::check`]).
    fn check_due(&self, state: &State, now: Instant) -> bool {
        matches!(self.grant, GrantConfig::AuthorizationCode { .. })
            && now >= state.next_check
            && state.busy.is_none()
            && !state.cache.in_flight(now)
            && state.cache.refresh_token().is_some()
    }

    /// A new name for a claim: the process id (for an operator reading the store) and a
    /// random part (not a secret: it tells holders apart across hosts and jobs).
    fn holder_name(&self) -> String {
        let random = self.entropy.jitter_seed() & 0xffff_ffff_ffff;
        format!("{}.{random:012x}", std::process::id())
    }

    /// What this manager holds, for a job to compare with the store.
    fn held(&self, state: &State, now: Instant) -> Held {
        let set = state.cache.current().zip(state.cache.refresh_token()).map(|(token, refresh)| {
            let left = token.expires_at().saturating_duration_since(now);
            let expires = helloflex_core::machines::saturating_add_wall(self.clock.wall(), left);
            StoredTokens {
                access_token: token.access_token().clone(),
                refresh_token: Some(refresh.clone()),
                expires_at_unix_ms: expires
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                scope: None,
                refused: false,
            }
        });
        Held {
            set,
            refresh: state.cache.refresh_token().cloned(),
            retired: state.cache.retired().cloned().collect(),
            version: state.version,
            watch: state.watch.clone(),
            contact_since: state.contact_since,
        }
    }

    /// Drops the token with `id` after the API refused it; a newer token is left alone.
    pub(crate) fn invalidate(&self, id: TokenId) {
        let mut state = self.lock();
        let refused =
            state.cache.current().filter(|t| t.id() == id).map(|t| t.access_token().clone());
        if state.cache.invalidate(id) {
            state.rejected = refused;
            tracing::info!(target: "helloflex::token", "access token invalidated after 401");
        }
    }

    /// A cached token, if one is usable now without any request.
    pub(crate) fn peek(&self) -> Option<Token> {
        let mut state = self.lock();
        let now = self.clock.now();
        match state.cache.acquire(now) {
            // A look at the store is due: the caller takes the way that starts it.
            Acquire::Use(_) if self.check_due(&state, now) => None,
            Acquire::Use(token) => Some(token),
            Acquire::UseAndRefresh(_, ticket) | Acquire::Fetch(ticket) => {
                state.cache.abandon(ticket);
                None
            }
            Acquire::Wait(_) | Acquire::Fail(_) => None,
        }
    }

    /// The last failed store write, if no write succeeded since.
    pub(crate) fn store_error(&self) -> Option<StoreError> {
        self.lock().store_error.clone()
    }
}

/// Builds a token manager: the grant, then the clock and options, then the flavour.
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{ManagerBuilder, BlockingTransport, Request, Response};
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, TransportError};
///
/// struct Canned;
/// impl BlockingTransport for Canned {
///     fn send(&self, _request: Request) -> Result<Response, TransportError> {
///         Ok(http::Response::new(br#"{"access_token":"t0k","expires_in":3599}"#.to_vec()))
///     }
/// }
///
/// let config = ClientCredentialsConfig::new("id", ClientSecret::new("secret"), &Environment::Sandbox);
/// let tokens = ManagerBuilder::client_credentials(config).blocking(Arc::new(Canned));
/// assert_eq!(tokens.token()?.access_token().expose_secret(), "t0k");
/// # Ok::<(), helloflex_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until a flavour is chosen"]
pub struct ManagerBuilder {
    pub(crate) grant: GrantConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    pub(crate) options: ManagerOptions,
}
