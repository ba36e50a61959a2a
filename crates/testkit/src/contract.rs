//! The store contract every `TokenStore` keeps, written once and run by each store's tests on
//! its own store (memory, file, Redis, SQLite, PostgreSQL), with the fixtures those tests
//! share: token sets with recognisable values, records, and reading a store's version, access
//! token and epoch.
//!
//! The contract: a swap lands only on the version read (nothing stored: version 0) and at a
//! higher version the writer picks, gaps allowed, every `u64` exact; a conflict writes nothing;
//! the whole record (tokens, claim, tombstone, completed authorizations) comes back as written,
//! through another handle on the same record too; a claim fences a stalled holder out; racing
//! writers each win a version at most once.

use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::{Claim, Key, KeyRing, Record, StoreError, StoredTokens, Swap, TokenStore};
use helloflex_core::{AccessToken, RefreshToken};

/// An access token no test writes but the canary tests, to look for in a store's bytes.
pub const CANARY_ACCESS: &str = "canary-access-7b1f2e9d04c3a8";
/// The refresh token beside [`CANARY_ACCESS`].
pub const CANARY_REFRESH: &str = "canary-refresh-5e8a1c6f3b0d92";

/// An epoch this young has just begun: the call that starts one reports about 0, and the tests
/// compare it with an epoch they let grow well past this.
pub const YOUNG: Duration = Duration::from_millis(200);

/// How long a test lets an epoch grow before the event that should start a new one.
pub const GROWN: Duration = Duration::from_millis(600);

/// A key ring of one key, `id`, every byte `byte`.
pub fn keys(id: &str, byte: u8) -> KeyRing {
    KeyRing::new(Key::new(id, [byte; 32]).expect("a valid key id"))
}

/// Tokens with these values, expiring in 2096.
pub fn tokens_named(access: &str, refresh: &str) -> StoredTokens {
    let json = format!(
        r#"{{"access_token":"{access}","refresh_token":"{refresh}","expires_at_unix_ms":4000000000000}}"#
    );
    serde_json::from_str(&json).expect("a token set")
}

/// Tokens `at{n}` / `rt{n}`.
pub fn tokens(n: u32) -> StoredTokens {
    tokens_named(&format!("at{n}"), &format!("rt{n}"))
}

/// Tokens `n` at `version`.
pub fn record(n: u32, version: u64) -> Record {
    Record::new(tokens(n), version)
}

/// The canary tokens ([`CANARY_ACCESS`], [`CANARY_REFRESH`]).
pub fn canaries() -> StoredTokens {
    tokens_named(CANARY_ACCESS, CANARY_REFRESH)
}

/// The stored record's version and access token, if any.
pub fn stored(store: &dyn TokenStore) -> Option<(u64, AccessToken)> {
    try_stored(store).expect("the store answers")
}

/// The same, or the store's error.
pub fn try_stored(store: &dyn TokenStore) -> Result<Option<(u64, AccessToken)>, StoreError> {
    let record = store.load()?.record;
    Ok(record.map(|r| (r.version, r.tokens.expect("tokens").access_token)))
}

/// The store's epoch age, as a read finds it (stores that can lose data tell it).
pub fn epoch(store: &dyn TokenStore) -> Duration {
    store.load().expect("the store answers").epoch_age.expect("an epoch age")
}

/// The version and epoch age a swap that landed reported.
pub fn stored_at(swap: Swap) -> (u64, Duration) {
    match swap {
        Swap::Stored { version, epoch_age } => (version, epoch_age.expect("an epoch age")),
        other => panic!("expected the swap to land, got {other:?}"),
    }
}

/// Lets the store's epoch grow past [`GROWN`] and returns its age.
pub fn grown_epoch(store: &dyn TokenStore) -> Duration {
    epoch(store);
    std::thread::sleep(GROWN);
    let age = epoch(store);
    assert!(age >= GROWN - Duration::from_millis(50), "the epoch grew to {age:?}");
    age
}

/// A record as JSON, to compare whole records.
pub fn json(record: &Record) -> serde_json::Value {
    serde_json::to_value(record).expect("a record serialises")
}

