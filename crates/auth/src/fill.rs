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

    /// The next step.
    pub(crate) fn poll(&mut self, now: Now) -> Step {
        match self.awaiting {
            Awaiting::Nothing => {}
            Awaiting::Sleep => {
                self.awaiting = Awaiting::Nothing;
                self.sleep_until = None;
            }
            Awaiting::Done => {
                return self.done(Err(misuse("a fill job was polled after it finished")));
            }
            _ => {
                return self
                    .done(Err(misuse("a fill job was polled before its step was answered")));
            }
        }
        if let Stage::End(_) = self.stage {
            let Stage::End(result) = std::mem::replace(&mut self.stage, Stage::Plan) else {
                return self.done(Err(misuse("a fill job lost its result")));
            };
            return self.done(result);
        }
        if let Some(until) = self.sleep_until {
            if now.at < until {
                self.awaiting = Awaiting::Sleep;
                return Step::Sleep(until);
            }
            self.sleep_until = None;
        }
        // The answer's first write failed or conflicted: callers get it now, the store later.
        if self.deliver
            && !self.delivered
            && let Some(set) = &self.answer
        {
            self.delivered = true;
            return Step::Deliver(Box::new(set.clone()), self.store_error.clone());
        }
        if let Stage::Claimed { at } = self.stage {
            return self.send(now, at);
        }
        if !self.fresh {
            self.read_started = now.at;
            self.awaiting = Awaiting::Load;
            return Step::Store(StoreOp::Load);
        }
        match std::mem::replace(&mut self.stage, Stage::Plan) {
            Stage::Plan => self.plan(now),
            Stage::Answer => {
                self.stage = Stage::Answer;
                self.store_answer(now)
            }
            Stage::Refused(error) => self.refused(now, error),
            Stage::Release(error) => self.release(error),
            Stage::Claimed { .. } | Stage::End(_) => {
                self.done(Err(misuse("a fill job decided twice")))
            }
        }
    }

    fn done(&mut self, result: Result<TokenSet, Error>) -> Step {
        self.awaiting = Awaiting::Done;
        let version = match result {
            Ok(_) => self.stored_version,
            Err(_) => None,
        };
        Step::Done(Outcome {
            result,
            store_error: self.store_error.take(),
            version,
            watch: self.watch.take(),
            unchanged: self.unchanged,
            contact_since: self.contact_since,
        })
    }

    /// Ends a check that found the store in order.
    fn unchanged(&mut self) -> Step {
        self.unchanged = true;
        self.done(Err(misuse("a check changes nothing")))
    }

    fn end(&mut self, result: Result<TokenSet, Error>) {
        self.stage = Stage::End(result);
    }

    fn swap(&mut self, write: Write, new: Record) -> Step {
        let expected = Record::version_of(self.record.as_ref());
        let new = Box::new(new);
        self.awaiting = Awaiting::Swap(write, new.clone());
        Step::Store(StoreOp::Swap { expected, new })
    }

    fn wait(&mut self, until: Instant) -> Step {
        self.fresh = false;
        self.sleep_until = Some(until);
        self.awaiting = Awaiting::Sleep;
        Step::Sleep(until)
    }

    /// Whether an unstored answer is written back until stored (a user's grant, which a
    /// refresh may have rotated), rather than reported and left (a client-credentials token
    /// anyone can fetch again).
    fn writes_back(&self) -> bool {
        matches!(self.purpose, Purpose::Refresh(_) | Purpose::Authorize { .. } | Purpose::Check(_))
    }

    /// Our claim is stored: send, unless it took so long to land that a watcher could already
    /// be counting our budget out.
    fn send(&mut self, now: Now, at: Instant) -> Step {
        let exempt = matches!(self.purpose, Purpose::ClientCredentials | Purpose::Authorize { .. });
        if !exempt && now.at > later(at, self.store_timeout) {
            // A store this slow is not asked again at once: plan again after a pause.
            self.stage = Stage::Plan;
            return self.wait(later(now.at, STORE_RETRY));
        }
        match self.exchange.take() {
            Some(exchange) => {
                self.awaiting = Awaiting::Fetch;
                Step::Fetch(exchange)
            }
            None => self.done(Err(misuse("a fill job had no request to send"))),
        }
    }

    /// Decides, on the fresh record, how to get a token.
    fn plan(&mut self, now: Now) -> Step {
        let record = self.record.clone().unwrap_or_default();
        match &self.purpose {
            Purpose::ClientCredentials => {
                self.done(Err(misuse("a client-credentials job read a store")))
            }
            Purpose::Reload(held) => {
                let result = reload(&record, held, now);
                if result.is_ok() {
                    self.stored_version = Some(record.version);
                }
                self.done(result)
            }
            Purpose::Authorize { id, .. } => {
                if record.completed.contains(id) {
                    return self.done(Err(CallbackError::AlreadyCompleted.into()));
                }
                // Written before the code is exchanged: no other instance exchanges it again.
                let mut marked = record.clone();
                marked.completed.push(id.clone());
                let excess = marked.completed.len().saturating_sub(COMPLETED_KEPT);
                marked.completed.drain(..excess);
                marked.version = record.version + 1;
                self.swap(Write::Mark, marked)
            }
            Purpose::SharedClientCredentials { held, .. } => {
                if let Some(tokens) = &record.tokens {
                    let left = tokens.expires_in_at(now.wall);
                    if helloflex_core::machines::live_and_not_held(
                        &tokens.access_token,
                        left,
                        held.iter(),
                    ) {
                        tracing::info!(target: "helloflex::token", "adopting a token another holder stored");
                        self.stored_version = Some(record.version);
                        return self.done(Ok(tokens.to_set_at(now.at, now.wall)));
                    }
                }
                match record.claim.clone().filter(|c| c.holder != self.holder) {
                    Some(claim) if !self.stale(&claim, &record) => self.wait_for(now),
                    _ => self.claim(now, record),
                }
            }
            Purpose::Check(held) | Purpose::Refresh(held) => {
                let checking = matches!(self.purpose, Purpose::Check(_));
                let holds_set = held.set.is_some();
                let verdict = judge(
                    &record,
                    self.record.is_some(),
                    self.epoch_age.is_some(),
                    held,
                    &self.holder,
                    now,
                );
                match verdict {
                    Verdict::Adopt(set) => {
                        tracing::info!(target: "helloflex::token", "adopting tokens another holder stored");
                        self.stored_version = Some(record.version);
                        self.done(Ok(set))
                    }
                    Verdict::Stop(error) => self.done(Err(error)),
                    Verdict::Behind if holds_set => self.write_back(now, record),
                    // A check adopts or writes back, and changes nothing else.
                    Verdict::Behind | Verdict::Free | Verdict::Claimed(_) if checking => {
                        self.unchanged()
                    }
                    // Behind, but only a refresh token held (the access token was dropped after
                    // a 401): refreshing it is the write-back; the answer lands on what is stored.
                    Verdict::Behind => self.claim(now, record),
                    Verdict::Claimed(claim) => {
                        if self.stale(&claim, &record) {
                            tracing::warn!(target: "helloflex::store", budget_ms = claim.budget_ms, "taking over a claim unchanged for its whole budget");
                            self.claim(now, record)
                        } else {
                            self.wait_for(now)
                        }
                    }
                    Verdict::Free => self.claim(now, record),
                }
            }
        }
    }

    /// The store lost the held set (or rolled back past it): write it back, as persistently as
    /// an answer the store has not taken (it is the grant's only continuation the store could
    /// have). The cache keeps it meanwhile; the write-back runs apart from callers.
    fn write_back(&mut self, now: Now, record: Record) -> Step {
        let (Purpose::Refresh(held) | Purpose::Check(held)) = &self.purpose else {
            return self.done(Err(misuse("only a holder writes back")));
        };
        let Some(set) = held.set.clone() else {
            return self.done(Err(misuse("a refresh held no tokens")));
        };
        tracing::warn!(target: "helloflex::store", stored = record.version, held = held.version, "the store is behind the tokens held here; writing them back");
        self.answer_version = record.version.max(held.version) + 1;
        self.answer = Some(set.to_set_at(now.at, now.wall));
        self.stage = Stage::Answer;
        self.deliver = true;
        self.poll(now)
    }

    /// Claims the refresh token on `record`, unless the store is in its grace period.
    fn claim(&mut self, now: Now, record: Record) -> Step {
        if now.at > self.plan_deadline {
            let waited = now.at.saturating_duration_since(self.started);
            return self.done(Err(busy(waited)));
        }
        // A store that can lose data: after its restart, and after this instance's own loss of
        // contact, the holders of newer sets get the time to write them back.
        let settle = self.write_back_max.saturating_mul(CONTACT_SETTLE_PAUSES);
        let settling = self
            .contact_since
            .map_or(settle, |since| settle.saturating_sub(now.at.saturating_duration_since(since)));
        if let Some(age) = self.epoch_age
            && (age < self.grace || !settling.is_zero())
            && matches!(self.purpose, Purpose::Refresh(_))
        {
            let resume = later(now.at, self.grace.saturating_sub(age).max(settling));
            if resume > self.plan_deadline {
                let detail = format!(
                    "the store restarted {} ms ago; refreshes wait out its grace period",
                    millis(age)
                );
                let error = StoreError::new("claim", StoreErrorKind::Recovering, detail);
                return self.done(Err(error.into()));
            }
            // Read meanwhile, at the pace holders write back: a set another holder writes
            // back or refreshes is adopted soon after it lands, not when the pause ends.
            return self.wait(resume.min(later(now.at, self.write_back_max)));
        }
        let mut claimed = record.clone();
        claimed.version = record.version + 1;
        claimed.claim = Some(Claim::new(self.holder.clone(), self.budget));
        // An empty record (deleted on purpose) is claimed with the tokens being refreshed.
        if let (None, Purpose::Refresh(held)) = (&claimed.tokens, &self.purpose) {
            claimed.tokens = held.set.clone();
        }
        self.swap(Write::Claim(now.at), claimed)
    }

    /// Waits for another holder's claim: its set may land, or its budget run out.
    fn wait_for(&mut self, now: Now) -> Step {
        let next = later(now.at, CLAIM_POLL);
        if next > self.plan_deadline {
            let waited = now.at.saturating_duration_since(self.started);
            return self.done(Err(busy(waited)));
        }
        self.wait(next)
    }

    /// Whether `claim` was watched unchanged for long enough: a refresh token's claim for its
    /// whole budget (presenting it early could be a reuse), a client-credentials claim for the
    /// store timeout (taking it over early costs one more token request, nothing else).
    fn stale(&self, claim: &Claim, record: &Record) -> bool {
        let enough = match self.purpose {
            Purpose::SharedClientCredentials { .. } => claim_budget(claim).min(self.store_timeout),
            _ => claim_budget(claim),
        };
        self.watch.as_ref().is_some_and(|w| {
            w.version == record.version && w.holder == claim.holder && w.seen >= enough
        })
    }

    /// Stores the server's answer: on the claim's version the first time, then (written back
    /// after a failure) on whatever the store holds, unless it holds a newer grant.
    fn store_answer(&mut self, now: Now) -> Step {
        let Some(answer) = self.answer.clone() else {
            return self.done(Err(misuse("no answer to store")));
        };
        if matches!(self.purpose, Purpose::ClientCredentials) {
            return self.done(Ok(answer));
        }
        let record = self.record.clone().unwrap_or_default();
        let stored = record.tokens.as_ref().and_then(|t| t.refresh_token.as_ref());
        if self.writes_back() && stored.is_some() && stored == answer.refresh_token.as_ref() {
            // Our write landed (its answer was lost), or another instance adopted it already.
            self.stored_version = Some(record.version);
            self.store_error = None;
            return self.done(Ok(answer));
        }
        let spent = |t: &RefreshToken| match &self.purpose {
            Purpose::Refresh(held) => held.refresh() == Some(t) || held.spent(t),
            Purpose::Check(held) => held.spent(t),
            _ => false,
        };
        if self.delivered
            && let Some(tokens) = &record.tokens
            && record.version > self.answer_version
            && !tokens.refresh_token.as_ref().is_some_and(spent)
        {
            // A newer grant (a sign-in elsewhere) replaced the one this answer continues.
            if tokens.refused {
                return self.done(Err(refused_elsewhere()));
            }
            tracing::info!(target: "helloflex::token", "a newer sign-in replaced these tokens; adopting it");
            self.stored_version = Some(record.version);
            self.store_error = None;
            return self.done(Ok(tokens.to_set_at(now.at, now.wall)));
        }
        let mut new = record.clone();
        new.version = record.version.max(self.answer_version.saturating_sub(1)) + 1;
        self.answer_version = new.version;
        new.tokens = Some(StoredTokens::from_set_at(&answer, now.at, now.wall));
        new.claim = None;
        self.swap(Write::Answer, new)
    }

    /// After `invalid_grant`: adopt a winner, or mark the still-stored token refused.
    fn refused(&mut self, now: Now, error: Error) -> Step {
        let Purpose::Refresh(held) = &self.purpose else { return self.done(Err(error)) };
        let record = self.record.clone().unwrap_or_default();
        let Some(tokens) = &record.tokens else { return self.done(Err(error)) };
        let stored = tokens.refresh_token.as_ref();
        if stored.is_some() && stored == held.refresh() {
            if tokens.refused || record.claim.as_ref().is_some_and(|c| c.holder != self.holder) {
                return self.done(Err(error));
            }
            let mut tomb = record.clone();
            tomb.version = record.version + 1;
            tomb.claim = None;
            if let Some(t) = &mut tomb.tokens {
                t.refused = true;
            }
            return self.swap(Write::Tombstone(error), tomb);
        }
        if record.version > held.version
            && !tokens.refused
            && !stored.is_some_and(|t| held.spent(t))
        {
            tracing::info!(target: "helloflex::token", "another holder refreshed first; adopting its tokens");
            self.stored_version = Some(record.version);
            return self.done(Ok(tokens.to_set_at(now.at, now.wall)));
        }
        self.done(Err(error))
    }

    /// Gives our claim back after a failed request.
    fn release(&mut self, error: Error) -> Step {
        let record = self.record.clone().unwrap_or_default();
        if record.claim.as_ref().is_none_or(|c| c.holder != self.holder) {
            return self.done(Err(error));
        }
        let mut free = record.clone();
        free.version = record.version + 1;
        free.claim = None;
        self.swap(Write::Release(error), free)
    }

    /// The answer of the exchange from [`Step::Fetch`].
    pub(crate) fn handle_fetched(&mut self, now: Now, result: Result<Fetched, Error>) {
        if !matches!(self.awaiting, Awaiting::Fetch) {
            return;
        }
        self.awaiting = Awaiting::Nothing;
        match result {
            Ok(fetched) => {
                let set = fetched.into_token_set(self.default_lifetime);
                if matches!(self.purpose, Purpose::Refresh(_)) {
                    tracing::info!(target: "helloflex::token", rotated = set.rotated, "refresh token grant succeeded");
                }
                let read = Record::version_of(self.record.as_ref());
                self.answer_version = match self.purpose {
                    // A sign-in outranks every version written before it, even by an instance
                    // that remembers more than a store which lost data: at least the wall clock
                    // in milliseconds.
                    Purpose::Authorize { held_version, .. } => {
                        let wall = now.wall.duration_since(std::time::UNIX_EPOCH).map_or(0, millis);
                        (read + 1).max(held_version + 1).max(wall)
                    }
                    _ => read + 1,
                };
                self.answer = Some(set);
                self.stage = Stage::Answer;
                // A sign-in reads what it replaces first; a refresh writes on its claim.
                self.fresh = !matches!(self.purpose, Purpose::Authorize { .. });
                self.store_deadline = later(now.at, self.store_timeout);
            }
            Err(error)
                if error.requires_reauthorization()
                    && matches!(self.purpose, Purpose::Refresh(_)) =>
            {
                self.stage = Stage::Refused(error);
                self.fresh = false;
            }
            Err(error)
                if matches!(
                    self.purpose,
                    Purpose::ClientCredentials | Purpose::Authorize { .. }
                ) =>
            {
                self.end(Err(error));
            }
            Err(error) => self.stage = Stage::Release(error),
        }
    }

    /// The answer to the last [`Step::Store`].
    pub(crate) fn handle_store(&mut self, now: Now, reply: StoreReply) {
        match (std::mem::replace(&mut self.awaiting, Awaiting::Nothing), reply) {
            (Awaiting::Load, StoreReply::Load(Ok(loaded))) => {
                self.contact_since.get_or_insert(now.at);
                self.observe(now, &loaded);
                self.record = loaded.record;
                self.epoch_age = loaded.epoch_age;
                self.fresh = true;
                self.store_deadline = later(now.at, self.store_timeout);
            }
            (Awaiting::Load, StoreReply::Load(Err(error))) => self.store_failed(now, error),
            (Awaiting::Swap(write, new), StoreReply::Swap(result)) => {
                self.written(now, write, *new, result);
            }
            // An answer to a question not asked: ignore it, stay where we were.
            (awaiting, _) => self.awaiting = awaiting,
        }
    }

    /// A successful read: a foreign claim seen unchanged since the last read counts the time
    /// between the two reads towards its budget (only while reads succeed, never the time a
    /// read itself took, and at most [`WATCH_GAP_MAX`] a gap).
    fn observe(&mut self, now: Now, loaded: &Loaded) {
        let foreign = loaded.record.as_ref().and_then(|r| {
            let claim = r.claim.as_ref().filter(|c| c.holder != self.holder)?;
            Some((r.version, claim.holder.clone()))
        });
        let gap = self.last_read_end.map(|end| self.read_started.saturating_duration_since(end));
        self.watch = match (foreign, self.watch.take()) {
            (None, _) => None,
            (Some((version, holder)), Some(mut w))
                if w.version == version && w.holder == holder =>
            {
                w.seen = w.seen.saturating_add(gap.unwrap_or_default().min(WATCH_GAP_MAX));
                Some(w)
            }
            (Some((version, holder)), _) => Some(Watch { version, holder, seen: Duration::ZERO }),
        };
        self.last_read_end = Some(now.at);
    }

    /// A store call failed: an answer is written back until the store takes it; anything
    /// else asks again until the store timeout, then fails, typed.
    fn store_failed(&mut self, now: Now, error: StoreError) {
        self.fresh = false;
        self.last_read_end = None;
        self.contact_since = None;
        // A record that cannot be read or written as it is: asking again changes nothing.
        if !error.is_transient() {
            return match std::mem::replace(&mut self.stage, Stage::Plan) {
                Stage::Answer => {
                    self.store_error = Some(error);
                    let answer = self.answer.take();
                    self.end(answer.ok_or_else(|| misuse("no answer to store")));
                }
                Stage::Refused(e) | Stage::Release(e) => self.end(Err(e)),
                _ => self.end(Err(error.into())),
            };
        }
        match self.stage {
            // Writing back, or looking at a store that may have lost what this instance holds:
            // ask until the store answers, however long it is away, so that it hears from
            // every live holder within a few seconds of its return.
            Stage::Answer if self.writes_back() => self.ask_again(now, &error),
            Stage::Plan if matches!(self.purpose, Purpose::Check(_)) => self.ask_again(now, &error),
            Stage::Answer => {
                self.store_error = Some(error);
                let answer = self.answer.take();
                self.end(answer.ok_or_else(|| misuse("no answer to store")));
            }
            Stage::Refused(_) | Stage::Release(_) => {
                let stage = std::mem::replace(&mut self.stage, Stage::Plan);
                if let Stage::Refused(e) | Stage::Release(e) = stage {
                    self.end(Err(e));
                }
            }
            _ if now.at >= self.store_deadline => self.end(Err(error.into())),
            _ => {
                tracing::debug!(target: "helloflex::store", %error, "store call failed; asking again");
                self.sleep_until = Some(later(now.at, STORE_RETRY));
            }
        }
    }

    /// Asks the store again after a pause that doubles up to the write-back maximum.
    fn ask_again(&mut self, now: Now, error: &StoreError) {
        tracing::debug!(target: "helloflex::store", %error, "the store failed; asking it again");
        self.sleep_until = Some(later(now.at, self.retry));
        self.retry = self.retry.saturating_mul(2).min(self.write_back_max);
    }

    /// The answer to a swap.
    fn written(&mut self, now: Now, write: Write, new: Record, result: Result<Swap, StoreError>) {
        match result {
            Ok(Swap::Stored { version, epoch_age }) => {
                self.contact_since.get_or_insert(now.at);
                let mut new = new;
                new.version = version;
                self.record = Some(new);
                self.fresh = true;
                self.retry = STORE_RETRY;
                if epoch_age.is_some() {
                    self.epoch_age = epoch_age;
                }
                match write {
                    // The store restarted or rolled back between our read and this write: the
                    // claim may sit on data that lost a newer set. Wait out the grace period.
                    Write::Claim(_)
                        if epoch_age.is_some_and(|age| age < self.grace)
                            && matches!(self.purpose, Purpose::Refresh(_)) =>
                    {
                        self.fresh = false;
                    }
                    Write::Claim(at) => self.stage = Stage::Claimed { at },
                    Write::Mark => self.stage = Stage::Claimed { at: now.at },
                    Write::Answer => {
                        self.stored_version = Some(version);
                        self.store_error = None;
                        let answer = self.answer.take();
                        self.end(answer.ok_or_else(|| misuse("no answer to store")));
                    }
                    Write::Tombstone(e) | Write::Release(e) => self.end(Err(e)),
                }
            }
            Ok(Swap::Conflict) => {
                self.fresh = false;
                match write {
                    Write::Answer if self.writes_back() => self.deliver = true,
                    Write::Answer => {
                        let answer = self.answer.take();
                        self.end(answer.ok_or_else(|| misuse("no answer to store")));
                    }
                    // Someone wrote first: the refusal stands; our claim is gone anyway.
                    Write::Tombstone(e) | Write::Release(e) => self.end(Err(e)),
                    Write::Claim(_) | Write::Mark => {}
                }
            }
            Err(error) => match write {
                Write::Answer => {
                    tracing::error!(target: "helloflex::store", %error, "storing new tokens failed; they are served from memory and written back until the store takes them");
                    self.deliver = self.writes_back();
                    self.store_failed(now, error.clone());
                    if self.writes_back() {
                        self.store_error = Some(error);
                    }
                }
                Write::Mark => self.end(Err(error.into())),
                Write::Tombstone(e) | Write::Release(e) => self.end(Err(e)),
                Write::Claim(_) => self.store_failed(now, error),
            },
        }
    }
}

