//! One transaction's statements on a connection ([`crate::protocol::Tx`]): each prepared once per
//! connection and run as a task of the store's runtime, at most the store's time-out.

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row as PgRow, Statement};

use super::{Connection, Failure, Postgres, failure};
use crate::SqlError;
use crate::protocol::{Epoch, Row, Tx};
use crate::schema::{SCHEMA_VERSION, Tables};

pub(super) struct PgTx<'a> {
    db: &'a Postgres,
    connection: &'a Connection,
    timeout: Duration,
    /// The server's clock and run, read once per transaction.
    clock: Option<(i64, String)>,
}

impl<'a> PgTx<'a> {
    /// A transaction (begun by the caller) on `connection`, each statement limited to `timeout`.
    pub(super) fn new(db: &'a Postgres, connection: &'a Connection, timeout: Duration) -> Self {
        Self { db, connection, timeout, clock: None }
    }
}

impl PgTx<'_> {
    fn run<T: Send + 'static, F>(
        &self,
        op: &'static str,
        statement: impl FnOnce(Arc<Client>) -> F,
    ) -> Result<T, SqlError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        self.db.wait(self.timeout, statement(Arc::clone(&self.connection.client))).map_err(|f| {
            let reason = failure(&f);
            match &f {
                // undefined_table, undefined_column
                Failure::Postgres(e)
                    if e.as_db_error()
                        .is_some_and(|db| matches!(db.code().code(), "42P01" | "42703")) =>
                {
                    SqlError::TablesGone { reason }
                }
                _ => SqlError::Database { op, reason },
            }
        })
    }

    pub(super) fn batch(&self, op: &'static str, sql: String) -> Result<(), SqlError> {
        self.run(op, |c| async move { c.batch_execute(&sql).await })
    }

    /// `sql` prepared on this connection (once: then from its cache).
    fn prepared(&self, op: &'static str, sql: &str) -> Result<Statement, SqlError> {
        let cache = || self.connection.prepared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(statement) = cache().get(sql) {
            return Ok(statement.clone());
        }
        let text = sql.to_owned();
        let statement = self.run(op, |c| async move { c.prepare(&text).await })?;
        cache().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs the prepared `sql` with `params` (owned, for the statement's task); the rows.
    fn rows(
        &self,
        op: &'static str,
        sql: &str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<Vec<PgRow>, SqlError> {
        let statement = self.prepared(op, sql)?;
        self.run(op, |c| async move {
            let params: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            c.query(&statement, &params).await
        })
    }

    /// Runs the prepared `sql` with `params`; the rows it changed.
    fn changed(
        &self,
        op: &'static str,
        sql: &str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
    ) -> Result<u64, SqlError> {
        let statement = self.prepared(op, sql)?;
        self.run(op, |c| async move {
            let params: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            c.execute(&statement, &params).await
        })
    }
}

/// A column of `row`, as the store's error.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a PgRow,
    index: usize,
) -> Result<T, SqlError> {
    row.try_get(index).map_err(|e| SqlError::Database { op: "read", reason: e.to_string() })
}

/// The server's clock (ms since the Unix epoch) and its start time: another after a restart (a
/// crash, a restore from a backup, a point-in-time recovery) or on another server (a
/// failover).
const CLOCK: &str = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
                     pg_postmaster_start_time()::text";

/// Owned parameters for a statement's task.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new($value) as Box<dyn ToSql + Send + Sync>),*]
    };
}

