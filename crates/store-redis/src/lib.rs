//! A token store in Redis: one token lifecycle shared by a fleet of processes, encrypted at
//! rest.
//!
//! Every instance of a service keeps its access token in its own memory (the request path
//! never touches Redis). When the token is due, one instance claims the refresh token in the
//! record (a compare-and-swap that writes its claim), refreshes, and swaps the new set in;
//! the others keep serving their valid token and adopt the new set. Redis holds one record per
//! client (or client and user) and knows only two scripts: read it, and compare-and-swap it.
//! `docs/fleet.md` walks through the protocol, what each fault costs and what Redis must
//! guarantee (AOF with `appendfsync always`, `noeviction`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use helloflex_auth::{KeyRing, TokenStore};
//! use helloflex_store_redis::RedisStore;
//!
//! // The key ring every instance shares (here from an environment variable).
//! let keys = KeyRing::from_env("HELLOFLEX_TOKEN_KEYS")?;
//! // A client-credentials token shared by the fleet ...
//! let shared: Arc<dyn TokenStore> =
//!     Arc::new(RedisStore::open("redis://127.0.0.1:6379/", "my-client-id", keys)?);
//! // ... handed to the client builder with `.shared_token_store(shared)`; or, for Flextell
//! // user tokens, one store per user (same connections, another key):
//! # let store = RedisStore::open("redis://127.0.0.1:6379/", "my-client-id", KeyRing::from_env("K")?)?;
//! let alice: Arc<dyn TokenStore> = Arc::new(store.for_user("alice"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Values are sealed with the [`KeyRing`] (XChaCha20-Poly1305), bound to their whole
//! [`RecordScope`] (namespace, client, user), so a value copied to another key does not open.
//! Plaintext is only by [`RedisStore::open_plaintext_insecure`].

mod scripts;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use helloflex_auth::{
    KeyRing, Loaded, Record, RecordScope, RecordSealing, StoreError, StoreErrorKind, Swap,
    TokenStore,
};
use redis::{Connection, RedisError};

use crate::scripts::Scripts;

/// Idle connections kept for reuse.
const IDLE_KEPT: usize = 8;

/// A token store in Redis (see the crate docs).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_store_redis::RedisStore; }
/// use std::sync::Arc;
/// use helloflex::{Key, KeyRing, RedisStore, TokenStore};
///
/// let keys = KeyRing::new(Key::generate("k1")?); // every instance shares it: KeyRing::from_env(..)
/// // Nothing is sent until the store is used.
/// let store = RedisStore::open("redis://redis.internal:6379/", "my-client-id", keys)?;
/// assert_eq!(store.record_key(), "helloflex:{my-client-id}:tokens");
/// let alice: Arc<dyn TokenStore> = Arc::new(store.for_user("alice").with_prefix("prod"));
/// # drop(alice);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisStore {
    client: redis::Client,
    /// Kept to rebuild the client with other TLS roots; never shown (it may carry a password).
    url: zeroize::Zeroizing<String>,
    pool: Arc<Pool>,
    scripts: Arc<Scripts>,
    scope: RecordScope,
    sealing: RecordSealing,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisStore")
            .field("key", &self.scope.key("tokens"))
            .field("encrypted", &self.sealing.is_sealed())
            .finish_non_exhaustive()
    }
}

/// Idle connections, shared by a store and the per-user stores made from it.
#[derive(Default)]
struct Pool(Mutex<Vec<Connection>>);

impl Pool {
    fn take(&self) -> Option<Connection> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }
    fn put(&self, connection: Connection) {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_KEPT {
            idle.push(connection);
        }
    }
}

impl RedisStore {
    /// A store for `client_id`'s tokens at `url` (`redis://[:password@]host[:port][/db]`, or
    /// `rediss://` with the `tls` feature), sealed with `keys`. Nothing is sent until the store
    /// is used.
    pub fn open(url: &str, client_id: &str, keys: KeyRing) -> Result<Self, StoreError> {
        Self::with_sealing(url, client_id, RecordSealing::Sealed(Arc::new(keys)))
    }

