//! The SQL store on a real PostgreSQL server (initdb'd in a temporary directory, on a free
//! loopback port): the same contract as on SQLite (`sqlite_store.rs`), and what only a server
//! does: concurrent writers serialised by the epoch row's lock, a restart or a restore from a
//! backup starting a new epoch, a hung server costing the time-out, a restarted one
//! reconnected, and errors naming no password.

use std::time::Duration;

use helloflex_auth::{Claim, OpenError, Record, StoreError, StoreErrorKind, Swap, TokenStore};
use helloflex_core::AccessToken;
use helloflex_store_sql::{Database, SCHEMA_VERSION, SqlError, SqlStore};
use helloflex_testkit::PgServer;
use helloflex_testkit::contract::*;
use helloflex_testkit::free_port;

fn open(server: &PgServer, client: &str) -> SqlStore {
    SqlStore::open(Database::postgres(&server.url()), client, keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_secs(5))
}

/// One server for the contract tests (each on its own client id).
#[test]
fn the_store_contract_holds_on_postgresql() {
    let server = PgServer::start();

    // The contract every store keeps (`helloflex_testkit::contract`).
    let store = open(&server, "client-a");
    compare_and_swap(&store);
    every_u64_version(&open(&server, "client-big"));
    let user = || open(&server, "client-b").for_user("u");
    whole_record_and_fencing(&user(), &user());
    open(&server, "client-c").migrate().unwrap();
    racing_writers(|| {
        std::sync::Arc::new(open(&server, "client-c").with_timeout(Duration::from_secs(10)))
    });

    // The schema: created in the database, versioned, the rows findable by client and user.
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        server.sql(
            "SELECT client_id || ' ' || coalesce(user_id, '-') FROM helloflex_tokens ORDER BY 1"
        ),
        "client-a -\nclient-b u\nclient-big -\nclient-c -"
    );
    assert_eq!(
        server.sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'helloflex_tokens' AND column_name = 'value'"),
        "bytea"
    );
}

#[test]
fn epochs_grow_and_a_loss_restart_restore_or_tables_dropped_starts_a_new_one() {
    let mut server = PgServer::start();
    let store = open(&server, "client-a");
    let first = epoch(&store);
    assert!(first < YOUNG, "{first:?}");

    // A record deleted by an operator.
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);
    server.sql("DELETE FROM helloflex_tokens");
    let loaded = open(&server, "client-a").load().unwrap();
    assert!(loaded.record.is_none());
    assert!(loaded.epoch_age.unwrap() < YOUNG.min(old), "a new epoch after a delete");
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));

    // The server's clock behind the epoch's start.
    let old = grown_epoch(&store);
    server.sql("UPDATE helloflex_token_epochs SET since_ms = since_ms + 3600000");
    let age = epoch(&store);
    assert!(age < YOUNG.min(old), "a new epoch after a clock step: {age:?}");

    // A restart keeps the record, in a new epoch; pooled connections reconnect.
    let old = grown_epoch(&store);
    server.restart();
    let loaded = store.load().unwrap();
    assert!(loaded.epoch_age.unwrap() < YOUNG.min(old), "a new epoch after a restart");
    assert_eq!(loaded.record.map(|r| r.version), Some(1));

    // A restore from a backup: the older record back, in a new epoch, for every store.
    let backup = server.backup();
    assert!(matches!(store.swap(1, &record(2, 2)).unwrap(), Swap::Stored { .. }));
    let old = grown_epoch(&store);
    server.restore(&backup);
    let never_saw_2 = open(&server, "client-a");
    for reader in [&never_saw_2, &store] {
        let loaded = reader.load().unwrap();
        assert!(loaded.epoch_age.unwrap() < YOUNG.min(old), "a new epoch after a restore");
        assert_eq!(loaded.record.map(|r| r.version), Some(1), "the backup's record");
    }
    assert_eq!(store.swap(2, &record(3, 3)).unwrap(), Swap::Conflict, "from the lost version");
    let (version, age) = stored_at(store.swap(1, &record(3, 3)).unwrap());
    assert_eq!(version, 3);
    assert!(age < old);

    // The tables dropped under the store that made them (a schema reset, a database replaced
    // by an empty one): made again, the record a loss in a new epoch, a write-back lands.
    let old = grown_epoch(&store);
    server.sql("DROP TABLE helloflex_tokens, helloflex_token_epochs, helloflex_token_schema");
    let loaded = store.load().unwrap();
    assert!(loaded.record.is_none());
    assert!(loaded.epoch_age.unwrap() < YOUNG.min(old), "a new epoch after the tables went");
    assert_eq!(stored_at(store.swap(0, &record(4, 7)).unwrap()).0, 7);
}

