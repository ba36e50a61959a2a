//! The report: every section's figures as the Markdown `cargo xtask bench` puts in
//! `docs/benchmarks.md` (`load.md`).

use std::fmt::Write as _;

use crate::abba::{AbbaRow, ROUND, ROUNDS, ROUNDS_ONE_CALLER, ROUNDS_SAME_PATH};
use crate::first_call::FirstCall;
use crate::fleet::Fleet;
use crate::instructions::{Counted, INSTR_CALLS};
use crate::many_users::ManyUsers;
use crate::rollover::{ROLLOVER_ROUNDS, ROLLOVER_WINDOW, Rollover};
use crate::shared_cores::ShapeRows;
use crate::sql::SqlStores;

/// What a whole run measured, section by section.
pub struct Measured {
    /// Section 1's rows, and what is said of their pinning.
    pub rows: Vec<AbbaRow>,
    /// See `rows`.
    pub pinning: String,
    /// Section 2: per pattern, token requests on loopback and with token latency.
    pub herd: Vec<(String, u64, u64)>,
    /// Section 3.
    pub roll: Rollover,
    /// Section 4: allocations per call (the SDK's own work, a whole SDK call, a whole raw call).
    pub allocations: (f64, f64, f64),
    /// Section 4: peak RSS (KiB) and seconds, SDK then raw.
    pub rss: [(u64, f64); 2],
    /// Section 5: per kind of client.
    pub counted: Vec<(String, Counted)>,
    /// Section 6.
    pub fleet: Fleet,
    /// Section 7.
    pub sql: SqlStores,
    /// Section 8.
    pub first_call: FirstCall,
    /// Section 9.
    pub many_users: ManyUsers,
    /// Section 10.
    pub shared_cores: Vec<ShapeRows>,
}

/// A section's heading, the paragraph that says how to read it, and (unless empty) the head
/// of its table: the column names, then their alignment row.
fn heading(md: &mut String, title: &str, intro: &str, table: [&str; 2]) {
    let _ = writeln!(md, "\n### {title}\n\n{intro}\n");
    for row in table.iter().filter(|r| !r.is_empty()) {
        let _ = writeln!(md, "{row}");
    }
}

