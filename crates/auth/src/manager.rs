//! The token manager's one body: every decision the blocking and async managers make, made
//! here once. A flavour adds only how it waits and runs a job's steps (the `flavour` and `steps` modules).
//!
//! The lock wraps the core's pure calls and this module's bookkeeping only; no store or network
//! call ever runs under it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};

use helloflex_core::machines::{Acquire, Completion, Grant, Ticket, TokenCache, TokenExchange};
use helloflex_core::{
    AccessToken, AuthorizationCodeConfig, AuthorizationId, CallbackError, ClientCredentialsConfig,
    Error, Interruption, PendingAuthorization, StoreError, StoreErrorKind, Token, TokenId,
    TokenSet, UsageError,
};

use crate::clock::{Clock, SystemClock};
use crate::entropy::{Entropy, OsEntropy};
use crate::fill::{FillJob, Held, Outcome, Purpose, Watch};
use crate::options::ManagerOptions;
use crate::store::{StoredTokens, TokenStore};

/// How a manager's cache is filled.
#[derive(Debug, Clone)]
pub(crate) enum GrantConfig {
    /// A shared `store` makes one fetch serve every process using it (a fleet).
    ClientCredentials {
        config: ClientCredentialsConfig,
        store: Option<Arc<dyn TokenStore>>,
    },
    AuthorizationCode {
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    },
}

/// How many completed authorizations are remembered (to refuse a callback delivered twice).
const COMPLETED_KEPT: usize = 4096;

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

/// Authorizations whose callback was accepted (or attributed and refused), oldest first:
/// shared by every user's manager made with `for_store`, so a callback replayed into another
/// user's session is refused too.
type Completed = Arc<Mutex<VecDeque<AuthorizationId>>>;

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

/// The token requests in flight across a manager and every per-user manager made from it, and
/// whether they are closing: what [`Shared::drain`] waits for before the process may exit.
///
/// A request that reached the server may have spent a rotating refresh token; if its process
/// exits before the answer is stored, the new set is lost and the next refresh is a reuse (the
/// server revokes the grant). Refreshes ahead of expiry run detached from any caller, so only
/// an explicit close can wait for them.
#[derive(Debug, Default)]
struct Jobs {
    running: AtomicUsize,
    closing: AtomicBool,
    idle: Event,
}

/// One job in flight; dropping it wakes whoever waits for the jobs to end.
#[derive(Debug)]
pub(crate) struct Running(Arc<Jobs>);

impl Running {
    fn start(jobs: &Arc<Jobs>) -> Self {
        jobs.running.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(jobs))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

/// What a closing caller does next.
pub(crate) enum Drain {
    /// Stop: `true` when no token request is left in flight, `false` when the time allowed
    /// ran out first.
    Done(bool),
    /// Wait for a job to end (the listener) or until then, and ask again.
    Wait(EventListener, Instant),
}

/// The shared body of a manager.
pub(crate) struct Shared {
    state: Mutex<State>,
    completed: Completed,
    jobs: Arc<Jobs>,
    /// Wakes the callers waiting for a job (a caller listens under the lock, before it waits).
    pub(crate) signal: Event,
    grant: GrantConfig,
    options: ManagerOptions,
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
        options: ManagerOptions,
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
        let config = self.auth_code()?.clone();
        let grant = GrantConfig::AuthorizationCode { config, store };
        let (clock, entropy) = (Arc::clone(&self.clock), Arc::clone(&self.entropy));
        let mut sibling = Self::new(grant, self.options.clone(), clock, entropy);
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

    /// Hands a finished job's outcome back: the cache completes the ticket (or, for an
    /// authorization, starts a new generation), store failures are recorded, waiters woken.
    pub(crate) fn finish(&self, ticket: Option<Ticket>, outcome: Outcome) -> Result<Token, Error> {
        let Outcome { result, store_error, version, watch, unchanged: _, contact_since } = outcome;
        let now = self.clock.now();
        let seed = self.entropy.jitter_seed();
        let mut state = self.lock();
        let failed_write = store_error.is_some();
        // A stale completion (its ticket was superseded) tells this manager nothing.
        let current = ticket.as_ref().is_none_or(|t| state.cache.is_live(t));
        if current {
            state.contact_since = contact_since;
            state.watch = watch;
            if let Some(version) = version {
                state.version = state.version.max(version);
            }
        }
        if let Some(error) = store_error {
            tracing::error!(target: "helloflex::store", %error, "storing new tokens failed; they are kept in memory only");
            state.store_error = Some(error);
        } else if result.is_ok() && self.store().is_some() {
            state.store_error = None;
        }
        let answer = match ticket {
            None => match result {
                Ok(set) => {
                    tracing::info!(target: "helloflex::token", stored = !failed_write, "authorization code exchanged");
                    Ok(state.cache.authorize(set, seed))
                }
                Err(error) => Err(error),
            },
            Some(ticket) => {
                let refresh = matches!(ticket.grant(), Grant::Refresh(_));
                match state.cache.complete(now, ticket, result, seed) {
                    Completion::Stored(token) => {
                        let left = token.expires_at().saturating_duration_since(now);
                        tracing::debug!(target: "helloflex::token", refresh, expires_in_s = left.as_secs(), "token installed");
                        Ok(token)
                    }
                    Completion::Failed(error) => {
                        tracing::warn!(target: "helloflex::token", refresh, reauthorize = error.requires_reauthorization(), %error, "token request failed");
                        Err(error)
                    }
                    _ => {
                        tracing::debug!(target: "helloflex::token", "stale token completion ignored");
                        Err(Interruption::Superseded.into())
                    }
                }
            }
        };
        drop(state);
        self.signal.notify(usize::MAX);
        answer
    }

