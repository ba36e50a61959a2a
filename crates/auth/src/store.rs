//! Token stores: where user tokens (authorization-code grant) live between calls and processes.
//!
//! Every write is a compare-and-swap on the record's version, fenced by the refresh lease, so
//! several processes sharing one store cannot lose a rotation or overwrite a newer grant; the
//! lease (with an expiry) makes one of them refresh while the others adopt its result.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use helloflex_core::{AccessToken, RefreshToken, TokenSet};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};

/// Largest token file read (1 MiB); a larger file is reported corrupt, not read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A token set as stored: the expiry is wall-clock time, so it survives a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token.
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, in milliseconds since the Unix epoch.
    pub expires_at_unix_ms: u64,
    /// Granted scopes, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    /// The server refused this set's refresh token (`invalid_grant`): a tombstone, so other
    /// holders sharing the store stop without presenting it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl StoredTokens {
    /// The stored form of `set`, its expiry turned into wall time by `clock`.
    pub fn from_set(set: &TokenSet, clock: &dyn Clock) -> Self {
        let left = set.expires_at().saturating_duration_since(clock.now());
        let expires = clock.wall().checked_add(left).unwrap_or_else(|| clock.wall());
        Self {
            access_token: set.access_token.clone(),
            refresh_token: set.refresh_token.clone(),
            expires_at_unix_ms: expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            scope: set.scope.clone(),
            refused: false,
        }
    }

    /// How long the access token stays valid from now (zero once expired).
    pub fn expires_in(&self, clock: &dyn Clock) -> Duration {
        let expires = UNIX_EPOCH + Duration::from_millis(self.expires_at_unix_ms);
        expires.duration_since(clock.wall()).unwrap_or(Duration::ZERO)
    }

    /// A token set for the cache; an expired access token gets a zero lifetime (refreshed at once).
    pub fn to_set(&self, clock: &dyn Clock) -> TokenSet {
        // A file can say anything: never trust a stored expiry beyond the longest lifetime.
        let left = self.expires_in(clock).min(helloflex_core::MAX_LIFETIME);
        TokenSet::new(
            self.access_token.clone(),
            self.refresh_token.clone(),
            clock.now(),
            left,
            self.scope.clone(),
        )
    }
}

/// A store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing or locking failed.
    #[error("token store {op} failed for {path}: {kind}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error kind.
        kind: io::ErrorKind,
    },
    /// The file exists but is not a token set (it is left as it is).
    #[error("token store {path} is corrupt ({reason}); it was left untouched")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why, without quoting the content.
        reason: String,
    },
    /// Another holder kept the refresh lease past this holder's deadline.
    #[error("token store lease still held by another holder after {waited_ms} ms")]
    LeaseBusy {
        /// How long this holder waited.
        waited_ms: u64,
    },
    /// A remote store failed (connection, timeout, refused command), described without values.
    #[error("token store {op} failed: {reason}")]
    Remote {
        /// What was being done.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// An encrypted token file could not be opened (it is left untouched).
    #[error("token store {path}: {problem}")]
    Sealed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        problem: crate::sealed::OpenError,
    },
    /// Sealing failed (the OS random number generator, for the nonce).
    #[error("token store {path}: sealing failed: {problem}")]
    Sealing {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: crate::sealed::KeyError,
    },
    /// A remote record exists but is not a token set it can open (it is left as it is).
    #[error("token store record {key} cannot be read: {problem}; it was left untouched")]
    RemoteRecord {
        /// The record's key.
        key: String,
        /// What is wrong with it (never its content).
        problem: RecordProblem,
    },
    /// A test double refused on purpose.
    #[error("token store unavailable: {0}")]
    Unavailable(&'static str),
}

/// Why a remote record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProblem {
    /// Its encryption does not open (see [`crate::OpenError`]).
    #[error(transparent)]
    Sealed(#[from] crate::sealed::OpenError),
    /// It opened but is not a token set (the reason names no value).
    #[error("not a token set ({0})")]
    Malformed(String),
}

impl StoreError {
    /// The SDK error for this store failure ([`helloflex_core::Error::Store`]). Names no token.
    pub fn into_error(self) -> helloflex_core::Error {
        let op = match &self {
            StoreError::Io { op, .. } | StoreError::Remote { op, .. } => op,
            StoreError::Corrupt { .. }
            | StoreError::Sealed { .. }
            | StoreError::RemoteRecord { .. } => "read",
            StoreError::Sealing { .. } => "write",
            StoreError::LeaseBusy { .. } => "lease",
            StoreError::Unavailable(_) => "access",
        };
        helloflex_core::StoreFailure::new(op, self.to_string()).into()
    }
}

