//! `TokenCache`: the token lifecycle's state machine. One token shared by every caller, at
//! most one ticket out, and what the cache waits for named for it (`Standing`,
//! `RefreshSource`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::deadline::{FAR_FUTURE, saturating_add};
use crate::error::Error;
use crate::retry::Jitter;
use crate::secret::RefreshToken;
use crate::token_response::TokenResponse;

use super::{
    Acquire, Completion, Grant, LifecyclePolicy, Ticket, Token, TokenId, TokenSet, newer_than_held,
};

/// Which grant keeps the cache filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    ClientCredentials,
    RefreshToken,
}

#[derive(Debug)]
struct Current {
    token: Token,
    refresh_at: Instant,
    usable_until: Instant,
}

#[derive(Debug, Clone, Copy)]
struct LiveTicket {
    id: u64,
    deadline: Instant,
}

/// The token lifecycle state machine. Not thread-safe by itself: wrap it in a lock and never
/// hold the lock across I/O (the managers in `helloflex-auth` do this).
///
/// The crate's documentation opens with this machine driven by hand; `helloflex-auth` drives it
/// behind a lock for threads and tasks.
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{AccessToken, Error, LifecyclePolicy, TokenSet};
/// use helloflex_core::machines::{Acquire, Completion, TokenCache};
///
/// let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
/// let now = Instant::now();
/// // The first caller fetches; the others wait for it.
/// let Acquire::Fetch(ticket) = cache.acquire(now) else { unreachable!() };
/// assert!(matches!(cache.acquire(now), Acquire::Wait(_)));
/// let set = TokenSet::new(AccessToken::new("t0k"), None, now, Duration::from_secs(3599), None);
/// let Completion::Stored(_) = cache.complete(now, ticket, Ok::<_, Error>(set), 7) else { unreachable!() };
/// let Acquire::Use(token) = cache.acquire(now) else { unreachable!() };
/// assert_eq!(token.access_token().expose_secret(), "t0k");
/// ```
#[derive(Debug)]
pub struct TokenCache {
    policy: LifecyclePolicy,
    flow: Flow,
    current: Option<Current>,
    refresh: RefreshSource,
    ticket: Option<LiveTicket>,
    next_id: u64,
    standing: Standing,
    /// Refresh tokens this cache has spent (most recent last, a few kept): a store still holding
    /// one of them is stale, and sending one again would be a reuse.
    retired: VecDeque<RefreshToken>,
}

/// What the cache waits for before a new token may be fetched, named for it (rustls's
/// `Expect*` style): one value, so "backing off without an error" or "re-authorization
/// required while holding a refresh token" cannot be written down.
#[derive(Debug)]
enum Standing {
    /// Nothing: a fetch starts whenever one is due.
    Ready,
    /// `failures` fetches in a row failed: none starts before `until`, and callers without a
    /// usable token get `error` until then.
    ExpectBackoff { until: Instant, error: Error, failures: u32 },
    /// The grant is gone (refused, or nothing to refresh with): only a new authorization, or a
    /// newer set read from the store (looked for again from `recheck_at`), brings tokens again.
    ExpectAuthorization { error: Error, recheck_at: Instant },
}

/// What user tokens are refreshed with.
#[derive(Debug)]
enum RefreshSource {
    /// Not read from their store yet: the first fetch is a [`Grant::Reload`].
    ExpectLoad,
    /// This refresh token.
    Held(RefreshToken),
    /// None (client credentials, a response without one, or a grant gone).
    Nothing,
}

/// How many spent refresh tokens are remembered.
const RETIRED_KEPT: usize = 8;

impl TokenCache {
    /// A cache filled by the client-credentials grant.
    pub fn client_credentials(policy: LifecyclePolicy) -> Self {
        Self::new(policy, Flow::ClientCredentials)
    }

    /// A cache filled by refreshing user tokens (authorization-code grant). Start it with
    /// [`TokenCache::insert`] after the code exchange or after loading from a store.
    pub fn refreshing(policy: LifecyclePolicy) -> Self {
        Self::new(policy, Flow::RefreshToken)
    }

