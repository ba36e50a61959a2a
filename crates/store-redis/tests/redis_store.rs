//! The Redis store against a real `redis-server` on loopback: the store contract (a versioned
//! compare-and-swap at the version the writer picks, the whole record kept), the epoch (its age,
//! and a new one after a restart, a wipe, a rollback or a failover), whose record a store holds
//! (a property test over clients, users, prefixes and builder orders), values sealed and bound
//! to their record, key rotation, and failures (unreachable, hung, restarted, a broken record)
//! as typed errors naming no value.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use helloflex_auth::{
    Claim, Key, KeyRing, OpenError, Record, RecordScope, StoreError, StoreErrorKind, Swap,
    TokenStore,
};
use helloflex_core::AccessToken;
use helloflex_store_redis::RedisStore;
use helloflex_testkit::contract::*;
use helloflex_testkit::{Persistence, RedisServer, Reply};

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url()).unwrap().get_connection().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The store contract
// ---------------------------------------------------------------------------------------------

/// The contract every store keeps (`helloflex_testkit::contract`): compare-and-swap, the whole
/// record through another handle, a claim fencing a stalled holder, racing writers.
#[test]
fn the_store_contract_holds_on_redis() {
    let server = RedisServer::start();
    compare_and_swap(&RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap());
    let open = || RedisStore::open(&server.url(), "client-b", keys("k1", 1)).unwrap().for_user("u");
    whole_record_and_fencing(&open(), &open());
    racing_writers(|| std::sync::Arc::new(open().for_user("racing")));
}

#[test]
fn a_record_with_a_claim_and_completed_authorizations_round_trips_whole() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap().for_user("u");
    let mut claimed = record(1, 3);
    claimed.claim = Some(Claim::new("pid 42 holder-9f3a", Duration::from_secs(30)));
    claimed.completed = vec!["state-a".into(), "state-b".into()];
    assert!(matches!(store.swap(0, &claimed).unwrap(), Swap::Stored { version: 3, .. }));
    let loaded = store.load().unwrap().record.unwrap();
    assert_eq!(json(&loaded), json(&claimed));
    assert_eq!(loaded.claim, Some(Claim::new("pid 42 holder-9f3a", Duration::from_secs(30))));
    assert_eq!(loaded.completed, ["state-a", "state-b"]);
    assert_eq!(store.claim_holder().unwrap().as_deref(), Some("pid 42 holder-9f3a"));

    // The answer clears the claim; a sign-out keeps a record without tokens.
    let mut answered = record(2, 4);
    answered.completed = loaded.completed.clone();
    assert!(matches!(store.swap(3, &answered).unwrap(), Swap::Stored { version: 4, .. }));
    assert_eq!(store.claim_holder().unwrap(), None);
    let mut signed_out = Record::default();
    signed_out.version = 5;
    signed_out.completed = vec!["state-b".into()];
    assert!(matches!(store.swap(4, &signed_out).unwrap(), Swap::Stored { version: 5, .. }));
    let loaded = store.load().unwrap().record.unwrap();
    assert_eq!(json(&loaded), json(&signed_out));
    assert!(loaded.tokens.is_none() && loaded.claim.is_none());
}

#[test]
fn delete_removes_the_record_and_a_first_write_may_follow() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    let alice = store.for_user("alice");
    assert!(matches!(store.swap(0, &record(1, 4)).unwrap(), Swap::Stored { .. }));
    assert!(matches!(alice.swap(0, &record(2, 1)).unwrap(), Swap::Stored { .. }));
    store.delete().unwrap();
    assert_eq!(stored(&store), None);
    assert_eq!(stored(&alice), Some((1, AccessToken::new("at2"))), "only its own record");
    assert_eq!(store.swap(4, &record(3, 5)).unwrap(), Swap::Conflict, "planned before");
    assert!(matches!(store.swap(0, &record(3, 5)).unwrap(), Swap::Stored { version: 5, .. }));
}

