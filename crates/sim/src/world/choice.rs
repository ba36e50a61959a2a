//! The moves of the world: a `Choice` is one (a store call or token request completing and
//! how, the clock moving, a crash, a store fault); the world offers those possible now, the
//! default first, and makes one.

use std::time::Duration;

use helloflex_auth::Clock;
use helloflex_core::{TransportError, TransportErrorKind};

use crate::store::CallFault;

use super::{World, lock, refresh_in};

/// One move of the world.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Choice {
    /// Run queued store call `id`, meeting `fault`.
    Store {
        /// The call.
        id: u64,
        /// What it meets.
        fault: CallFault,
    },
    /// The server answers token request `id`.
    Answer(u64),
    /// The server acts on token request `id`, and its answer is lost (a timeout).
    Lose(u64),
    /// Token request `id` never reaches the server (a refused connection).
    Refuse(u64),
    /// The clock moves to the next timer.
    Advance,
    /// Instance `n` dies (`kill -9`).
    Crash(usize),
    /// Instance `n` starts again, with nothing in memory.
    Restart(usize),
    /// The store goes down.
    StoreDown,
    /// The store comes back.
    StoreUp,
    /// The store restarts with its data.
    StoreRestart,
    /// The store restarts empty.
    StoreWipe,
    /// The store restarts from the snapshot before its last write.
    StoreRollback,
    /// The records vanish while the store stays up.
    StoreEvict,
    /// The store's clock steps back an hour.
    StoreClockBack,
    /// The store's clock steps forward an hour.
    StoreClockForward,
}

impl Choice {
    fn is_fault(&self) -> bool {
        matches!(
            self,
            Choice::Store { fault: CallFault::Before | CallFault::After, .. }
                | Choice::Lose(_)
                | Choice::Refuse(_)
                | Choice::Crash(_)
                | Choice::StoreDown
                | Choice::StoreRestart
                | Choice::StoreWipe
                | Choice::StoreRollback
                | Choice::StoreEvict
                | Choice::StoreClockBack
                | Choice::StoreClockForward
        )
    }
}

impl World {
    /// The moves possible now, the default (the oldest call or request completing normally,
    /// else the clock moving) first. Empty once the horizon passed.
    pub fn choices(&self) -> Vec<Choice> {
        if self.finished() {
            return Vec::new();
        }
        let faults_left = self.faults < self.config.max_faults;
        // A call or request that reached its timeout ends now: in time, or timed out (applied
        // or not).
        let now = self.hub.clock.now();
        {
            let queues = self.hub.queues();
            let mut overdue = Vec::new();
            for work in queues.work.iter().filter(|w| w.bound <= now) {
                overdue.push(Choice::Store { id: work.id, fault: CallFault::None });
                if faults_left {
                    overdue.push(Choice::Store { id: work.id, fault: CallFault::Before });
                    overdue.push(Choice::Store { id: work.id, fault: CallFault::After });
                }
            }
            for request in queues.requests.iter().filter(|r| r.bound <= now) {
                overdue.push(Choice::Answer(request.id));
                if faults_left {
                    overdue.extend([Choice::Lose(request.id), Choice::Refuse(request.id)]);
                }
            }
            if !overdue.is_empty() {
                return overdue;
            }
        }
        let mut progress: Vec<(u64, Choice)> = Vec::new();
        let mut deviations = Vec::new();
        {
            let queues = self.hub.queues();
            for work in &queues.work {
                progress.push((work.id, Choice::Store { id: work.id, fault: CallFault::None }));
                if faults_left && self.config.store_faults.calls {
                    deviations.push(Choice::Store { id: work.id, fault: CallFault::Before });
                    deviations.push(Choice::Store { id: work.id, fault: CallFault::After });
                }
            }
            for request in &queues.requests {
                progress.push((request.id, Choice::Answer(request.id)));
                if faults_left {
                    deviations.push(Choice::Lose(request.id));
                    deviations.push(Choice::Refuse(request.id));
                }
            }
        }
        progress.sort_by_key(|(id, _)| *id);
        let mut choices: Vec<Choice> = progress.into_iter().map(|(_, c)| c).collect();
        if self.hub.next_deadline().is_some() {
            choices.push(Choice::Advance);
        }
        choices.extend(deviations);
        for (n, instance) in self.instances.iter().enumerate() {
            if instance.alive && faults_left && self.crashes < self.config.max_crashes {
                choices.push(Choice::Crash(n));
            }
            if !instance.alive {
                choices.push(Choice::Restart(n));
            }
        }
        let store = self.store.inner();
        let faults = self.config.store_faults;
        if store.down {
            choices.push(Choice::StoreUp);
        } else if faults_left && faults.down {
            choices.push(Choice::StoreDown);
        }
        if faults_left {
            let offered = [
                (faults.restart, Choice::StoreRestart),
                (faults.wipe, Choice::StoreWipe),
                (faults.rollback, Choice::StoreRollback),
                (faults.evict, Choice::StoreEvict),
                (faults.clock_back, Choice::StoreClockBack),
                (faults.clock_forward, Choice::StoreClockForward),
            ];
            choices.extend(offered.into_iter().filter(|(on, _)| *on).map(|(_, choice)| choice));
        }
        choices
    }

