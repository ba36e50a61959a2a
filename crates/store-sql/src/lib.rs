//! A token store in the application's own SQL database: SQLite embedded by default,
//! PostgreSQL (feature `postgres`) for a fleet of processes on several hosts. Users' tokens
//! (Flextell's authorization-code grant, one record per user) or a client's own token (client
//! credentials) live in one row each, sealed with the [`KeyRing`].
//!
//! The store keeps the protocol of the Redis store (`helloflex-store-redis`, and
//! `docs/fleet.md`, which walks through it): the database holds one record per client and user
//! and knows two steps, read it and compare-and-swap it on its version. Everything the
//! instances agree on lives inside the sealed record: the tokens, the write-ahead **claim** of
//! the instance spending the refresh token now (taken over only after another instance watched
//! it unchanged for the holder's whole budget: no time-to-live a stalled holder could lose it
//! by), the **tombstone** of a refused refresh token, and the authorizations already completed.
//! Beside each record, an **epoch** row tells how long the data has been kept without a loss
//! (a record deleted, a server restarted or replaced, a database rolled back): while it is
//! young, no refresh token is presented, so live instances can write back newer tokens first.
//!
//! ```
//! use std::sync::Arc;
//! use helloflex_auth::{Key, KeyRing, Record, StoredTokens, Swap, TokenStore};
//! use helloflex_store_sql::{Database, SqlStore};
//!
//! let dir = tempfile::tempdir()?;
//! // The key ring every instance shares (in production: `KeyRing::from_env` or `from_file`).
//! let keys = KeyRing::new(Key::generate("k1")?);
//! // The application's database file; the store's tables are created on first use.
//! let store = SqlStore::open(Database::sqlite(dir.path().join("app.db")), "my-client-id", keys)?;
//! // One store per user, sharing the connections: hand it to the client builder as the user's
//! // token store (an `Arc<dyn TokenStore>`).
//! let alice: Arc<dyn TokenStore> = Arc::new(store.for_user("alice"));
//!
//! assert!(alice.load()?.record.is_none());
//! let tokens: StoredTokens = serde_json::from_str(
//!     r#"{"access_token":"at","refresh_token":"rt","expires_at_unix_ms":4000000000000}"#,
//! )?;
//! // Writes are compare-and-swap on the version read (0: nothing stored yet).
//! assert!(matches!(alice.swap(0, &Record::new(tokens.clone(), 1))?, Swap::Stored { version: 1, .. }));
//! assert_eq!(alice.swap(0, &Record::new(tokens, 2))?, Swap::Conflict);
//! assert_eq!(alice.load()?.record.map(|r| r.version), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The tables
//!
//! The store owns three tables, `<prefix>token_schema`, `<prefix>tokens` and
//! `<prefix>token_epochs` (prefix `helloflex_` unless [`SqlStore::with_table_prefix`] says
//! otherwise), described in [`SCHEMA_VERSION`]'s module ([`schema`]). It creates them on first
//! use, or when [`SqlStore::migrate`] is called (from a deployment step, with
//! [`SqlStore::migrate_on_first_use`] turned off), and touches nothing else in the database. A
//! database whose tables are older than this SDK's is upgraded by `migrate` (or on first use);
//! one whose tables are newer is refused ([`SqlError::SchemaTooNew`]), never written.
//!
//! # How each step maps to SQL
//!
//! - **Read** and **compare-and-swap** are one transaction each. It first locks the record's
//!   epoch row (PostgreSQL: `INSERT ... ON CONFLICT DO NOTHING` then `SELECT ... FOR UPDATE`,
//!   at `READ COMMITTED`; SQLite: `BEGIN IMMEDIATE`, the file's write lock), so the steps of
//!   every instance on one record are serialised; then reads the record, applies the epoch rule
//!   and, for a swap, writes the new row only if the stored version is the expected one
//!   (`UPDATE ... WHERE version = $expected`, or an insert when none was expected) and the new
//!   version is higher.
//! - **Versions** are the writer's (a new sign-in writes the wall clock in milliseconds), any
//!   `u64`, stored in a signed 64-bit column and compared exactly.
//! - **The epoch** (see [`Loaded::epoch_age`]): a new one starts, at the database's clock, when
//!   the epoch row names another server run (PostgreSQL: the postmaster's start time, so a
//!   restart, a restore or a failover to a replica shows), when the record it saw is gone
//!   (deleted by anyone), when the database's clock is behind the epoch's start, or when this
//!   store object finds a version lower than one it saw since the epoch began (a database
//!   restored from a backup under running instances).
//!
//! # Security
//!
//! Every value is the whole record sealed with XChaCha20-Poly1305 under the key ring's active
//! key, bound to the record's scope (the table prefix, the client and the user), so a value
//! copied to another user's row, another client's or another prefix's does not open. Neither
//! the database, its journal, nor a dump holds a token byte; plaintext is only by
//! [`SqlStore::open_plaintext_insecure`]. No error, `Debug` output or log line names a token,
//! a row's value or a database password.
//!
//! [`Loaded::epoch_age`]: helloflex_auth::Loaded::epoch_age

