//! Deadlines from durations: `at + span`, where a span too long to add (`Duration::MAX` as "no
//! limit") gives the farthest deadline, never `at` itself and never a panic.
//!
//! `Instant + Duration` panics when the sum overflows the platform's clock, and the usual
//! fallback, `at.checked_add(span).unwrap_or(at)`, turns "no limit" into "no time at all": a
//! ticket taken over at once, a lease that has already lapsed, a retry deadline already past.
//! Every deadline in the workspace is made here instead.

use std::time::{Duration, Instant, SystemTime};

/// How far ahead the farthest deadline lies: 100 years (of 365 days). A longer span, up to
/// `Duration::MAX`, means "no limit" and is cut to this: far beyond any run of a process, and
/// short enough that any clock can add it to the current time, and that a library adding the
/// time left to its own clock reading later cannot overflow either.
pub const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `at + span` on the monotonic clock, with `span` cut to [`FAR_FUTURE`]: a huge span (no
/// limit) is a deadline in the far future, never `at` and never a panic. Should the platform's
/// clock not reach that far, the span is halved until it does, so the deadline is still the
/// farthest the clock can express.
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::machines::{FAR_FUTURE, saturating_add};
///
/// # #[allow(clippy::disallowed_methods)]
/// let now = Instant::now();
/// assert_eq!(saturating_add(now, Duration::from_secs(5)), now + Duration::from_secs(5));
/// assert_eq!(saturating_add(now, Duration::MAX), now + FAR_FUTURE);
/// ```
pub fn saturating_add(at: Instant, span: Duration) -> Instant {
    reach(at, span, Instant::checked_add)
}

/// [`saturating_add`] on the wall clock (a lease's or a stored token's expiry, which outlive a
/// process).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use helloflex_core::machines::{FAR_FUTURE, saturating_add_wall};
///
/// let now = SystemTime::now();
/// assert_eq!(saturating_add_wall(now, Duration::MAX), now + FAR_FUTURE); // no limit, no panic
/// ```
pub fn saturating_add_wall(at: SystemTime, span: Duration) -> SystemTime {
    reach(at, span, SystemTime::checked_add)
}

/// `at + span` as far as `add` reaches, with `span` at most [`FAR_FUTURE`].
fn reach<T>(at: T, span: Duration, add: impl Fn(&T, Duration) -> Option<T>) -> T {
    let mut span = span.min(FAR_FUTURE);
    // At most 62 halvings from 100 years down to a nanosecond.
    while !span.is_zero() {
        if let Some(later) = add(&at, span) {
            return later;
        }
        span /= 2;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // one real instant to count from
    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_span_that_fits_is_added_as_it_is() {
        let at = now();
        for span in [Duration::ZERO, Duration::from_nanos(1), Duration::from_secs(90), FAR_FUTURE] {
            assert_eq!(saturating_add(at, span), at + span);
        }
    }

    #[test]
    fn a_huge_span_is_the_far_future_not_now() {
        let at = now();
        for span in [
            Duration::MAX,
            Duration::from_secs(u64::MAX / 2),
            FAR_FUTURE + Duration::from_nanos(1),
            Duration::MAX.saturating_add(Duration::from_secs(90)),
        ] {
            assert_eq!(saturating_add(at, span), at + FAR_FUTURE, "{span:?}");
        }
    }

    #[test]
    fn the_wall_clock_saturates_the_same_way() {
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(
            saturating_add_wall(epoch, Duration::from_secs(7)),
            epoch + Duration::from_secs(7)
        );
        assert_eq!(saturating_add_wall(epoch, Duration::MAX), epoch + FAR_FUTURE);
    }

    #[test]
    fn a_clock_that_ends_sooner_is_taken_as_far_as_it_goes() {
        // A clock whose last representable instant is 1000 s: the span is halved until it fits.
        let add =
            |at: &u64, span: Duration| at.checked_add(span.as_secs()).filter(|sum| *sum <= 1000);
        assert_eq!(reach(10, Duration::MAX, add), 10 + FAR_FUTURE.as_secs() / (1 << 22));
        assert!(reach(10, Duration::MAX, add) <= 1000);
        assert!(reach(10, Duration::MAX, add) > 500, "within a factor of two of the end");
        assert_eq!(reach(10, Duration::from_secs(20), add), 30);
        // A clock already at its end stays there.
        assert_eq!(reach(1000, Duration::MAX, add), 1000);
    }
}
