//! A token store in Redis: one token lifecycle shared by a fleet of processes, encrypted at
//! rest.
//!
//! Every instance of a service keeps its access token in its own memory (the request path
//! never touches Redis). When the token is due, one instance takes the store's lease, re-reads,
//! fetches or refreshes, stores the new set with a compare-and-swap fenced by the lease, and
//! releases; the others keep serving their valid token and adopt the new set. `docs/fleet.md`
//! walks through the protocol and its limits.
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
//! Values are sealed with the [`KeyRing`] (XChaCha20-Poly1305), bound to their key and client
//! id, so a value copied to another key does not open. Plaintext is only by
//! [`RedisStore::open_plaintext_insecure`].

mod renewal;
mod scripts;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use helloflex_auth::{
    Clock, KeyRing, Lease, LeaseAttempt, Record, RecordProblem, StoreError, StoredTokens, Swap,
    SystemClock, TokenStore,
};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use redis::{Connection, RedisError};

use crate::renewal::Renewals;
use crate::scripts::Scripts;

/// What a client id or user id may not hold unencoded inside a key: the key's own separators
/// and the hash-tag braces (all of a record's keys must land in one cluster slot).
const KEY_PART: &AsciiSet = &CONTROLS.add(b'{').add(b'}').add(b':').add(b'/').add(b'%').add(b' ');

/// The longest a busy lease is waited on before the store is read again.
const BUSY_POLL: Duration = Duration::from_millis(250);

/// Idle connections kept for reuse.
const IDLE_KEPT: usize = 8;

/// A token store in Redis (see the crate docs).
pub struct RedisStore {
    client: redis::Client,
    /// Kept to rebuild the client with other TLS roots; never shown (it may carry a password).
    url: zeroize::Zeroizing<String>,
    pool: Arc<Pool>,
    scripts: Arc<Scripts>,
    client_id: String,
    prefix: String,
    keys: Keys,
    sealing: Sealing,
    timeout: Duration,
    lease_slice: Duration,
    holder: Arc<str>,
    renewals: Renewals,
}

/// The Redis keys of one record, sharing one hash tag.
#[derive(Debug, Clone)]
struct Keys {
    record: String,
    lease: String,
    fence: String,
}

impl Keys {
    fn new(prefix: &str, client_id: &str, user: Option<&str>) -> Self {
        let client = utf8_percent_encode(client_id, KEY_PART);
        let tag = match user {
            Some(user) => format!("{{{client}/{}}}", utf8_percent_encode(user, KEY_PART)),
            None => format!("{{{client}}}"),
        };
        Self {
            record: format!("{prefix}:{tag}:tokens"),
            lease: format!("{prefix}:{tag}:lease"),
            fence: format!("{prefix}:{tag}:fence"),
        }
    }
}

