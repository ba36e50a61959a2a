//! The fill job's unit tests: verdicts on records, claims watched and taken over, late claims.

use super::decide::judge;
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