mod error;
#[cfg(feature = "postgres")]
mod postgres;
mod protocol;
pub mod schema;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::{
    KeyRing, Loaded, Record, RecordScope, RecordSealing, StoreError, Swap, TokenStore,
};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

pub use crate::error::SqlError;
use crate::protocol::{Found, Row, Tx, Watermark};
pub use crate::schema::SCHEMA_VERSION;
use crate::schema::Tables;

/// The table prefix unless [`SqlStore::with_table_prefix`] says otherwise.
pub const DEFAULT_TABLE_PREFIX: &str = "helloflex_";

/// What a part of a record key encodes: `/` separates the client from the user, `%` escapes,
/// and control characters (PostgreSQL's text holds no NUL) are kept out of the column.
const PART: &AsciiSet = &CONTROLS.add(b'/').add(b'%');

/// Which database, and where: nothing is opened until a store uses it.
#[derive(Clone)]
pub struct Database(Kind);

#[derive(Clone)]
enum Kind {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres {
        url: zeroize::Zeroizing<String>,
        /// Certificate authorities (PEM) trusted beside the system's.
        roots: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            // Not the address: it may carry a password.
            #[cfg(feature = "postgres")]
            Kind::Postgres { .. } => f.write_str("Postgres"),
        }
    }
}

impl Database {
    /// The SQLite database in the file at `path` (created, readable by its owner only, if it
    /// does not exist; its directory must). It may be the application's own database: the
    /// store adds its tables and touches nothing else. Every process on the host that opens
    /// the same file shares the records.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self(Kind::Sqlite(path.into()))
    }

    /// The PostgreSQL database at `url` (`postgres://user:password@host:port/dbname`, or
    /// libpq's `key=value` form). The tables go to the first schema of the connection's
    /// `search_path` (`?options=-csearch_path%3Dmyschema` to choose one).
    ///
    /// **TLS** (rustls, the server's certificate checked against the system's certificate
    /// authorities and any given to [`Database::with_root_certificates`]): required for a
    /// server on another host unless the URL says `sslmode=disable`; for one on this host
    /// (loopback, `localhost`, a Unix socket) used when the server offers it, as libpq's
    /// `sslmode=prefer`; `sslmode=require` asks for it anywhere. No client certificates.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: &str) -> Self {
        Self(Kind::Postgres { url: zeroize::Zeroizing::new(url.to_owned()), roots: None })
    }

    /// Trusts the certificate authorities in `pem` (one or more PEM certificates) beside the
    /// system's, for a PostgreSQL server whose certificate a private CA signed. Checked when a
    /// store opens the database.
    #[cfg(feature = "postgres")]
    pub fn with_root_certificates(mut self, pem: &[u8]) -> Self {
        if let Kind::Postgres { roots, .. } = &mut self.0 {
            *roots = Some(pem.to_vec());
        }
        self
    }

    /// The database a URL names, for a setting: `sqlite:<path>` (or `sqlite://<path>`), or
    /// `postgres://...` / `postgresql://...` (with the `postgres` feature).
    pub fn from_url(url: &str) -> Result<Self, SqlError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            return Ok(Self::sqlite(path));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Self::postgres(url));
            #[cfg(not(feature = "postgres"))]
            return Err(SqlError::Setting(
                "PostgreSQL needs the `postgres` feature of helloflex-store-sql".into(),
            ));
        }
        // Not quoted back: it may carry a password.
        Err(SqlError::Setting("not a sqlite: or postgres:// database URL".into()))
    }
}

/// The database behind a store, shared by the store and every per-user store made from it.
#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Postgres>),
}

