//! The two store steps (read; compare-and-swap) and the migration, written once over a
//! transaction of either database ([`Tx`]), so SQLite and PostgreSQL keep one protocol: the one
//! the Redis store's scripts keep (`helloflex-store-redis`, `src/scripts.rs`).
//!
//! Every step runs in one transaction that first locks the record's epoch row (creating it if
//! missing): every call on one record is serialised by that lock, whatever the isolation level,
//! and no call on another record waits for it. SQLite takes the database's write lock at the
//! start instead (`BEGIN IMMEDIATE`), which serialises every call on the file.

use std::sync::{Mutex, PoisonError};

use helloflex_auth::Record;

use crate::SqlError;
use crate::schema::{self, Dialect, SCHEMA_VERSION, Tables};

/// A record's epoch row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Epoch {
    pub(crate) run: String,
    pub(crate) since_ms: i64,
    pub(crate) held: bool,
}

/// A record's row, to write.
pub(crate) struct Row<'a> {
    pub(crate) key: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) version: i64,
    pub(crate) value: &'a [u8],
    pub(crate) now_ms: i64,
}

/// One open transaction. Each call is one statement.
pub(crate) trait Tx {
    /// The database's clock (ms since the Unix epoch) and its run: an identity that changes
    /// when the server restarts or another server takes over (empty: the database cannot tell).
    fn clock(&mut self) -> Result<(i64, String), SqlError>;
    /// Locks the record's epoch row, inserting an empty one (no run, no time) if there is none,
    /// and reads it.
    fn lock_epoch(&mut self, t: &Tables, key: &str) -> Result<Epoch, SqlError>;
    fn put_epoch(&mut self, t: &Tables, key: &str, epoch: &Epoch) -> Result<(), SqlError>;
    /// The record's version and value, if there is a row.
    fn read(&mut self, t: &Tables, key: &str) -> Result<Option<(i64, Vec<u8>)>, SqlError>;
    /// Inserts the row unless one exists; whether it did.
    fn insert(&mut self, t: &Tables, row: &Row<'_>) -> Result<bool, SqlError>;
    /// Replaces the row if its version is still `expected`; whether it did.
    fn update(&mut self, t: &Tables, expected: i64, row: &Row<'_>) -> Result<bool, SqlError>;
    /// Deletes the row and its epoch row (locked by the caller).
    fn delete(&mut self, t: &Tables, key: &str) -> Result<(), SqlError>;
    /// Runs a statement without parameters (the migrations).
    fn execute(&mut self, sql: &str) -> Result<(), SqlError>;
    fn table_exists(&mut self, name: &str) -> Result<bool, SqlError>;
    /// The schema version stored in the schema table (which exists), if any.
    fn schema_version(&mut self, t: &Tables) -> Result<Option<i64>, SqlError>;
    /// Records that the tables are at [`SCHEMA_VERSION`] (a migration just took them there).
    fn mark_schema_current(&mut self, t: &Tables, now_ms: i64) -> Result<(), SqlError>;
}

/// Versions are `u64`; the columns are signed 64-bit: the same bits, so that equality (all the
/// compare-and-swap asks of the database) is exact over the whole range.
pub(crate) fn to_column(version: u64) -> i64 {
    i64::from_ne_bytes(version.to_ne_bytes())
}

pub(crate) fn from_column(version: i64) -> u64 {
    u64::from_ne_bytes(version.to_ne_bytes())
}

/// The last version this store object saw stored, and when (on the database's clock): a record
/// found later at a lower version, or gone, while no epoch began since, was rolled back (a
/// restored backup, a failover to a replica behind): the store starts a new epoch itself.
/// (Versions only grow, and a deleted record is already a loss by the epoch row's `held`.)
#[derive(Debug, Default)]
pub(crate) struct Watermark(Mutex<Option<(u64, i64)>>);

impl Watermark {
    fn get(&self) -> Option<(u64, i64)> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set(&self, seen: Option<(u64, i64)>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = seen;
    }
}

/// What one step found.
pub(crate) struct Found {
    /// The record's version and sealed value, if any (as the step left it).
    pub(crate) record: Option<(u64, Vec<u8>)>,
    /// The epoch's age in ms.
    pub(crate) epoch_age_ms: i64,
    /// The database's time of the step.
    pub(crate) now_ms: i64,
}

/// The epoch row as stored, as the rule leaves it, the stored record and the database's time.
type Seen = (Epoch, Epoch, Option<(u64, Vec<u8>)>, i64);

/// Locks the epoch row, reads the record and applies the epoch rule of the Redis store's
/// `EPOCH` script: a new epoch when the stored one is another server's (or missing), when the
/// record it saw written is gone, when the database's clock is behind its start, or when this
/// store object saw a higher version than the one stored since the epoch began. Returns the
/// epoch as it now is (not yet written) and the stored record.
fn epoch(tx: &mut dyn Tx, t: &Tables, key: &str, seen: &Watermark) -> Result<Seen, SqlError> {
    let stored = tx.lock_epoch(t, key)?;
    let record = tx.read(t, key)?.map(|(version, value)| (from_column(version), value));
    let (now, run) = tx.clock()?;
    let exists = record.is_some();
    let current = record.as_ref().map_or(Record::NOTHING_STORED, |(version, _)| *version);
    let rolled_back =
        seen.get().is_some_and(|(version, at)| current < version && stored.since_ms <= at);
    let mut epoch = stored.clone();
    if stored.run.is_empty()
        || stored.run != run
        || stored.since_ms > now
        || (stored.held && !exists)
        || rolled_back
    {
        epoch.run = run;
        epoch.since_ms = now;
    }
    epoch.held = exists;
    Ok((stored, epoch, record, now))
}

/// Reads the record, in a new epoch if the rule says so.
pub(crate) fn load(
    tx: &mut dyn Tx,
    t: &Tables,
    key: &str,
    seen: &Watermark,
) -> Result<Found, SqlError> {
    let (stored, epoch, record, now) = epoch(tx, t, key, seen)?;
    if epoch != stored {
        tx.put_epoch(t, key, &epoch)?;
    }
    Ok(Found { record, epoch_age_ms: now - epoch.since_ms, now_ms: now })
}

/// What a swap did.
pub(crate) struct Swapped {
    /// Whether the new record was written.
    pub(crate) stored: bool,
    /// The version stored after the step.
    pub(crate) version: u64,
    pub(crate) epoch_age_ms: i64,
    pub(crate) now_ms: i64,
}

/// Writes `row` if the stored version is `expected` (0: none) and `row`'s is higher.
pub(crate) fn swap(
    tx: &mut dyn Tx,
    t: &Tables,
    expected: u64,
    row: &mut Row<'_>,
    seen: &Watermark,
) -> Result<Swapped, SqlError> {
    let (stored, mut epoch, record, now) = epoch(tx, t, row.key, seen)?;
    row.now_ms = now;
    let current = record.as_ref().map(|(version, _)| *version);
    let new = from_column(row.version);
    let admitted = current.unwrap_or(0) == expected && new > expected;
    let written = admitted
        && match current {
            None => tx.insert(t, row)?,
            Some(_) => tx.update(t, to_column(expected), row)?,
        };
    if written {
        epoch.held = true;
    }
    if epoch != stored {
        tx.put_epoch(t, row.key, &epoch)?;
    }
    Ok(Swapped {
        stored: written,
        version: if written { new } else { current.unwrap_or(0) },
        epoch_age_ms: now - epoch.since_ms,
        now_ms: now,
    })
}

/// Deletes the record and its epoch row, so that user ids never used again leave nothing
/// behind. The next call on the record finds no epoch row: a new epoch, the loss seen.
pub(crate) fn delete(tx: &mut dyn Tx, t: &Tables, key: &str) -> Result<(), SqlError> {
    tx.lock_epoch(t, key)?;
    tx.delete(t, key)?;
    Ok(())
}

/// The schema version found, without changing anything (0: no tables).
pub(crate) fn schema_version(tx: &mut dyn Tx, t: &Tables) -> Result<u32, SqlError> {
    if !tx.table_exists(&t.schema)? {
        return Ok(0);
    }
    let found = tx.schema_version(t)?.unwrap_or(0);
    u32::try_from(found).map_err(|_| SqlError::Database {
        op: "schema check",
        reason: format!("{} holds an impossible version", t.schema),
    })
}

/// Refuses a schema this SDK cannot use as it is.
pub(crate) fn check(found: u32) -> Result<(), SqlError> {
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => {
            Err(SqlError::SchemaTooOld { found, supported: SCHEMA_VERSION })
        }
        std::cmp::Ordering::Greater => {
            Err(SqlError::SchemaTooNew { found, supported: SCHEMA_VERSION })
        }
    }
}

/// Creates or upgrades the tables to [`SCHEMA_VERSION`]; returns the version found before.
/// The caller holds the lock that serialises migrations.
pub(crate) fn migrate(
    tx: &mut dyn Tx,
    t: &Tables,
    dialect: Dialect,
    now_ms: i64,
) -> Result<u32, SqlError> {
    tx.execute(&schema::schema_table(t))?;
    let found = schema_version(tx, t)?;
    if found > SCHEMA_VERSION {
        return Err(SqlError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for from in found..SCHEMA_VERSION {
        for statement in schema::steps(t, dialect, from) {
            tx.execute(&statement)?;
        }
    }
    if found != SCHEMA_VERSION {
        tx.mark_schema_current(t, now_ms)?;
    }
    Ok(found)
}
