//! The fill job: everything the holder of a ticket does, written once as a sans-IO machine,
//! handed the time ([`Now`]) at every call and the store's and server's answers.
//!
//! The blocking and async managers only run its steps: [`Step::Store`] on the store,
//! [`Step::Fetch`] through the transport's drive loop, [`Step::Sleep`] on their clock,
//! [`Step::Deliver`] to the cache. No lock is held while a step runs; the job holds no
//! reference to the manager. Every decision is made on a record read afresh: read, decide, act.
//!
//! A refresh, step by step (what each step prevents):
//! 1. Read the record. A set newer than ours (a higher version, a refresh token we never
//!    spent) is adopted and nothing is sent. A store behind us (it lost or rolled back what we
//!    hold) gets our set written back first.
//! 2. Another holder's claim is waited out, its set adopted as soon as it lands. A claim is
//!    taken over only after this instance watched it unchanged, the store answering, for the
//!    whole budget the claim declares: a holder cut off from the store, or paused, keeps its
//!    claim as long as its request can last.
//! 3. Claim the refresh token: a swap that writes our [`Claim`] into the record (write-ahead:
//!    it lives as long as the record, through the store's restarts). Nothing is sent unless the
//!    claim landed promptly. During the store's grace period after a restart or a loss,
//!    nothing is claimed: live instances holding newer sets write them back first.
//! 4. Send (transient failures retried inside the exchange, the same request).
//! 5. Swap the answer in on the claim's version, clearing the claim, before anyone uses it. If
//!    that write fails or conflicts, the answer is delivered to the cache at once (this process
//!    serves it) and written back, with backoff, until the store holds it: an unstored rotated
//!    set is the grant's only valid continuation and is never let go.
//! 6. On `invalid_grant`, read again: another holder may have won; if the store still holds
//!    the refused token, mark it refused (a tombstone naming it) so the others stop.

use std::time::{Duration, Instant, SystemTime};

use helloflex_core::machines::{Fetched, TokenExchange};
use helloflex_core::{
    AccessToken, CallbackError, Error, Reauthorization, RefreshToken, StoreError, StoreErrorKind,
    TokenSet, UsageError,
};

use crate::options::ManagerOptions;
use crate::store::{Claim, Loaded, Record, StoredTokens, Swap, TokenStore};

/// How long a job waits before asking a failing store again, at first (doubling while it
/// writes back an answer).
const STORE_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between two attempts to write back an unstored answer (less if the store
/// is checked more often: see [`FillJob::new`]).
const WRITE_BACK_MAX: Duration = Duration::from_secs(2);
/// How often a job waiting for another holder's claim reads the record.
const CLAIM_POLL: Duration = Duration::from_millis(250);
/// The shortest store timeout a job works with.
const MIN_STORE_TIMEOUT: Duration = Duration::from_millis(50);
/// The most one gap between two reads adds to the time a claim was watched: a longer gap means
/// this instance was not looking (paused, starved), and a store outage may hide in it.
const WATCH_GAP_MAX: Duration = Duration::from_secs(1);
/// How many authorizations a record remembers.
const COMPLETED_KEPT: usize = 16;
/// With a store that can lose data, how long an instance must have been in contact with it
/// (since its first call, or since its last failed one) before it claims, in pauses between
/// two attempts of a holder writing back what the store lost: after an outage, that holder's
/// write lands before anyone else presents the older token.
const CONTACT_SETTLE_PAUSES: u32 = 3;

/// The time, both ways, read by the runner for each call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) at: Instant,
    pub(crate) wall: SystemTime,
}

/// A store call, owned so that it can be run on another thread.
#[derive(Debug)]
pub(crate) enum StoreOp {
    Load,
    Swap { expected: u64, new: Box<Record> },
}

/// The answer to a [`StoreOp`].
#[derive(Debug)]
pub(crate) enum StoreReply {
    Load(Result<Loaded, StoreError>),
    Swap(Result<Swap, StoreError>),
}

impl StoreOp {
    /// Runs the call: the one place a job meets its store.
    pub(crate) fn run(self, store: &dyn TokenStore) -> StoreReply {
        match self {
            StoreOp::Load => StoreReply::Load(store.load()),
            StoreOp::Swap { expected, new } => StoreReply::Swap(store.swap(expected, &new)),
        }
    }

