//! The project's own tasks: `cargo xtask <task>`.
//!
//! - `ci`: format check, clippy (warnings denied), the whole test suite, the fleet simulation's
//!   bounded configuration (release), docs (warnings denied).
//! - `test`: the whole test suite (nextest for unit and behaviour tests, doctests, the quickstart,
//!   a new user's path on the CLI as `cargo install --locked` installs it).
//! - `sim`: the fleet simulation's bounded configuration (`fleet-sim ci`, release).
//! - `defects [name]`: each defect the fleet simulation must catch, put back one at a time (the
//!   patches in `crates/sim/defects/`, applied to a scratch worktree): the simulation must fail
//!   on every one (or on those whose name contains `name`).
//! - `docs`: README.md and every page of `docs/` listed as doctests of the facade, none marked
//!   `ignore`; the published libraries' API docs (warnings denied); every `helloflex::` path in
//!   the examples of core, auth, the transports and the Redis store found in the facade; and per
//!   crate how many pages show an example of their item, failing below 90% for `helloflex`,
//!   70% for `helloflex-auth` and `helloflex-core` (under 30 s with warm builds).
//! - `lint`: format check and clippy only.
//! - `public-api [--bless]`: the public API of every published library (each crate without
//!   `publish = false`) compared with its committed `crates/<name>/public-api.txt`, failing with
//!   the diff; `--bless` writes the files (see `public_api.rs`).
//! - `deps`: the core's normal dependency count (it must stay small).
//! - `bench [--no-build-rows]`: criterion benches of the core, the loopback load benchmark and
//!   footprints (the build rows of `footprint`, unless `--no-build-rows`; dependency counts),
//!   written to `docs/benchmarks.md` (and `docs/rollover.svg`).
//! - `footprint`: a minimal program on the SDK (several feature choices) and on oauth2 +
//!   reqwest, each built cold in a scratch project: crates compiled, release build time, binary
//!   size, written to `target/bench/footprint.md` (see `footprint.rs`).
//! - `fuzz [seconds]`: every fuzz target of the core for that long (default 60; `ci` runs 10 as a
//!   smoke). Installs cargo-fuzz if missing; runs it on stable with `RUSTC_BOOTSTRAP=1`.

mod bench;
mod docs;
mod footprint;
mod public_api;
mod setup;

use std::env;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    // Cargo runs this binary as rustdoc while `public-api` builds rustdoc JSON.
    if env::var_os(public_api::SHIM_VARIABLE).is_some() {
        return public_api::rustdoc_shim();
    }
    let task = env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => {
            eprintln!(
                "xtask ci: format, clippy, the test suite, the fleet simulation, docs, the public \
                 API, the core's dependency budget, a fuzz smoke: about 16 minutes on two warm cores, 20 or more \
                 from a cold build"
            );
            setup::nextest_installed()
                .and_then(|()| lint())
                .and_then(|()| test())
                .and_then(|()| sim())
                .and_then(|()| docs::check())
                .and_then(|()| public_api::public_api(false))
                .and_then(|()| deps())
                .and_then(|()| fuzz(10))
        }
        "bench" => match env::args().nth(2).as_deref() {
            None => bench::run(true),
            Some("--no-build-rows") => bench::run(false),
            Some(_) => Err("usage: cargo xtask bench [--no-build-rows]".into()),
        },
        "footprint" => footprint::footprint().map(drop),
        "fuzz" => match env::args().nth(2).map(|s| s.parse::<u64>()) {
            None => fuzz(60),
            Some(Ok(seconds)) => fuzz(seconds),
            Some(Err(_)) => Err("usage: cargo xtask fuzz [seconds per target]".into()),
        },
        "test" => setup::nextest_installed().and_then(|()| test()),
        "sim" => sim(),
        "defects" => defects(env::args().nth(2).unwrap_or_default()),
        "lint" => lint(),
        "docs" => docs::check(),
        "public-api" => match env::args().nth(2).as_deref() {
            None => public_api::public_api(false),
            Some("--bless") => public_api::public_api(true),
            Some(_) => Err("usage: cargo xtask public-api [--bless]".into()),
        },
        "deps" => deps(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|test|sim|defects|lint|docs|public-api [--bless]|deps|bench [--no-build-rows]|footprint|fuzz [seconds]>"
            );
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
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    // The public-API renderer is a workspace of its own (see xtask/public-api/Cargo.toml).
    let renderer = workspace_root().join("xtask/public-api/Cargo.toml");
    let renderer = renderer.to_string_lossy();
    let target = target_directory()?;
    cargo(&["fmt", "--manifest-path", &renderer, "--", "--check"], &[])?;
    cargo(
        &["clippy", "--locked", "--manifest-path", &renderer, "--", "-D", "warnings"],
        &[("CARGO_TARGET_DIR", &target.to_string_lossy())],
    )
}

