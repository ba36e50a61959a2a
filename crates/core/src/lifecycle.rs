//! The token lifecycle: one cached token shared by every caller, refreshed early by one of them.
//!
//! The machine stores only what events change; whether the token is fresh, due for refresh or
//! expired is derived from the `now` each call is handed. At most one *ticket* (the right to
//! fetch or refresh) is live at a time, so N concurrent callers make one token request.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::{FAR_FUTURE, saturating_add};
use crate::error::Error;
use crate::retry::Jitter;
use crate::secret::{AccessToken, RefreshToken};
use crate::token_response::{MAX_LIFETIME, MIN_LIFETIME, TokenResponse};

/// Tuning of the lifecycle.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::LifecyclePolicy;
///
/// let mut lifecycle = LifecyclePolicy::default();
/// lifecycle.max_refresh_margin = Duration::from_secs(120); // refresh at most 2 minutes early
/// // Hand it to a client: `.token_options(ManagerOptions::default().with_lifecycle(lifecycle))`.
/// assert_eq!(lifecycle.default_lifetime, Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LifecyclePolicy {
    /// Lifetime assumed when a response has no `expires_in`.
    pub default_lifetime: Duration,
    /// A ticket not completed within this time is taken as lost (its holder vanished) and a new
    /// one is handed out. A holder that knows how long its request can take extends it with
    /// [`TokenCache::hold`] (the managers in `helloflex-auth` always do: a ticket lives as long
    /// as its exchange's own deadline).
    pub ticket_timeout: Duration,
    /// Backoff after the first failed fetch; doubled per further failure, except after a
    /// failure of the token store (which loads no authorization server): that one is never
    /// doubled, so callers are served again soon after a long store outage ends.
    pub failure_backoff: Duration,
    /// Largest backoff after failed fetches.
    pub max_failure_backoff: Duration,
    /// Longest time a token is refreshed before it expires (each token draws its cap between
    /// two thirds of this and all of it, so that instances holding one token spread out).
    pub max_refresh_margin: Duration,
    /// While user tokens need a new sign-in, how often the store they are kept in is read
    /// again (by a caller that needs a token): a sign-in completed by another instance sharing
    /// it is picked up without a restart.
    pub reauthorization_recheck: Duration,
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        Self {
            default_lifetime: Duration::from_secs(300),
            ticket_timeout: Duration::from_secs(60),
            failure_backoff: Duration::from_secs(1),
            max_failure_backoff: Duration::from_secs(60),
            max_refresh_margin: Duration::from_secs(300),
            reauthorization_recheck: Duration::from_secs(5),
        }
    }
}

/// Identifies one issued access token, so a 401 can invalidate exactly the token it rejected.
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{AccessToken, LifecyclePolicy, TokenSet};
/// use helloflex_core::machines::TokenCache;
///
/// let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
/// let set = |t: &str| TokenSet::new(AccessToken::new(t), None, Instant::now(), Duration::from_secs(3599), None);
/// let first = cache.insert(set("first"), 1);
/// let second = cache.insert(set("second"), 2);
/// assert_ne!(first.id(), second.id());
/// // A 401 for the first token must not throw away the second.
/// assert!(!cache.invalidate(first.id()));
/// assert!(cache.invalidate(second.id()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId(u64);

#[derive(Debug)]
struct TokenInner {
    id: TokenId,
    access: AccessToken,
    expires_at: Instant,
    /// `Bearer <token>`, built once: every call clones it (a reference count, no allocation).
    /// `None` if the token cannot be a header value (the parser refuses those; kept defensive).
    authorization: Option<http::HeaderValue>,
}

/// A usable access token, cheap to clone (shared, not copied).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use std::time::{Duration, Instant};
/// # let mut cache = helloflex::core::machines::TokenCache::client_credentials(Default::default());
/// # let set = helloflex::core::TokenSet::new(helloflex::AccessToken::new("t0k"), None, Instant::now(), Duration::from_secs(3599), None);
/// # let token = cache.insert(set, 7);
/// // `token`: what `client.token()` hands out (`.await` on the async client), for a tool that
/// // needs the token itself; the client's calls carry it for you.
/// let header = token.authorization()?; // `Bearer t0k`, marked sensitive: loggers leave it out
/// assert!(header.is_sensitive());
/// assert_eq!(token.access_token().expose_secret(), "t0k");
/// assert!(token.expires_at() > Instant::now());
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Token(Arc<TokenInner>);

