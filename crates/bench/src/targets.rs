//! The targets table at the head of the report: each target the project set, this run's
//! figure for it, and whether this run met it. Computed from the run, never written by hand:
//! what earlier runs read is history, kept in `docs/benchmarks-notes.md`.

use crate::abba::AbbaRow;
use crate::instructions::Counted;
use crate::report::Measured;

/// One target and what this run read.
pub struct Target {
    /// The target, as a sentence with its threshold.
    pub what: String,
    /// This run's figure.
    pub figure: String,
    /// Whether the figure meets the target.
    pub met: bool,
}

fn target(what: impl Into<String>, figure: impl Into<String>, met: bool) -> Target {
    Target { what: what.into(), figure: figure.into(), met }
}

/// A throughput row's ratio against `at_least`.
fn ratio_at_least(row: &AbbaRow, at_least: f64, what: &str) -> Target {
    target(
        format!("{what} >= {at_least:.2}x"),
        format!("{:.3}x (control {:.3}x)", row.ratio(), row.control()),
        row.ratio() >= at_least,
    )
}

/// A throughput row's target: async rows and one-caller rows at least 0.99x the raw client,
/// eight blocking threads at least 0.97x, the async client at least level with oauth2-rs and
/// its cache.
fn throughput_target(row: &AbbaRow, section: &str) -> Target {
    let n = &row.name;
    let (at_least, against) = if n.contains("oauth2-rs") {
        (1.0, "oauth2-rs 5 + cache")
    } else if n.starts_with("blocking") {
        (if n.contains(" 1 thread") { 0.99 } else { 0.97 }, "raw ureq")
    } else {
        (0.99, "raw reqwest")
    };
    let row_name = n.split(':').next().unwrap_or(n);
    ratio_at_least(row, at_least, &format!("{section} {row_name} against {against}:"))
}

