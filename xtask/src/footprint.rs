//! What a user pays to build on the SDK (`cargo xtask footprint`): one minimal program (a
//! client-credentials token, then one GET) on `helloflex` with several feature choices and on
//! oauth2 5 + reqwest 0.13, each built cold in a scratch project of its own; and the normal
//! dependency counts of our crates beside oauth2 and yup-oauth2 (`cargo tree`).

use std::collections::BTreeSet;
use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One scratch project: a program and what it depends on.
struct Variant {
    /// The scratch folder and the package (`footprint-{name}`).
    name: &'static str,
    /// Its row in the table.
    label: &'static str,
    /// The `[dependencies]` lines; `{helloflex}` stands for the facade's path.
    dependencies: &'static str,
    program: &'static str,
}

/// The SDK's async program.
const SDK_ASYNC: &str = include_str!("../footprint/sdk_async.rs");

/// The SDK's blocking program.
const SDK_BLOCKING: &str = include_str!("../footprint/sdk_blocking.rs");

/// The same on oauth2 5 and reqwest 0.13: oauth2 5 implements its HTTP client for reqwest 0.12
/// only, so a reqwest 0.13 client is handed in as a closure (as `crates/bench/src/peer.rs`).
const OAUTH2: &str = include_str!("../footprint/oauth2.rs");

const TOKIO: &str = r#"tokio = { version = "1", features = ["macros", "rt-multi-thread"] }"#;

/// The rows, built in this order. The tokio line is what README.md tells an async user to add.
fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "sdk-default",
            label: "helloflex, default features (async client)",
            dependencies: "helloflex = { path = '{helloflex}' }\nTOKIO",
            program: SDK_ASYNC,
        },
        Variant {
            name: "sdk-async-aws-lc",
            label: "helloflex, `async` + `aws-lc-rs`",
            dependencies: "helloflex = { path = '{helloflex}', default-features = false, features = [\"async\", \"aws-lc-rs\"] }\nTOKIO",
            program: SDK_ASYNC,
        },
        Variant {
            name: "sdk-blocking",
            label: "helloflex, `blocking` only",
            dependencies: "helloflex = { path = '{helloflex}', default-features = false, features = [\"blocking\"] }",
            program: SDK_BLOCKING,
        },
        Variant {
            name: "sdk-async-ring",
            label: "helloflex, `async` only (ring)",
            dependencies: "helloflex = { path = '{helloflex}', default-features = false, features = [\"async\"] }\nTOKIO",
            program: SDK_ASYNC,
        },
        Variant {
            name: "sdk-both-ring",
            label: "helloflex, `async` + `blocking` (ring; async client)",
            dependencies: "helloflex = { path = '{helloflex}', default-features = false, features = [\"async\", \"blocking\"] }\nTOKIO",
            program: SDK_ASYNC,
        },
        Variant {
            name: "oauth2-reqwest",
            label: "oauth2 5 + reqwest 0.13, default features",
            dependencies: "oauth2 = \"5\"\nreqwest = \"0.13\"\nTOKIO",
            program: OAUTH2,
        },
        Variant {
            name: "oauth2-lean-reqwest",
            label: "oauth2 5 without its default features + reqwest 0.13",
            dependencies: "oauth2 = { version = \"5\", default-features = false }\nreqwest = \"0.13\"\nTOKIO",
            program: OAUTH2,
        },
    ]
}

/// What one cold build measured.
struct Row {
    label: &'static str,
    name: &'static str,
    crates: usize,
    seconds: f64,
    binary: u64,
    stripped: Option<u64>,
    providers: String,
    load: String,
}

