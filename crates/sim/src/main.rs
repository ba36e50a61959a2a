//! `fleet-sim`: long runs of the fleet simulation (`cargo xtask sim` runs it).
//!
//! `fleet-sim ci` runs the bounded configuration `cargo xtask ci` checks: every schedule within
//! two deviations from the default one (2 instances, 1 user, up to 2 faults), then 5,000 seeded
//! random schedules with 2 users;
//! `fleet-sim random <seeds> [deviate]` runs seeded random schedules;
//! `fleet-sim explore <max deviations> [threads]` explores every schedule within the bound.
//! A counterexample prints its trace, choice by choice.

use std::process::ExitCode;
use std::time::Instant;

use helloflex_sim::{Config, Exploration, StoreFaults, explore, replay, simulate};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = Config::default();
    // `HELLOFLEX_SIM_INSTANCES`, `_USERS`, `_FAULTS` (per run) widen the world.
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    if let Some(n) = number("HELLOFLEX_SIM_INSTANCES") {
        config.instances = n as usize;
    }
    if let Some(n) = number("HELLOFLEX_SIM_USERS") {
        config.users = n as usize;
    }
    if let Some(n) = number("HELLOFLEX_SIM_MAX_FAULTS") {
        config.max_faults = n;
    }
    // `HELLOFLEX_SIM_FAULTS=calls,down,restart,wipe,rollback,evict,clockback,clockforward,crash`
    // picks the faults (clockforward is in no default set).
    if let Ok(list) = std::env::var("HELLOFLEX_SIM_FAULTS") {
        let on = |name: &str| list.split(',').any(|f| f == name);
        config.store_faults = StoreFaults {
            calls: on("calls"),
            down: on("down"),
            restart: on("restart"),
            wipe: on("wipe"),
            rollback: on("rollback"),
            evict: on("evict"),
            clock_back: on("clockback"),
            clock_forward: on("clockforward"),
        };
        config.max_crashes = u32::from(on("crash"));
    }
    #[allow(clippy::disallowed_methods)] // timing a run, outside any library
    let started = Instant::now();
    match args.first().map(String::as_str) {
        Some("ci") => {
            let (states, depth, found) =
                explore(Exploration { config: config.clone(), max_deviations: 2 }, 2);
            println!(
                "explored {states} states (depth {depth}) within 2 deviations ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            if let Some(choices) = found {
                let world = replay(&config, &choices);
                println!("counterexample: {:?}", world.violations);
                for line in &world.trace {
                    println!("  {line}");
                }
                return ExitCode::FAILURE;
            }
            let two_users = Config { users: 2, ..config };
            for seed in 0..5_000 {
                let world = simulate(&two_users, seed, 0.15);
                if let Some(violation) = world.violations.first() {
                    println!("seed {seed} (2 users): {violation}");
                    for line in &world.trace {
                        println!("  {line}");
                    }
                    return ExitCode::FAILURE;
                }
            }
            println!(
                "and 5000 random seeds with 2 users ({:.1} s in all)",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Some("random") => {
            let seeds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let deviate: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.2);
            let (mut faults, mut reuses, mut with_fault) = (0u64, 0u64, 0u64);
            for seed in 0..seeds {
                #[allow(clippy::disallowed_methods)] // timing a run, outside any library
                let began = Instant::now();
                let world = simulate(&config, seed, deviate);
                if began.elapsed().as_secs_f64() > 2.0 {
                    eprintln!(
                        "seed {seed} took {:.1} s: {} steps; {}",
                        began.elapsed().as_secs_f64(),
                        world.trace.len(),
                        world.summary()
                    );
                }
                faults += u64::from(world.faults);
                with_fault += u64::from(world.faults > 0);
                reuses += world.reuses() as u64;
                if !world.violations.is_empty() {
                    println!("seed {seed}: {}", world.violations[0]);
                    for line in &world.trace {
                        println!("  {line}");
                    }
                    return ExitCode::FAILURE;
                }
            }
            println!(
                "{seeds} seeds, no violation ({:.1} s); {} instances, {} users, up to {} faults a run: \
                 {with_fault} runs met a fault, {:.2} faults a run on average; {reuses} reuse events \
                 in all, each of a lost answer",
                started.elapsed().as_secs_f64(),
                config.instances,
                config.users,
                config.max_faults,
                faults as f64 / seeds.max(1) as f64,
            );
            ExitCode::SUCCESS
        }
        Some("explore") => {
            let max_deviations: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
            let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
            let (states, depth, found) =
                explore(Exploration { config: config.clone(), max_deviations }, threads);
            println!(
                "{states} states, depth {depth}, within {max_deviations} deviations ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            match found {
                None => ExitCode::SUCCESS,
                Some(choices) => {
                    let world = replay(&config, &choices);
                    println!("counterexample: {:?}", world.violations);
                    for line in &world.trace {
                        println!("  {line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!(
                "usage: fleet-sim random <seeds> [deviate] | explore <max deviations> [threads]"
            );
            ExitCode::from(2)
        }
    }
}
