//! A fleet of real OS processes sharing one token lifecycle through a real `redis-server`,
//! against the emulator with 2-second tokens: 8 members (6 async over reqwest, 2 blocking over
//! ureq) x 100 concurrent tasks for 6 token lifetimes, for both grants; then the same with the
//! lease holder killed (`kill -9`) in the middle of a token request.
//!
//! Figures come from the emulator's counters and are printed (`--nocapture` shows them):
//! token requests per lifetime fleet-wide, refresh-token reuse events, calls failed.

#[path = "../../store-redis/tests/support/redis_server.rs"]
mod redis_server;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use helloflex_auth::{Clock, Key, KeyRing, SystemClock, TokenStore};
use helloflex_core::{Environment, InsecureLoopback};
use helloflex_emulator::{EmulatorConfig, Fault, FaultKind};
use helloflex_fleet::{
    KEYS_VARIABLE, MACHINE, REDIRECT_URI, Report, WEB_APP, fleet_store, web_app_config,
};
use redis_server::RedisServer;

const MEMBERS: usize = 8;
const BLOCKING_MEMBERS: usize = 2;
const TASKS: usize = 100;
const LIFETIME: Duration = Duration::from_secs(2);
const LIFETIMES: u32 = 6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Grant {
    ClientCredentials,
    AuthorizationCode,
}

impl Grant {
    fn flag(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "cc",
            Grant::AuthorizationCode => "ac",
        }
    }
    fn client(self) -> &'static str {
        match self {
            Grant::ClientCredentials => MACHINE.0,
            Grant::AuthorizationCode => WEB_APP.0,
        }
    }
    /// The grant type of the requests that keep the fleet's token fresh.
    fn renewing_grant_type(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode => "refresh_token",
        }
    }
    fn is_code(self) -> bool {
        self == Grant::AuthorizationCode
    }
}

struct Outcome {
    grant: Grant,
    reports: Vec<Report>,
    killed: Option<u32>,
    token_requests: u64,
    reuse: u64,
    /// Tokens fetched while the fleet's last one had more than a quarter of its life left.
    early: u64,
    /// API calls refused for their token, by cause.
    rejected: std::collections::BTreeMap<String, u64>,
    seconds: f64,
}

impl Outcome {
    /// Renewals per token lifetime, fleet-wide: the token requests after the first token (a
    /// client-credentials fleet fetches its first one in the run; a user's came from the
    /// sign-in before it). Each token is renewed in the last 10-15% of its life, so one renewal
    /// per lifetime reads 1.11-1.18; a late call refused near expiry may add one.
    fn renewals_per_lifetime(&self) -> f64 {
        let first = u64::from(self.grant == Grant::ClientCredentials);
        self.token_requests.saturating_sub(first) as f64 / (self.seconds / LIFETIME.as_secs_f64())
    }

    /// The fleet fetched at most once while its token was still good: a lease that lapsed
    /// under a starved scheduler can cause one such fetch; a herd, or a member that does not
    /// see the others' token, causes one or more per lifetime.
    fn assert_no_duplicate_fetches(&self) {
        assert!(self.early <= 1, "{} tokens fetched while the fleet's was still good", self.early);
    }
    fn calls(&self) -> (u64, u64) {
        self.reports.iter().fold((0, 0), |(ok, failed), r| (ok + r.ok, failed + r.failed))
    }
    fn print(&self, title: &str) {
        let (ok, failed) = self.calls();
        println!(
            "fleet {title}: {MEMBERS} processes x {TASKS} tasks, {:.1} s of {}-s tokens: \
             {} token requests, {:.2} renewals per lifetime fleet-wide, {} early; {} refresh-token reuse \
             events; calls refused for their token: {:?}; {ok} calls ok, {failed} failed; killed: {:?}; last calls: {:?}",
            self.seconds,
            LIFETIME.as_secs(),
            self.token_requests,
            self.renewals_per_lifetime(),
            self.early,
            self.reuse,
            self.rejected,
            self.killed,
            self.reports.iter().map(|r| r.last.as_str()).collect::<Vec<_>>(),
        );
        for report in self.reports.iter().filter(|r| !r.failures.is_empty()) {
            println!("  member {} failures: {:?}", report.pid, report.failures);
        }
    }
}

/// Signs the fleet's user in once (the code exchange), storing the tokens in Redis.
fn authorize(emulator: &helloflex_emulator::Emulator, redis: &RedisServer, keys: KeyRing) {
    let store: Arc<dyn TokenStore> =
        Arc::new(fleet_store(&redis.url(), true, "fleet-user", keys).unwrap());
    let client = helloflex_transport_ureq::Client::builder()
        .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow).unwrap())
        .authorization_code(web_app_config(emulator.base_url()).unwrap(), store)
        .build()
        .unwrap();
    let (url, pending) = client.start_authorization().unwrap();
    let callback = emulator.approve(&url).unwrap();
    assert!(callback.starts_with(REDIRECT_URI));
    client.complete_authorization(&pending, &callback).unwrap();
}

