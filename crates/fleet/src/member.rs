//! What one fleet member does: build a client on the shared store (Redis or PostgreSQL), call the API from many tasks
//! (async, reqwest) or threads (blocking, ureq) until the time is up, then report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helloflex_auth::{
    ClientBuilder, Clock, Connector, KeyRing, ManagerOptions, SystemClock, Timeouts, TokenStore,
};
use helloflex_core::machines::saturating_add;
use helloflex_core::{ClientSecret, Environment, Error, InsecureLoopback};
use helloflex_fleet::{
    FailureSpan, KEYS_VARIABLE, MACHINE, Report, fleet_store, unix_ms, web_app_config,
};

type Failure = Box<dyn std::error::Error>;

/// The command line.
#[derive(Debug)]
pub struct Args {
    authorization_code: bool,
    emulator: String,
    /// The shared store's URL: `redis://...` or `postgres://...`.
    store: String,
    user: String,
    tasks: usize,
    seconds: f64,
    period: Duration,
    blocking: bool,
}

impl Args {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, Failure> {
        let mut parsed = Self {
            authorization_code: false,
            emulator: String::new(),
            store: String::new(),
            user: "fleet-user".into(),
            tasks: 100,
            seconds: 10.0,
            period: Duration::from_millis(300),
            blocking: false,
        };
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--grant" => parsed.authorization_code = value == "ac",
                "--emulator" => parsed.emulator = value,
                // `--redis` is the flag's older name (the benchmark passes it).
                "--store" | "--redis" => parsed.store = value,
                "--user" => parsed.user = value,
                "--tasks" => parsed.tasks = value.parse()?,
                "--seconds" => parsed.seconds = value.parse()?,
                "--period-ms" => parsed.period = Duration::from_millis(value.parse()?),
                "--flavour" => parsed.blocking = value == "blocking",
                other => return Err(format!("unknown flag {other}").into()),
            }
        }
        if parsed.emulator.is_empty() || parsed.store.is_empty() {
            return Err("--emulator and --store are required".into());
        }
        Ok(parsed)
    }
}

/// Counts what the callers saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// Each failed call: when it ended (wall clock, ms) and whether it was told to re-authorize.
    failed_at: Mutex<Vec<(u64, bool)>>,
    /// The failed call that ended last: when, and its error.
    latest: Mutex<Option<(u64, String)>>,
    /// When the latest failure not yet followed by a success ended (0: none).
    unserved_since: AtomicU64,
    /// When a call succeeded after a failure: the first success after each run of failures.
    served_again: Mutex<Vec<u64>>,
}

impl Tally {
    fn record(&self, outcome: Result<u16, Error>) {
        match outcome {
            Ok(200) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                // Only after a failure: the clock is read and a lock taken once per recovery.
                let since = self.unserved_since.load(Ordering::Relaxed);
                if since != 0 {
                    let at = unix_ms(SystemClock.wall());
                    if at >= since
                        && self
                            .unserved_since
                            .compare_exchange(since, 0, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        self.served_again.lock().unwrap_or_else(|e| e.into_inner()).push(at);
                    }
                }
            }
            other => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let reauthorize = matches!(&other, Err(e) if e.requires_reauthorization());
                let at = unix_ms(SystemClock.wall());
                self.unserved_since.fetch_max(at, Ordering::Relaxed);
                self.failed_at.lock().unwrap_or_else(|e| e.into_inner()).push((at, reauthorize));
                let text = match other {
                    Ok(status) => format!("status {status}"),
                    Err(error) => error.to_string(),
                };
                {
                    let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
                    if latest.as_ref().is_none_or(|(when, _)| *when <= at) {
                        *latest = Some((at, text.clone()));
                    }
                }
                let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                if failures.len() < 5 && !failures.contains(&text) {
                    failures.push(text);
                }
            }
        }
    }

    fn report(&self, last: Result<u16, Error>, blocking: bool) -> Report {
        let last = match last {
            Ok(200) => "ok".to_owned(),
            Err(e) if e.requires_reauthorization() => "reauthorize".to_owned(),
            Ok(_) | Err(_) => "error".to_owned(),
        };
        Report {
            pid: std::process::id(),
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failures: self.failures.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            last,
            failure_spans: FailureSpan::merge(
                self.failed_at.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                self.served_again.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            ),
            last_failure: self
                .latest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(_, text)| text.clone()),
            flavour: if blocking { "blocking" } else { "async" }.to_owned(),
        }
    }
}

