//! Measures run by hand while working on the request path (`loadbench --phase load --base URL
//! --kind ...`), not by `cargo xtask bench`: rates of one side (`sdk`, `raw`, `sdk-blocking`,
//! `raw-blocking`), the size of a call's future (`--sizes`), client CPU per call (`cpu`),
//! context switches per call (`switches`) and
//! patterns of slots (`slots`), to see position effects and which layer costs what.

use std::sync::Arc;
use std::time::Duration;

use crate::abba::{AbbaRow, ROUND, ROUNDS};
use crate::clients::{
    AsyncPair, BlockingPair, async_rate, blocking_rate, fixed_request, raw_reqwest,
};
use crate::peer::Oauth2Cached;
use crate::{Result, arg, median, runtime};

/// `--phase load`: the measure `--kind` names, against the emulator at `base`.
pub fn load(base: &str) -> Result<()> {
    let kind = arg("--kind").unwrap_or_default();
    if kind.ends_with("-blocking") {
        // 8 threads of blocking calls, 20 rounds.
        let pair = BlockingPair::new(base)?;
        let total: f64 = (0..20).map(|_| pair.rate(8, kind == "sdk-blocking")).sum();
        println!("{kind} {:.0}/s", total / 20.0);
        return Ok(());
    }
    if kind == "cpu" {
        return cpu_per_call(base);
    }
    if kind == "switches" {
        return switches_per_call(base);
    }
    if kind == "slots" {
        return slots(base, &arg("--pattern").unwrap_or_else(|| "ABBA".into()));
    }
    let rt = runtime()?;
    let pair = AsyncPair::new(&rt, base)?;
    if arg("--sizes").is_some() {
        let _guard = rt.enter();
        let f = pair.sdk.get("news").send();
        println!("sdk send future {}", std::mem::size_of_val(&f));
        let g = pair.raw.get(&pair.url).header("authorization", &pair.bearer).send();
        println!("raw send future {}", std::mem::size_of_val(&g));
        return Ok(());
    }
    let total: f64 = (0..20).map(|_| pair.rate(&rt, 32, kind == "sdk")).sum();
    println!("{kind} {:.0}/s", total / 20.0);
    Ok(())
}

/// CPU time this process has used, all threads (`/proc/self/task/*/schedstat`, in ns).
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// Client CPU per call at concurrency 32, SDK against raw reqwest (or, with `--against
/// oauth2`, against oauth2-rs with its cache) in ABBA / BAAB rounds: what each call costs this
/// process, whatever share of the cores the server took.
fn cpu_per_call(base: &str) -> Result<()> {
    let rt = runtime()?;
    let pair = AsyncPair::new(&rt, base)?;
    // The peer in place of raw reqwest, when asked for.
    let peer = match arg("--against").as_deref() {
        Some("oauth2") => Some(Arc::new(Oauth2Cached::new(base, raw_reqwest()?)?)),
        _ => None,
    };
    let baseline = if peer.is_some() { "oauth2-rs" } else { "raw" };
    let mut ratios = Vec::new();
    let (mut sdk_us, mut raw_us) = (Vec::new(), Vec::new());
    for index in 0..ROUNDS {
        let per_call = AbbaRow::round(index, |sdk| {
            let before = process_cpu();
            let rate = match &peer {
                Some(peer) if !sdk => rt.block_on(peer.rate(&pair.url)),
                _ => pair.rate(&rt, 32, sdk),
            };
            let calls = rate * ROUND.as_secs_f64();
            (process_cpu() - before).as_secs_f64() * 1e6 / calls.max(1.0)
        });
        sdk_us.push((per_call[1] + per_call[2]) / 2.0);
        raw_us.push((per_call[0] + per_call[3]) / 2.0);
        ratios.push((per_call[1] + per_call[2]) / (per_call[0] + per_call[3]));
    }
    println!(
        "client CPU per call: SDK {:.2} us, {baseline} {:.2} us, SDK / {baseline} {:.3}x (medians of {ROUNDS} ABBA / BAAB rounds)",
        median(sdk_us),
        median(raw_us),
        median(ratios)
    );
    Ok(())
}

