//! Section 8, the first call: what a short process (a CLI, a cron job, a serverless function)
//! pays from its start to its first API answer, cold. Each sample is a new `firstcall` process
//! (beside this binary), timed from `Command::spawn` to its exit, hyperfine-style: many samples,
//! medians, every variant once per round in an order rotated each round. Over plain HTTP to the
//! emulator, and over TLS through a loopback listener ([`tls_proxy`]) with a private CA, where
//! loading the root store and the handshake count. [`variants`] says what each process does.

pub mod tls_proxy;
pub mod variants;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, median};
use variants::Variant;

/// Rounds (each runs every variant once per flavour), unless [`BUDGET`] runs out first.
pub const ROUNDS: usize = 80;
/// The longest the section samples for.
pub const BUDGET: Duration = Duration::from_secs(180);
/// The system's root store, as rustls-native-certs finds it on Debian (a file and a folder):
/// a TLS sample's processes load it, with the private CA added to the file.
const SYSTEM_ROOTS: (&str, &str) = ("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs");

/// How a sample reaches the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Plain HTTP on loopback.
    Plain,
    /// TLS on loopback, the certificate from a private CA.
    Tls,
}

/// A variant's samples in one flavour, one per round.
#[derive(Debug, Clone)]
pub struct Samples {
    /// Plain or TLS.
    pub flavour: Flavour,
    /// Which process.
    pub variant: Variant,
    /// Spawn to exit, per round.
    pub wall: Vec<Duration>,
    /// The client's build inside the process, per round.
    pub build: Vec<Duration>,
}

impl Samples {
    /// The median spawn-to-exit time.
    pub fn wall_median(&self) -> Duration {
        Duration::from_secs_f64(median(self.wall.iter().map(Duration::as_secs_f64).collect()))
    }

    /// The median build time.
    pub fn build_median(&self) -> Duration {
        Duration::from_secs_f64(median(self.build.iter().map(Duration::as_secs_f64).collect()))
    }
}

/// What the section measured.
#[derive(Debug, Clone, Default)]
pub struct FirstCall {
    /// Every (flavour, variant), in [`Variant::ALL`]'s order, plain first.
    pub samples: Vec<Samples>,
    /// Rounds run.
    pub rounds: usize,
}

impl FirstCall {
    /// The samples of `variant` in `flavour`.
    pub fn of(&self, flavour: Flavour, variant: Variant) -> Option<&Samples> {
        self.samples.iter().find(|s| s.flavour == flavour && s.variant == variant)
    }

    /// The median over rounds of `a`'s time over `b`'s in the same round (0 for none).
    pub fn ratio(&self, flavour: Flavour, a: Variant, b: Variant) -> f64 {
        let (Some(a), Some(b)) = (self.of(flavour, a), self.of(flavour, b)) else { return 0.0 };
        median(a.wall.iter().zip(&b.wall).map(|(a, b)| a.as_secs_f64() / b.as_secs_f64()).collect())
    }
}