impl Backend {
    fn transaction<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        step: impl FnOnce(&mut dyn Tx) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        match self {
            Backend::Sqlite(db) => db.transaction(op, timeout, step),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.transaction(op, timeout, false, step),
        }
    }

    fn migrate(&self, t: &Tables, timeout: Duration) -> Result<u32, SqlError> {
        match self {
            Backend::Sqlite(db) => db.migrate(t, timeout),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.migrate(t, timeout),
        }
    }

    /// Notices a database that changed under the idle connections (SQLite: a file replaced).
    fn refresh(&self) {
        match self {
            Backend::Sqlite(db) => db.refresh(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => {}
        }
    }

    /// Forgets that the tables under `prefix` were checked, and the idle connections (whose
    /// prepared statements name the tables that went).
    fn tables_gone(&self, prefix: &str) {
        self.ensured().remove(prefix);
        match self {
            Backend::Sqlite(_) => {}
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.close_idle(),
        }
    }

    fn ensured(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        match self {
            Backend::Sqlite(db) => db.ensured(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.ensured(),
        }
    }
}

/// A token store in a SQL database (see the crate docs).
pub struct SqlStore {
    backend: Arc<Backend>,
    tables: Tables,
    scope: RecordScope,
    sealing: RecordSealing,
    timeout: Duration,
    migrate_on_first_use: bool,
    /// The last version this store saw stored (not shared with the stores `for_user` makes:
    /// each has its own record).
    seen: Watermark,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &self.backend)
            .field("table", &self.tables.tokens)
            .field("record_key", &self.record_key())
            .field("encrypted", &self.sealing.is_sealed())
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// A store for `client_id`'s tokens in `database`, sealed with `keys`. Nothing is opened
    /// until the store is used; the tables are created then (see
    /// [`SqlStore::migrate_on_first_use`]).
    pub fn open(database: Database, client_id: &str, keys: KeyRing) -> Result<Self, SqlError> {
        Self::with_sealing(database, client_id, RecordSealing::Sealed(Arc::new(keys)))
    }

    /// A store that writes tokens **in clear**: anyone who can read the database, a replica, a
    /// dump or a backup of it can use the refresh token. Prefer [`SqlStore::open`].
    pub fn open_plaintext_insecure(database: Database, client_id: &str) -> Result<Self, SqlError> {
        Self::with_sealing(database, client_id, RecordSealing::Plaintext)
    }

    fn with_sealing(
        database: Database,
        client_id: &str,
        sealing: RecordSealing,
    ) -> Result<Self, SqlError> {
        let backend = match database.0 {
            Kind::Sqlite(path) => Backend::Sqlite(sqlite::Sqlite::new(path)),
            #[cfg(feature = "postgres")]
            Kind::Postgres { url, roots } => {
                Backend::Postgres(Box::new(postgres::Postgres::new(&url, roots.as_deref())?))
            }
        };
        let tables = Tables::new(DEFAULT_TABLE_PREFIX)?;
        Ok(Self {
            backend: Arc::new(backend),
            scope: RecordScope::new(client_id).in_namespace(&tables.prefix),
            tables,
            sealing,
            timeout: Duration::from_secs(2),
            migrate_on_first_use: true,
            seen: Watermark::default(),
        })
    }

    /// The store for one user's tokens (authorization-code grant): the same database,
    /// connections and settings, another row. The user is part of the row's key and of what
    /// its value is sealed to, whatever else is set before or after.
    pub fn for_user(&self, user_id: &str) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            tables: self.tables.clone(),
            scope: self.scope.clone().for_user(user_id),
            sealing: self.sealing.clone(),
            timeout: self.timeout,
            migrate_on_first_use: self.migrate_on_first_use,
            seen: Watermark::default(),
        }
    }

    /// Names the tables `<prefix>tokens`, `<prefix>token_epochs` and `<prefix>token_schema`
    /// (default `helloflex_`): lower-case ASCII letters, digits and underscores, not starting
    /// with a digit, at most 40 bytes. The prefix is part of what values are sealed to (a row
    /// copied between prefixes does not open); the user, if any, stays.
    pub fn with_table_prefix(mut self, prefix: &str) -> Result<Self, SqlError> {
        self.tables = Tables::new(prefix)?;
        self.scope = self.scope.in_namespace(prefix);
        self.seen = Watermark::default();
        Ok(self)
    }

    /// Time limit of connecting, of waiting for a lock and of each statement (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(helloflex_core::machines::FAR_FUTURE);
        self
    }

    /// Whether the first call of this process creates or upgrades the tables (default `true`).
    /// Turned off, the first call only checks the schema version, and fails with
    /// [`SqlError::SchemaTooOld`] until [`SqlStore::migrate`] has run (from a deployment step,
    /// with a role allowed to create tables, for example).
    pub fn migrate_on_first_use(mut self, migrate: bool) -> Self {
        self.migrate_on_first_use = migrate;
        self
    }

    /// Creates the tables, or upgrades them to [`SCHEMA_VERSION`], in one transaction (several
    /// processes may call it at once: one migrates, the others find it done). Returns the
    /// version found before (0: none). A database at a newer version is refused
    /// ([`SqlError::SchemaTooNew`]) and left as it is.
    pub fn migrate(&self) -> Result<u32, SqlError> {
        let found = self.backend.migrate(&self.tables, self.timeout)?;
        self.backend.ensured().insert(self.tables.prefix.clone());
        Ok(found)
    }

    /// The schema version of the tables in the database (0: none yet), changing nothing.
    pub fn schema_version(&self) -> Result<u32, SqlError> {
        let tables = &self.tables;
        self.backend
            .transaction("schema check", self.timeout, |tx| protocol::schema_version(tx, tables))
    }

    /// Runs `step` in one transaction on tables known to be there: checked (or migrated) once
    /// per process and prefix, and again if they turn out to be gone (dropped, or the database
    /// replaced by an empty one), when the step is tried once more. Without that second look,
    /// a process that made the tables once would fail every call until restarted.
    fn step<T>(
        &self,
        op: &'static str,
        mut step: impl FnMut(&mut dyn Tx) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.ensure_schema()?;
        match self.backend.transaction(op, self.timeout, &mut step) {
            Err(SqlError::TablesGone { .. }) => {
                self.backend.tables_gone(&self.tables.prefix);
                self.ensure_schema()?;
                self.backend.transaction(op, self.timeout, &mut step)
            }
            other => other,
        }
    }

    /// Migrates (or checks, see [`SqlStore::migrate_on_first_use`]) once per process and
    /// prefix.
    fn ensure_schema(&self) -> Result<(), SqlError> {
        self.backend.refresh();
        if self.backend.ensured().contains(&self.tables.prefix) {
            return Ok(());
        }
        if self.migrate_on_first_use {
            self.migrate()?;
        } else {
            protocol::check(self.schema_version()?)?;
            self.backend.ensured().insert(self.tables.prefix.clone());
        }
        Ok(())
    }

    /// Whose record this store holds (its namespace is the table prefix).
    pub fn scope(&self) -> &RecordScope {
        &self.scope
    }

    /// The record's primary key in the tokens table: the client id, then `/` and the user id
    /// for a user's record, each percent-encoded where it holds `/`, `%` or a control
    /// character.
    pub fn record_key(&self) -> String {
        let client = utf8_percent_encode(self.scope.client_id(), PART);
        match self.scope.user() {
            Some(user) => format!("{client}/{}", utf8_percent_encode(user, PART)),
            None => client.to_string(),
        }
    }

    /// The tokens table's name.
    pub fn table(&self) -> &str {
        &self.tables.tokens
    }

    /// The SQLite file, if the database is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::Sqlite(db) => Some(db.path()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }

    /// Who claims the refresh token now (its holder's name: process id and a random part), for
    /// diagnostics.
    pub fn claim_holder(&self) -> Result<Option<String>, StoreError> {
        Ok(self.load()?.record.and_then(|r| r.claim).map(|c| c.holder))
    }

    /// Deletes the record and its epoch row, leaving nothing of this user id behind. The
    /// next read starts a new epoch (a loss): for its grace period no refresh token is
    /// presented, and instances that hold tokens write them back, the newest winning. To sign
    /// a user out everywhere, revoke the grant at the server.
    pub fn delete(&self) -> Result<(), StoreError> {
        let (tables, key) = (&self.tables, self.record_key());
        self.step("delete", |tx| protocol::delete(tx, tables, &key))
            .map_err(|e| e.during("delete"))?;
        self.seen.set(None);
        Ok(())
    }
}