/// Context switches (voluntary and not, every thread of this process) per call, SDK against
/// raw reqwest, at `--concurrency` (32 by default) on the 2-worker runtime: the wake-ups and
/// hand-offs a call causes, which cost more when client and server share cores than the
/// pinned rows show. A count, so steadier than a rate on a busy host.
fn switches_per_call(base: &str) -> Result<()> {
    let concurrency: usize = arg("--concurrency").and_then(|c| c.parse().ok()).unwrap_or(32);
    let rt = runtime()?;
    let pair = AsyncPair::new(&rt, base)?;
    let (mut sdk, mut raw) = (Vec::new(), Vec::new());
    for index in 0..ROUNDS / 3 {
        let per_call = AbbaRow::round(index, |is_sdk| {
            let before = context_switches();
            let calls = pair.rate(&rt, concurrency, is_sdk) * ROUND.as_secs_f64();
            (context_switches() - before) as f64 / calls.max(1.0)
        });
        sdk.push((per_call[1] + per_call[2]) / 2.0);
        raw.push((per_call[0] + per_call[3]) / 2.0);
    }
    println!(
        "context switches per call at concurrency {concurrency}: SDK {:.3}, raw {:.3} (medians of {} rounds)",
        median(sdk),
        median(raw),
        ROUNDS / 3
    );
    Ok(())
}

/// Context switches of every thread of this process so far.
fn context_switches() -> u64 {
    let mut total = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    total
}

/// Rounds of slots in the order `pattern` names them (`A` raw reqwest, `B` the SDK, `T` the
/// SDK's transport alone with a request built per call; `a` raw ureq, `b` the blocking SDK and
/// `t` its transport alone, `--concurrency` threads each), at concurrency 32: each slot's
/// median rate against the round's first, to see position effects and which layer costs what.
/// Raw runs on threads named `raw-worker`, the others on `sdk-worker`, so a profile of this
/// one process splits by side (`perf record -e cpu-clock`, then `perf report --sort comm,sym`),
/// with the calls each side made printed to divide by. `--workers N` sets each runtime's
/// worker threads (2 by default, as in the throughput rows).
fn slots(base: &str, pattern: &str) -> Result<()> {
    use helloflex_auth::AsyncTransport as _;
    let concurrency: usize = arg("--concurrency").and_then(|c| c.parse().ok()).unwrap_or(32);
    let workers: usize = arg("--workers").and_then(|c| c.parse().ok()).unwrap_or(2);
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (sdk_rt, raw_rt) = (runtime("sdk-worker")?, runtime("raw-worker")?);
    let pair = AsyncPair::new(&sdk_rt, base)?;
    let options = helloflex_auth::HttpOptions::default();
    let transport =
        Arc::new(helloflex_transport_reqwest::ReqwestTransport::from_options(&options)?);
    let transport_rate = || {
        let (transport, pair) = (transport.clone(), pair.clone());
        sdk_rt.block_on(async_rate(concurrency, move || {
            let (transport, pair) = (transport.clone(), pair.clone());
            async move {
                match fixed_request(&pair.url, &pair.bearer) {
                    Ok(request) => {
                        (*transport).send(request).await.is_ok_and(|r| r.status().is_success())
                    }
                    Err(_) => false,
                }
            }
        }))
    };
    let blocking = BlockingPair::new(base)?;
    let ureq_transport = Arc::new(helloflex_transport_ureq::UreqTransport::from_options(&options));
    let ureq_rate = || {
        let (transport, pair) = (ureq_transport.clone(), blocking.clone());
        blocking_rate(concurrency, "sdk-worker", move || {
            use helloflex_auth::BlockingTransport as _;
            match fixed_request(&pair.url, &pair.bearer) {
                Ok(request) => transport.send(request).is_ok_and(|r| r.status().is_success()),
                Err(_) => false,
            }
        })
    };
    let mut relative = vec![Vec::new(); pattern.len()];
    let (mut raw_calls, mut sdk_calls) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let rates: Vec<f64> = pattern
            .chars()
            .map(|slot| match slot {
                'A' => pair.rate(&raw_rt, concurrency, false),
                'T' => transport_rate(),
                'a' => blocking.rate(concurrency, false),
                'b' => blocking.rate(concurrency, true),
                't' => ureq_rate(),
                _ => pair.rate(&sdk_rt, concurrency, true),
            })
            .collect();
        for ((slot, rate), kind) in relative.iter_mut().zip(&rates).zip(pattern.chars()) {
            slot.push(rate / rates[0]);
            *(if kind.eq_ignore_ascii_case(&'A') { &mut raw_calls } else { &mut sdk_calls }) +=
                rate * ROUND.as_secs_f64();
        }
    }
    let medians: Vec<String> = relative.into_iter().map(|v| format!("{:.3}", median(v))).collect();
    println!(
        "{pattern}: {} (medians of {ROUNDS} rounds, against the first slot); calls: raw-worker {raw_calls:.0}, sdk-worker {sdk_calls:.0}",
        medians.join(" ")
    );
    Ok(())
}
