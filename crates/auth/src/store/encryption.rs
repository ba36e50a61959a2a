//! Tokens sealed at rest: every store that writes tokens outside the process encrypts them by
//! default, with XChaCha20-Poly1305 (RustCrypto: pure Rust, audited, no C toolchain).
//!
//! A sealed record is `HFXT` | version (1) | key id length | key id | 24-byte nonce | ciphertext
//! and tag. The associated data binds the record to its identity (a file's path, a Redis key,
//! optionally a client id), so a record moved or copied to another identity does not open. A
//! fresh random nonce is drawn for every write. A [`KeyRing`] has one active key, which seals,
//! and any number of older ones, which only open: a record under an old key is sealed again
//! under the active one on its next write.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use helloflex_core::OpenError;
use zeroize::Zeroizing;

use crate::entropy::os_bytes;

const MAGIC: &[u8; 4] = b"HFXT";
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
/// Domain separation for the associated data.
const AAD_PREFIX: &[u8] = b"helloflex-token-record/1\0";

/// A 256-bit key with an id (the id is written in each record's header; it is not secret).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{Key, KeyRing};
///
/// let key = Key::generate("2026-11")?; // 32 random bytes, and an id (not secret)
/// let text = key.to_text(); // `2026-11:base64...`: keep it as secret as the tokens
/// let ring = KeyRing::parse(&text)?; // what every instance reads (`KeyRing::from_env`, `from_file`)
/// assert_eq!((key.id(), ring.active_id()), ("2026-11", "2026-11"));
/// # Ok::<(), helloflex::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Key {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?}, <redacted>)", self.id)
    }
}

/// A key or key ring could not be had.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{KeyError, KeyRing};
///
/// assert!(matches!(KeyRing::parse("k1:not-base64"), Err(KeyError::Malformed(_))));
/// assert_eq!(
///     KeyRing::from_env("HELLOFLEX_DOC_NO_SUCH_VARIABLE").unwrap_err(),
///     KeyError::MissingVariable("HELLOFLEX_DOC_NO_SUCH_VARIABLE".into())
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The environment variable is not set.
    #[error("no token key: the environment variable {0} is not set")]
    MissingVariable(String),
    /// The text is not `id:base64-of-32-bytes[,id:base64...]`.
    #[error("malformed token key: {0}")]
    Malformed(&'static str),
    /// The key file could not be read or written.
    #[error("token key file {path}: {kind}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
    /// The key file can be read by others (its mode must be 0600).
    #[error("token key file {0} is readable by group or others: chmod 600 it")]
    Permissions(PathBuf),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
}

impl Key {
    /// A key from its id (1-64 visible ASCII characters, no `:` or `,`) and 32 bytes.
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Result<Self, KeyError> {
        let id = id.into();
        let valid = (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_graphic() && b != b':' && b != b',');
        if !valid {
            return Err(KeyError::Malformed("a key id is 1-64 visible characters without : or ,"));
        }
        Ok(Self { id, bytes: Zeroizing::new(bytes) })
    }

    /// A new random key (from the OS RNG).
    pub fn generate(id: impl Into<String>) -> Result<Self, KeyError> {
        let bytes = os_bytes::<32>().map_err(|_| KeyError::Random)?;
        Self::new(id, bytes)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `id:base64`, the form [`KeyRing::parse`] reads. It holds the key: keep it secret.
    pub fn to_text(&self) -> Zeroizing<String> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(*self.bytes);
        Zeroizing::new(format!("{}:{encoded}", self.id))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.bytes).into())
    }
}

/// One key that seals and any number that only open (see the module docs).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{Key, KeyRing};
///
/// let old = Key::generate("2026-10")?;
/// let sealed = KeyRing::new(old.clone()).seal(b"tokens", b"my-client")?;
/// // Rotation: a new active key seals; the older one still opens what it sealed.
/// let ring = KeyRing::new(Key::generate("2026-11")?).with_older(old);
/// assert_eq!(&ring.open(&sealed, b"my-client")?[..], b"tokens");
/// assert!(!ring.is_current(&sealed)); // its next write re-seals it under the active key
/// // Bound to where it belongs: the same bytes under another identity do not open.
/// assert!(ring.open(&sealed, b"another-client").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyRing {
    active: Key,
    older: Vec<Key>,
}

impl KeyRing {
    /// A ring whose `active` key seals (and opens).
    pub fn new(active: Key) -> Self {
        Self { active, older: Vec::new() }
    }

