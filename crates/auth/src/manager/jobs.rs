//! The jobs in flight, shared by a manager and its per-user siblings: a job counts until it is
//! dropped, and a close waits for them ([`Shared::drain`]); once closing, no refresh ahead of
//! expiry starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};

use super::Shared;

/// The token requests in flight across a manager and every per-user manager made from it, and
/// whether they are closing: what [`Shared::drain`] waits for before the process may exit.
///
/// A request that reached the server may have spent a rotating refresh token; if its process
/// exits before the answer is stored, the new set is lost and the next refresh is a reuse (the
/// server revokes the grant). Refreshes ahead of expiry run detached from any caller, so only
/// an explicit close can wait for them.
#[derive(Debug, Default)]
pub(super) struct Jobs {
    running: AtomicUsize,
    pub(super) closing: AtomicBool,
    idle: Event,
}

/// One job in flight; dropping it wakes whoever waits for the jobs to end.
#[derive(Debug)]
pub(crate) struct Running(Arc<Jobs>);

impl Running {
    pub(super) fn start(jobs: &Arc<Jobs>) -> Self {
        jobs.running.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(jobs))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

/// What a closing caller does next.
pub(crate) enum Drain {
    /// Stop: `true` when no token request is left in flight, `false` when the time allowed
    /// ran out first.
    Done(bool),
    /// Wait for a job to end (the listener) or until then, and ask again.
    Wait(EventListener, Instant),
}

impl Shared {
    /// When a close allowed `within` from now gives up waiting (`Duration::MAX`: waits as long
    /// as it takes, not at all).
    pub(crate) fn close_by(&self, within: Duration) -> Instant {
        helloflex_core::machines::saturating_add(self.clock.now(), within)
    }

    /// Closes the manager (and every per-user manager sharing its jobs) and says what the
    /// closing caller does until `give_up`: from now on no refresh ahead of expiry starts (a
    /// caller whose token expired still fetches one), and the caller waits until no token
    /// request is in flight, so every answer the server gave is stored before the process
    /// exits.
    pub(crate) fn drain(&self, now: Instant, give_up: Instant) -> Drain {
        self.jobs.closing.store(true, Ordering::SeqCst);
        // Listen before looking, so a job ending in between still wakes this caller.
        let listener = self.jobs.idle.listen();
        if self.jobs.running.load(Ordering::SeqCst) == 0 {
            Drain::Done(true)
        } else if now >= give_up {
            Drain::Done(false)
        } else {
            Drain::Wait(listener, give_up)
        }
    }
}