/// A refresh's comparison of the fresh record with what it holds (`exists`: a record was
/// found at all; `loses_data`: the store can lose data on its own, it reports an epoch).
fn judge(
    record: &Record,
    exists: bool,
    loses_data: bool,
    held: &Held,
    holder: &str,
    now: Now,
) -> Verdict {
    let Some(tokens) = record.tokens.as_ref().filter(|_| exists) else {
        return if exists && record.version > held.version {
            // Nothing stored at a version past ours: signed out.
            Verdict::Stop(nothing_stored())
        } else if loses_data {
            // The store lost it.
            Verdict::Behind
        } else {
            // Deleted on purpose (a store that loses nothing on its own): no write-back; a
            // refresh claims the empty record and stores its answer there.
            Verdict::Free
        };
    };
    let stored = tokens.refresh_token.as_ref();
    if stored.is_some() && stored == held.refresh() {
        if tokens.refused {
            return Verdict::Stop(refused_elsewhere());
        }
        return match record.claim.clone() {
            Some(claim) if claim.holder != holder => Verdict::Claimed(claim),
            _ => Verdict::Free,
        };
    }
    if stored.is_some_and(|t| held.spent(t)) {
        return Verdict::Behind;
    }
    if record.version > held.version {
        if tokens.refused {
            return Verdict::Stop(refused_elsewhere());
        }
        return Verdict::Adopt(tokens.to_set_at(now.at, now.wall));
    }
    Verdict::Behind
}

