//! `cargo xtask public-api [--bless]`: the public API of every published library, one item a
//! line, compared with the committed `crates/<name>/public-api.txt`, so that a change to the API
//! is a diff someone reviews; `--bless` writes the files instead.
//!
//! Three steps. rustdoc writes each crate's JSON (`cargo doc` with `--output-format json`,
//! unstable, so rustdoc alone runs with `RUSTC_BOOTSTRAP=1` through [`rustdoc_shim`]: set for all
//! of cargo, the variable would reach build scripts that look for it, and proc-macro2's would
//! rebuild syn and every derive, twice, on each switch between this and an ordinary build).
//! `xtask/public-api`, a tool of its own workspace on the `public-api` library, renders each
//! JSON file as lines. Then each listing is compared with the committed one, and a difference
//! is shown as `git diff --no-index` shows it.

use std::env;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::{cargo, target_directory, workspace_root};

/// Set on the xtask binary when cargo runs it as rustdoc (see [`rustdoc_shim`]).
pub const SHIM_VARIABLE: &str = "XTASK_RUSTDOC_SHIM";

/// The rustdoc to run behind the shim: a `RUSTDOC` the user had set, or the one on PATH.
const REAL_RUSTDOC_VARIABLE: &str = "XTASK_REAL_RUSTDOC";

/// Runs the real rustdoc with `RUSTC_BOOTSTRAP=1`, every argument handed on: the xtask binary
/// is cargo's `RUSTDOC` during the JSON build, so only rustdoc sees the variable.
pub fn rustdoc_shim() -> ExitCode {
    let real = env::var_os(REAL_RUSTDOC_VARIABLE).unwrap_or_else(|| "rustdoc".into());
    let status = Command::new(&real)
        .args(env::args_os().skip(1))
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove(SHIM_VARIABLE)
        .status();
    match status {
        Ok(status) => status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .map_or(ExitCode::FAILURE, ExitCode::from),
        Err(e) => {
            eprintln!("xtask (as rustdoc): could not run {}: {e}", real.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}

/// The libraries this workspace publishes: each crate under `crates/` with a `src/lib.rs` whose
/// manifest does not say `publish = false`, as (folder, package name), sorted by folder.
pub fn published_libraries() -> Result<Vec<(String, String)>, String> {
    let crates = workspace_root().join("crates");
    let mut libraries = Vec::new();
    for entry in std::fs::read_dir(&crates).map_err(|e| format!("crates/: {e}"))?.flatten() {
        let dir = entry.path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        if manifest.contains("publish = false") || !dir.join("src/lib.rs").exists() {
            continue;
        }
        let name = manifest
            .lines()
            .find_map(|line| line.trim().strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or_else(|| format!("{}: no package name", dir.display()))?;
        libraries.push((entry.file_name().to_string_lossy().into_owned(), name.to_owned()));
    }
    libraries.sort();
    Ok(libraries)
}

/// Checks (or with `bless`, writes) every published library's `public-api.txt`.
pub fn public_api(bless: bool) -> Result<(), String> {
    #[allow(clippy::disallowed_methods)] // timing the task, outside any library
    let started = Instant::now();
    let libraries = published_libraries()?;
    let target = target_directory()?;
    let doc = target.join("doc");
    let listings = target.join("public-api");
    std::fs::create_dir_all(&listings).map_err(|e| format!("{}: {e}", listings.display()))?;

    // The same packages and flags as `cargo xtask docs`, so the dependencies it checked serve
    // here too; only the libraries themselves are documented again.
    let mut args = vec!["doc", "--lib", "--no-deps", "--all-features"];
    for (_, name) in &libraries {
        args.extend(["-p", name]);
    }
    let shim = env::current_exe().map_err(|e| format!("where is xtask? {e}"))?;
    let real_rustdoc = env::var("RUSTDOC").unwrap_or_else(|_| "rustdoc".into());
    cargo(
        &args,
        &[
            ("RUSTDOC", &shim.to_string_lossy()),
            (SHIM_VARIABLE, "1"),
            (REAL_RUSTDOC_VARIABLE, &real_rustdoc),
            ("RUSTDOCFLAGS", "-Z unstable-options --output-format json"),
        ],
    )?;

    let mut pairs = Vec::new();
    for (folder, name) in &libraries {
        pairs.push(doc.join(format!("{}.json", name.replace('-', "_"))));
        pairs.push(listings.join(format!("{folder}.txt")));
    }
    let renderer = workspace_root().join("xtask/public-api/Cargo.toml");
    let mut args = vec!["run", "--quiet", "--locked", "--manifest-path"];
    let renderer = renderer.to_string_lossy();
    args.push(&renderer);
    args.push("--");
    let pairs: Vec<String> = pairs.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    args.extend(pairs.iter().map(String::as_str));
    // Into this workspace's target directory, not one of its own beside its manifest.
    cargo(&args, &[("CARGO_TARGET_DIR", &target.to_string_lossy())])?;

    let mut changed = Vec::new();
    for (folder, _) in &libraries {
        let fresh = listings.join(format!("{folder}.txt"));
        let committed = workspace_root().join("crates").join(folder).join("public-api.txt");
        let new =
            std::fs::read_to_string(&fresh).map_err(|e| format!("{}: {e}", fresh.display()))?;
        let old = std::fs::read_to_string(&committed).unwrap_or_default();
        if new == old {
            continue;
        }
        if bless {
            std::fs::write(&committed, &new)
                .map_err(|e| format!("{}: {e}", committed.display()))?;
            println!("wrote crates/{folder}/public-api.txt");
        } else {
            show_diff(folder, &fresh);
            changed.push(format!("crates/{folder}/public-api.txt"));
        }
    }
    println!(
        "public API of {} libraries {} ({:.1}s)",
        libraries.len(),
        if bless { "written" } else { "checked" },
        started.elapsed().as_secs_f64()
    );
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the public API changed in {} (diff above, `-` committed, `+` now): if that is \
             intended, run `cargo xtask public-api --bless` and commit the files with the change",
            changed.join(", ")
        ))
    }
}

/// Prints the difference as a unified diff (git is on every machine that has the repository),
/// the committed file named as in the repository.
fn show_diff(folder: &str, fresh: &Path) {
    let committed = format!("crates/{folder}/public-api.txt");
    let old =
        if workspace_root().join(&committed).exists() { committed.as_str() } else { "/dev/null" };
    let shown = Command::new("git")
        .args(["diff", "--no-index", "--no-color", "--", old])
        .arg(fresh)
        .current_dir(workspace_root())
        .status();
    if shown.is_err() {
        eprintln!("(git not found: compare {committed} with {})", fresh.display());
    }
}
