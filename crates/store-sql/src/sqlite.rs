//! SQLite: a file beside (or inside) the application's database, opened through rusqlite.
//!
//! Every step is one `BEGIN IMMEDIATE` transaction: it takes the file's write lock at its start
//! (waiting for it at most the store's time-out), so steps of every process on the file are
//! serialised and a step never meets a write lock it cannot upgrade to. Connections are opened
//! with `synchronous = FULL` (a commit is on disk before it is acknowledged, in WAL mode too);
//! the journal mode is the application's (the store never changes it).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use helloflex_auth::{Clock, SystemClock};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::SqlError;
use crate::protocol::{self, Epoch, Row, Tx};
use crate::schema::{Dialect, SCHEMA_VERSION, Tables};

/// Idle connections kept for reuse.
const IDLE_KEPT: usize = 4;

/// SQLite has no server that could restart under the file: its run never changes (a loss shows
/// as a record gone, tables gone, or a version lower than one this store saw).
const RUN: &str = "sqlite";

pub(crate) struct Sqlite {
    path: PathBuf,
    /// Idle connections, each with the identity of the file it opened.
    idle: Mutex<Vec<(Connection, Option<FileId>)>>,
    /// The prefixes whose tables were checked or migrated by this process.
    ensured: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Sqlite {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, idle: Mutex::default(), ensured: Mutex::default() }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub(crate) fn ensured(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ensured.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notices a database file deleted or replaced (renamed over) since the idle connections
    /// opened it: they would go on reading and writing the old file, which no other process
    /// sees. They are closed, and the tables are checked again (a new file has none: the next
    /// call creates them, in a new epoch).
    pub(crate) fn refresh(&self) {
        let now = file_id(&self.path);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.iter().any(|(_, id)| *id != now) {
            idle.clear();
            drop(idle);
            self.ensured().clear();
        }
    }

    fn connect(&self) -> Result<Connection, SqlError> {
        create_private(&self.path);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(&self.path, flags).map_err(|e| SqlError::Unreachable {
                reason: format!("{} cannot be opened: {}", self.path.display(), describe(&e)),
            })?;
        connection.pragma_update(None, "synchronous", "FULL").map_err(failed("connect"))?;
        Ok(connection)
    }

    /// Runs `step` in one `BEGIN IMMEDIATE` transaction, committed if it succeeds. A
    /// connection that failed is closed (rolling back whatever it had begun), not kept.
    pub(crate) fn transaction<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        step: impl FnOnce(&mut dyn Tx) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let (connection, id) = match idle {
            Some(idle) => idle,
            None => {
                let connection = self.connect()?;
                (connection, file_id(&self.path))
            }
        };
        connection.busy_timeout(timeout).map_err(failed(op))?;
        connection.execute_batch("BEGIN IMMEDIATE").map_err(failed(op))?;
        let mut tx = SqliteTx { connection: &connection };
        let value = step(&mut tx)?;
        connection.execute_batch("COMMIT").map_err(failed(op))?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_KEPT {
            idle.push((connection, id));
        }
        Ok(value)
    }

    pub(crate) fn migrate(&self, t: &Tables, timeout: Duration) -> Result<u32, SqlError> {
        // `BEGIN IMMEDIATE` serialises migrations of every process too.
        self.transaction("migrate", timeout, |tx| {
            let (now, _) = tx.clock()?;
            protocol::migrate(tx, t, Dialect::Sqlite, now)
        })
    }
}

/// Which file a path names now (device and inode on Unix), if it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

fn file_id(path: &std::path::Path) -> Option<FileId> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId(metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        // Elsewhere only a file that disappeared is noticed.
        let _ = metadata;
        Some(FileId(0, 0))
    }
}

/// Creates the database file readable by its owner only, if it does not exist yet (SQLite
/// gives its journal and WAL files the database file's mode). An existing file (the
/// application's database) keeps its mode; a failure here is left for SQLite to report.
fn create_private(path: &std::path::Path) {
    if path.exists() {
        return;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = options.open(path);
}

struct SqliteTx<'c> {
    connection: &'c Connection,
}

fn failed(op: &'static str) -> impl Fn(rusqlite::Error) -> SqlError {
    move |e| {
        let reason = describe(&e);
        // SQLite names no error code for these: its message is the one stable sign.
        let gone = matches!(
            &e,
            rusqlite::Error::SqliteFailure(_, Some(m))
                if m.starts_with("no such table") || m.starts_with("no such column")
        );
        if gone { SqlError::TablesGone { reason } } else { SqlError::Database { op, reason } }
    }
}