/// Lua numbers are doubles: the scripts keep versions as strings, so every `u64` is compared
/// and reported exactly.
#[test]
fn every_u64_version_is_compared_and_reported_exactly() {
    let server = RedisServer::start();
    every_u64_version(&RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Epochs
// ---------------------------------------------------------------------------------------------

#[test]
fn a_fresh_server_reports_a_young_epoch_that_grows_and_swaps_report_it_too() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    let first = epoch(&store);
    assert!(first < YOUNG, "{first:?}");
    std::thread::sleep(Duration::from_millis(300));
    let later = epoch(&store);
    assert!(later >= first + Duration::from_millis(250), "{first:?} then {later:?}");
    let (version, at_swap) = stored_at(store.swap(0, &record(1, 1)).unwrap());
    assert_eq!(version, 1);
    assert!(at_swap >= later, "{later:?} then {at_swap:?}");
    let at_load = epoch(&store);
    assert!(at_load >= at_swap, "{at_swap:?} then {at_load:?}");
}

/// Writes a record, lets the epoch grow, has `event` happen to the server, and checks the
/// record is still there in a new epoch; a swap planned before the event lands, and says so.
fn the_record_survives_in_a_new_epoch(persistence: Persistence, event: fn(&mut RedisServer)) {
    let mut server = RedisServer::start_with(persistence);
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    let mut claimed = record(1, 1);
    claimed.claim = Some(Claim::new("holder", Duration::from_secs(5)));
    assert!(matches!(store.swap(0, &claimed).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    event(&mut server);

    let loaded = store.load().unwrap();
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    let kept = loaded.record.expect("the record was kept");
    assert_eq!(json(&kept), json(&claimed));
    // Planned from the version read before the event: it lands, in the new epoch.
    let (version, age) = stored_at(store.swap(1, &record(2, 2)).unwrap());
    assert_eq!(version, 2);
    assert!(age < old, "the swap reports the new epoch: {age:?}");
}

#[test]
fn a_clean_shutdown_with_the_append_only_file_keeps_the_record_and_starts_a_new_epoch() {
    the_record_survives_in_a_new_epoch(Persistence::AppendOnly, |server| {
        server.shutdown();
        server.restart();
    });
}

#[test]
fn a_clean_shutdown_with_snapshots_keeps_the_record_and_starts_a_new_epoch() {
    the_record_survives_in_a_new_epoch(Persistence::Snapshot, |server| {
        server.shutdown();
        server.restart();
    });
}

#[test]
fn a_killed_server_with_the_append_only_file_keeps_the_record_and_starts_a_new_epoch() {
    the_record_survives_in_a_new_epoch(Persistence::AppendOnly, RedisServer::restart);
}

/// Writes a record, lets the epoch grow, has `event` wipe the server: the record is gone, the
/// epoch new, a swap planned before conflicts and a first write lands in the new epoch.
fn the_record_is_lost_in_a_new_epoch(event: fn(&mut RedisServer)) {
    let mut server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    event(&mut server);

    let loaded = store.load().unwrap();
    assert!(loaded.record.is_none(), "the record is gone");
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    assert_eq!(store.swap(1, &record(2, 2)).unwrap(), Swap::Conflict, "planned before");
    let (version, age) = stored_at(store.swap(0, &record(2, 9)).unwrap());
    assert_eq!(version, 9, "a write-back keeps its higher version");
    assert!(age < old, "{age:?}");
}

#[test]
fn a_restart_without_persistence_loses_the_record_and_starts_a_new_epoch() {
    the_record_is_lost_in_a_new_epoch(RedisServer::restart_without_data);
}

#[test]
fn flushall_loses_the_record_and_starts_a_new_epoch() {
    the_record_is_lost_in_a_new_epoch(|server| server.flushall());
}

/// The record alone gone while the server and the epoch key stay: whoever removed it (the
/// store's own `delete`, an operator's `DEL`, a key that expired, an eviction), it is a loss
/// like a wipe: a new epoch, so that live instances write back before anyone refreshes.
fn the_record_alone_is_lost_in_a_new_epoch(remove: impl Fn(&RedisServer, &RedisStore)) {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    remove(&server, &store);

    let loaded = store.load().unwrap();
    assert!(loaded.record.is_none(), "the record is gone");
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    // The epoch then grows (an empty record read again is not a new loss) ...
    std::thread::sleep(Duration::from_millis(300));
    let later = epoch(&store);
    assert!(later >= age + Duration::from_millis(250), "{age:?} then {later:?}");
    // ... and a write-back lands in it, with its higher version.
    let (version, at_swap) = stored_at(store.swap(0, &record(2, 9)).unwrap());
    assert_eq!(version, 9);
    assert!(at_swap >= later, "{later:?} then {at_swap:?}");
}

#[test]
fn a_deleted_record_starts_a_new_epoch() {
    the_record_alone_is_lost_in_a_new_epoch(|_, store| store.delete().unwrap());
}

#[test]
fn a_record_removed_by_an_operator_starts_a_new_epoch() {
    the_record_alone_is_lost_in_a_new_epoch(|server, store| {
        server.command(&["UNLINK", &store.record_key()]);
    });
}

#[test]
fn a_record_that_expired_starts_a_new_epoch() {
    the_record_alone_is_lost_in_a_new_epoch(|server, store| {
        server.command(&["PEXPIRE", &store.record_key(), "1"]);
        std::thread::sleep(Duration::from_millis(20));
    });
}

/// The server's clock stepped back (an NTP step, a VM restored): an epoch that began "in the
/// future" would read as 0 ms old for as long as the step, holding every refresh back. It
/// starts again at once instead: one grace period, then the epoch grows. (The step is made by
/// moving the epoch's start ahead: the script cannot tell the two apart.)
#[test]
fn a_server_clock_stepped_back_costs_one_new_epoch_not_the_step() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    grown_epoch(&store);
    let epoch_key = store.record_key().replace("tokens", "epoch");
    let Reply::Bulk(Some(since)) = server.command(&["HGET", &epoch_key, "since"]) else {
        panic!("the epoch key {epoch_key} holds `since`")
    };
    let since: u64 = String::from_utf8(since).unwrap().parse().unwrap();
    let an_hour_ahead = (since + 3_600_000).to_string();
    server.command(&["HSET", &epoch_key, "since", &an_hour_ahead]);

    let age = epoch(&store);
    assert!(age < YOUNG, "a new epoch: {age:?}");
    std::thread::sleep(Duration::from_millis(300));
    let later = epoch(&store);
    assert!(later >= age + Duration::from_millis(250), "it grows again: {age:?} then {later:?}");
    assert!(store.load().unwrap().record.is_some(), "the record stays");
}

#[test]
fn a_rollback_to_an_older_snapshot_brings_the_older_record_back_in_a_new_epoch() {
    let mut server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    epoch(&store);
    let snapshot = server.snapshot();
    assert!(matches!(store.swap(1, &record(2, 2)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    server.restart_from(&snapshot);

    let loaded = store.load().unwrap();
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    let older = loaded.record.expect("the snapshot's record");
    assert_eq!(older.version, 1, "the older record is back");
    assert_eq!(older.tokens.unwrap().access_token, AccessToken::new("at1"));
    assert_eq!(store.swap(2, &record(3, 3)).unwrap(), Swap::Conflict, "from the lost one");
    let (version, age) = stored_at(store.swap(1, &record(3, 3)).unwrap());
    assert_eq!(version, 3);
    assert!(age < old, "the swap planned from the restored version reports the new epoch");

    // The server writes its append-only file again: a kill now loses nothing, and starts
    // yet another epoch.
    std::thread::sleep(Duration::from_millis(300));
    let before = epoch(&store);
    server.restart();
    assert_eq!(stored(&store), Some((3, AccessToken::new("at3"))));
    assert!(epoch(&store) < before);
}

/// A server that only snapshots, killed, comes back with its last snapshot: a rollback.
#[test]
fn a_killed_server_with_snapshots_only_rolls_back_to_its_last_snapshot_in_a_new_epoch() {
    let mut server = RedisServer::start_with(Persistence::Snapshot);
    let store = RedisStore::open(&server.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    server.snapshot();
    assert!(matches!(store.swap(1, &record(2, 2)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    server.restart();

    let loaded = store.load().unwrap();
    assert!(loaded.epoch_age.unwrap() < YOUNG.min(old));
    assert_eq!(loaded.record.map(|r| r.version), Some(1), "the snapshot's version");
}

#[test]
fn a_failover_to_a_promoted_replica_and_back_keeps_the_record_and_starts_a_new_epoch_each_time() {
    let mut primary = RedisServer::start();
    let mut replica = RedisServer::start_replica_of(&primary);
    let on_primary = RedisStore::open(&primary.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(on_primary.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&on_primary);
    primary.wait_until_replicated(&replica);

    // Failover: the replica is promoted.
    replica.promote();
    let on_replica = RedisStore::open(&replica.url(), "client-a", keys("k1", 1)).unwrap();
    let loaded = on_replica.load().unwrap();
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    assert_eq!(loaded.record.map(|r| r.version), Some(1), "replicated");
    let (version, age) = stored_at(on_replica.swap(1, &record(2, 2)).unwrap());
    assert_eq!(version, 2);
    assert!(age < old);
    let old = grown_epoch(&on_replica);

    // Failback: the old primary follows the new one (its data replaced), then is promoted.
    primary.follow(&replica);
    primary.promote();
    replica.stop();
    let loaded = on_primary.load().unwrap();
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    assert_eq!(loaded.record.map(|r| r.version), Some(2), "the new primary's record");
}

/// A flap: the replica is promoted and, before any store call reaches it, the old primary
/// follows it back and is promoted again. The old primary's data was replaced by the
/// replica's (a write the replica never got is lost): a rollback, on the server whose run id
/// the epoch names.
#[test]
fn a_failover_and_back_that_rolls_data_back_starts_a_new_epoch_even_with_no_call_in_between() {
    let mut primary = RedisServer::start();
    let mut replica = RedisServer::start_replica_of(&primary);
    let store = RedisStore::open(&primary.url(), "client-a", keys("k1", 1)).unwrap();
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);
    primary.wait_until_replicated(&replica);

    replica.promote();
    // A write the promoted replica never gets (made on the old primary meanwhile).
    assert!(matches!(store.swap(1, &record(2, 2)).unwrap(), Swap::Stored { .. }));
    primary.follow(&replica);
    primary.promote();
    replica.stop();

    let loaded = store.load().unwrap();
    assert_eq!(loaded.record.map(|r| r.version), Some(1), "version 2 was rolled back");
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "the rollback must start a new epoch: {old:?} then {age:?}");
}

// ---------------------------------------------------------------------------------------------
// Whose record a store holds
// ---------------------------------------------------------------------------------------------

/// The old bug: `for_user(u).with_prefix(p)` dropped the user.
#[test]
fn for_user_then_with_prefix_keeps_the_user_and_either_order_reads_the_others_writes() {
    let server = RedisServer::start();
    let open = || RedisStore::open(&server.url(), "app", keys("k1", 1)).unwrap();
    let user_first = open().for_user("alice").with_prefix("prod");
    let prefix_first = open().with_prefix("prod").for_user("alice");
    assert_eq!(user_first.record_key(), "prod:{app/alice}:tokens");
    assert_eq!(prefix_first.record_key(), user_first.record_key());
    assert_eq!(user_first.scope(), &RecordScope::new("app").for_user("alice").in_namespace("prod"));
    assert_eq!(prefix_first.scope(), user_first.scope());
    assert_eq!(open().for_user("alice").for_user("bob").scope().user(), Some("bob"));

    assert!(matches!(user_first.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    assert_eq!(stored(&prefix_first), Some((1, AccessToken::new("at1"))));
    assert_eq!(stored(&open().with_prefix("prod")), None, "not the client's own record");
    assert_eq!(stored(&open().for_user("alice")), None, "not in the default namespace");
    assert_eq!(stored(&open().with_prefix("prod").for_user("bob")), None, "not bob's");
}

use helloflex_testkit::TRICKY_SCOPE_PARTS as TRICKY;

/// One store to build in the property test.
#[derive(Debug, Clone)]
struct Case {
    client: String,
    user: Option<String>,
    prefix: Option<String>,
    /// `for_user` first, then `with_prefix` (for the store that writes).
    user_first: bool,
    /// Whether this user signs in (writes a record).
    signs_in: bool,
}

impl Case {
    fn store(&self, url: &str, keys: &KeyRing, user_first: bool) -> RedisStore {
        let store = RedisStore::open(url, &self.client, keys.clone()).unwrap();
        match (self.user.as_deref(), self.prefix.as_deref()) {
            (Some(user), Some(prefix)) if user_first => store.for_user(user).with_prefix(prefix),
            (Some(user), Some(prefix)) => store.with_prefix(prefix).for_user(user),
            (Some(user), None) => store.for_user(user),
            (None, Some(prefix)) => store.with_prefix(prefix),
            (None, None) => store,
        }
    }

    fn scope(&self) -> RecordScope {
        let mut scope = RecordScope::new(&self.client);
        if let Some(prefix) = &self.prefix {
            scope = scope.in_namespace(prefix);
        }
        match &self.user {
            Some(user) => scope.for_user(user),
            None => scope,
        }
    }
}

fn case() -> impl proptest::strategy::Strategy<Value = Case> {
    use proptest::prelude::*;
    let part = || {
        prop_oneof![
            3 => proptest::sample::select(TRICKY).prop_map(str::to_owned),
            1 => "[ab:/{}% é日]{0,4}",
        ]
    };
    (
        part(),
        proptest::option::of(part()),
        proptest::option::of(part()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(client, user, prefix, user_first, signs_in)| Case {
            client,
            user,
            prefix,
            user_first,
            signs_in,
        })
}

/// Over small sets of clients, users and prefixes built in either order: the same scope gives
/// the same key, distinct scopes never share one, a value copied raw onto another scope's key
/// does not open there, and a user who never signed in reads nothing.
#[test]
fn stores_for_distinct_scopes_never_share_or_open_a_record_in_either_builder_order() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let server = RedisServer::start();
    let url = server.url();
    let ring = keys("k1", 1);
    let conn = std::cell::RefCell::new(raw(&server));
    let mut config = Config::with_cases(32);
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let cases = proptest::collection::vec(case(), 1..6);
    let result = runner.run(&cases, |cases| {
        server.flushall();
        let mut conn = conn.borrow_mut();
        let conn = &mut *conn;
        // One case per scope (the first): the same scope twice is one record.
        let mut seen = HashSet::new();
        let cases: Vec<Case> = cases.into_iter().filter(|c| seen.insert(c.scope())).collect();
        let writers: Vec<_> = cases.iter().map(|c| c.store(&url, &ring, c.user_first)).collect();
        let readers: Vec<_> = cases.iter().map(|c| c.store(&url, &ring, !c.user_first)).collect();

        // The same scope in either order; distinct scopes, distinct keys.
        let mut keys = HashMap::new();
        for ((case, writer), reader) in cases.iter().zip(&writers).zip(&readers) {
            proptest::prop_assert_eq!(writer.scope(), &case.scope());
            proptest::prop_assert_eq!(reader.scope(), &case.scope());
            proptest::prop_assert_eq!(writer.record_key(), case.scope().key("tokens"));
            proptest::prop_assert_eq!(reader.record_key(), writer.record_key());
            if let Some(other) = keys.insert(writer.record_key(), case.scope()) {
                return Err(TestCaseError::fail(format!("{other:?} and {case:?} share a key")));
            }
        }

        // Those who sign in write; each reads its own through the other order, the others
        // read nothing.
        for (n, (case, writer)) in cases.iter().zip(&writers).enumerate() {
            if case.signs_in {
                let swap = writer.swap(0, &record(n as u32, 1)).unwrap();
                proptest::prop_assert!(
                    matches!(swap, Swap::Stored { version: 1, .. }),
                    "{:?}",
                    swap
                );
            }
        }
        for (n, (case, reader)) in cases.iter().zip(&readers).enumerate() {
            let expected = case.signs_in.then(|| (1, AccessToken::new(format!("at{n}"))));
            proptest::prop_assert_eq!(try_stored(reader), Ok(expected), "{:?}", case);
        }

        // A value copied raw onto another scope's key does not open there; put back, it does.
        for (i, (from, source)) in cases.iter().zip(&writers).enumerate() {
            if !from.signs_in {
                continue;
            }
            for (j, (to, target)) in cases.iter().zip(&readers).enumerate() {
                if i == j {
                    continue;
                }
                let (key, backup) = (target.record_key(), "proptest-backup");
                let _: () = redis::cmd("DEL").arg(backup).query(conn).unwrap();
                let _: bool = redis::cmd("COPY").arg(&key).arg(backup).query(conn).unwrap();
                let copied: bool = redis::cmd("COPY")
                    .arg(source.record_key())
                    .arg(&key)
                    .arg("REPLACE")
                    .query(conn)
                    .unwrap();
                proptest::prop_assert!(copied);
                // Only the version is shown: the tokens stay out of the failure message.
                let read = target.load().map(|l| l.record.map(|r| r.version));
                let opened_nowhere = matches!(
                    &read,
                    Err(StoreError {
                        kind: StoreErrorKind::DoesNotOpen(OpenError::Unauthentic),
                        detail,
                        ..
                    }) if *detail == format!("record {key}")
                );
                proptest::prop_assert!(opened_nowhere, "{:?} read as {:?}: {:?}", from, to, read);
                let _: () = redis::cmd("DEL").arg(&key).query(conn).unwrap();
                let _: bool = redis::cmd("COPY").arg(backup).arg(&key).query(conn).unwrap();
                let expected = to.signs_in.then(|| (1, AccessToken::new(format!("at{j}"))));
                proptest::prop_assert_eq!(try_stored(target), Ok(expected), "{:?}", to);
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------------

#[test]
fn neither_redis_nor_its_files_hold_token_bytes_unless_plaintext_was_asked_for() {
    let mut server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-c", keys("k1", 1)).unwrap();
    let alice = store.for_user("alice");
    let mut claimed = Record::new(canaries(), 1);
    claimed.claim = Some(Claim::new("holder", Duration::from_secs(5)));
    assert!(matches!(alice.swap(0, &claimed).unwrap(), Swap::Stored { .. }));
    assert!(matches!(alice.swap(1, &Record::new(canaries(), 2)).unwrap(), Swap::Stored { .. }));
    assert_eq!(
        alice.load().unwrap().into_tokens().unwrap().access_token,
        AccessToken::new(CANARY_ACCESS)
    );

    let mut conn = raw(&server);
    // The whole database, as a dump would show it.
    let everything = |conn: &mut redis::Connection| {
        let mut bytes = Vec::new();
        let all: Vec<String> = redis::cmd("KEYS").arg("*").query(conn).unwrap();
        for key in all {
            bytes.extend_from_slice(key.as_bytes());
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).unwrap();
            assert_eq!(kind, "hash", "{key}");
            let values: Vec<Vec<u8>> = redis::cmd("HVALS").arg(&key).query(conn).unwrap();
            bytes.extend(values.concat());
        }
        bytes
    };
    // ... and its files: the append-only file and a snapshot.
    server.snapshot();
    let files = |server: &RedisServer| {
        let files = server.data_files();
        assert!(files.len() >= 3, "a snapshot and the append-only files: {files:?}");
        files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect::<Vec<u8>>()
    };
    for (what, bytes) in [("the database", everything(&mut conn)), ("its files", files(&server))] {
        assert!(!contains(&bytes, CANARY_ACCESS), "an access token in {what}");
        assert!(!contains(&bytes, CANARY_REFRESH), "a refresh token in {what}");
    }

    // The same checks see a plaintext store's tokens: they can fail.
    let plain = RedisStore::open_plaintext_insecure(&server.url(), "client-plain").unwrap();
    assert!(matches!(plain.swap(0, &Record::new(canaries(), 1)).unwrap(), Swap::Stored { .. }));
    server.snapshot();
    for (what, bytes) in [("the database", everything(&mut conn)), ("its files", files(&server))] {
        assert!(contains(&bytes, CANARY_REFRESH), "plaintext shows in {what}");
    }
    let shown = format!("{store:?} {alice:?} {plain:?}");
    assert!(!shown.contains("canary"), "{shown}");
}

#[test]
fn a_value_copied_to_another_record_or_read_with_another_key_does_not_open_and_is_left_as_is() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-c", keys("k1", 1)).unwrap();
    let alice = store.for_user("alice");
    assert!(matches!(alice.swap(0, &Record::new(canaries(), 1)).unwrap(), Swap::Stored { .. }));
    let mut conn = raw(&server);
    let value: Vec<u8> =
        redis::cmd("HGET").arg(alice.record_key()).arg("value").query(&mut conn).unwrap();
    let hset = |conn: &mut redis::Connection, key: &str, value: &[u8]| {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg("version")
            .arg(1)
            .arg("value")
            .arg(value)
            .query(conn)
            .unwrap();
    };
    let unauthentic = |error: &StoreError, key: &str| {
        matches!(
            error,
            StoreError {
                kind: StoreErrorKind::DoesNotOpen(OpenError::Unauthentic),
                detail,
                ..
            } if *detail == format!("record {key}")
        )
    };

    // Another user, another client's alice, alice in another namespace, the client's own.
    let elsewhere = [
        store.for_user("bob"),
        RedisStore::open(&server.url(), "client-z", keys("k1", 1)).unwrap().for_user("alice"),
        store.for_user("alice").with_prefix("staging"),
        RedisStore::open(&server.url(), "client-c", keys("k1", 1)).unwrap(),
    ];
    for other in &elsewhere {
        hset(&mut conn, &other.record_key(), &value);
        let error = other.load().unwrap_err();
        assert!(unauthentic(&error, &other.record_key()), "{other:?}: {error:?}");
        let shown = format!("{error} {error:?} {}", helloflex_core::Error::from(error.clone()));
        assert!(!shown.contains("canary"), "{shown}");
        let after: Vec<u8> =
            redis::cmd("HGET").arg(other.record_key()).arg("value").query(&mut conn).unwrap();
        assert_eq!(after, value, "left untouched");
        assert_eq!(other.swap(0, &record(1, 2)).unwrap(), Swap::Conflict, "not overwritten blind");
    }

    // Another key ring: an unknown key id, or the same id with other bytes.
    let unknown = RedisStore::open(&server.url(), "client-c", keys("k9", 1)).unwrap();
    let error = unknown.for_user("alice").load().unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError { kind: StoreErrorKind::DoesNotOpen(OpenError::UnknownKey), .. }
        ),
        "{error:?}"
    );
    let impostor = RedisStore::open(&server.url(), "client-c", keys("k1", 9)).unwrap();
    let error = impostor.for_user("alice").load().unwrap_err();
    assert!(unauthentic(&error, &alice.record_key()), "{error:?}");

    // Tampered, truncated.
    let bob = store.for_user("bob");
    let mut tampered = value.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    hset(&mut conn, &bob.record_key(), &tampered);
    assert!(unauthentic(&bob.load().unwrap_err(), &bob.record_key()));
    hset(&mut conn, &bob.record_key(), &value[..10]);
    let error = bob.load().unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError { kind: StoreErrorKind::DoesNotOpen(OpenError::Truncated), .. }
        ),
        "{error:?}"
    );
    assert_eq!(stored(&alice), Some((1, AccessToken::new(CANARY_ACCESS))), "alice's own opens");
}

#[test]
fn a_value_under_an_old_key_opens_and_is_resealed_under_the_active_key_on_its_next_write() {
    let server = RedisServer::start();
    let old = RedisStore::open(&server.url(), "client-d", keys("k1", 1)).unwrap();
    assert!(matches!(old.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let ring =
        KeyRing::new(Key::new("k2", [2; 32]).unwrap()).with_older(Key::new("k1", [1; 32]).unwrap());
    let rotated = RedisStore::open(&server.url(), "client-d", ring.clone()).unwrap();
    assert_eq!(stored(&rotated), Some((1, AccessToken::new("at1"))));
    let mut conn = raw(&server);
    let value: Vec<u8> =
        redis::cmd("HGET").arg(rotated.record_key()).arg("value").query(&mut conn).unwrap();
    assert!(!ring.is_current(&value));
    assert!(matches!(rotated.swap(1, &record(2, 2)).unwrap(), Swap::Stored { version: 2, .. }));
    let value: Vec<u8> =
        redis::cmd("HGET").arg(rotated.record_key()).arg("value").query(&mut conn).unwrap();
    assert!(ring.is_current(&value), "resealed under k2");
    assert!(old.load().is_err(), "the old ring alone no longer opens it");
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn a_broken_record_is_a_typed_error_naming_no_value() {
    let server = RedisServer::start();
    let sealed = RedisStore::open(&server.url(), "client-f", keys("k1", 1)).unwrap();
    let plain = RedisStore::open_plaintext_insecure(&server.url(), "client-f");
    let plain = plain.unwrap().for_user("plain");
    let mut conn = raw(&server);
    let malformed = |error: &StoreError| {
        matches!(error, StoreError { op: "read", kind: StoreErrorKind::Corrupt, .. })
    };
    let no_value = |error: &StoreError| {
        let shown = format!("{error} {error:?} {}", helloflex_core::Error::from(error.clone()));
        assert!(!shown.contains("canary"), "{shown}");
    };

    // Half a record: a version without a value, a value without a version.
    let _: () =
        redis::cmd("HSET").arg(sealed.record_key()).arg("version").arg(3).query(&mut conn).unwrap();
    let error = sealed.load().unwrap_err();
    assert!(malformed(&error), "{error:?}");
    let _: () = redis::cmd("DEL").arg(sealed.record_key()).query(&mut conn).unwrap();
    let _: () =
        redis::cmd("HSET").arg(sealed.record_key()).arg("value").arg("x").query(&mut conn).unwrap();
    let error = sealed.load().unwrap_err();
    assert!(malformed(&error), "{error:?}");

    // A value that is not sealed, read by a sealed store; one that opens to no record.
    let _: () = redis::cmd("HSET")
        .arg(sealed.record_key())
        .arg("version")
        .arg(1)
        .arg("value")
        .arg(format!(r#"{{"access_token":"{CANARY_ACCESS}"}}"#))
        .query(&mut conn)
        .unwrap();
    let error = sealed.load().unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError { kind: StoreErrorKind::DoesNotOpen(OpenError::NotSealed), .. }
        ),
        "{error:?}"
    );
    no_value(&error);
    let _: () = redis::cmd("HSET")
        .arg(plain.record_key())
        .arg("version")
        .arg(1)
        .arg("value")
        .arg(format!("not json {CANARY_ACCESS}"))
        .query(&mut conn)
        .unwrap();
    let error = plain.load().unwrap_err();
    assert!(malformed(&error), "{error:?}");
    no_value(&error);

    // A key of another type: the server refuses the script, a typed error by its code.
    let _: () =
        redis::cmd("SET").arg(sealed.record_key()).arg(CANARY_ACCESS).query(&mut conn).unwrap();
    let error = sealed.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::Refused, detail, .. } if detail.contains("WRONGTYPE")),
        "{error:?}"
    );
    no_value(&error);
    let error = sealed.swap(0, &record(1, 1)).unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "write", kind: StoreErrorKind::Refused, .. }),
        "{error:?}"
    );
    no_value(&error);
}

#[test]
fn an_unreachable_server_is_a_typed_error_naming_no_password() {
    let url_with_password =
        format!("redis://:hunter2-password@127.0.0.1:{}/", helloflex_testkit::free_port());
    let nowhere = RedisStore::open(&url_with_password, "client-e", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let error = nowhere.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::Unreachable, .. }),
        "{error:?}"
    );
    let shown =
        format!("{error} {error:?} {nowhere:?} {}", helloflex_core::Error::from(error.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    let error = nowhere.swap(0, &record(1, 1)).unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "write", kind: StoreErrorKind::Unreachable, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    let error =
        RedisStore::open("http://hunter2-password@not-redis", "c", keys("k1", 1)).unwrap_err();
    // A URL that is not Redis's is a setting to fix: asking again would not help.
    assert!(
        matches!(&error, StoreError { op: "open", kind: StoreErrorKind::Setting, .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert!(!format!("{error} {error:?}").contains("hunter2"));
}

#[test]
fn a_restarted_server_is_reconnected_on_every_pooled_connection_and_loses_nothing() {
    let mut server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-e", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    // Several connections in the pool: loads at once from threads (the users share the pool).
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for n in 0..4 {
            let (store, barrier) = (&store, &barrier);
            s.spawn(move || {
                let user = store.for_user(&format!("u{n}"));
                for _ in 0..20 {
                    barrier.wait();
                    user.load().unwrap();
                }
            });
        }
    });
    let clients = match server.command(&["CLIENT", "LIST"]) {
        Reply::Bulk(Some(list)) => String::from_utf8_lossy(&list).lines().count(),
        other => panic!("{other:?}"),
    };
    assert!(clients >= 3, "at least two pooled connections (and this one): {clients}");

    server.stop();
    let down = |e: &StoreError| e.kind == StoreErrorKind::Unreachable && e.is_transient();
    assert!(down(&store.load().unwrap_err()));
    assert!(down(&store.swap(1, &record(2, 2)).unwrap_err()));
    server.restart();
    // Every pooled connection died with the server: each call reconnects.
    for _ in 0..12 {
        assert_eq!(stored(&store), Some((1, AccessToken::new("at1"))));
    }
    assert!(matches!(store.swap(1, &record(2, 2)).unwrap(), Swap::Stored { version: 2, .. }));
}

#[test]
fn a_hung_server_costs_the_timeout_not_a_hang_and_no_reply_goes_astray() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), "client-h", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let alice = store.for_user("alice");
    assert!(matches!(alice.swap(0, &record(2, 1)).unwrap(), Swap::Stored { .. }));

    server.pause();
    let (sender, answers) = std::sync::mpsc::channel();
    let hung = std::thread::spawn({
        let (alice, bob) = (alice.for_user("alice"), store.for_user("bob"));
        move || {
            // A pooled connection, then fresh ones; a read and a write.
            let _ = sender.send(alice.load().map(|_| ()));
            let _ = sender.send(bob.swap(0, &record(3, 1)).map(|_| ()));
        }
    });
    for _ in 0..2 {
        let Ok(answer) = answers.recv_timeout(Duration::from_secs(10)) else {
            server.resume();
            panic!("a store call hung on a paused server");
        };
        let error = answer.unwrap_err();
        let timed_out = matches!(&error, StoreError { kind: StoreErrorKind::TimedOut, detail, .. } if detail == "timed out");
        assert!(timed_out, "{error:?}");
    }
    hung.join().unwrap();

    server.resume();
    // The late replies went nowhere: each store reads its own record.
    for _ in 0..3 {
        assert_eq!(stored(&store), Some((1, AccessToken::new("at1"))));
        assert_eq!(stored(&alice), Some((1, AccessToken::new("at2"))));
    }
    // The write that timed out may still have landed (it was sent): only a read tells.
    let bob = stored(&store.for_user("bob"));
    assert!(bob.is_none() || bob == Some((1, AccessToken::new("at3"))), "{bob:?}");
}

/// `rediss://`: the store speaks TLS to a redis-server with a certificate from a private CA.
#[test]
fn rediss_works_with_a_private_ca() {
    let tls = helloflex_testkit::tls::loopback_tls();
    let server = RedisServer::start_tls(&tls.cert, &tls.key, &tls.ca);
    assert!(server.url().starts_with("rediss://"));

    let store = RedisStore::open(&server.url(), "client-tls", keys("k1", 1))
        .unwrap()
        .with_root_certificates(tls.ca.as_bytes())
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { version: 1, .. }));
    assert_eq!(store.swap(0, &record(2, 2)).unwrap(), Swap::Conflict);
    let loaded = store.load().unwrap();
    assert!(loaded.epoch_age.is_some());
    assert_eq!(loaded.into_tokens().unwrap().access_token, AccessToken::new("at1"));

    // The system's roots do not know this CA: a typed error, not a panic.
    let untrusted = RedisStore::open(&server.url(), "client-tls", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let error = untrusted.load().unwrap_err();
    assert!(matches!(error, StoreError { op: "read", .. }), "{error:?}");
}
