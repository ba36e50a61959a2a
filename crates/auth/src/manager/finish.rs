//! A job's end handed back to the manager: the cache completes the ticket or starts a new
//! generation (`finish`), a set the store has not taken yet goes to the cache at once and is
//! written back by the rest of its job, no other job starting meanwhile (`deliver`,
//! `written_back`), a look at the store ends (`checked`), and a job that never ran or was given
//! up gives its ticket back (`abandon`, `fail_unstarted`).

use helloflex_core::machines::{Completion, Grant, Ticket};
use helloflex_core::{AccessToken, Error, Interruption, StoreError, Token, TokenSet};

use crate::fill::Outcome;

use super::{Busy, Job, Shared};

impl Shared {
    /// Hands a finished job's outcome back: the cache completes the ticket (or, for an
    /// authorization, starts a new generation), store failures are recorded, waiters woken.
    pub(crate) fn finish(&self, ticket: Option<Ticket>, outcome: Outcome) -> Result<Token, Error> {
        let Outcome { result, store_error, version, watch, unchanged: _, contact_since } = outcome;
        let now = self.clock.now();
        let seed = self.entropy.jitter_seed();
        let mut state = self.lock();
        let failed_write = store_error.is_some();
        // A stale completion (its ticket was superseded) tells this manager nothing.
        let current = ticket.as_ref().is_none_or(|t| state.cache.is_live(t));
        if current {
            state.contact_since = contact_since;
            state.watch = watch;
            if let Some(version) = version {
                state.version = state.version.max(version);
            }
        }
        if let Some(error) = store_error {
            tracing::error!(target: "helloflex::store", %error, "storing new tokens failed; they are kept in memory only");
            state.store_error = Some(error);
        } else if result.is_ok() && self.store().is_some() {
            state.store_error = None;
        }
        let answer = match ticket {
            None => match result {
                Ok(set) => {
                    tracing::info!(target: "helloflex::token", stored = !failed_write, "authorization code exchanged");
                    Ok(state.cache.authorize(set, seed))
                }
                Err(error) => Err(error),
            },
            Some(ticket) => {
                let refresh = matches!(ticket.grant(), Grant::Refresh(_));
                match state.cache.complete(now, ticket, result, seed) {
                    Completion::Stored(token) => {
                        let left = token.expires_at().saturating_duration_since(now);
                        tracing::debug!(target: "helloflex::token", refresh, expires_in_s = left.as_secs(), "token installed");
                        Ok(token)
                    }
                    Completion::Failed(error) => {
                        tracing::warn!(target: "helloflex::token", refresh, reauthorize = error.requires_reauthorization(), %error, "token request failed");
                        Err(error)
                    }
                    _ => {
                        tracing::debug!(target: "helloflex::token", "stale token completion ignored");
                        Err(Interruption::Superseded.into())
                    }
                }
            }
        };
        drop(state);
        self.signal.notify(usize::MAX);
        answer
    }

    /// Hands a set the store has not taken yet to the cache (its job goes on writing it back):
    /// completes the ticket (or, for an authorization, starts the new generation), records the
    /// store's failure, and keeps other jobs from starting until the write-back ends.
    pub(crate) fn deliver(
        &self,
        ticket: Option<Ticket>,
        check: bool,
        set: TokenSet,
        error: Option<StoreError>,
    ) -> Result<Token, Error> {
        self.lock().busy = Some(Busy::WriteBack);
        if check {
            // A check writes back the set the cache holds already: nothing to hand over.
            let mut state = self.lock();
            if let Some(error) = error {
                state.store_error = Some(error);
            }
            return state.cache.current().cloned().ok_or_else(|| Interruption::NoToken.into());
        }
        let outcome = Outcome {
            result: Ok(set),
            store_error: None,
            version: None,
            watch: None,
            unchanged: false,
            contact_since: self.lock().contact_since,
        };
        let token = self.finish(ticket, outcome);
        // `finish` cleared the store error for a good result: the write-back is still due.
        if let Some(error) = error {
            self.lock().store_error = Some(error);
        }
        token
    }

    /// Ends a write-back: the store holds the delivered set (or a newer grant replaced it).
    pub(crate) fn written_back(&self, delivered: &AccessToken, outcome: Outcome) {
        let Outcome { result, store_error, version, watch, unchanged: _, contact_since } = outcome;
        let seed = self.entropy.jitter_seed();
        let mut state = self.lock();
        state.busy = None;
        state.watch = watch;
        state.contact_since = contact_since;
        if let Some(version) = version {
            state.version = state.version.max(version);
        }
        state.store_error = store_error;
        match result {
            Ok(set) if set.access_token != *delivered => {
                tracing::info!(target: "helloflex::token", "a newer grant replaced the tokens being written back");
                let _ = state.cache.insert(set, seed);
            }
            Ok(_) => tracing::info!(target: "helloflex::store", "new tokens written back"),
            Err(error) => {
                tracing::warn!(target: "helloflex::store", %error, "tokens being written back were refused elsewhere");
            }
        }
        drop(state);
        self.signal.notify(usize::MAX);
    }

    /// The write-back of a delivered set ended without its job finishing (its runner was
    /// dropped): other jobs may start again, and one of them writes the set back.
    pub(crate) fn write_back_dropped(&self) {
        self.lock().busy = None;
        self.signal.notify(usize::MAX);
    }

    /// Ends a look at the store: a newer set adopted, or nothing changed.
    pub(crate) fn checked(&self, outcome: Outcome) {
        let Outcome { result, store_error: _, version, watch, unchanged, contact_since } = outcome;
        let seed = self.entropy.jitter_seed();
        let mut state = self.lock();
        state.busy = None;
        state.watch = watch;
        state.contact_since = contact_since;
        match result {
            Ok(set) if !unchanged => {
                if let Some(version) = version {
                    state.version = state.version.max(version);
                }
                let _ = state.cache.insert(set, seed);
            }
            Ok(_) => {}
            Err(error) if unchanged => {
                let _ = error;
            }
            Err(error) => {
                tracing::debug!(target: "helloflex::store", %error, "a look at the store failed");
            }
        }
        drop(state);
        self.signal.notify(usize::MAX);
    }

    /// Gives an unfinished job's ticket back (its runner was cancelled before sending).
    pub(crate) fn abandon(&self, ticket: Ticket) {
        tracing::debug!(target: "helloflex::token", "token request abandoned");
        self.lock().cache.abandon(ticket);
        self.signal.notify(usize::MAX);
    }

    /// Fails a job that never ran (its runtime dropped it unstarted, having shut down): its
    /// ticket completes with `error`, so the callers waiting for it hear now rather than at the
    /// ticket's deadline, and the next attempt waits out the backoff instead of spinning.
    pub(crate) fn fail_unstarted(&self, job: Job, error: Error) {
        let Job { ticket, running, check, .. } = job;
        drop(running);
        if check {
            self.lock().busy = None;
        }
        if let Some(ticket) = ticket {
            tracing::warn!(target: "helloflex::token", %error, "token request never started");
            let now = self.clock.now();
            let _ = self.lock().cache.complete(now, ticket, Err(error), self.entropy.jitter_seed());
        }
        self.signal.notify(usize::MAX);
    }
}
