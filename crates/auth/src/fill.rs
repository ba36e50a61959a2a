//! The fill job: everything the holder of a ticket does, written once as a sans-IO machine.
//!
//! Plan (take the store's lease, re-read, adopt or send), send, conclude (a token set), store,
//! complete. The blocking and async managers only run its steps: [`Step::Store`] on the store,
//! [`Step::Fetch`] through the transport's drive loop, [`Step::Sleep`] on their clock. No lock
//! is held while a step runs; the job holds no reference to the manager.
//!
//! A refresh, step by step (what each step prevents):
//! 1. Lease the store for the job's whole budget: one holder across processes refreshes.
//!    Busy: re-read and adopt the set the other holder lands; ask again until the deadline.
//! 2. Re-read: another holder may have rotated already; adopt its set instead of sending a
//!    refresh token that is now spent.
//! 3. Send (transient failures retried inside the exchange, the same request).
//! 4. Swap the new set in on the version read in 2, fenced by the lease, before anyone uses it.
//!    A conflict means someone wrote after we read (a new authorization): re-read and adopt.
//!    A failed write keeps the set in memory (the old refresh token is burnt) and is reported.
//! 5. On `invalid_grant`, re-read before giving up: another holder may have won the race; if
//!    the store still holds the refused token, mark it refused (a tombstone) so the other
//!    holders stop without presenting it again.
//! 6. Release the lease.

use std::time::{Duration, Instant};

use helloflex_core::machines::{Fetched, TokenExchange};
use helloflex_core::{AccessToken, Error, RefreshToken, TokenSet, UsageError};

use crate::clock::Clock;
use crate::manager::ManagerOptions;
use crate::store::{Lease, LeaseAttempt, Record, StoreError, StoredTokens, Swap, TokenStore};

/// How long a job waits before asking a failing store for its lease again.
const STORE_RETRY: Duration = Duration::from_millis(250);

/// A store call, owned so that it can be run on another thread.
#[derive(Debug)]
pub(crate) enum StoreOp {
    Lease(Duration),
    Load,
    Swap { expected: u64, new: Box<StoredTokens>, lease: Option<Lease> },
    Release(Lease),
}

/// The answer to a [`StoreOp`].
#[derive(Debug)]
pub(crate) enum StoreReply {
    Lease(Result<LeaseAttempt, StoreError>),
    Load(Result<Option<Record>, StoreError>),
    Swap(Result<Swap, StoreError>),
    Released,
}

impl StoreOp {
    /// Runs the call: the one place a job meets its store.
    pub(crate) fn run(self, store: &dyn TokenStore) -> StoreReply {
        match self {
            StoreOp::Lease(ttl) => StoreReply::Lease(store.lease(ttl)),
            StoreOp::Load => StoreReply::Load(store.load()),
            StoreOp::Swap { expected, new, lease } => {
                StoreReply::Swap(store.swap(expected, &new, lease.as_ref()))
            }
            StoreOp::Release(lease) => {
                if let Err(error) = store.release(&lease) {
                    tracing::debug!(target: "helloflex::store", %error, "lease release failed; it lapses by itself");
                }
                StoreReply::Released
            }
        }
    }

    /// The answer when the call could not be run at all (the worker running it was lost).
    pub(crate) fn lost(&self) -> StoreReply {
        let error =
            || StoreError::Remote { op: "call", reason: "the store call did not finish".into() };
        match self {
            StoreOp::Lease(_) => StoreReply::Lease(Err(error())),
            StoreOp::Load => StoreReply::Load(Err(error())),
            StoreOp::Swap { .. } => StoreReply::Swap(Err(error())),
            StoreOp::Release(_) => StoreReply::Released,
        }
    }
}

/// What the job wants next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Run this call on the store, then [`FillJob::handle_store`].
    Store(StoreOp),
    /// Run this exchange to completion, then [`FillJob::handle_fetched`].
    Fetch(Box<TokenExchange>),
    /// Sleep until then, then poll again.
    Sleep(Instant),
    /// Finished.
    Done(Outcome),
}

