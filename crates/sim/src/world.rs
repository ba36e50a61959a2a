//! The simulated world: N instances of a service, each running the real async token manager
//! (one per user, made with `for_store`, as a web app does), one shared store, one
//! authorization server, and the choices that move them: which store call or token request
//! completes next and how (answered, failed, applied with its answer lost), when the clock
//! moves, which instance crashes or restarts, what the store suffers.
//!
//! Everything is deterministic given the choices, so a run is a list of choices and can be
//! replayed exactly; the explorers search over such lists.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use helloflex_auth::{
    AsyncTokenManager, Clock, Entropy, ManagerBuilder, ManagerOptions, ManualClock, Record,
    StoredTokens,
};
use helloflex_core::machines::ApiCall;
use helloflex_core::{
    ApiRequest, AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Error,
    InsecureLoopback, LifecyclePolicy, PendingAuthorization, RetryPolicy, TransportError,
    TransportErrorKind,
};

use crate::executor::{Hub, Seams, later};
use crate::server::Server;
use crate::store::{CallFault, SimStore};

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Config {
    /// Instances of the service.
    pub instances: usize,
    /// Users, each with a token set of their own in the shared store.
    pub users: usize,
    /// Access token lifetime.
    pub lifetime: Duration,
    /// How often each instance calls the API for each user.
    pub call_every: Duration,
    /// How long faults and reorderings may happen.
    pub horizon: Duration,
    /// After the horizon, how long the fleet runs without faults before it must have settled.
    pub settle: Duration,
    /// Faults allowed in one run (failed or lost store calls, lost answers, crashes, store
    /// down, restarts, rollbacks).
    pub max_faults: u32,
    /// Crashes allowed in one run (also counted as faults).
    pub max_crashes: u32,
    /// Which store faults may happen.
    pub store_faults: StoreFaults,
}

/// The store faults a run may meet.
#[derive(Debug, Clone, Copy)]
pub struct StoreFaults {
    /// A call fails before it is applied, or is applied and its answer lost.
    pub calls: bool,
    /// The store is down for a while (every call fails) and comes back.
    pub down: bool,
    /// The store restarts keeping its data (persistence on).
    pub restart: bool,
    /// The store restarts empty (persistence off).
    pub wipe: bool,
    /// The store restarts from the snapshot before its last write.
    pub rollback: bool,
    /// The records vanish while the store stays up (an eviction, `DEL`, an expiry,
    /// `RedisStore::delete`).
    pub evict: bool,
    /// The store's clock steps back an hour.
    pub clock_back: bool,
    /// The store's clock steps forward an hour. Not among [`StoreFaults::all`]: right after a
    /// restart it cuts the grace period short, a limit docs/fleet.md states.
    pub clock_forward: bool,
}

impl StoreFaults {
    /// Every fault the protocol is meant to survive.
    pub fn all() -> Self {
        Self {
            calls: true,
            down: true,
            restart: true,
            wipe: true,
            rollback: true,
            evict: true,
            clock_back: true,
            clock_forward: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            instances: 2,
            users: 1,
            lifetime: Duration::from_secs(60),
            call_every: Duration::from_secs(20),
            horizon: Duration::from_secs(130),
            settle: Duration::from_secs(240),
            max_faults: 2,
            max_crashes: 1,
            store_faults: StoreFaults::all(),
        }
    }
}

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

/// What one API call of one instance for one user ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 200.
    Ok,
    /// The user must sign in again.
    Reauthorize,
    /// Any other error, as it reads.
    Failed(String),
}

struct Instance {
    incarnation: u32,
    alive: bool,
    managers: Vec<AsyncTokenManager>,
    /// Refresh tokens this incarnation was handed (by the server or by a store read).
    received: BTreeSet<String>,
}

/// Seeded, replayable entropy (SplitMix64).
#[derive(Debug)]
struct SimEntropy(Mutex<u64>);

