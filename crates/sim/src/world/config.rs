//! What a run simulates: the fleet's size and pace, how long faults may happen, and which.

use std::time::Duration;

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Config {
    /// Instances of the service.
    pub instances: usize,
    /// Users, each with a token set of their own in the shared store.
    pub users: usize,
    /// Access token lifetime.
    pub lifetime: Duration,
    /// How often each instance calls the API for each user.
    pub call_every: Duration,
    /// How long faults and reorderings may happen.
    pub horizon: Duration,
    /// After the horizon, how long the fleet runs without faults before it must have settled.
    pub settle: Duration,
    /// Faults allowed in one run (failed or lost store calls, lost answers, crashes, store
    /// down, restarts, rollbacks).
    pub max_faults: u32,
    /// Crashes allowed in one run (also counted as faults).
    pub max_crashes: u32,
    /// Which store faults may happen.
    pub store_faults: StoreFaults,
}

/// The store faults a run may meet.
#[derive(Debug, Clone, Copy)]
pub struct StoreFaults {
    /// A call fails before it is applied, or is applied and its answer lost.
    pub calls: bool,
    /// The store is down for a while (every call fails) and comes back.
    pub down: bool,
    /// The store restarts keeping its data (persistence on).
    pub restart: bool,
    /// The store restarts empty (persistence off).
    pub wipe: bool,
    /// The store restarts from the snapshot before its last write.
    pub rollback: bool,
    /// The records vanish while the store stays up (an eviction, `DEL`, an expiry,
    /// `RedisStore::delete`).
    pub evict: bool,
    /// The store's clock steps back an hour.
    pub clock_back: bool,
    /// The store's clock steps forward an hour. Not among [`StoreFaults::all`]: right after a
    /// restart it cuts the grace period short, a limit docs/fleet.md states.
    pub clock_forward: bool,
}

impl StoreFaults {
    /// Every fault the protocol is meant to survive.
    pub fn all() -> Self {
        Self {
            calls: true,
            down: true,
            restart: true,
            wipe: true,
            rollback: true,
            evict: true,
            clock_back: true,
            clock_forward: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            instances: 2,
            users: 1,
            lifetime: Duration::from_secs(60),
            call_every: Duration::from_secs(20),
            horizon: Duration::from_secs(130),
            settle: Duration::from_secs(240),
            max_faults: 2,
            max_crashes: 1,
            store_faults: StoreFaults::all(),
        }
    }
}
