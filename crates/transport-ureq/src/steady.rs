//! [`SteadyTimeouts`]: hands ureq's socket layer each read and write timeout rounded down to
//! the millisecond, so a pooled connection keeps the one it already has.
//!
//! Under a total deadline ureq gives every read and write the time left, which differs by
//! microseconds from one call to the next, and its TCP transport sets the socket's timeout
//! again whenever the value differs: a `setsockopt` system call per write and per read, on
//! every call. Rounded down, the value repeats (a loopback call takes microseconds), and the
//! system calls go. The wait never reaches past the deadline: it only ends up to a
//! millisecond sooner. ureq checks the deadline itself before each step.

use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Below this, the time left is handed on as it is (rounding would end the wait too soon).
const ROUNDING_FROM: std::time::Duration = std::time::Duration::from_millis(2);

/// The connector that wraps the transport the chain before it made (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SteadyTimeouts;

impl Connector<Box<dyn Transport>> for SteadyTimeouts {
    type Out = Steady;

    fn connect(
        &self,
        _details: &ConnectionDetails<'_>,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(Steady))
    }
}

/// A transport whose read and write timeouts are rounded down to the millisecond.
#[derive(Debug)]
pub(crate) struct Steady(Box<dyn Transport>);

impl Transport for Steady {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.0.transmit_output(amount, rounded(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.0.await_input(rounded(timeout))
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}

/// `timeout` with the time left rounded down to the millisecond (see [`ROUNDING_FROM`]).
fn rounded(timeout: NextTimeout) -> NextTimeout {
    match timeout.after {
        UreqDuration::Exact(left) if left >= ROUNDING_FROM => {
            let whole = std::time::Duration::from_millis(left.as_millis() as u64);
            NextTimeout { after: UreqDuration::Exact(whole), ..timeout }
        }
        _ => timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use ureq::Timeout;

    fn after(left: UreqDuration) -> NextTimeout {
        NextTimeout { after: left, reason: Timeout::Global, per_read: None, per_write: None }
    }

    fn left(timeout: NextTimeout) -> UreqDuration {
        timeout.after
    }

    #[test]
    fn the_time_left_is_rounded_down_never_up() {
        let cases = [
            (Duration::from_micros(29_999_987), Duration::from_millis(29_999)),
            (Duration::from_micros(29_999_013), Duration::from_millis(29_999)),
            (Duration::from_millis(5), Duration::from_millis(5)),
            (Duration::from_micros(2_500), Duration::from_millis(2)),
        ];
        for (given, expected) in cases {
            assert_eq!(
                left(rounded(after(UreqDuration::Exact(given)))),
                UreqDuration::Exact(expected)
            );
        }
    }

    #[test]
    fn two_calls_microseconds_apart_get_the_same_timeout() {
        let first = rounded(after(UreqDuration::Exact(Duration::from_micros(29_999_990))));
        let second = rounded(after(UreqDuration::Exact(Duration::from_micros(29_999_420))));
        assert_eq!(left(first), left(second));
    }

    #[test]
    fn a_short_or_endless_wait_is_handed_on_as_it_is() {
        for given in [
            UreqDuration::Exact(Duration::from_micros(1_999)),
            UreqDuration::Exact(Duration::from_micros(10)),
            UreqDuration::Exact(Duration::ZERO),
            UreqDuration::NotHappening,
        ] {
            assert_eq!(left(rounded(after(given))), given);
        }
    }
}