impl Token {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.access
    }
    /// Which issue of the token this is.
    pub fn id(&self) -> TokenId {
        self.0.id
    }
    /// When it expires (counted from the moment its request was sent).
    pub fn expires_at(&self) -> Instant {
        self.0.expires_at
    }

    /// The `Authorization: Bearer ...` header value, marked sensitive.
    pub fn authorization(&self) -> Result<http::HeaderValue, Error> {
        match &self.0.authorization {
            Some(value) => Ok(value.clone()),
            None => crate::api_request::bearer_header(&self.0.access),
        }
    }
}

/// What a token request should be.
///
/// ```
/// use std::time::Instant;
/// use helloflex_core::LifecyclePolicy;
/// use helloflex_core::machines::{Acquire, Grant, TokenCache};
///
/// // User tokens are loaded from their store by the first caller, not at build time.
/// let mut cache = TokenCache::refreshing(LifecyclePolicy::default());
/// let Acquire::Fetch(ticket) = cache.acquire(Instant::now()) else { unreachable!() };
/// assert!(matches!(ticket.grant(), Grant::Reload));
/// # cache.abandon(ticket);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Grant {
    /// A new token from the client's own credentials (client-credentials grant).
    ClientCredentials,
    /// A refresh with this refresh token.
    Refresh(RefreshToken),
    /// Nothing is held in memory yet: read the token set from the store the tokens are kept in
    /// (user tokens are loaded lazily, by the first caller, so no store is read at build time).
    Reload,
}

/// The right to make the one token request; hand it back through [`TokenCache::complete`] or
/// [`TokenCache::abandon`].
///
/// ```
/// use std::time::Instant;
/// use helloflex_core::LifecyclePolicy;
/// use helloflex_core::machines::{Acquire, Grant, TokenCache};
///
/// let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
/// let Acquire::Fetch(ticket) = cache.acquire(Instant::now()) else { unreachable!() };
/// assert!(matches!(ticket.grant(), Grant::ClientCredentials));
/// cache.abandon(ticket); // its holder was cancelled: the next caller fetches at once
/// assert!(matches!(cache.acquire(Instant::now()), Acquire::Fetch(_)));
/// ```
#[derive(Debug)]
#[must_use = "a ticket must be completed or abandoned, or every other caller waits for its timeout"]
pub struct Ticket {
    id: u64,
    grant: Grant,
}

impl Ticket {
    /// The request this ticket stands for.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// The answer of [`TokenCache::acquire`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{AccessToken, LifecyclePolicy, TokenSet};
/// use helloflex_core::machines::{Acquire, TokenCache};
///
/// let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
/// let now = Instant::now();
/// cache.insert(TokenSet::new(AccessToken::new("t0k"), None, now, Duration::from_secs(600), None), 7);
/// assert!(matches!(cache.acquire(now), Acquire::Use(_)));
/// // Once it is due (a while before it expires): use it, and refresh with the ticket meanwhile.
/// let due = cache.refresh_at().ok_or("no token")?;
/// assert!(matches!(cache.acquire(due), Acquire::UseAndRefresh(_, _)));
/// # Ok::<(), &str>(())
/// ```
#[derive(Debug)]
#[must_use]
pub enum Acquire {
    /// Use this token.
    Use(Token),
    /// Use this token, and refresh in the background with this ticket (it is still valid).
    UseAndRefresh(Token, Ticket),
    /// No usable token: fetch one with this ticket, then [`TokenCache::complete`].
    Fetch(Ticket),
    /// Another caller is fetching: wait for its completion, or until this instant at the latest,
    /// then ask again.
    Wait(Instant),
    /// No usable token and fetching is backing off after errors, or the user must re-authorize.
    Fail(Error),
}

/// A complete token set, ready to be stored and used.
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{AccessToken, RefreshToken, TokenSet};
///
/// let now = Instant::now();
/// let set = TokenSet::new(AccessToken::new("at"), Some(RefreshToken::new("rt")), now, Duration::from_secs(60), None);
/// assert_eq!(set.expires_at(), now + Duration::from_secs(60));
/// assert!(!set.rotated);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token (the old one kept when the response sent none).
    pub refresh_token: Option<RefreshToken>,
    /// When the request that got it was sent.
    pub issued_at: Instant,
    /// Its lifetime (the server's, clamped, or the default).
    pub lifetime: Duration,
    /// Granted scopes, if listed.
    pub scope: Option<Vec<String>>,
    /// Whether a refresh brought a new refresh token.
    pub rotated: bool,
}

impl TokenSet {
    /// A token set from its parts (for example, loaded from a store). `lifetime` is used as
    /// given: zero means already expired.
    pub fn new(
        access_token: AccessToken,
        refresh_token: Option<RefreshToken>,
        issued_at: Instant,
        lifetime: Duration,
        scope: Option<Vec<String>>,
    ) -> Self {
        Self { access_token, refresh_token, issued_at, lifetime, scope, rotated: false }
    }