#[derive(Clone)]
enum Sealing {
    Sealed(Arc<KeyRing>),
    Plaintext,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisStore")
            .field("key", &self.keys.record)
            .field("encrypted", &matches!(self.sealing, Sealing::Sealed(_)))
            .field("holder", &self.holder)
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
        Self::with_sealing(url, client_id, Sealing::Sealed(Arc::new(keys)))
    }

    /// A store that writes tokens **in clear**: anyone who can read the Redis database, a
    /// replica, a dump or a backup of it can use the refresh token. Prefer [`RedisStore::open`].
    pub fn open_plaintext_insecure(url: &str, client_id: &str) -> Result<Self, StoreError> {
        Self::with_sealing(url, client_id, Sealing::Plaintext)
    }

    fn with_sealing(url: &str, client_id: &str, sealing: Sealing) -> Result<Self, StoreError> {
        if url.starts_with("rediss:") {
            #[cfg(feature = "tls")]
            ensure_crypto_provider();
            #[cfg(not(feature = "tls"))]
            return Err(StoreError::Remote {
                op: "open",
                reason: "rediss:// needs the `tls` feature of helloflex-store-redis".into(),
            });
        }
        // The URL is not quoted back: it may carry a password.
        let client = redis::Client::open(url).map_err(|e| StoreError::Remote {
            op: "open",
            reason: format!("not a usable Redis URL ({})", describe(&e)),
        })?;
        let prefix = "helloflex".to_owned();
        Ok(Self {
            client,
            url: zeroize::Zeroizing::new(url.to_owned()),
            pool: Arc::default(),
            scripts: Arc::new(Scripts::new()),
            keys: Keys::new(&prefix, client_id, None),
            client_id: client_id.to_owned(),
            prefix,
            sealing,
            timeout: Duration::from_secs(2),
            lease_slice: Duration::from_secs(5),
            holder: holder_name().into(),
            renewals: Renewals::default(),
        })
    }

    /// The store for one user's tokens (authorization-code grant): the same server, connections
    /// and keys, another record.
    pub fn for_user(&self, user_id: &str) -> Self {
        Self {
            client: self.client.clone(),
            url: self.url.clone(),
            pool: Arc::clone(&self.pool),
            scripts: Arc::clone(&self.scripts),
            keys: Keys::new(&self.prefix, &self.client_id, Some(user_id)),
            client_id: self.client_id.clone(),
            prefix: self.prefix.clone(),
            sealing: self.sealing.clone(),
            timeout: self.timeout,
            lease_slice: self.lease_slice,
            holder: Arc::clone(&self.holder),
            renewals: Renewals::default(),
        }
    }

    /// Trusts the PEM certificates in `pem` as the roots for `rediss://` instead of the system's
    /// (a private CA).
    #[cfg(feature = "tls")]
    pub fn with_root_certificates(mut self, pem: &[u8]) -> Result<Self, StoreError> {
        ensure_crypto_provider();
        let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) };
        self.client = redis::Client::build_with_tls(self.url.as_str(), certs).map_err(|e| {
            StoreError::Remote {
                op: "open",
                reason: format!("TLS setup failed ({})", describe(&e)),
            }
        })?;
        self.pool = Arc::default();
        Ok(self)
    }

    /// Puts the keys under `prefix` (default `helloflex`) instead.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self.keys = Keys::new(prefix, &self.client_id, None);
        self
    }

    /// Time limit of connecting and of each command (default 2 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the lease lives in Redis between renewals (default 5 s; renewed every third of
    /// it while its holder works). A holder that dies is replaced within this time.
    pub fn with_lease_slice(mut self, slice: Duration) -> Self {
        self.lease_slice = slice.max(Duration::from_millis(30));
        self
    }

    /// The key the token set is stored under.
    pub fn record_key(&self) -> &str {
        &self.keys.record
    }

    /// Who holds the lease now (`"pid <pid> <random>"` of its process), for diagnostics.
    pub fn lease_holder(&self) -> Result<Option<String>, StoreError> {
        let held: Option<String> =
            self.run("read lease", |c| redis::cmd("GET").arg(&self.keys.lease).query(c))?;
        Ok(held.and_then(|h| h.split_once(' ').map(|(_, holder)| holder.to_owned())))
    }

    /// Deletes the stored tokens and the lease (a sign-out). Other instances keep the tokens
    /// they hold in memory until they expire.
    pub fn delete(&self) -> Result<(), StoreError> {
        self.run("delete", |c| {
            redis::cmd("DEL").arg(&self.keys.record).arg(&self.keys.lease).query::<()>(c)
        })
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
                // A stale connection: try once on a fresh one. Every command here is safe to
                // repeat (a repeated lease finds its own lease busy; a repeated swap conflicts).
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

    /// What a value is bound to: its key and the client id.
    fn identity(&self) -> Vec<u8> {
        let mut identity = self.keys.record.as_bytes().to_vec();
        identity.push(0);
        identity.extend_from_slice(self.client_id.as_bytes());
        identity
    }

    fn problem(&self, problem: RecordProblem) -> StoreError {
        StoreError::RemoteRecord { key: self.keys.record.clone(), problem }
    }

    fn decode(&self, value: Vec<u8>) -> Result<StoredTokens, StoreError> {
        let json = match &self.sealing {
            Sealing::Sealed(keys) => {
                keys.open(&value, &self.identity()).map_err(|e| self.problem(e.into()))?
            }
            Sealing::Plaintext => zeroize::Zeroizing::new(value),
        };
        serde_json::from_slice(&json).map_err(|e| {
            self.problem(RecordProblem::Malformed(format!(
                "{:?} at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )))
        })
    }

    fn encode(&self, tokens: &StoredTokens) -> Result<Vec<u8>, StoreError> {
        let json = zeroize::Zeroizing::new(serde_json::to_vec(tokens).map_err(|_| {
            StoreError::Remote { op: "write", reason: "the token set did not serialise".into() }
        })?);
        match &self.sealing {
            Sealing::Sealed(keys) => keys.seal(&json, &self.identity()).map_err(|e| {
                StoreError::Remote { op: "write", reason: format!("sealing failed: {e}") }
            }),
            Sealing::Plaintext => Ok(json.to_vec()),
        }
    }
}

impl TokenStore for RedisStore {
    fn load(&self) -> Result<Option<Record>, StoreError> {
        let (version, value): (Option<u64>, Option<Vec<u8>>) = self.run("read", |c| {
            redis::cmd("HMGET").arg(&self.keys.record).arg("version").arg("value").query(c)
        })?;
        match (version, value) {
            (Some(version), Some(value)) => Ok(Some(Record::new(self.decode(value)?, version))),
            (None, None) => Ok(None),
            _ => Err(self.problem(RecordProblem::Malformed("a version without a value".into()))),
        }
    }

    fn swap(
        &self,
        expected: u64,
        new: &StoredTokens,
        lease: Option<&Lease>,
    ) -> Result<Swap, StoreError> {
        let value = zeroize::Zeroizing::new(self.encode(new)?);
        let fence = lease.map_or(0, |l| l.fence);
        let version: u64 = self.run("write", |c| {
            self.scripts
                .swap
                .key(&self.keys.record)
                .key(&self.keys.fence)
                .arg(expected)
                .arg(value.as_slice())
                .arg(fence)
                .invoke(c)
        })?;
        Ok(match version {
            0 => Swap::Conflict,
            version => Swap::Stored { version },
        })
    }

    fn lease(&self, ttl: Duration) -> Result<LeaseAttempt, StoreError> {
        let slice = self.lease_slice.min(ttl).max(Duration::from_millis(1));
        let (granted, value): (i64, i64) = self.run("lease", |c| {
            self.scripts
                .lease
                .key(&self.keys.lease)
                .key(&self.keys.fence)
                .arg(&*self.holder)
                .arg(slice.as_millis() as u64)
                .invoke(c)
        })?;
        if granted != 1 {
            let left = Duration::from_millis(value.max(0) as u64);
            return Ok(LeaseAttempt::Busy {
                retry_in: left.clamp(Duration::from_millis(10), BUSY_POLL),
            });
        }
        let fence = value as u64;
        if slice < ttl {
            self.renewals.start(renewal::Job {
                client: self.client.clone(),
                script: self.scripts.renew.clone(),
                key: self.keys.lease.clone(),
                fence,
                slice,
                until: SystemClock.now() + ttl,
                timeout: self.timeout,
            });
        }
        let expires = SystemClock.wall().checked_add(ttl).unwrap_or_else(|| SystemClock.wall());
        Ok(LeaseAttempt::Acquired(Lease::new(fence, expires)))
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.renewals.stop(lease.fence);
        self.run("release", |c| {
            self.scripts.release.key(&self.keys.lease).arg(lease.fence).invoke::<i64>(c)
        })?;
        Ok(())
    }
}

/// This process's name on the leases it holds: its pid and a random tag (pids repeat across
/// hosts and containers).
fn holder_name() -> String {
    let mut tag = [0u8; 4];
    let tag = match getrandom::fill(&mut tag) {
        Ok(()) => u32::from_le_bytes(tag),
        Err(_) => 0,
    };
    format!("pid {} {tag:08x}", std::process::id())
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
    StoreError::Remote { op, reason: describe(e) }
}

fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_connection_dropped() {
        "connection dropped".into()
    } else if e.is_io_error() {
        "I/O error".into()
    } else if let Some(code) = e.code() {
        format!("server error {code}")
    } else {
        format!("{:?}", e.kind())
    }
}
