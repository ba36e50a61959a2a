//! The clock: the one place outside tests that reads the time.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Where `now` comes from. The core is handed its readings; nothing else reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time, for expiry and deadlines.
    fn now(&self) -> Instant;
    /// Wall time, only for values that outlive the process (a stored expiry).
    fn wall(&self) -> SystemTime;
}

/// The system's clocks.
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