#[test]
fn no_token_bytes_reach_the_database_and_a_row_copied_to_another_user_does_not_open() {
    let server = PgServer::start();
    let store = open(&server, "client-c");
    let alice = store.for_user("alice");
    let mut claimed = Record::new(tokens_named(CANARY_ACCESS, CANARY_REFRESH), 1);
    claimed.claim = Some(Claim::new("holder", Duration::from_secs(5)));
    assert!(matches!(alice.swap(0, &claimed).unwrap(), Swap::Stored { .. }));

    // Every table's rows as text, and the server's files after a checkpoint.
    let hex = |text: &str| text.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let dump = server.sql(
        "SELECT string_agg(encode(convert_to(record_key, 'UTF8'), 'hex') || encode(value, 'hex'), '') \
         FROM helloflex_tokens",
    );
    assert!(dump.contains(&hex("alice")), "the check reads the rows");
    assert!(!dump.contains(&hex(CANARY_ACCESS)) && !dump.contains(&hex(CANARY_REFRESH)));
    server.sql("CHECKPOINT");
    let mut files = Vec::new();
    let mut dirs = vec![server.data_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.extend(bytes);
            }
        }
    }
    let contains = |needle: &str| files.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("client-c/alice"), "the check reads the files");
    assert!(!contains(CANARY_ACCESS) && !contains(CANARY_REFRESH), "a token in the files");

    // The sealed value copied to bob's row (and to another prefix's table) does not open there.
    let bob = store.for_user("bob");
    let staging = store.for_user("alice").with_table_prefix("staging_").unwrap();
    for (other, table) in [(&bob, "helloflex_tokens"), (&staging, "staging_tokens")] {
        other.migrate().unwrap();
        server.sql(&format!(
            "INSERT INTO {table} (record_key, client_id, user_id, version, value, updated_at_ms) \
             SELECT '{}', client_id, user_id, 1, value, 0 FROM helloflex_tokens \
             WHERE record_key = 'client-c/alice'",
            other.record_key()
        ));
        let error = other.load().unwrap_err();
        assert!(
            matches!(
                &error,
                StoreError { kind: StoreErrorKind::DoesNotOpen(OpenError::Unauthentic), .. }
            ),
            "{error:?}"
        );
        assert!(!format!("{error} {error:?}").contains("canary"));
        assert_eq!(other.swap(0, &record(1, 2)).unwrap(), Swap::Conflict, "not overwritten blind");
    }
    let shown = format!("{store:?} {alice:?}");
    assert!(!shown.contains("canary") && !shown.contains("hunter2"), "{shown}");
}

#[test]
fn a_schema_newer_than_this_sdk_is_refused_and_the_applications_tables_are_left_alone() {
    let server = PgServer::start();
    server.sql("CREATE TABLE users (id serial PRIMARY KEY, name text); INSERT INTO users (name) VALUES ('alice')");
    let store = open(&server, "client-a");
    let manual = open(&server, "client-a").migrate_on_first_use(false);
    let error = manual.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { kind: StoreErrorKind::SchemaMismatch, detail, .. } if detail.contains("version 0")),
        "{error:?}"
    );
    assert_eq!(store.migrate().unwrap(), 0);
    // Several instances migrating at once: one does it, the others find it done.
    let found: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|n| {
                let server = &server;
                s.spawn(move || {
                    open(server, "c")
                        .with_table_prefix(&format!("p{n}_"))
                        .unwrap()
                        .migrate()
                        .unwrap();
                    open(server, "c").with_table_prefix("shared_").unwrap().migrate().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(found.iter().filter(|v| **v == 0).count(), 1, "{found:?}");

    server.sql(&format!("UPDATE helloflex_token_schema SET version = {}", SCHEMA_VERSION + 1));
    let fresh = open(&server, "client-a");
    let expected = SqlError::SchemaTooNew { found: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION };
    assert_eq!(fresh.migrate().unwrap_err(), expected);
    let error = fresh.swap(0, &record(1, 1)).unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "write", kind: StoreErrorKind::SchemaMismatch, .. }),
        "{error:?}"
    );
    assert!(!error.is_transient(), "a newer schema stays newer: asking again does not help");
    assert_eq!(server.sql("SELECT count(*) FROM helloflex_tokens"), "0");
    assert_eq!(server.sql("SELECT name FROM users"), "alice");
}