fn test() -> Result<(), String> {
    setup::node_packages()?;
    setup::redis_server()?;
    setup::postgres_server()?;
    setup::debian_package("chromium", "chromium", "the CLI's browser tests")?;
    cargo(&["nextest", "run", "--workspace", "--all-targets", "--no-fail-fast"], &[])?;
    cargo(&["test", "--workspace", "--doc"], &[])?;
    // The README's first command must keep working.
    cargo(&["run", "--quiet", "--example", "quickstart"], &[])?;
    new_user()
}

/// A new user's path as README.md tells it: the CLI installed with `cargo install --locked`,
/// then the emulator, a browser sign-in, calls with both grants, `status`, `logout` (the test
/// `a_new_users_path`, run on the installed binary). A debug install into `target/newuser`
/// reuses the suite's build: seconds, not a release build's minutes.
fn new_user() -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target");
    let installed = target.join("newuser");
    let (target, installed) = (target.to_string_lossy(), installed.to_string_lossy());
    let crate_dir = root.join("crates/cli");
    cargo(
        &[
            "install",
            "--quiet",
            "--locked",
            "--debug",
            "--force",
            "--path",
            &crate_dir.to_string_lossy(),
            "--root",
            &installed,
        ],
        &[("CARGO_TARGET_DIR", &target)],
    )?;
    let binary = format!("{installed}/bin/helloflex");
    cargo(
        &["nextest", "run", "-p", "helloflex-cli", "--test", "browser", "a_new_users_path"],
        &[("HELLOFLEX_CLI_BIN", &binary)],
    )
}

/// The fleet simulation's bounded configuration, in release (the exhaustive part explores a few
/// million states: about a minute on two cores).
fn sim() -> Result<(), String> {
    cargo(
        &["run", "--release", "--quiet", "-p", "helloflex-sim", "--bin", "fleet-sim", "--", "ci"],
        &[],
    )
}

/// Puts each known defect back (a patch of `crates/sim/defects/`) into a scratch worktree of
/// `HEAD`, runs the simulation's bounded configuration there, and fails unless the simulation
/// fails on every defect; prints the violation each one was caught by.
fn defects(only: String) -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("crates/sim/defects");
    let mut patches: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("no {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .filter(|p| p.to_string_lossy().contains(&only))
        .collect();
    patches.sort();
    let scratch = root.join("target/defects/tree");
    let target = root.join("target/defects/target");
    let git = |args: &[&str], at: &std::path::Path| {
        Command::new("git").args(args).current_dir(at).status().is_ok_and(|s| s.success())
    };
    let _ = git(&["worktree", "remove", "--force", &scratch.to_string_lossy()], &root);
    if !git(&["worktree", "add", "--detach", &scratch.to_string_lossy(), "HEAD"], &root) {
        return Err("could not make a scratch worktree".into());
    }
    let mut missed = Vec::new();
    for patch in &patches {
        let name = patch.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let _ = git(&["checkout", "--", "."], &scratch);
        if !git(&["apply", &patch.to_string_lossy()], &scratch) {
            missed.push(format!("{name}: the patch no longer applies"));
            continue;
        }
        eprintln!("$ fleet-sim ci with the defect {name}");
        let output = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "helloflex-sim",
                "--bin",
                "fleet-sim",
                "--",
                "ci",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&scratch)
            .output()
            .map_err(|e| format!("could not run cargo: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let caught =
            text.lines().find(|l| l.starts_with("counterexample") || l.starts_with("seed "));
        match (output.status.success(), caught) {
            (false, Some(line)) => println!("{name}: caught: {line}"),
            (false, None) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
                missed.push(format!(
                    "{name}: the simulation failed without a counterexample: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            (true, _) => missed.push(format!("{name}: not caught")),
        }
    }
    let _ = git(&["worktree", "remove", "--force", &scratch.to_string_lossy()], &root);
    if missed.is_empty() { Ok(()) } else { Err(missed.join("\n")) }
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
const FUZZ_TARGETS: [&str; 5] =
    ["token_response", "api_response", "callback", "www_authenticate", "echoed_secret"];

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

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where cargo puts this workspace's builds, asked of cargo at run time: `CARGO_TARGET_DIR`, a
/// `.cargo/config` or a directory shared between checkouts all move it, and a path built from
/// the source tree would run whatever stale binary sits there instead.
fn target_directory() -> Result<std::path::PathBuf, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("could not run cargo metadata: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let key = "\"target_directory\":\"";
    let start = text.find(key).ok_or("cargo metadata named no target directory")? + key.len();
    let end = text[start..].find('"').ok_or("cargo metadata is malformed")? + start;
    Ok(std::path::PathBuf::from(&text[start..end]))
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_target_directory_is_asked_of_cargo() {
        let target = super::target_directory().unwrap();
        assert!(target.is_absolute(), "{}", target.display());
        // The test binary itself was built there.
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(&target), "{} is not under {}", exe.display(), target.display());
    }
}