    /// A store that writes tokens **in clear**: anyone who can read the Redis database, a
    /// replica, a dump or a backup of it can use the refresh token. Prefer [`RedisStore::open`].
    pub fn open_plaintext_insecure(url: &str, client_id: &str) -> Result<Self, StoreError> {
        Self::with_sealing(url, client_id, RecordSealing::Plaintext)
    }

    fn with_sealing(
        url: &str,
        client_id: &str,
        sealing: RecordSealing,
    ) -> Result<Self, StoreError> {
        if url.starts_with("rediss:") {
            #[cfg(feature = "tls")]
            ensure_crypto_provider();
            #[cfg(not(feature = "tls"))]
            return Err(StoreError::new(
                "open",
                StoreErrorKind::Setting,
                "rediss:// needs the `tls` feature of helloflex-store-redis",
            ));
        }
        // The URL is not quoted back: it may carry a password.
        let client = redis::Client::open(url).map_err(|e| {
            let detail = format!("not a usable Redis URL ({})", describe(&e).1);
            StoreError::new("open", StoreErrorKind::Setting, detail)
        })?;
        Ok(Self {
            client,
            url: zeroize::Zeroizing::new(url.to_owned()),
            pool: Arc::default(),
            scripts: Arc::new(Scripts::new()),
            scope: RecordScope::new(client_id),
            sealing,
            timeout: Duration::from_secs(2),
        })
    }

    /// The store for one user's tokens (authorization-code grant): the same server, connections
    /// and settings, another record. The user is part of the record's key and of what its
    /// values are sealed to, whatever else is set before or after.
    pub fn for_user(&self, user_id: &str) -> Self {
        Self {
            client: self.client.clone(),
            url: self.url.clone(),
            pool: Arc::clone(&self.pool),
            scripts: Arc::clone(&self.scripts),
            scope: self.scope.clone().for_user(user_id),
            sealing: self.sealing.clone(),
            timeout: self.timeout,
        }
    }

    /// Trusts the PEM certificates in `pem` as the roots for `rediss://` instead of the system's
    /// (a private CA).
    #[cfg(feature = "tls")]
    pub fn with_root_certificates(mut self, pem: &[u8]) -> Result<Self, StoreError> {
        ensure_crypto_provider();
        let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) };
        self.client = redis::Client::build_with_tls(self.url.as_str(), certs).map_err(|e| {
            let detail = format!("TLS setup failed ({})", describe(&e).1);
            StoreError::new("open", StoreErrorKind::Setting, detail)
        })?;
        self.pool = Arc::default();
        Ok(self)
    }

    /// Puts the keys under `prefix` (default `helloflex`) instead; the user, if any, stays.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.scope = self.scope.in_namespace(prefix);
        self
    }

    /// Time limit of connecting and of each command (default 2 s; `Duration::MAX` is no limit,
    /// cut to [`helloflex_core::machines::FAR_FUTURE`], which a socket takes).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(helloflex_core::machines::FAR_FUTURE);
        self
    }

    /// Whose record this store holds.
    pub fn scope(&self) -> &RecordScope {
        &self.scope
    }

    /// The key the record is stored under.
    pub fn record_key(&self) -> String {
        self.scope.key("tokens")
    }

    /// Who claims the refresh token now (its holder's name: process id and a random part), for
    /// diagnostics.
    pub fn claim_holder(&self) -> Result<Option<String>, StoreError> {
        Ok(self.load()?.record.and_then(|r| r.claim).map(|c| c.holder))
    }

    /// Deletes the record, as an operator would. The next read starts a new epoch (a loss,
    /// like an eviction or a `DEL`): for its grace period no refresh token is presented, and
    /// instances that hold tokens write them back, the newest winning. To sign a user out
    /// everywhere, revoke the grant at the server.
    pub fn delete(&self) -> Result<(), StoreError> {
        let key = self.record_key();
        self.run("delete", |c| redis::cmd("DEL").arg(&key).query::<()>(c))
    }

    /// Runs `command` on a connection, reconnecting once if an idle connection was found
    /// closed (the server restarted); every failure becomes a typed error naming no value.
    fn run<T>(
        &self,
        op: &'static str,
        command: impl Fn(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        if let Some(mut idle) = self.pool.take() {
            match command(&mut idle) {
                Ok(value) => {
                    self.pool.put(idle);
                    return Ok(value);
                }
                Err(e) if !(e.is_connection_dropped() || e.is_io_error()) => {
                    return Err(remote(op, &e));
                }
                // A stale connection: try once on a fresh one. A read is safe to repeat; a
                // swap that landed before the connection dropped conflicts when repeated,
                // and the fill job reads to find out.
                Err(_) => {}
            }
        }
        let mut fresh = self.connect().map_err(|e| remote(op, &e))?;
        let value = command(&mut fresh).map_err(|e| remote(op, &e))?;
        self.pool.put(fresh);
        Ok(value)
    }

    fn connect(&self) -> redis::RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    /// A record that is there but cannot be read as one (it is left as it is).
    fn corrupt(&self, why: &str) -> StoreError {
        let detail = format!("record {}: {why}", self.record_key());
        StoreError::new("read", StoreErrorKind::Corrupt, detail)
    }
}