impl Entropy for SimEntropy {
    fn jitter_seed(&self) -> u64 {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill(&self, bytes: &mut [u8]) -> Result<(), Error> {
        for chunk in bytes.chunks_mut(8) {
            let word = self.jitter_seed().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

type Outcomes = Arc<Mutex<Vec<Vec<Vec<(Instant, Outcome)>>>>>;

/// The simulated fleet.
pub struct World {
    config: Config,
    hub: Hub,
    store: SimStore,
    server: Arc<Mutex<Server>>,
    instances: Vec<Instance>,
    outcomes: Outcomes,
    stop_at: Arc<Mutex<Instant>>,
    auth: AuthorizationCodeConfig,
    options: ManagerOptions,
    start: Instant,
    horizon: Instant,
    /// Invariant violations seen so far.
    pub violations: Vec<String>,
    reuses_checked: usize,
    /// Choices that were not the default (the first one offered).
    pub deviations: u32,
    /// Faults so far.
    pub faults: u32,
    crashes: u32,
    /// What happened, step by step (for a counterexample).
    pub trace: Vec<String>,
}

/// The tasks hold the managers and the managers hold the hub the tasks sit in: a cycle the
/// world breaks when it ends, or every run would leak its whole world.
impl Drop for World {
    fn drop(&mut self) {
        let (tasks, work, requests) = {
            let mut queues = self.hub.queues();
            (
                std::mem::take(&mut queues.tasks),
                std::mem::take(&mut queues.work),
                std::mem::take(&mut queues.requests),
            )
        };
        // Dropped outside the lock: a future's drop may reach back into the hub.
        drop((tasks, work, requests));
        for instance in &mut self.instances {
            instance.managers.clear();
        }
    }
}

/// A user's record key, made the way every store makes it (the scope decides, whatever order
/// the builder set it in: the order here is the one that once lost the user).
fn key(user: usize) -> String {
    helloflex_auth::RecordScope::new("app")
        .for_user(&format!("u{user}"))
        .in_namespace("sim")
        .key("tokens")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The refresh token in a token response's body, if any.
fn refresh_in(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("refresh_token")?.as_str().map(str::to_owned)
}

impl World {
    /// A world at its start: every user signed in once (their tokens in the store), every
    /// instance running with nothing in memory.
    pub fn new(config: Config) -> Self {
        let clock = Arc::new(ManualClock::new());
        let start = clock.now();
        let server = Arc::new(Mutex::new(Server::new(config.lifetime)));
        let api_server = Arc::clone(&server);
        let api_clock = Arc::clone(&clock);
        let hub = Hub::new(
            Arc::clone(&clock),
            "/token",
            Arc::new(move |request| lock(&api_server).handle_api(request, api_clock.now())),
            // The store's and the transport's own timeouts: no call outlives them.
            (Duration::from_secs(1), Duration::from_secs(5)),
        );
        let store = SimStore::new(Arc::clone(&clock));
        for user in 0..config.users {
            let (access, refresh) = lock(&server).sign_in(user, start);
            let expires = clock.wall() + config.lifetime;
            let expires_ms =
                expires.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let tokens: StoredTokens = serde_json::from_value(serde_json::json!({
                "access_token": access, "refresh_token": refresh, "expires_at_unix_ms": expires_ms,
            }))
            .unwrap_or_else(|_| unreachable!("a literal token set"));
            store.seed(&key(user), Record::new(tokens, 1));
        }
        let endpoint = |path: &str| {
            Endpoint::parse(&format!("http://127.0.0.1:9{path}"), InsecureLoopback::Allow)
                .unwrap_or_else(|_| unreachable!("a literal loopback URL"))
        };
        let auth = AuthorizationCodeConfig::new(
            ClientIdentity::confidential("app", ClientSecret::new("app-secret")),
            endpoint("/authorize"),
            endpoint("/token"),
            endpoint("/callback"),
        );
        let options = ManagerOptions::default()
            .with_store_timeout(Duration::from_secs(1))
            .with_restart_grace(Duration::from_secs(30))
            .with_store_check(Duration::from_secs(5))
            .with_attempt_timeout(Duration::from_secs(5))
            .with_retry(
                RetryPolicy::default()
                    .with_deadline(Duration::from_secs(4))
                    .with_backoff(Duration::from_millis(500), Duration::from_secs(2)),
            )
            .with_lifecycle(LifecyclePolicy::default());
        let horizon = start + config.horizon;
        let outcomes: Outcomes =
            Arc::new(Mutex::new(vec![vec![Vec::new(); config.users]; config.instances]));
        let mut world = Self {
            hub,
            store,
            server,
            instances: Vec::new(),
            outcomes,
            // The callers go on through the horizon and the settling that follows it.
            stop_at: Arc::new(Mutex::new(later(horizon, (config.settle + config.lifetime) * 3))),
            auth,
            options,
            start,
            horizon,
            violations: Vec::new(),
            reuses_checked: 0,
            deviations: 0,
            faults: 0,
            crashes: 0,
            trace: Vec::new(),
            config,
        };
        for n in 0..world.config.instances {
            world.instances.push(Instance {
                incarnation: 0,
                alive: false,
                managers: Vec::new(),
                received: BTreeSet::new(),
            });
            world.boot(n);
        }
        world.settle();
        world
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn boot(&mut self, n: usize) {
        let incarnation = self.instances[n].incarnation + 1;
        let seams = Seams { hub: self.hub.clone(), instance: n, incarnation };
        let entropy = Arc::new(SimEntropy(Mutex::new((n as u64) << 32 | u64::from(incarnation))));
        let first = ManagerBuilder::authorization_code(
            self.auth.clone(),
            Arc::new(self.store.for_key(&key(0))),
        )
        .clock(self.hub.clock.clone())
        .entropy(entropy)
        .options(self.options.clone())
        .nonblocking(Arc::new(seams.clone()), Some(Arc::new(seams.clone())));
        let mut managers = vec![first.clone()];
        for user in 1..self.config.users {
            let store = Arc::new(self.store.for_key(&key(user)));
            match first.for_store(store) {
                Ok(manager) => managers.push(manager),
                Err(e) => self.violations.push(format!("for_store failed: {e}")),
            }
        }
        for (user, manager) in managers.iter().enumerate() {
            let manager = manager.clone();
            let (outcomes, stop_at, clock) =
                (Arc::clone(&self.outcomes), Arc::clone(&self.stop_at), self.hub.clock.clone());
            let call_every = self.config.call_every;
            let seams_for_task = seams.clone();
            let base = Endpoint::parse("http://127.0.0.1:9/api/", InsecureLoopback::Allow)
                .unwrap_or_else(|_| unreachable!("a literal loopback URL"));
            let task = async move {
                let mut seed = 0u64;
                loop {
                    if clock.now() >= *lock(&stop_at) {
                        return;
                    }
                    seed += 1;
                    let call = ApiCall::new(
                        ApiRequest::get(&format!("users/{user}/news")),
                        base.clone(),
                        RetryPolicy::never(),
                        seed,
                    );
                    let outcome = match manager.call(call).await {
                        Ok(response) if response.status() == 200 => Outcome::Ok,
                        Ok(response) => Outcome::Failed(format!("status {}", response.status())),
                        Err(e) if e.requires_reauthorization() => Outcome::Reauthorize,
                        Err(e) => Outcome::Failed(e.to_string()),
                    };
                    lock(&outcomes)[n][user].push((clock.now(), outcome));
                    helloflex_auth::AsyncTransport::sleep(&seams_for_task, call_every).await;
                }
            };
            self.hub.spawn(n, incarnation, Box::pin(task));
        }
        let instance = &mut self.instances[n];
        instance.incarnation = incarnation;
        instance.alive = true;
        instance.managers = managers;
        instance.received.clear();
    }

    fn settle(&mut self) {
        if !self.hub.run_until_quiet() {
            self.violations.push("a task kept waking itself (livelock)".into());
        }
    }

    fn now_s(&self) -> f64 {
        self.hub.clock.now().duration_since(self.start).as_secs_f64()
    }

    /// Whether the run is over (the horizon passed).
    pub fn finished(&self) -> bool {
        self.hub.clock.now() >= self.horizon
    }

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
    fn owner(&self, choice: &Choice) -> String {
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

    fn alive(&self, instance: usize, incarnation: u32) -> bool {
        let i = &self.instances[instance];
        i.alive && i.incarnation == incarnation
    }

    fn run_store(&mut self, id: u64, fault: CallFault) {
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

    fn answer(&mut self, id: u64, reaches: bool, delivered: bool) {
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

    /// The safety invariants, after every step.
    fn check(&mut self) {
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

    /// Reuse events the server saw (each excused, or it is a violation too).
    pub fn reuses(&self) -> usize {
        lock(&self.server).reuses.len()
    }

    /// A summary line for reports.
    pub fn summary(&self) -> String {
        let server = lock(&self.server);
        format!(
            "{} token requests, {} reuse events, {} code reuses, {} faults, {} deviations",
            server.token_requests,
            server.reuses.len(),
            server.code_reuses,
            self.faults,
            self.deviations
        )
    }
}
