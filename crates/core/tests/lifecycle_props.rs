//! Property tests of the token lifecycle under random interleavings of acquire, completion,
//! failure, abandonment, 401 invalidation and the passage of time.

mod support;

use std::time::{Duration, Instant};

use helloflex_core::*;

use helloflex_core::machines::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    CompleteOk { which: usize, lifetime: u64, sent_delay_ms: u64 },
    CompleteErr { which: usize },
    Abandon { which: usize },
    Invalidate { which: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        2 => (0..4usize, 0..7200u64, 0..3000u64).prop_map(|(which, lifetime, sent_delay_ms)| Op::CompleteOk { which, lifetime, sent_delay_ms }),
        1 => (0..4usize).prop_map(|which| Op::CompleteErr { which }),
        1 => (0..4usize).prop_map(|which| Op::Abandon { which }),
        1 => (0..4usize).prop_map(|which| Op::Invalidate { which }),
        3 => (0..120_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn token_response(lifetime: u64) -> TokenResponse {
    let body = format!(r#"{{"access_token":"a","expires_in":{lifetime}}}"#);
    parse_token_response(http::StatusCode::OK, body.as_bytes()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_expired_never_two_live_tickets(ops in proptest::collection::vec(op(), 1..200)) {
        let policy = LifecyclePolicy::default();
        let mut cache = TokenCache::client_credentials(policy.clone());
        let mut now = support::t0();
        // Tickets handed out and not yet handed back, with the instant each was issued.
        let mut outstanding: Vec<(Ticket, Instant)> = Vec::new();
        let mut seen_tokens: Vec<Token> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire => match cache.acquire(now) {
                    Acquire::Use(token) => {
                        prop_assert!(now < token.expires_at(), "handed out an expired token");
                        seen_tokens.push(token);
                    }
                    Acquire::UseAndRefresh(token, ticket) => {
                        prop_assert!(now < token.expires_at());
                        let live = outstanding.iter().filter(|(_, at)| now < *at + policy.ticket_timeout).count();
                        prop_assert_eq!(live, 0, "a second live ticket");
                        seen_tokens.push(token);
                        outstanding.push((ticket, now));
                    }
                    Acquire::Fetch(ticket) => {
                        let live = outstanding.iter().filter(|(_, at)| now < *at + policy.ticket_timeout).count();
                        prop_assert_eq!(live, 0, "a second live ticket");
                        outstanding.push((ticket, now));
                    }
                    Acquire::Wait(until) => prop_assert!(until > now),
                    Acquire::Fail(_) => {}
                },
                Op::CompleteOk { which, lifetime, sent_delay_ms } if !outstanding.is_empty() => {
                    let (ticket, issued) = outstanding.remove(which % outstanding.len());
                    let sent_at = (issued + Duration::from_millis(sent_delay_ms)).min(now);
                    let set = cache.token_set(&ticket, token_response(lifetime), sent_at);
                    let _ = cache.complete(now, ticket, Ok(set), lifetime);
                }
                Op::CompleteErr { which } if !outstanding.is_empty() => {
                    let (ticket, _) = outstanding.remove(which % outstanding.len());
                    let error = Error::Transport(TransportError::new(TransportErrorKind::Connect, "x"));
                    let _ = cache.complete(now, ticket, Err(error), which as u64);
                }
                Op::Abandon { which } if !outstanding.is_empty() => {
                    let (ticket, _) = outstanding.remove(which % outstanding.len());
                    cache.abandon(ticket);
                }
                Op::Invalidate { which } if !seen_tokens.is_empty() => {
                    let token = &seen_tokens[which % seen_tokens.len()];
                    let was_current = cache.current().is_some_and(|c| c.id() == token.id());
                    prop_assert_eq!(cache.invalidate(token.id()), was_current);
                }
                Op::Advance { ms } => now += Duration::from_millis(ms),
                _ => {}
            }
        }
    }

    #[test]
    fn a_herd_makes_one_request(callers in 1..500usize, lifetime in 1..7200u64) {
        let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
        let now = support::t0();
        let mut tickets = Vec::new();
        for _ in 0..callers {
            if let Acquire::Fetch(t) = cache.acquire(now) { tickets.push(t) }
        }
        prop_assert_eq!(tickets.len(), 1);
        let ticket = tickets.pop().unwrap();
        let set = cache.token_set(&ticket, token_response(lifetime), now);
        let _ = cache.complete(now, ticket, Ok(set), 1);
        // Everyone is served until the refresh point; then exactly one caller refreshes.
        let refresh_at = cache.refresh_at().unwrap();
        let mut refreshes = 0;
        for i in 0..callers {
            let at = refresh_at + Duration::from_nanos(i as u64);
            match cache.acquire(at) {
                Acquire::Use(_) => {}
                Acquire::UseAndRefresh(_, t) => { refreshes += 1; std::mem::forget(t); }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(refreshes, 1);
    }
}