/// Builds every variant cold, one after another, writes `target/bench/footprint.md` and prints
/// it; returns the Markdown.
pub(crate) fn footprint() -> Result<String, String> {
    let target = crate::target_directory()?;
    let scratch = target.join("footprint");
    let bins = scratch.join("bin");
    std::fs::create_dir_all(&bins).map_err(|e| e.to_string())?;
    let facade = crate::workspace_root().join("crates/helloflex");
    let facade = facade.canonicalize().map_err(|e| format!("{}: {e}", facade.display()))?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for variant in variants() {
        let dir = scratch.join(variant.name);
        write_project(&dir, &variant, &facade)?;
        rows.push(build_cold(&dir, &variant, jobs, &bins)?);
    }
    let markdown = table(&rows, jobs);
    let out = target.join("bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    std::fs::write(out.join("footprint.md"), &markdown).map_err(|e| e.to_string())?;
    println!("{markdown}");
    eprintln!(
        "wrote {} (the binaries are in {})",
        out.join("footprint.md").display(),
        bins.display()
    );
    Ok(markdown)
}

fn write_project(dir: &Path, variant: &Variant, facade: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    let dependencies = variant
        .dependencies
        .replace("{helloflex}", &facade.to_string_lossy())
        .replace("TOKIO", TOKIO);
    // `[workspace]`: the project stands alone wherever the target directory is.
    let manifest = format!(
        "[package]\nname = \"footprint-{}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\n{dependencies}\n\n[workspace]\n",
        variant.name
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src/main.rs"), variant.program).map_err(|e| e.to_string())?;
    // Resolved afresh each run: the versions a new user gets today.
    let _ = std::fs::remove_file(dir.join("Cargo.lock"));
    Ok(())
}

/// `cargo fetch`, then a timed `cargo build --release` into a fresh target directory; the
/// binary is kept in `bins` and the target directory removed.
fn build_cold(dir: &Path, variant: &Variant, jobs: usize, bins: &Path) -> Result<Row, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = dir.join("Cargo.toml");
    let target = dir.join("target");
    let _ = std::fs::remove_dir_all(&target);
    let command = |args: &[&str]| {
        let mut command = Command::new(&cargo);
        command.args(args).arg("--manifest-path").arg(&manifest).current_dir(dir);
        command.env("CARGO_TARGET_DIR", &target);
        // A compiler cache would make the build warm.
        for wrapper in ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER"] {
            command.env_remove(wrapper);
        }
        command
    };
    eprintln!("$ cargo fetch ({})", variant.name);
    let fetched = command(&["fetch", "--quiet"]).status().map_err(|e| e.to_string())?;
    if !fetched.success() {
        return Err(format!("cargo fetch failed for {} ({fetched})", variant.name));
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    eprintln!("$ cargo build --release -j {jobs} ({}, cold; load {load})", variant.name);
    let jobs_arg = jobs.to_string();
    #[allow(clippy::disallowed_methods)] // timing a build, outside any library
    let started = Instant::now();
    let output = command(&["build", "--release", "--message-format=json", "-j", &jobs_arg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("the {} build failed:\n{}", variant.name, tail.join("\n")));
    }
    let package = format!("footprint-{}", variant.name);
    let compiled = compiled_packages(&String::from_utf8_lossy(&output.stdout), &package);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let compiling = stderr.lines().filter(|l| l.trim_start().starts_with("Compiling ")).count();
    eprintln!(
        "  {seconds:.1}s, {} crates compiled (cargo printed {compiling} `Compiling` lines, the program's included)",
        compiled.len()
    );
    let built = target.join("release").join(&package);
    let kept = bins.join(&package);
    std::fs::copy(&built, &kept).map_err(|e| format!("{}: {e}", built.display()))?;
    let binary = size(&kept)?;
    let stripped = strip(&kept, &bins.join(format!("{package}.stripped")));
    let _ = std::fs::remove_dir_all(&target);
    let mut providers: Vec<&str> = Vec::new();
    if compiled.iter().any(|c| c == "aws-lc-sys") {
        providers.push("aws-lc-rs");
    }
    if compiled.iter().any(|c| c == "ring") {
        providers.push("ring");
    }
    Ok(Row {
        label: variant.label,
        name: variant.name,
        crates: compiled.len(),
        seconds,
        binary,
        stripped,
        providers: providers.join(", "),
        load,
    })
}

/// The name of each package cargo compiled, once per package (a crate in two versions twice),
/// from the `compiler-artifact` messages of `--message-format=json`: build scripts and proc
/// macros included, `program` left out.
fn compiled_packages(json: &str, program: &str) -> Vec<String> {
    let mut ids = BTreeSet::new();
    for line in json.lines().filter(|l| l.contains(r#""reason":"compiler-artifact""#)) {
        let Some(id) = line.split(r#""package_id":""#).nth(1).and_then(|r| r.split('"').next())
        else {
            continue;
        };
        // `registry+https://...#name@1.2.3`, `path+file:///w/crates/core#helloflex-core@0.1.0`,
        // `path+file:///w/crates/helloflex#0.1.0` (a folder named as its package), or the
        // older `name 1.2.3 (source)`.
        let name = match id.split_once('#') {
            Some((_, fragment)) if fragment.contains('@') => fragment.split('@').next(),
            Some((url, _)) => url.rsplit('/').next(),
            None => id.split(' ').next(),
        }
        .unwrap_or(id);
        if name != program {
            ids.insert((name.to_owned(), id.to_owned()));
        }
    }
    ids.into_iter().map(|(name, _)| name).collect()
}

fn size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| format!("{}: {e}", path.display()))
}

/// The size of `binary` after `strip` (binutils), or `None` where there is no `strip`.
fn strip(binary: &Path, out: &Path) -> Option<u64> {
    let status = Command::new("strip").arg("-o").arg(out).arg(binary).status().ok()?;
    status.success().then(|| size(out).ok()).flatten()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The Markdown: how it was measured, the rows, and what they say (see [`verdicts`]).
fn table(rows: &[Row], jobs: usize) -> String {
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut out = format!(
        "One program, a client-credentials token then one GET (`cargo xtask footprint`; {rustc}): \
         each row a cold `cargo build --release -j {jobs}` in a fresh target directory after \
         `cargo fetch` (downloads not timed), one after another in one run, on a machine that may \
         be shared with other builds (the load average when each started is given: the times \
         move with it, the crates and sizes do not). Crates compiled: the packages cargo \
         compiled (its `compiler-artifact` messages; build-time crates included, the program \
         itself not). Binary: as cargo's release profile leaves it (symbols kept); stripped: \
         after `strip`.\n\n\
         | program | TLS provider compiled | crates compiled | cold release build | binary | stripped | load at start |\n\
         |---|---|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {} | {} | {} |\n",
            row.label,
            row.providers,
            row.crates,
            row.seconds,
            mib(row.binary),
            row.stripped.map_or("n/a".into(), mib),
            row.load
        ));
    }
    out.push('\n');
    out.push_str(&verdicts(rows));
    out
}

