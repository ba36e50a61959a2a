//! The store seam: what a store keeps ([`Record`]: the tokens as stored, the write-ahead
//! [`Claim`], the completed authorizations) and the two calls every store knows
//! ([`TokenStore::load`], answering [`Loaded`], and [`TokenStore::swap`], a compare-and-swap on
//! the record's version answering [`Swap`]).

use std::time::{Duration, UNIX_EPOCH};

use helloflex_core::{AccessToken, RefreshToken, StoreError, TokenSet};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// A token set as stored: the expiry is wall-clock time, so it survives a restart.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use helloflex::StoredTokens;
///
/// let tokens: StoredTokens = serde_json::from_str(
///     r#"{"access_token":"at","refresh_token":"rt","expires_at_unix_ms":1700000060000}"#,
/// )?;
/// let then = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(tokens.expires_in_at(then), Duration::from_secs(60));
/// assert_eq!(tokens.expires_in_at(SystemTime::now()), Duration::ZERO); // long expired
/// assert_eq!(format!("{:?}", tokens.access_token), "AccessToken(<redacted>)");
/// # Ok::<(), serde_json::Error>(())
/// ```
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
        Self::from_set_at(set, clock.now(), clock.wall())
    }

    /// The stored form of `set`, its expiry turned into wall time: `now` is `wall`.
    pub fn from_set_at(
        set: &TokenSet,
        now: std::time::Instant,
        wall: std::time::SystemTime,
    ) -> Self {
        let left = set.expires_at().saturating_duration_since(now);
        let expires = helloflex_core::machines::saturating_add_wall(wall, left);
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
        self.expires_in_at(clock.wall())
    }

    /// How long the access token stays valid from `wall` (zero once expired).
    pub fn expires_in_at(&self, wall: std::time::SystemTime) -> Duration {
        let expires = UNIX_EPOCH + Duration::from_millis(self.expires_at_unix_ms);
        expires.duration_since(wall).unwrap_or(Duration::ZERO)
    }

    /// A token set for the cache; an expired access token gets a zero lifetime (refreshed at once).
    pub fn to_set(&self, clock: &dyn Clock) -> TokenSet {
        self.to_set_at(clock.now(), clock.wall())
    }

    /// The same, read at `now`, which is `wall`.
    pub fn to_set_at(&self, now: std::time::Instant, wall: std::time::SystemTime) -> TokenSet {
        // A file can say anything: never trust a stored expiry beyond the longest lifetime.
        let left = self.expires_in_at(wall).min(helloflex_core::MAX_LIFETIME);
        TokenSet::new(
            self.access_token.clone(),
            self.refresh_token.clone(),
            now,
            left,
            self.scope.clone(),
        )
    }
}

/// One grant's record in a store, as every instance sharing it sees it. Every successful write
/// makes a new, higher version, so a write can be made conditional on the version it was
/// planned from (compare-and-swap); a writer picks the new version, and versions only grow
/// (after a store lost data, a write-back keeps the higher version it had).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{Record, StoredTokens};
///
/// let tokens: StoredTokens = serde_json::from_str(r#"{"access_token":"at","refresh_token":"rt","expires_at_unix_ms":4000000000000}"#)?;
/// let record = Record::new(tokens, 1);
/// // What a store keeps (serialised as JSON, then sealed by the built-in stores).
/// let json = serde_json::to_string(&record)?;
/// let back: Record = serde_json::from_str(&json)?;
/// assert_eq!((back.version, back.claim.is_none()), (1, true));
/// // Before the first write, a store answers for the version that stands for nothing.
/// assert_eq!(Record::version_of(None), Record::NOTHING_STORED);
/// assert_eq!(Record::version_of(Some(&back)), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// The version ([`Record::NOTHING_STORED`] stands for "nothing stored").
    #[serde(default)]
    pub version: u64,
    /// The tokens (none before the first sign-in completes, or after a sign-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<StoredTokens>,
    /// Who is spending the refresh token now (written before the request is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    /// Authorizations whose callback was accepted (most recent last, a few kept): a callback is
    /// exchanged once across every instance sharing the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
}