/// How a job ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The token set for the cache, or the error for every waiting caller.
    pub(crate) result: Result<TokenSet, Error>,
    /// A store write that failed after the server answered (the set is kept in memory only).
    pub(crate) store_error: Option<StoreError>,
}

/// What the job is for.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// A token from the client's own credentials: no store.
    ClientCredentials,
    /// A client-credentials token shared through a store: lease, adopt a live token another
    /// holder stored (none of `held`, the tokens this process holds or had refused), or fetch
    /// and store one.
    SharedClientCredentials { held: Vec<AccessToken> },
    /// Read the stored set (nothing held in memory yet).
    Reload,
    /// Refresh with `held`; `retired` are refresh tokens this process already spent.
    Refresh { held: RefreshToken, retired: Vec<RefreshToken> },
    /// Store the tokens of a new authorization (a code exchange), replacing what is stored.
    Authorize,
}

/// Where the job is. `Await*` phases wait for the answer to the step just emitted.
#[derive(Debug)]
enum Phase {
    Lease,
    AwaitLease,
    /// The lease is busy: read the store (adopt what the holder lands), then ask again then.
    BusyRead(Instant),
    AwaitBusyRead(Instant),
    BusySleep(Instant),
    Load,
    AwaitLoad,
    Fetch,
    AwaitFetch,
    Swap(TokenSet),
    AwaitSwap(TokenSet),
    /// Read again after a conflict or an `invalid_grant`; without a newer set, end with this.
    Reread(Result<TokenSet, Error>),
    AwaitReread(Result<TokenSet, Error>),
    /// The refresh token was refused and the store still holds it: mark the stored set as
    /// refused, so other holders stop without presenting it again.
    Tombstone {
        version: u64,
        tokens: Box<StoredTokens>,
        error: Error,
    },
    AwaitTombstone(Error),
    Release(Result<TokenSet, Error>),
    AwaitRelease(Result<TokenSet, Error>),
    Finished,
}

/// One ticket's work (see the module docs).
#[derive(Debug)]
pub(crate) struct FillJob {
    purpose: Purpose,
    exchange: Option<Box<TokenExchange>>,
    phase: Phase,
    lease: Option<Lease>,
    /// The version read (after taking the lease); writes are conditional on it.
    version: u64,
    /// A new authorization's set, while its version is read.
    fresh: Option<TokenSet>,
    store_error: Option<StoreError>,
    default_lifetime: Duration,
    started: Instant,
    lease_ttl: Duration,
    deadline: Instant,
    /// Until when a failing store is asked again.
    store_deadline: Instant,
    swaps_left: u8,
}

impl FillJob {
    /// A job for `purpose` that sends `exchange` (none for a reload), started at `now`, timed
    /// by `options` (one HTTP attempt, the store's own calls).
    pub(crate) fn new(
        purpose: Purpose,
        exchange: Option<TokenExchange>,
        now: Instant,
        options: &ManagerOptions,
    ) -> Self {
        let send_budget = exchange.as_ref().map_or(Duration::ZERO, |e| {
            e.deadline(now, options.attempt_timeout).saturating_duration_since(now)
        });
        let lease_ttl = send_budget.saturating_add(options.store_timeout);
        let default_lifetime = options.lifecycle.default_lifetime;
        // A leased job may first wait for another holder's lease to lapse.
        let (phase, wait) = match purpose {
            Purpose::ClientCredentials | Purpose::Authorize => (Phase::Fetch, Duration::ZERO),
            Purpose::Reload => (Phase::Load, Duration::ZERO),
            Purpose::Refresh { .. } | Purpose::SharedClientCredentials { .. } => {
                (Phase::Lease, lease_ttl)
            }
        };
        Self {
            purpose,
            exchange: exchange.map(Box::new),
            phase,
            lease: None,
            version: 0,
            fresh: None,
            store_error: None,
            default_lifetime,
            started: now,
            lease_ttl,
            deadline: now.checked_add(lease_ttl.saturating_add(wait)).unwrap_or(now),
            store_deadline: now.checked_add(options.store_timeout).unwrap_or(now),
            swaps_left: 3,
        }
    }

