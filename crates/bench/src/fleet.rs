//! Section 6: a fleet on one Redis store (a real `redis-server` on loopback): the request path
//! on the Redis store against the memory store, and token requests per token lifetime of 8
//! `fleet-member` processes.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use helloflex_core::ClientSecret;
use helloflex_testkit::RedisServer;

use crate::abba::{AbbaRow, ROUNDS_SAME_PATH};
use crate::clients::async_rate;
use crate::emulator::{admin, environment, reset, token_requests};
use crate::{DEMO, Result};

/// What the fleet section measured.
pub struct Fleet {
    /// Memory store (A) and Redis store (B), in rounds of `AbbaRow::round`.
    pub path: AbbaRow,
    /// Member processes.
    pub processes: usize,
    /// How long they ran.
    pub seconds: f64,
    /// Token lifetime, in seconds.
    pub lifetime: u64,
    /// Token requests fleet-wide.
    pub token_requests: u64,
    /// Tokens issued while the fleet's last one had over a quarter of its life left.
    pub early: u64,
    /// Calls the members saw fail.
    pub failed: u64,
}

/// Runs section 6 against the emulator at `base`, with `member` the `fleet-member` binary.
pub fn run(rt: &tokio::runtime::Runtime, base: &str, member: &str) -> Result<Fleet> {
    use helloflex_auth::{Key, KeyRing};
    let redis = RedisServer::start();
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
    for index in 0..ROUNDS_SAME_PATH {
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