#[test]
fn an_unreachable_or_hung_server_is_a_typed_error_in_the_timeout_naming_no_password() {
    let nowhere = format!("postgres://app:hunter2-password@127.0.0.1:{}/app", free_port());
    let store = SqlStore::open(Database::postgres(&nowhere), "client-e", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let error = store.load().unwrap_err();
    assert!(
        matches!(&error, StoreError { op: "read", kind: StoreErrorKind::Unreachable, .. }),
        "{error:?}"
    );
    let shown =
        format!("{error} {error:?} {store:?} {}", helloflex_core::Error::from(error.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(matches!(store.migrate().unwrap_err(), SqlError::Unreachable { .. }));
    let error = SqlStore::open(Database::postgres("postgres://a:hunter2@[::1"), "c", keys("k1", 1))
        .unwrap_err();
    assert!(!format!("{error} {error:?}").contains("hunter2"));

    // A hung server (every process stopped): a pooled connection and a new one, a read and a
    // write, each costs the time-out.
    let server = PgServer::start();
    let store = open(&server, "client-h").with_timeout(Duration::from_millis(500));
    assert!(matches!(store.swap(0, &record(1, 1)).unwrap(), Swap::Stored { .. }));
    server.pause();
    let (sender, answers) = std::sync::mpsc::channel();
    let hung = std::thread::spawn({
        let (store, other) =
            (store.for_user("alice"), open(&server, "x").with_timeout(Duration::from_millis(500)));
        move || {
            let _ = sender.send(store.load().map(|_| ()));
            let _ = sender.send(other.swap(0, &record(3, 1)).map(|_| ()));
        }
    });
    for _ in 0..2 {
        let Ok(answer) = answers.recv_timeout(Duration::from_secs(10)) else {
            server.resume();
            panic!("a store call hung on a paused server");
        };
        let error = answer.unwrap_err();
        assert!(
            matches!(&error, StoreError { detail, .. } if detail.contains("timed out"))
                && error.is_transient(),
            "{error:?}"
        );
    }
    hung.join().unwrap();
    server.resume();
    assert_eq!(stored(&store), Some((1, AccessToken::new("at1"))));
}

/// TLS: a server whose certificate a private CA signed, trusted through
/// `Database::with_root_certificates`, keeps the contract over an encrypted connection (the
/// server's `pg_stat_ssl` says so); without the CA, or asking TLS of a server that has none,
/// a typed error that names no password.
#[test]
fn tls_to_a_server_a_private_ca_signed_and_typed_errors_without_it() {
    let tls = helloflex_testkit::tls::loopback_tls();
    let server = PgServer::start_tls(&tls.cert, &tls.key);
    let url = format!("{}?sslmode=require", server.url());

    let database = Database::postgres(&url).with_root_certificates(tls.ca.as_bytes());
    let store = SqlStore::open(database, "client-tls", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    compare_and_swap(&store);
    let encrypted = server.sql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.ssl AND a.application_name <> 'psql'",
    );
    assert!(encrypted.parse::<u32>().unwrap() >= 1, "the store's connection: {encrypted}");

    let untrusted = SqlStore::open(Database::postgres(&url), "client-tls", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let error = untrusted.load().unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Unreachable, "{error:?}");
    assert!(!format!("{error:?}{error}").contains("hunter2"), "{error}");

    let plain = PgServer::start();
    let url = format!("{}?sslmode=require", plain.url());
    let error = SqlStore::open(Database::postgres(&url), "client-tls", keys("k1", 1))
        .unwrap()
        .with_timeout(Duration::from_secs(5))
        .load()
        .unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::Unreachable, "{error:?}");

    let bad = Database::postgres(&server.url()).with_root_certificates(b"not a certificate");
    assert!(matches!(SqlStore::open(bad, "c", keys("k1", 1)), Err(SqlError::Setting(_))));
}
