//! The jobs of an async manager with no runtime to run them detached: owned by the manager, not
//! by the caller that started one, and polled by whichever caller waits for them, so a caller
//! dropped mid-request only stops polling its job and the next caller resumes it (the request
//! already sent is answered, concluded and stored, never sent again).
//!
//! No caller holds a job between two polls: a job stays in its slot, is taken out only for the
//! length of one poll, and is polled with a waker that wakes every caller waiting on it, so a
//! caller that is dropped, or stalls, never keeps it from the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use event_listener::Event;

/// A job as a boxed future (the same shape as [`crate::Task`]).
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Whose job it is: a manager and the per-user managers made from it share one [`Held`]; a
/// caller drives its own manager's jobs, a close drives them all. The address of the manager's
/// shared body: a held job keeps that body alive, so no other manager can have it meanwhile.
pub(crate) type Owner = usize;

/// The jobs in flight of a manager without a runtime (and of its per-user siblings).
#[derive(Default)]
pub(crate) struct Held {
    /// Unfinished jobs, oldest first.
    slots: Mutex<Slots>,
    /// Woken by a job (it is every job's waker) and when one ends: the callers driving listen.
    woken: Arc<Woken>,
}

#[derive(Default)]
struct Slots {
    jobs: Vec<Slot>,
    next_id: u64,
}

struct Slot {
    id: u64,
    owner: Owner,
    /// `None` for the length of one poll.
    job: Option<Job>,
}

/// The waker held jobs are polled with: it wakes every caller driving them.
#[derive(Default)]
struct Woken(Event);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.notify(usize::MAX);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify(usize::MAX);
    }
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Each step under the lock is a push, a take, a put back or a removal: none is left
        // half done by a panic.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `job` until it has run to its end.
    pub(crate) fn push(&self, owner: Owner, job: Job) {
        let mut slots = self.lock();
        let id = slots.next_id;
        slots.next_id += 1;
        slots.jobs.push(Slot { id, owner, job: Some(job) });
    }

    /// Drives the jobs of `owner` (of every owner with `None`) until none is left. They run
    /// side by side, as detached tasks would: the store's lease orders what must not overlap
    /// (a refresh re-reads what an older one stored before it sends).
    pub(crate) async fn drive(&self, owner: Option<Owner>) {
        loop {
            // Listen before polling, so a wake during a poll (this caller's or another's) is
            // not lost.
            let woken = self.woken.0.listen();
            if !self.poll(owner) {
                return;
            }
            woken.await;
        }
    }

    /// Awaits `future`, driving the jobs of `owner` (every owner's with `None`) meanwhile.
    pub(crate) async fn while_driving<F: Future>(
        &self,
        owner: Option<Owner>,
        future: F,
    ) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut drive = std::pin::pin!(self.drive(owner));
        let mut driven = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(output);
            }
            if !driven {
                driven = drive.as_mut().poll(cx).is_ready();
            }
            Poll::Pending
        })
        .await
    }

    /// Gives each job of `owner` one poll, without waiting: a job whose callers were all
    /// dropped moves on with every caller passing by (one whose token is still good included),
    /// so its answer is read while it is fresh.
    pub(crate) fn nudge(&self, owner: Owner) {
        self.poll(Some(owner));
    }

    /// Polls once each job of `owner` (every owner's with `None`) that no other caller is
    /// polling at this moment; says whether any of them is left.
    fn poll(&self, owner: Option<Owner>) -> bool {
        let mine = |slot: &Slot| owner.is_none_or(|o| slot.owner == o);
        let waker = Waker::from(Arc::clone(&self.woken));
        let mut cx = Context::from_waker(&waker);
        let mut after = None;
        loop {
            let next = {
                let mut slots = self.lock();
                let free = slots
                    .jobs
                    .iter_mut()
                    .filter(|s| mine(s) && after.is_none_or(|after| s.id > after))
                    .find_map(|slot| slot.job.take().map(|job| (slot.id, job)));
                match free {
                    Some(next) => next,
                    None => return slots.jobs.iter().any(mine),
                }
            };
            let (id, job) = next;
            after = Some(id);
            let mut polling = Polling { held: self, id, job: Some(job) };
            polling.poll(&mut cx);
        }
    }
}

/// One job taken out of its slot for one poll: put back unfinished, its slot removed once it
/// ends, or if its poll panicked (a job that panicked cannot be polled again; dropped, its
/// ticket guard gives the ticket back).
struct Polling<'a> {
    held: &'a Held,
    id: u64,
    job: Option<Job>,
}