fn age(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl TokenStore for RedisStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let (record_key, epoch_key) = (self.record_key(), self.scope.key("epoch"));
        let (version, value, epoch): (Option<u64>, Option<Vec<u8>>, i64) =
            self.run("read", |c| self.scripts.load.key(&record_key).key(&epoch_key).invoke(c))?;
        let record = match (version, value) {
            (Some(version), Some(value)) => {
                Some(self.sealing.decode(value, version, &self.scope, || self.record_key())?)
            }
            (None, None) => None,
            _ => {
                return Err(self.corrupt("a version without a value"));
            }
        };
        Ok(Loaded::new(record).with_epoch_age(age(epoch)))
    }

    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
        let value = zeroize::Zeroizing::new(self.sealing.encode(new, &self.scope)?);
        let (record_key, epoch_key) = (self.record_key(), self.scope.key("epoch"));
        let (version, epoch): (String, i64) = self.run("write", |c| {
            self.scripts
                .swap
                .key(&record_key)
                .key(&epoch_key)
                .arg(expected)
                .arg(new.version)
                .arg(value.as_slice())
                .invoke(c)
        })?;
        let version: u64 =
            version.parse().map_err(|_| self.corrupt("a version that is not a number"))?;
        Ok(match version {
            0 => Swap::Conflict,
            version => Swap::Stored { version, epoch_age: Some(age(epoch)) },
        })
    }
}

/// rustls panics when no process-wide provider is installed and several are compiled in:
/// install ring's, unless the program chose one already.
#[cfg(feature = "tls")]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A Redis failure as a store error: its class and the server's error code, never a value.
fn remote(op: &'static str, e: &RedisError) -> StoreError {
    let (kind, detail) = describe(e);
    StoreError::new(op, kind, detail)
}

/// The kind of a Redis failure, and its words. A server error (`READONLY` on a replica,
/// `LOADING` after a restart, `OOM`, `WRONGTYPE`) is a refusal: the store's managers ask again.
fn describe(e: &RedisError) -> (StoreErrorKind, String) {
    if e.is_timeout() {
        (StoreErrorKind::TimedOut, "timed out".into())
    } else if e.is_connection_refusal() {
        (StoreErrorKind::Unreachable, "connection refused".into())
    } else if e.is_connection_dropped() {
        (StoreErrorKind::Unreachable, "connection dropped".into())
    } else if e.is_io_error() {
        (StoreErrorKind::Unreachable, "I/O error".into())
    } else if let Some(code) = e.code() {
        (StoreErrorKind::Refused, format!("server error {code}"))
    } else {
        (StoreErrorKind::Refused, format!("{:?}", e.kind()))
    }
}
