//! Section 3: latency across token rollover (1 s tokens) against long-lived tokens, in ABBA
//! rounds of windows, and its chart (`rollover.svg`: p99 per 100 ms of the last round).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helloflex_core::ClientSecret;

use crate::emulator::{self, admin, environment, reset};
use crate::{DEMO, ROLL, Result, median, percentile, runtime};

/// ABBA rounds of the rollover section (windows of long-lived tokens, 1 s tokens twice,
/// long-lived again). A window's p99 moves by up to 2x from one window to the next on a shared
/// host (bursts), so many short rounds steady the median (the trials: `docs/benchmarks-notes.md`,
/// "Choosing the rounds").
pub const ROLLOVER_ROUNDS: usize = 15;
/// One window's length.
pub const ROLLOVER_WINDOW: Duration = Duration::from_secs(1);

/// What section 3 measured.
pub struct Rollover {
    /// Medians over the windows: 1 s tokens, long-lived tokens.
    pub p50: (Duration, Duration),
    /// Medians over the windows, as `p50`.
    pub p99: (Duration, Duration),
    /// Medians of the per-round ratios (1 s tokens against long-lived).
    pub p99_ratio: f64,
    /// As `p99_ratio`.
    pub p50_ratio: f64,
    /// Calls in the last window of each.
    pub calls: (usize, usize),
    /// (seconds since start, latency) per call of the last short-token window.
    samples_short: Vec<(f64, Duration)>,
    samples_long: Vec<(f64, Duration)>,
    /// Token requests of the 1 s client over all windows.
    pub refreshes: u64,
}

/// Section 3 alone (`--phase rollover`): the two ratios, printed.
pub fn alone(emulator_path: &str) -> Result<()> {
    let emulator = emulator::start(emulator_path)?;
    let rt = runtime()?;
    let roll = run(&rt, &emulator.base)?;
    println!("rollover p99 {:.3}x, p50 {:.3}x", roll.p99_ratio, roll.p50_ratio);
    Ok(())
}

