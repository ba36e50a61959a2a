//! The SQL store on SQLite files in temporary directories: the store contract (a versioned
//! compare-and-swap at the version the writer picks, the whole record kept: claim, tombstone,
//! completed authorizations), the claim fencing a stalled holder, the epoch (its age, and a new
//! one after a record deleted, a clock stepped back, a file restored from a backup or
//! replaced), the schema (created on first use or by `migrate`, versioned, too old or too new a
//! typed error, nothing else in the database touched), whose record a store holds, values
//! sealed and bound to their row, key rotation, and failures as typed errors naming no value.
//! The same behaviour tests as the Redis store's (`crates/store-redis/tests/redis_store.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use helloflex_auth::{
    Claim, Key, KeyRing, OpenError, Record, StoreError, StoreErrorKind, Swap, TokenStore,
};
use helloflex_core::AccessToken;
use helloflex_store_sql::{Database, SCHEMA_VERSION, SqlError, SqlStore};
use helloflex_testkit::contract::*;
use rusqlite::{Connection, params};

struct Db {
    dir: tempfile::TempDir,
}

impl Db {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("app.db")
    }

    fn store(&self, client: &str) -> SqlStore {
        SqlStore::open(Database::sqlite(self.path()), client, keys("k1", 1)).unwrap()
    }

    /// A raw connection, as an operator's `sqlite3` shell.
    fn raw(&self) -> Connection {
        Connection::open(self.path()).unwrap()
    }

    /// Every byte of the database's files (the database, its journal or WAL).
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        bytes
    }
}

fn raw_value(db: &Db, store: &SqlStore) -> Vec<u8> {
    db.raw()
        .query_row(
            &format!("SELECT value FROM {} WHERE record_key = ?1", store.table()),
            params![store.record_key()],
            |r| r.get(0),
        )
        .unwrap()
}

