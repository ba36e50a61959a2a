//! The two rules for adopting a token set another holder stored: `newer_than_held` (refresh
//! tokens) and `live_and_not_held` (client credentials).

use std::time::Duration;

use crate::secret::{AccessToken, RefreshToken};

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