    /// The latest instant the job can still be running: its ticket must live this long.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next step.
    pub(crate) fn poll(&mut self, clock: &dyn Clock) -> Step {
        let now = clock.now();
        let (phase, step) = match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Lease => (Phase::AwaitLease, Step::Store(StoreOp::Lease(self.lease_ttl))),
            Phase::BusyRead(retry) => (Phase::AwaitBusyRead(retry), Step::Store(StoreOp::Load)),
            Phase::BusySleep(until) if now < until => (Phase::BusySleep(until), Step::Sleep(until)),
            Phase::BusySleep(_) => (Phase::AwaitLease, Step::Store(StoreOp::Lease(self.lease_ttl))),
            Phase::Load => (Phase::AwaitLoad, Step::Store(StoreOp::Load)),
            Phase::Fetch => match self.exchange.take() {
                Some(exchange) => (Phase::AwaitFetch, Step::Fetch(exchange)),
                None => return self.finish(Err(misuse("a fill job had no request to send"))),
            },
            Phase::Swap(set) => {
                let op = StoreOp::Swap {
                    expected: self.version,
                    new: Box::new(StoredTokens::from_set(&set, clock)),
                    lease: self.lease.clone(),
                };
                (Phase::AwaitSwap(set), Step::Store(op))
            }
            Phase::Reread(result) => (Phase::AwaitReread(result), Step::Store(StoreOp::Load)),
            Phase::Tombstone { version, tokens, error } => {
                let op =
                    StoreOp::Swap { expected: version, new: tokens, lease: self.lease.clone() };
                (Phase::AwaitTombstone(error), Step::Store(op))
            }
            Phase::Release(result) => match self.lease.take() {
                Some(lease) => (Phase::AwaitRelease(result), Step::Store(StoreOp::Release(lease))),
                None => return self.finish(result),
            },
            Phase::Finished => {
                return self.finish(Err(misuse("a fill job was polled after it finished")));
            }
            waiting => {
                let step = Step::Done(Outcome {
                    result: Err(misuse("a fill job was polled before its step was answered")),
                    store_error: None,
                });
                (waiting, step)
            }
        };
        self.phase = phase;
        step
    }

    fn finish(&mut self, result: Result<TokenSet, Error>) -> Step {
        self.phase = Phase::Finished;
        Step::Done(Outcome { result, store_error: self.store_error.take() })
    }

    /// The answer of the exchange from [`Step::Fetch`].
    pub(crate) fn handle_fetched(&mut self, result: Result<Fetched, Error>) {
        if !matches!(self.phase, Phase::AwaitFetch) {
            return;
        }
        let held = match &self.purpose {
            Purpose::Refresh { held, .. } => Some(held),
            _ => None,
        };
        self.phase = match result {
            Ok(fetched) => {
                let set = fetched.into_token_set(self.default_lifetime);
                match self.purpose {
                    Purpose::Refresh { .. } => {
                        tracing::info!(target: "helloflex::token", rotated = set.rotated, "refresh token grant succeeded");
                        Phase::Swap(set)
                    }
                    Purpose::SharedClientCredentials { .. } => Phase::Swap(set),
                    // A new authorization replaces what is stored: read the version first.
                    Purpose::Authorize => {
                        self.fresh = Some(set);
                        Phase::Load
                    }
                    Purpose::ClientCredentials | Purpose::Reload => Phase::Release(Ok(set)),
                }
            }
            // Another holder may have refreshed with our token first: look before giving up.
            Err(error) if error.requires_reauthorization() && held.is_some() => {
                Phase::Reread(Err(error))
            }
            Err(error) => Phase::Release(Err(error)),
        };
    }

    /// The answer to the last [`Step::Store`].
    pub(crate) fn handle_store(&mut self, clock: &dyn Clock, reply: StoreReply) {
        let now = clock.now();
        self.phase = match (std::mem::replace(&mut self.phase, Phase::Finished), reply) {
            (Phase::AwaitLease, StoreReply::Lease(Ok(LeaseAttempt::Acquired(lease)))) => {
                self.lease = Some(lease);
                Phase::Load
            }
            (Phase::AwaitLease, StoreReply::Lease(Ok(LeaseAttempt::Busy { retry_in }))) => {
                let retry = now.checked_add(retry_in).unwrap_or(now);
                if retry > self.deadline {
                    let waited_ms = now.saturating_duration_since(self.started).as_millis();
                    let error = StoreError::LeaseBusy { waited_ms: waited_ms as u64 };
                    Phase::Release(Err(error.into()))
                } else {
                    Phase::BusyRead(retry)
                }
            }
            (Phase::AwaitLease, StoreReply::Lease(Err(error))) => {
                // Refreshing unleased could race another holder into a reuse: ask again until
                // the deadline (the store may be restarting), then fail, typed.
                let retry = now.checked_add(STORE_RETRY).unwrap_or(now);
                if retry > self.store_deadline {
                    Phase::Release(Err(error.into()))
                } else {
                    tracing::debug!(target: "helloflex::store", %error, "lease request failed; asking again");
                    Phase::BusySleep(retry)
                }
            }
            (Phase::AwaitBusyRead(retry), StoreReply::Load(loaded)) => {
                match self.adoptable(loaded.ok().flatten().as_ref(), clock) {
                    Some(set) => Phase::Release(Ok(set)),
                    None => Phase::BusySleep(retry),
                }
            }
            (Phase::AwaitLoad, StoreReply::Load(loaded)) => self.loaded(loaded, clock),
            (Phase::AwaitSwap(set), StoreReply::Swap(swapped)) => match swapped {
                Ok(Swap::Stored { version }) => {
                    self.version = version;
                    Phase::Release(Ok(set))
                }
                // An authorization swaps again on the version it reads now (it replaces
                // whatever is stored); a refresh looks at who wrote.
                Ok(Swap::Conflict) if matches!(self.purpose, Purpose::Authorize) => {
                    self.swaps_left = self.swaps_left.saturating_sub(1);
                    if self.swaps_left == 0 {
                        self.store_error = Some(StoreError::Remote {
                            op: "write",
                            reason: "the stored version kept changing".into(),
                        });
                        Phase::Release(Ok(set))
                    } else {
                        self.fresh = Some(set);
                        Phase::Load
                    }
                }
                Ok(Swap::Conflict) => Phase::Reread(Ok(set)),
                Err(error) => {
                    self.store_error = Some(error);
                    Phase::Release(Ok(set))
                }
            },
            (Phase::AwaitReread(fallback), StoreReply::Load(loaded)) => {
                let record = loaded.ok().flatten();
                match self.adoptable(record.as_ref(), clock) {
                    Some(set) => Phase::Release(Ok(set)),
                    None => match (fallback, record) {
                        (Err(error), Some(record)) if self.holds_refused(&record, &error) => {
                            let mut tokens = Box::new(record.tokens);
                            tokens.refused = true;
                            Phase::Tombstone { version: record.version, tokens, error }
                        }
                        (fallback, _) => Phase::Release(fallback),
                    },
                }
            }
            // Written or not (someone wrote after our read), the refusal stands.
            (Phase::AwaitTombstone(error), StoreReply::Swap(_)) => Phase::Release(Err(error)),
            (Phase::AwaitRelease(result), _) => Phase::Release(result),
            // An answer to a question not asked: ignore it, stay where we were.
            (phase, _) => phase,
        };
    }

    /// Whether `record` still holds the refresh token the server just refused to this job
    /// (under the lease), not yet marked: then it is marked, for the other holders.
    fn holds_refused(&self, record: &Record, error: &Error) -> bool {
        let Purpose::Refresh { held, .. } = &self.purpose else { return false };
        self.lease.as_ref().is_some_and(|l| l.fence != 0)
            && error.requires_reauthorization()
            && !record.tokens.refused
            && record.tokens.refresh_token.as_ref() == Some(held)
    }

    /// The store's answer to a plain read.
    fn loaded(&mut self, loaded: Result<Option<Record>, StoreError>, clock: &dyn Clock) -> Phase {
        // A set another holder saw refused is not loaded or refreshed from here.
        if let Ok(Some(record)) = &loaded
            && record.tokens.refused
            && matches!(self.purpose, Purpose::Reload | Purpose::Refresh { .. })
        {
            return Phase::Release(Err(Error::ReauthorizationRequired(
                helloflex_core::Reauthorization::RefusedElsewhere,
            )));
        }
        match (&self.purpose, loaded) {
            (Purpose::Reload, Ok(Some(record))) => {
                self.version = record.version;
                Phase::Release(Ok(record.tokens.to_set(clock)))
            }
            (Purpose::Reload, Ok(None)) => Phase::Release(Err(nothing_stored())),
            (Purpose::Authorize, loaded) => {
                let fresh = self.fresh.take();
                match (loaded, fresh) {
                    (Ok(record), Some(set)) => {
                        self.version = record.map_or(0, |r| r.version);
                        Phase::Swap(set)
                    }
                    (Err(error), Some(set)) => {
                        self.store_error = Some(error);
                        Phase::Release(Ok(set))
                    }
                    (_, None) => Phase::Release(Err(misuse("an authorization had no tokens"))),
                }
            }
            (Purpose::Refresh { .. } | Purpose::SharedClientCredentials { .. }, Ok(record)) => {
                if let Some(set) = self.adoptable(record.as_ref(), clock) {
                    return Phase::Release(Ok(set));
                }
                self.version = record.map_or(0, |r| r.version);
                Phase::Fetch
            }
            (_, Err(error)) => Phase::Release(Err(error.into())),
            (Purpose::ClientCredentials, Ok(_)) => {
                Phase::Release(Err(misuse("a client-credentials job read a store")))
            }
        }
    }

    /// The stored set, if another holder stored a newer one than this job holds: for a
    /// refresh, its refresh token differs from ours and is not one this process already spent;
    /// for a shared client-credentials token, it is live and not one this process holds or had
    /// refused.
    fn adoptable(&self, record: Option<&Record>, clock: &dyn Clock) -> Option<TokenSet> {
        let tokens = &record?.tokens;
        let newer = match &self.purpose {
            Purpose::Refresh { held, retired } => {
                tokens.refresh_token.as_ref().is_some_and(|theirs| {
                    helloflex_core::machines::newer_than_held(theirs, Some(held), retired.iter())
                })
            }
            Purpose::SharedClientCredentials { held } => {
                helloflex_core::machines::live_and_not_held(
                    &tokens.access_token,
                    tokens.expires_in(clock),
                    held.iter(),
                )
            }
            Purpose::ClientCredentials | Purpose::Reload | Purpose::Authorize => false,
        };
        if !newer {
            return None;
        }
        tracing::info!(target: "helloflex::token", "adopting tokens another holder stored");
        Some(tokens.to_set(clock))
    }
}

/// No tokens are stored: the user must authorize.
pub(crate) fn nothing_stored() -> Error {
    Error::ReauthorizationRequired(helloflex_core::Reauthorization::NothingStored)
}

fn misuse(what: &'static str) -> Error {
    UsageError::WrongState(what).into()
}