/// Budgets for a test fleet with 2-second tokens: a claim lasts 4 s (a retry deadline of 1 s,
/// an attempt of 2 s, two store calls of 0.5 s), so a dead holder is taken over within seconds;
/// the store is checked every 300 ms (members are called all the time), so a set the store lost
/// is written back within a second and the grace after a restart can be 1.5 s.
fn options() -> ManagerOptions {
    let mut lifecycle = helloflex_core::LifecyclePolicy::default();
    lifecycle.reauthorization_recheck = Duration::from_millis(300);
    ManagerOptions::default()
        .with_lifecycle(lifecycle)
        .with_store_timeout(Duration::from_millis(500))
        .with_attempt_timeout(Duration::from_secs(2))
        .with_retry(helloflex_core::RetryPolicy::default().with_deadline(Duration::from_secs(1)))
        .with_store_check(Duration::from_millis(300))
        .with_restart_grace(Duration::from_millis(1500))
}

/// How long a member waits at exit for a token request in flight.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Runs the member and reports.
pub fn run(args: Args) -> Result<Report, Failure> {
    let keys = KeyRing::from_env(KEYS_VARIABLE)?;
    let store: Arc<dyn TokenStore> =
        fleet_store(&args.store, args.authorization_code, &args.user, keys)?;
    let environment = Environment::custom(&args.emulator, InsecureLoopback::Allow)?;
    let options = options();
    let tally = Arc::new(Tally::default());
    let until = saturating_add(SystemClock.now(), Duration::from_secs_f64(args.seconds));
    if args.blocking {
        let client = client_on_any(
            helloflex_transport_ureq::Ureq::default(),
            &args,
            &environment,
            &options,
            &store,
        )?;
        std::thread::scope(|scope| {
            for _ in 0..args.tasks {
                scope.spawn(|| {
                    while SystemClock.now() < until {
                        tally.record(client.get("news").send().map(|r| r.status().as_u16()));
                        std::thread::sleep(args.period);
                    }
                });
            }
        });
        let last = client.get("news").send().map(|r| r.status().as_u16());
        // A refresh still in flight is stored before the process exits, not lost with it.
        if !client.close(CLOSE_WITHIN) {
            return Err("a token request was still in flight at exit".into());
        }
        Ok(tally.report(last, true))
    } else {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        runtime.block_on(async {
            let client = client_on_any(
                helloflex_transport_reqwest::Reqwest::default(),
                &args,
                &environment,
                &options,
                &store,
            )?;
            let mut tasks = Vec::new();
            for _ in 0..args.tasks {
                let (client, tally) = (client.clone(), Arc::clone(&tally));
                tasks.push(tokio::spawn(async move {
                    while SystemClock.now() < until {
                        let outcome = client.get("news").send().await.map(|r| r.status().as_u16());
                        tally.record(outcome);
                        tokio::time::sleep(args.period).await;
                    }
                }));
            }
            for task in tasks {
                task.await?;
            }
            let last = client.get("news").send().await.map(|r| r.status().as_u16());
            if !client.close(CLOSE_WITHIN).await {
                return Err("a token request was still in flight at exit".into());
            }
            Ok(tally.report(last, false))
        })
    }
}

/// The one client, whichever flavour: the grant and the store are decided once.
fn client_on_any<C: Connector>(
    connector: C,
    args: &Args,
    environment: &Environment,
    options: &ManagerOptions,
    store: &Arc<dyn TokenStore>,
) -> Result<helloflex_auth::Client<C::Manager, C>, Failure> {
    let builder = ClientBuilder::new(connector)
        .environment(environment.clone())
        .token_options(options.clone())
        .timeouts(Timeouts::uniform(Duration::from_secs(1)));
    Ok(if args.authorization_code {
        builder.authorization_code(web_app_config(&args.emulator)?, Arc::clone(store)).build()?
    } else {
        builder
            .client_credentials(MACHINE.0, ClientSecret::new(MACHINE.1))
            .shared_token_store(Arc::clone(store))
            .build()?
    })
}
