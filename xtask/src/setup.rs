//! What a fresh machine lacks and a task needs, installed by the task: cargo-nextest, the
//! Debian packages (PostgreSQL, Redis, chromium, valgrind), the interop and browser tests' npm
//! packages.

use std::env;
use std::process::Command;

/// Installs the pinned oidc-provider for the interop tests and playwright-core for the browser
/// tests (the CLI's login, the web app) (into git-ignored folders).
pub(crate) fn node_packages() -> Result<(), String> {
    npm_ci("crates/interop/server", "oidc-provider")?;
    npm_ci("crates/examples/browser", "playwright-core")
}

pub(crate) fn npm_ci(folder: &str, package: &str) -> Result<(), String> {
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
pub(crate) fn debian_package(program: &str, package: &str, for_what: &str) -> Result<(), String> {
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
pub(crate) fn nextest_installed() -> Result<(), String> {
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
    crate::cargo(&["install", "--locked", "cargo-nextest"], &[])?;
    if found() {
        Ok(())
    } else {
        Err("cargo-nextest was installed but `cargo nextest` does not run: is ~/.cargo/bin on PATH?"
            .into())
    }
}

/// A PostgreSQL server for helloflex-store-sql's tests (they start it with initdb/pg_ctl from
/// `/usr/lib/postgresql/*/bin`, which is not on PATH).
pub(crate) fn postgres_server() -> Result<(), String> {
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

pub(crate) fn redis_server() -> Result<(), String> {
    debian_package("redis-server", "redis-server", "the Redis store and fleet tests")
}