impl Tx for PgTx<'_> {
    fn clock(&mut self) -> Result<(i64, String), SqlError> {
        if let Some(clock) = &self.clock {
            return Ok(clock.clone());
        }
        let rows = self.rows("clock", &format!("SELECT {CLOCK}"), params![])?;
        let row = rows.first().ok_or_else(|| SqlError::Database {
            op: "clock",
            reason: "the server returned no time".into(),
        })?;
        let clock = (column(row, 0)?, column(row, 1)?);
        self.clock = Some(clock.clone());
        Ok(clock)
    }

    fn lock_epoch(&mut self, t: &Tables, key: &str) -> Result<Epoch, SqlError> {
        let insert = format!(
            "INSERT INTO {} (record_key, run, since_ms, held) VALUES ($1, '', 0, FALSE) \
             ON CONFLICT (record_key) DO NOTHING",
            t.epochs
        );
        // The clock is read under the lock, in the same round trip.
        let select = format!(
            "SELECT run, since_ms, held, {CLOCK} FROM {} WHERE record_key = $1 FOR UPDATE",
            t.epochs
        );
        // A row deleted (`SqlStore::delete`) between the insert and the lock is inserted again:
        // at READ COMMITTED each statement sees the newest commits. Bounded by the time-out of
        // each statement, and in count.
        for _ in 0..8 {
            self.changed("epoch", &insert, params![key.to_owned()])?;
            if let Some(row) = self.rows("epoch", &select, params![key.to_owned()])?.first() {
                self.clock = Some((column(row, 3)?, column(row, 4)?));
                return Ok(Epoch {
                    run: column(row, 0)?,
                    since_ms: column(row, 1)?,
                    held: column(row, 2)?,
                });
            }
        }
        Err(SqlError::Database {
            op: "epoch",
            reason: "the record's epoch row kept being deleted under the store".into(),
        })
    }

    fn put_epoch(&mut self, t: &Tables, key: &str, e: &Epoch) -> Result<(), SqlError> {
        let sql = format!(
            "UPDATE {} SET run = $2, since_ms = $3, held = $4 WHERE record_key = $1",
            t.epochs
        );
        let params = params![key.to_owned(), e.run.clone(), e.since_ms, e.held];
        self.changed("epoch", &sql, params).map(drop)
    }

    fn read(&mut self, t: &Tables, key: &str) -> Result<Option<(i64, Vec<u8>)>, SqlError> {
        let sql = format!("SELECT version, value FROM {} WHERE record_key = $1", t.tokens);
        match self.rows("read", &sql, params![key.to_owned()])?.first() {
            Some(row) => Ok(Some((column(row, 0)?, column(row, 1)?))),
            None => Ok(None),
        }
    }

    fn insert(&mut self, t: &Tables, row: &Row<'_>) -> Result<bool, SqlError> {
        let sql = format!(
            "INSERT INTO {} (record_key, client_id, user_id, version, value, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (record_key) DO NOTHING",
            t.tokens
        );
        let params = params![
            row.key.to_owned(),
            row.client_id.to_owned(),
            row.user_id.map(str::to_owned),
            row.version,
            Sealed(zeroize::Zeroizing::new(row.value.to_vec())),
            row.now_ms,
        ];
        self.changed("write", &sql, params).map(|n| n == 1)
    }

    fn update(&mut self, t: &Tables, expected: i64, row: &Row<'_>) -> Result<bool, SqlError> {
        let sql = format!(
            "UPDATE {} SET version = $2, value = $3, updated_at_ms = $4 \
             WHERE record_key = $1 AND version = $5",
            t.tokens
        );
        let params = params![
            row.key.to_owned(),
            row.version,
            Sealed(zeroize::Zeroizing::new(row.value.to_vec())),
            row.now_ms,
            expected,
        ];
        self.changed("write", &sql, params).map(|n| n == 1)
    }

    fn delete(&mut self, t: &Tables, key: &str) -> Result<(), SqlError> {
        for table in [&t.tokens, &t.epochs] {
            let sql = format!("DELETE FROM {table} WHERE record_key = $1");
            self.changed("delete", &sql, params![key.to_owned()])?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str) -> Result<(), SqlError> {
        self.batch("migrate", sql.to_owned())
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, SqlError> {
        let sql = "SELECT to_regclass($1) IS NOT NULL";
        match self.rows("schema check", sql, params![name.to_owned()])?.first() {
            Some(row) => column(row, 0),
            None => Ok(false),
        }
    }

    fn schema_version(&mut self, t: &Tables) -> Result<Option<i64>, SqlError> {
        // Not prepared: the table may have just been made, in this transaction.
        let sql = format!("SELECT version FROM {} WHERE id = 1", t.schema);
        self.run("schema check", |c| async move {
            match c.query_opt(&sql, &[]).await? {
                Some(row) => Ok(Some(i64::from(row.try_get::<_, i32>(0)?))),
                None => Ok(None),
            }
        })
    }

    fn mark_schema_current(&mut self, t: &Tables, now_ms: i64) -> Result<(), SqlError> {
        let sql = format!(
            "INSERT INTO {} (id, version, updated_at_ms) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET version = $1, updated_at_ms = $2",
            t.schema
        );
        let version = i32::try_from(SCHEMA_VERSION).map_err(|_| SqlError::Database {
            op: "migrate",
            reason: "a schema version beyond 32 bits".into(),
        })?;
        self.run(
            "migrate",
            |c| async move { c.execute(&sql, &[&version, &now_ms]).await.map(drop) },
        )
    }
}

/// A sealed value as a `BYTEA` parameter, wiped when the statement is done with it.
#[derive(Debug)]
struct Sealed(zeroize::Zeroizing<Vec<u8>>);

impl ToSql for Sealed {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.as_slice().to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&[u8] as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}