/// Whether `needle`'s bytes appear in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A swap lands only on the version read and at a higher version the writer picked; a
/// conflict writes nothing. `store` holds nothing yet.
pub fn compare_and_swap(store: &dyn TokenStore) {
    assert!(store.load().expect("a read").record.is_none(), "nothing stored yet");
    assert!(matches!(
        store.swap(0, &record(1, 1)).expect("a swap"),
        Swap::Stored { version: 1, .. }
    ));
    // Planned from a version no longer stored (0, nothing; 5, ahead of the store).
    assert_eq!(store.swap(0, &record(2, 2)).expect("a swap"), Swap::Conflict, "planned from 0");
    assert_eq!(store.swap(5, &record(2, 6)).expect("a swap"), Swap::Conflict, "planned from 5");
    // On the version read, but not above it.
    assert_eq!(store.swap(1, &record(2, 1)).expect("a swap"), Swap::Conflict, "same version");
    assert_eq!(store.swap(1, &record(2, 0)).expect("a swap"), Swap::Conflict, "lower version");
    assert_eq!(stored(store), Some((1, AccessToken::new("at1"))), "no conflict wrote");
    // The writer picks the version: any higher one, gaps allowed (a sign-in writes the wall
    // clock in milliseconds).
    assert!(matches!(
        store.swap(1, &record(3, 7)).expect("a swap"),
        Swap::Stored { version: 7, .. }
    ));
    assert_eq!(
        store.swap(1, &record(4, 8)).expect("a swap"),
        Swap::Conflict,
        "planned from 1, gone"
    );
    let sign_in = 1_760_000_000_000;
    assert!(matches!(
        store.swap(7, &record(5, sign_in)).expect("a swap"),
        Swap::Stored { version, .. } if version == sign_in
    ));
    let loaded = store.load().expect("a read").record.expect("a record");
    assert_eq!(loaded.version, sign_in);
    let tokens = loaded.tokens.expect("tokens");
    assert_eq!(tokens.access_token, AccessToken::new("at5"));
    assert_eq!(tokens.refresh_token, Some(RefreshToken::new("rt5")));
}

/// Every `u64` version is kept, compared and reported exactly (versions past 2^53 lose
/// precision as JSON numbers in some stores' scripts, past 2^63 they are negative in SQL).
/// `store` holds nothing yet.
pub fn every_u64_version(store: &dyn TokenStore) {
    let mut expected = 0;
    for version in [(1 << 53) - 1, (1 << 53) + 1, (1 << 63) - 1, 1 << 63, u64::MAX - 1, u64::MAX] {
        match store.swap(expected, &record(1, version)).expect("a swap") {
            Swap::Stored { version: got, .. } => assert_eq!(got, version),
            other => panic!("{version}: {other:?}"),
        }
        assert_eq!(store.swap(expected, &record(1, version)).expect("a swap"), Swap::Conflict);
        assert_eq!(store.swap(version, &record(1, version)).expect("a swap"), Swap::Conflict);
        // One below the stored version (the same double past 2^53) is another version.
        assert_eq!(store.swap(version - 1, &record(2, version)).expect("a swap"), Swap::Conflict);
        assert_eq!(stored(store).map(|(v, _)| v), Some(version));
        expected = version;
    }
}

/// The whole record comes back as written, through another handle `b` on the record `a`
/// holds (another instance): tokens, claim, completed authorizations, the tombstone of a
/// refused refresh token; and a claim taken over fences its stalled holder's late write out.
/// The record holds nothing yet.
pub fn whole_record_and_fencing(a: &dyn TokenStore, b: &dyn TokenStore) {
    let mut by_a = record(1, 2);
    by_a.claim = Some(Claim::new("a", Duration::from_secs(5)));
    by_a.completed = vec!["state-a".into(), "state-b".into()];
    assert!(matches!(a.swap(0, &by_a).expect("a swap"), Swap::Stored { version: 2, .. }));
    assert_eq!(json(&b.load().expect("a read").record.expect("a record")), json(&by_a));
    // `b` takes the claim over (it watched it unchanged for its budget), `a` answers late.
    let mut by_b = record(1, 3);
    by_b.claim = Some(Claim::new("b", Duration::from_secs(5)));
    assert!(matches!(b.swap(2, &by_b).expect("a swap"), Swap::Stored { version: 3, .. }));
    assert_eq!(
        a.swap(2, &record(2, 4)).expect("a swap"),
        Swap::Conflict,
        "the late answer is fenced"
    );
    let mut refused = record(3, 4);
    refused.tokens.as_mut().expect("tokens").refused = true;
    assert!(matches!(b.swap(3, &refused).expect("a swap"), Swap::Stored { version: 4, .. }));
    let tokens = a.load().expect("a read").into_tokens().expect("tokens");
    assert!(tokens.refused, "the tombstone");
}

/// Writers with handles of their own (their own connections, as instances have) race swaps
/// on one record, each from the version it read: every version is won exactly once.
pub fn racing_writers(open: impl Fn() -> Arc<dyn TokenStore> + Sync) {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 10;
    let wins = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for writer in 0..WRITERS {
            let (open, wins) = (&open, &wins);
            s.spawn(move || {
                let store = open();
                for _ in 0..ROUNDS {
                    let read = store.load().expect("a read").record.map_or(0, |r| r.version);
                    let n = u32::try_from(writer).unwrap_or(0);
                    if let Swap::Stored { version, .. } =
                        store.swap(read, &record(n, read + 1)).expect("a swap")
                    {
                        wins.lock().unwrap_or_else(|e| e.into_inner()).push(version);
                    }
                }
            });
        }
    });
    let mut wins = wins.into_inner().unwrap_or_else(|e| e.into_inner());
    wins.sort_unstable();
    let count = wins.len();
    wins.dedup();
    assert_eq!(wins.len(), count, "a version won twice");
    assert_eq!(wins, (1..=count as u64).collect::<Vec<_>>());
}
