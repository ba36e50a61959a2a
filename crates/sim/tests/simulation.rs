//! The fleet simulation in the test suite: a small exhaustive search and a few hundred random
//! runs, in the debug build. `cargo xtask ci` runs the bounded configuration in release
//! (`fleet-sim ci`); `docs/fleet.md` has the figures of the longer runs.

use helloflex_sim::{Config, Exploration, explore, replay, simulate};

fn report(config: &Config, choices: &[helloflex_sim::Choice]) -> String {
    let world = replay(config, choices);
    format!("{:?}\n{}", world.violations, world.trace.join("\n"))
}

/// The default schedule (every call answered in order, no fault) keeps every invariant, for
/// one and for two users.
#[test]
fn the_default_schedule_keeps_every_invariant() {
    for users in [1, 2] {
        let config = Config { users, max_faults: 0, ..Config::default() };
        let world = simulate(&config, 0, 0.0);
        assert!(world.violations.is_empty(), "{:?}\n{}", world.violations, world.trace.join("\n"));
    }
}

/// Every schedule one choice away from the default (any store fault, any lost answer, any
/// crash, any reordering or delay) keeps every invariant.
#[test]
fn every_schedule_one_deviation_away_keeps_every_invariant() {
    let config = Config::default();
    let (states, _, found) = explore(Exploration { config: config.clone(), max_deviations: 1 }, 2);
    if let Some(choices) = found {
        panic!("counterexample after {states} states:\n{}", report(&config, &choices));
    }
    assert!(states > 5_000, "explored only {states} states");
}

/// Random schedules with two users and up to two faults each keep every invariant.
#[test]
fn random_schedules_keep_every_invariant() {
    let config = Config { users: 2, ..Config::default() };
    for seed in 0..600 {
        let world = simulate(&config, seed, 0.15);
        assert!(
            world.violations.is_empty(),
            "seed {seed}: {:?}\n{}",
            world.violations,
            world.trace.join("\n")
        );
    }
}