    /// Makes `choice`, runs every task it woke, and checks the invariants.
    pub fn apply(&mut self, choice: &Choice) {
        let offered = self.choices();
        if offered.first() != Some(choice) {
            self.deviations += 1;
        }
        if choice.is_fault() {
            self.faults += 1;
        }
        let at = self.now_s();
        let owner = self.owner(choice);
        self.trace.push(format!("{at:8.3}s {owner}{choice:?}"));
        match choice {
            Choice::Store { id, fault } => self.run_store(*id, *fault),
            Choice::Answer(id) => self.answer(*id, true, true),
            Choice::Lose(id) => self.answer(*id, true, false),
            Choice::Refuse(id) => self.answer(*id, false, false),
            Choice::Advance => {
                let next = [self.hub.next_deadline(), self.hub.next_bound()];
                if let Some(to) = next.into_iter().flatten().min() {
                    self.hub.advance_to(to);
                }
            }
            Choice::Crash(n) => {
                self.crashes += 1;
                let instance = &mut self.instances[*n];
                instance.alive = false;
                instance.received.clear();
                let managers = std::mem::take(&mut instance.managers);
                let tasks = self.hub.crash(*n, instance.incarnation);
                drop(tasks);
                drop(managers);
            }
            Choice::Restart(n) => self.boot(*n),
            Choice::StoreDown => self.store.inner().down = true,
            Choice::StoreUp => self.store.inner().down = false,
            Choice::StoreRestart => self.store.restart(true),
            Choice::StoreWipe => self.store.restart(false),
            Choice::StoreRollback => self.store.roll_back(),
            Choice::StoreEvict => self.store.evict(),
            Choice::StoreClockBack => self.store.clock_back(Duration::from_secs(3600)),
            Choice::StoreClockForward => self.store.clock_forward(Duration::from_secs(3600)),
        }
        self.settle();
        self.check();
    }

    /// Who a choice concerns, for the trace: `i<n> ` (`†` for a dead incarnation's leftover).
    pub(super) fn owner(&self, choice: &Choice) -> String {
        let queues = self.hub.queues();
        let found = match choice {
            Choice::Store { id, .. } => {
                queues.work.iter().find(|w| w.id == *id).map(|w| (w.instance, w.incarnation))
            }
            Choice::Answer(id) | Choice::Lose(id) | Choice::Refuse(id) => {
                queues.requests.iter().find(|r| r.id == *id).map(|r| (r.instance, r.incarnation))
            }
            _ => None,
        };
        drop(queues);
        match found {
            Some((n, inc)) if self.alive(n, inc) => format!("i{n} "),
            Some((n, _)) => format!("i{n}† "),
            None => String::new(),
        }
    }

    pub(super) fn run_store(&mut self, id: u64, fault: CallFault) {
        let owner = {
            let queues = self.hub.queues();
            queues.work.iter().find(|w| w.id == id).map(|w| (w.instance, w.incarnation))
        };
        let Some((instance, incarnation)) = owner else { return };
        let Some((work, done)) = self.hub.take_work(id) else { return };
        self.store.arm(fault);
        work();
        let (read, call) = {
            let mut store = self.store.inner();
            (std::mem::take(&mut store.last_read), std::mem::take(&mut store.last_call))
        };
        if let Some(line) = self.trace.last_mut() {
            *line =
                line.replace(&format!("Store {{ id: {id}, fault: None }}"), &format!("store#{id}"));
            line.push_str(&format!(" {call}"));
        }
        if self.alive(instance, incarnation) {
            self.instances[instance].received.extend(read);
        }
        done.finish();
    }

    pub(super) fn answer(&mut self, id: u64, reaches: bool, delivered: bool) {
        let owner = {
            let queues = self.hub.queues();
            queues.requests.iter().find(|r| r.id == id).map(|r| (r.instance, r.incarnation))
        };
        let Some((instance, incarnation)) = owner else { return };
        let Some((request, slot)) = self.hub.take_request(id) else { return };
        let response =
            reaches.then(|| lock(&self.server).handle_token(request.body(), self.hub.clock.now()));
        if let Some(line) = self.trace.last_mut() {
            let body = String::from_utf8_lossy(request.body());
            let asked = body
                .split('&')
                .find(|p| p.starts_with("refresh_token=") || p.starts_with("code="))
                .unwrap_or("?");
            let answered = match &response {
                Some(r) => {
                    format!("{} {}", r.status().as_u16(), refresh_in(r.body()).unwrap_or_default())
                }
                None => "never arrived".into(),
            };
            line.push_str(&format!(
                " -> {asked} -> {answered}{}",
                if delivered { "" } else { ", answer lost" }
            ));
        }
        match (response, delivered) {
            (Some(response), true) => {
                if self.alive(instance, incarnation)
                    && let Some(refresh) = refresh_in(response.body())
                {
                    self.instances[instance].received.insert(refresh);
                }
                slot.fill(Ok(response));
            }
            (Some(_), false) => {
                slot.fill(Err(TransportError::new(
                    TransportErrorKind::Timeout,
                    "simulated timeout",
                )));
            }
            (None, _) => slot.fill(Err(TransportError::new(
                TransportErrorKind::Connect,
                "simulated refused connection",
            ))),
        }
    }
}
