//! What the cache answers a caller: `Acquire` (use, fetch, wait or fail), the `Ticket` that
//! carries the right to make the one token request and its `Grant`, and `Completion` (what
//! handing the ticket back did).

use std::time::Instant;

use crate::error::Error;
use crate::secret::RefreshToken;

use super::Token;

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
/// [`TokenCache::complete`]: super::TokenCache::complete
/// [`TokenCache::abandon`]: super::TokenCache::abandon
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
    pub(super) id: u64,
    pub(super) grant: Grant,
}

impl Ticket {
    /// The request this ticket stands for.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

/// The answer of [`TokenCache::acquire`].
///
/// [`TokenCache::acquire`]: super::TokenCache::acquire
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
    ///
    /// [`TokenCache::complete`]: super::TokenCache::complete
    Fetch(Ticket),
    /// Another caller is fetching: wait for its completion, or until this instant at the latest,
    /// then ask again.
    Wait(Instant),
    /// No usable token and fetching is backing off after errors, or the user must re-authorize.
    Fail(Error),
}

/// What [`TokenCache::complete`] did.
///
/// [`TokenCache::complete`]: super::TokenCache::complete
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
