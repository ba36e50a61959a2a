//! What the simulation checks: the safety invariants after every step (no rotated refresh
//! token presented again unless its rotation was lost with a dead instance; no user served
//! another's token), and once the faults stop, that the fleet settles and one sign-in brings
//! every instance back.

use std::time::Instant;

use helloflex_auth::Clock;
use helloflex_core::PendingAuthorization;

use crate::executor::later;
use crate::store::CallFault;

use super::{Choice, Outcome, World, lock};

impl World {
    /// The safety invariants, after every step.
    pub(super) fn check(&mut self) {
        let server = lock(&self.server);
        let new: Vec<_> = server.reuses[self.reuses_checked..].to_vec();
        let cross = server.cross_user.clone();
        drop(server);
        self.reuses_checked += new.len();
        for reuse in new {
            if let Some(why) = self.unexcused(&reuse.token) {
                let at = self.now_s();
                self.violations.push(format!(
                    "{at:.3}s: rotated refresh token {} presented again while {why}",
                    reuse.token
                ));
            }
        }
        for c in cross {
            let text = format!("another user's token served: {c}");
            if !self.violations.contains(&text) {
                self.violations.push(text);
            }
        }
    }

    /// Why a reuse of `token` is not excused, if it is not: its rotation's answer (or a set
    /// descended from it) is held by a live instance or by the store. Excused only when the
    /// continuation was lost with an instance that died, or never reached one.
    fn unexcused(&self, token: &str) -> Option<String> {
        let server = lock(&self.server);
        let child = server.refresh.get(token)?.child.clone()?;
        for (n, instance) in self.instances.iter().enumerate() {
            if !instance.alive {
                continue;
            }
            if let Some(held) = instance.received.iter().find(|t| server.descends(&child, t)) {
                return Some(format!("instance {n} holds its successor {held}"));
            }
        }
        let store = self.store.inner();
        for (key, slot) in &store.data.slots {
            if let Some(stored) = slot
                .record
                .as_ref()
                .and_then(|r| r.tokens.as_ref()?.refresh_token.as_ref())
                .filter(|t| server.descends(&child, t.expose_secret()))
            {
                return Some(format!(
                    "the store holds its successor {} at {key}",
                    stored.expose_secret()
                ));
            }
        }
        None
    }

    /// Runs the default schedule (no faults, no reordering) until `until` or until nothing
    /// is left to do.
    fn run_default(&mut self, until: Instant) {
        while self.hub.clock.now() < until {
            let next = {
                let queues = self.hub.queues();
                let work = queues
                    .work
                    .iter()
                    .map(|w| (w.id, Choice::Store { id: w.id, fault: CallFault::None }));
                let requests = queues.requests.iter().map(|r| (r.id, Choice::Answer(r.id)));
                work.chain(requests).min_by_key(|(id, _)| *id).map(|(_, c)| c)
            };
            let choice = match next {
                Some(choice) => choice,
                None if self.hub.next_deadline().is_some_and(|d| d <= until) => Choice::Advance,
                None => break,
            };
            let at = self.now_s();
            let owner = self.owner(&choice);
            self.trace.push(format!("{at:8.3}s {owner}{choice:?} (settling)"));
            match &choice {
                Choice::Store { id, fault } => self.run_store(*id, *fault),
                Choice::Answer(id) => self.answer(*id, true, true),
                _ => {
                    if let Some(deadline) = self.hub.next_deadline() {
                        self.hub.advance_to(deadline);
                    }
                }
            }
            self.settle();
            self.check();
        }
    }

    fn last_outcomes(&self, since: Instant) -> Vec<(usize, usize, Option<Outcome>)> {
        let outcomes = lock(&self.outcomes);
        let mut last = Vec::new();
        for (n, instance) in self.instances.iter().enumerate() {
            if !instance.alive {
                continue;
            }
            for user in 0..self.config.users {
                let seen = outcomes[n][user]
                    .iter()
                    .rev()
                    .find(|(at, _)| *at >= since)
                    .map(|(_, o)| o.clone());
                last.push((n, user, seen));
            }
        }
        last
    }

    /// After the horizon: faults stop (the store comes back, dead instances restart), the
    /// fleet runs on its own, and must settle: every instance's last call served, or every
    /// one told to re-authorize; then one sign-in must bring every instance back.
    pub fn check_liveness(&mut self) {
        self.store.inner().down = false;
        for n in 0..self.instances.len() {
            if !self.instances[n].alive {
                self.boot(n);
            }
        }
        self.settle();
        let settle_end = later(self.hub.clock.now(), self.config.settle);
        self.run_default(settle_end);
        let window = settle_end - self.config.call_every * 2;
        let last = self.last_outcomes(window);
        let mut reauthorize = Vec::new();
        for (n, user, outcome) in &last {
            match outcome {
                Some(Outcome::Ok) => {}
                Some(Outcome::Reauthorize) => reauthorize.push(*user),
                Some(Outcome::Failed(why)) => self.violations.push(format!(
                    "instance {n}, user {user}: still failing after the faults stopped: {why}"
                )),
                None => self
                    .violations
                    .push(format!("instance {n}, user {user}: no call finished while settling")),
            }
        }
        reauthorize.sort_unstable();
        reauthorize.dedup();
        for user in reauthorize {
            let split: Vec<_> =
                last.iter().filter(|(_, u, o)| *u == user && *o == Some(Outcome::Ok)).collect();
            if !split.is_empty() {
                self.violations.push(format!(
                    "user {user}: some instances served, others told to re-authorize: {last:?}"
                ));
            }
            self.sign_in(0, user);
            let recover_end = later(self.hub.clock.now(), self.config.settle);
            self.run_default(recover_end);
            let window = recover_end - self.config.call_every * 2;
            for (n, u, outcome) in self.last_outcomes(window) {
                if u == user && outcome != Some(Outcome::Ok) {
                    self.violations.push(format!(
                        "instance {n}, user {user}: not recovered after a new sign-in: {outcome:?}"
                    ));
                }
            }
        }
    }

    /// The user signs in again on instance `n` (the consent page approved at once).
    fn sign_in(&mut self, n: usize, user: usize) {
        let Some(manager) = self.instances[n].managers.get(user).cloned() else { return };
        let (url, pending): (String, PendingAuthorization) = match manager.start_authorization() {
            Ok(started) => started,
            Err(e) => {
                self.violations.push(format!("sign-in could not start: {e}"));
                return;
            }
        };
        let state = url
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("state="))
            .unwrap_or_default()
            .to_owned();
        let code = lock(&self.server).code(user);
        let callback = format!("http://127.0.0.1:9/callback?code={code}&state={state}");
        let incarnation = self.instances[n].incarnation;
        self.hub.spawn(
            n,
            incarnation,
            Box::pin(async move {
                let _ = manager.complete_authorization(&pending, &callback).await;
            }),
        );
        self.settle();
    }
}
