//! Running a future whose steps are all ready at once (the blocking flavour's): the shared
//! async code, driven on the calling thread with a no-op waker.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `future` on this thread until it finishes. Every step of the blocking flavour is
/// ready when polled, so this returns after one poll; yielding keeps it correct if a step ever
/// is not.
pub(crate) fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}