    /// The answer when the call could not be run at all (the worker running it was lost).
    pub(crate) fn lost(&self) -> StoreReply {
        let error = StoreError::new(
            "call",
            StoreErrorKind::Interrupted,
            "the worker running the store call was lost",
        );
        match self {
            StoreOp::Load => StoreReply::Load(Err(error)),
            StoreOp::Swap { .. } => StoreReply::Swap(Err(error)),
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
    /// Hand this set to the cache now (callers use it from here on); the store has not taken
    /// it yet (the error, if a write failed). The job goes on writing it back; its [`Outcome`]
    /// comes when the store holds it.
    Deliver(Box<TokenSet>, Option<StoreError>),
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
    /// The record version the result stands at, when the store holds it.
    pub(crate) version: Option<u64>,
    /// Another holder's claim, as far as this job watched it (the next job goes on watching).
    pub(crate) watch: Option<Watch>,
    /// A check found nothing to change: `result` is not a new set.
    pub(crate) unchanged: bool,
    /// Since when the job's manager has been in contact with the store, if it is.
    pub(crate) contact_since: Option<Instant>,
}

/// Another holder's claim being watched: unchanged for `seen`, the store answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watch {
    version: u64,
    holder: String,
    seen: Duration,
}

/// What this instance holds, to compare with the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// The set held, as it would be stored (written back if the store lost it); none when the
    /// access token was dropped (a 401) though the refresh token is still held.
    pub(crate) set: Option<StoredTokens>,
    /// The refresh token held.
    pub(crate) refresh: Option<RefreshToken>,
    /// Refresh tokens this instance spent (or saw refused).
    pub(crate) retired: Vec<RefreshToken>,
    /// The highest record version it held.
    pub(crate) version: u64,
    /// The claim it watched last.
    pub(crate) watch: Option<Watch>,
    /// Since when it has been in contact with the store (no call failed since).
    pub(crate) contact_since: Option<Instant>,
}

impl Held {
    fn refresh(&self) -> Option<&RefreshToken> {
        self.refresh.as_ref()
    }
    fn spent(&self, token: &RefreshToken) -> bool {
        self.retired.iter().any(|r| r == token)
    }
}

/// What the job is for.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// A token from the client's own credentials: no store.
    ClientCredentials,
    /// A client-credentials token shared through a store: adopt a live token another holder
    /// stored (none of `held`: the tokens this process holds or had refused), or claim, fetch
    /// and store one.
    SharedClientCredentials { held: Vec<AccessToken>, watch: Option<Watch> },
    /// Read the stored set (nothing usable held: the first read, or a look for a new sign-in
    /// after a refusal).
    Reload(Held),
    /// Refresh the held set's refresh token.
    Refresh(Held),
    /// Look at the store while the held set is still good: adopt a newer set, write ours
    /// back if the store lost it, otherwise change nothing.
    Check(Held),
    /// Store the tokens of a new authorization (`id` names it: a callback is exchanged once
    /// across every instance), replacing what is stored.
    Authorize { id: String, held_version: u64 },
}

/// What the job is doing, between store calls.
#[derive(Debug)]
enum Stage {
    /// Before sending: adopt, write back, wait, or claim.
    Plan,
    /// Our claim is stored, written at `at`: send, if still in time.
    Claimed { at: Instant },
    /// The server answered (`answer`): store it.
    Answer,
    /// The server refused our refresh token: look, then end with the error.
    Refused(Error),
    /// The request failed: give our claim back, then end with the error.
    Release(Error),
    /// Finished, with this result.
    End(Result<TokenSet, Error>),
}

/// What a swap was for.
#[derive(Debug)]
enum Write {
    Claim(Instant),
    Answer,
    Tombstone(Error),
    Release(Error),
    Mark,
}

/// What the job waits for.
#[derive(Debug)]
enum Awaiting {
    Nothing,
    /// The runner sleeps: once it polls again, the sleep is over (whatever its clock says:
    /// a test's manual clock may not move while a transport sleeps for real).
    Sleep,
    Load,
    Swap(Write, Box<Record>),
    Fetch,
    Done,
}

/// How the record read compares with what a refresh holds.
enum Verdict {
    /// The store holds our set, not claimed by anyone else: ours to claim.
    Free,
    /// Another holder claims our refresh token.
    Claimed(Claim),
    /// The store holds a newer set: adopt it.
    Adopt(TokenSet),
    /// The store is behind us (it lost or rolled back what we hold): write ours back.
    Behind,
    /// Stop with this error.
    Stop(Error),
}