impl Record {
    /// The version that stands for "nothing stored": what a store holding no record answers
    /// a swap against, so what the first write expects; lower than every version written.
    pub const NOTHING_STORED: u64 = 0;

    /// The version of `record`, or [`Record::NOTHING_STORED`] when there is none: the version
    /// a swap planned from that read expects.
    pub fn version_of(record: Option<&Record>) -> u64 {
        record.map_or(Self::NOTHING_STORED, |r| r.version)
    }

    /// A record of `tokens` at `version`.
    pub fn new(tokens: StoredTokens, version: u64) -> Self {
        Self { version, tokens: Some(tokens), claim: None, completed: Vec::new() }
    }
}

/// A write-ahead claim: its holder is about to present (or is presenting) the record's refresh
/// token. Until the holder writes the answer (clearing the claim), no one else presents it; a
/// claim is taken over only after the taker itself watched it unchanged, the store reachable,
/// for the whole `budget_ms` (the longest the holder's request and write can take).
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::{Claim, Record, StoredTokens};
///
/// let tokens: StoredTokens = serde_json::from_str(r#"{"access_token":"at","refresh_token":"rt","expires_at_unix_ms":0}"#)?;
/// let mut record = Record::new(tokens, 7);
/// // Written (a swap on version 7) before the refresh token is sent: no one else sends it meanwhile.
/// record.claim = Some(Claim::new("instance-3/8f2c", Duration::from_secs(40)));
/// record.version = 8;
/// assert_eq!(record.claim.as_ref().map(|c| c.budget_ms), Some(40_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claim {
    /// Who holds it (a random name per token request; not a secret).
    pub holder: String,
    /// How long the holder may take, in milliseconds.
    pub budget_ms: u64,
}