fn spawn_member(
    grant: Grant,
    emulator: &str,
    redis: &str,
    keys: &str,
    seconds: f64,
    blocking: bool,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fleet-member"))
        .args(["--grant", grant.flag(), "--emulator", emulator, "--redis", redis])
        .args(["--tasks", &TASKS.to_string(), "--seconds", &seconds.to_string()])
        .args(["--period-ms", "300"])
        .args(["--flavour", if blocking { "blocking" } else { "async" }])
        .env(KEYS_VARIABLE, keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until one process has held the claim for 300 ms (it is in its slow token request,
/// not just re-reading), and returns its pid.
fn steady_lease_holder(redis: &RedisServer, grant: Grant, pids: &[u32], keys: KeyRing) -> u32 {
    let store = fleet_store(&redis.url(), grant.is_code(), "fleet-user", keys).unwrap();
    let deadline = SystemClock.now() + Duration::from_secs(15);
    let mut seen: Option<(u32, Instant)> = None;
    while SystemClock.now() < deadline {
        let holder = store.claim_holder().unwrap();
        let pid = holder.and_then(|h| h.split('.').next().and_then(|p| p.parse::<u32>().ok()));
        match (pid, seen) {
            (Some(pid), Some((held, since))) if pid == held => {
                if SystemClock.now().duration_since(since) > Duration::from_millis(300)
                    && pids.contains(&pid)
                {
                    return pid;
                }
            }
            (Some(pid), _) => seen = Some((pid, SystemClock.now())),
            (None, _) => seen = None,
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no member held the lease through a slow token request");
}

fn run_fleet(grant: Grant, kill: Option<FaultKind>) -> Outcome {
    let emulator = helloflex_emulator::start(EmulatorConfig::default()).unwrap();
    emulator.set_token_lifetime(LIFETIME, Some(grant.client()));
    let redis = RedisServer::start();
    let key = Key::generate("fleet").unwrap();
    let keys_text = key.to_text().to_string();
    let keys = KeyRing::new(key);
    if grant.is_code() {
        authorize(&emulator, &redis, keys.clone());
    }
    emulator.reset_counters();
    let seconds = (LIFETIME * LIFETIMES).as_secs_f64();
    let started = SystemClock.now();
    let mut members: Vec<Child> = (0..MEMBERS)
        .map(|i| {
            spawn_member(
                grant,
                emulator.base_url(),
                &redis.url(),
                &keys_text,
                seconds,
                i < BLOCKING_MEMBERS,
            )
        })
        .collect();
    let mut killed = None;
    if let Some(slow) = kill {
        // Let the fleet settle, then make the next token request slow and kill whoever makes it.
        std::thread::sleep(LIFETIME + LIFETIME / 2);
        emulator.add_fault(Fault::on_path("/oauth2/token", slow).times(1));
        let pids: Vec<u32> = members.iter().map(Child::id).collect();
        let pid = steady_lease_holder(&redis, grant, &pids, keys.clone());
        let member = members.iter_mut().find(|m| m.id() == pid).unwrap();
        member.kill().unwrap(); // SIGKILL: no unwinding, no release, no renewal
        member.wait().unwrap();
        killed = Some(pid);
    }
    let reports = members
        .into_iter()
        .filter(|m| Some(m.id()) != killed)
        .map(|m| {
            let output = m.wait_with_output().unwrap();
            assert!(output.status.success(), "a member failed: {output:?}");
            serde_json::from_slice::<Report>(&output.stdout).unwrap()
        })
        .collect();
    let counters = emulator.counters();
    Outcome {
        grant,
        reports,
        killed,
        token_requests: counters.token_requests_for_grant(grant.renewing_grant_type()),
        reuse: counters.refresh_token_reuse,
        early: counters.early_tokens,
        rejected: counters.rejected_tokens.clone(),
        seconds: SystemClock.now().duration_since(started).as_secs_f64(),
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_fleet_makes_one_client_credentials_request_per_lifetime() {
    let _serial = serial();
    let outcome = run_fleet(Grant::ClientCredentials, None);
    outcome.print("client credentials");
    assert_eq!(outcome.calls().1, 0, "no call failed");
    outcome.assert_no_duplicate_fetches();
    assert!(outcome.renewals_per_lifetime() <= 1.3, "one token request per lifetime fleet-wide");
}

#[test]
fn a_fleet_refreshes_one_rotating_user_token_once_per_lifetime_without_reuse() {
    let _serial = serial();
    let outcome = run_fleet(Grant::AuthorizationCode, None);
    outcome.print("authorization code");
    assert_eq!(outcome.calls().1, 0, "no call failed");
    assert_eq!(outcome.reuse, 0, "no refresh token presented twice");
    outcome.assert_no_duplicate_fetches();
    assert!(outcome.renewals_per_lifetime() <= 1.3, "one refresh per lifetime fleet-wide");
}

/// After `kill -9` of the holder mid-request, the survivors agree: all still served (client
/// credentials: another member fetches once the lease lapses), or, for a rotating refresh token
/// the dead holder may have spent, all told to re-authorize: never split between families.
fn the_fleet_survives_its_lease_holder_killed(grant: Grant, slow: FaultKind) {
    let outcome = run_fleet(grant, Some(slow.clone()));
    outcome.print(&format!("{grant:?}, lease holder killed during {slow:?}"));
    assert!(outcome.killed.is_some());
    assert_eq!(outcome.reports.len(), MEMBERS - 1);
    let lasts: Vec<&str> = outcome.reports.iter().map(|r| r.last.as_str()).collect();
    assert!(lasts.iter().all(|l| *l == lasts[0]), "the survivors disagree: {lasts:?}");
    assert!(outcome.reuse <= 1, "at most the dead holder's token presented again");
    match (grant, lasts[0]) {
        (Grant::ClientCredentials, "ok") => {
            assert_eq!(outcome.calls().1, 0, "every call of the survivors was served")
        }
        // The dead holder's claim is waited out for its whole budget (4 s here, longer than a
        // 2-s token): calls fail meanwhile, typed, then the fleet carries on, nothing reused.
        (Grant::AuthorizationCode, "ok") => {
            assert_eq!(outcome.reuse, 0);
        }
        // Told to re-authorize, or (while the dead holder's claim was waited out) that another
        // holder was still refreshing: typed, nothing else.
        (Grant::AuthorizationCode, "reauthorize") => {
            assert!(
                outcome
                    .reports
                    .iter()
                    .flat_map(|r| &r.failures)
                    .all(|f| f.contains("authoriz") || f.contains("still refreshing")),
                "{:?}",
                outcome.reports.iter().map(|r| &r.failures).collect::<Vec<_>>()
            );
        }
        (grant, last) => panic!("{grant:?} ended with {last}"),
    }
}

#[test]
fn a_client_credentials_fleet_survives_its_lease_holder_killed() {
    let _serial = serial();
    the_fleet_survives_its_lease_holder_killed(Grant::ClientCredentials, before_answering());
}

/// The server waits before it acts: the holder dies before the refresh token is spent.
fn before_answering() -> FaultKind {
    FaultKind::Latency { ms: 900 }
}

#[test]
fn a_user_token_fleet_carries_on_when_its_holder_dies_before_the_server_acts() {
    let _serial = serial();
    the_fleet_survives_its_lease_holder_killed(Grant::AuthorizationCode, before_answering());
}

/// The server rotates at once and drips its answer: the holder dies holding the only copy of
/// the new set, its refresh token spent. The next holder's refresh is a reuse: the server
/// revokes the family, and every member ends told to re-authorize (one outcome, typed).
#[test]
fn a_user_token_fleet_ends_whole_when_its_holder_dies_after_the_server_rotated() {
    let _serial = serial();
    the_fleet_survives_its_lease_holder_killed(
        Grant::AuthorizationCode,
        FaultKind::SlowDrip { ms_per_byte: 15 },
    );
}

/// Redis down: a client with a valid token keeps calling; a fetch waits the store timeout and
/// fails typed (never an unleased fetch); Redis back: the next call works, nothing lost.
#[test]
fn redis_down_keeps_valid_tokens_working_and_fails_fetches_typed() {
    let _serial = serial();
    let emulator = helloflex_emulator::start(EmulatorConfig::default()).unwrap();
    emulator.set_token_lifetime(LIFETIME, Some(MACHINE.0));
    let mut redis = RedisServer::start();
    let keys = KeyRing::new(Key::generate("k").unwrap());
    let store = fleet_store(&redis.url(), false, "", keys).unwrap();
    let client = helloflex_transport_ureq::Client::builder()
        .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow).unwrap())
        .client_credentials(MACHINE.0, helloflex_core::ClientSecret::new(MACHINE.1))
        .shared_token_store(Arc::new(store))
        .token_options(
            helloflex_auth::ManagerOptions::default().with_store_timeout(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    assert_eq!(client.get("news").send().unwrap().status(), 200);
    redis.stop();
    for _ in 0..5 {
        assert_eq!(client.get("news").send().unwrap().status(), 200, "the valid token serves");
    }
    std::thread::sleep(LIFETIME);
    let error = client.get("news").send().unwrap_err();
    assert!(matches!(error, helloflex_core::Error::Store(_)), "{error:?}");
    assert_eq!(
        emulator.counters().token_requests_for_grant("client_credentials"),
        1,
        "no unleased fetch"
    );
    redis.restart();
    std::thread::sleep(Duration::from_millis(1100)); // the failure backoff
    assert_eq!(client.get("news").send().unwrap().status(), 200);
}
