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

mod footprint;
mod public_api;

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
            nextest_installed()
                .and_then(|()| lint())
                .and_then(|()| test())
                .and_then(|()| sim())
                .and_then(|()| docs())
                .and_then(|()| public_api::public_api(false))
                .and_then(|()| deps())
                .and_then(|()| fuzz(10))
        }
        "bench" => match env::args().nth(2).as_deref() {
            None => bench(true),
            Some("--no-build-rows") => bench(false),
            Some(_) => Err("usage: cargo xtask bench [--no-build-rows]".into()),
        },
        "footprint" => footprint::footprint().map(drop),
        "fuzz" => match env::args().nth(2).map(|s| s.parse::<u64>()) {
            None => fuzz(60),
            Some(Ok(seconds)) => fuzz(seconds),
            Some(Err(_)) => Err("usage: cargo xtask fuzz [seconds per target]".into()),
        },
        "test" => nextest_installed().and_then(|()| test()),
        "sim" => sim(),
        "defects" => defects(env::args().nth(2).unwrap_or_default()),
        "lint" => lint(),
        "docs" => docs(),
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

/// Installs the pinned oidc-provider for the interop tests and playwright-core for the browser
/// tests (the CLI's login, the web app) (into git-ignored folders).
fn node_packages() -> Result<(), String> {
    npm_ci("crates/interop/server", "oidc-provider")?;
    npm_ci("crates/examples/browser", "playwright-core")
}

fn npm_ci(folder: &str, package: &str) -> Result<(), String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(folder);
    if dir.join("node_modules").join(package).exists() {
        return Ok(());
    }
    eprintln!("$ npm ci ({folder})");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| {
            format!(
                "could not run npm (node and npm are needed for the interop and browser tests): {e}"
            )
        })?;
    if status.success() { Ok(()) } else { Err(format!("npm ci failed ({status})")) }
}

/// Installs a Debian package when its program is missing (apt, as root; elsewhere it says what
/// to install): `redis-server` for the Redis store and fleet tests, `chromium` for the CLI's
/// browser tests.
fn debian_package(program: &str, package: &str, for_what: &str) -> Result<(), String> {
    let found =
        || Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if found() {
        return Ok(());
    }
    eprintln!("$ apt-get install -y {package} (for {for_what})");
    let script = format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"
    );
    let installed = Command::new("sh").args(["-c", &script]).status().is_ok_and(|s| s.success());
    if installed && found() {
        Ok(())
    } else {
        Err(format!("{program} is needed for {for_what}: install Debian's package `{package}`"))
    }
}