impl Claim {
    /// A claim by `holder` for `budget`.
    pub fn new(holder: impl Into<String>, budget: Duration) -> Self {
        Self {
            holder: holder.into(),
            budget_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// What [`TokenStore::load`] found.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::{Loaded, MemoryStore, TokenStore};
///
/// assert!(MemoryStore::new().load()?.into_tokens().is_none()); // nothing stored yet
/// // A remote store that restarted 2 s ago says so: refreshes wait out the grace period.
/// let loaded = Loaded::new(None).with_epoch_age(Duration::from_secs(2));
/// assert_eq!(loaded.epoch_age, Some(Duration::from_secs(2)));
/// # Ok::<(), helloflex::StoreError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Loaded {
    /// The record, if any.
    pub record: Option<Record>,
    /// How long the store has kept its data without a restart, failover or loss that could
    /// have rolled it back, if it can tell (Redis can); `None` for a store that loses nothing
    /// on its own (memory, a file). While this is short, no refresh token is presented: live
    /// instances holding newer tokens than the store's get the time to write them back.
    pub epoch_age: Option<Duration>,
}

impl Loaded {
    /// `record`, from a store that loses nothing on its own.
    pub fn new(record: Option<Record>) -> Self {
        Self { record, epoch_age: None }
    }

    /// The same, from a store whose data lineage is `age` old.
    pub fn with_epoch_age(mut self, age: Duration) -> Self {
        self.epoch_age = Some(age);
        self
    }

    /// The stored tokens, if any.
    pub fn into_tokens(self) -> Option<StoredTokens> {
        self.record.and_then(|r| r.tokens)
    }
}

/// The answer to [`TokenStore::swap`].
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::{MemoryStore, Record, StoredTokens, Swap, TokenStore};
///
/// let store = MemoryStore::new();
/// let tokens: StoredTokens = serde_json::from_str(r#"{"access_token":"at","expires_at_unix_ms":0}"#)?;
/// let first = store.swap(0, &Record::new(tokens.clone(), 1))?;
/// assert!(matches!(first, Swap::Stored { version: 1, .. }));
/// // A second writer that also read version 0 loses: it reads again and decides again.
/// assert_eq!(store.swap(0, &Record::new(tokens, 2))?, Swap::Conflict);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Swap {
    /// Written as this version.
    Stored {
        /// The new version.
        version: u64,
        /// The store's epoch age as the write found it (see [`Loaded::epoch_age`]): a write
        /// planned before a restart or a rollback can land on the version it expected, and
        /// this tells the writer its data lineage changed meanwhile.
        epoch_age: Option<Duration>,
    },
    /// Not written: the store moved past the expected version.
    Conflict,
}

/// Where user tokens live between calls and processes, shared by every instance that uses it.
///
/// Two calls, both on the whole [`Record`]: read it, and replace it if its version is still
/// the one read. The token managers never hold their own lock while they call a store, and the
/// async manager runs store calls off the executor (through its runtime), so a store may block
/// on I/O. A store that can lose data on its own (a restart without persistence, a failover to
/// a replica behind the primary, a restore from a backup) says how long ago its data lineage
/// began ([`Loaded::epoch_age`]).
///
/// The protocol every store then serves (`docs/fleet.md`): read -> claim the refresh token
/// (a swap that writes a [`Claim`]) -> send -> swap the answer in, clearing the claim. A
/// new sign-in swaps on the version it read.
///
/// A failure is a [`StoreError`] whose [`StoreErrorKind`](helloflex_core::StoreErrorKind) says whether asking again can help
/// (the managers ask a transient failure again until their store timeout) and whose detail
/// names no stored value; callers see the same value as `Error::Store`.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::sync::{Arc, Mutex, PoisonError};
/// use helloflex::{Loaded, Record, StoreError, Swap, TokenStore};
/// # use helloflex::{AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment};
/// # use helloflex::InsecureLoopback::Allow;
/// # let emulator = helloflex::emulator::start(Default::default())?;
/// # let app = emulator.flextell("http://127.0.0.1:3000/callback");
/// # let config = AuthorizationCodeConfig::builder(ClientIdentity::confidential(app.client_id, ClientSecret::new(app.client_secret)))
/// #     .authorize_url(Endpoint::parse(&app.authorize_url, Allow)?)
/// #     .token_url(Endpoint::parse(&app.token_url, Allow)?)
/// #     .redirect_uri(Endpoint::parse(&app.redirect_uri, Allow)?)
/// #     .build()?;
/// # let environment = Environment::custom(&app.base_url, Allow)?;
///
/// /// User tokens in your own database (here a mutex): read the record, and replace it only if
/// /// its version is still the one read.
/// #[derive(Debug, Default)]
/// struct MyStore(Mutex<Option<Record>>);
///
/// impl TokenStore for MyStore {
///     fn load(&self) -> Result<Loaded, StoreError> {
///         Ok(Loaded::new(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()))
///     }
///
///     fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
///         let mut stored = self.0.lock().unwrap_or_else(PoisonError::into_inner);
///         let version = Record::version_of(stored.as_ref());
///         if version != expected || new.version <= version {
///             return Ok(Swap::Conflict);
///         }
///         *stored = Some(new.clone());
///         Ok(Swap::Stored { version: new.version, epoch_age: None })
///     }
/// }
///
/// let store = Arc::new(MyStore::default());
/// let client = helloflex::blocking::Client::builder()
///     .environment(environment)
///     .authorization_code(config, store.clone())
///     .build()?;
/// let (url, pending) = client.start_authorization()?;
/// client.complete_authorization(&pending, &emulator.approve(&url)?)?;
/// assert!(store.load()?.into_tokens().is_some_and(|t| t.refresh_token.is_some()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The stored record, if any.
    fn load(&self) -> Result<Loaded, StoreError>;

    /// Writes `new` if the stored version is still `expected` ([`Record::NOTHING_STORED`]:
    /// nothing stored) and
    /// `new.version` is higher; answers which version is stored.
    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError>;
}

/// The compare-and-swap rule every built-in store applies: the version read must still be
/// stored, and the new one must be higher.
pub(super) fn admits(current: u64, expected: u64, new: &Record) -> bool {
    current == expected && new.version > expected
}
