//! The clock: the one place outside tests that reads the time.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Where `now` comes from. The core is handed its readings; nothing else reads the time.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::{Duration, UNIX_EPOCH};
/// use helloflex::{Clock, ManualClock, StoredTokens};
///
/// let tokens: StoredTokens = serde_json::from_str(r#"{"access_token":"at","expires_at_unix_ms":0}"#)?;
/// let clock = ManualClock::new();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - before, Duration::from_secs(5));
/// assert!(clock.wall() > UNIX_EPOCH);
/// assert_eq!(tokens.expires_in(&clock), Duration::ZERO); // read against any clock
/// # Ok::<(), serde_json::Error>(())
/// ```
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time, for expiry and deadlines.
    fn now(&self) -> Instant;
    /// Wall time, only for values that outlive the process (a stored expiry).
    fn wall(&self) -> SystemTime;
}

/// The system's clocks.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::sync::Arc;
/// use helloflex::{Clock, ClientSecret, SystemClock};
///
/// let clock: Arc<dyn Clock> = Arc::new(SystemClock); // every client's default
/// let client = helloflex::blocking::Client::builder()
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .clock(clock.clone())
///     .build()?;
/// assert!(clock.wall() > std::time::UNIX_EPOCH);
/// # drop(client);
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[allow(clippy::disallowed_methods)] // this is the clock
impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told: every timing scenario in tests is deterministic.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::sync::Arc;
/// use std::time::Duration;
/// use helloflex::ManualClock;
/// # use helloflex::{ClientSecret, Environment, InsecureLoopback};
/// # let emulator = helloflex::emulator::start(Default::default())?;
/// # let base = Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?;
///
/// let clock = Arc::new(ManualClock::new());
/// let client = helloflex::blocking::Client::builder()
///     .environment(base)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .clock(clock.clone())
///     .build()?;
/// client.get("news").send()?;
/// clock.advance(Duration::from_secs(3600)); // the token's hour passes, in no time
/// client.get("news").send()?;
/// assert_eq!(emulator.counters().total_token_requests(), 2); // so a new one was fetched
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<(Instant, SystemTime)>,
}

impl ManualClock {
    /// A clock starting at the real current time (read once).
    #[allow(clippy::disallowed_methods)] // one real reading to start from
    pub fn new() -> Self {
        Self { state: Mutex::new((Instant::now(), SystemTime::now())) }
    }

    /// Moves both clocks forward (by at most [`helloflex_core::machines::FAR_FUTURE`]: a huge
    /// step saturates like every deadline does, rather than panic).
    pub fn advance(&self, by: Duration) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0 = helloflex_core::machines::saturating_add(state.0, by);
        state.1 = helloflex_core::machines::saturating_add_wall(state.1, by);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0
    }
    fn wall(&self) -> SystemTime {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1
    }
}