impl Polling<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) {
        let Some(job) = self.job.as_mut() else { return };
        if job.as_mut().poll(cx).is_pending() {
            let id = self.id;
            let mut slots = self.held.lock();
            if let Some(slot) = slots.jobs.iter_mut().find(|slot| slot.id == id) {
                slot.job = self.job.take();
            }
        }
        // Ended (or its slot gone): `drop` removes the slot and wakes the drivers.
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else { return };
        let id = self.id;
        self.held.lock().jobs.retain(|slot| slot.id != id);
        // Outside the lock: dropping a job runs its guards.
        drop(job);
        self.held.woken.0.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A job's I/O: each step counted, then pending until the test makes it ready.
    #[derive(Default)]
    struct Io {
        steps: AtomicUsize,
        waker: Mutex<Option<Waker>>,
    }

    impl Io {
        fn steps(&self) -> usize {
            self.steps.load(Ordering::SeqCst)
        }
        /// The answer arrives: the job's waker fires.
        fn ready(&self) {
            if let Some(waker) = self.waker.lock().unwrap().take() {
                waker.wake();
            }
        }
    }

    /// A job of `steps` steps, each waiting for `io`.
    fn job(steps: usize, io: &Arc<Io>) -> Job {
        let io = Arc::clone(io);
        Box::pin(async move {
            for _ in 0..steps {
                io.steps.fetch_add(1, Ordering::SeqCst);
                let mut waited = false;
                std::future::poll_fn(|cx| {
                    if waited {
                        return Poll::Ready(());
                    }
                    waited = true;
                    *io.waker.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await;
            }
        })
    }

    fn poll_once<F: Future + Unpin>(future: &mut F) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(future).poll(&mut cx).is_ready()
    }

    /// Polls `driver` until it is done, the job's I/O ready each time.
    fn finish<F: Future + Unpin>(driver: &mut F, io: &Io) {
        for _ in 0..100 {
            if poll_once(driver) {
                return;
            }
            io.ready();
        }
        panic!("the driver never finished");
    }

    /// A driver dropped half way leaves the job where it was; the next one finishes it.
    #[test]
    fn a_dropped_driver_leaves_the_job_for_the_next() {
        let held = Held::default();
        let io = Arc::new(Io::default());
        held.push(1, job(3, &io));
        let mut first = Box::pin(held.drive(Some(1)));
        assert!(!poll_once(&mut first));
        io.ready();
        assert!(!poll_once(&mut first));
        drop(first);
        assert_eq!(io.steps(), 2, "the job's progress is kept");
        io.ready();
        finish(&mut Box::pin(held.drive(Some(1))), &io);
        assert_eq!(io.steps(), 3, "resumed, not restarted");
        assert!(held.lock().jobs.is_empty());
    }

    /// A job is woken through the held set, not through whoever polled it last: a caller that
    /// polled it and then stalled (never polled again, never dropped) holds up no one.
    #[test]
    fn a_stalled_driver_holds_up_no_one() {
        let held = Held::default();
        let io = Arc::new(Io::default());
        held.push(1, job(3, &io));
        let mut stalled = Box::pin(held.drive(Some(1)));
        assert!(!poll_once(&mut stalled));
        finish(&mut Box::pin(held.drive(Some(1))), &io);
        assert_eq!(io.steps(), 3);
        assert!(poll_once(&mut stalled), "nothing left for it either");
    }

    /// A caller drives its own manager's jobs; a close drives everyone's; a nudge gives one
    /// poll and keeps the job.
    #[test]
    fn owners_and_nudges() {
        let held = Held::default();
        let (mine, theirs) = (Arc::new(Io::default()), Arc::new(Io::default()));
        held.push(1, job(2, &mine));
        held.push(2, job(1, &theirs));
        held.nudge(1);
        assert_eq!((mine.steps(), theirs.steps()), (1, 0));
        mine.ready();
        finish(&mut Box::pin(held.drive(Some(1))), &mine);
        assert_eq!((mine.steps(), theirs.steps()), (2, 0));
        finish(&mut Box::pin(held.drive(None)), &theirs);
        assert_eq!(theirs.steps(), 1);
        assert!(held.lock().jobs.is_empty());
    }

    /// A job whose poll panics is dropped with its slot, not left for the next caller to poll.
    #[test]
    fn a_job_that_panicked_is_dropped() {
        let held = Held::default();
        held.push(1, Box::pin(async { panic!("in the job") }));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| held.nudge(1)));
        assert!(caught.is_err());
        assert!(held.lock().jobs.is_empty());
    }
}
