//! Section 4: allocations per call (counted in `allocbench`, this code under a counting
//! allocator) and peak RSS after 100,000 calls (in a child process each).

use std::process::Command;
use std::time::{Duration, Instant};

use helloflex_core::ClientSecret;

use crate::clients::raw_reqwest;
use crate::emulator::environment;
use crate::{DEMO, Result, runtime};

/// Allocations per call, counted in `allocbench` (this code under a counting allocator, which
/// only that binary has: its shared counters would slow every other phase): prints the SDK's
/// own work, a whole SDK call and a whole raw call.
pub fn allocations_phase(base: &str, allocations_so_far: &dyn Fn() -> u64) -> Result<()> {
    let rt = runtime()?;
    let (core, sdk, raw) = allocations(&rt, base, allocations_so_far)?;
    println!("core={core:.2} sdk={sdk:.2} raw={raw:.2}");
    Ok(())
}

/// Runs [`allocations_phase`] in `allocbench` (beside this binary).
pub fn allocations_in_child(base: &str) -> Result<(f64, f64, f64)> {
    let exe = std::env::current_exe()?.with_file_name("allocbench");
    let output = Command::new(&exe).args(["--base", base]).output()?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("allocbench printed no {name}"))
    };
    Ok((field("core=")?, field("sdk=")?, field("raw=")?))
}

fn allocations(
    rt: &tokio::runtime::Runtime,
    base: &str,
    allocations_so_far: &dyn Fn() -> u64,
) -> Result<(f64, f64, f64)> {
    use helloflex_core::machines::*;
    use helloflex_core::*;
    // The SDK's own per-call work without the network: cached token, request built, answer classified.
    let now = Instant::now();
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let Acquire::Fetch(ticket) = cache.acquire(now) else { return Err("expected a fetch".into()) };
    let response =
        parse_token_response(http::StatusCode::OK, br#"{"access_token":"t0k","expires_in":3600}"#)?;
    let set = cache.token_set(&ticket, response, now);
    let _ = cache.complete(now, ticket, Ok(set), 1);
    let env = environment(base)?.base_url();
    let canned = http::Response::new(b"[]".to_vec());
    const N: u64 = 10_000;
    let before = allocations_so_far();
    for _ in 0..N {
        let Acquire::Use(token) = cache.acquire(now) else { return Err("expected a token".into()) };
        let request = ApiRequest::get("news").to_http(&env, token.access_token())?;
        std::hint::black_box(&request);
        classify_response(canned.status(), canned.headers(), canned.body())
            .map_err(|e| e.to_string())?;
    }
    let core = (allocations_so_far() - before) as f64 / N as f64;
    // Whole calls, sequentially: SDK client vs raw reqwest with a fixed header.
    let client = rt.block_on(async {
        helloflex_transport_reqwest::Client::builder()
            .environment(environment(base)?)
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
            .build()
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
    })?;
    let bearer = format!("Bearer {}", rt.block_on(client.token())?.access_token().expose_secret());
    let raw = raw_reqwest()?;
    let url = format!("{base}/news");
    const CALLS: u64 = 2_000;
    let (sdk, rawc) = rt.block_on(async {
        for _ in 0..100 {
            let _ = client.get("news").send().await;
            let _ = raw.get(&url).header("authorization", &bearer).send().await;
        }
        let before = allocations_so_far();
        for _ in 0..CALLS {
            let _ = client.get("news").send().await;
        }
        let sdk = allocations_so_far() - before;
        let before = allocations_so_far();
        for _ in 0..CALLS {
            if let Ok(r) = raw
                .get(&url)
                .header("authorization", &bearer)
                .header("accept", "application/json")
                .send()
                .await
            {
                let _ = r.bytes().await;
            }
        }
        (sdk, allocations_so_far() - before)
    });
    Ok((core, sdk as f64 / CALLS as f64, rawc as f64 / CALLS as f64))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())
            })
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Run in a child process (`--phase memory`): 100,000 calls at concurrency 32, then the peak
/// RSS.
pub fn phase(base: &str, raw: bool) -> Result<()> {
    let rt = runtime()?;
    const CALLS: usize = 100_000;
    const TASKS: usize = 32;
    let started = Instant::now();
    rt.block_on(async {
        let client = helloflex_transport_reqwest::Client::builder()
            .environment(environment(base)?)
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
            .build()?;
        let bearer = format!("Bearer {}", client.token().await?.access_token().expose_secret());
        let http = raw_reqwest()?;
        let url = format!("{base}/news");
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (client, http, url, bearer) =
                    (client.clone(), http.clone(), url.clone(), bearer.clone());
                tokio::spawn(async move {
                    for _ in 0..CALLS / TASKS {
                        if started.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                        if raw {
                            if let Ok(r) =
                                http.get(&url).header("authorization", &bearer).send().await
                            {
                                let _ = r.bytes().await;
                            }
                        } else {
                            let _ = client.get("news").send().await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    println!("peak_rss_kib={} seconds={:.2}", peak_rss_kib(), started.elapsed().as_secs_f64());
    Ok(())
}

/// Peak RSS (KiB) and seconds of [`phase`] in a child process, for the SDK and for raw reqwest.
pub fn peak_rss(base: &str) -> Result<[(u64, f64); 2]> {
    let exe = std::env::current_exe()?;
    let mut out = [(0, 0.0); 2];
    for (i, kind) in ["sdk", "raw"].iter().enumerate() {
        let output = Command::new(&exe)
            .args(["--phase", "memory", "--base", base, "--kind", kind])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        out[i] = (field("peak_rss_kib=") as u64, field("seconds="));
    }
    Ok(out)
}
