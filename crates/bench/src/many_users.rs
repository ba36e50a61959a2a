//! Section 9: many signed-in users. A web service holds one `for_user` client per signed-in
//! user over one shared client; this measures, in a child process of its own (so its memory is
//! this section's alone):
//!
//! - resident memory per idle signed-in user, beyond what the application's own stores hold
//!   and beyond the token bytes the client keeps;
//! - what runs while they are idle: threads, tokio tasks and CPU time over two idle seconds,
//!   beside the same process before any user existed;
//! - the token requests per second when every user's token was issued within one minute and
//!   every user calls once a second: proactive refresh must spread them.
//!
//! No network: a counting transport answers token requests at once, and a [`ManualClock`]
//! stands for an hour of time, so the refresh window is reached in seconds. Every figure comes
//! from the SDK's real managers; only the server and the clock are stand-ins.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helloflex_auth::{
    AsyncTransport, ClientBuilder, Clock, ManualClock, MemoryStore, OwnAsync, Record, Request,
    Response, StoredTokens, TokenStore,
};
use helloflex_core::{
    AccessToken, AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment,
    InsecureLoopback, RefreshToken, TokenSet, TransportError,
};

use crate::Result;

/// The users a whole run signs in.
pub const USERS: usize = 100_000;
/// The users' token lifetime (as the emulator's Flextell tokens: one hour).
const LIFETIME: Duration = Duration::from_secs(3600);
/// The span over which the users' tokens were issued.
const ISSUED_WITHIN: Duration = Duration::from_secs(60);
/// The virtual seconds simulated, from this long after the last issue to the last expiry: the
/// earliest refresh is at most 5 minutes (cap) early.
const FROM: u64 = 3600 - 60 - 400;
const UNTIL: u64 = 3600 + 5;

/// What section 9 measured.
#[derive(Debug, Default, Clone)]
pub struct ManyUsers {
    /// Users signed in.
    pub users: usize,
    /// Resident bytes per user of the application's own stores (a `MemoryStore` each, with
    /// its record), before any client.
    pub store_bytes: f64,
    /// Resident bytes per user the `for_user` clients added, once each has served a call.
    pub client_bytes: f64,
    /// The token bytes each client keeps (its cached access and refresh token).
    pub token_bytes: f64,
    /// Threads and alive tokio tasks before any user, then with every user idle.
    pub threads: (u64, u64),
    /// See `threads`.
    pub tasks: (u64, u64),
    /// CPU milliseconds the process used over two idle seconds with every user signed in.
    pub idle_cpu_ms: f64,
    /// Token requests per virtual second, from the first to the last second that had any.
    pub per_second: Vec<u64>,
    /// The virtual second (after the first issue) of `per_second[0]`.
    pub first_second: u64,
}

impl ManyUsers {
    /// Token requests in all.
    pub fn refreshes(&self) -> u64 {
        self.per_second.iter().sum()
    }
    /// The busiest second's token requests.
    pub fn peak(&self) -> u64 {
        self.per_second.iter().copied().max().unwrap_or(0)
    }
    /// Token requests per second over the span that had any.
    pub fn average(&self) -> f64 {
        self.refreshes() as f64 / self.per_second.len().max(1) as f64
    }
    /// Bytes per user the clients hold beyond their token bytes.
    pub fn beyond_tokens(&self) -> f64 {
        self.client_bytes - self.token_bytes
    }
}

/// A server stand-in: every token request gets a new rotated set at once (counted by virtual
/// second); an API call gets `[]`.
#[derive(Debug)]
struct CountingServer {
    clock: Arc<ManualClock>,
    start: Instant,
    issued: AtomicU64,
    per_second: Mutex<BTreeMap<u64, u64>>,
}

#[async_trait::async_trait]
impl AsyncTransport for CountingServer {
    async fn send(&self, request: Request) -> std::result::Result<Response, TransportError> {
        if request.uri().path() != "/oauth2/token" {
            return Ok(http::Response::new(b"[]".to_vec()));
        }
        let second = self.clock.now().saturating_duration_since(self.start).as_secs();
        if let Ok(mut counts) = self.per_second.lock() {
            *counts.entry(second).or_default() += 1;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            r#"{{"access_token":"{}","refresh_token":"{}","token_type":"Bearer","expires_in":{}}}"#,
            access_token(n),
            refresh_token(n),
            LIFETIME.as_secs()
        );
        Ok(http::Response::new(body.into_bytes()))
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

// Tokens as long as the emulator's (43 characters of base64url, 256 bits).
fn access_token(n: u64) -> String {
    format!("at-{n:040}")
}
fn refresh_token(n: u64) -> String {
    format!("rt-{n:040}")
}

/// This process's resident bytes.
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * 4096
}

/// This process's threads.
fn threads() -> u64 {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count() as u64)
}