fn age(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl TokenStore for SqlStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let (tables, key) = (&self.tables, self.record_key());
        let Found { record, epoch_age_ms, now_ms } = self
            .step("read", |tx| protocol::load(tx, tables, &key, &self.seen))
            .map_err(|e| e.during("read"))?;
        let version = record.as_ref().map_or(Record::NOTHING_STORED, |(version, _)| *version);
        self.seen.set(Some((version, now_ms)));
        let record = match record {
            Some((version, value)) => {
                Some(self.sealing.decode(value, version, &self.scope, || self.record_key())?)
            }
            None => None,
        };
        Ok(Loaded::new(record).with_epoch_age(age(epoch_age_ms)))
    }

    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
        let value = zeroize::Zeroizing::new(self.sealing.encode(new, &self.scope)?);
        let key = self.record_key();
        let client = utf8_percent_encode(self.scope.client_id(), PART).to_string();
        let user = self.scope.user().map(|u| utf8_percent_encode(u, PART).to_string());
        let mut row = Row {
            key: &key,
            client_id: &client,
            user_id: user.as_deref(),
            version: protocol::to_column(new.version),
            value: &value,
            now_ms: 0,
        };
        let tables = &self.tables;
        let swapped = self
            .step("write", |tx| protocol::swap(tx, tables, expected, &mut row, &self.seen))
            .map_err(|e| e.during("write"))?;
        self.seen.set(Some((swapped.version, swapped.now_ms)));
        Ok(if swapped.stored {
            Swap::Stored { version: new.version, epoch_age: Some(age(swapped.epoch_age_ms)) }
        } else {
            Swap::Conflict
        })
    }
}