/// Runs section 3 against the emulator at `base`.
pub fn run(rt: &tokio::runtime::Runtime, base: &str) -> Result<Rollover> {
    const WINDOW: Duration = ROLLOVER_WINDOW;
    const TASKS: usize = 8;
    let env = environment(base)?;
    admin(base, "token-lifetime", Some(serde_json::json!({"seconds": 1, "client": ROLL.0})))?;
    let window = |client: helloflex_transport_reqwest::Client| -> Vec<(f64, Duration)> {
        rt.block_on(async move {
            let start = Instant::now();
            let deadline = start + WINDOW;
            let samples = Arc::new(Mutex::new(Vec::with_capacity(200_000)));
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (client, samples) = (client.clone(), samples.clone());
                    tokio::spawn(async move {
                        let mut local = Vec::new();
                        while Instant::now() < deadline && local.len() < 200_000 {
                            let t = Instant::now();
                            let ok = client.get("news").send().await.is_ok();
                            if ok {
                                local.push(((t - start).as_secs_f64(), t.elapsed()));
                            }
                        }
                        if let Ok(mut s) = samples.lock() {
                            s.extend(local);
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
            samples.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
        })
    };
    let build = |creds: (&str, &str)| {
        rt.block_on(async {
            helloflex_transport_reqwest::Client::builder()
                .environment(env.clone())
                .client_credentials(creds.0, ClientSecret::new(creds.1))
                .build()
        })
    };
    let short_client = build(ROLL)?;
    let long_client = build(DEMO)?;
    rt.block_on(async {
        let _ = short_client.token().await;
        let _ = long_client.token().await;
    });
    let (mut p99s, mut p99l, mut p50s, mut p50l) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut p99_ratios, mut p50_ratios) = (Vec::new(), Vec::new());
    let (mut samples_short, mut samples_long) = (Vec::new(), Vec::new());
    let percentiles = |samples: &[(f64, Duration)]| {
        let mut lat: Vec<Duration> = samples.iter().map(|(_, d)| *d).collect();
        lat.sort();
        (percentile(&lat, 0.5).as_secs_f64(), percentile(&lat, 0.99).as_secs_f64())
    };
    reset(base)?;
    for _ in 0..ROLLOVER_ROUNDS {
        // ABBA: long-lived tokens, 1 s tokens twice, long-lived again, so drift within a
        // round cancels; the ratio is taken per round.
        let long = window(long_client.clone());
        let short = [window(short_client.clone()), window(short_client.clone())];
        let long_again = window(long_client.clone());
        let [(s50a, s99a), (s50b, s99b)] = [percentiles(&short[0]), percentiles(&short[1])];
        let [(l50a, l99a), (l50b, l99b)] = [percentiles(&long), percentiles(&long_again)];
        p99_ratios.push((s99a + s99b) / (l99a + l99b));
        p50_ratios.push((s50a + s50b) / (l50a + l50b));
        p50s.extend([s50a, s50b]);
        p99s.extend([s99a, s99b]);
        p50l.extend([l50a, l50b]);
        p99l.extend([l99a, l99b]);
        let [_, last_short] = short;
        samples_short = last_short;
        samples_long = long;
    }
    let counters = admin(base, "counters", None)?;
    let refreshes =
        counters["token_requests"][format!("{}/client_credentials", ROLL.0)].as_u64().unwrap_or(0);
    let secs = |v: Vec<f64>| Duration::from_secs_f64(median(v));
    Ok(Rollover {
        p50: (secs(p50s), secs(p50l)),
        p99: (secs(p99s), secs(p99l)),
        p99_ratio: median(p99_ratios),
        p50_ratio: median(p50_ratios),
        calls: (samples_short.len(), samples_long.len()),
        samples_short,
        samples_long,
        refreshes,
    })
}

/// The chart: p99 per 100 ms over the last round's windows, both kinds of tokens.
pub fn svg(r: &Rollover) -> String {
    // Per-100 ms bucket p99 latency for both scenarios of the last round.
    let window = ROLLOVER_WINDOW.as_secs_f64();
    let count = (window * 10.0).round().max(1.0) as usize;
    let bucket = |samples: &[(f64, Duration)]| -> Vec<(f64, f64)> {
        let mut buckets: Vec<Vec<Duration>> = vec![Vec::new(); count];
        for (t, d) in samples {
            let i = ((t * 10.0) as usize).min(count - 1);
            buckets[i].push(*d);
        }
        buckets
            .into_iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, mut b)| {
                b.sort();
                (i as f64 / 10.0 + 0.05, percentile(&b, 0.99).as_secs_f64() * 1e6)
            })
            .collect()
    };
    let short = bucket(&r.samples_short);
    let long = bucket(&r.samples_long);
    let max_us = short.iter().chain(long.iter()).map(|(_, y)| *y).fold(100.0, f64::max) * 1.1;
    let (w, h, left, bottom) = (720.0, 320.0, 60.0, 40.0);
    let x = |t: f64| left + t / window * (w - left - 20.0);
    let y = |us: f64| h - bottom - us / max_us * (h - bottom - 20.0);
    let line = |points: &[(f64, f64)]| {
        points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"##
    );
    let _ = write!(
        out,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="14">p99 per 100 ms, last window, 8 callers: 1 s tokens (rolling over) vs long-lived</text>"##
    );
    for tick in 0..=4 {
        let s = window * f64::from(tick) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{0:.1}" y1="20" x2="{0:.1}" y2="{1}" stroke="#ddd"/><text x="{0:.1}" y="{2}" text-anchor="middle">{s} s</text>"##,
            x(s),
            h - bottom,
            h - bottom + 16.0
        );
    }
    for frac in [0.0, 0.5, 1.0] {
        let v = max_us / 1.1 * frac;
        let _ = write!(
            out,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{:.0} µs</text>"##,
            left - 6.0,
            y(v) + 4.0,
            v
        );
    }
    let _ = write!(
        out,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
        line(&long)
    );
    let _ = write!(
        out,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="2" points="{}"/>"##,
        line(&short)
    );
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" fill="#d62728">1 s tokens ({} refreshes over all windows)</text><text x="{}" y="{}" fill="#1f77b4">long-lived tokens</text></svg>"##,
        w - 260.0,
        34,
        r.refreshes,
        w - 260.0,
        50
    );
    out
}