/// The test suite runs on cargo-nextest: installed first when missing (`cargo install --locked
/// cargo-nextest`, a few minutes once), before anything else runs.
fn nextest_installed() -> Result<(), String> {
    let program = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let found = || {
        Command::new(&program)
            .args(["nextest", "--version"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if found() {
        return Ok(());
    }
    eprintln!("cargo-nextest is missing: installing it (a few minutes, once)");
    cargo(&["install", "--locked", "cargo-nextest"], &[])?;
    if found() {
        Ok(())
    } else {
        Err("cargo-nextest was installed but `cargo nextest` does not run: is ~/.cargo/bin on PATH?"
            .into())
    }
}

/// A PostgreSQL server for helloflex-store-sql's tests (they start it with initdb/pg_ctl from
/// `/usr/lib/postgresql/*/bin`, which is not on PATH).
fn postgres_server() -> Result<(), String> {
    let found = || {
        std::fs::read_dir("/usr/lib/postgresql")
            .is_ok_and(|versions| versions.flatten().any(|v| v.path().join("bin/initdb").exists()))
    };
    if found() {
        return Ok(());
    }
    eprintln!("$ apt-get install -y postgresql (for the SQL store's tests)");
    let script =
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql";
    let installed = Command::new("sh").args(["-c", script]).status().is_ok_and(|s| s.success());
    if installed && found() {
        Ok(())
    } else {
        Err("PostgreSQL is needed for the SQL store's tests: install Debian's package `postgresql`"
            .into())
    }
}

fn redis_server() -> Result<(), String> {
    debian_package("redis-server", "redis-server", "the Redis store and fleet tests")
}

fn test() -> Result<(), String> {
    node_packages()?;
    redis_server()?;
    postgres_server()?;
    debian_package("chromium", "chromium", "the CLI's browser tests")?;
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

/// The published libraries' docs (each crate without `publish = false`), warnings denied (every
/// feature on, as docs.rs builds the facade). First, README.md and `docs/` must all be doctests. Then how many of the pages a user reads show an example, per
/// crate (see [`example_counts`]).
fn docs() -> Result<(), String> {
    #[allow(clippy::disallowed_methods)] // timing the task, outside any library
    let started = Instant::now();
    markdown_doctests()?;
    // Libraries only: the CLI's binary is also called `helloflex`, and its docs would be
    // written over the facade's (cargo#6313). `public-api` documents the same packages with the
    // same flags, so the dependencies checked here serve it too.
    let libraries = public_api::published_libraries()?;
    let mut args = vec!["doc", "--lib", "--no-deps", "--all-features"];
    for (_, name) in &libraries {
        args.extend(["-p", name]);
    }
    cargo(&args, &[("RUSTDOCFLAGS", "-D warnings")])?;
    let doc = target_directory()?.join("doc");
    facade_paths_in_examples(&doc.join("helloflex"))?;
    let mut short = Vec::new();
    for (krate, target_percent) in EXAMPLE_TARGETS {
        let pages = example_counts(&doc.join(krate))?;
        let with = pages.iter().filter(|(_, example)| *example).count();
        let percent = if pages.is_empty() { 0 } else { with * 100 / pages.len() };
        println!(
            "{krate}: {with} of {} pages with an example ({percent}%, target {target_percent}%)",
            pages.len()
        );
        if with * 100 < target_percent * pages.len() {
            let missing: Vec<&str> = pages
                .iter()
                .filter(|(_, example)| !example)
                .map(|(page, _)| page.as_str())
                .collect();
            short.push(format!("{krate}: no example on {}", missing.join(", ")));
        }
    }
    eprintln!("  (docs and counts: {:.1}s)", started.elapsed().as_secs_f64());
    if short.is_empty() { Ok(()) } else { Err(short.join("\n")) }
}

/// README.md and every page of `docs/` run as doctests of the facade (`cargo test -p helloflex
/// --doc`): each is listed in its `mod markdown` (an `include_str!`), and no block in them is
/// marked `ignore` (a block that cannot run is `no_run`, and only to reach a vendor's host).
fn markdown_doctests() -> Result<(), String> {
    let root = workspace_root();
    let facade_path = root.join("crates/helloflex/src/lib.rs");
    let facade = std::fs::read_to_string(&facade_path)
        .map_err(|e| format!("{}: {e}", facade_path.display()))?;
    let mut pages = vec!["README.md".to_owned()];
    let docs = std::fs::read_dir(root.join("docs")).map_err(|e| format!("docs/: {e}"))?;
    for entry in docs.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    pages.sort();
    let mut problems = Vec::new();
    for page in &pages {
        if !facade.contains(&format!("include_str!(\"../../../{page}\")")) {
            problems.push(format!(
                "{page} is not a doctest: add it to `mod markdown` in crates/helloflex/src/lib.rs"
            ));
        }
        let text = std::fs::read_to_string(root.join(page)).map_err(|e| format!("{page}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            let Some(info) = line.trim_start().strip_prefix("```") else { continue };
            if info.split(',').any(|attribute| attribute.trim() == "ignore") {
                problems.push(format!("{page}:{}: a block marked `ignore` (make it run)", n + 1));
            }
        }
    }
    println!("{} pages of markdown run as doctests of crates/helloflex", pages.len());
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

/// The crates whose doc examples name items as a user of the facade does (`helloflex::...`),
/// through a hidden `mod helloflex` that re-exports what the doctest can see (they cannot
/// depend on the facade: it depends on them).
const SHIMMED_CRATES: [&str; 5] =
    ["core", "auth", "transport-reqwest", "transport-ureq", "store-redis"];

/// Every `helloflex::` path in the visible lines of those crates' doc examples must exist in the
/// facade (`facade_doc`: its rustdoc output), or a user copying the example gets a name the
/// hidden module supplied and `helloflex` lacks: a root item (a page of its own), an item of
/// `helloflex::blocking`, or anything under the crates it re-exports whole (`core`, `auth`,
/// `http`, `emulator`).
fn facade_paths_in_examples(facade_doc: &std::path::Path) -> Result<(), String> {
    const KINDS: [&str; 7] = ["struct", "enum", "union", "trait", "fn", "type", "macro"];
    let page = |dir: &std::path::Path, name: &str| {
        KINDS.iter().any(|kind| dir.join(format!("{kind}.{name}.html")).exists())
    };
    let mut wrong = Vec::new();
    let mut checked = 0;
    for krate in SHIMMED_CRATES {
        let mut files = Vec::new();
        let mut stack = vec![workspace_root().join("crates").join(krate).join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
            // The visible lines of each fenced block in doc comments, joined, with where it starts.
            let mut block: Option<(usize, String)> = None;
            let mut blocks = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let trimmed = line.trim_start();
                let Some(doc) = trimmed.strip_prefix("///").or_else(|| trimmed.strip_prefix("//!"))
                else {
                    continue;
                };
                let doc = doc.strip_prefix(' ').unwrap_or(doc);
                if doc.trim_start().starts_with("```") {
                    match block.take() {
                        Some(done) => blocks.push(done),
                        None => block = Some((n + 1, String::new())),
                    }
                } else if let Some((_, code)) = &mut block
                    && !(doc == "#" || doc.starts_with("# "))
                {
                    code.push_str(doc);
                    code.push('\n');
                }
            }
            for (line, code) in blocks {
                for path in helloflex_paths(&code) {
                    checked += 1;
                    let found = match path.as_slice() {
                        [] => true,
                        [first, ..]
                            if ["core", "auth", "http", "emulator"].contains(&first.as_str()) =>
                        {
                            true
                        }
                        [first] if first == "blocking" => true,
                        [first, item, ..] if first == "blocking" => {
                            page(&facade_doc.join("blocking"), item)
                        }
                        [first, ..] => page(facade_doc, first),
                    };
                    if !found {
                        let shown = file
                            .strip_prefix(workspace_root())
                            .unwrap_or(&file)
                            .display()
                            .to_string();
                        wrong.push(format!(
                            "{shown}: the example at line {line} names helloflex::{}",
                            path.join("::")
                        ));
                    }
                }
            }
        }
    }
    if !wrong.is_empty() {
        return Err(format!(
            "names the facade does not have (re-export them, or name them by their crate):\n{}",
            wrong.join("\n")
        ));
    }
    println!(
        "{checked} helloflex:: paths in the examples of core, auth, the transports and the Redis \
         store: all in the facade"
    );
    Ok(())
}

/// Each path `helloflex::a::b` or `helloflex::{a, b::{c, d}}` in `code`, as its segments.
fn helloflex_paths(code: &str) -> Vec<Vec<String>> {
    fn ident(rest: &str) -> (&str, &str) {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        rest.split_at(end)
    }
    /// Reads one path tree at `rest` under `prefix`, pushing its leaves; returns what follows.
    fn tree<'a>(rest: &'a str, prefix: &[String], out: &mut Vec<Vec<String>>) -> &'a str {
        let rest = rest.trim_start();
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                inner = tree(inner, prefix, out).trim_start();
                if let Some(after) = inner.strip_prefix(',') {
                    inner = after;
                    if let Some(after) = inner.trim_start().strip_prefix('}') {
                        return after;
                    }
                } else {
                    return inner.strip_prefix('}').unwrap_or(inner);
                }
            }
        }
        let (name, after) = ident(rest);
        if name.is_empty() {
            return rest;
        }
        let mut path = prefix.to_vec();
        if name != "self" {
            path.push(name.to_owned());
        }
        match after.strip_prefix("::") {
            Some(next) => tree(next, &path, out),
            None => {
                out.push(path);
                after
            }
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("helloflex::") {
        let start = at + found;
        let preceded =
            code[..start].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_');
        at = start + "helloflex::".len();
        if !preceded {
            tree(&code[at..], &[], &mut out);
        }
    }
    out
}

/// The share of pages that must show an example, per crate: the facade is what users read.
const EXAMPLE_TARGETS: [(&str, usize); 3] =
    [("helloflex", 90), ("helloflex_auth", 70), ("helloflex_core", 70)];

/// Every page rustdoc wrote for a crate in `dir` (`target/doc/<crate>`) that documents an item a
/// user reaches: a module (`index.html`), struct, enum, union, trait, function, type alias or
/// macro (constants are left out), and whether the item's own doc comment (the block at the
/// top of the page, not a method's) shows a Rust example that is compiled: rendered as
/// `<div class="example-wrap"><pre class="rust rust-example-rendered">`; an `ignore`,
/// `compile_fail` or `should_panic` block has another class on its `example-wrap` and does not
/// count, a `no_run` one (compiled, not run) does. Redirect pages are skipped.
fn example_counts(dir: &std::path::Path) -> Result<Vec<(String, bool)>, String> {
    const KINDS: [&str; 7] = ["struct.", "enum.", "union.", "trait.", "fn.", "type.", "macro."];
    const EXAMPLE: &str = "<div class=\"example-wrap\"><pre class=\"rust rust-example-rendered\"";
    let mut pages = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let item = name == "index.html"
                || (name.ends_with(".html") && KINDS.iter().any(|k| name.starts_with(k)));
            if !item {
                continue;
            }
            let html = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            if html.contains("http-equiv=\"refresh\"") {
                continue;
            }
            let top = html
                .split_once("class=\"toggle top-doc\"")
                .and_then(|(_, rest)| rest.split_once("</details>"))
                .map_or("", |(top, _)| top);
            let page = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            pages.push((page, top.contains(EXAMPLE)));
        }
    }
    pages.sort();
    Ok(pages)
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

