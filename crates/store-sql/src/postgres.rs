//! PostgreSQL: the same steps as SQLite ([`crate::protocol`]), each one transaction at
//! `READ COMMITTED` that first locks the record's epoch row (`SELECT ... FOR UPDATE`), so the
//! steps on one record are serialised across every instance, and steps on other records do not
//! wait. Migrations take a transaction-scoped advisory lock, so one instance migrates while the
//! others wait and then find the tables there.
//!
//! The driver is tokio-postgres on a one-thread runtime of the store's own: each statement runs
//! as a task the calling thread waits for, at most the store's time-out (a hung server costs the
//! time-out, not a hang; the connection is then closed, rolling back what it had begun). The
//! server is told the same limits (`statement_timeout`, `lock_timeout`,
//! `idle_in_transaction_session_timeout`), so a transaction whose caller went away does not keep
//! the record's lock.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row as PgRow, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::SqlError;
use crate::protocol::{self, Epoch, Row, Tx};
use crate::schema::{Dialect, SCHEMA_VERSION, Tables};

/// Idle connections kept for reuse.
const IDLE_KEPT: usize = 4;

/// The advisory lock migrations hold (`helloflx` in ASCII).
const MIGRATION_LOCK: i64 = 0x6865_6c6c_6f66_6c78;

pub(crate) struct Postgres {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// Dropped without waiting (`shutdown_background`), so a store may be dropped anywhere,
    /// an async task included.
    runtime: Option<Runtime>,
    handle: Handle,
    idle: Mutex<Vec<Connection>>,
    ensured: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Host and database only: never the password.
        f.debug_struct("Postgres")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One connection: the client, the task that drives its socket (stopped with it), and the
/// statements prepared on it: each store statement is parsed once per connection, so that
/// running it is one round trip, not two (parse, then bind and execute).
struct Connection {
    client: Arc<Client>,
    driver: JoinHandle<()>,
    prepared: Mutex<HashMap<String, Statement>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Why a statement did not answer.
enum Failure {
    TimedOut,
    Postgres(tokio_postgres::Error),
    /// The runtime is gone (the store is being dropped).
    Stopped,
}

impl Postgres {
    /// A server at `url`, trusting `roots` (PEM) beside the system's certificate authorities.
    pub(crate) fn new(url: &str, roots: Option<&[u8]>) -> Result<Self, SqlError> {
        // The URL is not quoted back: it may carry a password.
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|_| SqlError::Setting("not a usable PostgreSQL connection string".into()))?;
        config.ssl_mode(ssl_mode(&config));
        let tls = MakeRustlsConnect::new(client_config(roots)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("helloflex-store-sql")
            .enable_all()
            .build()
            .map_err(|e| SqlError::Setting(format!("the store's runtime did not start: {e}")))?;
        Ok(Self {
            config,
            tls,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            idle: Mutex::default(),
            ensured: Mutex::default(),
        })
    }

    /// Closes the idle connections.
    pub(crate) fn close_idle(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    pub(crate) fn ensured(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ensured.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `future` on the store's runtime and waits for it at most `timeout`; a future that
    /// did not finish is stopped.
    fn wait<T: Send + 'static>(
        &self,
        timeout: Duration,
        future: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T, Failure> {
        let (send, answer) = mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            let _ = send.send(future.await);
        });
        match answer.recv_timeout(timeout) {
            Ok(result) => result.map_err(Failure::Postgres),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                task.abort();
                Err(Failure::TimedOut)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Failure::Stopped),
        }
    }

    fn connect(&self, timeout: Duration) -> Result<Connection, SqlError> {
        let mut config = self.config.clone();
        config.connect_timeout(timeout);
        let tls = self.tls.clone();
        let (client, connection) = self
            .wait(timeout, async move { config.connect(tls).await })
            .map_err(|f| SqlError::Unreachable { reason: failure(&f) })?;
        let driver = self.handle.spawn(async move {
            // Ends when the client is dropped or the server goes away; its error shows on the
            // client's next statement.
            let _ = connection.await;
        });
        Ok(Connection { client: Arc::new(client), driver, prepared: Mutex::default() })
    }

