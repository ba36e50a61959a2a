//! Section 5: instructions and level-1 cache misses per call under callgrind (valgrind), with
//! fixed simulated caches: the steady figures beside the noisy throughput rows.

use std::process::{Command, Stdio};

use helloflex_core::ClientSecret;

use crate::clients::{AsyncPair, BlockingPair, raw_reqwest};
use crate::emulator::environment;
use crate::peer::Oauth2Cached;
use crate::{DEMO, Result, arg};

/// Calls made under callgrind in the short and the long run: their difference divided by the
/// difference in calls is the cost of one call, setup and teardown cancelled out.
pub const INSTR_CALLS: (u64, u64) = (300, 1300);

/// One authenticated GET, `calls` times in a row, in this process: the SDK or the raw client,
/// async (reqwest) or blocking (ureq), or oauth2-rs with its cache (`oauth2-async`). Run under
/// callgrind by [`counted_per_call`].
pub fn phase(base: &str, kind: &str, calls: u64) -> Result<()> {
    let env = environment(base)?;
    let url = format!("{base}/news");
    match kind {
        "sdk-async" | "raw-async" if arg("--concurrency").is_some() => {
            let concurrency: u64 = arg("--concurrency").unwrap_or_default().parse()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let pair = AsyncPair::new(&rt, base)?;
            let sdk = kind == "sdk-async";
            rt.block_on(async {
                let tasks: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let pair = pair.clone();
                        tokio::spawn(async move {
                            for _ in 0..calls / concurrency {
                                pair.once(sdk).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    let _ = task.await;
                }
            });
        }
        "sdk-async" | "raw-async" => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let sdk = helloflex_transport_reqwest::Client::builder()
                    .environment(env)
                    .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
                    .build()?;
                let bearer =
                    format!("Bearer {}", sdk.token().await?.access_token().expose_secret());
                let raw = raw_reqwest()?;
                for _ in 0..calls {
                    let ok = if kind == "sdk-async" {
                        sdk.get("news").send().await.is_ok()
                    } else {
                        let r = raw
                            .get(&url)
                            .header("authorization", &bearer)
                            .header("accept", "application/json")
                            .send()
                            .await?;
                        r.status().is_success() && r.bytes().await.is_ok()
                    };
                    if !ok {
                        return Err("a call failed".into());
                    }
                }
                Ok::<(), Box<dyn std::error::Error>>(())
            })?;
        }
        "oauth2-async" => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let peer = Oauth2Cached::new(base, raw_reqwest()?)?;
                for _ in 0..calls {
                    if !peer.get(&url).await {
                        return Err("a call failed".into());
                    }
                }
                Ok::<(), Box<dyn std::error::Error>>(())
            })?;
        }
        _ => {
            let pair = BlockingPair::new(base)?;
            for _ in 0..calls {
                if !pair.once(kind == "sdk-blocking") {
                    return Err("a call failed".into());
                }
            }
        }
    }
    Ok(())
}

/// The simulated caches (`--I1`, `--D1`, `--LL` as size,associativity,line size): fixed, so
/// the miss counts are the same on any host (valgrind would otherwise copy this CPU's).
const SIMULATED_CACHES: [&str; 3] = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=33554432,16,64"];

/// What callgrind counted over a whole run (or, as a difference of two runs, per call).
#[derive(Clone, Copy, Default)]
pub struct Counted {
    /// Instructions executed.
    pub instructions: f64,
    /// Level-1 misses (instruction reads, data reads, data writes) in the simulated caches:
    /// the cache lines the code and data of a call pull in, its footprint.
    pub l1_misses: f64,
}

/// What this process executes under callgrind (with its cache simulation) for `calls` calls
/// of `kind`.
fn callgrind_total(base: &str, kind: &str, calls: u64, out: &std::path::Path) -> Result<Counted> {
    let file = out.join(format!("callgrind.{kind}.{calls}.out"));
    let run = Command::new("valgrind")
        .args(["--tool=callgrind", "--quiet", "--cache-sim=yes"])
        .args(SIMULATED_CACHES)
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(std::env::current_exe()?)
        .args(["--phase", "instructions", "--base", base, "--kind", kind, "--calls"])
        .arg(calls.to_string())
        .stdout(Stdio::null())
        .output()?;
    // Valgrind warns about the host's caches before it takes the fixed ones: shown only when
    // the run failed.
    if !run.status.success() {
        let said = String::from_utf8_lossy(&run.stderr);
        return Err(format!("callgrind run of {kind} failed ({}): {said}", run.status).into());
    }
    let text = std::fs::read_to_string(&file)?;
    let line = |prefix: &str| -> Option<Vec<&str>> {
        text.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.split_whitespace().collect())
    };
    let (events, totals) = line("events:")
        .zip(line("summary:").or_else(|| line("totals:")))
        .ok_or("no events or totals in the callgrind output")?;
    let event = |name: &str| -> Result<f64> {
        let at = events.iter().position(|e| *e == name).ok_or("an event is missing")?;
        Ok(totals.get(at).ok_or("a total is missing")?.parse()?)
    };
    Ok(Counted {
        instructions: event("Ir")?,
        l1_misses: event("I1mr")? + event("D1mr")? + event("D1mw")?,
    })
}

/// Instructions and level-1 misses per call of each kind: (long run - short run) / (calls
/// difference), so setup and teardown cancel out.
pub fn counted_per_call(base: &str, out: &std::path::Path) -> Result<Vec<(String, Counted)>> {
    let mut per_call = Vec::new();
    for kind in ["raw-async", "sdk-async", "raw-blocking", "sdk-blocking", "oauth2-async"] {
        let short = callgrind_total(base, kind, INSTR_CALLS.0, out)?;
        let long = callgrind_total(base, kind, INSTR_CALLS.1, out)?;
        let calls = (INSTR_CALLS.1 - INSTR_CALLS.0) as f64;
        per_call.push((
            kind.to_owned(),
            Counted {
                instructions: (long.instructions - short.instructions).max(0.0) / calls,
                l1_misses: (long.l1_misses - short.l1_misses).max(0.0) / calls,
            },
        ));
    }
    Ok(per_call)
}