/// Writes a raw row for `store`'s record (an operator's or an attacker's write).
fn put_raw(db: &Db, store: &SqlStore, version: i64, value: &[u8]) {
    db.raw()
        .execute(
            &format!(
                "INSERT INTO {} (record_key, client_id, user_id, version, value, updated_at_ms) \
                 VALUES (?1, 'x', NULL, ?2, ?3, 0) ON CONFLICT (record_key) \
                 DO UPDATE SET version = ?2, value = ?3",
                store.table()
            ),
            params![store.record_key(), version, value],
        )
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The store contract
// ---------------------------------------------------------------------------------------------

/// The contract every store keeps (`helloflex_testkit::contract`): compare-and-swap, every
/// `u64` version (the columns are signed 64-bit), the whole record through another handle, a
/// claim fencing a stalled holder, writers racing on connections of their own.
#[test]
fn the_store_contract_holds_on_sqlite() {
    let db = Db::new();
    compare_and_swap(&db.store("client-a"));
    every_u64_version(&db.store("client-big"));
    whole_record_and_fencing(
        &db.store("client-b").for_user("u"),
        &db.store("client-b").for_user("u"),
    );
    db.store("client-c").migrate().unwrap();
    racing_writers(|| {
        std::sync::Arc::new(db.store("client-c").with_timeout(Duration::from_secs(10)))
    });
}

#[test]
fn a_record_with_a_claim_a_tombstone_and_completed_authorizations_round_trips_whole() {
    let db = Db::new();
    let store = db.store("client-a").for_user("u");
    let mut claimed = record(1, 3);
    claimed.claim = Some(Claim::new("pid 42 holder-9f3a", Duration::from_secs(30)));
    claimed.completed = vec!["state-a".into(), "state-b".into()];
    assert!(matches!(store.swap(0, &claimed).unwrap(), Swap::Stored { version: 3, .. }));
    let loaded = store.load().unwrap().record.unwrap();
    assert_eq!(json(&loaded), json(&claimed));
    assert_eq!(loaded.completed, ["state-a", "state-b"]);
    assert_eq!(store.claim_holder().unwrap().as_deref(), Some("pid 42 holder-9f3a"));

    // The answer clears the claim; a refused token is kept as a tombstone.
    let mut refused = record(2, 4);
    refused.completed = loaded.completed.clone();
    refused.tokens.as_mut().unwrap().refused = true;
    assert!(matches!(store.swap(3, &refused).unwrap(), Swap::Stored { version: 4, .. }));
    assert_eq!(store.claim_holder().unwrap(), None);
    let loaded = store.load().unwrap().record.unwrap();
    assert!(loaded.tokens.as_ref().unwrap().refused, "the tombstone is kept");
    assert_eq!(json(&loaded), json(&refused));

    // A sign-out keeps a record without tokens.
    let mut signed_out = Record::default();
    signed_out.version = 5;
    signed_out.completed = vec!["state-b".into()];
    assert!(matches!(store.swap(4, &signed_out).unwrap(), Swap::Stored { version: 5, .. }));
    let loaded = store.load().unwrap().record.unwrap();
    assert_eq!(json(&loaded), json(&signed_out));
    assert!(loaded.tokens.is_none() && loaded.claim.is_none());
}

#[test]
fn delete_removes_the_record_leaving_no_row_and_a_first_write_may_follow() {
    let db = Db::new();
    let store = db.store("client-a");
    let alice = store.for_user("alice");
    assert!(matches!(store.swap(0, &record(1, 4)).unwrap(), Swap::Stored { .. }));
    assert!(matches!(alice.swap(0, &record(2, 1)).unwrap(), Swap::Stored { .. }));
    store.delete().unwrap();
    assert_eq!(stored(&store), None);
    assert_eq!(stored(&alice), Some((1, AccessToken::new("at2"))), "only its own record");
    assert_eq!(store.swap(4, &record(3, 5)).unwrap(), Swap::Conflict, "planned before");
    assert!(matches!(store.swap(0, &record(3, 5)).unwrap(), Swap::Stored { version: 5, .. }));
    // Deleted records leave no row behind (one user id per sign-in would grow a table).
    store.delete().unwrap();
    alice.delete().unwrap();
    for table in ["helloflex_tokens", "helloflex_token_epochs"] {
        let rows: i64 =
            db.raw().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0, "{table}");
    }
}

// ---------------------------------------------------------------------------------------------
// Epochs
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_database_reports_a_young_epoch_that_grows_and_swaps_report_it_too() {
    let db = Db::new();
    let store = db.store("client-a");
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
    // Another store on the file (another process) sees the same epoch: it is in the database.
    let other = db.store("client-a");
    assert!(epoch(&other) >= at_load, "one epoch per record, shared");
}

/// The record alone gone while the database stays: whoever removed it, it is a loss: a new
/// epoch, so that live instances write back before anyone refreshes.
fn the_record_alone_is_lost_in_a_new_epoch(remove: impl Fn(&Db, &SqlStore)) {
    let db = Db::new();
    let store = db.store("client-a");
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    remove(&db, &store);

    // Seen by a store that never saw the record as well as by the one that wrote it.
    let other = db.store("client-a");
    let loaded = other.load().unwrap();
    assert!(loaded.record.is_none(), "the record is gone");
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    // The epoch then grows (an empty record read again, by anyone, is not a new loss) ...
    std::thread::sleep(Duration::from_millis(300));
    let later = epoch(&store);
    assert!(later >= age + Duration::from_millis(250), "{age:?} then {later:?}");
    assert_eq!(store.swap(1, &record(2, 2)).unwrap(), Swap::Conflict, "planned before");
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
    the_record_alone_is_lost_in_a_new_epoch(|db, store| {
        let sql = format!("DELETE FROM {} WHERE record_key = ?1", store.table());
        assert_eq!(db.raw().execute(&sql, params![store.record_key()]).unwrap(), 1);
    });
}

#[test]
fn an_emptied_token_table_starts_a_new_epoch() {
    the_record_alone_is_lost_in_a_new_epoch(|db, store| {
        db.raw().execute(&format!("DELETE FROM {}", store.table()), []).unwrap();
    });
}