    /// A token set from a response to a request sent at `sent_at`; `previous` is the refresh
    /// token that was used, kept when the response omits a new one.
    pub fn from_response(
        response: TokenResponse,
        sent_at: Instant,
        previous: Option<&RefreshToken>,
        default_lifetime: Duration,
    ) -> Self {
        let rotated = response.refresh_token.is_some()
            && previous.is_some_and(|p| Some(p) != response.refresh_token.as_ref());
        Self {
            access_token: response.access_token,
            refresh_token: response.refresh_token.or_else(|| previous.cloned()),
            issued_at: sent_at,
            // The server's value was clamped when it was parsed; only the default is clamped here.
            lifetime: response
                .expires_in
                .unwrap_or_else(|| default_lifetime.clamp(MIN_LIFETIME, MAX_LIFETIME)),
            scope: response.scope,
            rotated,
        }
    }

    /// When the access token expires: `issued_at + lifetime`, a lifetime beyond
    /// [`crate::machines::FAR_FUTURE`] counted as that (the far future, not already expired).
    pub fn expires_at(&self) -> Instant {
        saturating_add(self.issued_at, self.lifetime)
    }
}

/// What [`TokenCache::complete`] did.
///
/// ```
/// use std::time::Instant;
/// use helloflex_core::{Error, LifecyclePolicy, TransportError, TransportErrorKind};
/// use helloflex_core::machines::{Acquire, Completion, TokenCache};
///
/// let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
/// let now = Instant::now();
/// let Acquire::Fetch(ticket) = cache.acquire(now) else { unreachable!() };
/// let failed = Error::from(TransportError::new(TransportErrorKind::Connect, "refused"));
/// assert!(matches!(cache.complete(now, ticket, Err(failed), 7), Completion::Failed(_)));
/// // Callers now get the error until the backoff ends.
/// assert!(matches!(cache.acquire(now), Acquire::Fail(_)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Completion {
    /// The new token is now served.
    Stored(Token),
    /// The ticket was no longer live (it timed out and another replaced it): nothing changed.
    Stale,
    /// The fetch failed; callers without a valid token get this error until the backoff ends.
    Failed(Error),
}

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
        let authorization = crate::api_request::bearer_header(&set.access_token).ok();
        let token =
            Token(Arc::new(TokenInner { id, access: set.access_token, expires_at, authorization }));
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

/// Whether a refresh token found in a shared store is newer than the one `held`: it differs
/// from ours and is not one we already spent (`retired`). Only then may another holder's set be
/// adopted; a store holding a spent token is stale: overwritten, never adopted, never re-sent.
/// The one rule, for the cache and for a fill job holding a snapshot of it.
///
/// ```
/// use helloflex_core::RefreshToken;
/// use helloflex_core::machines::newer_than_held;
///
/// let (spent, held, newer) = (RefreshToken::new("r1"), RefreshToken::new("r2"), RefreshToken::new("r3"));
/// assert!(newer_than_held(&newer, Some(&held), [&spent].into_iter()));
/// assert!(!newer_than_held(&spent, Some(&held), [&spent].into_iter())); // stale: never adopted
/// assert!(!newer_than_held(&held, Some(&held), [].into_iter()));
/// ```
pub fn newer_than_held<'a>(
    stored: &RefreshToken,
    held: Option<&RefreshToken>,
    mut retired: impl Iterator<Item = &'a RefreshToken>,
) -> bool {
    held != Some(stored) && !retired.any(|old| old == stored)
}

/// Whether a client-credentials token found in a shared store may be adopted: it still has
/// `left` to live and is none of the tokens this process holds or had refused (`held`); a
/// refused one is still in the store until someone replaces it. The rule beside
/// [`newer_than_held`], for the other grant.
///
/// ```
/// use std::time::Duration;
/// use helloflex_core::AccessToken;
/// use helloflex_core::machines::live_and_not_held;
///
/// let (mine, theirs) = (AccessToken::new("a1"), AccessToken::new("a2"));
/// assert!(live_and_not_held(&theirs, Duration::from_secs(60), [&mine].into_iter()));
/// assert!(!live_and_not_held(&mine, Duration::from_secs(60), [&mine].into_iter()));
/// assert!(!live_and_not_held(&theirs, Duration::ZERO, [&mine].into_iter())); // expired
/// ```
pub fn live_and_not_held<'a>(
    stored: &AccessToken,
    left: Duration,
    mut held: impl Iterator<Item = &'a AccessToken>,
) -> bool {
    left > Duration::ZERO && !held.any(|h| h == stored)
}

fn reauthorization_error() -> Error {
    Error::ReauthorizationRequired(crate::error::Reauthorization::NoRefreshToken)
}