/// A reload: what is stored, unless it is refused, spent, or older than what this instance
/// held.
fn reload(record: &Record, held: &Held, now: Now) -> Result<TokenSet, Error> {
    let tokens = record.tokens.as_ref().ok_or_else(nothing_stored)?;
    if tokens.refused
        || tokens.refresh_token.as_ref().is_some_and(|t| held.spent(t))
        || record.version < held.version
    {
        return Err(refused_elsewhere());
    }
    Ok(tokens.to_set_at(now.at, now.wall))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(rt: &str, refused: bool) -> StoredTokens {
        let mut t: StoredTokens = serde_json::from_value(serde_json::json!({
            "access_token": format!("at-{rt}"), "refresh_token": rt,
            "expires_at_unix_ms": 4_000_000_000_000u64,
        }))
        .unwrap_or_else(|_| unreachable!("a literal token set"));
        t.refused = refused;
        t
    }

    fn record(rt: &str, version: u64) -> Record {
        Record::new(tokens(rt, false), version)
    }

    fn held(rt: &str, version: u64, retired: &[&str]) -> Held {
        Held {
            set: Some(tokens(rt, false)),
            refresh: Some(RefreshToken::new(rt)),
            retired: retired.iter().map(|r| RefreshToken::new(*r)).collect(),
            version,
            ..Held::default()
        }
    }

    fn now() -> Now {
        #[allow(clippy::disallowed_methods)] // one real reading, as a test's starting point
        Now { at: Instant::now(), wall: SystemTime::now() }
    }

    fn verdict(record: Option<Record>, loses_data: bool, held: &Held) -> &'static str {
        let exists = record.is_some();
        match judge(&record.unwrap_or_default(), exists, loses_data, held, "me", now()) {
            Verdict::Free => "free",
            Verdict::Claimed(_) => "claimed",
            Verdict::Adopt(_) => "adopt",
            Verdict::Behind => "behind",
            Verdict::Stop(_) => "stop",
        }
    }

    /// A refresh job for `rt1`, held at version 5.
    fn refresh_job(options: &ManagerOptions, at: Instant) -> FillJob {
        use helloflex_core::{
            AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, InsecureLoopback,
            RetryPolicy,
        };
        let e = |u| {
            Endpoint::parse(u, InsecureLoopback::Allow)
                .unwrap_or_else(|_| unreachable!("a literal endpoint"))
        };
        let config = AuthorizationCodeConfig::new(
            ClientIdentity::confidential("app", ClientSecret::new("s")),
            e("https://auth.test/authorize"),
            e("https://auth.test/token"),
            e("http://127.0.0.1:3000/callback"),
        );
        let request = config
            .refresh_request(&RefreshToken::new("rt1"))
            .unwrap_or_else(|_| unreachable!("a refresh request"));
        let exchange = TokenExchange::new(request, RetryPolicy::default(), 1);
        let purpose = Purpose::Refresh(held("rt1", 5, &[]));
        FillJob::new(purpose, Some(exchange), at, "me".into(), options)
    }

    /// One read at `at` that finds `found`: the step after it.
    fn read(job: &mut FillJob, at: Now, found: &Record) -> Step {
        assert!(matches!(job.poll(at), Step::Store(StoreOp::Load)), "a read");
        job.handle_store(at, StoreReply::Load(Ok(Loaded::new(Some(found.clone())))));
        job.poll(at)
    }

    /// A refresh job for `rt1` and a reader that answers every read with a claim of `holder`
    /// on it, budget 100 s.
    fn watching(at: Instant) -> (FillJob, impl Fn(&mut FillJob, Now) -> Step) {
        let job = refresh_job(&ManagerOptions::default(), at);
        let mut claimed = record("rt1", 6);
        claimed.claim = Some(Claim::new("holder", Duration::from_secs(100)));
        (job, move |job: &mut FillJob, at: Now| read(job, at, &claimed))
    }

    /// Moments after `t0`, in seconds.
    fn after(t0: Now) -> impl Fn(f64) -> Now {
        move |secs| Now {
            at: t0.at + Duration::from_secs_f64(secs),
            wall: t0.wall + Duration::from_secs_f64(secs),
        }
    }

    /// A zero store timeout still lets a claim that landed at once be sent; a claim that
    /// landed late is planned again after a pause, not re-read at once.
    #[test]
    fn a_zero_store_timeout_sends_and_a_late_claim_pauses() {
        let t0 = now();
        let at = after(t0);
        for (landed, sends) in [(0.0, true), (5.0, false)] {
            let options = ManagerOptions::default().with_store_timeout(Duration::ZERO);
            let mut job = refresh_job(&options, t0.at);
            let Step::Store(StoreOp::Swap { new, .. }) = read(&mut job, at(0.0), &record("rt1", 5))
            else {
                panic!("a claim")
            };
            let stored = Swap::Stored { version: new.version, epoch_age: None };
            job.handle_store(at(landed), StoreReply::Swap(Ok(stored)));
            let step = job.poll(at(landed));
            if sends {
                assert!(matches!(step, Step::Fetch(_)), "{step:?}");
            } else {
                assert!(matches!(step, Step::Sleep(_)), "{step:?}");
            }
        }
    }

    fn takes_over(step: &Step) -> bool {
        matches!(step, Step::Store(StoreOp::Swap { new, .. })
            if new.claim.as_ref().is_some_and(|c| c.holder == "me"))
    }

    /// A watcher that was not looking (paused, starved) while the store may have been away
    /// does not count that time as watched: one read after a freeze longer than the claim's
    /// budget takes nothing over. Watched read by read, the claim is taken over after its
    /// budget.
    #[test]
    fn a_claim_is_taken_over_only_after_its_budget_watched_read_by_read() {
        let t0 = now();
        let at = after(t0);
        let (mut job, read) = watching(t0.at);
        assert!(matches!(read(&mut job, at(0.0)), Step::Sleep(_)), "waits for the claim");
        assert!(matches!(read(&mut job, at(0.25)), Step::Sleep(_)));
        let after_freeze = read(&mut job, at(110.25));
        assert!(!takes_over(&after_freeze), "one read after a freeze: {after_freeze:?}");

        let (mut job, read) = watching(t0.at);
        let mut t = 0.0;
        let step = loop {
            let step = read(&mut job, at(t));
            if !matches!(step, Step::Sleep(_)) || t > 200.0 {
                break step;
            }
            t += 0.25;
        };
        assert!(takes_over(&step), "{step:?}");
        assert!((100.0..101.0).contains(&t), "taken over after {t} s");
    }

    /// The comparison of a store's record with what an instance holds, case by case.
    #[test]
    fn a_record_is_adopted_claimed_written_over_or_stopped_at() {
        let h = held("rt2", 5, &["rt1"]);
        // Ours, and nobody else's claim on it: ours to claim.
        assert_eq!(verdict(Some(record("rt2", 5)), true, &h), "free");
        let mut ours_claimed = record("rt2", 6);
        ours_claimed.claim = Some(Claim::new("me", Duration::from_secs(9)));
        assert_eq!(verdict(Some(ours_claimed.clone()), true, &h), "free");
        ours_claimed.claim = Some(Claim::new("someone", Duration::from_secs(9)));
        assert_eq!(verdict(Some(ours_claimed), true, &h), "claimed");
        // Newer (a higher version, a token we never spent): adopted.
        assert_eq!(verdict(Some(record("rt3", 7)), true, &h), "adopt");
        // A token we spent, at any version: the store is behind us.
        assert_eq!(verdict(Some(record("rt1", 9)), true, &h), "behind");
        // An unknown token at a version not above ours (rolled back, or written back by an
        // instance that held less): behind.
        assert_eq!(verdict(Some(record("rt0", 5)), true, &h), "behind");
        // Nothing stored: lost (a store that can lose data), or deleted on purpose.
        assert_eq!(verdict(None, true, &h), "behind");
        assert_eq!(verdict(None, false, &h), "free");
        // No tokens at a version past ours: signed out.
        let signed_out = Record { version: 6, ..Record::default() };
        assert_eq!(verdict(Some(signed_out), true, &h), "stop");
        // A tombstone names a token: ours, or a newer one, stops us; an older one does not.
        let mut tomb = Record::new(tokens("rt2", true), 6);
        assert_eq!(verdict(Some(tomb.clone()), true, &h), "stop");
        tomb.tokens = Some(tokens("rt3", true));
        assert_eq!(verdict(Some(tomb.clone()), true, &h), "stop");
        tomb.tokens = Some(tokens("rt1", true));
        assert_eq!(verdict(Some(tomb), true, &h), "behind");
    }
}