/// The tables dropped under a store that made them (an operator, a schema reset): the store
/// looks again, makes them again, and reads a loss in a new epoch, as for a record deleted;
/// without migration on first use it says the schema is missing. One table alone dropped,
/// the schema's version still there, is a typed error naming the table, never a retry loop.
#[test]
fn tables_dropped_under_a_running_store_are_made_again_in_a_new_epoch() {
    let db = Db::new();
    let store = db.store("client-a");
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);
    let checking = db.store("client-a").migrate_on_first_use(false);
    assert_eq!(stored(&checking).map(|(v, _)| v), Some(1));
    let drop_all = |db: &Db| {
        for table in ["helloflex_tokens", "helloflex_token_epochs", "helloflex_token_schema"] {
            db.raw().execute(&format!("DROP TABLE {table}"), []).unwrap();
        }
    };

    drop_all(&db);
    let loaded = store.load().unwrap();
    assert!(loaded.record.is_none(), "the record went with its table");
    assert!(loaded.epoch_age.unwrap() < YOUNG.min(old), "a new epoch");
    let (version, _) = stored_at(store.swap(0, &record(2, 5)).unwrap());
    assert_eq!(version, 5, "a write-back lands");

    drop_all(&db);
    let error = checking.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::SchemaMismatch, detail, .. } if detail.contains("version 0")),
        "{error:?}"
    );

    store.migrate().unwrap();
    db.raw().execute("DROP TABLE helloflex_tokens", []).unwrap();
    let error = store.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::SchemaMismatch, detail, .. }
            if detail.contains("gone") && detail.contains("helloflex_tokens")),
        "{error:?}"
    );
}

/// The host's clock stepped back (an epoch that began "in the future"): one new epoch at once,
/// not the length of the step. (The step is made by moving the epoch's start ahead.)
#[test]
fn a_clock_stepped_back_costs_one_new_epoch_not_the_step() {
    let db = Db::new();
    let store = db.store("client-a");
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    grown_epoch(&store);
    let sql = "UPDATE helloflex_token_epochs SET since_ms = since_ms + 3600000";
    assert_eq!(db.raw().execute(sql, []).unwrap(), 1);

    let age = epoch(&store);
    assert!(age < YOUNG, "a new epoch: {age:?}");
    std::thread::sleep(Duration::from_millis(300));
    let later = epoch(&store);
    assert!(later >= age + Duration::from_millis(250), "it grows again: {age:?} then {later:?}");
    assert!(store.load().unwrap().record.is_some(), "the record stays");
}

