//! A deterministic simulation of a fleet sharing one token store: the real async token
//! managers of `helloflex-auth` (their fill job and the core's token lifecycle, not a model of
//! them) driven through the interleavings of several instances, a store that fails, restarts,
//! loses or rolls back data, and an authorization server that rotates refresh tokens and
//! revokes a whole family when a rotated one comes back.
//!
//! Every seam the managers are built on is the simulation's: the clock ([`helloflex_auth::ManualClock`]),
//! the entropy, the runtime (tasks polled in a fixed order), the transport (each token request
//! waits until the world lets the server answer it) and the store (each call waits until the
//! world runs it, with or without a fault). So a run is a list of [`Choice`]s, replayed exactly.
//!
//! Two searches over those lists:
//! - [`explore`]: every list within a bound on the choices that differ from the default
//!   schedule (delay bounding), with stateright's depth-first checker;
//! - [`simulate`]: seeded random runs, as FoundationDB and TigerBeetle do, for larger
//!   configurations.
//!
//! The invariants (checked after every step, and at the end of a run):
//! - no refresh token the server rotated is presented again, unless its rotation's answer was
//!   lost: it reached no live instance and no store (the instance holding it died first);
//! - no instance calls the API with another user's token;
//! - once faults stop, every instance settles: served, or every one told to re-authorize, and
//!   then one new sign-in brings every instance back without a restart.
//!
//! ```
//! use helloflex_sim::{Config, simulate};
//!
//! let config = Config { horizon: std::time::Duration::from_secs(90), ..Config::default() };
//! let world = simulate(&config, 7, 0.2);
//! println!("{}", world.summary());
//! ```

mod executor;
mod server;
mod store;
mod world;

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use stateright::{Model, Property};

pub use store::CallFault;
pub use world::{Choice, Config, Outcome, StoreFaults, World};

/// Replays `choices` from the start.
pub fn replay(config: &Config, choices: &[Choice]) -> World {
    let mut world = World::new(config.clone());
    for choice in choices {
        world.apply(choice);
    }
    if world.finished() {
        world.check_liveness();
    }
    world
}

/// A seeded random run: at each step the default choice, or with probability `deviate` any
/// other one offered (faults within the configuration's budget).
pub fn simulate(config: &Config, seed: u64, deviate: f64) -> World {
    let mut rng = SplitMix(seed);
    let mut world = World::new(config.clone());
    while !world.finished() && world.violations.is_empty() {
        let choices = world.choices();
        let Some(first) = choices.first() else { break };
        let choice = if choices.len() > 1 && rng.fraction() < deviate {
            choices[1 + (rng.next() as usize) % (choices.len() - 1)].clone()
        } else {
            first.clone()
        };
        world.apply(&choice);
    }
    if world.violations.is_empty() {
        world.check_liveness();
    }
    world
}

/// SplitMix64: the simulation's only randomness, from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The exhaustive search: every run whose choices differ from the default schedule at most
/// `max_deviations` times.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// The world explored.
    pub config: Config,
    /// How many non-default choices a run may make.
    pub max_deviations: u32,
}

/// A node of the search: the choices that lead to it (its identity) and what they led to.
#[derive(Clone)]
pub struct Node {
    /// The choices from the start.
    pub history: Vec<Choice>,
    choices: Vec<Choice>,
    /// The first invariant violated, if any.
    pub violation: Option<String>,
    deviations: u32,
    /// The world at this node, until its first child takes it over: that child is one step
    /// away, its siblings are replayed from the start.
    world: Arc<Mutex<Option<World>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("history", &self.history)
            .field("violation", &self.violation)
            .finish_non_exhaustive()
    }
}

impl Hash for Node {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.history.hash(state);
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.history == other.history
    }
}

impl Eq for Node {}

impl Node {
    fn of(history: Vec<Choice>, world: World) -> Self {
        let finished = world.finished() || !world.violations.is_empty();
        Self {
            history,
            choices: world.choices(),
            violation: world.violations.first().cloned(),
            deviations: world.deviations,
            // A finished world has no children: nothing to keep it for.
            world: Arc::new(Mutex::new((!finished).then_some(world))),
        }
    }
}

impl Model for Exploration {
    type State = Node;
    type Action = Choice;

    fn init_states(&self) -> Vec<Node> {
        vec![Node::of(Vec::new(), World::new(self.config.clone()))]
    }

    fn actions(&self, state: &Node, actions: &mut Vec<Choice>) {
        // A run that broke an invariant is a counterexample: nothing to explore past it.
        // A node out of deviations has one child in bounds, the default: the others are not
        // even built (each would cost a replay).
        if state.violation.is_none() {
            let take = if state.deviations >= self.max_deviations { 1 } else { usize::MAX };
            actions.extend(state.choices.iter().take(take).cloned());
        }
    }

    fn next_state(&self, state: &Node, action: Choice) -> Option<Node> {
        let mut history = state.history.clone();
        let inherited = state.world.lock().unwrap_or_else(PoisonError::into_inner).take();
        let world = match inherited {
            Some(mut world) => {
                world.apply(&action);
                if world.finished() {
                    world.check_liveness();
                }
                history.push(action);
                world
            }
            None => {
                history.push(action);
                replay(&self.config, &history)
            }
        };
        Some(Node::of(history, world))
    }

    fn within_boundary(&self, state: &Node) -> bool {
        state.deviations <= self.max_deviations
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::always("the fleet's invariants hold", |_, node: &Node| {
            node.violation.is_none()
        })]
    }
}

/// Explores `exploration` with stateright's depth-first checker on `threads` threads, and
/// returns the states visited and the first counterexample found (its choices), if any.
pub fn explore(exploration: Exploration, threads: usize) -> (usize, usize, Option<Vec<Choice>>) {
    use stateright::Checker;
    let checker = exploration.checker().threads(threads).spawn_dfs().join();
    let found = checker
        .discovery("the fleet's invariants hold")
        .map(|path| path.into_states().last().map(|n| n.history.clone()).unwrap_or_default());
    (checker.state_count(), checker.max_depth(), found)
}