    /// Hands a set the store has not taken yet to the cache (its job goes on writing it back):
    /// completes the ticket (or, for an authorization, starts the new generation), records the
    /// store's failure, and keeps other jobs from starting until the write-back ends.
    pub(crate) fn deliver(
        &self,
        ticket: Option<Ticket>,
        check: bool,
        set: TokenSet,
        error: Option<StoreError>,
    ) -> Result<Token, Error> {
        self.lock().busy = Some(Busy::WriteBack);
        if check {
            // A check writes back the set the cache holds already: nothing to hand over.
            let mut state = self.lock();
            if let Some(error) = error {
                state.store_error = Some(error);
            }
            return state.cache.current().cloned().ok_or_else(|| Interruption::NoToken.into());
        }
        let outcome = Outcome {
            result: Ok(set),
            store_error: None,
            version: None,
            watch: None,
            unchanged: false,
            contact_since: self.lock().contact_since,
        };
        let token = self.finish(ticket, outcome);
        // `finish` cleared the store error for a good result: the write-back is still due.
        if let Some(error) = error {
            self.lock().store_error = Some(error);
        }
        token
    }

    /// Ends a write-back: the store holds the delivered set (or a newer grant replaced it).
    pub(crate) fn written_back(&self, delivered: &AccessToken, outcome: Outcome) {
        let Outcome { result, store_error, version, watch, unchanged: _, contact_since } = outcome;
        let seed = self.entropy.jitter_seed();
        let mut state = self.lock();
        state.busy = None;
        state.watch = watch;
        state.contact_since = contact_since;
        if let Some(version) = version {
            state.version = state.version.max(version);
        }
        state.store_error = store_error;
        match result {
            Ok(set) if set.access_token != *delivered => {
                tracing::info!(target: "helloflex::token", "a newer grant replaced the tokens being written back");
                let _ = state.cache.insert(set, seed);
            }
            Ok(_) => tracing::info!(target: "helloflex::store", "new tokens written back"),
            Err(error) => {
                tracing::warn!(target: "helloflex::store", %error, "tokens being written back were refused elsewhere");
            }
        }
        drop(state);
        self.signal.notify(usize::MAX);
    }

    /// The write-back of a delivered set ended without its job finishing (its runner was
    /// dropped): other jobs may start again, and one of them writes the set back.
    pub(crate) fn write_back_dropped(&self) {
        self.lock().busy = None;
        self.signal.notify(usize::MAX);
    }

    /// Ends a look at the store: a newer set adopted, or nothing changed.
    pub(crate) fn checked(&self, outcome: Outcome) {
        let Outcome { result, store_error: _, version, watch, unchanged, contact_since } = outcome;
        let seed = self.entropy.jitter_seed();
        let mut state = self.lock();
        state.busy = None;
        state.watch = watch;
        state.contact_since = contact_since;
        match result {
            Ok(set) if !unchanged => {
                if let Some(version) = version {
                    state.version = state.version.max(version);
                }
                let _ = state.cache.insert(set, seed);
            }
            Ok(_) => {}
            Err(error) if unchanged => {
                let _ = error;
            }
            Err(error) => {
                tracing::debug!(target: "helloflex::store", %error, "a look at the store failed");
            }
        }
        drop(state);
        self.signal.notify(usize::MAX);
    }

    /// Gives an unfinished job's ticket back (its runner was cancelled before sending).
    pub(crate) fn abandon(&self, ticket: Ticket) {
        tracing::debug!(target: "helloflex::token", "token request abandoned");
        self.lock().cache.abandon(ticket);
        self.signal.notify(usize::MAX);
    }