/// The database file restored from a backup under a running instance: the records and their
/// epochs go back in time together. The instance that saw the newer version notices the lower
/// one and starts a new epoch (its live holders then write back); a planned swap from the lost
/// version conflicts.
#[test]
fn a_file_restored_from_an_older_backup_starts_a_new_epoch_for_the_store_that_saw_more() {
    let db = Db::new();
    let store = db.store("client-a");
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let backup = db.dir.path().join("backup.db");
    db.raw().execute("VACUUM INTO ?1", params![backup.to_str().unwrap()]).unwrap();
    assert!(matches!(store.swap(1, &record(2, 2)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    // Copied over in place (the same file, as `cp` does).
    std::fs::write(db.path(), std::fs::read(&backup).unwrap()).unwrap();

    let loaded = store.load().unwrap();
    let age = loaded.epoch_age.unwrap();
    assert!(age < YOUNG && age < old, "a new epoch: {old:?} then {age:?}");
    let older = loaded.record.expect("the backup's record");
    assert_eq!(older.version, 1, "the older record is back");
    assert_eq!(store.swap(2, &record(3, 3)).unwrap(), Swap::Conflict, "from the lost one");
    let (version, age) = stored_at(store.swap(1, &record(3, 3)).unwrap());
    assert_eq!(version, 3);
    assert!(age < old, "{age:?}");
    // Noticed once: the epoch grows again.
    std::thread::sleep(Duration::from_millis(300));
    assert!(epoch(&store) >= age + Duration::from_millis(250));
}

/// The file deleted, or replaced by another renamed over it, while connections were idle:
/// they are not used again (they would write to a file no other process sees); the new file
/// gets the tables, in a new epoch.
#[test]
fn a_database_file_deleted_or_replaced_is_noticed_and_starts_a_new_epoch() {
    let db = Db::new();
    let store = db.store("client-a");
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);

    std::fs::remove_file(db.path()).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.record.is_none(), "a new, empty file");
    assert!(loaded.epoch_age.unwrap() < YOUNG.min(old));
    assert!(matches!(store.swap(0, &record(2, 5)).unwrap(), Swap::Stored { version: 5, .. }));
    assert_eq!(stored(&db.store("client-a")), Some((5, AccessToken::new("at2"))), "on disk");

    // Another database renamed over it.
    let other = Db::new();
    assert!(matches!(other.store("client-a").swap(0, &record(3, 7)).unwrap(), Swap::Stored { .. }));
    std::fs::rename(other.path(), db.path()).unwrap();
    assert_eq!(stored(&store), Some((7, AccessToken::new("at3"))));
}

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

#[test]
fn the_tables_are_created_on_first_use_beside_the_applications_and_nothing_else_is_touched() {
    let db = Db::new();
    let app = db.raw();
    app.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO users (name) VALUES ('alice'), ('bob');
         CREATE TABLE tokens (id INTEGER PRIMARY KEY, what TEXT);
         INSERT INTO tokens (what) VALUES ('the application''s own');",
    )
    .unwrap();
    let schema_before: Vec<String> = tables_sql(&app, "NOT LIKE 'helloflex_%'");

    let store = db.store("client-a");
    assert_eq!(store.schema_version().unwrap(), 0, "nothing yet");
    assert!(matches!(store.for_user("alice").swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.migrate().unwrap(), SCHEMA_VERSION, "already there: nothing to do");

    assert_eq!(tables_sql(&app, "NOT LIKE 'helloflex_%'"), schema_before);
    let mut names = app
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'helloflex_%'")
        .unwrap();
    let mut names: Vec<String> =
        names.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    names.sort();
    assert_eq!(names, ["helloflex_token_epochs", "helloflex_token_schema", "helloflex_tokens"]);
    let users: i64 = app.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
    assert_eq!(users, 2);
    let own: String = app.query_row("SELECT what FROM tokens", [], |r| r.get(0)).unwrap();
    assert_eq!(own, "the application's own");
    // The row is findable by client and user.
    let (client, user): (String, Option<String>) = app
        .query_row("SELECT client_id, user_id FROM helloflex_tokens", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((client.as_str(), user.as_deref()), ("client-a", Some("alice")));
}

fn tables_sql(connection: &Connection, filter: &str) -> Vec<String> {
    let sql = format!(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name {filter} ORDER BY name"
    );
    let mut statement = connection.prepare(&sql).unwrap();
    statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn without_migration_on_first_use_a_missing_or_old_schema_is_a_typed_error_until_migrate() {
    let db = Db::new();
    let store = db.store("client-a").migrate_on_first_use(false);
    let error = store.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::SchemaMismatch, detail, .. } if detail.contains("version 0")),
        "{error:?}"
    );
    assert_eq!(store.schema_version().unwrap(), 0, "nothing was created");
    assert_eq!(store.migrate().unwrap(), 0);
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
}