    /// Adds a key that only opens (an older one, being rotated out).
    pub fn with_older(mut self, key: Key) -> Self {
        self.older.push(key);
        self
    }

    /// The active key's id.
    pub fn active_id(&self) -> &str {
        &self.active.id
    }

    /// Reads `id:base64[,id:base64...]` (commas or new lines between keys); the first is active.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = text.split([',', '\n']).map(str::trim).filter(|k| !k.is_empty()).map(|k| {
            let (id, encoded) =
                k.split_once(':').ok_or(KeyError::Malformed("a key is id:base64"))?;
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| KeyError::Malformed("a key is not base64"))?,
            );
            let bytes: [u8; 32] = decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::Malformed("a key is not 32 bytes"))?;
            Key::new(id, bytes)
        });
        let active = keys.next().ok_or(KeyError::Malformed("no key"))??;
        keys.try_fold(Self::new(active), |ring, key| Ok(ring.with_older(key?)))
    }

    /// The ring in the environment variable `name` (see [`KeyRing::parse`]).
    pub fn from_env(name: &str) -> Result<Self, KeyError> {
        let text = Zeroizing::new(
            std::env::var(name).map_err(|_| KeyError::MissingVariable(name.to_owned()))?,
        );
        Self::parse(&text)
    }

    /// The ring in a key file (see [`KeyRing::parse`]), which must be readable by its owner
    /// only (0600) on Unix.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let io = |e: std::io::Error| KeyError::Io { path: path.to_path_buf(), kind: e.kind() };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions(path.to_path_buf()));
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::parse(&text)
    }

    /// A new key file at `path` (created new, 0600) holding one fresh key named `id`.
    pub fn create_file(path: &Path, id: &str) -> Result<Self, KeyError> {
        use std::io::Write as _;
        let io = |e: std::io::Error| KeyError::Io { path: path.to_path_buf(), kind: e.kind() };
        let key = Key::generate(id)?;
        let mut options = std::fs::OpenOptions::new();
        options.create_new(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(key.to_text().as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self::new(key))
    }

    /// Seals `plaintext` under the active key, bound to `identity`.
    pub fn seal(&self, plaintext: &[u8], identity: &[u8]) -> Result<Vec<u8>, KeyError> {
        let nonce = os_bytes::<NONCE_BYTES>().map_err(|_| KeyError::Random)?;
        let id = self.active.id.as_bytes();
        let mut out = Vec::with_capacity(6 + id.len() + NONCE_BYTES + plaintext.len() + TAG_BYTES);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // A key id is at most 64 bytes (checked in `Key::new`).
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let aad = associated_data(identity);
        let sealed = self
            .active
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| KeyError::Malformed("the plaintext is too long to seal"))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a record sealed by [`KeyRing::seal`] for the same `identity`.
    pub fn open(&self, record: &[u8], identity: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let rest = record.strip_prefix(MAGIC.as_slice()).ok_or(OpenError::NotSealed)?;
        let (&version, rest) = rest.split_first().ok_or(OpenError::Truncated)?;
        if version != VERSION {
            return Err(OpenError::UnknownVersion);
        }
        let (&id_len, rest) = rest.split_first().ok_or(OpenError::Truncated)?;
        let (id, rest) = split(rest, usize::from(id_len))?;
        let (nonce, sealed) = split(rest, NONCE_BYTES)?;
        if sealed.len() < TAG_BYTES {
            return Err(OpenError::Truncated);
        }
        let key = std::iter::once(&self.active)
            .chain(&self.older)
            .find(|k| k.id.as_bytes() == id)
            .ok_or(OpenError::UnknownKey)?;
        let aad = associated_data(identity);
        key.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Unauthentic)
    }

    /// Whether `record` is sealed under the active key (else its next write re-seals it).
    pub fn is_current(&self, record: &[u8]) -> bool {
        let id = self.active.id.as_bytes();
        record.get(..4) == Some(MAGIC.as_slice())
            && record.get(5).is_some_and(|len| usize::from(*len) == id.len())
            && record.get(6..6 + id.len()) == Some(id)
    }
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), OpenError> {
    (bytes.len() >= at).then(|| bytes.split_at(at)).ok_or(OpenError::Truncated)
}

fn associated_data(identity: &[u8]) -> Vec<u8> {
    [AAD_PREFIX, identity].concat()
}
