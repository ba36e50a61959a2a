//! Running a job: the [`Steps`] a flavour carries out (store calls, token requests, sleeps,
//! and where a write-back runs), and the one loop that feeds a job's [`FillJob`] the answers and
//! hands its outcome to the manager ([`run_job`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use helloflex_core::machines::{Fetched, Ticket, TokenExchange};
use helloflex_core::{AccessToken, Error, Interruption, StoreError, Token, TokenSet, UsageError};

use crate::clock::Clock;
use crate::fill::{FillJob, Now, Outcome, Step, StoreOp, StoreReply};
use crate::manager::{Job, Running, Shared};

/// Holds a job's ticket while the job runs; if the runner unwinds or its future is dropped
/// before the job finished, the ticket is given back so the next caller need not wait.
struct TicketGuard<'a> {
    shared: &'a Shared,
    ticket: Option<Ticket>,
}

impl<'a> TicketGuard<'a> {
    fn new(shared: &'a Shared, ticket: Option<Ticket>) -> Self {
        Self { shared, ticket }
    }

    /// The ticket, for [`Shared::finish`]: the guard no longer gives it back.
    fn take(mut self) -> Option<Ticket> {
        self.ticket.take()
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.abandon(ticket);
        }
    }
}

/// How a flavour carries out a job's steps. Implemented by a manager's body (its shared state,
/// transport and runtime), which a detached job keeps alive: never by a caller's handle.
pub(crate) trait Steps: Sync {
    /// The manager body the job reports to.
    fn shared(&self) -> &Shared;
    /// Runs a store call.
    fn store(&self, op: StoreOp) -> impl Future<Output = StoreReply> + Send;
    /// Runs a token exchange to its end.
    fn fetch(
        &self,
        exchange: Box<TokenExchange>,
    ) -> impl Future<Output = Result<Fetched, Error>> + Send;
    /// Waits until `until`.
    fn sleep(&self, until: Instant) -> impl Future<Output = ()> + Send;
    /// Runs the write-back of a delivered set to its end, apart from the caller that got the
    /// token where the flavour can (it lasts as long as the store is away).
    fn write_back(self: &Arc<Self>, rest: Box<Rest>) -> impl Future<Output = ()> + Send;
}

/// Runs `job` and hands its result back; a set the store has not taken yet is handed to the
/// flavour's [`Steps::write_back`] and the caller gets the token at once.
pub(crate) async fn run_job<B: Steps>(body: &Arc<B>, job: Job) -> Result<Token, Error> {
    match run(&**body, job).await {
        Ran::Done(result) => result,
        Ran::Delivered(token, rest) => {
            body.write_back(rest).await;
            Ok(token)
        }
    }
}

/// How [`run`] ended.
enum Ran {
    /// The job finished; its result.
    Done(Result<Token, Error>),
    /// The job delivered a set the store has not taken yet: callers have the token, the rest
    /// of the job writes the set back and must be run to its end ([`resume`]).
    Delivered(Token, Box<Rest>),
}

/// The rest of a job that delivered its set: the write-back.
pub(crate) struct Rest {
    fill: FillJob,
    running: Running,
    delivered: AccessToken,
}

impl Now {
    fn read(clock: &dyn Clock) -> Self {
        Self { at: clock.now(), wall: clock.wall() }
    }
}

/// Runs a job until it ends or delivers, and hands its outcome back: the one loop both
/// flavours use ([`carry_out`]).
async fn run<D: Steps>(steps: &D, job: Job) -> Ran {
    let shared = steps.shared();
    let Job { ticket, check, mut fill, running } = job;
    let guard = TicketGuard::new(shared, ticket);
    // A check dropped before its end (its runtime went away) lets other jobs start again.
    let mut checking = WriteBackGuard(check.then_some(shared));
    let outcome = match carry_out(steps, &mut fill, Part::Job).await {
        Stop::Done(outcome) => outcome,
        Stop::Deliver(set, error) => {
            // A check that writes back is busy writing back now, not checking.
            checking.0 = None;
            let delivered = set.access_token.clone();
            return match shared.deliver(guard.take(), check, *set, error) {
                Ok(token) => Ran::Delivered(token, Box::new(Rest { fill, running, delivered })),
                // The ticket was superseded (a new sign-in): nothing to write back.
                Err(error) => {
                    shared.write_back_dropped();
                    Ran::Done(Err(error))
                }
            };
        }
    };
    // The outcome is stored (or failed): the job no longer holds up a close. Counted out
    // before the waiters are woken, so a caller that got the token sees nothing in flight.
    drop(running);
    if check {
        checking.0 = None;
        shared.checked(outcome);
        // A check adopts or writes back; it hands no token to anyone (no caller waits on it).
        return Ran::Done(Err(Interruption::NoToken.into()));
    }
    Ran::Done(shared.finish(guard.take(), outcome))
}

/// Runs a delivered job's write-back to its end: until the store holds the set, however long
/// the store is away (the process's close waits for it).
pub(crate) async fn resume<D: Steps>(steps: &D, rest: Box<Rest>) {
    let shared = steps.shared();
    let Rest { mut fill, running, delivered } = *rest;
    // Dropped unfinished (the runtime went away): other jobs may write the set back.
    let guard = WriteBackGuard(Some(shared));
    let outcome = match carry_out(steps, &mut fill, Part::WriteBack).await {
        Stop::Done(outcome) => outcome,
        Stop::Deliver(..) => asked_to_send(),
    };
    drop(running);
    let mut guard = guard;
    guard.0 = None;
    shared.written_back(&delivered, outcome);
}

/// Which part of a job runs: the job, which may send a token request, or the write-back of a
/// set it delivered, which may not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Job,
    WriteBack,
}

/// Where a job's steps stop: its outcome, or a set to deliver before the rest of it runs.
enum Stop {
    Done(Outcome),
    Deliver(Box<TokenSet>, Option<StoreError>),
}

/// Carries out a job's steps (store calls, token requests, sleeps), feeding its [`FillJob`] the
/// answers, until it ends or delivers: the one loop of a job and of its write-back. A
/// write-back that asks to send ends with an error.
async fn carry_out<D: Steps>(steps: &D, fill: &mut FillJob, part: Part) -> Stop {
    let clock = &*steps.shared().clock;
    loop {
        match fill.poll(Now::read(clock)) {
            Step::Store(op) => {
                let reply = steps.store(op).await;
                fill.handle_store(Now::read(clock), reply);
            }
            Step::Fetch(exchange) if part == Part::Job => {
                let fetched = steps.fetch(exchange).await;
                fill.handle_fetched(Now::read(clock), fetched);
            }
            Step::Fetch(_) => return Stop::Done(asked_to_send()),
            Step::Sleep(until) => steps.sleep(until).await,
            Step::Deliver(set, error) => return Stop::Deliver(set, error),
            Step::Done(outcome) => return Stop::Done(outcome),
        }
    }
}

/// The outcome of a write-back that asked to send or deliver again (a [`FillJob`] never does).
fn asked_to_send() -> Outcome {
    Outcome {
        result: Err(UsageError::WrongState("a write-back asked to send").into()),
        store_error: None,
        version: None,
        watch: None,
        unchanged: false,
        contact_since: None,
    }
}

/// Lets other jobs start again if a write-back or a check is dropped before its end.
struct WriteBackGuard<'a>(Option<&'a Shared>);

impl Drop for WriteBackGuard<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.write_back_dropped();
        }
    }
}