#[test]
fn a_schema_newer_than_this_sdk_is_refused_and_left_untouched() {
    let db = Db::new();
    db.store("client-a").migrate().unwrap();
    let newer = i64::from(SCHEMA_VERSION) + 1;
    db.raw().execute("UPDATE helloflex_token_schema SET version = ?1", params![newer]).unwrap();

    let store = db.store("client-a");
    let expected = SqlError::SchemaTooNew { found: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION };
    assert_eq!(store.migrate().unwrap_err(), expected);
    let error = store.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::SchemaMismatch, detail, .. } if detail.contains("newer"))
    );
    assert!(!error.is_transient(), "a newer schema stays newer: asking again does not help");
    let error = store.swap(0, &record(1, 1)).unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "write", kind: StoreErrorKind::SchemaMismatch, .. }),
        "{error:?}"
    );
    let manual = db.store("client-a").migrate_on_first_use(false);
    assert!(manual.load().is_err());
    let rows: i64 =
        db.raw().query_row("SELECT count(*) FROM helloflex_tokens", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0, "nothing written");
    let version: i64 =
        db.raw().query_row("SELECT version FROM helloflex_token_schema", [], |r| r.get(0)).unwrap();
    assert_eq!(version, newer, "left as it was");
}

#[test]
fn processes_migrating_at_once_create_the_tables_once() {
    let db = Db::new();
    let found: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let db = &db;
                s.spawn(move || {
                    db.store("c").with_timeout(Duration::from_secs(10)).migrate().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(found.iter().filter(|v| **v == 0).count(), 1, "{found:?}");
    assert_eq!(found.iter().filter(|v| **v == SCHEMA_VERSION).count(), 3, "{found:?}");
}

#[test]
fn a_table_prefix_keeps_separate_tables_and_refuses_what_is_not_an_identifier() {
    let db = Db::new();
    let default = db.store("app").for_user("alice");
    let staging = db.store("app").with_table_prefix("staging_").unwrap().for_user("alice");
    let either_order = db.store("app").for_user("alice").with_table_prefix("staging_").unwrap();
    assert_eq!(staging.table(), "staging_tokens");
    assert_eq!(either_order.scope(), staging.scope());
    assert_eq!(either_order.record_key(), "app/alice");
    assert!(matches!(default.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    assert_eq!(stored(&staging), None);
    assert!(matches!(either_order.swap(0, &record(2, 2)).unwrap(), Swap::Stored { .. }));
    assert_eq!(stored(&staging), Some((2, AccessToken::new("at2"))));
    assert_eq!(stored(&default), Some((1, AccessToken::new("at1"))));

    for bad in ["", "Prod_", "a-b", "x; DROP TABLE users; --", "1_"] {
        let error = db.store("app").with_table_prefix(bad).unwrap_err();
        assert!(matches!(error, SqlError::Setting(_)), "{bad}: {error:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Whose record a store holds
// ---------------------------------------------------------------------------------------------

/// Parts of a scope that would forge another's key if they were not encoded.
const TRICKY: &[&str] =
    &["", "a", "b", "a/b", "a/", "/b", "%", "%2F", "a%2Fb", "a b", "a\0b", "a\nb", "ü", "日本"];

#[test]
fn distinct_clients_and_users_never_share_or_open_a_record() {
    let db = Db::new();
    let mut stores = Vec::new();
    for client in TRICKY {
        let base = db.store(client);
        stores.push(db.store(client));
        for user in TRICKY {
            stores.push(base.for_user(user));
        }
    }
    let mut keys = std::collections::HashSet::new();
    for store in &stores {
        assert!(keys.insert(store.record_key()), "{store:?} shares a key");
    }
    for (n, store) in stores.iter().enumerate() {
        assert!(matches!(store.swap(0, &record(n as u32, 1)).unwrap(), Swap::Stored { .. }));
    }
    for (n, store) in stores.iter().enumerate() {
        assert_eq!(stored(store), Some((1, AccessToken::new(format!("at{n}")))), "{store:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------------

#[test]
fn the_database_files_hold_no_token_bytes_unless_plaintext_was_asked_for() {
    let db = Db::new();
    let store = db.store("client-c");
    let alice = store.for_user("alice");
    let mut claimed = Record::new(canaries(), 1);
    claimed.claim = Some(Claim::new("holder", Duration::from_secs(5)));
    assert!(matches!(alice.swap(0, &claimed).unwrap(), Swap::Stored { .. }));
    assert!(matches!(alice.swap(1, &Record::new(canaries(), 2)).unwrap(), Swap::Stored { .. }));
    assert_eq!(
        alice.load().unwrap().into_tokens().unwrap().access_token,
        AccessToken::new(CANARY_ACCESS)
    );
    // A dump, as `sqlite3 .dump` would write it, and the files themselves.
    let dump = db.dir.path().join("dump.db");
    db.raw().execute("VACUUM INTO ?1", params![dump.to_str().unwrap()]).unwrap();
    let bytes = db.bytes();
    assert!(bytes.len() > 4096, "the files were read");
    assert!(!contains(&bytes, CANARY_ACCESS), "an access token in the database");
    assert!(!contains(&bytes, CANARY_REFRESH), "a refresh token in the database");
    assert!(contains(&bytes, "alice"), "the check reads the rows");

    // The same check sees a plaintext store's tokens: it can fail.
    let plain = SqlStore::open_plaintext_insecure(Database::sqlite(db.path()), "client-plain");
    let plain = plain.unwrap();
    assert!(matches!(plain.swap(0, &Record::new(canaries(), 1)).unwrap(), Swap::Stored { .. }));
    assert!(contains(&db.bytes(), CANARY_REFRESH), "plaintext shows");
    let shown = format!("{store:?} {alice:?} {plain:?}");
    assert!(!shown.contains("canary"), "{shown}");
}

#[test]
fn a_row_copied_to_another_user_or_read_with_another_key_does_not_open_and_is_left_as_is() {
    let db = Db::new();
    let store = db.store("client-c");
    let alice = store.for_user("alice");
    assert!(matches!(alice.swap(0, &Record::new(canaries(), 1)).unwrap(), Swap::Stored { .. }));
    let value = raw_value(&db, &alice);
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

    // Another user, another client's alice, alice under another prefix, the client's own.
    let elsewhere = [
        store.for_user("bob"),
        db.store("client-z").for_user("alice"),
        store.for_user("alice").with_table_prefix("staging_").unwrap(),
        db.store("client-c"),
    ];
    for other in &elsewhere {
        other.migrate().unwrap();
        put_raw(&db, other, 1, &value);
        let error = other.load().unwrap_err();
        assert!(unauthentic(&error, &other.record_key()), "{other:?}: {error:?}");
        let shown = format!("{error} {error:?} {}", helloflex_core::Error::from(error.clone()));
        assert!(!shown.contains("canary"), "{shown}");
        assert_eq!(raw_value(&db, other), value, "left untouched");
        assert_eq!(other.swap(0, &record(1, 2)).unwrap(), Swap::Conflict, "not overwritten blind");
    }

    // Another key ring: an unknown key id, or the same id with other bytes.
    let open = |ring| SqlStore::open(Database::sqlite(db.path()), "client-c", ring).unwrap();
    let error = open(keys("k9", 1)).for_user("alice").load().unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError { kind: StoreErrorKind::DoesNotOpen(OpenError::UnknownKey), .. }
        ),
        "{error:?}"
    );
    let error = open(keys("k1", 9)).for_user("alice").load().unwrap_err();
    assert!(unauthentic(&error, &alice.record_key()), "{error:?}");

    // Tampered, truncated.
    let bob = store.for_user("bob");
    let mut tampered = value.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    put_raw(&db, &bob, 1, &tampered);
    assert!(unauthentic(&bob.load().unwrap_err(), &bob.record_key()));
    put_raw(&db, &bob, 1, &value[..10]);
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
    let db = Db::new();
    let old = db.store("client-d");
    assert!(matches!(old.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let ring =
        KeyRing::new(Key::new("k2", [2; 32]).unwrap()).with_older(Key::new("k1", [1; 32]).unwrap());
    let rotated = SqlStore::open(Database::sqlite(db.path()), "client-d", ring.clone()).unwrap();
    assert_eq!(stored(&rotated), Some((1, AccessToken::new("at1"))));
    assert!(!ring.is_current(&raw_value(&db, &rotated)));
    assert!(matches!(rotated.swap(1, &record(2, 2)).unwrap(), Swap::Stored { version: 2, .. }));
    assert!(ring.is_current(&raw_value(&db, &rotated)), "resealed under k2");
    assert!(old.load().is_err(), "the old ring alone no longer opens it");
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[test]
fn a_broken_record_is_a_typed_error_naming_no_value() {
    let db = Db::new();
    let sealed = db.store("client-f");
    sealed.migrate().unwrap();
    let plain = SqlStore::open_plaintext_insecure(Database::sqlite(db.path()), "client-f");
    let plain = plain.unwrap().for_user("plain");
    let malformed = |error: &StoreError| {
        matches!(error, StoreError { op: "read", kind: StoreErrorKind::Corrupt, .. })
    };
    let no_value = |error: &StoreError| {
        let shown = format!("{error} {error:?} {}", helloflex_core::Error::from(error.clone()));
        assert!(!shown.contains("canary"), "{shown}");
    };

    // A value that is not sealed, read by a sealed store; one that opens to no record.
    put_raw(&db, &sealed, 1, format!(r#"{{"access_token":"{CANARY_ACCESS}"}}"#).as_bytes());
    let error = sealed.load().unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError { kind: StoreErrorKind::DoesNotOpen(OpenError::NotSealed), .. }
        ),
        "{error:?}"
    );
    no_value(&error);
    put_raw(&db, &plain, 1, format!("not json {CANARY_ACCESS}").as_bytes());
    let error = plain.load().unwrap_err();
    assert!(malformed(&error), "{error:?}");
    no_value(&error);

    // A value column of another type (text where bytes belong): a typed error.
    db.raw()
        .execute(
            "UPDATE helloflex_tokens SET value = ?1 WHERE record_key = ?2",
            params![CANARY_ACCESS, sealed.record_key()],
        )
        .unwrap();
    let error = sealed.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::Refused, .. }),
        "{error:?}"
    );
    no_value(&error);
}

#[test]
fn an_unreachable_database_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such-directory").join("app.db");
    let store = SqlStore::open(Database::sqlite(&nowhere), "client-e", keys("k1", 1)).unwrap();
    let error = store.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::Unreachable, detail, .. } if detail.contains("cannot be reached")),
        "{error:?}"
    );
    assert!(matches!(
        store.swap(0, &record(1, 1)).unwrap_err(),
        StoreError { op: "write", kind: StoreErrorKind::Unreachable, .. }
    ));
    assert!(matches!(store.migrate().unwrap_err(), SqlError::Unreachable { .. }));
    assert!(!Path::new(&nowhere).exists());

    // A URL setting.
    assert!(Database::from_url("sqlite:/tmp/x.db").is_ok());
    let error = Database::from_url("mysql://root:hunter2@db/app").unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// Another connection holding the file's write lock (a long transaction of the application, a
/// hung process): a call costs the time-out, then fails typed; it goes on once the lock is
/// let go.
#[test]
fn a_lock_held_elsewhere_costs_the_timeout_not_a_hang() {
    let db = Db::new();
    let store = db.store("client-h").with_timeout(Duration::from_millis(300));
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let holder = db.raw();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (sender, answers) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn({
        let store = store.for_user("alice");
        move || {
            let _ = sender.send(store.load().map(|_| ()));
            let _ = sender.send(store.swap(0, &record(2, 1)).map(|_| ()));
        }
    });
    for _ in 0..2 {
        let answer = answers.recv_timeout(Duration::from_secs(10)).expect("a call hung");
        let error = answer.unwrap_err();
        let timed_out = matches!(&error, StoreError { detail, .. } if detail.contains("timed out"));
        assert!(timed_out && error.is_transient(), "{error:?}");
    }
    waiting.join().unwrap();

    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(stored(&store), Some((1, AccessToken::new("at1"))));
    assert_eq!(stored(&store.for_user("alice")), None, "the timed-out write did not land");
}