/// Which of the SDK's rows meet issue 31's build target against each oauth2 row (no more
/// crates, no slower, no larger binary: stripped where `strip` ran), and what turning
/// `aws-lc-rs` off saves.
fn verdicts(rows: &[Row]) -> String {
    let mut out = String::new();
    let sdk: Vec<&Row> = rows.iter().filter(|r| r.name.starts_with("sdk")).collect();
    for peer in rows.iter().filter(|r| r.name.starts_with("oauth2")) {
        let lighter = |row: &&&Row| {
            let smaller = match (row.stripped, peer.stripped) {
                (Some(ours), Some(theirs)) => ours <= theirs,
                _ => row.binary <= peer.binary,
            };
            row.crates <= peer.crates && row.seconds <= peer.seconds && smaller
        };
        let meeting: Vec<&str> = sdk.iter().filter(lighter).map(|r| r.label).collect();
        let meeting =
            if meeting.is_empty() { "none of the SDK's rows".into() } else { meeting.join("; ") };
        out.push_str(&format!(
            "- No more crates, no slower and no larger than {}: {meeting}.\n",
            peer.label
        ));
    }
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    if let (Some(default), Some(ring)) = (find("sdk-default"), find("sdk-both-ring")) {
        let size = |r: &Row| r.stripped.unwrap_or(r.binary);
        out.push_str(&format!(
            "- `aws-lc-rs` turned off (`default-features = false, features = [\"async\", \
             \"blocking\"]` against the default features): {} crates fewer, {:.1} s less, \
             {} smaller.\n",
            default.crates as i64 - ring.crates as i64,
            default.seconds - ring.seconds,
            mib(size(default).saturating_sub(size(ring))),
        ));
    }
    out
}

/// What the build rows mean for a user choosing between the SDK and oauth2 + reqwest (no
/// figures: those are the run's, in the table and the lines under it).
pub(crate) const MEANING: &str = "What the rows mean when choosing: a build's cost is paid on \
each cold build (a first build, a CI job without a cache, a `cargo install`), never at run time. \
With its default features the SDK compiles two rustls providers: aws-lc-rs for the async client \
(reqwest's own default; a C and assembly library that wants a C compiler, and cmake or NASM on \
some targets) and ring, which the blocking client's ureq always uses. oauth2 + reqwest 0.13 \
compiles aws-lc-rs too, and with oauth2's default features a second HTTP client, reqwest 0.12 \
over ring, which the program never calls. Against those, the SDK leaves out reqwest's default \
HTTP/2 (`h2`) and charset decoding (`encoding_rs`), and oauth2's `chrono` and `rand`; it adds \
its own crates and ChaCha20-Poly1305 for stored tokens. With `default-features = false, \
features = [\"async\", \"blocking\"]` (or only the client you call) the SDK builds on ring \
alone: the rows whose provider is ring alone. aws-lc-rs stays the default for what it offers in \
exchange: the post-quantum X25519MLKEM768 key exchange (rustls 0.23.48 deprecates its ring \
provider for lacking it), a FIPS build, faster ciphers on some CPUs; both speak TLS 1.2 and 1.3 \
with the same certificate checks.";