/// The files a TLS sample's processes are handed: the CA for ureq, and for reqwest (through
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`, which rustls-platform-verifier's root loading reads) the
/// system's roots with the CA added, so they load as much as they would by default.
pub struct TlsFiles {
    dir: PathBuf,
    /// The CA alone (PEM).
    pub ca: PathBuf,
    /// The system's root file with the CA appended.
    pub bundle: PathBuf,
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsFiles {
    fn write(ca: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("helloflex-firstcall-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let system = std::fs::read_to_string(SYSTEM_ROOTS.0).unwrap_or_default();
        let files = Self { ca: dir.join("ca.pem"), bundle: dir.join("bundle.pem"), dir };
        std::fs::write(&files.ca, ca)?;
        std::fs::write(&files.bundle, format!("{system}\n{ca}"))?;
        Ok(files)
    }
}

/// Runs the section against the emulator at `base` (plain HTTP), with `firstcall` beside this
/// binary.
pub fn run(base: &str) -> Result<FirstCall> {
    let exe = std::env::current_exe()?.with_file_name("firstcall");
    let upstream: u16 = base.rsplit(':').next().ok_or("no port in the base URL")?.parse()?;
    let tls = helloflex_testkit::tls::loopback_tls();
    let files = TlsFiles::write(&tls.ca)?;
    let proxy = tls_proxy::start(upstream, &tls.cert, &tls.key)?;
    let slots: Vec<(Flavour, Variant)> = [Flavour::Plain, Flavour::Tls]
        .into_iter()
        .flat_map(|f| Variant::ALL.into_iter().map(move |v| (f, v)))
        .collect();
    let mut samples: Vec<Samples> = slots
        .iter()
        .map(|&(flavour, variant)| Samples { flavour, variant, wall: vec![], build: vec![] })
        .collect();
    let sample = |(flavour, variant): (Flavour, Variant)| match flavour {
        Flavour::Plain => once(&exe, variant, base, None),
        Flavour::Tls => once(&exe, variant, &proxy.base, Some(&files)),
    };
    // One warm-up round (the binary and its libraries in the page cache), not counted.
    for &slot in &slots {
        sample(slot)?;
    }
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < ROUNDS && started.elapsed() < BUDGET {
        for i in 0..slots.len() {
            let at = (i + rounds) % slots.len();
            let (wall, build) = sample(slots[at])?;
            samples[at].wall.push(wall);
            samples[at].build.push(build);
        }
        rounds += 1;
    }
    Ok(FirstCall { samples, rounds })
}

/// One `firstcall` process: its spawn-to-exit time and the build time it printed.
fn once(
    exe: &Path,
    variant: Variant,
    base: &str,
    tls: Option<&TlsFiles>,
) -> Result<(Duration, Duration)> {
    let mut command = Command::new(exe);
    command.args([variant.name(), "--base", base]).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(files) = tls {
        command.arg("--ca").arg(&files.ca).env("SSL_CERT_FILE", &files.bundle);
        if Path::new(SYSTEM_ROOTS.1).is_dir() {
            command.env("SSL_CERT_DIR", SYSTEM_ROOTS.1);
        }
    }
    let started = Instant::now();
    let child = command.spawn()?;
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(format!("firstcall {} ({base}) failed: {why}", variant.name()).into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let nanos: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("build_ns "))
        .ok_or("firstcall printed no build time")?
        .trim()
        .parse()?;
    Ok((wall, Duration::from_nanos(nanos)))
}

/// `loadbench --phase first-call --emulator <path>`: the section alone, printed.
pub fn alone(emulator_path: &str) -> Result<()> {
    let emulator = crate::emulator::start(emulator_path)?;
    let measured = run(&emulator.base)?;
    print!("{}", section(&measured));
    Ok(())
}

/// Milliseconds, to two places.
fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Microseconds, whole.
fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The section as Markdown.
pub fn section(m: &FirstCall) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### 8. The first call: a new process per sample, from its start to the first API answer ({} interleaved rounds, the order rotated each round)\n",
        m.rounds
    );
    let _ = writeln!(
        md,
        "Each sample is a `firstcall` process (one binary for every variant), timed from spawn to exit: a tokio runtime where async (as `#[tokio::main]` builds it), the client built, a client-credentials token, one `GET /news` answered 200. Raw reqwest and raw ureq send the SDK's requests by hand (the form POST, the SDK's headers, the JSON's `access_token`, a bearer GET); oauth2-rs 5 exchanges over the same reqwest client. Over TLS the emulator sits behind a loopback TLS listener with a private CA: reqwest's clients load the system's roots as they do by default (`SSL_CERT_FILE` and `SSL_CERT_DIR` name them, the CA added to the file); ureq's, whose roots are compiled in, are told to trust the CA alone (the SDK's blocking client with `root_certificates`, raw ureq with its `RootCerts`). Over plain HTTP the SDK's async client loads no roots (none of its endpoints needs TLS), where raw reqwest and oauth2-rs's reqwest load the system's store as reqwest does by default. `sdk-async-ring` is the SDK's async client with ring installed as the process's rustls provider in place of reqwest's aws-lc-rs. `build-*` build the SDK's client and stop. Times are medians; ratios are medians of per-round ratios; `build` is the client's construction timed inside the process.\n"
    );
    let _ = writeln!(md, "| process | plain HTTP | build | TLS | build |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for variant in Variant::ALL {
        let cell = |flavour| {
            m.of(flavour, variant).map_or_else(
                || ("-".to_owned(), "-".to_owned()),
                |s| (ms(s.wall_median()), us(s.build_median())),
            )
        };
        let ((plain, plain_build), (tls, tls_build)) = (cell(Flavour::Plain), cell(Flavour::Tls));
        let name = variant.name();
        let _ = writeln!(md, "| `{name}` | {plain} | {plain_build} | {tls} | {tls_build} |");
    }
    let _ = writeln!(md, "\n| ratio (spawn to exit) | plain HTTP | TLS |");
    let _ = writeln!(md, "|---|---:|---:|");
    for (name, a, b) in [
        ("SDK async / raw reqwest", Variant::SdkAsync, Variant::RawReqwest),
        ("SDK blocking / raw ureq", Variant::SdkBlocking, Variant::RawUreq),
        ("SDK async / oauth2-rs 5 + reqwest", Variant::SdkAsync, Variant::Oauth2Reqwest),
        ("SDK async, ring / SDK async, aws-lc-rs", Variant::SdkAsyncRing, Variant::SdkAsync),
    ] {
        let (plain, tls) = (m.ratio(Flavour::Plain, a, b), m.ratio(Flavour::Tls, a, b));
        let _ = writeln!(md, "| {name} | **{plain:.3}x** | **{tls:.3}x** |");
    }
    let build = |flavour, variant| m.of(flavour, variant).map(Samples::build_median);
    let wall = |flavour, variant| m.of(flavour, variant).map(Samples::wall_median);
    if let (Some(plain), Some(tls), Some(blocking), Some(aws), Some(ring)) = (
        build(Flavour::Plain, Variant::BuildAsync),
        build(Flavour::Tls, Variant::BuildAsync),
        build(Flavour::Plain, Variant::BuildBlocking),
        wall(Flavour::Tls, Variant::SdkAsync),
        wall(Flavour::Tls, Variant::SdkAsyncRing),
    ) {
        let _ = writeln!(
            md,
            "\n`build()` without TLS roots: {} async (every endpoint plain HTTP, so no roots are loaded), {} blocking. Its TLS cost: loading the system's roots makes the async `build()` {} against an `https` API (ureq loads its compiled-in roots at the first TLS connection, not in `build()`). The first handshake costs the async client {} more with reqwest's default provider, aws-lc-rs, than with ring: aws-lc seeds its random generator from CPU jitter once per process.",
            us(plain),
            us(blocking),
            ms(tls),
            ms(aws.saturating_sub(ring)),
        );
    }
    md
}
