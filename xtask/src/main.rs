//! The project's own tasks: `cargo xtask <task>`.
//!
//! - `ci`: format check, clippy (warnings denied), the whole test suite, docs (warnings denied).
//! - `test`: the whole test suite (nextest for unit and behaviour tests, doctests, the quickstart).
//! - `lint`: format check and clippy only.
//! - `deps`: the core's normal dependency count (it must stay small).
//! - `fuzz [seconds]`: every fuzz target of the core for that long (default 60; `ci` runs 10 as a
//!   smoke). Installs cargo-fuzz if missing; runs it on stable with `RUSTC_BOOTSTRAP=1`.

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let task = env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => lint()
            .and_then(|()| test())
            .and_then(|()| docs())
            .and_then(|()| deps())
            .and_then(|()| fuzz(10)),
        "fuzz" => match env::args().nth(2).map(|s| s.parse::<u64>()) {
            None => fuzz(60),
            Some(Ok(seconds)) => fuzz(seconds),
            Some(Err(_)) => Err("usage: cargo xtask fuzz [seconds per target]".into()),
        },
        "test" => test(),
        "lint" => lint(),
        "docs" => docs(),
        "deps" => deps(),
        _ => {
            eprintln!("usage: cargo xtask <ci|test|lint|docs|deps|fuzz [seconds]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo <args>` with `envs`, failing on a non-zero exit.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    #[allow(clippy::disallowed_methods)] // timing a build step, outside any library
    let start = Instant::now();
    let status = Command::new(cargo)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    eprintln!("  ({:.1}s)", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn lint() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])
}

/// Installs the pinned oidc-provider for the interop tests (into a git-ignored folder).
fn interop_server() -> Result<(), String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/interop/server");
    if dir.join("node_modules/oidc-provider").exists() {
        return Ok(());
    }
    eprintln!("$ npm ci (crates/interop/server)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| {
            format!("could not run npm (node and npm are needed for the interop tests): {e}")
        })?;
    if status.success() { Ok(()) } else { Err(format!("npm ci failed ({status})")) }
}

fn test() -> Result<(), String> {
    interop_server()?;
    cargo(&["nextest", "run", "--workspace", "--all-targets", "--no-fail-fast"], &[])?;
    cargo(&["test", "--workspace", "--doc"], &[])?;
    // The README's first command must keep working.
    cargo(&["run", "--quiet", "--example", "quickstart"], &[])
}

fn docs() -> Result<(), String> {
    cargo(&["doc", "--workspace", "--no-deps"], &[("RUSTDOCFLAGS", "-D warnings")])
}

/// Prints the core's normal (non-dev, non-build) dependencies and fails above the budget.
fn deps() -> Result<(), String> {
    const BUDGET: usize = 20;
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["tree", "-p", "helloflex-core", "-e", "normal", "--prefix", "none", "--no-dedupe"])
        .output()
        .map_err(|e| format!("could not run cargo tree: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut crates: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    crates.sort_unstable();
    crates.dedup();
    crates.retain(|c| *c != "helloflex-core");
    println!(
        "helloflex-core: {} normal dependencies (budget {BUDGET}): {}",
        crates.len(),
        crates.join(", ")
    );
    for forbidden in ["reqwest", "ureq", "tokio", "hyper"] {
        if crates.contains(&forbidden) {
            return Err(format!("helloflex-core depends on {forbidden}"));
        }
    }
    if crates.len() > BUDGET { Err(format!("over the budget of {BUDGET}")) } else { Ok(()) }
}

/// The core's fuzz targets (crates/core/fuzz).
const FUZZ_TARGETS: [&str; 4] = ["token_response", "api_response", "callback", "www_authenticate"];

/// Runs every fuzz target for `seconds`, printing executions; fails on any crash.
fn fuzz(seconds: u64) -> Result<(), String> {
    let cargo_bin = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let installed = Command::new(&cargo_bin)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        cargo(&["install", "cargo-fuzz", "--locked"], &[])?;
    }
    let core = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/core");
    let mut report = Vec::new();
    for target in FUZZ_TARGETS {
        eprintln!("$ cargo fuzz run {target} (for {seconds}s)");
        let output = Command::new(&cargo_bin)
            .args([
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
            ])
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&core)
            .output()
            .map_err(|e| format!("could not run cargo fuzz: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let runs = stderr
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(str::trim)
            .unwrap_or("?");
        if !output.status.success() {
            eprintln!(
                "{}",
                stderr
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            return Err(format!("fuzz target {target} failed after {runs} executions"));
        }
        report.push(format!("{target}: {runs} executions, 0 crashes"));
    }
    for line in report {
        println!("fuzz {line}");
    }
    Ok(())
}
