//! The simulated world: N instances of a service, each running the real async token manager
//! (one per user, made with `for_store`, as a web app does), one shared store, one
//! authorization server, and the choices that move them: which store call or token request
//! completes next and how (answered, failed, applied with its answer lost), when the clock
//! moves, which instance crashes or restarts, what the store suffers.
//!
//! Everything is deterministic given the choices, so a run is a list of choices and can be
//! replayed exactly; the explorers search over such lists.
//!
//! This file holds the world and its instances; `config.rs` what a run simulates, `choice.rs`
//! the moves (what is offered, and making one), `invariants.rs` what is checked after every
//! step and once the faults stop.

mod choice;
mod config;
mod invariants;

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
    InsecureLoopback, LifecyclePolicy, RetryPolicy,
};

use crate::executor::{Hub, Seams, later};
use crate::server::Server;
use crate::store::SimStore;

pub use choice::Choice;
pub use config::{Config, StoreFaults};

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

    fn alive(&self, instance: usize, incarnation: u32) -> bool {
        let i = &self.instances[instance];
        i.alive && i.incarnation == incarnation
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
