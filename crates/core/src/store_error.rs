//! What a token store's failure is: the operation, a kind a program can match (which decides
//! whether asking again can help) and a detail that names no stored value; and why a sealed
//! record does not open. Every store reports its failures this way (memory, file, Redis, SQL, a
//! user's own), and a call's error carries the same value as `Error::Store`: one description
//! from the store to the user, never flattened into text on the way.

use std::fmt;

/// A token store failed: what was being done ([`StoreError::op`]), what kind of failure
/// ([`StoreErrorKind`], which says whether asking again can help) and where and why in words
/// ([`StoreError::detail`]: a file's path, a record's key, a database's error class, never a
/// token, a stored value or a password), so it is safe to log.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Blame, Error, StoreError, StoreErrorKind};
///
/// // What a store of your own reports when its database does not answer in time.
/// let failure = StoreError::new("read", StoreErrorKind::TimedOut, "no answer within 2 s");
/// assert!(failure.is_transient()); // the SDK asks again until its store timeout
/// let error = Error::from(failure);
/// assert_eq!(error.blame(), Blame::Storage);
/// assert_eq!(error.to_string(), "token store read failed (timed out): no answer within 2 s");
/// // The structure reaches the caller as it left the store.
/// assert!(matches!(&error, Error::Store(e) if e.kind == StoreErrorKind::TimedOut));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token store {op} failed ({kind}): {detail}")]
#[non_exhaustive]
pub struct StoreError {
    /// What was being done: `read`, `write`, `lock`, `claim`, `open`, `delete`, ...
    pub op: &'static str,
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// Where and why, in words: never a token, a stored value or a password.
    pub detail: String,
}

impl StoreError {
    /// A failure of `op`, of `kind`, described by `detail` (which must name no secret).
    pub fn new(op: &'static str, kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        Self { op, kind, detail: detail.into() }
    }

    /// Whether asking again may help (see [`StoreErrorKind::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

/// What kind of store failure happened: the class a program matches on, and the one that
/// decides whether asking the store again can help.
///
/// ```
/// use helloflex_core::{OpenError, StoreErrorKind};
///
/// // The store away or slow, another holder busy, the store recovering: ask again later.
/// assert!(StoreErrorKind::Unreachable.is_transient());
/// assert!(StoreErrorKind::Busy.is_transient());
/// // A record that does not open, a schema this SDK cannot use, a setting: asking again
/// // changes nothing until someone fixes it.
/// assert!(!StoreErrorKind::DoesNotOpen(OpenError::UnknownKey).is_transient());
/// assert!(!StoreErrorKind::SchemaMismatch.is_transient());
/// assert!(!StoreErrorKind::Setting.is_transient());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached (a refused, dropped or failed connection).
    Unreachable,
    /// The store did not answer in time, or a lock on it was not granted in time.
    TimedOut,
    /// The call did not finish: the worker running it was lost (its runtime shut down).
    Interrupted,
    /// Another holder kept its claim on the refresh token past this holder's deadline.
    Busy,
    /// The store restarted or lost data a moment ago: no refresh token is presented until
    /// every live instance had the time to write back newer tokens than the store's.
    Recovering,
    /// The store answered but did not do it: an OS error (permission denied, a full disk), a
    /// statement or command refused (a read-only replica, a table dropped, a server loading
    /// its data). Treated as transient: such a state is often fixed while the SDK asks again.
    Refused,
    /// A record is there but is not a token record (it is left as it is).
    Corrupt,
    /// A record is there but its encryption does not open (it is left as it is).
    DoesNotOpen(OpenError),
    /// A record could not be made ready to write (serialised, or sealed: the OS random number
    /// generator failed).
    Unwritable,
    /// The store's schema is not the one this SDK reads and writes (older, and not migrated;
    /// or newer, from a later release).
    SchemaMismatch,
    /// A setting the store cannot use (an address, a certificate, a table prefix, a feature
    /// this build does not include).
    Setting,
}

