//! The flavour seam (quinn's `Runtime` is the model): what a blocking and an async caller do
//! differently ([`Flavour`]: start a job, run one and wait for it, wait for a signal or a
//! deadline), and the caller loops both flavours run over it, written once: [`token`],
//! [`close`] and [`complete_authorization`]. Every decision in them is the manager's
//! ([`Shared::decide`], [`Shared::drain`], [`Shared::begin_authorization`]); a job's own steps
//! are [`crate::steps::Steps`].
//!
//! The blocking flavour's futures are ready when polled (each does its I/O on the calling
//! thread first), so it runs these loops with [`crate::ready::run_ready`].

use std::future::Future;
use std::time::{Duration, Instant};

use event_listener::EventListener;

use helloflex_core::{Error, PendingAuthorization, Token};

use crate::manager::{Drain, Job, Next, Shared};

/// What a flavour's caller does differently: how it starts and runs jobs, and how it waits.
/// Implemented by each flavour's manager (the caller's handle).
pub(crate) trait Flavour: Sync {
    /// The manager body the loops decide with.
    fn shared(&self) -> &Shared;

    /// A caller arrives for a token, before anything is decided (a job held for lack of a
    /// runtime gets a poll from every caller passing by).
    fn pass_by(&self) {}

    /// Starts a job no caller waits for (a refresh ahead of expiry): the caller goes on with
    /// the token it has.
    fn start(&self, job: Box<Job>) -> impl Future<Output = ()> + Send;

    /// Runs a job this caller needs (a fetch) as far as the flavour lets a caller run it; the
    /// caller then asks again (the job's outcome is in the cache, or it runs on, detached).
    fn run(&self, job: Box<Job>) -> impl Future<Output = ()> + Send;

    /// Runs a job whose result is this caller's (a code exchange) and hands it back.
    fn conclude(&self, job: Job) -> impl Future<Output = Result<Token, Error>> + Send;

    /// Waits until `listener` fires or `until` passes. A closing caller waits for every
    /// manager's jobs (`closing`), a caller for a token for its own manager's.
    fn wait(
        &self,
        listener: EventListener,
        until: Instant,
        closing: bool,
    ) -> impl Future<Output = ()> + Send;
}

/// A valid token: cached, or fetched by this caller or another (only one request is made).
pub(crate) async fn token<F: Flavour>(flavour: &F) -> Result<Token, Error> {
    let shared = flavour.shared();
    flavour.pass_by();
    loop {
        // A caller that waits listens before the lock is released: no completion between the
        // decision and the wait slips by unseen.
        let next = {
            let mut state = shared.lock();
            match shared.decide(&mut state, shared.clock.now()) {
                Next::Wait(until) => Err((shared.signal.listen(), until)),
                next => Ok(next),
            }
        };
        match next {
            Ok(Next::Use(token)) => return Ok(token),
            Ok(Next::Fail(error)) => return Err(error),
            Ok(Next::Refresh(token, job)) => {
                flavour.start(job).await;
                return Ok(token);
            }
            Ok(Next::Fetch(job)) => flavour.run(job).await,
            Ok(Next::Wait(_)) => {}
            Err((listener, until)) => flavour.wait(listener, until, false).await,
        }
    }
}

/// Closes the manager and waits up to `within` until no token request is in flight; `true`
/// when none is (see [`Shared::drain`]).
pub(crate) async fn close<F: Flavour>(flavour: &F, within: Duration) -> bool {
    let shared = flavour.shared();
    let give_up = shared.close_by(within);
    loop {
        match shared.drain(shared.clock.now(), give_up) {
            Drain::Done(drained) => return drained,
            Drain::Wait(listener, until) => flavour.wait(listener, until, true).await,
        }
    }
}

/// Checks the callback for `pending`, exchanges the code and stores the tokens (see
/// [`Shared::begin_authorization`]).
pub(crate) async fn complete_authorization<F: Flavour>(
    flavour: &F,
    pending: &PendingAuthorization,
    callback: &str,
) -> Result<Token, Error> {
    let job = flavour.shared().begin_authorization(pending, callback)?;
    flavour.conclude(job).await
}
