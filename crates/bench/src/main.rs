//! `loadbench`: run by `cargo xtask bench`. Starts the emulator (a separate process, so this
//! process's memory is the client's alone), then measures side by side in one run, in
//! interleaved rounds, reporting medians and ratios:
//!
//! 1. authenticated GET throughput: SDK vs raw client with a fixed bearer header, plus a
//!    raw-vs-raw control row (the noise floor), and the SDK against oauth2-rs 5 with the token
//!    cache a user of it would write; in a child process on CPU 0 with its own emulator on
//!    CPU 1 (`taskset`), where the machine has two cores;
//! 2. herds of 1,000 callers, cold and at expiry, with and without 25 ms of token latency,
//!    beside a token per call and a hand-written mutex cache;
//! 3. latency across token rollover (1 s tokens) vs long-lived tokens, with an SVG chart;
//! 4. allocations per call (counted in `allocbench`, beside this binary) and peak RSS over
//!    100,000 calls;
//! 5. instructions and level-1 cache misses per call under callgrind (valgrind) with fixed
//!    simulated caches, SDK against raw and against oauth2-rs with its cache: steady figures;
//! 6. a fleet on one Redis store (a real `redis-server` on loopback): the request path on the
//!    Redis store against the memory store, and token requests per lifetime of 8 processes.
//!
//! Every loop is bounded in count and in time. Usage:
//! `loadbench --emulator <path> --fleet-member <path> --out <dir>` (writes `<dir>/load.md` and
//! `<dir>/rollover.svg`).

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock; that is its job

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helloflex_core::{ClientSecret, Environment, InsecureLoopback};

const DEMO: (&str, &str) = ("demo-client", "demo-secret");
const ROLL: (&str, &str) = ("roll-client", "roll-secret");
/// Interleaved rounds per row, and one slot's length. A round's ratio wobbles about 12% on a
/// shared 2-core host whether its slots last 100 or 300 ms (the noise comes in bursts per
/// slot, not per second), so more, shorter slots steady a row's median in the same time:
/// raw against raw, 3 runs each, 120 x 100 ms gave 0.995-1.003, 40 x 300 ms 0.964-1.021
/// (`--phase load --kind slots --pattern AAAA`).
const ROUNDS: usize = 90;
/// Rounds of a one-caller row: its slot holds a few hundred calls (thousands at concurrency
/// 32), so a round's ratio wobbles more; pinned, 90 rounds read 0.965-1.012 (`--phase
/// throughput --only async1,blocking1` under `taskset`, five runs).
const ROUNDS_ONE_CALLER: usize = 2 * ROUNDS;
const ROUND: Duration = Duration::from_millis(100);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Emulator {
    child: Child,
    base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the emulator on a free loopback port; with `--pin-emulator <cpu>`, on that CPU alone
/// (through `taskset`).
fn start_emulator(path: &str) -> Result<Emulator> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut command = match arg("--pin-emulator") {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", &cpu, path]);
            taskset
        }
        None => Command::new(path),
    };
    let child = command
        .args(["--port", &port.to_string(), "--client", &format!("{}:{}", ROLL.0, ROLL.1)])
        .stdout(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the emulator did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Emulator { child, base })
}

fn admin(base: &str, path: &str, body: Option<serde_json::Value>) -> Result<serde_json::Value> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{base}/_admin/{path}");
    let mut response = match body {
        Some(json) => {
            agent.post(&url).header("content-type", "application/json").send(json.to_string())?
        }
        None => agent.get(&url).call()?,
    };
    let text = response.body_mut().read_to_string()?;
    Ok(if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text)? })
}

fn token_requests(base: &str) -> Result<u64> {
    let counters = admin(base, "counters", None)?;
    Ok(counters["token_requests"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum()))
}

fn reset(base: &str) -> Result<()> {
    admin(base, "counters/reset", Some(serde_json::json!({})))?;
    Ok(())
}