    fn new(policy: LifecyclePolicy, flow: Flow) -> Self {
        Self {
            policy,
            flow,
            current: None,
            refresh: match flow {
                Flow::RefreshToken => RefreshSource::ExpectLoad,
                Flow::ClientCredentials => RefreshSource::Nothing,
            },
            ticket: None,
            next_id: 1,
            standing: Standing::Ready,
            retired: VecDeque::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &LifecyclePolicy {
        &self.policy
    }

    /// Decides what a caller that needs a token does now.
    pub fn acquire(&mut self, now: Instant) -> Acquire {
        if self.ticket.is_some_and(|t| now >= t.deadline) {
            self.ticket = None; // its holder vanished
        }
        if let Some(current) = &self.current
            && now < current.usable_until
        {
            let token = current.token.clone();
            if now >= current.refresh_at
                && let Some(grant) = self.grant_if_allowed(now)
            {
                return Acquire::UseAndRefresh(token, self.issue(now, grant));
            }
            return Acquire::Use(token);
        }
        if let Some(ticket) = self.ticket {
            return Acquire::Wait(ticket.deadline);
        }
        match &self.standing {
            // A sign-in elsewhere may have stored new tokens: one caller looks, now and then.
            Standing::ExpectAuthorization { recheck_at, .. }
                if self.flow == Flow::RefreshToken && now >= *recheck_at =>
            {
                return Acquire::Fetch(self.issue(now, Grant::Reload));
            }
            Standing::ExpectAuthorization { error, .. } => return Acquire::Fail(error.clone()),
            Standing::ExpectBackoff { until, error, .. } if now < *until => {
                return Acquire::Fail(error.clone());
            }
            Standing::ExpectBackoff { .. } | Standing::Ready => {}
        }
        match self.grant() {
            Some(grant) => Acquire::Fetch(self.issue(now, grant)),
            None => Acquire::Fail(reauthorization_error()),
        }
    }

    fn grant_if_allowed(&self, now: Instant) -> Option<Grant> {
        let waiting = match &self.standing {
            Standing::Ready => false,
            Standing::ExpectBackoff { until, .. } => now < *until,
            Standing::ExpectAuthorization { .. } => true,
        };
        if self.ticket.is_some() || waiting {
            return None;
        }
        self.grant()
    }

    fn grant(&self) -> Option<Grant> {
        match self.flow {
            Flow::ClientCredentials => Some(Grant::ClientCredentials),
            Flow::RefreshToken => match &self.refresh {
                RefreshSource::Held(token) => Some(Grant::Refresh(token.clone())),
                RefreshSource::ExpectLoad => Some(Grant::Reload),
                RefreshSource::Nothing => None,
            },
        }
    }

    /// Extends the live `ticket` to `deadline`: its holder knows how long its request can take
    /// (the exchange's own deadline), and waiting callers must not take it over before then.
    /// Returns whether the ticket was still live.
    pub fn hold(&mut self, ticket: &Ticket, deadline: Instant) -> bool {
        match &mut self.ticket {
            Some(live) if live.id == ticket.id => {
                live.deadline = deadline;
                true
            }
            _ => false,
        }
    }

    /// Whether a ticket is out at `now` (a fetch or refresh in flight).
    pub fn in_flight(&self, now: Instant) -> bool {
        self.ticket.is_some_and(|t| now < t.deadline)
    }

    /// Whether `ticket` is still the live one (its completion would be taken).
    pub fn is_live(&self, ticket: &Ticket) -> bool {
        self.ticket.is_some_and(|t| t.id == ticket.id)
    }

    fn issue(&mut self, now: Instant, grant: Grant) -> Ticket {
        let id = self.next_id;
        self.next_id += 1;
        let deadline = saturating_add(now, self.policy.ticket_timeout);
        self.ticket = Some(LiveTicket { id, deadline });
        Ticket { id, grant }
    }

    /// The token set a response to `ticket`'s request makes (keeping the old refresh token when
    /// the response omits one). Store it, then [`TokenCache::complete`].
    pub fn token_set(
        &self,
        ticket: &Ticket,
        response: TokenResponse,
        sent_at: Instant,
    ) -> TokenSet {
        let previous = match &ticket.grant {
            Grant::Refresh(r) => Some(r),
            Grant::ClientCredentials | Grant::Reload => None,
        };
        TokenSet::from_response(response, sent_at, previous, self.policy.default_lifetime)
    }

    /// Hands a ticket back with the outcome of its request. `entropy` jitters the next refresh.
    pub fn complete(
        &mut self,
        now: Instant,
        ticket: Ticket,
        result: Result<TokenSet, Error>,
        entropy: u64,
    ) -> Completion {
        if self.ticket.is_none_or(|t| t.id != ticket.id) {
            return Completion::Stale;
        }
        self.ticket = None;
        // A reload that failed on the way (the store unreachable) is tried again after the
        // backoff: only a load that found nothing, or a refusal, ends the wait for a load.
        match result {
            Ok(set) => Completion::Stored(self.install(set, entropy)),
            Err(error) if error.requires_reauthorization() => {
                // The refused token is spent for good: never adopted from a store again.
                if let RefreshSource::Held(refused) =
                    std::mem::replace(&mut self.refresh, RefreshSource::Nothing)
                {
                    self.retire(refused);
                }
                let recheck_at = saturating_add(now, self.policy.reauthorization_recheck);
                self.standing = Standing::ExpectAuthorization { error: error.clone(), recheck_at };
                Completion::Failed(error)
            }
            // A look for a new sign-in that failed on the way: look again later.
            Err(error) if matches!(self.standing, Standing::ExpectAuthorization { .. }) => {
                if let Standing::ExpectAuthorization { recheck_at, .. } = &mut self.standing {
                    *recheck_at = saturating_add(now, self.policy.reauthorization_recheck);
                }
                Completion::Failed(error)
            }
            Err(error) => {
                let failures = match &self.standing {
                    Standing::ExpectBackoff { failures, .. } => failures.saturating_add(1),
                    Standing::Ready | Standing::ExpectAuthorization { .. } => 1,
                };
                // A store that failed loads no authorization server: it is asked again at the
                // first backoff's pace, so that callers are served soon after it returns.
                let doublings = if matches!(error, Error::Store(_)) { 1 } else { failures };
                let backoff = crate::retry::jittered_backoff(
                    self.policy.failure_backoff,
                    self.policy.max_failure_backoff,
                    doublings,
                    Jitter::new(entropy).next_fraction(),
                );
                let until = saturating_add(now, backoff);
                self.standing = Standing::ExpectBackoff { until, error: error.clone(), failures };
                Completion::Failed(error)
            }
        }
    }

    /// Gives a ticket back unused (its holder was cancelled): another caller may fetch at once.
    pub fn abandon(&mut self, ticket: Ticket) {
        if self.ticket.is_some_and(|t| t.id == ticket.id) {
            self.ticket = None;
        }
    }

    /// Installs a token set from outside a ticket (loaded from a store). Any live ticket stays
    /// live; its completion will still be accepted.
    pub fn insert(&mut self, set: TokenSet, entropy: u64) -> Token {
        self.install(set, entropy)
    }

    /// Installs the tokens of a new authorization (a completed code exchange): a new generation.
    /// A ticket still live belongs to the grant this one replaces, so it is dropped: its
    /// completion will be [`Completion::Stale`] and never lands on top of the new grant.
    pub fn authorize(&mut self, set: TokenSet, entropy: u64) -> Token {
        self.ticket = None;
        if let RefreshSource::Held(old) =
            std::mem::replace(&mut self.refresh, RefreshSource::Nothing)
        {
            self.retire(old);
        }
        self.install(set, entropy)
    }

    fn retire(&mut self, token: RefreshToken) {
        if self.retired.len() == RETIRED_KEPT {
            self.retired.pop_front();
        }
        self.retired.push_back(token);
    }

    fn install(&mut self, set: TokenSet, entropy: u64) -> Token {
        let lifetime = set.lifetime;
        let expires_at = set.expires_at();
        // Refresh 10-15% of the lifetime early (jittered), at most `max_refresh_margin`; stop
        // handing the token out 5% before expiry (at most 30 s) so requests in flight are not
        // rejected on arrival. A 59 s token refreshes ~6-9 s early; a 1 h token 3.3-5 min early.
        // The cap is jittered too (two thirds of it to all of it): a fleet holding one long-lived
        // token does not come due in one instant.
        let fraction = 0.10 + 0.05 * Jitter::new(entropy).next_fraction();
        let cap = self.policy.max_refresh_margin.min(FAR_FUTURE).mul_f64(fraction / 0.15);
        let margin = lifetime.mul_f64(fraction).min(cap);
        let guard = (lifetime / 20).min(Duration::from_secs(30));
        let refresh_at = expires_at.checked_sub(margin).unwrap_or(set.issued_at);
        let usable_until = expires_at.checked_sub(guard).unwrap_or(set.issued_at);
        let id = TokenId(self.next_id);
        self.next_id += 1;
        let token = Token::new(id, set.access_token, expires_at);
        self.current = Some(Current { token: token.clone(), refresh_at, usable_until });
        match (set.refresh_token, &self.refresh) {
            (Some(new), _) => {
                let old = std::mem::replace(&mut self.refresh, RefreshSource::Held(new));
                if let (RefreshSource::Held(old), RefreshSource::Held(new)) = (old, &self.refresh)
                    && old != *new
                {
                    self.retire(old);
                }
            }
            // A set without a refresh token keeps the one held; a first load that brought none
            // means there is none.
            (None, RefreshSource::ExpectLoad) => self.refresh = RefreshSource::Nothing,
            (None, RefreshSource::Held(_) | RefreshSource::Nothing) => {}
        }
        self.standing = Standing::Ready;
        token
    }

    /// Drops the token with `id` after the API rejected it (a 401). Returns whether it was the
    /// current one: a caller holding an older token must not throw away a newer one.
    pub fn invalidate(&mut self, id: TokenId) -> bool {
        if self.current.as_ref().is_some_and(|c| c.token.id() == id) {
            self.current = None;
            return true;
        }
        false
    }

    /// Whether a refresh token found in a shared store is newer than the one held (see
    /// [`newer_than_held`]).
    pub fn should_adopt(&self, stored: &RefreshToken) -> bool {
        newer_than_held(stored, self.refresh_token(), self.retired.iter())
    }

    /// The refresh tokens this cache has spent, oldest first (a few are kept).
    pub fn retired(&self) -> impl Iterator<Item = &RefreshToken> {
        self.retired.iter()
    }

    /// The refresh token held, if any.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        match &self.refresh {
            RefreshSource::Held(token) => Some(token),
            RefreshSource::ExpectLoad | RefreshSource::Nothing => None,
        }
    }

    /// The current token, valid or not.
    pub fn current(&self) -> Option<&Token> {
        self.current.as_ref().map(|c| &c.token)
    }

    /// When the current token is due for refresh.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.current.as_ref().map(|c| c.refresh_at)
    }
}

fn reauthorization_error() -> Error {
    Error::ReauthorizationRequired(crate::error::Reauthorization::NoRefreshToken)
}
