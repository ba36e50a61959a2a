//! The token lifecycle: one cached token shared by every caller, refreshed early by one of them.
//!
//! The machine stores only what events change; whether the token is fresh, due for refresh or
//! expired is derived from the `now` each call is handed. At most one *ticket* (the right to
//! fetch or refresh) is live at a time, so N concurrent callers make one token request.
//!
//! This file holds what the lifecycle hands out and holds (`LifecyclePolicy`, `Token`,
//! `TokenSet`); the machine is in `cache.rs`, its answers to callers in `ticket.rs`, and the
//! rules for adopting a set another holder stored in `adoption.rs`.

mod adoption;
mod cache;
mod ticket;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::saturating_add;
use crate::error::Error;
use crate::secret::{AccessToken, RefreshToken};
use crate::token_response::{MAX_LIFETIME, MIN_LIFETIME, TokenResponse};

pub use adoption::{live_and_not_held, newer_than_held};
pub use cache::TokenCache;
pub use ticket::{Acquire, Completion, Grant, Ticket};

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
    /// The token issued as `id`, its header value built once for every call to clone.
    fn new(id: TokenId, access: AccessToken, expires_at: Instant) -> Self {
        let authorization = crate::api_request::bearer_header(&access).ok();
        Self(Arc::new(TokenInner { id, access, expires_at, authorization }))
    }

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