/// Runs every benchmark and writes `docs/benchmarks.md`; `build_rows`: with the cold builds of
/// `footprint` (several minutes).
fn bench(build_rows: bool) -> Result<(), String> {
    #[allow(clippy::disallowed_methods)] // timing the whole run, outside any library
    let started = Instant::now();
    let root = workspace_root();
    // 1. Criterion benches of the core.
    cargo(
        &[
            "bench",
            "-p",
            "helloflex-core",
            "--bench",
            "core",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "2",
            "--noplot",
        ],
        &[],
    )?;
    let target = target_directory()?;
    let criterion = criterion_table(&target.join("criterion"));
    // 2. The load benchmark against the emulator (release builds, separate processes).
    redis_server()?;
    debian_package("valgrind", "valgrind", "the instructions-per-call figure")?;
    cargo(
        &[
            "build",
            "--release",
            "-p",
            "helloflex-bench",
            "-p",
            "helloflex-emulator",
            "-p",
            "helloflex-fleet",
        ],
        &[],
    )?;
    let out = target.join("bench");
    let status = Command::new(target.join("release/loadbench"))
        .arg("--emulator")
        .arg(target.join("release/helloflex-emulator"))
        .arg("--fleet-member")
        .arg(target.join("release/fleet-member"))
        .arg("--out")
        .arg(&out)
        .status()
        .map_err(|e| format!("could not run loadbench: {e}"))?;
    if !status.success() {
        return Err(format!("loadbench failed ({status})"));
    }
    let load = std::fs::read_to_string(out.join("load.md")).map_err(|e| e.to_string())?;
    std::fs::copy(out.join("rollover.svg"), root.join("docs/rollover.svg"))
        .map_err(|e| e.to_string())?;
    // 3. Footprints: the build rows (cold builds, one after another, before the document is
    // written), then the dependency counts.
    let builds = if build_rows {
        footprint::footprint()?
    } else {
        "Not measured in this run (`cargo xtask bench --no-build-rows`).\n".into()
    };
    let footprint = footprint::dependency_table(&root)?;
    let meaning = footprint::MEANING;
    // 4. The document.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let elapsed = started.elapsed().as_secs();
    let doc = format!(
        "# Benchmarks\n\n\
         Generated by `cargo xtask bench` on {date} ({elapsed} s including builds). Machine: {cores} cores, {cpu}; {rustc}.\n\
         Every figure is measured in this one run; speed is reported as ratios against a baseline measured\n\
         beside it (interleaved rounds, medians), never as absolute promises. The server is the emulator in\n\
         a separate release-mode process on loopback, sharing the machine's cores with the client.\n\n\
         {}\n## Load (`crates/bench`, loopback)\n\n{load}\n## Footprint\n\n\
         ### Building a minimal program on the SDK or on oauth2 + reqwest (`cargo xtask footprint`)\n\n{builds}\n{meaning}\n\n\
         ### Normal dependencies (`cargo tree -e normal`)\n\n{footprint}\n{}",
        criterion,
        std::fs::read_to_string(root.join("docs/benchmarks-notes.md")).unwrap_or_default()
    );
    std::fs::write(root.join("docs/benchmarks.md"), doc).map_err(|e| e.to_string())?;
    println!("wrote docs/benchmarks.md and docs/rollover.svg in {elapsed} s");
    Ok(())
}

