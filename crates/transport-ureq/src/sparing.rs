//! [`SparingSyscalls`]: a connector that wraps the socket transport ureq's chain made, to spare
//! the system calls ureq would otherwise repeat on every call of a pooled connection.
//!
//! - **Timeouts.** Under a total deadline ureq gives every read and write the time left, which
//!   differs by microseconds from one call to the next, and its TCP transport sets the
//!   socket's timeout again whenever the value differs: a `setsockopt` per write and per read,
//!   on every call. Handed on rounded down to the millisecond, the value repeats (a loopback
//!   call takes microseconds), and the system calls go. The wait never reaches past the
//!   deadline: it only ends up to a millisecond sooner. ureq checks the deadline itself before
//!   each step.
//! - **Liveness probes.** ureq probes a pooled connection twice per call (`Transport::is_open`:
//!   O_NONBLOCK on, a one-byte read, O_NONBLOCK off): when it goes back to the pool after its
//!   answer, and again when it is taken out for the next request. Only the second probe
//!   decides anything the first does not also catch later (the server closed the connection,
//!   or wrote past its answer, at any time before the next request), so the first is answered
//!   "open" without touching the socket: three system calls fewer per call. The probe when a
//!   connection is taken is always made. ureq 3.5 makes both probes (`pool.rs`); the suite's
//!   `a_spoiled_pooled_connection_is_not_reused_on_both_transports` fails if a ureq upgrade
//!   stops probing a connection as it takes it out of the pool.

use ureq::unversioned::transport::time::Duration as UreqDuration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Below this, the time left is handed on as it is (rounding would end the wait too soon).
const ROUNDING_FROM: std::time::Duration = std::time::Duration::from_millis(2);

/// The connector that wraps the transport the chain before it made (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SparingSyscalls;

impl Connector<Box<dyn Transport>> for SparingSyscalls {
    type Out = Sparing;

    fn connect(
        &self,
        _details: &ConnectionDetails<'_>,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Sparing { inner, answered: false }))
    }
}

/// A transport whose read and write timeouts are rounded down to the millisecond, and whose
/// first liveness probe after an answer is spared (see the module docs).
#[derive(Debug)]
pub(crate) struct Sparing {
    inner: Box<dyn Transport>,
    /// Input was awaited since the last request went out, and no probe was made since: the
    /// next probe is the one ureq makes as the connection goes back to the pool.
    answered: bool,
}

impl Transport for Sparing {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.answered = false;
        self.inner.transmit_output(amount, rounded(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.answered = true;
        self.inner.await_input(rounded(timeout))
    }

    fn is_open(&mut self) -> bool {
        // The probe on the way back to the pool is spared; the one when the connection is
        // taken out again is made.
        std::mem::take(&mut self.answered) || self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
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

    /// A socket transport that counts the liveness probes made on it.
    #[derive(Debug)]
    struct Probed {
        buffers: ureq::unversioned::transport::LazyBuffers,
        probes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Transport for Probed {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(true)
        }
        fn is_open(&mut self) -> bool {
            self.probes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            true
        }
        fn is_tls(&self) -> bool {
            false
        }
    }

    /// Of the two probes ureq makes between one answer and the next request, only the first is
    /// spared; a connection that has answered nothing yet is always probed.
    #[test]
    fn only_the_probe_right_after_an_answer_is_spared() {
        let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = Probed {
            buffers: ureq::unversioned::transport::LazyBuffers::new(64, 64),
            probes: std::sync::Arc::clone(&probes),
        };
        let mut sparing = Sparing { inner: Box::new(inner), answered: false };
        let probed = || probes.load(std::sync::atomic::Ordering::SeqCst);
        let wait = || after(UreqDuration::Exact(Duration::from_secs(1)));
        assert!(sparing.is_open());
        assert_eq!(probed(), 1, "nothing answered yet: probed");
        for call in 1..=3 {
            sparing.transmit_output(0, wait()).unwrap();
            // An answer can take several reads.
            for _ in 0..call {
                sparing.await_input(wait()).unwrap();
            }
            let before = probed();
            assert!(sparing.is_open(), "back to the pool");
            assert_eq!(probed(), before, "spared on the way back (call {call})");
            assert!(sparing.is_open(), "taken out");
            assert!(sparing.is_open(), "taken out again");
            assert_eq!(probed(), before + 2, "probed each time it is taken out (call {call})");
        }
    }
}
