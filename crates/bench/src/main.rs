//! `loadbench`: the loopback load benchmark, run by `cargo xtask bench` as
//! `loadbench --emulator <path> --fleet-member <path> --out <dir>`, which writes `<dir>/load.md`
//! and `<dir>/rollover.svg` (the sections are described in the library, `helloflex_bench`).
//!
//! It runs itself again for the phases measured apart: `--phase throughput` (section 1 pinned,
//! or alone), `--phase instructions` (under callgrind), `--phase memory` (peak RSS), and
//! `allocbench` beside it for allocations. `--phase rollover` runs section 3 alone and
//! `--phase load` the measures in `probes`, `--phase sql` section 7 alone, `--phase first-call`
//! section 8 alone (its samples are `firstcall` processes, beside this binary).

use std::path::PathBuf;

use helloflex_bench::report::{Measured, markdown};
use helloflex_bench::{
    ROLL, Result, arg, emulator, first_call, fleet, herds, instructions, many_users, memory,
    probes, rollover, runtime, shared_cores, sql, targets, throughput,
};

/// The value of a required argument, or an error naming it as `usage` says.
fn required(name: &str, usage: &'static str) -> Result<String> {
    Ok(arg(name).ok_or(usage)?)
}

fn main() -> Result<()> {
    match arg("--phase").as_deref() {
        Some("instructions") => {
            let base = required("--base", "--base")?;
            let calls = required("--calls", "--calls")?.parse()?;
            instructions::phase(&base, &required("--kind", "--kind")?, calls)
        }
        Some("memory") => {
            memory::phase(&required("--base", "--base")?, arg("--kind").as_deref() == Some("raw"))
        }
        Some("load") => probes::load(&required("--base", "--base")?),
        Some("rollover") => rollover::alone(&required("--emulator", "--emulator <path>")?),
        Some("throughput") => throughput::alone(&required("--emulator", "--emulator <path>")?),
        Some("sql") => sql::alone(&required("--emulator", "--emulator <path>")?),
        Some("many-users") => {
            many_users::phase(arg("--users").map_or(Ok(many_users::USERS), |n| n.parse())?)
        }
        Some("first-call") => first_call::alone(&required("--emulator", "--emulator <path>")?),
        _ => whole_run(),
    }
}

/// Every section against one emulator, then the report and the chart.
fn whole_run() -> Result<()> {
    let emulator_path = required("--emulator", "--emulator <path>")?;
    let out_dir = PathBuf::from(required("--out", "--out <dir>")?);
    std::fs::create_dir_all(&out_dir)?;
    let emulator = emulator::start(&emulator_path)?;
    let base = emulator.base.clone();
    let rt = runtime()?;
    // The roll client's tokens live 1 s (herd at expiry, rollover).
    let lifetime = serde_json::json!({"seconds": 1, "client": ROLL.0});
    emulator::admin(&base, "token-lifetime", Some(lifetime))?;

    let (rows, pinning) = throughput::measure(&rt, &emulator_path, &out_dir, &base)?;
    let member = required("--fleet-member", "--fleet-member <path>")?;
    // The sections in the order they run; each says so on stderr as it starts.
    let measured = Measured {
        rows,
        pinning,
        herd: phase("herds", || herds::run(&rt, &base))?,
        roll: phase("rollover", || rollover::run(&rt, &base))?,
        allocations: phase("allocations", || memory::allocations_in_child(&base))?,
        rss: phase("peak memory", || memory::peak_rss(&base))?,
        counted: phase("instructions (callgrind)", || {
            instructions::counted_per_call(&base, &out_dir)
        })?,
        fleet: phase("fleet on Redis", || fleet::run(&rt, &base, &member))?,
        sql: phase("tokens in SQL", || sql::run(&rt, &base))?,
        first_call: phase("the first call (a process per sample)", || first_call::run(&base))?,
        many_users: phase("many users", || many_users::run(many_users::USERS))?,
        shared_cores: phase("unpinned", || shared_cores::run(&emulator_path, &out_dir))?,
    };
    let chart = rollover::svg(&measured.roll);
    let targets = targets::markdown(&targets::targets(&measured));
    std::fs::write(out_dir.join("load.md"), targets + &markdown(&measured))?;
    std::fs::write(out_dir.join("rollover.svg"), chart)?;
    drop(emulator);
    eprintln!("loadbench: done");
    Ok(())
}

/// Runs one section, saying so first.
fn phase<T>(name: &str, run: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("loadbench: {name}");
    run()
}