impl From<StoreError> for helloflex_core::Error {
    fn from(error: StoreError) -> Self {
        error.into_error()
    }
}

/// A stored token set and its version. Every successful write makes a new version, so a write
/// can be made conditional on the version it was planned from (compare-and-swap).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Record {
    /// The tokens.
    pub tokens: StoredTokens,
    /// The version (1 for the first write; 0 stands for "nothing stored").
    pub version: u64,
}

impl Record {
    /// A record of `tokens` at `version`.
    pub fn new(tokens: StoredTokens, version: u64) -> Self {
        Self { tokens, version }
    }
}

/// The right to refresh for every process sharing a store, until `expires`. Its `fence` grows
/// with every lease granted, so a write from a holder whose lease lapsed (and was granted to
/// someone else) is refused: the lease is an optimisation, the fenced write keeps it correct.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The fencing number of this grant.
    pub fence: u64,
    /// When the lease lapses (wall time: leases are shared between processes).
    pub expires: SystemTime,
}

impl Lease {
    /// A lease with `fence`, lapsing at `expires`.
    pub fn new(fence: u64, expires: SystemTime) -> Self {
        Self { fence, expires }
    }
}

/// The answer to [`TokenStore::lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseAttempt {
    /// The lease is this holder's.
    Acquired(Lease),
    /// Another holder has it; ask again after this long (meanwhile, re-read the store: the other
    /// holder may land a new set).
    Busy {
        /// When to ask again.
        retry_in: Duration,
    },
}

/// The answer to [`TokenStore::swap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Swap {
    /// Written as this version.
    Stored {
        /// The new version.
        version: u64,
    },
    /// Not written: the store moved past the expected version, or the lease was fenced off.
    Conflict,
}

/// Where user tokens (authorization-code grant) live between calls and processes.
///
/// The token manager never holds its own lock while it calls a store, and the async manager
/// runs store calls off the executor (through its runtime), so a store may block on I/O.
/// A store shared by several processes implements [`TokenStore::lease`] (and `release`); one
/// used by a single process need not (the manager already makes one request at a time).
///
/// The manager's protocol for a refresh: take the lease -> re-read (another holder may have
/// refreshed: adopt its set) -> send -> [`TokenStore::swap`] on the version read, fenced by the
/// lease -> release. A new authorization swaps on the version it read, without a lease.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The stored record, if any.
    fn load(&self) -> Result<Option<Record>, StoreError>;

    /// Writes `new` if the stored version is still `expected` (0: nothing stored) and, when a
    /// `lease` is given, no newer lease was granted since.
    fn swap(
        &self,
        expected: u64,
        new: &StoredTokens,
        lease: Option<&Lease>,
    ) -> Result<Swap, StoreError>;

    /// Asks for the refresh lease for `ttl`. The default grants it at once (fence 0): right for
    /// a store only one process uses.
    fn lease(&self, ttl: Duration) -> Result<LeaseAttempt, StoreError> {
        let _ = ttl;
        Ok(LeaseAttempt::Acquired(Lease::new(0, UNIX_EPOCH)))
    }

    /// Gives a lease back early (it also lapses by itself).
    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let _ = lease;
        Ok(())
    }
}

/// The lease bookkeeping both built-in stores keep: the highest fence granted and until when.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct LeaseState {
    fence: u64,
    until_unix_ms: u64,
}

impl LeaseState {
    fn grant(&mut self, now: SystemTime, ttl: Duration) -> LeaseAttempt {
        let now_ms = unix_ms(now);
        if now_ms < self.until_unix_ms {
            let left = Duration::from_millis(self.until_unix_ms - now_ms);
            return LeaseAttempt::Busy { retry_in: left.min(Duration::from_millis(250)) };
        }
        self.fence += 1;
        let expires = now.checked_add(ttl).unwrap_or(now);
        self.until_unix_ms = unix_ms(expires);
        LeaseAttempt::Acquired(Lease::new(self.fence, expires))
    }

    fn release(&mut self, lease: &Lease) {
        if lease.fence == self.fence {
            self.until_unix_ms = 0;
        }
    }

