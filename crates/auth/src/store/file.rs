//! Tokens in a file ([`FileStore`]): sealed with a key ring, written atomically, changed only
//! inside short critical sections under an OS lock on `<file>.lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use helloflex_core::{StoreError, StoreErrorKind};
use serde::Deserialize;

use super::encryption::KeyRing;
use super::seam::{Loaded, Record, StoredTokens, Swap, TokenStore, admits};

/// Largest token file read (1 MiB); a larger file is reported corrupt, not read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Tokens in a file, encrypted (see [`crate::KeyRing`]): written atomically (a new temporary
/// file, fsync, rename, directory fsync), mode 0600 on Unix. The whole [`Record`] (version,
/// tokens, claim) is the file's content, changed only inside a short critical section under an
/// OS lock on `<file>.lock` (never held across a network request; waited for at most
/// [`FileStore::with_lock_timeout`]).
/// A corrupt file, or one that does not open with the key ring (wrong key, tampered, truncated,
/// moved from another path), is reported, never overwritten.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{FileStore, Key, KeyRing, OpenError, StoreErrorKind, TokenStore};
/// let dir = std::env::temp_dir().join(format!("helloflex-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let keys = KeyRing::new(Key::generate("k1")?); // or KeyRing::from_env / from_file
/// let store = FileStore::new(dir.join("tokens"), keys);
/// assert!(store.load()?.record.is_none());
/// // A file that is not a record sealed for this path and key ring is reported, typed, and
/// // left as it is: asking again will not help.
/// std::fs::write(store.path(), b"not an encrypted record")?;
/// let error = store.load().unwrap_err();
/// assert_eq!(error.kind, StoreErrorKind::DoesNotOpen(OpenError::NotSealed));
/// assert!(!error.is_transient());
/// assert_eq!(std::fs::read(store.path())?, b"not an encrypted record");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    protection: Protection,
    lock_timeout: Duration,
}

/// How long a file store waits for another process's lock by default.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a file store protects what it writes.
#[derive(Debug, Clone)]
enum Protection {
    /// Encrypted with the ring's active key, bound to the file's path and `binding`.
    Sealed { keys: Arc<KeyRing>, binding: String },
    /// JSON in clear: only through [`FileStore::plaintext_insecure`].
    Plaintext,
}

/// What a file holds: a [`Record`], or (written before claims existed) a token set beside its
/// version, read as a record.
#[derive(Deserialize)]
#[serde(untagged)]
enum FileContent {
    // First: a record's fields are all optional, so a record would take any object.
    TokensOnly {
        #[serde(flatten)]
        tokens: StoredTokens,
        #[serde(default = "first_version")]
        version: u64,
    },
    Record(Record),
}

fn first_version() -> u64 {
    1
}

impl FileStore {
    /// A store at `path` (created on first write; its directory must exist), encrypted with
    /// `keys`.
    pub fn new(path: impl Into<PathBuf>, keys: KeyRing) -> Self {
        let protection = Protection::Sealed { keys: Arc::new(keys), binding: String::new() };
        Self { path: path.into(), protection, lock_timeout: LOCK_TIMEOUT }
    }

    /// A store that writes tokens **in clear** (JSON, mode 0600). Anyone who can read the file,
    /// a backup of it or the disk it is on can use the refresh token: prefer [`FileStore::new`].
    pub fn plaintext_insecure(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), protection: Protection::Plaintext, lock_timeout: LOCK_TIMEOUT }
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
            Protection::Sealed { keys, binding } => {
                keys.open(&bytes, &self.identity(binding)).map_err(|problem| {
                    let kind = StoreErrorKind::DoesNotOpen(problem);
                    StoreError::new("read", kind, self.path.display().to_string())
                })
            }
        }
    }

    /// The bytes to write for `json`.
    fn seal(&self, json: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.protection {
            Protection::Plaintext => Ok(json.to_vec()),
            Protection::Sealed { keys, binding } => {
                keys.seal(json, &self.identity(binding)).map_err(|problem| {
                    let detail = format!("{}: sealing failed: {problem}", self.path.display());
                    StoreError::new("write", StoreErrorKind::Unwritable, detail)
                })
            }
        }
    }

    /// How long a call waits for another process's lock on the file before it fails (default
    /// 10 s): a process stuck inside its critical section cannot stall every other one.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, op: &'static str) -> impl Fn(io::Error) -> StoreError + '_ {
        move |e| {
            // A lock not had in time can pass; any other OS error (permission denied, a full
            // disk) is a refusal, which can pass too once someone fixes it.
            let kind = match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StoreErrorKind::TimedOut,
                _ => StoreErrorKind::Refused,
            };
            StoreError::new(op, kind, format!("{}: {}", self.path.display(), e.kind()))
        }
    }

    fn corrupt(&self, path: &Path, reason: &str) -> StoreError {
        StoreError::new("read", StoreErrorKind::Corrupt, format!("{}: {reason}", path.display()))
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// Runs `f` holding the OS lock on `<file>.lock`: a few small reads and writes, no network.
    /// Another process's lock is waited for at most the lock timeout.
    fn exclusive<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let file = restricted(OpenOptions::new().create(true).truncate(false).write(true))
            .open(self.sibling(".lock"))
            .map_err(self.io("lock"))?;
        let mut waited = Duration::ZERO;
        let step = Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if waited < self.lock_timeout => {
                    std::thread::sleep(step);
                    waited += step;
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(self.io("lock")(io::ErrorKind::TimedOut.into()));
                }
                Err(fs::TryLockError::Error(e)) => return Err(self.io("lock")(e)),
            }
        }
        f()
    }

    fn read(&self) -> Result<Option<Record>, StoreError> {
        let Some(bytes) = self.read_bytes(&self.path)? else { return Ok(None) };
        let bytes = self.unseal(bytes)?;
        let content: FileContent = serde_json::from_slice(&bytes).map_err(|e| {
            let at = format!("{:?} at line {} column {}", e.classify(), e.line(), e.column());
            self.corrupt(&self.path, &at)
        })?;
        Ok(Some(match content {
            // Every record this store writes has a version: an object without one is not a
            // record (a file of something else, or tokens with a field of the wrong type),
            // and reading it as "nothing stored" would let the next write replace it.
            FileContent::Record(record) if record.version == Record::NOTHING_STORED => {
                return Err(self.corrupt(&self.path, "a JSON object that is not a token record"));
            }
            FileContent::Record(record) => record,
            FileContent::TokensOnly { tokens, version } => Record::new(tokens, version),
        }))
    }

    fn read_bytes(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read")(e)),
        };
        let len = file.metadata().map_err(self.io("read"))?.len();
        if len > MAX_FILE_BYTES {
            return Err(self.corrupt(path, "larger than 1 MiB"));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
            .map_err(self.io("read"))?;
        Ok(Some(bytes))
    }

    fn unserialisable(&self) -> StoreError {
        let detail = format!("{}: the record did not serialise", self.path.display());
        StoreError::new("write", StoreErrorKind::Unwritable, detail)
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
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::new(self.read()?))
    }

    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
        self.exclusive(|| {
            let current = Record::version_of(self.read()?.as_ref());
            if !admits(current, expected, new) {
                return Ok(Swap::Conflict);
            }
            let json = zeroize::Zeroizing::new(
                serde_json::to_vec_pretty(new).map_err(|_| self.unserialisable())?,
            );
            self.write_atomically(&self.path, &self.seal(&json)?)?;
            Ok(Swap::Stored { version: new.version, epoch_age: None })
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