/// Normal dependency counts of our crates, beside oauth2 and yup-oauth2 (`cargo tree -e
/// normal`, default features, as a user gets them).
pub(crate) fn dependency_table(root: &Path) -> Result<String, String> {
    let count = |manifest: &Path, package: &str| -> Result<usize, String> {
        let output = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "tree",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--no-dedupe",
                "-p",
                package,
                "--manifest-path",
            ])
            .arg(manifest)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output.stdout);
        let mut names: Vec<&str> =
            text.lines().filter_map(|l| l.split_whitespace().next()).collect();
        names.sort_unstable();
        names.dedup();
        Ok(names.len().saturating_sub(1))
    };
    let manifest = root.join("Cargo.toml");
    let mut out = String::from("| crate | dependencies |\n|---|---:|\n");
    for package in [
        "helloflex-core",
        "helloflex-auth",
        "helloflex-transport-ureq",
        "helloflex-transport-reqwest",
    ] {
        out.push_str(&format!("| {package} | {} |\n", count(&manifest, package)?));
    }
    // The alternatives, resolved in scratch projects of their own.
    let scratch: PathBuf = crate::target_directory()?.join("footprint/deps");
    for (package, dep) in [("oauth2", "oauth2 = \"5\""), ("yup-oauth2", "yup-oauth2 = \"12\"")] {
        let dir = scratch.join(package);
        std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("src/lib.rs"), "").map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"footprint-{package}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\n{dep}\n\n[workspace]\n"),
        )
        .map_err(|e| e.to_string())?;
        let n = count(&dir.join("Cargo.toml"), &format!("footprint-{package}"))?.saturating_sub(1);
        out.push_str(&format!("| {package} (default features) | {n} |\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiled_packages_are_read_from_cargos_messages() {
        let json = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14","target":{"kind":["custom-build"]}}
{"reason":"build-script-executed","package_id":"registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14"}
{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14","target":{"kind":["lib"]}}
{"reason":"compiler-artifact","package_id":"path+file:///w/crates/helloflex#0.1.0","target":{"kind":["lib"]}}
{"reason":"compiler-artifact","package_id":"path+file:///w/crates/core#helloflex-core@0.1.0","target":{"kind":["lib"]}}
{"reason":"compiler-artifact","package_id":"path+file:///w/footprint-x#0.0.0","target":{"kind":["bin"]}}
{"reason":"compiler-artifact","package_id":"syn 2.0.1 (registry+https://github.com/rust-lang/crates.io-index)","target":{"kind":["lib"]}}
{"reason":"build-finished","success":true}"#;
        let compiled = super::compiled_packages(json, "footprint-x");
        assert_eq!(compiled, ["helloflex", "helloflex-core", "ring", "syn"]);
    }

    fn row(name: &'static str, crates: usize, seconds: f64, stripped: u64) -> super::Row {
        let (providers, load) = (String::new(), String::new());
        let binary = stripped + 1000;
        super::Row {
            label: name,
            name,
            crates,
            seconds,
            binary,
            stripped: Some(stripped),
            providers,
            load,
        }
    }

    /// A row meets the target only when it is no heavier on all three counts.
    #[test]
    fn the_verdicts_name_the_rows_lighter_on_every_count() {
        let rows = [
            row("sdk-default", 129, 300.0, 6 << 20),
            row("sdk-both-ring", 122, 200.0, 4 << 20),
            row("sdk-slow", 100, 400.0, 1 << 20),
            row("oauth2-reqwest", 139, 330.0, 6 << 20),
        ];
        let text = super::verdicts(&rows);
        assert_eq!(
            text,
            "- No more crates, no slower and no larger than oauth2-reqwest: sdk-default; sdk-both-ring.\n\
             - `aws-lc-rs` turned off (`default-features = false, features = [\"async\", \"blocking\"]` \
             against the default features): 7 crates fewer, 100.0 s less, 2.0 MiB smaller.\n"
        );
    }
}
