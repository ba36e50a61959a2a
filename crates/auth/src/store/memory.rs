//! Tokens in memory ([`MemoryStore`]): lost at exit, shared by the managers that hold it.

use std::sync::{Mutex, PoisonError};

use helloflex_core::StoreError;

use super::seam::{Loaded, Record, Swap, TokenStore, admits};

/// Tokens in memory: lost at exit. Several managers sharing one `MemoryStore` behave like
/// several processes sharing a remote store (handy in tests).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{MemoryStore, Record, StoredTokens, Swap, TokenStore};
///
/// let store = MemoryStore::new();
/// let tokens: StoredTokens = serde_json::from_str(
///     r#"{"access_token":"at","refresh_token":"rt","expires_at_unix_ms":4000000000000}"#,
/// )?;
/// // Writes are compare-and-swap on the version read (nothing stored yet: the first write).
/// let nothing = Record::NOTHING_STORED;
/// assert!(matches!(store.swap(nothing, &Record::new(tokens.clone(), 1))?, Swap::Stored { version: 1, .. }));
/// assert_eq!(store.swap(nothing, &Record::new(tokens, 2))?, Swap::Conflict);
/// assert_eq!(store.load()?.record.map(|r| r.version), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    record: Mutex<Option<Record>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Option<Record>> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::new(self.record().clone()))
    }

    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
        let mut record = self.record();
        let current = Record::version_of(record.as_ref());
        if !admits(current, expected, new) {
            return Ok(Swap::Conflict);
        }
        *record = Some(new.clone());
        Ok(Swap::Stored { version: new.version, epoch_age: None })
    }
}