    /// Runs `step` in one transaction, committed if it succeeds; `migration` first takes the
    /// migrations' advisory lock. A connection that failed is closed (rolling back whatever it
    /// had begun), not kept.
    pub(crate) fn transaction<T>(
        &self,
        op: &'static str,
        timeout: Duration,
        migration: bool,
        step: impl FnOnce(&mut dyn Tx) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        let mut begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL statement_timeout = {ms}; \
             SET LOCAL lock_timeout = {ms}; SET LOCAL idle_in_transaction_session_timeout = {ms};"
        );
        if migration {
            begin.push_str(&format!(" SELECT pg_advisory_xact_lock({MIGRATION_LOCK});"));
        }
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let (mut connection, mut pooled) = match idle {
            Some(connection) if !connection.client.is_closed() => (connection, true),
            _ => (self.connect(timeout)?, false),
        };
        // A pooled connection whose server went away since (a crash, a restart, a failover)
        // fails on its first statement. Nothing was begun on it: the transaction is begun
        // again on a new connection, and the other idle ones, as stale, are dropped; without
        // that, each would fail a caller after the database came back.
        loop {
            let tx = PgTx { db: self, connection: &connection, timeout, clock: None };
            match tx.batch(op, begin.clone()) {
                Ok(()) => break,
                Err(_) if pooled && connection.client.is_closed() => {
                    self.close_idle();
                    connection = self.connect(timeout)?;
                    pooled = false;
                }
                Err(e) => return Err(e),
            }
        }
        let mut tx = PgTx { db: self, connection: &connection, timeout, clock: None };
        let value = step(&mut tx)?;
        tx.batch(op, "COMMIT".to_owned())?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_KEPT {
            idle.push(connection);
        }
        Ok(value)
    }

    pub(crate) fn migrate(&self, t: &Tables, timeout: Duration) -> Result<u32, SqlError> {
        self.transaction("migrate", timeout, true, |tx| {
            let (now, _) = tx.clock()?;
            protocol::migrate(tx, t, Dialect::Postgres, now)
        })
    }
}

/// The TLS a connection asks for: what the URL says (`sslmode=disable`, `prefer`, `require`),
/// except that a server on another host gets TLS required when the URL did not say
/// `disable`: libpq's default, `prefer`, falls back to clear text when the server (or anyone
/// in between) declines TLS, which would send the password and the sealed records in clear
/// to another host. A server on this host (a loopback address, `localhost`, a Unix socket)
/// keeps `prefer`.
fn ssl_mode(config: &tokio_postgres::Config) -> SslMode {
    let here = config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    });
    match config.get_ssl_mode() {
        SslMode::Disable => SslMode::Disable,
        SslMode::Prefer if here => SslMode::Prefer,
        _ => SslMode::Require,
    }
}

/// rustls's settings: the system's roots and `pem`'s; ring as the crypto provider unless the
/// program installed one (rustls refuses to pick when several are compiled in).
fn client_config(pem: Option<&[u8]>) -> Result<rustls::ClientConfig, SqlError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the system has that rustls cannot read are skipped, as browsers do.
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = pem {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|_| SqlError::Setting("the root certificates are not PEM".into()))?;
        if certs.is_empty() {
            return Err(SqlError::Setting("no certificate in the root certificates' PEM".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                SqlError::Setting(format!("a root certificate cannot be used: {e}"))
            })?;
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// A failure as a reason: the server's message and SQLSTATE, or the connection's trouble;
/// never a bound value or the connection string.
fn failure(f: &Failure) -> String {
    match f {
        Failure::TimedOut => "timed out".into(),
        Failure::Stopped => "the store is shutting down".into(),
        Failure::Postgres(e) => match e.as_db_error() {
            Some(db) if matches!(db.code().code(), "55P03" | "57014" | "25P03") => {
                format!("timed out ({}: {})", db.code().code(), db.message())
            }
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None if e.is_closed() => "connection closed".into(),
            None => e.to_string(),
        },
    }
}

struct PgTx<'a> {
    db: &'a Postgres,
    connection: &'a Connection,
    timeout: Duration,
    /// The server's clock and run, read once per transaction.
    clock: Option<(i64, String)>,
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

    fn batch(&self, op: &'static str, sql: String) -> Result<(), SqlError> {
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

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use tokio_postgres::config::SslMode;

    use super::ssl_mode;

    fn mode(url: &str) -> SslMode {
        ssl_mode(&tokio_postgres::Config::from_str(url).unwrap())
    }

    #[test]
    fn another_host_gets_tls_required_unless_the_url_turns_it_off() {
        for url in [
            "postgres://u@db.internal/app",
            "postgres://u@10.0.0.5:5432/app",
            "postgres://u@db.internal/app?sslmode=prefer",
            "host=db.internal user=u",
            // One host here and one elsewhere: the other may be the one answering.
            "host=localhost,db.internal user=u",
        ] {
            assert!(matches!(mode(url), SslMode::Require), "{url}");
        }
        assert!(matches!(mode("postgres://u@db.internal/app?sslmode=disable"), SslMode::Disable));
        assert!(matches!(mode("postgres://u@db.internal/app?sslmode=require"), SslMode::Require));
    }

    #[test]
    fn this_host_keeps_what_the_url_says() {
        for url in [
            "postgres://u@localhost/app",
            "postgres://u@127.0.0.1:5432/app",
            "postgres://u@[::1]:5432/app",
            "host=/var/run/postgresql user=u",
        ] {
            assert!(matches!(mode(url), SslMode::Prefer), "{url}");
        }
        assert!(matches!(mode("postgres://u@127.0.0.1/app?sslmode=require"), SslMode::Require));
        assert!(matches!(mode("postgres://u@127.0.0.1/app?sslmode=disable"), SslMode::Disable));
    }
}