/// Medians from criterion's `new/estimates.json` files, as a table.
fn criterion_table(dir: &std::path::Path) -> String {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir()
                && path.file_name().is_some_and(|n| n != "report" && n != "base" && n != "change")
            {
                stack.push(path);
            } else if path.ends_with("new/estimates.json") {
                let name = path
                    .parent()
                    .and_then(|p| p.parent())
                    .and_then(|p| p.strip_prefix(dir).ok())
                    .map(|p| p.display().to_string());
                let median = std::fs::read_to_string(&path).ok().and_then(|text| {
                    let after = text.split("\"median\"").nth(1)?;
                    let value = after.split("\"point_estimate\":").nth(1)?;
                    value.split([',', '}']).next()?.trim().parse::<f64>().ok()
                });
                if let (Some(name), Some(median)) = (name, median) {
                    rows.push((name, median));
                }
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let lookup = |n: &str| rows.iter().find(|(name, _)| name == n).map(|(_, v)| *v);
    let mut out = String::from(
        "## Core (`cargo bench -p helloflex-core`, criterion medians)\n\n| benchmark | median |\n|---|---:|\n",
    );
    // `*_x1000` rows are ratios (1,000 per 1.00x), not times.
    for (name, ns) in rows.iter().filter(|(name, _)| !name.ends_with("_x1000")) {
        out.push_str(&format!("| {name} | {ns:.0} ns |\n"));
    }
    if let (Some(ratio), Some(ours), Some(plain)) = (
        lookup("token_response/lenient_over_oauth2_x1000"),
        lookup("token_response/helloflex_lenient"),
        lookup("token_response/plain_serde_struct"),
    ) {
        out.push_str(&format!(
            "\nLenient token parsing vs oauth2's `BasicTokenResponse`: **{:.2}x** the time, measured interleaved (alternating blocks within each criterion sample, median; target: at most 1.00x); vs a plain serde struct that checks nothing: {:.2}x (two medians, not interleaved).\n",
            ratio / 1000.0,
            ours / plain
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn helloflex_paths_are_read_from_use_trees_and_expressions() {
        let code = "use helloflex::{Error, http::{self, StatusCode}, blocking::Client};\n\
                    let e = helloflex::emulator::start(x); my_helloflex::Not; helloflex::Blame::Caller";
        let paths: Vec<String> =
            super::helloflex_paths(code).into_iter().map(|p| p.join("::")).collect();
        assert_eq!(
            paths,
            [
                "Error",
                "http",
                "http::StatusCode",
                "blocking::Client",
                "emulator::start",
                "Blame::Caller"
            ]
        );
    }

    #[test]
    fn the_target_directory_is_asked_of_cargo() {
        let target = super::target_directory().unwrap();
        assert!(target.is_absolute(), "{}", target.display());
        // The test binary itself was built there.
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(&target), "{} is not under {}", exe.display(), target.display());
    }
}