/// This process's CPU time (user + system), in clock ticks (100 a second on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses: utime is the 12th
    // after it, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// The phase run in the child (`loadbench --phase many-users --users N`): prints the figures
/// as one line of JSON.
pub fn phase(users: usize) -> Result<()> {
    let rt = crate::runtime()?;
    let measured = rt.block_on(measure(&rt, users))?;
    let json = serde_json::json!({
        "users": measured.users,
        "store_bytes": measured.store_bytes,
        "client_bytes": measured.client_bytes,
        "token_bytes": measured.token_bytes,
        "threads": [measured.threads.0, measured.threads.1],
        "tasks": [measured.tasks.0, measured.tasks.1],
        "idle_cpu_ms": measured.idle_cpu_ms,
        "per_second": measured.per_second,
        "first_second": measured.first_second,
    });
    println!("{json}");
    Ok(())
}

async fn measure(rt: &tokio::runtime::Runtime, users: usize) -> Result<ManyUsers> {
    let clock = Arc::new(ManualClock::new());
    let start = clock.now();
    let server = Arc::new(CountingServer {
        clock: clock.clone(),
        start,
        issued: AtomicU64::new(0),
        per_second: Mutex::default(),
    });
    let endpoint = |path: &str| {
        Endpoint::parse(&format!("https://auth.example.test{path}"), InsecureLoopback::Deny)
    };
    let config = AuthorizationCodeConfig::new(
        ClientIdentity::confidential("web-app", ClientSecret::new("web-secret")),
        endpoint("/oauth2/authorize")?,
        endpoint("/oauth2/token")?,
        endpoint("/callback")?,
    );
    let service = ClientBuilder::new(OwnAsync(server.clone(), None))
        .environment(Environment::custom("https://api.example.test", InsecureLoopback::Deny)?)
        .authorization_code(config, Arc::new(MemoryStore::new()))
        .clock(clock.clone())
        .build()?;
    let threads_before = threads();
    let tasks_before = rt.metrics().num_alive_tasks() as u64;

    // The application's stores: each user's record, issued within the last minute.
    let resident_before = resident_bytes();
    let (now, wall) = (clock.now(), clock.wall());
    let mut stores: Vec<Arc<MemoryStore>> = Vec::with_capacity(users);
    for i in 0..users {
        let issued = now - ISSUED_WITHIN.mul_f64(i as f64 / users as f64);
        let set = TokenSet::new(
            AccessToken::new(access_token(u64::MAX - i as u64)),
            Some(RefreshToken::new(refresh_token(u64::MAX - i as u64))),
            issued,
            LIFETIME,
            None,
        );
        let store = Arc::new(MemoryStore::new());
        store.swap(
            Record::NOTHING_STORED,
            &Record::new(StoredTokens::from_set_at(&set, now, wall), 1),
        )?;
        stores.push(store);
    }
    let resident_stores = resident_bytes();

    // One client per user, each having served one call (its token loaded and cached).
    let mut clients = Vec::with_capacity(users);
    for store in &stores {
        let client = service.for_user(store.clone())?;
        client.token().await?;
        clients.push(client);
    }
    let resident_clients = resident_bytes();

    // Idle: what runs while nobody calls.
    let ticks = cpu_ticks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cpu_ms = (cpu_ticks() - ticks) as f64 * 10.0;
    let (threads_idle, tasks_idle) = (threads(), rt.metrics().num_alive_tasks() as u64);

    // Every user calls once a virtual second across the refresh window.
    clock.advance(Duration::from_secs(FROM));
    for _ in FROM..UNTIL {
        clock.advance(Duration::from_secs(1));
        for client in &clients {
            client.token().await?;
        }
        // Background refreshes started this second finish before the clock moves on.
        let waiting = Instant::now();
        while rt.metrics().num_alive_tasks() as u64 > tasks_before
            && waiting.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let counts = server.per_second.lock().map(|c| c.clone()).unwrap_or_default();
    let first_second = counts.keys().next().copied().unwrap_or(0);
    let last_second = counts.keys().next_back().copied().unwrap_or(0);
    let per_second: Vec<u64> =
        (first_second..=last_second).map(|s| counts.get(&s).copied().unwrap_or(0)).collect();

    let users_f = users.max(1) as f64;
    let token_bytes = (access_token(0).len() + refresh_token(0).len()) as f64;
    drop(clients);
    Ok(ManyUsers {
        users,
        store_bytes: resident_stores.saturating_sub(resident_before) as f64 / users_f,
        client_bytes: resident_clients.saturating_sub(resident_stores) as f64 / users_f,
        token_bytes,
        threads: (threads_before, threads_idle),
        tasks: (tasks_before, tasks_idle),
        idle_cpu_ms,
        per_second,
        first_second,
    })
}

/// Runs [`phase`] in a child process (this binary, `--phase many-users`).
pub fn run(users: usize) -> Result<ManyUsers> {
    let exe = std::env::current_exe()?;
    let output = Command::new(&exe)
        .args(["--phase", "many-users", "--users", &users.to_string()])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "many-users phase failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let f = |k: &str| json[k].as_f64().unwrap_or(0.0);
    let pair = |k: &str| (json[k][0].as_u64().unwrap_or(0), json[k][1].as_u64().unwrap_or(0));
    Ok(ManyUsers {
        users: json["users"].as_u64().unwrap_or(0) as usize,
        store_bytes: f("store_bytes"),
        client_bytes: f("client_bytes"),
        token_bytes: f("token_bytes"),
        threads: pair("threads"),
        tasks: pair("tasks"),
        idle_cpu_ms: f("idle_cpu_ms"),
        per_second: json["per_second"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default(),
        first_second: json["first_second"].as_u64().unwrap_or(0),
    })
}

/// Section 9's Markdown: the figures, and the refresh spread as a bar chart in 10-second bins.
pub fn markdown(m: &ManyUsers) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} users signed in over one shared async client (`for_user`, each with its own `MemoryStore`), each having served one call; tokens live 1 h and were issued within one minute.\n",
        m.users
    );
    let _ = writeln!(md, "| measure | value |\n|---|---:|");
    let rows = [
        (
            "resident memory per idle user, the clients (beyond the stores)",
            format!("{:.0} B", m.client_bytes),
        ),
        ("of which token bytes (cached access + refresh token)", format!("{:.0} B", m.token_bytes)),
        (
            "**per user beyond the token bytes** (target: <= 2,048 B)",
            format!("**{:.0} B**", m.beyond_tokens()),
        ),
        (
            "the application's own store per user (a `MemoryStore` with its record)",
            format!("{:.0} B", m.store_bytes),
        ),
        ("threads: no users / all users idle", format!("{} / {}", m.threads.0, m.threads.1)),
        (
            "tokio tasks alive: no users / all users idle (target: no more)",
            format!("{} / {}", m.tasks.0, m.tasks.1),
        ),
        ("CPU over 2 idle seconds, all users signed in", format!("{:.0} ms", m.idle_cpu_ms)),
        ("token requests in the refresh window (one per user expected)", m.refreshes().to_string()),
        (
            "peak second / average second (target: <= 2x)",
            format!(
                "{} / {:.0} = **{:.2}x**",
                m.peak(),
                m.average(),
                m.peak() as f64 / m.average().max(1.0)
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(md, "| {name} | {value} |");
    }
    let _ = writeln!(
        md,
        "\nToken requests per second while every user calls once a second (virtual time, seconds after the first token was issued; each bar a 10-second bin's busiest second):\n\n```text"
    );
    let peak = m.peak().max(1);
    for (i, bin) in m.per_second.chunks(10).enumerate() {
        let busiest = bin.iter().copied().max().unwrap_or(0);
        let bar = "#".repeat((busiest * 50).div_ceil(peak) as usize);
        let _ = writeln!(md, "{:>5} s {:>6}/s {bar}", m.first_second + 10 * i as u64, busiest);
    }
    let _ = writeln!(md, "```");
    md
}