    /// Fails a job that never ran (its runtime dropped it unstarted, having shut down): its
    /// ticket completes with `error`, so the callers waiting for it hear now rather than at the
    /// ticket's deadline, and the next attempt waits out the backoff instead of spinning.
    pub(crate) fn fail_unstarted(&self, job: Job, error: Error) {
        let Job { ticket, running, check, .. } = job;
        drop(running);
        if check {
            self.lock().busy = None;
        }
        if let Some(ticket) = ticket {
            tracing::warn!(target: "helloflex::token", %error, "token request never started");
            let now = self.clock.now();
            let _ = self.lock().cache.complete(now, ticket, Err(error), self.entropy.jitter_seed());
        }
        self.signal.notify(usize::MAX);
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

    /// When a close allowed `within` from now gives up waiting (`Duration::MAX`: waits as long
    /// as it takes, not at all).
    pub(crate) fn close_by(&self, within: Duration) -> Instant {
        helloflex_core::machines::saturating_add(self.clock.now(), within)
    }

    /// Closes the manager (and every per-user manager sharing its jobs) and says what the
    /// closing caller does until `give_up`: from now on no refresh ahead of expiry starts (a
    /// caller whose token expired still fetches one), and the caller waits until no token
    /// request is in flight, so every answer the server gave is stored before the process
    /// exits.
    pub(crate) fn drain(&self, now: Instant, give_up: Instant) -> Drain {
        self.jobs.closing.store(true, Ordering::SeqCst);
        // Listen before looking, so a job ending in between still wakes this caller.
        let listener = self.jobs.idle.listen();
        if self.jobs.running.load(Ordering::SeqCst) == 0 {
            Drain::Done(true)
        } else if now >= give_up {
            Drain::Done(false)
        } else {
            Drain::Wait(listener, give_up)
        }
    }

    /// The last failed store write, if no write succeeded since.
    pub(crate) fn store_error(&self) -> Option<StoreError> {
        self.lock().store_error.clone()
    }

    fn auth_code(&self) -> Result<&AuthorizationCodeConfig, Error> {
        match &self.grant {
            GrantConfig::AuthorizationCode { config, .. } => Ok(config),
            GrantConfig::ClientCredentials { .. } => Err(UsageError::WrongState(
                "this token manager uses the client-credentials grant, not the authorization-code flow",
            )
            .into()),
        }
    }

    /// Starts an authorization with the manager's entropy.
    pub(crate) fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        let mut bytes = [0u8; helloflex_core::machines::AUTHORIZATION_ENTROPY_BYTES];
        self.entropy.fill(&mut bytes)?;
        let started = helloflex_core::machines::start_authorization(self.auth_code()?, &bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        started
    }

    /// Checks a callback for `pending` and returns the code exchange to run. A wrong or missing
    /// `state` leaves `pending` good for the genuine callback; an authorization whose callback
    /// was accepted once is refused locally, so a code is never exchanged twice.
    pub(crate) fn begin_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Job, Error> {
        let config = self.auth_code()?;
        let id = pending.id();
        let completed = || self.completed.lock().unwrap_or_else(PoisonError::into_inner);
        if completed().contains(&id) {
            return Err(CallbackError::AlreadyCompleted.into());
        }
        let checked = pending.check_callback(callback);
        let attributed = checked.as_ref().map_or_else(|e| !e.is_stray(), |_| true);
        if attributed {
            let mut completed = completed();
            if completed.contains(&id) {
                // Another caller took this callback in between.
                return Err(CallbackError::AlreadyCompleted.into());
            }
            if completed.len() == COMPLETED_KEPT {
                completed.pop_front();
            }
            completed.push_back(id);
        }
        let request = checked?.into_token_request(config)?;
        let seed = self.entropy.jitter_seed();
        let exchange = TokenExchange::new(request, self.options.retry.clone(), seed);
        let purpose =
            Purpose::Authorize { id: id.fingerprint(), held_version: self.lock().version };
        let (holder, now) = (self.holder_name(), self.clock.now());
        let fill = FillJob::new(purpose, Some(exchange), now, holder, &self.options);
        Ok(Job { ticket: None, check: false, fill, running: Running::start(&self.jobs) })
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

impl ManagerBuilder {
    /// A manager for the client-credentials grant (HelloFlex).
    pub fn client_credentials(config: ClientCredentialsConfig) -> Self {
        Self::new(GrantConfig::ClientCredentials { config, store: None })
    }

    /// A manager for user tokens (authorization-code grant, Flextell) kept in `store`. The
    /// store is read by the first caller that needs a token, not here.
    pub fn authorization_code(config: AuthorizationCodeConfig, store: Arc<dyn TokenStore>) -> Self {
        Self::new(GrantConfig::AuthorizationCode { config, store })
    }

    fn new(grant: GrantConfig) -> Self {
        Self {
            grant,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            options: ManagerOptions::default(),
        }
    }

    /// Shares the client-credentials token through `store` with every process using it: one
    /// of them fetches (holding the store's lease), the others adopt its token. For the
    /// authorization-code grant this replaces the store given at first.
    pub fn shared_store(mut self, shared: Arc<dyn TokenStore>) -> Self {
        match &mut self.grant {
            GrantConfig::ClientCredentials { store, .. } => *store = Some(shared),
            GrantConfig::AuthorizationCode { store, .. } => *store = shared,
        }
        self
    }

    /// The clock (a [`crate::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The entropy (the OS by default; a seeded source makes a run replayable).
    pub fn entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Lifecycle, retries and the attempt timeout.
    pub fn options(mut self, options: ManagerOptions) -> Self {
        self.options = options;
        self
    }
}
