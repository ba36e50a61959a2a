//! Section 1: authenticated GET throughput, the SDK against raw reqwest and raw ureq (with a
//! raw-against-raw control) and against oauth2-rs with its cache, in interleaved rounds; pinned
//! (the client in a child process on CPU 0, its own emulator on CPU 1) where the machine allows.

use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::abba::{AbbaRow, ROUND, ROUNDS, ROUNDS_ONE_CALLER, rounds_for};
use crate::clients::{AsyncPair, BlockingPair, async_rate, raw_reqwest};
use crate::emulator;
use crate::peer::Oauth2Cached;
use crate::{Result, arg, runtime};

/// The rows of section 1, pinned where the machine allows (in this process with the emulator
/// at `base` where not), and what the report says about the pinning.
pub fn measure(
    rt: &tokio::runtime::Runtime,
    emulator_path: &str,
    out: &std::path::Path,
    base: &str,
) -> Result<(Vec<AbbaRow>, String)> {
    Ok(match pinned_throughput(emulator_path, out)? {
        Pinned::Ran(rows) => (rows, Pinned::DESCRIBED.to_owned()),
        Pinned::Unavailable(why) => {
            eprintln!("loadbench: not pinned ({why})");
            let rows = section_one(rt, base)?;
            (
                rows,
                format!(
                    "Not pinned to cores ({why}): a row measures the scheduler's placement of client and server as well as the client."
                ),
            )
        }
    })
}

/// Section 1 alone (`--phase throughput`), for iterating on the request path: printed, and with
/// `--rows-out <file>` written there for the parent (section 1 pinned, section 10 unpinned).
/// `--runtime current` runs the clients on a current-thread runtime (default: 2 workers);
/// `--emulator in-process` serves from this process, on the emulator's own runtime.
pub fn alone(emulator_path: &str) -> Result<()> {
    let (_process, _in_process, base) = if emulator_path == "in-process" {
        let config = helloflex_emulator::EmulatorConfig::default();
        let emulator = helloflex_emulator::start(config)?;
        let base = emulator.base_url().to_owned();
        (None, Some(emulator), base)
    } else {
        let emulator = emulator::start(emulator_path)?;
        let base = emulator.base.clone();
        (Some(emulator), None, base)
    };
    let rt = match arg("--runtime").as_deref() {
        Some("current") => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => runtime()?,
    };
    let rows = section_one(&rt, &base)?;
    if let Some(file) = arg("--rows-out") {
        std::fs::write(file, rows.iter().map(AbbaRow::to_line).collect::<String>())?;
    }
    for r in &rows {
        println!("{}: {:.3}x (control {:.3}x), B {:.0}/s", r.name, r.ratio(), r.control(), r.b());
    }
    Ok(())
}

fn throughput(rt: &tokio::runtime::Runtime, base: &str) -> Result<Vec<AbbaRow>> {
    let pair = AsyncPair::new(rt, base)?;
    let mut rows = Vec::new();
    for concurrency in [1usize, 32] {
        if !wanted(&format!("async{concurrency}")) {
            continue;
        }
        let mut rounds = Vec::new();
        for index in 0..rounds_of(concurrency) {
            rounds.push(AbbaRow::round(index, |sdk| pair.rate(rt, concurrency, sdk)));
        }
        rows.push(AbbaRow { name: format!("async (reqwest), concurrency {concurrency}"), rounds });
    }
    let pair = BlockingPair::new(base)?;
    for threads in [1usize, 8] {
        if !wanted(&format!("blocking{threads}")) {
            continue;
        }
        let mut rounds = Vec::new();
        for index in 0..rounds_of(threads) {
            rounds.push(AbbaRow::round(index, |sdk| pair.rate(threads, sdk)));
        }
        rows.push(AbbaRow { name: format!("blocking (ureq), {threads} thread(s)"), rounds });
    }
    Ok(rows)
}

