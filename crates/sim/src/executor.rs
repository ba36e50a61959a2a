//! A deterministic executor for the simulated fleet: tasks polled in a fixed order only when
//! woken, timers on one manual clock, and the seams the managers are built on
//! ([`AsyncRuntime`], [`AsyncTransport`]) turned into queues the world answers one by one.
//!
//! Nothing here runs on its own: a store call handed to `spawn_blocking` waits in the queue
//! until the world runs it (with or without a fault), a token request waits until the world
//! lets the server answer it (or loses it), a sleep ends when the world moves the clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use helloflex_auth::{AsyncRuntime, AsyncTransport, Clock, ManualClock, Request, Response, Task};
use helloflex_core::TransportError;

/// A task's "woken" flag: its waker sets it, the executor polls only tasks that have it.
#[derive(Debug, Default)]
pub(crate) struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One task of one instance.
pub(crate) struct TaskSlot {
    pub(crate) instance: usize,
    pub(crate) incarnation: u32,
    future: Option<Task>,
    flag: Arc<Flag>,
}

/// A store call, as the manager hands it to `spawn_blocking`.
pub(crate) type Work = Box<dyn FnOnce() + Send>;

/// A store call waiting to be run by the world.
pub(crate) struct PendingWork {
    pub(crate) id: u64,
    pub(crate) instance: usize,
    pub(crate) incarnation: u32,
    /// A store call times out by then (every real store bounds its calls).
    pub(crate) bound: Instant,
    work: Option<Work>,
    done: Arc<Done>,
}

/// A token request waiting for the server.
pub(crate) struct PendingRequest {
    pub(crate) id: u64,
    pub(crate) instance: usize,
    pub(crate) incarnation: u32,
    /// The transport times the request out by then.
    pub(crate) bound: Instant,
    pub(crate) request: Request,
    reply: Arc<Slot>,
}

/// A sleep waiting for the clock.
struct Timer {
    deadline: Instant,
    waker: Waker,
    cancelled: Arc<AtomicBool>,
}

/// Everything waiting on the world, shared with the seams the managers hold.
#[derive(Default)]
pub(crate) struct Queues {
    pub(crate) tasks: Vec<TaskSlot>,
    pub(crate) work: Vec<PendingWork>,
    pub(crate) requests: Vec<PendingRequest>,
    timers: Vec<Timer>,
    next_id: u64,
}

impl Queues {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The queues and the clock: what every seam of every instance shares.
#[derive(Clone)]
pub(crate) struct Hub {
    queues: Arc<Mutex<Queues>>,
    pub(crate) clock: Arc<ManualClock>,
    /// The API answers (not a choice point): everything but the token endpoint.
    api: Arc<dyn Fn(&Request) -> Response + Send + Sync>,
    token_path: Arc<str>,
    /// How long a store call and a token request may take before they time out.
    store_bound: Duration,
    request_bound: Duration,
}

impl Hub {
    pub(crate) fn new(
        clock: Arc<ManualClock>,
        token_path: &str,
        api: Arc<dyn Fn(&Request) -> Response + Send + Sync>,
        (store_bound, request_bound): (Duration, Duration),
    ) -> Self {
        let token_path = token_path.into();
        Self { queues: Arc::default(), clock, api, token_path, store_bound, request_bound }
    }

    /// The earliest time a pending call or request times out.
    pub(crate) fn next_bound(&self) -> Option<Instant> {
        let queues = self.queues();
        let work = queues.work.iter().map(|w| w.bound);
        work.chain(queues.requests.iter().map(|r| r.bound)).min()
    }

    pub(crate) fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `future` as a task of `instance`, woken.
    pub(crate) fn spawn(&self, instance: usize, incarnation: u32, future: Task) {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        self.queues().tasks.push(TaskSlot { instance, incarnation, future: Some(future), flag });
    }

    /// Polls woken tasks, lowest first, until none is woken. Returns false if it gave up
    /// (a task that wakes itself forever).
    pub(crate) fn run_until_quiet(&self) -> bool {
        for _ in 0..100_000 {
            let next = {
                let mut queues = self.queues();
                queues.tasks.retain(|t| t.future.is_some());
                let woken =
                    queues.tasks.iter_mut().find(|t| t.flag.0.swap(false, Ordering::SeqCst));
                woken.map(|t| (t.future.take(), Arc::clone(&t.flag)))
            };
            let Some((future, flag)) = next else { return true };
            let Some(mut future) = future else { continue };
            let waker = Waker::from(Arc::clone(&flag));
            let mut cx = Context::from_waker(&waker);
            // The lock is not held while polling: the task may spawn or queue.
            let finished = future.as_mut().poll(&mut cx).is_ready();
            if !finished {
                let mut queues = self.queues();
                if let Some(slot) = queues.tasks.iter_mut().find(|t| Arc::ptr_eq(&t.flag, &flag)) {
                    slot.future = Some(future);
                }
            }
        }
        false
    }

    /// Drops every task, queued store call and unsent reply of `instance`'s `incarnation` (a
    /// crash): its requests already sent stay with the server, its store calls already queued
    /// may still land (they were on the wire), both as orphans the world can run.
    pub(crate) fn crash(&self, instance: usize, incarnation: u32) -> Vec<Task> {
        let mut queues = self.queues();
        let mut dropped = Vec::new();
        queues.tasks.retain_mut(|t| {
            if t.instance == instance && t.incarnation == incarnation {
                if let Some(f) = t.future.take() {
                    dropped.push(f);
                }
                false
            } else {
                true
            }
        });
        // Dropped outside the lock by the caller: a future's drop may call back into the hub.
        dropped
    }