/// A rusqlite error as a reason: SQLite's error class and message, which name no bound value.
fn describe(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(failure.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
        {
            "timed out waiting for the database's lock (another connection holds it)".into()
        }
        rusqlite::Error::SqliteFailure(failure, Some(message)) => {
            format!("{:?}: {message}", failure.code)
        }
        rusqlite::Error::SqliteFailure(failure, None) => format!("{:?}", failure.code),
        other => other.to_string(),
    }
}

impl Tx for SqliteTx<'_> {
    fn clock(&mut self) -> Result<(i64, String), SqlError> {
        // The database's clock is this host's (every process on the file shares it).
        let now = SystemClock.wall().duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok((i64::try_from(now.as_millis()).unwrap_or(i64::MAX), RUN.to_owned()))
    }

    fn lock_epoch(&mut self, t: &Tables, key: &str) -> Result<Epoch, SqlError> {
        // The write lock is the transaction's already; the empty row makes both databases
        // read the same thing for a record never seen.
        let c = self.connection;
        c.execute(
            &format!(
                "INSERT INTO {} (record_key, run, since_ms, held) VALUES (?1, '', 0, FALSE) \
                 ON CONFLICT (record_key) DO NOTHING",
                t.epochs
            ),
            params![key],
        )
        .map_err(failed("epoch"))?;
        c.query_row(
            &format!("SELECT run, since_ms, held FROM {} WHERE record_key = ?1", t.epochs),
            params![key],
            |r| Ok(Epoch { run: r.get(0)?, since_ms: r.get(1)?, held: r.get(2)? }),
        )
        .map_err(failed("epoch"))
    }

    fn put_epoch(&mut self, t: &Tables, key: &str, e: &Epoch) -> Result<(), SqlError> {
        self.connection
            .execute(
                &format!(
                    "UPDATE {} SET run = ?2, since_ms = ?3, held = ?4 WHERE record_key = ?1",
                    t.epochs
                ),
                params![key, e.run, e.since_ms, e.held],
            )
            .map(drop)
            .map_err(failed("epoch"))
    }

    fn read(&mut self, t: &Tables, key: &str) -> Result<Option<(i64, Vec<u8>)>, SqlError> {
        self.connection
            .query_row(
                &format!("SELECT version, value FROM {} WHERE record_key = ?1", t.tokens),
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(failed("read"))
    }

    fn insert(&mut self, t: &Tables, row: &Row<'_>) -> Result<bool, SqlError> {
        let sql = format!(
            "INSERT INTO {} (record_key, client_id, user_id, version, value, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (record_key) DO NOTHING",
            t.tokens
        );
        let params =
            params![row.key, row.client_id, row.user_id, row.version, row.value, row.now_ms];
        self.connection.execute(&sql, params).map(|n| n == 1).map_err(failed("write"))
    }

    fn update(&mut self, t: &Tables, expected: i64, row: &Row<'_>) -> Result<bool, SqlError> {
        let sql = format!(
            "UPDATE {} SET version = ?2, value = ?3, updated_at_ms = ?4 \
             WHERE record_key = ?1 AND version = ?5",
            t.tokens
        );
        let params = params![row.key, row.version, row.value, row.now_ms, expected];
        self.connection.execute(&sql, params).map(|n| n == 1).map_err(failed("write"))
    }

    fn delete(&mut self, t: &Tables, key: &str) -> Result<(), SqlError> {
        for table in [&t.tokens, &t.epochs] {
            self.connection
                .execute(&format!("DELETE FROM {table} WHERE record_key = ?1"), params![key])
                .map_err(failed("delete"))?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str) -> Result<(), SqlError> {
        self.connection.execute_batch(sql).map_err(failed("migrate"))
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, SqlError> {
        self.connection
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![name],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(failed("schema check"))
    }

    fn schema_version(&mut self, t: &Tables) -> Result<Option<i64>, SqlError> {
        self.connection
            .query_row(&format!("SELECT version FROM {} WHERE id = 1", t.schema), [], |r| r.get(0))
            .optional()
            .map_err(failed("schema check"))
    }

    fn mark_schema_current(&mut self, t: &Tables, now_ms: i64) -> Result<(), SqlError> {
        self.connection
            .execute(
                &format!(
                    "INSERT INTO {} (id, version, updated_at_ms) VALUES (1, ?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET version = ?1, updated_at_ms = ?2",
                    t.schema
                ),
                params![SCHEMA_VERSION, now_ms],
            )
            .map(drop)
            .map_err(failed("migrate"))
    }
}
