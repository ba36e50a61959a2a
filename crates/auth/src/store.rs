//! Token stores: where user tokens (authorization-code grant) live between calls and processes.
//!
//! Replacing the stored set is a compare-and-swap on the refresh token it was refreshed from, so
//! several processes sharing one store cannot lose a rotation; the file store also serialises
//! refreshes across processes with a lock file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use helloflex_core::{AccessToken, RefreshToken, TokenSet};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

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
        }
    }

    /// A token set for the cache; an expired access token gets a zero lifetime (refreshed at once).
    pub fn to_set(&self, clock: &dyn Clock) -> TokenSet {
        let expires = UNIX_EPOCH + Duration::from_millis(self.expires_at_unix_ms);
        let left = expires.duration_since(clock.wall()).unwrap_or(Duration::ZERO);
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
    /// A test double refused on purpose.
    #[error("token store unavailable: {0}")]
    Unavailable(&'static str),
}

impl StoreError {
    /// The SDK error for a store that could not be read at start-up (a configuration problem:
    /// the file is the caller's). Names neither the path's contents nor any token.
    pub fn into_error(self) -> helloflex_core::Error {
        let reason = match self {
            StoreError::Corrupt { .. } => "the token file is corrupt",
            StoreError::Io { .. } => "the token store could not be read",
            StoreError::Unavailable(_) => "the token store is unavailable",
        };
        helloflex_core::ConfigError::Invalid { name: "token store", reason }.into()
    }
}

/// Where user tokens are kept. Implementations must be safe to share between threads.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The stored set, if any.
    fn load(&self) -> Result<Option<StoredTokens>, StoreError>;

    /// Stores `new` only if the stored refresh token is still `expected` (or nothing is stored
    /// and `expected` is `None`). Returns whether it was stored.
    fn compare_and_swap(
        &self,
        expected: Option<&RefreshToken>,
        new: &StoredTokens,
    ) -> Result<bool, StoreError>;

    /// Holds a lock that serialises refreshes across processes, until the guard drops. Stores
    /// used by one process only need not lock (the token manager already single-flights).
    fn lock_for_refresh(&self) -> Result<Option<StoreLock>, StoreError> {
        Ok(None)
    }
}

/// A held refresh lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Tokens in memory: lost at exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<Option<StoredTokens>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        Ok(self.tokens.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    fn compare_and_swap(
        &self,
        expected: Option<&RefreshToken>,
        new: &StoredTokens,
    ) -> Result<bool, StoreError> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let current = tokens.as_ref().and_then(|t| t.refresh_token.as_ref());
        if tokens.is_some() && current != expected {
            return Ok(false);
        }
        *tokens = Some(new.clone());
        Ok(true)
    }
}

/// Tokens in a JSON file: written atomically (temporary file, fsync, rename), mode 0600 on Unix,
/// refreshes serialised across processes by `<file>.lock`. A corrupt file is reported, never
/// overwritten.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (created on first write; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str) -> impl Fn(io::Error) -> StoreError + '_ {
        move |e| StoreError::Io { op, path: self.path.clone(), kind: e.kind() }
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    fn exclusive(&self) -> Result<File, StoreError> {
        let file = restricted(OpenOptions::new().create(true).truncate(false).write(true))
            .open(self.lock_path())
            .map_err(self.io("lock"))?;
        file.lock().map_err(self.io("lock"))?;
        Ok(file)
    }

    fn read(&self) -> Result<Option<StoredTokens>, StoreError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let len = file.metadata().map_err(self.io("read"))?.len();
        if len > MAX_FILE_BYTES {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: "larger than 1 MiB".into(),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
            .map_err(self.io("read"))?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            reason: format!(
                "not a token set: {:?} at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        })
    }

    fn write(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(tokens).map_err(|_| StoreError::Corrupt {
            path: self.path.clone(),
            reason: "could not serialise".into(),
        })?;
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = self.path.with_file_name(tmp_name);
        let result = (|| {
            let mut file = restricted(OpenOptions::new().create(true).truncate(true).write(true))
                .open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(self.io("write"))
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.read()
    }

    fn compare_and_swap(
        &self,
        expected: Option<&RefreshToken>,
        new: &StoredTokens,
    ) -> Result<bool, StoreError> {
        let _lock = self.exclusive()?;
        let current = self.read()?;
        if let Some(current) = &current
            && current.refresh_token.as_ref() != expected
        {
            return Ok(false);
        }
        self.write(new)?;
        Ok(true)
    }

    fn lock_for_refresh(&self) -> Result<Option<StoreLock>, StoreError> {
        // A second lock file: `compare_and_swap` takes `.lock` itself while this is held.
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".refresh-lock");
        let file = restricted(OpenOptions::new().create(true).truncate(false).write(true))
            .open(self.path.with_file_name(name))
            .map_err(self.io("lock"))?;
        file.lock().map_err(self.io("lock"))?;
        Ok(Some(StoreLock { _file: file }))
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
