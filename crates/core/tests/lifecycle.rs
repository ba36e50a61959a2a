//! The token lifecycle through its public API: one ticket at a time, refresh timing, vanished
//! tickets, failures and backoff, 401 invalidation, rotation.

mod support;

use std::time::{Duration, Instant};

use helloflex_core::*;

use helloflex_core::machines::*;
use support::t0;

fn response(lifetime: u64, refresh: Option<&str>) -> TokenResponse {
    let body = match refresh {
        Some(r) => {
            format!(r#"{{"access_token":"a","expires_in":{lifetime},"refresh_token":"{r}"}}"#)
        }
        None => format!(r#"{{"access_token":"a","expires_in":{lifetime}}}"#),
    };
    parse_token_response(http::StatusCode::OK, body.as_bytes()).unwrap()
}

fn fill(cache: &mut TokenCache, now: Instant, lifetime: u64) -> Token {
    let Acquire::Fetch(ticket) = cache.acquire(now) else { panic!("expected fetch") };
    let set = cache.token_set(&ticket, response(lifetime, None), now);
    match cache.complete(now, ticket, Ok(set), 0) {
        Completion::Stored(t) => t,
        c => panic!("{c:?}"),
    }
}

#[test]
fn one_ticket_at_a_time() {
    let now = t0();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let Acquire::Fetch(_ticket) = cache.acquire(now) else { panic!() };
    for _ in 0..100 {
        assert!(matches!(cache.acquire(now), Acquire::Wait(_)));
    }
}

#[test]
fn fifty_nine_second_token_is_served_then_refreshed_early() {
    let now = t0();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    fill(&mut cache, now, 59);
    assert!(matches!(cache.acquire(now + Duration::from_secs(45)), Acquire::Use(_)));
    let Acquire::UseAndRefresh(_, _ticket) = cache.acquire(now + Duration::from_secs(52)) else {
        panic!()
    };
    // Others keep using the still-valid token meanwhile.
    assert!(matches!(cache.acquire(now + Duration::from_secs(53)), Acquire::Use(_)));
}

/// An hour's token is refreshed 200-300 s early (the 5-minute cap is jittered too), so that
/// instances holding the same token do not all come due at once.
#[test]
fn hour_token_refreshes_minutes_early_at_spread_moments() {
    let now = t0();
    let mut seen = std::collections::BTreeSet::new();
    for entropy in [0, 1, 7, u64::MAX / 3, u64::MAX / 2, u64::MAX] {
        let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
        let Acquire::Fetch(ticket) = cache.acquire(now) else { panic!("expected fetch") };
        let set = cache.token_set(&ticket, response(3600, None), now);
        cache.complete(now, ticket, Ok(set), entropy);
        let early = Duration::from_secs(3600) - (cache.refresh_at().unwrap() - now);
        assert!(
            early >= Duration::from_secs(199) && early <= Duration::from_secs(300),
            "{early:?}"
        );
        seen.insert(early.as_secs());
    }
    assert!(seen.len() > 3, "spread: {seen:?}");
}

#[test]
fn vanished_ticket_expires() {
    let now = t0();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let Acquire::Fetch(old) = cache.acquire(now) else { panic!() };
    let Acquire::Wait(until) = cache.acquire(now) else { panic!() };
    let Acquire::Fetch(new) = cache.acquire(until) else { panic!() };
    let set = cache.token_set(&old, response(60, None), now);
    assert!(matches!(cache.complete(until, old, Ok(set), 0), Completion::Stale));
    let set = cache.token_set(&new, response(60, None), until);
    assert!(matches!(cache.complete(until, new, Ok(set), 0), Completion::Stored(_)));
}

/// `Duration::MAX` as the ticket timeout or the failure backoff means "no limit": the ticket is
/// not taken over and the backoff does not end at once.
#[test]
fn an_unlimited_ticket_timeout_and_backoff_last_not_end_at_once() {
    let now = t0();
    let decade = Duration::from_secs(10 * 365 * 24 * 3600);
    let mut policy = LifecyclePolicy::default();
    policy.ticket_timeout = Duration::MAX;
    policy.failure_backoff = Duration::MAX;
    policy.max_failure_backoff = Duration::MAX;
    let mut cache = TokenCache::client_credentials(policy);
    let Acquire::Fetch(ticket) = cache.acquire(now) else { panic!() };
    let later = now + decade;
    assert!(matches!(cache.acquire(later), Acquire::Wait(until) if until == now + FAR_FUTURE));
    let err =
        Error::Transport(crate::TransportError::new(crate::TransportErrorKind::Connect, "refused"));
    assert!(matches!(cache.complete(later, ticket, Err(err), 0), Completion::Failed(_)));
    // Backing off (half to all of the far future): still failing fast a decade on.
    assert!(matches!(cache.acquire(later + decade), Acquire::Fail(_)));
}

/// A lifetime beyond what the clock can add is used as given: the token expires in the far
/// future, it is not already expired.
#[test]
fn an_endless_lifetime_is_a_far_expiry_not_an_expired_token() {
    let now = t0();
    let set = TokenSet::new(AccessToken::new("a"), None, now, Duration::MAX, None);
    assert_eq!(set.expires_at(), now + FAR_FUTURE);
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    cache.insert(set, 0);
    let year = Duration::from_secs(365 * 24 * 3600);
    assert!(matches!(cache.acquire(now + year), Acquire::Use(_)));
}

#[test]
fn failure_backs_off_and_keeps_serving_valid_token() {
    let now = t0();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    fill(&mut cache, now, 60);
    let due = now + Duration::from_secs(54);
    let Acquire::UseAndRefresh(_, ticket) = cache.acquire(due) else { panic!() };
    let err =
        Error::Transport(crate::TransportError::new(crate::TransportErrorKind::Connect, "refused"));
    assert!(matches!(cache.complete(due, ticket, Err(err), 0), Completion::Failed(_)));
    // Still valid: served, and no new ticket during the backoff.
    assert!(matches!(cache.acquire(due), Acquire::Use(_)));
    // After expiry and within backoff: fail fast.
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let Acquire::Fetch(ticket) = cache.acquire(now) else { panic!() };
    let err =
        Error::Transport(crate::TransportError::new(crate::TransportErrorKind::Connect, "refused"));
    let _ = cache.complete(now, ticket, Err(err), 0);
    assert!(matches!(cache.acquire(now), Acquire::Fail(_)));
    assert!(matches!(cache.acquire(now + Duration::from_secs(2)), Acquire::Fetch(_)));
}

#[test]
fn invalidate_only_the_rejected_token() {
    let now = t0();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let first = fill(&mut cache, now, 3600);
    assert!(cache.invalidate(first.id()));
    let second = fill(&mut cache, now, 3600);
    assert!(!cache.invalidate(first.id()), "an old 401 must not drop the new token");
    assert!(matches!(cache.acquire(now), Acquire::Use(t) if t.id() == second.id()));
}

#[test]
fn refresh_keeps_old_refresh_token_and_reports_rotation() {
    let now = t0();
    let mut cache = TokenCache::refreshing(LifecyclePolicy::default());
    // Nothing held yet: the first caller reads the store; an empty store means re-authorize.
    let Acquire::Fetch(load) = cache.acquire(now) else { panic!() };
    assert!(matches!(load.grant(), Grant::Reload));
    let _ = cache.complete(now, load, Err(no_tokens()), 0);
    assert!(matches!(cache.acquire(now), Acquire::Fail(e) if e.requires_reauthorization()));
    let initial =
        TokenSet::from_response(response(60, Some("r1")), now, None, Duration::from_secs(60));
    cache.insert(initial, 0);
    let later = now + Duration::from_secs(59);
    let Acquire::Fetch(ticket) = cache.acquire(later) else { panic!() };
    assert!(matches!(ticket.grant(), Grant::Refresh(r) if r.expose_secret() == "r1"));
    let set = cache.token_set(&ticket, response(60, None), later);
    assert!(!set.rotated);
    assert_eq!(set.refresh_token.as_ref().unwrap().expose_secret(), "r1");
    let _ = cache.complete(later, ticket, Ok(set), 0);
    let later = later + Duration::from_secs(59);
    let Acquire::Fetch(ticket) = cache.acquire(later) else { panic!() };
    let set = cache.token_set(&ticket, response(60, Some("r2")), later);
    assert!(set.rotated);
}

fn no_tokens() -> helloflex_core::Error {
    helloflex_core::Error::ReauthorizationRequired(Reauthorization::NothingStored)
}

#[test]
fn a_new_authorization_makes_an_in_flight_refresh_stale() {
    let now = t0();
    let mut cache = TokenCache::refreshing(LifecyclePolicy::default());
    cache.insert(
        TokenSet::from_response(response(60, Some("r1")), now, None, Duration::from_secs(60)),
        0,
    );
    let later = now + Duration::from_secs(59);
    let Acquire::Fetch(refresh) = cache.acquire(later) else { panic!() };
    // The user signs in again (another account, say) while the refresh is in flight.
    let fresh = cache.authorize(
        TokenSet::from_response(response(60, Some("n1")), later, None, Duration::from_secs(60)),
        0,
    );
    let old = cache.token_set(&refresh, response(60, Some("r2")), later);
    assert!(matches!(cache.complete(later, refresh, Ok(old), 0), Completion::Stale));
    assert!(matches!(cache.acquire(later), Acquire::Use(t) if t.id() == fresh.id()));
    assert_eq!(cache.refresh_token().unwrap().expose_secret(), "n1");
}

#[test]
fn a_held_ticket_is_not_taken_over_before_its_deadline() {
    let now = t0();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let Acquire::Fetch(ticket) = cache.acquire(now) else { panic!() };
    let long = now + Duration::from_secs(600);
    assert!(cache.hold(&ticket, long));
    let before = long - Duration::from_secs(1);
    assert!(matches!(cache.acquire(before), Acquire::Wait(until) if until == long));
    assert!(matches!(cache.acquire(long), Acquire::Fetch(_)));
}

#[test]
fn a_stored_refresh_token_is_adopted_only_if_newer_than_held_and_not_spent() {
    let now = t0();
    let mut cache = TokenCache::refreshing(LifecyclePolicy::default());
    cache.insert(
        TokenSet::from_response(response(60, Some("r1")), now, None, Duration::from_secs(60)),
        0,
    );
    let later = now + Duration::from_secs(59);
    let Acquire::Fetch(ticket) = cache.acquire(later) else { panic!() };
    let set = cache.token_set(&ticket, response(60, Some("r2")), later);
    let _ = cache.complete(later, ticket, Ok(set), 0);
    let (r1, r2, r3) = (RefreshToken::new("r1"), RefreshToken::new("r2"), RefreshToken::new("r3"));
    assert!(!cache.should_adopt(&r1), "spent: the store is stale");
    assert!(!cache.should_adopt(&r2), "the one held");
    assert!(cache.should_adopt(&r3), "another holder refreshed");
    // The same rule for a fill job's snapshot.
    assert!(!newer_than_held(&r1, Some(&r2), [r1.clone()].iter()));
    assert!(newer_than_held(&r3, Some(&r2), [r1.clone()].iter()));
}

/// The first read of a store that fails on the way (unreachable) is a failure to back off
/// from, then the read again: never "re-authorization required" for a store that is down. A
/// read that finds nothing, or a refusal, is.
#[test]
fn a_first_load_that_fails_is_retried_after_the_backoff_not_taken_for_a_lost_grant() {
    let now = t0();
    let mut cache = TokenCache::refreshing(LifecyclePolicy::default());
    let Acquire::Fetch(ticket) = cache.acquire(now) else { panic!("a reload first") };
    assert!(matches!(ticket.grant(), Grant::Reload));
    let down: Error =
        StoreError::new("read", StoreErrorKind::Unreachable, "connection refused").into();
    assert!(matches!(cache.complete(now, ticket, Err(down), 0), Completion::Failed(_)));
    match cache.acquire(now) {
        Acquire::Fail(error) => assert!(!error.requires_reauthorization(), "{error}"),
        other => panic!("backing off: {other:?}"),
    }
    let later = now + Duration::from_secs(120);
    let Acquire::Fetch(ticket) = cache.acquire(later) else { panic!("the read again") };
    assert!(matches!(ticket.grant(), Grant::Reload));
    // Nothing stored: now the grant is gone.
    let nothing = Error::ReauthorizationRequired(Reauthorization::NothingStored);
    cache.complete(later, ticket, Err(nothing), 0);
    assert!(matches!(cache.acquire(later), Acquire::Fail(e) if e.requires_reauthorization()));
}

/// The adoption rule for a shared client-credentials token: live, and not one held or refused.
#[test]
fn a_stored_client_token_is_adopted_only_when_live_and_not_held() {
    use helloflex_core::machines::live_and_not_held;
    let (a, b) = (AccessToken::new("a"), AccessToken::new("b"));
    let left = Duration::from_secs(30);
    assert!(live_and_not_held(&b, left, [&a].into_iter()));
    assert!(!live_and_not_held(&a, left, [&a].into_iter()), "held or refused");
    assert!(!live_and_not_held(&b, Duration::ZERO, [&a].into_iter()), "expired");
    assert!(live_and_not_held(&b, left, std::iter::empty()), "nothing held yet");
}

/// The backoff after failed fetches doubles for failures of the authorization server, which
/// it protects, but not for failures of the token store: however long the store was away,
/// callers are served within one first backoff of its return.
#[test]
fn a_failing_store_is_asked_again_at_the_first_backoffs_pace() {
    let first = LifecyclePolicy::default().failure_backoff;
    // After six failures in a row, whether a fetch may start `wait` after the last one.
    let fetch_after = |failure: fn() -> Error, wait: Duration| {
        let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
        let mut now = t0();
        for _ in 0..6 {
            let ticket = loop {
                match cache.acquire(now) {
                    Acquire::Fetch(ticket) => break ticket,
                    _ => now += Duration::from_millis(100),
                }
            };
            cache.complete(now, ticket, Err(failure()), u64::MAX / 3);
        }
        matches!(cache.acquire(now + wait), Acquire::Fetch(_))
    };
    let store = || StoreError::new("read", StoreErrorKind::TimedOut, "no answer within 2 s").into();
    let server = || TransportError::new(TransportErrorKind::Timeout, "timed out").into();
    assert!(fetch_after(store, first), "the store is asked again within the first backoff");
    assert!(!fetch_after(server, first * 8), "the server's backoff has grown");
}