impl StoreErrorKind {
    /// Whether asking again may help (the store unreachable or slow, a lock or a claim held
    /// elsewhere, a restart being recovered from, a refusal that can pass), rather than a
    /// record, a schema or a setting that stays wrong until someone fixes it.
    pub fn is_transient(self) -> bool {
        match self {
            StoreErrorKind::Unreachable
            | StoreErrorKind::TimedOut
            | StoreErrorKind::Interrupted
            | StoreErrorKind::Busy
            | StoreErrorKind::Recovering
            | StoreErrorKind::Refused => true,
            StoreErrorKind::Corrupt
            | StoreErrorKind::DoesNotOpen(_)
            | StoreErrorKind::Unwritable
            | StoreErrorKind::SchemaMismatch
            | StoreErrorKind::Setting => false,
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Unreachable => "unreachable",
            StoreErrorKind::TimedOut => "timed out",
            StoreErrorKind::Interrupted => "interrupted",
            StoreErrorKind::Busy => "another holder is refreshing",
            StoreErrorKind::Recovering => "recovering from a restart",
            StoreErrorKind::Refused => "refused",
            StoreErrorKind::Corrupt => "not a token record, left untouched",
            StoreErrorKind::DoesNotOpen(why) => return write!(f, "{why}, left untouched"),
            StoreErrorKind::Unwritable => "the record could not be written",
            StoreErrorKind::SchemaMismatch => "schema mismatch",
            StoreErrorKind::Setting => "unusable setting",
        })
    }
}

/// Why a sealed (encrypted) record did not open.
///
/// ```
/// use helloflex_core::OpenError;
///
/// let why = OpenError::UnknownKey.to_string();
/// assert_eq!(why, "an encrypted token record under a key that is not in the key ring");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a sealed record (for example a plaintext token file).
    #[error("not an encrypted token record")]
    NotSealed,
    /// A format version this SDK does not know.
    #[error("an encrypted token record of an unknown format version")]
    UnknownVersion,
    /// Shorter than its header says.
    #[error("a truncated encrypted token record")]
    Truncated,
    /// Sealed under a key id that is not in the key ring.
    #[error("an encrypted token record under a key that is not in the key ring")]
    UnknownKey,
    /// The key did not open it: a wrong key with a reused id, a tampered record, or a record
    /// moved from another file or key.
    #[error("an encrypted token record that does not authenticate (wrong key, tampered, or moved)")]
    Unauthentic,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a store says about a record reaches `Debug` and `Display` as its kind and detail:
    /// the detail a store writes names where, never what; nothing else is added on the way.
    #[test]
    fn debug_and_display_show_only_op_kind_and_detail() {
        let error = StoreError::new(
            "read",
            StoreErrorKind::DoesNotOpen(OpenError::Unauthentic),
            "record helloflex:{app}:tokens",
        );
        let shown = format!("{error} {error:?}");
        assert_eq!(
            error.to_string(),
            "token store read failed (an encrypted token record that does not authenticate \
             (wrong key, tampered, or moved), left untouched): record helloflex:{app}:tokens"
        );
        assert!(shown.contains("Unauthentic") && shown.contains("\"read\""), "{shown}");
        assert!(!error.is_transient());
    }

    /// Every kind says whether asking again helps, and reads on its own.
    #[test]
    fn every_kind_is_classified_and_named() {
        let kinds = [
            (StoreErrorKind::Unreachable, true),
            (StoreErrorKind::TimedOut, true),
            (StoreErrorKind::Interrupted, true),
            (StoreErrorKind::Busy, true),
            (StoreErrorKind::Recovering, true),
            (StoreErrorKind::Refused, true),
            (StoreErrorKind::Corrupt, false),
            (StoreErrorKind::DoesNotOpen(OpenError::NotSealed), false),
            (StoreErrorKind::Unwritable, false),
            (StoreErrorKind::SchemaMismatch, false),
            (StoreErrorKind::Setting, false),
        ];
        for (kind, transient) in kinds {
            assert_eq!(kind.is_transient(), transient, "{kind:?}");
            assert!(!kind.to_string().is_empty());
        }
    }
}