fn environment(base: &str) -> Result<Environment> {
    Ok(Environment::custom(base, InsecureLoopback::Allow)?)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

// ---------- 1. throughput ----------

async fn async_rate<F, Fut>(concurrency: usize, call: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + ROUND;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (call, done) = (call.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if call().await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64()
}

/// Calls/s of `call` on `threads` threads named `name` (so a profile splits by side).
fn blocking_rate<F>(threads: usize, name: &str, call: F) -> f64
where
    F: Fn() -> bool + Send + Sync + Clone + 'static,
{
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + ROUND;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (call, done) = (call.clone(), done.clone());
            std::thread::Builder::new().name(name.into()).spawn(move || {
                while Instant::now() < deadline {
                    if call() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles.into_iter().flatten() {
        let _ = h.join();
    }
    done.load(Ordering::Relaxed) as f64 / ROUND.as_secs_f64()
}

/// The User-Agent the SDK sends over `transport`: raw clients send it too, so both sides put
/// the same request on the wire and a row measures the SDK, not a header.
fn sdk_user_agent(transport: &str) -> String {
    helloflex_auth::HttpOptions::default().user_agent_for(transport)
}

fn raw_reqwest() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(sdk_user_agent("reqwest"))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

fn raw_ureq() -> ureq::Agent {
    ureq::Agent::config_builder()
        .user_agent(sdk_user_agent("ureq"))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(64)
        .max_idle_connections_per_host(32)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// The two async clients of a throughput row: the SDK, and raw reqwest sending the SDK's
/// token in a fixed header.
#[derive(Clone)]
struct AsyncPair {
    sdk: helloflex_transport_reqwest::Client,
    raw: reqwest::Client,
    url: String,
    bearer: String,
}

impl AsyncPair {
    fn new(rt: &tokio::runtime::Runtime, base: &str) -> Result<Self> {
        let env = environment(base)?;
        let sdk = rt.block_on(async {
            helloflex_transport_reqwest::Client::builder()
                .environment(env)
                .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
                .build()
        })?;
        let bearer = format!("Bearer {}", rt.block_on(sdk.token())?.access_token().expose_secret());
        Ok(Self { sdk, raw: raw_reqwest()?, url: format!("{base}/news"), bearer })
    }

    /// One slot: calls/s of the SDK (`sdk`) or of raw reqwest at `concurrency`.
    fn rate(&self, rt: &tokio::runtime::Runtime, concurrency: usize, sdk: bool) -> f64 {
        let pair = self.clone();
        rt.block_on(async_rate(concurrency, move || {
            let pair = pair.clone();
            async move { pair.once(sdk).await }
        }))
    }

    /// One call through the SDK (`sdk`) or raw reqwest; whether it succeeded.
    async fn once(&self, sdk: bool) -> bool {
        if sdk {
            return self.sdk.get("news").send().await.is_ok();
        }
        let sent = self
            .raw
            .get(&self.url)
            .header("authorization", &self.bearer)
            .header("accept", "application/json")
            .send()
            .await;
        match sent {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

/// The two blocking clients of a throughput row: the SDK over ureq, and raw ureq sending the
/// SDK's token in a fixed header.
#[derive(Clone)]
struct BlockingPair {
    sdk: helloflex_transport_ureq::Client,
    raw: ureq::Agent,
    url: String,
    bearer: String,
}

impl BlockingPair {
    fn new(base: &str) -> Result<Self> {
        let sdk = helloflex_transport_ureq::Client::builder()
            .environment(environment(base)?)
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
            .build()?;
        let bearer = format!("Bearer {}", sdk.token()?.access_token().expose_secret());
        Ok(Self { sdk, raw: raw_ureq(), url: format!("{base}/news"), bearer })
    }

    /// One call through the SDK (`sdk`) or raw ureq; whether it succeeded.
    fn once(&self, sdk: bool) -> bool {
        if sdk {
            return self.sdk.get("news").send().is_ok();
        }
        let sent = self
            .raw
            .get(&self.url)
            .header("authorization", &self.bearer)
            .header("accept", "application/json")
            .call();
        match sent {
            Ok(mut r) => r.status().is_success() && r.body_mut().read_to_vec().is_ok(),
            Err(_) => false,
        }
    }

    /// One slot: calls/s of the SDK (`sdk`) or of raw ureq on `threads` threads.
    fn rate(&self, threads: usize, sdk: bool) -> f64 {
        let pair = self.clone();
        let name = if sdk { "sdk-worker" } else { "raw-worker" };
        blocking_rate(threads, name, move || pair.once(sdk))
    }
}

fn throughput(rt: &tokio::runtime::Runtime, base: &str) -> Result<Vec<AbbaRow>> {
    let pair = AsyncPair::new(rt, base)?;
    let mut rows = Vec::new();
    for concurrency in [1usize, 32] {
        if !wanted(&format!("async{concurrency}")) {
            continue;
        }
        let mut rounds = Vec::new();
        for index in 0..rounds_for(concurrency) {
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
        for index in 0..rounds_for(threads) {
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

/// Rounds of a row with `callers` concurrent callers.
fn rounds_for(callers: usize) -> usize {
    if callers == 1 { ROUNDS_ONE_CALLER } else { ROUNDS }
}

// ---------- 6. fleet ----------

use helloflex_testkit::redis_server;

/// One configuration's rates, round by round (A = raw or the baseline, B = the SDK or the
/// variant), each round kept as A's first run, B's two, A's second (see [`AbbaRow::round`]).
struct AbbaRow {
    name: String,
    rounds: Vec<[f64; 4]>,
}

impl AbbaRow {
    /// Round `index` of a row, `rate(is_b)` measuring one slot: A, B, B, A in even rounds and
    /// B, A, A, B in odd ones. Symmetric in time, so the machine's drift within a round cancels
    /// instead of favouring the slot in the middle; alternated, so neither side always has a
    /// round's first slot, which at one caller runs 1-3% slower than the three after it,
    /// whichever client is in it (`--kind slots --pattern AAAA`). Kept as A's first run, B's
    /// two, A's second.
    fn round(index: usize, mut rate: impl FnMut(bool) -> f64) -> [f64; 4] {
        if index.is_multiple_of(2) {
            [false, true, true, false].map(&mut rate)
        } else {
            let [b1, a1, a2, b2] = [true, false, false, true].map(&mut rate);
            [a1, b1, b2, a2]
        }
    }

    /// Median rate of B.
    fn b(&self) -> f64 {
        median(self.rounds.iter().map(|r| (r[1] + r[2]) / 2.0).collect())
    }
    /// Median rate of A.
    fn a(&self) -> f64 {
        median(self.rounds.iter().map(|r| (r[0] + r[3]) / 2.0).collect())
    }
    /// Median over rounds of B's rate against A's.
    fn ratio(&self) -> f64 {
        median(self.rounds.iter().map(|r| (r[1] + r[2]) / (r[0] + r[3])).collect())
    }
    /// A's second run against its first: the noise floor.
    fn control(&self) -> f64 {
        median(self.rounds.iter().map(|r| r[3] / r[0]).collect())
    }

    /// The row as one line of `--rows-out`: its name, then each round's four rates.
    fn to_line(&self) -> String {
        let rounds: Vec<String> =
            self.rounds.iter().map(|r| r.map(|rate| format!("{rate:.1}")).join(",")).collect();
        format!("{}\t{}\n", self.name, rounds.join("\t"))
    }

    /// A row read back from [`AbbaRow::to_line`].
    fn from_line(line: &str) -> Result<Self> {
        let mut fields = line.split('\t');
        let name = fields.next().ok_or("an empty row")?.to_owned();
        let rounds = fields
            .map(|round| {
                let rates: Vec<f64> =
                    round.split(',').map(str::parse).collect::<std::result::Result<_, _>>()?;
                <[f64; 4]>::try_from(rates).map_err(|_| "a round without four rates".into())
            })
            .collect::<Result<_>>()?;
        Ok(Self { name, rounds })
    }
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

/// What the fleet section measured.
struct Fleet {
    /// Memory store (A) and Redis store (B), in rounds of `AbbaRow::round`.
    path: AbbaRow,
    processes: usize,
    seconds: f64,
    lifetime: u64,
    token_requests: u64,
    /// Tokens issued while the fleet's last one had over a quarter of its life left.
    early: u64,
    failed: u64,
}

fn fleet(rt: &tokio::runtime::Runtime, base: &str, member: &str) -> Result<Fleet> {
    use helloflex_auth::{Key, KeyRing};
    let redis = redis_server::RedisServer::start();
    let key = Key::generate("bench")?;
    let key_text = key.to_text().to_string();
    let store =
        Arc::new(helloflex_store_redis::RedisStore::open(&redis.url(), DEMO.0, KeyRing::new(key))?);
    let env = environment(base)?;
    let (memory, shared) = rt.block_on(async {
        let memory = helloflex_transport_reqwest::Client::builder()
            .environment(env.clone())
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
            .build()?;
        let shared = helloflex_transport_reqwest::Client::builder()
            .environment(env)
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
            .shared_token_store(store.clone())
            .build()?;
        Ok::<_, helloflex_core::Error>((memory, shared))
    })?;
    // Rounds of memory, Redis, Redis, memory and the reverse (see `AbbaRow::round`).
    let rate = |client: &helloflex_transport_reqwest::Client| {
        let client = client.clone();
        rt.block_on(async_rate(32, move || {
            let client = client.clone();
            async move { client.get("news").send().await.is_ok() }
        }))
    };
    let mut rounds = Vec::new();
    for index in 0..ROUNDS {
        rounds.push(AbbaRow::round(index, |redis| rate(if redis { &shared } else { &memory })));
    }
    let path = AbbaRow { name: "async (reqwest), concurrency 32".into(), rounds };

    // 8 processes x 100 tasks on 2-s tokens, starting from an empty store.
    store.delete()?;
    let (processes, lifetime, seconds) = (8usize, 2u64, 8.0f64);
    admin(
        base,
        "token-lifetime",
        Some(serde_json::json!({"seconds": lifetime, "client": DEMO.0})),
    )?;
    std::thread::sleep(Duration::from_millis(100));
    reset(base)?;
    let started = Instant::now();
    let members: Vec<Child> = (0..processes)
        .map(|i| {
            Command::new(member)
                .args(["--grant", "cc", "--emulator", base, "--redis", &redis.url()])
                .args(["--tasks", "100", "--seconds", &seconds.to_string(), "--period-ms", "300"])
                .args(["--flavour", if i < 2 { "blocking" } else { "async" }])
                .env("HELLOFLEX_TOKEN_KEYS", &key_text)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut failed = 0;
    for member in members {
        let output = member.wait_with_output()?;
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        failed += report["failed"].as_u64().unwrap_or(u64::MAX / 16);
    }
    let seconds = started.elapsed().as_secs_f64();
    let token_requests = token_requests(base)?;
    let early = admin(base, "counters", None)?["early_tokens"].as_u64().unwrap_or(u64::MAX);
    Ok(Fleet { path, processes, seconds, lifetime, token_requests, early, failed })
}

// ---------- 1b. the peer: oauth2-rs with a hand-written cache ----------

/// The client credentials grant as a user of oauth2-rs 5 would call the API: oauth2's
/// exchange (over the same reqwest client) and the cache they would write around it, a token
/// behind a lock, fetched when missing or close to expiry (no single flight, no proactive
/// refresh: the best the default crate offers, hand-written).
struct Oauth2Cached {
    client: oauth2::basic::BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    http: reqwest::Client,
    cached: tokio::sync::RwLock<Option<(String, Instant)>>,
}

impl Oauth2Cached {
    fn new(base: &str, http: reqwest::Client) -> Result<Self> {
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(DEMO.0.into()))
            .set_client_secret(oauth2::ClientSecret::new(DEMO.1.into()))
            .set_token_uri(oauth2::TokenUrl::new(format!("{base}/oauth2/token"))?);
        Ok(Self { client, http, cached: tokio::sync::RwLock::new(None) })
    }

    async fn bearer(&self) -> Option<String> {
        if let Some((token, until)) = &*self.cached.read().await
            && Instant::now() < *until
        {
            return Some(format!("Bearer {token}"));
        }
        use oauth2::TokenResponse as _;
        let http = self.http.clone();
        let send = move |request: oauth2::HttpRequest| {
            let http = http.clone();
            async move {
                let (parts, body) = request.into_parts();
                let response = http
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let mut out = http::Response::new(Vec::new());
                *out.status_mut() = response.status();
                *out.headers_mut() = response.headers().clone();
                *out.body_mut() = response.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>(out)
            }
        };
        let token = self.client.exchange_client_credentials().request_async(&send).await.ok()?;
        let secret = token.access_token().secret().clone();
        let lifetime = token.expires_in().unwrap_or(Duration::from_secs(300));
        let until = Instant::now() + lifetime.mul_f64(0.9);
        *self.cached.write().await = Some((secret.clone(), until));
        Some(format!("Bearer {secret}"))
    }

    /// Calls/s of this client at concurrency 32 (the throughput rows' load) on `url`.
    async fn rate(self: &Arc<Self>, url: &str) -> f64 {
        let (peer, url) = (Arc::clone(self), url.to_owned());
        async_rate(32, move || {
            let (peer, url) = (Arc::clone(&peer), url.clone());
            async move { peer.get(&url).await }
        })
        .await
    }

    async fn get(&self, url: &str) -> bool {
        let Some(bearer) = self.bearer().await else { return false };
        match self
            .http
            .get(url)
            .header("authorization", bearer)
            .header("accept", "application/json")
            .send()
            .await
        {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

/// The SDK against oauth2-rs with its cache, concurrency 32, in rounds of `AbbaRow::round` (A =
/// oauth2-rs).
fn against_oauth2(rt: &tokio::runtime::Runtime, base: &str) -> Result<AbbaRow> {
    let sdk = AsyncPair::new(rt, base)?.sdk;
    let peer = Arc::new(Oauth2Cached::new(base, raw_reqwest()?)?);
    let url = format!("{base}/news");
    let mut rounds = Vec::new();
    for index in 0..ROUNDS {
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

// ---------- 5. instructions and cache misses per call (callgrind) ----------

/// Calls made under callgrind in the short and the long run: their difference divided by the
/// difference in calls is the cost of one call, setup and teardown cancelled out.
const INSTR_CALLS: (u64, u64) = (300, 1300);

/// One authenticated GET, `calls` times in a row, in this process: the SDK or the raw client,
/// async (reqwest) or blocking (ureq), or oauth2-rs with its cache (`oauth2-async`). Run under
/// callgrind by [`counted_per_call`].
fn instructions_phase(base: &str, kind: &str, calls: u64) -> Result<()> {
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
struct Counted {
    /// Instructions executed.
    instructions: f64,
    /// Level-1 misses (instruction reads, data reads, data writes) in the simulated caches:
    /// the cache lines the code and data of a call pull in, its footprint.
    l1_misses: f64,
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
fn counted_per_call(base: &str, out: &std::path::Path) -> Result<Vec<(String, Counted)>> {
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

// ---------- 2. herds ----------

async fn raw_token(http: &reqwest::Client, base: &str) -> Option<String> {
    let body =
        format!("grant_type=client_credentials&client_id={}&client_secret={}", DEMO.0, DEMO.1);
    let r = http
        .post(format!("{base}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
    json["access_token"].as_str().map(str::to_owned)
}

fn herds(rt: &tokio::runtime::Runtime, base: &str) -> Result<Vec<(String, u64, u64)>> {
    const CALLERS: usize = 1000;
    let env = environment(base)?;
    let mut rows = Vec::new();
    let mut measure = |name: &str, run: &dyn Fn(&str) -> Result<()>| -> Result<()> {
        let mut counts = Vec::new();
        for latency in [0u64, 25] {
            let _ =
                ureq::Agent::new_with_defaults().delete(&format!("{base}/_admin/faults")).call();
            if latency > 0 {
                admin(
                    base,
                    "faults",
                    Some(
                        serde_json::json!({"path": "/oauth2/token", "kind": "latency", "ms": latency}),
                    ),
                )?;
            }
            run(base)?;
            counts.push(token_requests(base)?);
        }
        let _ = ureq::Agent::new_with_defaults().delete(&format!("{base}/_admin/faults")).call();
        rows.push((name.to_owned(), counts[0], counts[1]));
        Ok(())
    };
    measure("helloflex-rs, cold cache", &|base| {
        reset(base)?;
        rt.block_on(async {
            let client = helloflex_transport_reqwest::Client::builder()
                .environment(env.clone())
                .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
                .build()?;
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move { c.token().await.is_ok() })
                })
                .collect();
            for t in tasks {
                t.await?;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })
    })?;
    measure("helloflex-rs, at expiry (1 s tokens)", &|base| {
        rt.block_on(async {
            let client = helloflex_transport_reqwest::Client::builder()
                .environment(env.clone())
                .client_credentials(ROLL.0, ClientSecret::new(ROLL.1))
                .build()?;
            client.token().await?;
            tokio::time::sleep(Duration::from_millis(1100)).await;
            reset(base)?;
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move { c.token().await.is_ok() })
                })
                .collect();
            for t in tasks {
                t.await?;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })
    })?;
    measure("a token per call (oauth2-rs README pattern)", &|base| {
        reset(base)?;
        rt.block_on(async {
            let http = raw_reqwest()?;
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let (h, b) = (http.clone(), base.to_owned());
                    tokio::spawn(async move { raw_token(&h, &b).await })
                })
                .collect();
            for t in tasks {
                t.await?;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })
    })?;
    measure("hand-written mutex cache (check, unlock, fetch, store)", &|base| {
        reset(base)?;
        rt.block_on(async {
            let http = raw_reqwest()?;
            let cache: Arc<Mutex<Option<String>>> = Arc::default();
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let (h, b, cache) = (http.clone(), base.to_owned(), cache.clone());
                    tokio::spawn(async move {
                        let cached = cache.lock().ok().and_then(|c| c.clone());
                        if cached.is_none() {
                            let fresh = raw_token(&h, &b).await;
                            if let Ok(mut c) = cache.lock() {
                                *c = fresh;
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await?;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        })
    })?;
    Ok(rows)
}

// ---------- 3. rollover ----------

/// ABBA rounds of the rollover section (windows of long-lived tokens, 1 s tokens twice,
/// long-lived again), and a window's length. A window's p99 moves by up to 2x from one window
/// to the next on this host (bursts), so a round's ratio reads 0.7-1.1: many short rounds
/// steady the median. Two 3 s windows per side, long then short, compared as the larger p99 of
/// each, read 0.65-1.16x over eight runs of the same code; 9 ABBA rounds of 1 s, 0.70-1.04x
/// over six.
const ROLLOVER_ROUNDS: usize = 15;
const ROLLOVER_WINDOW: Duration = Duration::from_secs(1);

struct Rollover {
    /// Medians over the windows: 1 s tokens, long-lived tokens.
    p50: (Duration, Duration),
    p99: (Duration, Duration),
    /// Medians of the per-round ratios (1 s tokens against long-lived).
    p99_ratio: f64,
    p50_ratio: f64,
    calls: (usize, usize),
    /// (seconds since start, latency) per call of the last short-token window.
    samples_short: Vec<(f64, Duration)>,
    samples_long: Vec<(f64, Duration)>,
    refreshes: u64,
}

fn rollover(rt: &tokio::runtime::Runtime, base: &str) -> Result<Rollover> {
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

fn svg(r: &Rollover) -> String {
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

// ---------- 4. allocations and memory ----------

/// Allocations per call, counted in `allocbench` (this code under a counting allocator, which
/// only that binary has: its shared counters would slow every other phase): prints the SDK's
/// own work, a whole SDK call and a whole raw call.
#[allow(dead_code)] // called by allocbench, which includes this file
pub(crate) fn allocations_phase(base: &str, allocations_so_far: &dyn Fn() -> u64) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (core, sdk, raw) = allocations(&rt, base, allocations_so_far)?;
    println!("core={core:.2} sdk={sdk:.2} raw={raw:.2}");
    Ok(())
}

/// Runs [`allocations_phase`] in `allocbench` (beside this binary).
fn allocations_in_child(base: &str) -> Result<(f64, f64, f64)> {
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

#[allow(dead_code)] // see allocations_phase
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

/// Run in a child process: 100,000 calls at concurrency 32, then the peak RSS.
fn memory_phase(base: &str, raw: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
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

fn memory(base: &str) -> Result<[(u64, f64); 2]> {
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
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
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

/// The GET a transport-alone slot sends: `url` with the token in a fixed header, built per
/// call as a user of the transport would.
fn fixed_request(url: &str, bearer: &str) -> http::Result<http::Request<Vec<u8>>> {
    http::Request::builder()
        .uri(url)
        .header("authorization", bearer)
        .header("accept", "application/json")
        .body(Vec::new())
}

/// Whether a throughput row is wanted: all of them, or those `--only a,b` names (`async1`,
/// `async32`, `blocking1`, `blocking8`, `oauth2`).
fn wanted(row: &str) -> bool {
    arg("--only").is_none_or(|only| only.split(',').any(|o| o == row))
}

pub(crate) fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<()> {
    if arg("--phase").as_deref() == Some("instructions") {
        let base = arg("--base").ok_or("--base")?;
        let calls = arg("--calls").ok_or("--calls")?.parse()?;
        return instructions_phase(&base, &arg("--kind").ok_or("--kind")?, calls);
    }
    if arg("--phase").as_deref() == Some("memory") {
        let base = arg("--base").ok_or("--base")?;
        return memory_phase(&base, arg("--kind").as_deref() == Some("raw"));
    }
    if arg("--phase").as_deref() == Some("load") {
        let base = arg("--base").ok_or("--base")?;
        let kind = arg("--kind").unwrap_or_default();
        if kind.ends_with("-blocking") {
            // 8 threads of blocking calls, 20 rounds.
            let pair = BlockingPair::new(&base)?;
            let total: f64 = (0..20).map(|_| pair.rate(8, kind == "sdk-blocking")).sum();
            println!("{kind} {:.0}/s", total / 20.0);
            return Ok(());
        }
        if kind == "cpu" {
            return cpu_per_call(&base);
        }
        if kind == "slots" {
            return slots(&base, &arg("--pattern").unwrap_or_else(|| "ABBA".into()));
        }
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let pair = AsyncPair::new(&rt, &base)?;
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
        return Ok(());
    }
    let emulator_path = arg("--emulator").ok_or("--emulator <path>")?;
    if arg("--phase").as_deref() == Some("rollover") {
        // Section 3 alone.
        let emulator = start_emulator(&emulator_path)?;
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let roll = rollover(&rt, &emulator.base)?;
        println!("rollover p99 {:.3}x, p50 {:.3}x", roll.p99_ratio, roll.p50_ratio);
        return Ok(());
    }
    if arg("--phase").as_deref() == Some("throughput") {
        // Section 1 alone, for iterating on the request path.
        let emulator = start_emulator(&emulator_path)?;
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let rows = section_one(&rt, &emulator.base)?;
        if let Some(file) = arg("--rows-out") {
            std::fs::write(file, rows.iter().map(AbbaRow::to_line).collect::<String>())?;
        }
        for r in &rows {
            println!(
                "{}: {:.3}x (control {:.3}x), B {:.0}/s",
                r.name,
                r.ratio(),
                r.control(),
                r.b()
            );
        }
        return Ok(());
    }
    let out_dir = std::path::PathBuf::from(arg("--out").ok_or("--out <dir>")?);
    std::fs::create_dir_all(&out_dir)?;
    let emulator = start_emulator(&emulator_path)?;
    let base = emulator.base.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    // The roll client's tokens live 1 s (herd at expiry, rollover).
    admin(&base, "token-lifetime", Some(serde_json::json!({"seconds": 1, "client": ROLL.0})))?;
    let (rows, pinning) = match pinned_throughput(&emulator_path, &out_dir)? {
        Pinned::Ran(rows) => (rows, Pinned::DESCRIBED.to_owned()),
        Pinned::Unavailable(why) => {
            eprintln!("loadbench: not pinned ({why})");
            let rows = section_one(&rt, &base)?;
            (
                rows,
                format!(
                    "Not pinned to cores ({why}): a row measures the scheduler's placement of client and server as well as the client."
                ),
            )
        }
    };
    eprintln!("loadbench: herds");
    let herd = herds(&rt, &base)?;
    eprintln!("loadbench: rollover");
    let roll = rollover(&rt, &base)?;
    eprintln!("loadbench: allocations and memory");
    let (core_allocs, sdk_allocs, raw_allocs) = allocations_in_child(&base)?;
    let [(sdk_rss, sdk_secs), (raw_rss, raw_secs)] = memory(&base)?;
    eprintln!("loadbench: instructions and cache misses per call (callgrind)");
    let counted = counted_per_call(&base, &out_dir)?;
    eprintln!("loadbench: fleet on Redis");
    let fleet = fleet(&rt, &base, &arg("--fleet-member").ok_or("--fleet-member <path>")?)?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "### 1. Authenticated GET throughput ({ROUNDS} interleaved rounds of {} ms, {ROUNDS_ONE_CALLER} for one caller: raw, SDK, SDK, raw and SDK, raw, raw, SDK in turn)\n",
        ROUND.as_millis()
    );
    let _ = writeln!(
        md,
        "Rates are medians (requests/s); ratios are medians of per-round ratios (a round's two SDK runs against its two raw runs; ABBA order cancels drift within a round, which raw-SDK-raw did not: it favoured the ends; ABBA and BAAB in turn give each side the round's first slot, which at one caller runs 1-3% slower than the others whoever is in it, in half the rounds).\n"
    );
    let _ = writeln!(md, "{pinning}\n");
    let _ = writeln!(md, "| client | SDK | raw | SDK / raw | raw / raw (control) |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for r in &rows {
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
    for (name, fast, slow) in &herd {
        let _ = writeln!(md, "| {name} | {fast} | {slow} |");
    }
    let _ = writeln!(
        md,
        "\n### 3. Latency across token rollover (8 concurrent callers, {ROLLOVER_ROUNDS} ABBA rounds of {} s windows: long-lived, 1 s, 1 s, long-lived)\n",
        ROLLOVER_WINDOW.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Latencies are medians over the windows; the ratios are medians of per-round ratios (a round's two 1 s windows against its two long-lived ones).\n"
    );
    let _ = writeln!(md, "| tokens | calls (last window) | p50 | p99 |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let _ = writeln!(
        md,
        "| 1 s, rolling over ({} refreshes in all windows) | {} | {:.0} µs | {:.0} µs |",
        roll.refreshes,
        roll.calls.0,
        roll.p50.0.as_secs_f64() * 1e6,
        roll.p99.0.as_secs_f64() * 1e6
    );
    let _ = writeln!(
        md,
        "| long-lived | {} | {:.0} µs | {:.0} µs |",
        roll.calls.1,
        roll.p50.1.as_secs_f64() * 1e6,
        roll.p99.1.as_secs_f64() * 1e6
    );
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
        "| request path, {}: Redis store / memory store ({ROUNDS} ABBA / BAAB rounds; memory / memory control {:.3}x) | **{:.3}x** ({:.0} vs {:.0} requests/s) |",
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
    std::fs::write(out_dir.join("load.md"), md)?;
    std::fs::write(out_dir.join("rollover.svg"), svg(&roll))?;
    drop(emulator);
    eprintln!("loadbench: done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AbbaRow;

    /// The pinned child hands its rows back as text: names (commas, colons and all) and every
    /// round's rates come back as they went.
    #[test]
    fn a_row_survives_the_trip_through_rows_out() {
        let row = AbbaRow {
            name: "async (reqwest), concurrency 32: SDK against oauth2-rs 5 + hand-written cache"
                .into(),
            rounds: vec![[48470.0, 49290.5, 50110.0, 47990.0], [10.0, 20.0, 30.0, 40.0]],
        };
        let back = AbbaRow::from_line(row.to_line().trim_end()).unwrap();
        assert_eq!(back.name, row.name);
        assert_eq!(back.rounds, row.rounds);
        assert!(AbbaRow::from_line("a row\t1,2,3").is_err());
        assert!(AbbaRow::from_line("a row\t1,2,x,4").is_err());
    }

    /// Rounds run ABBA and BAAB in turn, and each is kept as A's first run, B's two, A's
    /// second, so the ratio and the control read the same fields whichever order ran.
    #[test]
    fn rounds_alternate_and_are_kept_in_one_order() {
        for (index, order) in [(0, "ABBA"), (1, "BAAB"), (2, "ABBA"), (7, "BAAB")] {
            let mut ran = String::new();
            let (mut a, mut b) = (0.0, 10.0);
            let round = AbbaRow::round(index, |is_b| {
                ran.push(if is_b { 'B' } else { 'A' });
                let next = if is_b { &mut b } else { &mut a };
                *next += 1.0;
                *next
            });
            assert_eq!(ran, order);
            assert_eq!(round, [1.0, 11.0, 12.0, 2.0], "round {index}");
        }
    }
}