/// Section 1: the throughput rows, then the row against oauth2-rs (each unless `--only` leaves
/// it out).
fn section_one(rt: &tokio::runtime::Runtime, base: &str) -> Result<Vec<AbbaRow>> {
    let mut rows = throughput(rt, base)?;
    if wanted("oauth2") {
        rows.push(against_oauth2(rt, base)?);
    }
    Ok(rows)
}

/// Whether section 1 ran with the client and the emulator on cores of their own.
enum Pinned {
    Ran(Vec<AbbaRow>),
    /// Why not (one core, no `taskset`): the rows are then measured unpinned, in this process.
    Unavailable(String),
}

impl Pinned {
    /// What `docs/benchmarks.md` says of a pinned section 1.
    const DESCRIBED: &str = "The client runs on CPU 0 and the emulator on CPU 1 (`taskset`), each on a core of its own, so a row measures the client's work rather than where the scheduler put two threads that wake each other: unpinned, one caller's raw/raw control read 1.5-1.7x, and concurrency 32 moved with the host's state.";
}

/// Section 1 (the throughput rows and the row against oauth2-rs) in a child process on CPU 0,
/// with its own emulator on CPU 1.
fn pinned_throughput(emulator: &str, out: &std::path::Path) -> Result<Pinned> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        return Ok(Pinned::Unavailable(format!("{cores} core")));
    }
    let probe = Command::new("taskset").args(["-c", "0", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Ok(Pinned::Unavailable("no working `taskset`".into()));
    }
    eprintln!(
        "loadbench: throughput and the row against oauth2-rs ({ROUNDS} interleaved rounds of {} ms per row, {ROUNDS_ONE_CALLER} for one caller; client on CPU 0, emulator on CPU 1)",
        ROUND.as_millis()
    );
    let file = out.join("throughput.tsv");
    let status = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe()?)
        .args(["--phase", "throughput", "--emulator", emulator, "--pin-emulator", "1"])
        .arg("--rows-out")
        .arg(&file)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("the pinned throughput run failed ({status})").into());
    }
    let text = std::fs::read_to_string(&file)?;
    Ok(Pinned::Ran(text.lines().map(AbbaRow::from_line).collect::<Result<_>>()?))
}

/// The SDK against oauth2-rs with its cache, concurrency 32, in rounds of `AbbaRow::round` (A =
/// oauth2-rs).
fn against_oauth2(rt: &tokio::runtime::Runtime, base: &str) -> Result<AbbaRow> {
    let sdk = AsyncPair::new(rt, base)?.sdk;
    let peer = Arc::new(Oauth2Cached::new(base, raw_reqwest()?)?);
    let url = format!("{base}/news");
    let mut rounds = Vec::new();
    for index in 0..rounds_of(32) {
        rounds.push(AbbaRow::round(index, |is_sdk| {
            rt.block_on(async {
                if is_sdk {
                    let sdk = sdk.clone();
                    async_rate(32, move || {
                        let sdk = sdk.clone();
                        async move { sdk.get("news").send().await.is_ok() }
                    })
                    .await
                } else {
                    peer.rate(&url).await
                }
            })
        }));
    }
    Ok(AbbaRow {
        name: "async (reqwest), concurrency 32: SDK against oauth2-rs 5 + hand-written cache"
            .into(),
        rounds,
    })
}

/// The rounds of a row with `callers`: [`rounds_for`], or `--rounds <n>` (per caller count: n
/// for one caller, n / 2 for more, as `rounds_for` halves them).
fn rounds_of(callers: usize) -> usize {
    match arg("--rounds").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if callers == 1 => n,
        Some(n) => n.div_ceil(2),
        None => rounds_for(callers),
    }
}

/// Whether a throughput row is wanted: all of them, or those `--only a,b` names (`async1`,
/// `async32`, `blocking1`, `blocking8`, `oauth2`).
fn wanted(row: &str) -> bool {
    arg("--only").is_none_or(|only| only.split(',').any(|o| o == row))
}