    /// Whether a write under `lease` is still allowed: no newer lease was granted.
    fn admits(&self, lease: Option<&Lease>) -> bool {
        lease.is_none_or(|l| l.fence == 0 || l.fence == self.fence)
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Tokens in memory: lost at exit. Leases are kept too, so several managers sharing one
/// `MemoryStore` behave like several processes sharing a remote store (handy in tests).
///
/// ```
/// use std::time::Duration;
/// use helloflex_auth::{LeaseAttempt, MemoryStore, StoredTokens, Swap, TokenStore};
///
/// let store = MemoryStore::new();
/// let tokens: StoredTokens = serde_json::from_str(
///     r#"{"access_token":"at","refresh_token":"rt","expires_at_unix_ms":4000000000000}"#,
/// )?;
/// // Writes are compare-and-swap on the version read (0: nothing stored yet).
/// assert_eq!(store.swap(0, &tokens, None)?, Swap::Stored { version: 1 });
/// assert_eq!(store.swap(0, &tokens, None)?, Swap::Conflict);
/// // One holder at a time refreshes.
/// assert!(matches!(store.lease(Duration::from_secs(5))?, LeaseAttempt::Acquired(_)));
/// assert!(matches!(store.lease(Duration::from_secs(5))?, LeaseAttempt::Busy { .. }));
/// assert_eq!(store.load()?.map(|r| r.version), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    record: Option<Record>,
    lease: LeaseState,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose leases lapse by `clock` (a manual clock in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self { inner: Mutex::default(), clock }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<Record>, StoreError> {
        Ok(self.inner().record.clone())
    }

    fn swap(
        &self,
        expected: u64,
        new: &StoredTokens,
        lease: Option<&Lease>,
    ) -> Result<Swap, StoreError> {
        let mut inner = self.inner();
        let current = inner.record.as_ref().map_or(0, |r| r.version);
        if current != expected || !inner.lease.admits(lease) {
            return Ok(Swap::Conflict);
        }
        let version = current + 1;
        inner.record = Some(Record::new(new.clone(), version));
        Ok(Swap::Stored { version })
    }

    fn lease(&self, ttl: Duration) -> Result<LeaseAttempt, StoreError> {
        let now = self.clock.wall();
        Ok(self.inner().lease.grant(now, ttl))
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner().lease.release(lease);
        Ok(())
    }
}

/// Tokens in a file, encrypted (see [`crate::KeyRing`]): written atomically (a new temporary
/// file, fsync, rename, directory fsync), mode 0600 on Unix. Each write bumps a version kept
/// in the record; the refresh lease lives in `<file>.lease`; both are changed only inside short
/// critical sections under an OS lock on `<file>.lock` (never held across a network request).
/// A corrupt file, or one that does not open with the key ring (wrong key, tampered, truncated,
/// moved from another path), is reported, never overwritten.
///
/// ```
/// use helloflex_auth::{FileStore, Key, KeyRing, TokenStore};
/// let dir = std::env::temp_dir().join(format!("helloflex-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let keys = KeyRing::new(Key::generate("k1")?); // or KeyRing::from_env / from_file
/// let store = FileStore::new(dir.join("tokens"), keys);
/// assert!(store.load()?.is_none());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    protection: Protection,
}

/// How a file store protects what it writes.
#[derive(Debug, Clone)]
enum Protection {
    /// Encrypted with the ring's active key, bound to the file's path and `binding`.
    Sealed { keys: Arc<crate::sealed::KeyRing>, binding: String },
    /// JSON in clear: only through [`FileStore::plaintext_insecure`].
    Plaintext,
}

/// The file's content: the tokens and the version.
#[derive(Serialize, Deserialize)]
struct FileRecord {
    #[serde(flatten)]
    tokens: StoredTokens,
    /// Absent in files written before versions existed: taken as version 1.
    #[serde(default = "first_version")]
    version: u64,
}

fn first_version() -> u64 {
    1
}

impl FileStore {
    /// A store at `path` (created on first write; its directory must exist), encrypted with
    /// `keys`.
    pub fn new(path: impl Into<PathBuf>, keys: crate::sealed::KeyRing) -> Self {
        let protection = Protection::Sealed { keys: Arc::new(keys), binding: String::new() };
        Self { path: path.into(), clock: Arc::new(SystemClock), protection }
    }

