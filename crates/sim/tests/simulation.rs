//! The fleet simulation as part of the test suite.

use helloflex_sim::{Config, simulate};

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