    /// The earliest live timer, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut queues = self.queues();
        queues.timers.retain(|t| !t.cancelled.load(Ordering::SeqCst));
        queues.timers.iter().map(|t| t.deadline).min()
    }

    /// Moves the clock to `to` and wakes the sleeps that ended.
    pub(crate) fn advance_to(&self, to: Instant) {
        let now = self.clock.now();
        if to > now {
            self.clock.advance(to - now);
        }
        let mut queues = self.queues();
        queues.timers.retain(|t| {
            if t.cancelled.load(Ordering::SeqCst) {
                return false;
            }
            if t.deadline <= to {
                t.waker.wake_by_ref();
                return false;
            }
            true
        });
    }

    /// Takes queued store call `id` out to run it.
    pub(crate) fn take_work(&self, id: u64) -> Option<(Work, Arc<Done>)> {
        let mut queues = self.queues();
        let at = queues.work.iter().position(|w| w.id == id)?;
        let mut work = queues.work.remove(at);
        Some((work.work.take()?, work.done))
    }

    /// Takes queued request `id` out, with where its answer goes.
    pub(crate) fn take_request(&self, id: u64) -> Option<(Request, Arc<Slot>)> {
        let mut queues = self.queues();
        let at = queues.requests.iter().position(|r| r.id == id)?;
        let request = queues.requests.remove(at);
        Some((request.request, request.reply))
    }
}

/// A store call's completion.
#[derive(Default)]
pub(crate) struct Done {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Done {
    pub(crate) fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap_or_else(PoisonError::into_inner).take() {
            waker.wake();
        }
    }
}

struct DoneFuture(Arc<Done>);

impl Future for DoneFuture {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if self.0.done.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// Where a request's answer goes.
#[derive(Default)]
pub(crate) struct Slot {
    reply: Mutex<Option<Result<Response, TransportError>>>,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    pub(crate) fn fill(&self, reply: Result<Response, TransportError>) {
        *self.reply.lock().unwrap_or_else(PoisonError::into_inner) = Some(reply);
        if let Some(waker) = self.waker.lock().unwrap_or_else(PoisonError::into_inner).take() {
            waker.wake();
        }
    }
}

struct SlotFuture(Arc<Slot>);

impl Future for SlotFuture {
    type Output = Result<Response, TransportError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        *self.0.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        match self.0.reply.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(reply) => Poll::Ready(reply),
            None => Poll::Pending,
        }
    }
}

/// A sleep on the hub's clock.
struct Sleep {
    hub: Hub,
    duration: Duration,
    registered: Option<(Instant, Arc<AtomicBool>)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.hub.clock.now();
        let deadline = match &self.registered {
            Some((deadline, _)) => *deadline,
            None => later(now, self.duration),
        };
        if now >= deadline {
            return Poll::Ready(());
        }
        if self.registered.is_none() {
            let cancelled = Arc::new(AtomicBool::new(false));
            self.hub.queues().timers.push(Timer {
                deadline,
                waker: cx.waker().clone(),
                cancelled: Arc::clone(&cancelled),
            });
            self.registered = Some((deadline, cancelled));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((_, cancelled)) = &self.registered {
            cancelled.store(true, Ordering::SeqCst);
        }
    }
}

/// One instance's runtime and transport: its tasks and requests are tagged with it.
#[derive(Clone)]
pub(crate) struct Seams {
    pub(crate) hub: Hub,
    pub(crate) instance: usize,
    pub(crate) incarnation: u32,
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seams({}#{})", self.instance, self.incarnation)
    }
}

impl AsyncRuntime for Seams {
    fn spawn(&self, task: Task) {
        self.hub.spawn(self.instance, self.incarnation, task);
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) -> Task {
        let done = Arc::new(Done::default());
        let bound = later(self.hub.clock.now(), self.hub.store_bound);
        let mut queues = self.hub.queues();
        let id = queues.id();
        queues.work.push(PendingWork {
            id,
            instance: self.instance,
            incarnation: self.incarnation,
            bound,
            work: Some(work),
            done: Arc::clone(&done),
        });
        Box::pin(DoneFuture(done))
    }
}

#[async_trait::async_trait]
impl AsyncTransport for Seams {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        if request.uri().path() != &*self.hub.token_path {
            return Ok((self.hub.api)(&request));
        }
        let reply = Arc::new(Slot::default());
        {
            let bound = later(self.hub.clock.now(), self.hub.request_bound);
            let mut queues = self.hub.queues();
            let id = queues.id();
            queues.requests.push(PendingRequest {
                id,
                instance: self.instance,
                incarnation: self.incarnation,
                bound,
                request,
                reply: Arc::clone(&reply),
            });
        }
        SlotFuture(reply).await
    }

    async fn sleep(&self, duration: Duration) {
        Sleep { hub: self.hub.clone(), duration, registered: None }.await;
    }
}

/// `at + d`, or as far as an `Instant` reaches (a huge sleep never ends, never panics).
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = at.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}
