//! The clients a row compares and the loops that time them: the SDK beside raw reqwest and raw
//! ureq sending the SDK's token in a fixed header, paired per flavour, and the calls per second
//! of one slot at a given concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use helloflex_core::ClientSecret;

use crate::abba::ROUND;
use crate::emulator::environment;
use crate::{DEMO, Result};

/// Calls/s of `call` on `concurrency` tasks over one slot ([`ROUND`]).
pub async fn async_rate<F, Fut>(concurrency: usize, call: F) -> f64
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
pub fn blocking_rate<F>(threads: usize, name: &str, call: F) -> f64
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

/// Raw reqwest configured as the SDK's reqwest transport is (no redirects, pool, timeouts).
pub fn raw_reqwest() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(sdk_user_agent("reqwest"))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Raw ureq configured as the SDK's ureq transport is.
pub fn raw_ureq() -> ureq::Agent {
    raw_ureq_config().build().new_agent()
}

/// The settings of [`raw_ureq`], for a caller to add to (TLS roots).
pub fn raw_ureq_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .user_agent(sdk_user_agent("ureq"))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(64)
        .max_idle_connections_per_host(32)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(30)))
}

/// The two async clients of a throughput row: the SDK, and raw reqwest sending the SDK's
/// token in a fixed header.
#[derive(Clone)]
pub struct AsyncPair {
    /// The SDK's async client.
    pub sdk: helloflex_transport_reqwest::Client,
    /// Raw reqwest.
    pub raw: reqwest::Client,
    /// The URL both call.
    pub url: String,
    /// The SDK's token, as an `Authorization` value.
    pub bearer: String,
}

impl AsyncPair {
    /// Both clients against the emulator at `base`, the SDK's token fetched.
    pub fn new(rt: &tokio::runtime::Runtime, base: &str) -> Result<Self> {
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
    pub fn rate(&self, rt: &tokio::runtime::Runtime, concurrency: usize, sdk: bool) -> f64 {
        let pair = self.clone();
        rt.block_on(async_rate(concurrency, move || {
            let pair = pair.clone();
            async move { pair.once(sdk).await }
        }))
    }

    /// One call through the SDK (`sdk`) or raw reqwest; whether it succeeded.
    pub async fn once(&self, sdk: bool) -> bool {
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
pub struct BlockingPair {
    /// The SDK's blocking client.
    pub sdk: helloflex_transport_ureq::Client,
    /// Raw ureq.
    pub raw: ureq::Agent,
    /// The URL both call.
    pub url: String,
    /// The SDK's token, as an `Authorization` value.
    pub bearer: String,
}

impl BlockingPair {
    /// Both clients against the emulator at `base`, the SDK's token fetched.
    pub fn new(base: &str) -> Result<Self> {
        let sdk = helloflex_transport_ureq::Client::builder()
            .environment(environment(base)?)
            .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
            .build()?;
        let bearer = format!("Bearer {}", sdk.token()?.access_token().expose_secret());
        Ok(Self { sdk, raw: raw_ureq(), url: format!("{base}/news"), bearer })
    }

    /// One call through the SDK (`sdk`) or raw ureq; whether it succeeded.
    pub fn once(&self, sdk: bool) -> bool {
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
    pub fn rate(&self, threads: usize, sdk: bool) -> f64 {
        let pair = self.clone();
        let name = if sdk { "sdk-worker" } else { "raw-worker" };
        blocking_rate(threads, name, move || pair.once(sdk))
    }
}

/// The GET a transport-alone slot sends: `url` with the token in a fixed header, built per
/// call as a user of the transport would.
pub fn fixed_request(url: &str, bearer: &str) -> http::Result<http::Request<Vec<u8>>> {
    http::Request::builder()
        .uri(url)
        .header("authorization", bearer)
        .header("accept", "application/json")
        .body(Vec::new())
}