/// Every target of the run, in the order of the sections.
pub fn targets(m: &Measured) -> Vec<Target> {
    let mut out = Vec::new();
    // 1. Throughput: async and one-caller rows at least 0.99x raw, eight blocking threads at
    // least 0.97x, and the async client at least level with oauth2-rs and its cache.
    out.extend(m.rows.iter().map(|row| throughput_target(row, "1.")));
    // 2. Herds: one token request each, whatever the pattern of arrival.
    for (name, fast, slow) in m.herd.iter().filter(|(name, ..)| name.starts_with("helloflex")) {
        out.push(target(
            format!("2. {name}: exactly 1 token request per herd of 1,000"),
            format!("{fast} on loopback, {slow} with 25 ms latency"),
            *fast == 1 && *slow == 1,
        ));
    }
    // 3. Rollover.
    out.push(target(
        "3. p99 latency across token rollover <= 1.10x long-lived tokens",
        format!("{:.3}x", m.roll.p99_ratio),
        m.roll.p99_ratio <= 1.10,
    ));
    // 5. Instructions.
    let per = |kind: &str| {
        m.counted.iter().find(|(k, _)| k == kind).map_or_else(Counted::default, |(_, v)| *v)
    };
    for (what, sdk, raw) in [
        ("async: raw reqwest", per("sdk-async"), per("raw-async")),
        ("blocking: raw ureq", per("sdk-blocking"), per("raw-blocking")),
    ] {
        let extra = (sdk.instructions - raw.instructions) / raw.instructions * 100.0;
        out.push(target(
            format!("5. the SDK's extra instructions per call <= 3% of the raw client's ({what})"),
            format!("{extra:+.1}%"),
            extra <= 3.0,
        ));
    }
    let (sdk, peer) = (per("sdk-async"), per("oauth2-async"));
    let fewer = (sdk.instructions - peer.instructions) / peer.instructions * 100.0;
    out.push(target(
        "5. no more instructions per call than oauth2-rs 5 + cache",
        format!("{fewer:+.1}%"),
        fewer <= 0.0,
    ));
    // 6. The fleet on Redis.
    out.push(ratio_at_least(
        &m.fleet.path,
        0.99,
        "6. request path on the Redis store / memory store",
    ));
    let lifetimes = m.fleet.seconds / m.fleet.lifetime.max(1) as f64;
    let per_lifetime = m.fleet.token_requests.saturating_sub(1) as f64 / lifetimes.max(1e-9);
    out.push(target(
        "6. a fleet of 8 processes: <= 1.2 token requests per token lifetime, no call failed",
        format!("{per_lifetime:.2} per lifetime, {} failed", m.fleet.failed),
        per_lifetime <= 1.2 && m.fleet.failed == 0,
    ));
    // 7. SQL.
    out.push(ratio_at_least(
        &m.sql.sqlite,
        0.99,
        "7. request path on a SQLite file / memory store",
    ));
    out.push(ratio_at_least(&m.sql.postgres, 0.99, "7. request path on PostgreSQL / memory store"));
    out.push(target(
        "7. no PostgreSQL round trip while the token is fresh",
        m.sql.round_trips_fresh.to_string(),
        m.sql.round_trips_fresh == 0,
    ));
    // 8. The first call: the SDK's cold process against doing it by hand, and build() alone.
    {
        use crate::first_call::{Flavour, variants::Variant as V};
        let fc = &m.first_call;
        for (flavour, name) in [(Flavour::Plain, "plain HTTP"), (Flavour::Tls, "TLS")] {
            for (sdk, base, at_most, what) in [
                (V::SdkAsync, V::RawReqwest, 1.05, "async client / raw reqwest by hand"),
                (V::SdkBlocking, V::RawUreq, 1.05, "blocking client / raw ureq by hand"),
                (V::SdkAsync, V::Oauth2Reqwest, 1.0, "async client / oauth2-rs 5 + reqwest"),
            ] {
                let ratio = fc.ratio(flavour, sdk, base);
                out.push(target(
                    format!("8. first call ({name}), {what} <= {at_most:.2}x"),
                    format!("{ratio:.3}x"),
                    ratio > 0.0 && ratio <= at_most,
                ));
            }
        }
        for variant in [V::BuildAsync, V::BuildBlocking] {
            let built = fc.of(Flavour::Plain, variant).map(|s| s.build_median());
            let micros = built.map_or(f64::NAN, |b| b.as_secs_f64() * 1e6);
            out.push(target(
                format!("8. `build()` without TLS roots under 1 ms ({variant:?})"),
                format!("{micros:.0} µs"),
                micros < 1000.0,
            ));
        }
    }
    // 9. Many users.
    let users = &m.many_users;
    out.push(target(
        "9. <= 2 KiB per idle signed-in user beyond the token bytes",
        format!("{:.0} B", users.beyond_tokens()),
        users.beyond_tokens() <= 2048.0,
    ));
    out.push(target(
        "9. nothing running per idle user (tasks and threads as with no user, no CPU while idle)",
        format!(
            "tasks {} -> {}, threads {} -> {}, {:.0} ms CPU in 2 s",
            users.tasks.0, users.tasks.1, users.threads.0, users.threads.1, users.idle_cpu_ms
        ),
        users.tasks.1 <= users.tasks.0
            && users.threads.1 <= users.threads.0
            && users.idle_cpu_ms <= 20.0,
    ));
    let spread = users.peak() as f64 / users.average().max(1.0);
    out.push(target(
        "9. refreshes spread: the peak second <= 2x the average (tokens issued within one minute)",
        format!("{spread:.2}x ({} / {:.0} per s)", users.peak(), users.average()),
        spread <= 2.0 && users.refreshes() == users.users as u64,
    ));
    // 10. The async rows unpinned, in each runtime shape.
    for shape in &m.shared_cores {
        let section = format!("10. {}:", shape.shape);
        out.extend(shape.rows.iter().map(|row| throughput_target(row, &section)));
    }
    out
}

/// The table, as Markdown.
pub fn markdown(targets: &[Target]) -> String {
    let met = targets.iter().filter(|t| t.met).count();
    let mut md = format!(
        "### Targets in this run: {met} of {} met\n\n| target | this run | met |\n|---|---:|:---:|\n",
        targets.len()
    );
    for t in targets {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            t.what,
            t.figure,
            if t.met { "yes" } else { "**no**" }
        ));
    }
    md
}
