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
//!
//! [`tx`] holds the statements of a transaction, [`tls`] how a connection is encrypted.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::SqlError;
use crate::protocol::{self, Tx};
use crate::schema::{Dialect, Tables};

mod tls;
mod tx;

use tls::{client_config, ssl_mode};
use tx::PgTx;

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
            let tx = PgTx::new(self, &connection, timeout);
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
        let mut tx = PgTx::new(self, &connection, timeout);
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
