//! `ManagerOptions`: the settings every token manager shares (lifecycle, retries, the time
//! allowed a request and the store), beneath both the manager and its fill jobs.

use std::time::Duration;

use helloflex_core::{LifecyclePolicy, RetryPolicy};

/// Settings shared by every token manager.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::{ClientSecret, LifecyclePolicy, ManagerOptions, RetryPolicy};
///
/// let mut lifecycle = LifecyclePolicy::default();
/// lifecycle.max_refresh_margin = Duration::from_secs(60);
/// let options = ManagerOptions::default()
///     .with_lifecycle(lifecycle)
///     .with_retry(RetryPolicy::default().with_max_attempts(3)) // token requests
///     .with_store_check(Duration::from_secs(30)); // a shared store, read this often
/// let client = helloflex::blocking::Client::builder()
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .token_options(options)
///     .build()?;
/// # drop(client);
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManagerOptions {
    /// Token lifecycle tuning (refresh margin, default lifetime, backoff).
    pub lifecycle: LifecyclePolicy,
    /// Retries of one token request (a refresh included: see the replay rule).
    pub retry: RetryPolicy,
    /// The longest one HTTP attempt can take on the transport (its connect plus total
    /// timeouts). With the retry deadline it bounds a token request, and so how long its ticket
    /// and its store lease live: a waiting caller never takes over a request still in flight.
    /// `Duration::MAX` means no limit: the ticket and the claim then last into the far future
    /// ([`helloflex_core::machines::saturating_add`]), never end at once. With a shared store,
    /// that also means a claim whose holder died mid-refresh is never taken over (nobody can
    /// know its request ended): keep it finite in a fleet.
    pub attempt_timeout: Duration,
    /// Time allowed for the token store's own calls within one token request; a store that
    /// fails (restarting, unreachable) is asked again until then. A claim on the refresh token
    /// declares the request's budget plus twice this (the claim and the answer's write).
    /// `Duration::MAX` means no limit, as above; below 50 ms counts as 50 ms.
    pub store_timeout: Duration,
    /// After a shared store restarted or lost data (as it reports, see
    /// [`crate::Loaded::epoch_age`]), no refresh token is presented for this long, so that
    /// live instances holding newer tokens than the store's write them back first. Keep it
    /// longer than `store_check` plus the time between two calls of an instance.
    pub restart_grace: Duration,
    /// While callers ask for user tokens, their store is read this often (in the background):
    /// a set another instance stored is adopted early, and one the store lost is written back
    /// within the grace period. `Duration::MAX` never looks.
    pub store_check: Duration,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            lifecycle: LifecyclePolicy::default(),
            retry: RetryPolicy::default(),
            attempt_timeout: Duration::from_secs(90),
            store_timeout: Duration::from_secs(10),
            restart_grace: Duration::from_secs(30),
            store_check: Duration::from_secs(10),
        }
    }
}

impl ManagerOptions {
    /// Sets the lifecycle tuning.
    pub fn with_lifecycle(mut self, lifecycle: LifecyclePolicy) -> Self {
        self.lifecycle = lifecycle;
        self
    }
    /// Sets the token-request retries.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Sets the time allowed for the token store's own calls.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }
    /// Sets the longest one HTTP attempt can take.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }
    /// Sets how long refreshes wait after a shared store restarted or lost data.
    pub fn with_restart_grace(mut self, grace: Duration) -> Self {
        self.restart_grace = grace;
        self
    }
    /// Sets how often a store of user tokens is read while callers call.
    pub fn with_store_check(mut self, every: Duration) -> Self {
        self.store_check = every;
        self
    }
}