    /// A store that writes tokens **in clear** (JSON, mode 0600). Anyone who can read the file,
    /// a backup of it or the disk it is on can use the refresh token: prefer [`FileStore::new`].
    pub fn plaintext_insecure(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), clock: Arc::new(SystemClock), protection: Protection::Plaintext }
    }

    /// Binds every record to `identity` too (a client id, a user id): a record written for
    /// another identity does not open, even at the same path.
    pub fn bound_to(mut self, identity: &str) -> Self {
        if let Protection::Sealed { binding, .. } = &mut self.protection {
            *binding = identity.to_owned();
        }
        self
    }

    /// What a record is bound to: the file's canonical path (so `./t` and `t` agree) and the
    /// binding.
    fn identity(&self, binding: &str) -> Vec<u8> {
        let canonical = match (self.path.parent(), self.path.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
                fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or_else(|_| self.path.clone())
            }
            _ => self.path.clone(),
        };
        let mut identity = canonical.as_os_str().as_encoded_bytes().to_vec();
        identity.push(0);
        identity.extend_from_slice(binding.as_bytes());
        identity
    }

    /// The JSON inside a record as read from the file.
    fn unseal(&self, bytes: Vec<u8>) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        match &self.protection {
            Protection::Plaintext => Ok(zeroize::Zeroizing::new(bytes)),
            Protection::Sealed { keys, binding } => keys
                .open(&bytes, &self.identity(binding))
                .map_err(|problem| StoreError::Sealed { path: self.path.clone(), problem }),
        }
    }

    /// The bytes to write for `json`.
    fn seal(&self, json: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.protection {
            Protection::Plaintext => Ok(json.to_vec()),
            Protection::Sealed { keys, binding } => keys
                .seal(json, &self.identity(binding))
                .map_err(|problem| StoreError::Sealing { path: self.path.clone(), problem }),
        }
    }

    /// The same store with leases timed by `clock` (a manual clock in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str) -> impl Fn(io::Error) -> StoreError + '_ {
        move |e| StoreError::Io { op, path: self.path.clone(), kind: e.kind() }
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// Runs `f` holding the OS lock on `<file>.lock`: a few small reads and writes, no network.
    fn exclusive<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let file = restricted(OpenOptions::new().create(true).truncate(false).write(true))
            .open(self.sibling(".lock"))
            .map_err(self.io("lock"))?;
        file.lock().map_err(self.io("lock"))?;
        f()
    }

    fn read(&self) -> Result<Option<Record>, StoreError> {
        let Some(bytes) = self.read_bytes(&self.path)? else { return Ok(None) };
        let bytes = self.unseal(bytes)?;
        let record: FileRecord =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "not a token set: {:?} at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })?;
        Ok(Some(Record::new(record.tokens, record.version)))
    }

    fn read_bytes(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let len = file.metadata().map_err(self.io("read"))?.len();
        if len > MAX_FILE_BYTES {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: "larger than 1 MiB".into(),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
            .map_err(self.io("read"))?;
        Ok(Some(bytes))
    }

    fn lease_state(&self) -> Result<LeaseState, StoreError> {
        let path = self.sibling(".lease");
        match self.read_bytes(&path)? {
            None => Ok(LeaseState::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::Corrupt { path, reason: "not a lease record".into() }),
        }
    }

    fn write_lease(&self, state: &LeaseState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(|_| self.unserialisable())?;
        self.write_atomically(&self.sibling(".lease"), &json)
    }

    fn unserialisable(&self) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), reason: "could not serialise".into() }
    }

    /// Writes `bytes` to `target` through a temporary file created new (never an existing file
    /// or a link), 0600, synced, renamed over `target`, and the directory synced.
    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut tmp_name = target.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = target.with_file_name(tmp_name);
        // A leftover from a crashed writer of this pid: we hold the lock, so it is ours to drop.
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            let mut file =
                restricted(OpenOptions::new().create_new(true).write(true)).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, target)?;
            // Make the rename itself durable (a bare file name lives in the current directory).
            let dir = match target.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            File::open(dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(self.io("write"))
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<Record>, StoreError> {
        self.read()
    }

    fn swap(
        &self,
        expected: u64,
        new: &StoredTokens,
        lease: Option<&Lease>,
    ) -> Result<Swap, StoreError> {
        self.exclusive(|| {
            let current = self.read()?.map_or(0, |r| r.version);
            if current != expected || !self.lease_state()?.admits(lease) {
                return Ok(Swap::Conflict);
            }
            let version = current + 1;
            let record = FileRecord { tokens: new.clone(), version };
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec_pretty(&record).map_err(|_| self.unserialisable())?,
            );
            self.write_atomically(&self.path, &self.seal(&json)?)?;
            Ok(Swap::Stored { version })
        })
    }

    fn lease(&self, ttl: Duration) -> Result<LeaseAttempt, StoreError> {
        self.exclusive(|| {
            let mut state = self.lease_state()?;
            let attempt = state.grant(self.clock.wall(), ttl);
            if matches!(attempt, LeaseAttempt::Acquired(_)) {
                self.write_lease(&state)?;
            }
            Ok(attempt)
        })
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.exclusive(|| {
            let mut state = self.lease_state()?;
            state.release(lease);
            self.write_lease(&state)
        })
    }
}

/// Files holding tokens are readable by their owner only.
fn restricted(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