/// The report of a whole run's sections, as Markdown (the targets table goes above it).
pub fn markdown(m: &Measured) -> String {
    let Measured {
        rows,
        pinning,
        herd,
        roll,
        allocations,
        rss,
        counted,
        fleet,
        sql,
        first_call,
        many_users,
        shared_cores,
    } = m;
    let (core_allocs, sdk_allocs, raw_allocs) = allocations;
    let [(sdk_rss, sdk_secs), (raw_rss, raw_secs)] = rss;
    let (round_ms, window_s) = (ROUND.as_millis(), ROLLOVER_WINDOW.as_secs_f64());
    let mut md = String::new();
    heading(
        &mut md,
        &format!(
            "1. Authenticated GET throughput ({ROUNDS} interleaved rounds of {round_ms} ms, {ROUNDS_ONE_CALLER} for one caller: raw, SDK, SDK, raw and SDK, raw, raw, SDK in turn)"
        ),
        &format!(
            "Rates are medians (requests/s); ratios are medians of per-round ratios (a round's two SDK runs against its two raw runs; ABBA order cancels drift within a round, which raw-SDK-raw did not: it favoured the ends; ABBA and BAAB in turn give each side the round's first slot, which at one caller runs 1-3% slower than the others whoever is in it, in half the rounds).\n\n{pinning}"
        ),
        ["| client | SDK | raw | SDK / raw | raw / raw (control) |", "|---|---:|---:|---:|---:|"],
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | **{:.3}x** | {:.3}x |",
            r.name,
            r.b(),
            r.a(),
            r.ratio(),
            r.control()
        );
    }
    let _ = writeln!(md, "\n### 2. Herds: 1,000 concurrent callers, token requests made\n");
    let _ = writeln!(md, "| pattern | loopback | +25 ms token latency |");
    let _ = writeln!(md, "|---|---:|---:|");
    for (name, fast, slow) in herd {
        let _ = writeln!(md, "| {name} | {fast} | {slow} |");
    }
    heading(
        &mut md,
        &format!(
            "3. Latency across token rollover (8 concurrent callers, {ROLLOVER_ROUNDS} ABBA rounds of {window_s} s windows: long-lived, 1 s, 1 s, long-lived)"
        ),
        "Latencies are medians over the windows; the ratios are medians of per-round ratios (a round's two 1 s windows against its two long-lived ones).",
        ["| tokens | calls (last window) | p50 | p99 |", "|---|---:|---:|---:|"],
    );
    let rolling = format!("1 s, rolling over ({} refreshes in all windows)", roll.refreshes);
    for (tokens, calls, p50, p99) in [
        (rolling.as_str(), roll.calls.0, roll.p50.0, roll.p99.0),
        ("long-lived", roll.calls.1, roll.p50.1, roll.p99.1),
    ] {
        let (p50, p99) = (p50.as_secs_f64() * 1e6, p99.as_secs_f64() * 1e6);
        let _ = writeln!(md, "| {tokens} | {calls} | {p50:.0} µs | {p99:.0} µs |");
    }
    let _ = writeln!(
        md,
        "\nrollover p99 / long-lived p99: **{:.3}x**; p50: {:.3}x\n",
        roll.p99_ratio, roll.p50_ratio
    );
    let _ = writeln!(md, "![p99 latency across token rollover](rollover.svg)\n");
    let _ = writeln!(md, "### 4. Memory and allocations\n");
    let _ = writeln!(md, "| measure | SDK | raw reqwest |");
    let _ = writeln!(md, "|---|---:|---:|");
    let _ = writeln!(
        md,
        "| allocations per call, the SDK's own work (cached token, request built, answer classified; no network) | {core_allocs:.1} | - |"
    );
    let _ = writeln!(
        md,
        "| allocations per call, whole call over reqwest (sequential) | {sdk_allocs:.1} | {raw_allocs:.1} |"
    );
    let _ = writeln!(
        md,
        "| peak RSS after 100,000 calls at concurrency 32 (separate process) | {} KiB ({sdk_secs:.1} s) | {} KiB ({raw_secs:.1} s) |",
        sdk_rss, raw_rss
    );
    let _ = writeln!(
        md,
        "\n### 5. Instructions and cache misses per call (callgrind: the client process only, sequential GETs, ({} - {} calls) / {})\n",
        INSTR_CALLS.1,
        INSTR_CALLS.0,
        INSTR_CALLS.1 - INSTR_CALLS.0
    );
    let _ = writeln!(
        md,
        "Steady figures beside the noisy throughput rows: the same binary, the same emulator. Level-1 misses are counted in simulated 32 KiB, 8-way instruction and data caches (fixed, whatever the host): the lines a call's code and data pull in, which is what a call waiting on the network pays for again each time. The last row puts the throughput table's last row (a parity row: both clients send one request per call with the token from a cache) in steady figures.\n"
    );
    let _ = writeln!(
        md,
        "| client: SDK against | instructions: SDK | baseline | SDK extra per call | extra / baseline | L1 misses: SDK | baseline | extra / baseline |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let per = |kind: &str| {
        counted.iter().find(|(k, _)| k == kind).map_or_else(Counted::default, |(_, v)| *v)
    };
    for (name, sdk, raw) in [
        ("async (reqwest): raw reqwest", per("sdk-async"), per("raw-async")),
        ("blocking (ureq): raw ureq", per("sdk-blocking"), per("raw-blocking")),
        (
            "async (reqwest): oauth2-rs 5 + hand-written cache",
            per("sdk-async"),
            per("oauth2-async"),
        ),
    ] {
        let (si, ri) = (sdk.instructions, raw.instructions);
        let (sm, rm) = (sdk.l1_misses, raw.l1_misses);
        let _ = writeln!(
            md,
            "| {name} | {si:.0} | {ri:.0} | {:.0} | **{:.1}%** | {sm:.0} | {rm:.0} | {:+.1}% |",
            si - ri,
            (si - ri) / ri * 100.0,
            (sm - rm) / rm * 100.0
        );
    }
    let _ = writeln!(md, "\n### 6. A fleet on one Redis store (`redis-server` on loopback)\n");
    let _ = writeln!(md, "| measure | figure |");
    let _ = writeln!(md, "|---|---:|");
    let _ = writeln!(
        md,
        "| request path, {}: Redis store / memory store ({ROUNDS_SAME_PATH} ABBA / BAAB rounds; memory / memory control {:.3}x) | **{:.3}x** ({:.0} vs {:.0} requests/s) |",
        fleet.path.name,
        fleet.path.control(),
        fleet.path.ratio(),
        fleet.path.b(),
        fleet.path.a()
    );
    let _ = writeln!(
        md,
        "| {} processes x 100 tasks, {}-s tokens, {:.1} s: token requests fleet-wide (the first fetch, then renewals) | {} = 1 + **{:.2} renewals per lifetime**, {} early ({} calls failed) |",
        fleet.processes,
        fleet.lifetime,
        fleet.seconds,
        fleet.token_requests,
        fleet.token_requests.saturating_sub(1) as f64 / (fleet.seconds / fleet.lifetime as f64),
        fleet.early,
        fleet.failed
    );
    md.push_str(&crate::sql::section(sql));
    md.push_str(&crate::first_call::section(first_call));
    heading(
        &mut md,
        "9. Many signed-in users (100,000 `for_user` clients over one shared client)",
        "What a web service pays per signed-in user: resident memory, what runs while users are idle, and the token requests per second when every token was issued within one minute (a deploy, a morning sign-in wave). In a child process of its own, no network: a stand-in server answers token requests at once and a manual clock stands for the hour (`crates/bench/src/many_users.rs`).",
        ["", ""],
    );
    md.push_str(&crate::many_users::markdown(many_users));
    heading(
        &mut md,
        "10. The hot loop unpinned: client and emulator sharing both cores",
        "Section 1's async rows again, neither process pinned, in three runtime shapes, in as many rounds per row as section 1 (180 for one caller, 90 for 32). Where section 1 measures the client's own work on a core of its own, these rows add what a service sharing its cores pays: wake-ups, hand-offs between threads, timers.",
        ["", ""],
    );
    md.push_str(&crate::shared_cores::markdown(shared_cores));
    md
}