/// One ticket's work (see the module docs).
#[derive(Debug)]
pub(crate) struct FillJob {
    purpose: Purpose,
    stage: Stage,
    awaiting: Awaiting,
    exchange: Option<Box<TokenExchange>>,
    /// The record as last read, or as we last wrote it.
    record: Option<Record>,
    /// Whether `record` is known to be what the store holds (read or written since the last
    /// conflict or failure).
    fresh: bool,
    epoch_age: Option<Duration>,
    sleep_until: Option<Instant>,
    /// Our name on a claim.
    holder: String,
    /// The server's answer, until the store holds it.
    answer: Option<TokenSet>,
    /// The version the answer is written at (at least).
    answer_version: u64,
    /// The answer is to go to the cache before the store takes it (its first write failed).
    deliver: bool,
    delivered: bool,
    stored_version: Option<u64>,
    store_error: Option<StoreError>,
    watch: Option<Watch>,
    /// When the last successful read ended (a claim is watched only while reads succeed).
    last_read_end: Option<Instant>,
    read_started: Instant,
    default_lifetime: Duration,
    budget: Duration,
    grace: Duration,
    store_timeout: Duration,
    started: Instant,
    /// No claim is taken after this: a job that could not start its request by then ends,
    /// typed (its ticket lives until `deadline`, a budget later).
    plan_deadline: Instant,
    deadline: Instant,
    /// Until when a failing store is asked again before the job gives up.
    store_deadline: Instant,
    retry: Duration,
    /// The longest pause between two attempts to write back.
    write_back_max: Duration,
    unchanged: bool,
    contact_since: Option<Instant>,
}

fn later(at: Instant, d: Duration) -> Instant {
    helloflex_core::machines::saturating_add(at, d)
}

/// Another holder kept its claim past this holder's deadline, `waited` after the job began.
fn busy(waited: Duration) -> Error {
    let detail =
        format!("another holder still claims the refresh token after {} ms", millis(waited));
    StoreError::new("claim", StoreErrorKind::Busy, detail).into()
}

fn misuse(what: &'static str) -> Error {
    UsageError::WrongState(what).into()
}

/// No tokens are stored: the user must authorize.
pub(crate) fn nothing_stored() -> Error {
    Error::ReauthorizationRequired(Reauthorization::NothingStored)
}

fn refused_elsewhere() -> Error {
    Error::ReauthorizationRequired(Reauthorization::RefusedElsewhere)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn claim_budget(claim: &Claim) -> Duration {
    Duration::from_millis(claim.budget_ms)
}

impl FillJob {
    /// A job for `purpose` that sends `exchange` (none for a reload), started at `now`, timed
    /// by `options`; `holder` names its claims.
    pub(crate) fn new(
        purpose: Purpose,
        exchange: Option<TokenExchange>,
        now: Instant,
        holder: String,
        options: &ManagerOptions,
    ) -> Self {
        let send_budget = exchange.as_ref().map_or(Duration::ZERO, |e| {
            e.deadline(now, options.attempt_timeout).saturating_duration_since(now)
        });
        // A claim covers the request and the writes around it.
        // No store answers within no time: a zero timeout would make every claim land late.
        let store_timeout = options.store_timeout.max(MIN_STORE_TIMEOUT);
        let budget = send_budget.saturating_add(store_timeout.saturating_mul(2));
        // A job may first wait out another holder's whole budget, and a grace period.
        let wait = match purpose {
            Purpose::Refresh(_) | Purpose::SharedClientCredentials { .. } => {
                budget.saturating_add(options.restart_grace)
            }
            Purpose::Authorize { .. } | Purpose::Reload(_) | Purpose::Check(_) => store_timeout,
            Purpose::ClientCredentials => Duration::ZERO,
        };
        let contact_since = match &purpose {
            Purpose::Refresh(held) | Purpose::Reload(held) | Purpose::Check(held) => {
                held.contact_since
            }
            _ => None,
        };
        let watch = match &purpose {
            Purpose::Refresh(held) | Purpose::Reload(held) | Purpose::Check(held) => {
                held.watch.clone()
            }
            Purpose::SharedClientCredentials { watch, .. } => watch.clone(),
            Purpose::ClientCredentials | Purpose::Authorize { .. } => None,
        };
        let stage = match purpose {
            Purpose::ClientCredentials => Stage::Claimed { at: now },
            _ => Stage::Plan,
        };
        Self {
            purpose,
            stage,
            awaiting: Awaiting::Nothing,
            exchange: exchange.map(Box::new),
            record: None,
            fresh: false,
            epoch_age: None,
            sleep_until: None,
            holder,
            answer: None,
            answer_version: 0,
            deliver: false,
            delivered: false,
            stored_version: None,
            store_error: None,
            watch,
            last_read_end: None,
            read_started: now,
            default_lifetime: options.lifecycle.default_lifetime,
            budget,
            grace: options.restart_grace,
            store_timeout,
            started: now,
            plan_deadline: later(now, wait),
            deadline: later(now, budget.saturating_add(wait)),
            store_deadline: later(now, store_timeout),
            retry: STORE_RETRY,
            write_back_max: WRITE_BACK_MAX.min(options.store_check).max(STORE_RETRY),
            unchanged: false,
            contact_since,
        }
    }

    /// The latest instant the job can still be running before it delivers or ends: its ticket
    /// must live this long.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
}

mod answer;
mod decide;

#[cfg(test)]
mod tests;
