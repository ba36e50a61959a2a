//! Retry policy: bounded attempts, exponential backoff with handed-in jitter, `Retry-After`
//! honoured up to a cap, and a total deadline.

use std::time::{Duration, Instant};

use crate::deadline::{FAR_FUTURE, saturating_add};

/// How an exchange retries. The defaults suit interactive API calls.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use std::time::Duration;
/// use helloflex::RetryPolicy;
///
/// // On a client builder: `.retry_policy(patient)` (API calls) or, for token requests,
/// // `.token_options(ManagerOptions::default().with_retry(..))`.
/// let patient = RetryPolicy::default()
///     .with_max_attempts(6)
///     .with_backoff(Duration::from_millis(500), Duration::from_secs(10))
///     .with_deadline(Duration::from_secs(60));
/// assert_eq!(patient.max_attempts, 6);
/// assert_eq!(RetryPolicy::never().max_attempts, 1); // the first attempt only
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled after each further failure.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt. `Duration::MAX` (any
    /// span beyond [`crate::machines::FAR_FUTURE`]) means no limit.
    pub deadline: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn never() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Sets the number of attempts (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the initial and largest backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the total deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the longest `Retry-After` that is waited for.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The backoff before attempt `failures + 1`, scaled into `[1/2, 1]` of the exponential
    /// value by `jitter` (in `[0, 1)`).
    pub(crate) fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        jittered_backoff(self.initial_backoff, self.max_backoff, failures, jitter)
    }
}

/// The one backoff: `initial` doubled per failure after the first, at most `max`, scaled into
/// `[1/2, 1]` of that by `jitter` (in `[0, 1)`). Used between the attempts of one exchange and
/// between failed token fetches.
pub(crate) fn jittered_backoff(
    initial: Duration,
    max: Duration,
    failures: u32,
    jitter: f64,
) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    // Cut to the farthest deadline first: `Duration::MAX.mul_f64(x)` panics where `x` rounds
    // to 1.0, and a wait that long is no limit anyway.
    exp.min(max).min(FAR_FUTURE).mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A small deterministic generator (SplitMix64) seeded with handed-in entropy, so the core never
/// touches the OS RNG and tests are repeatable.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn next_fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Counts attempts of one exchange and decides whether another is allowed.
#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    policy: RetryPolicy,
    jitter: Jitter,
    started: Option<Instant>,
    made: u32,
}

impl Attempts {
    pub(crate) fn new(policy: RetryPolicy, seed: u64) -> Self {
        Self { policy, jitter: Jitter::new(seed), started: None, made: 0 }
    }

    /// Records that an attempt is being sent at `now`.
    pub(crate) fn record(&mut self, now: Instant) {
        self.started.get_or_insert(now);
        self.made += 1;
    }

    pub(crate) fn made(&self) -> u32 {
        self.made
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// When to retry after a retryable failure, or `None` to give up.
    pub(crate) fn next_attempt(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
    ) -> Option<Instant> {
        if self.made >= self.policy.max_attempts {
            return None;
        }
        let delay = match retry_after {
            Some(wait) if wait > self.policy.max_retry_after => return None,
            Some(wait) => wait,
            None => self.policy.backoff(self.made, self.jitter.next_fraction()),
        };
        // A wait the clock cannot even express is not waited for; a deadline it cannot express
        // is no limit (the far future), not "no retry".
        let at = now.checked_add(delay)?;
        let deadline = saturating_add(self.started.unwrap_or(now), self.policy.deadline);
        (at <= deadline).then_some(at)
    }
}

/// Whether an answer with `status` is worth the same request again later: a 408, a 429, any
/// 5xx. The one rule, for the token endpoint and API calls alike (`ApiError::is_transient`).
pub(crate) fn transient_status(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429) || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.999_999).as_millis(), 199);
        assert_eq!(p.backoff(1, 0.0).as_millis(), 100);
        assert_eq!(p.backoff(3, 0.0).as_millis(), 400);
        assert_eq!(p.backoff(40, 0.0), Duration::from_millis(2500));
    }

    #[test]
    fn a_backoff_without_limit_is_cut_to_the_far_future_not_a_panic() {
        // A factor of 1.0 times `Duration::MAX` is out of `Duration`'s range in f64.
        for jitter in [1.0, 0.5, 0.0] {
            let wait = jittered_backoff(Duration::MAX, Duration::MAX, 3, jitter);
            assert!(wait >= FAR_FUTURE / 2 && wait <= FAR_FUTURE, "{wait:?}");
        }
    }

    #[test]
    fn jitter_is_in_range_and_deterministic() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        for _ in 0..1000 {
            let x = a.next_fraction();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.next_fraction());
        }
    }
}
