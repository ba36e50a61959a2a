//! One behaviour suite, run over every transport (ureq, reqwest, and a user-written hyper
//! transport) against the emulator on loopback. Each scenario is written once, generic over a
//! [`Harness`]; the `suite!` macro instantiates it per transport.

#[path = "../../examples/examples/custom_transport.rs"]
#[allow(dead_code, unreachable_pub)]
mod custom_transport;

use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::{
    AsyncTokenManager, BlockingTransport, ClientBuilder, Clock, Connector, ManagerOptions,
    MemoryStore, OwnAsync, SystemClock, Timeouts, TokenStore,
};
use helloflex_core::{
    ApiErrorKind, ApiRequest, ApiResponse, AuthorizationCodeConfig, CallbackError, ClientIdentity,
    ClientSecret, Endpoint, Environment, Error, InsecureLoopback, PendingAuthorization,
    ProtocolError, RetryPolicy, TransportErrorKind, UnauthorizedCause,
};
use helloflex_emulator::{
    DEMO_CLIENT, Emulator, EmulatorConfig, Fault, FaultKind, LIMITED_CLIENT, WEB_APP,
};
use serde_json::{Value, json};

/// How a scenario wants its client.
#[derive(Clone)]
struct Setup {
    client: (&'static str, &'static str),
    retry: RetryPolicy,
    timeout: Duration,
    /// The token manager's options (its attempt timeout is the client's, from `timeout`).
    token_options: ManagerOptions,
    body_limit: Option<usize>,
    /// The API somewhere else than the emulator.
    base: Option<&'static str>,
}

impl Setup {
    fn environment(&self, emulator: &Emulator) -> Environment {
        match self.base {
            Some(base) => Environment::custom(base, InsecureLoopback::Deny).unwrap(),
            None => environment(emulator),
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            client: DEMO_CLIENT,
            retry: RetryPolicy::default()
                .with_backoff(Duration::from_millis(10), Duration::from_millis(50)),
            timeout: Duration::from_secs(10),
            token_options: ManagerOptions::default(),
            body_limit: None,
            base: None,
        }
    }
}

/// A client over one transport, driven synchronously so every scenario reads the same.
trait Harness: Sized {
    fn build(emulator: &Emulator, setup: Setup) -> Self;
    /// A client for user tokens (Flextell, authorization-code grant) kept in `store`.
    fn build_user(
        emulator: &Emulator,
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    ) -> Self;
    fn start_authorization(&self) -> (String, PendingAuthorization);
    fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<(), Error>;
    fn send(&self, request: ApiRequest) -> Result<ApiResponse, Error>;
    /// `n` concurrent callers (threads or tasks) each asking for a token.
    fn herd(&self, n: usize) -> Vec<Result<String, Error>>;
    /// `workers` concurrent callers making `calls` GETs of `path` each; the errors they saw.
    fn load(&self, workers: usize, calls: usize, path: &'static str) -> Vec<Error>;
    /// The client's `close(within)`: `true` when no token request was left in flight.
    fn close(&self, within: Duration) -> bool;
}

fn environment(emulator: &Emulator) -> Environment {
    Environment::custom(emulator.base_url(), InsecureLoopback::Allow).unwrap()
}

struct Ureq(helloflex_transport_ureq::Client);

impl Harness for Ureq {
    fn build(emulator: &Emulator, setup: Setup) -> Self {
        let mut builder = helloflex_transport_ureq::Client::builder()
            .environment(setup.environment(emulator))
            .client_credentials(setup.client.0, ClientSecret::new(setup.client.1))
            .retry_policy(setup.retry)
            .token_options(setup.token_options)
            .timeouts(helloflex_transport_ureq::Timeouts::uniform(setup.timeout));
        if let Some(limit) = setup.body_limit {
            builder = builder.body_limit(limit);
        }
        Self(builder.build().unwrap())
    }
    fn build_user(
        emulator: &Emulator,
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        let builder = helloflex_transport_ureq::Client::builder()
            .environment(environment(emulator))
            .authorization_code(config, store);
        Self(builder.build().unwrap())
    }
    fn start_authorization(&self) -> (String, PendingAuthorization) {
        self.0.start_authorization().unwrap()
    }
    fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<(), Error> {
        self.0.complete_authorization(pending, callback).map(drop)
    }
    fn send(&self, request: ApiRequest) -> Result<ApiResponse, Error> {
        self.0.request(request).send()
    }
    fn close(&self, within: Duration) -> bool {
        self.0.close(within)
    }
    fn herd(&self, n: usize) -> Vec<Result<String, Error>> {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let client = self.0.clone();
                std::thread::spawn(move || {
                    client.token().map(|t| t.access_token().expose_secret().to_owned())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
    fn load(&self, workers: usize, calls: usize, path: &'static str) -> Vec<Error> {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let client = self.0.clone();
                std::thread::spawn(move || {
                    (0..calls).filter_map(|_| client.get(path).send().err()).collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    }
}

/// Runs `n` tasks made by `task` on `rt` at once and collects their outputs.
fn spawn_all<T, Fut>(rt: &tokio::runtime::Runtime, n: usize, task: impl Fn() -> Fut) -> Vec<T>
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| rt.spawn(task())).collect();
    rt.block_on(async {
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

/// `calls` sequential calls, keeping the errors.
async fn errors_of<R, F: std::future::Future<Output = Result<R, Error>>>(
    calls: usize,
    call: impl Fn() -> F,
) -> Vec<Error> {
    let mut errors = Vec::new();
    for _ in 0..calls {
        if let Err(e) = call().await {
            errors.push(e);
        }
    }
    errors
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// How an async harness gets its connector: reqwest's, or the hyper transport from
/// `examples/custom_transport.rs` handed to the same ready client.
trait AsyncConnector: Connector<Manager = AsyncTokenManager> + Sized {
    fn for_setup(timeout: Duration, body_limit: Option<usize>) -> Self;
}

impl AsyncConnector for helloflex_transport_reqwest::Reqwest {
    fn for_setup(_: Duration, _: Option<usize>) -> Self {
        Self::default()
    }
}

impl AsyncConnector for OwnAsync {
    fn for_setup(timeout: Duration, body_limit: Option<usize>) -> Self {
        let transport = custom_transport::HyperTransport::new(timeout, body_limit);
        let runtime = helloflex_transport_reqwest::TokioRuntime::current()
            .map(|r| Arc::new(r) as Arc<dyn helloflex_auth::AsyncRuntime>);
        OwnAsync(Arc::new(transport), runtime)
    }
}

/// The async client over connector `C`, with the runtime its calls are blocked on.
struct AsyncClient<C>(helloflex_auth::Client<AsyncTokenManager, C>, tokio::runtime::Runtime);

type Reqwest = AsyncClient<helloflex_transport_reqwest::Reqwest>;
/// The user-written transport from `examples/custom_transport.rs`, in the same ready client.
type Custom = AsyncClient<OwnAsync>;

impl<C: AsyncConnector + 'static> Harness for AsyncClient<C> {
    fn build(emulator: &Emulator, setup: Setup) -> Self {
        let rt = runtime();
        let client = rt.block_on(async {
            let mut builder = ClientBuilder::new(C::for_setup(setup.timeout, setup.body_limit))
                .environment(setup.environment(emulator))
                .client_credentials(setup.client.0, ClientSecret::new(setup.client.1))
                .retry_policy(setup.retry)
                .token_options(setup.token_options)
                .timeouts(Timeouts::uniform(setup.timeout));
            if let Some(limit) = setup.body_limit {
                builder = builder.body_limit(limit);
            }
            builder.build()
        });
        Self(client.unwrap(), rt)
    }
    fn build_user(
        emulator: &Emulator,
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        let rt = runtime();
        let client = rt.block_on(async {
            ClientBuilder::new(C::for_setup(Duration::from_secs(10), None))
                .environment(environment(emulator))
                .authorization_code(config, store)
                .build()
        });
        Self(client.unwrap(), rt)
    }
    fn start_authorization(&self) -> (String, PendingAuthorization) {
        self.0.start_authorization().unwrap()
    }
    fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<(), Error> {
        self.1.block_on(self.0.complete_authorization(pending, callback)).map(drop)
    }
    fn send(&self, request: ApiRequest) -> Result<ApiResponse, Error> {
        self.1.block_on(self.0.request(request).send())
    }
    fn close(&self, within: Duration) -> bool {
        self.1.block_on(self.0.close(within))
    }
    fn load(&self, workers: usize, calls: usize, path: &'static str) -> Vec<Error> {
        let client = self.0.clone();
        spawn_all(&self.1, workers, || {
            let c = client.clone();
            async move { errors_of(calls, || c.get(path).send()).await }
        })
        .concat()
    }
    fn herd(&self, n: usize) -> Vec<Result<String, Error>> {
        let client = self.0.clone();
        spawn_all(&self.1, n, || {
            let c = client.clone();
            async move { c.token().await.map(|t| t.access_token().expose_secret().to_owned()) }
        })
    }
}

fn emulator() -> Emulator {
    helloflex_emulator::start(EmulatorConfig::default()).unwrap()
}

fn api_error(result: Result<ApiResponse, Error>) -> helloflex_core::ApiError {
    match result {
        Err(Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn transport_error(result: Result<ApiResponse, Error>) -> TransportErrorKind {
    match result {
        Err(Error::Transport(e)) => e.kind,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

// ---- scenarios, each generic over the harness ----

fn success_statuses<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    let news = h.send(ApiRequest::get("news")).unwrap();
    assert_eq!(news.status(), 200);
    assert_eq!(news.json::<Value>().unwrap()[0]["id"], 1);
    let values = h.send(ApiRequest::get("domainTypes/7/domainValues").query("Lang", "en")).unwrap();
    assert_eq!(values.json::<Value>().unwrap().as_array().unwrap().len(), 2);
    // 201, then 200 for the same POST repeated; 204 on delete.
    let created = h.send(ApiRequest::post("items").json(&json!({"name": "widget"}))).unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        h.send(ApiRequest::post("items").json(&json!({"name": "widget"}))).unwrap().status(),
        200
    );
    let id = created.json::<Value>().unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        h.send(ApiRequest::put("items").segment(id.to_string()).json(&json!({"name": "gadget"})))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.send(ApiRequest::patch("items").segment(id.to_string()).json(&json!({"x": 1})))
            .unwrap()
            .status(),
        200
    );
    let deleted = h.send(ApiRequest::delete("items").segment(id.to_string())).unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().is_empty());
    assert_eq!(emu.counters().total_token_requests(), 1, "one token for all calls");
}

fn error_statuses<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    let e = api_error(h.send(ApiRequest::get("domainTypes/-1/domainValues").query("Lang", "xx")));
    assert_eq!(e.status(), 400);
    let v = e.validation().unwrap();
    assert_eq!(v.get("Id").unwrap(), ["Value -1 is invalid."]);
    assert_eq!(v.get("Lang").unwrap(), ["Should be valid ISO 639-1 language code."]);
    assert_eq!(api_error(h.send(ApiRequest::get("nowhere"))).kind(), &ApiErrorKind::NotFound);
    let e = api_error(h.send(ApiRequest::delete("news")));
    assert!(
        matches!(e.kind(), ApiErrorKind::MethodNotAllowed { allow } if allow.contains(&http::Method::GET))
    );
    assert_eq!(
        api_error(h.send(ApiRequest::get("news").header("accept", "text/html"))).kind(),
        &ApiErrorKind::NotAcceptable
    );
    let raw =
        ApiRequest::post("items").header("content-type", "text/plain").body(b"name=x".to_vec());
    assert_eq!(api_error(h.send(raw)).kind(), &ApiErrorKind::UnsupportedMediaType);
    let e = api_error(h.send(ApiRequest::get("boom")));
    assert_eq!((e.status().as_u16(), e.kind()), (500, &ApiErrorKind::Server));
    // 403: the limited client lacks domain.read; no token refresh follows.
    let limited = H::build(&emu, Setup { client: LIMITED_CLIENT, ..Setup::default() });
    let before = emu.counters().total_token_requests();
    let e = api_error(limited.send(ApiRequest::get("domainTypes/7/domainValues")));
    assert!(
        matches!(e.kind(), ApiErrorKind::Forbidden { challenge: Some(c) } if c.is_insufficient_scope())
    );
    assert_eq!(emu.counters().total_token_requests(), before + 1);
}

fn unauthorized_replays_once<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    emu.revoke(None);
    assert_eq!(
        h.send(ApiRequest::get("news")).unwrap().status(),
        200,
        "a revoked token is replaced transparently"
    );
    assert_eq!(emu.counters().total_token_requests(), 2);
    // A 401 that persists is returned after exactly one replay.
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 401 }).times(2));
    let before = emu.counters().requests.get("GET /news").copied().unwrap_or(0);
    let e = api_error(h.send(ApiRequest::get("news")));
    assert!(matches!(
        e.kind(),
        ApiErrorKind::Unauthorized { cause: UnauthorizedCause::Unknown, .. }
    ));
    assert_eq!(emu.counters().requests["GET /news"] - before, 2);
}

fn expired_token_is_refreshed_without_the_caller_noticing<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(1), None);
    let h = H::build(&emu, Setup::default());
    for _ in 0..6 {
        assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    let tokens = emu.counters().total_token_requests();
    assert!((2..=4).contains(&tokens), "{tokens} token requests over ~1.8 s of 1 s tokens");
}

fn rate_limit_and_server_errors<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    emu.add_fault(
        Fault::on_path("/news", FaultKind::RateLimit { retry_after: "1".into() }).times(1),
    );
    let started = SystemClock.now();
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");
    // GET is retried after a 503; POST is not.
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    emu.add_fault(Fault::on_path("/items", FaultKind::Status { status: 503 }).times(1));
    assert_eq!(
        api_error(h.send(ApiRequest::post("items").json(&json!({"name": "n"})))).status(),
        503
    );
    assert_eq!(
        h.send(ApiRequest::post("items").json(&json!({"name": "n"}))).unwrap().status(),
        201,
        "the first POST never reached the handler"
    );
}

fn connection_faults<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    emu.add_fault(Fault::on_path("/news", FaultKind::Drop).times(1));
    assert_eq!(
        h.send(ApiRequest::get("news")).unwrap().status(),
        200,
        "GET replayed after a reset"
    );
    emu.add_fault(Fault::on_path("/items", FaultKind::Drop).times(1));
    assert_eq!(
        transport_error(h.send(ApiRequest::post("items").json(&json!({"name": "z"})))),
        TransportErrorKind::Io
    );
    // Connection refused: nothing listens any more.
    drop(emu);
    let e = h.send(ApiRequest::post("items").json(&json!({"name": "z"})));
    assert_eq!(transport_error(e), TransportErrorKind::Connect);
}

fn slow_drip_hits_the_deadline<H: Harness>() {
    let emu = emulator();
    let setup =
        Setup { retry: RetryPolicy::never(), timeout: Duration::from_secs(1), ..Setup::default() };
    let h = H::build(&emu, setup);
    h.send(ApiRequest::get("news")).unwrap();
    emu.add_fault(Fault::on_path("/news", FaultKind::SlowDrip { ms_per_byte: 100 }));
    let started = SystemClock.now();
    let kind = transport_error(h.send(ApiRequest::get("news")));
    assert!(matches!(kind, TransportErrorKind::Timeout | TransportErrorKind::Io), "{kind:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A name that does not resolve (`.invalid`, RFC 6761) is a `Connect` error on every
/// transport: the request never left.
fn an_unresolvable_host_is_a_connect_error<H: Harness>() {
    let emu = emulator();
    let setup = Setup {
        retry: RetryPolicy::never(),
        timeout: Duration::from_secs(2),
        base: Some("https://helloflex-nowhere.invalid"),
        ..Setup::default()
    };
    let h = H::build(&emu, setup);
    let started = SystemClock.now();
    let kind = transport_error(h.send(ApiRequest::get("news")));
    assert_eq!(kind, TransportErrorKind::Connect);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

fn redirects_are_not_followed<H: Harness>() {
    let emu = emulator();
    let elsewhere = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    let location = format!("{}/news", elsewhere.base_url());
    emu.add_fault(Fault::on_path(
        "/news",
        FaultKind::Redirect { status: 302, location: location.clone() },
    ));
    assert_eq!(api_error(h.send(ApiRequest::get("news"))).kind(), &ApiErrorKind::Redirect);
    // A token endpoint redirect is not followed either: the secret goes nowhere else.
    emu.revoke(None);
    emu.add_fault(Fault::on_path(
        "/oauth2/token",
        FaultKind::Redirect {
            status: 307,
            location: format!("{}/oauth2/token", elsewhere.base_url()),
        },
    ));
    let e = h.send(ApiRequest::get("domainTypes/1/domainValues"));
    assert!(matches!(e, Err(Error::Protocol(ProtocolError::UnexpectedResponse { .. }))), "{e:?}");
    assert!(
        elsewhere.counters().requests.is_empty()
            && elsewhere.counters().total_token_requests() == 0
    );
}

/// The cap is on the body read, on every transport: a declared length over it is refused
/// before reading, and one that comes with no body (a HEAD answer declares its GET's) is not
/// a body at all.
fn body_cap<H: Harness>() {
    let emu = emulator();
    // A token answer (180 bytes) fits under the cap; the list below does not.
    let cap = 250;
    let h = H::build(&emu, Setup { body_limit: Some(cap), ..Setup::default() });
    let uncapped = H::build(&emu, Setup::default());
    let name = "x".repeat(2 * cap);
    uncapped
        .send(ApiRequest::post("items").body(json!({ "name": name }).to_string().into_bytes()))
        .unwrap();
    assert_eq!(transport_error(h.send(ApiRequest::get("items"))), TransportErrorKind::BodyTooLarge);
    assert_eq!(emu.counters().requests.get("GET /items"), Some(&1), "the API answer was refused");
    let head = h.send(ApiRequest::new(http::Method::HEAD, "items")).unwrap();
    assert_eq!(head.status(), 200);
    let declared: usize = head.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(declared > cap && head.bytes().is_empty(), "{declared}");
}

fn flextell_config(emulator: &Emulator) -> AuthorizationCodeConfig {
    let settings = emulator.flextell("http://127.0.0.1:3000/callback");
    let e = |url: &str| Endpoint::parse(url, InsecureLoopback::Allow).unwrap();
    AuthorizationCodeConfig::builder(ClientIdentity::confidential(
        settings.client_id,
        ClientSecret::new(settings.client_secret),
    ))
    .authorize_url(e(&settings.authorize_url))
    .token_url(e(&settings.token_url))
    .redirect_uri(e(&settings.redirect_uri))
    .build()
    .unwrap()
    .with_scopes(["news.read"])
    .with_issuer(settings.issuer)
}

/// Plays the browser: follows the authorize URL to the emulator, returns the callback URL.
fn approve(url: &str) -> String {
    let browser = helloflex_transport_ureq::UreqTransport::default();
    let answer = browser.send(http::Request::get(url).body(Vec::new()).unwrap()).unwrap();
    answer.headers()["location"].to_str().unwrap().to_owned()
}

fn authorization_code_flow<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(1), Some(WEB_APP.0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store.clone());
    // Before authorizing there is nothing to refresh with.
    assert!(h.send(ApiRequest::get("news")).unwrap_err().requires_reauthorization());
    let (url, pending) = h.start_authorization();
    // A forged callback is refused and the pending authorization is not consumed by it.
    let forged = h.complete_authorization(&pending, "code=x&state=forged");
    assert!(matches!(forged, Err(Error::Callback(CallbackError::StateMismatch))));
    let callback = approve(&url);
    h.complete_authorization(&pending, &callback).unwrap();
    // The same callback again (a reload, a double submit): refused locally, no second exchange.
    let again = h.complete_authorization(&pending, &callback);
    assert!(matches!(again, Err(Error::Callback(CallbackError::AlreadyCompleted))), "{again:?}");
    assert_eq!(emu.counters().token_requests_for_grant("authorization_code"), 1);
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    let first = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200, "refreshed unnoticed");
    let second = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    assert_ne!(first, second, "the refresh token rotated and the new one was stored");
    assert_eq!(emu.counters().refresh_token_reuse, 0);
    assert_eq!(emu.counters().token_requests_for_grant("refresh_token"), 1);
    // Denied consent surfaces as a typed error.
    emu.set_consent(helloflex_emulator::Consent::AutoDeny);
    let (url, pending) = h.start_authorization();
    let denied = h.complete_authorization(&pending, &approve(&url));
    assert!(matches!(denied, Err(Error::Callback(CallbackError::Denied { .. }))), "{denied:?}");
}

/// A refresh ahead of expiry runs in the background while the call goes on with the old
/// token; closing waits for it, so the set the server rotated is in the store when `close`
/// returns, and a process exiting then loses nothing.
fn closing_stores_a_refresh_in_flight<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(10), Some(WEB_APP.0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store.clone());
    let (url, pending) = h.start_authorization();
    h.complete_authorization(&pending, &approve(&url)).unwrap();
    #[allow(clippy::disallowed_methods)] // a test's own timing
    let signed_in = std::time::Instant::now();
    let first = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    // Into the refresh window: the last 10-15% of the token's life (from 9 s at the latest),
    // before its last 5% (9.5 s).
    std::thread::sleep(Duration::from_millis(9150).saturating_sub(signed_in.elapsed()));
    // The server rotates at once and drips its answer for about a second.
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::SlowDrip { ms_per_byte: 4 }).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    assert!(!h.close(Duration::ZERO), "the call left its refresh running in the background");
    assert!(h.close(Duration::from_secs(10)), "nothing left in flight");
    let stored = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    assert_ne!(first, stored, "the rotated set was stored before close returned");
    assert_eq!(emu.counters().token_requests_for_grant("refresh_token"), 1);
    assert_eq!(emu.counters().refresh_token_reuse, 0);
}

fn silent_server_and_repeated_failures<H: Harness>() {
    let emu = emulator();
    let setup =
        Setup { timeout: Duration::from_secs(1), retry: RetryPolicy::never(), ..Setup::default() };
    let h = H::build(&emu, setup);
    h.send(ApiRequest::get("news")).unwrap();
    // Accepted, never answered: the deadline fires.
    emu.add_fault(Fault::on_path("/news", FaultKind::Hang).times(1));
    let started = SystemClock.now();
    assert_eq!(transport_error(h.send(ApiRequest::get("news"))), TransportErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Ten 503s in a row: bounded attempts (4 by default) and bounded time.
    let h = H::build(&emu, Setup::default());
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(10));
    let before = emu.counters().requests.get("GET /news").copied().unwrap_or(0);
    let started = SystemClock.now();
    assert_eq!(api_error(h.send(ApiRequest::get("news"))).status(), 503);
    assert_eq!(emu.counters().requests["GET /news"] - before, 4);
    assert!(started.elapsed() < Duration::from_secs(5));
    emu.clear_faults();
    // A truncated body: GET is replayed, POST is not.
    emu.add_fault(Fault::on_path("/news", FaultKind::Truncate).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    emu.add_fault(Fault::on_path("/items", FaultKind::Truncate).times(1));
    let kind = transport_error(h.send(ApiRequest::post("items").json(&json!({"name": "t"}))));
    assert!(matches!(kind, TransportErrorKind::Io | TransportErrorKind::Other), "{kind:?}");
}

fn token_endpoint_redirects_and_resets<H: Harness>() {
    let emu = emulator();
    let elsewhere = emulator();
    for status in [302, 307, 308] {
        let h = H::build(&emu, Setup::default());
        emu.clear_faults();
        emu.add_fault(Fault::on_path(
            "/oauth2/token",
            FaultKind::Redirect {
                status,
                location: format!("{}/oauth2/token", elsewhere.base_url()),
            },
        ));
        let e = h.send(ApiRequest::get("news"));
        assert!(
            matches!(e, Err(Error::Protocol(ProtocolError::UnexpectedResponse { .. }))),
            "{status}: {e:?}"
        );
    }
    assert!(elsewhere.counters().requests.is_empty(), "the secret was never sent elsewhere");
    emu.clear_faults();
    // A code exchange cut after it was sent is not replayed (the code is single-use).
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store);
    let (url, pending) = h.start_authorization();
    let callback = approve(&url);
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Drop).times(1));
    let before = emu.counters().requests.get("POST /oauth2/token").copied().unwrap_or(0);
    let result = h.complete_authorization(&pending, &callback);
    assert!(matches!(result, Err(Error::Transport(_))), "{result:?}");
    assert_eq!(
        emu.counters().requests["POST /oauth2/token"] - before,
        1,
        "sent once, never replayed"
    );
}

fn load_on_one_second_tokens<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(1), Some(WEB_APP.0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store);
    let (url, pending) = h.start_authorization();
    h.complete_authorization(&pending, &approve(&url)).unwrap();
    let started = SystemClock.now();
    let errors = h.load(64, 157, "news"); // 10,048 calls
    let elapsed = started.elapsed();
    assert!(
        errors.is_empty(),
        "{} errors reached callers, first: {:?}",
        errors.len(),
        errors.first()
    );
    let counters = emu.counters();
    assert_eq!(counters.refresh_token_reuse, 0);
    // About one refresh per 0.85-0.9 s of 1 s tokens (refreshed 10-15% early), never a storm.
    let refreshes = counters.token_requests_for_grant("refresh_token");
    let expected = elapsed.as_secs_f64() / 0.85;
    assert!((refreshes as f64) <= expected + 2.0, "{refreshes} refreshes in {elapsed:?}");
    eprintln!("load: 10,048 calls in {elapsed:?}, {refreshes} refreshes, 0 errors, 0 reuse events");
}

/// `Duration::MAX` as every limit (the HTTP timeouts, hence the token request's attempt timeout;
/// the retry deadlines; the store timeout; the close) means no limit, never none and never a
/// panic: a token request and an API call that fail transiently are retried, the calls go
/// through, and concurrent callers share one token request (its ticket is not taken over at
/// once).
fn unlimited_timeouts_mean_no_limit<H: Harness>() {
    // A limit taken for none left an async caller spinning, spawning one token request after
    // another (each one's ticket lapsed at once): that must fail the test, not hang it.
    let _watchdog = Watchdog::arm(Duration::from_secs(60));
    let emu = emulator();
    let unlimited = Duration::MAX;
    let retry = Setup::default().retry.with_deadline(unlimited);
    let token_options =
        ManagerOptions::default().with_retry(retry.clone()).with_store_timeout(unlimited);
    let setup = Setup { retry, timeout: unlimited, token_options, ..Setup::default() };
    let h = H::build(&emu, setup.clone());
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Status { status: 503 }).times(1));
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    let counters = emu.counters();
    assert_eq!(counters.requests["POST /oauth2/token"], 2, "the 503 was retried");
    assert_eq!(counters.requests["GET /news"], 2, "the 503 was retried");
    assert!(h.close(unlimited));
    // A new client's callers all wait for the one token request in flight.
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Latency { ms: 25 }));
    let herd = H::build(&emu, setup);
    let tokens = herd.herd(8);
    let first = tokens[0].as_ref().unwrap().clone();
    assert!(tokens.iter().all(|t| t.as_ref().unwrap() == &first));
    assert_eq!(emu.counters().total_token_requests(), 2, "a waiting caller took the ticket over");
    assert_eq!(herd.send(ApiRequest::get("news")).unwrap().status(), 200);
}

/// Aborts the test process if it is not dropped within the limit: for a scenario whose failure
/// would be a hang (a livelock), never for one that is merely slow.
struct Watchdog {
    /// Dropped with the watchdog, which ends its thread.
    _disarm: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(limit: Duration) -> Self {
        let (disarm, armed) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = armed.recv_timeout(limit) {
                eprintln!("the scenario hung for {limit:?}: aborting");
                std::process::abort();
            }
        });
        Self { _disarm: disarm }
    }
}

fn herd_makes_one_token_request<H: Harness>(callers: usize) {
    let emu = emulator();
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Latency { ms: 25 }));
    let h = H::build(&emu, Setup::default());
    let tokens = h.herd(callers);
    let first = tokens[0].as_ref().unwrap().clone();
    assert!(tokens.iter().all(|t| t.as_ref().unwrap() == &first));
    assert_eq!(emu.counters().total_token_requests(), 1);
}

macro_rules! suite {
    ($module:ident, $harness:ty, $herd:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn success_statuses() {
                super::success_statuses::<$harness>();
            }
            #[test]
            fn unlimited_timeouts_mean_no_limit() {
                super::unlimited_timeouts_mean_no_limit::<$harness>();
            }
            #[test]
            fn error_statuses() {
                super::error_statuses::<$harness>();
            }
            #[test]
            fn unauthorized_replays_once() {
                super::unauthorized_replays_once::<$harness>();
            }
            #[test]
            fn expired_token_is_refreshed_without_the_caller_noticing() {
                super::expired_token_is_refreshed_without_the_caller_noticing::<$harness>();
            }
            #[test]
            fn rate_limit_and_server_errors() {
                super::rate_limit_and_server_errors::<$harness>();
            }
            #[test]
            fn connection_faults() {
                super::connection_faults::<$harness>();
            }
            #[test]
            fn an_unresolvable_host_is_a_connect_error() {
                super::an_unresolvable_host_is_a_connect_error::<$harness>();
            }
            #[test]
            fn slow_drip_hits_the_deadline() {
                super::slow_drip_hits_the_deadline::<$harness>();
            }
            #[test]
            fn redirects_are_not_followed() {
                super::redirects_are_not_followed::<$harness>();
            }
            #[test]
            fn body_cap() {
                super::body_cap::<$harness>();
            }
            #[test]
            fn authorization_code_flow() {
                super::authorization_code_flow::<$harness>();
            }
            #[test]
            fn closing_stores_a_refresh_in_flight() {
                super::closing_stores_a_refresh_in_flight::<$harness>();
            }
            #[test]
            fn silent_server_and_repeated_failures() {
                super::silent_server_and_repeated_failures::<$harness>();
            }
            #[test]
            fn token_endpoint_redirects_and_resets() {
                super::token_endpoint_redirects_and_resets::<$harness>();
            }
            #[test]
            fn load_on_one_second_tokens() {
                super::load_on_one_second_tokens::<$harness>();
            }
            #[test]
            fn herd_makes_one_token_request() {
                super::herd_makes_one_token_request::<$harness>($herd);
            }
        }
    };
}

suite!(ureq, Ureq, 64);
suite!(reqwest, Reqwest, 1000);
suite!(custom_hyper, Custom, 1000);

/// reqwest normalises the URL it sends to (dot segments, host case); the redirect check
/// compares it with the answer's URL as reqwest parsed both, so a plain answer is never taken
/// for a redirect (which on a refresh would throw away the rotated token).
#[test]
fn reqwest_never_takes_a_normalised_url_for_a_redirect() {
    let emu = emulator();
    let base = format!("{}/v1/..", emu.base_url());
    let environment = Environment::custom(&base, InsecureLoopback::Allow).unwrap();
    let rt = runtime();
    let client = rt
        .block_on(async {
            helloflex_transport_reqwest::Client::builder()
                .environment(environment)
                .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
                .build()
        })
        .unwrap();
    let news = rt.block_on(client.get("news").send()).unwrap();
    assert_eq!(news.status(), 200);
    assert_eq!(emu.counters().total_token_requests(), 1);
}

/// The demo client's settings on any connector, with every retry off (one attempt, so a test
/// can count them).
fn demo_once<C: Connector>(
    builder: ClientBuilder<C>,
    environment: &Environment,
) -> ClientBuilder<C> {
    builder
        .environment(environment.clone())
        .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
        .retry_policy(RetryPolicy::never())
        .token_options(helloflex_auth::ManagerOptions::default().with_retry(RetryPolicy::never()))
}

/// The same failure gets the same kind on both shipped transports, and the HTTP library's own
/// error stays reachable through `source()`.
#[test]
fn a_refused_connection_is_connect_with_its_cause_on_both_transports() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }; // dropped: nothing listens there now
    let environment = Environment::custom(&closed, InsecureLoopback::Allow).unwrap();
    let check = |error: Error| match error {
        Error::Transport(e) => {
            assert_eq!(e.kind, TransportErrorKind::Connect, "{e}");
            assert!(std::error::Error::source(&e).is_some(), "the cause was kept: {e:?}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    };
    let blocking = demo_once(helloflex_transport_ureq::Client::builder(), &environment);
    check(blocking.build().unwrap().get("news").send().unwrap_err());
    let rt = runtime();
    let builder = demo_once(helloflex_transport_reqwest::Client::builder(), &environment);
    let nonblocking = rt.block_on(async { builder.build() }).unwrap();
    check(rt.block_on(nonblocking.get("news").send()).unwrap_err());
}

/// A server for the TLS tests: accepts connections on loopback, counts them, and serves each
/// with `serve`.
fn counting_server(
    serve: impl Fn(std::net::TcpStream) + Send + 'static,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&handshakes);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            serve(stream);
        }
    });
    (address, handshakes)
}

/// A server that answers the TLS handshake in plain HTTP.
fn plain_http_on_tls(mut stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut hello = [0u8; 512];
    let _ = stream.read(&mut hello);
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
}

/// A real TLS server whose certificate no client trusts (a self-signed one: unknown issuer).
fn unknown_issuer() -> impl Fn(std::net::TcpStream) + Send + 'static {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    move |stream| {
        use std::io::Read;
        let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let mut buf = [0u8; 64];
        // Drives the handshake until the client gives up on the certificate.
        let _ = tls.read(&mut buf);
    }
}

/// A TLS failure (a server answering the handshake in plain HTTP; a certificate from an unknown
/// issuer) is its own kind on both transports and is never retried: the same server would fail
/// the same way.
#[test]
fn a_tls_failure_is_tls_and_is_not_retried_on_both_transports() {
    for (what, (address, handshakes)) in [
        ("plain HTTP", counting_server(plain_http_on_tls)),
        ("unknown issuer", counting_server(unknown_issuer())),
    ] {
        let environment =
            Environment::custom(&format!("https://{address}"), InsecureLoopback::Deny).unwrap();
        let check = |error: Error| match error {
            Error::Transport(e) => {
                assert_eq!(e.kind, TransportErrorKind::Tls, "{what}: {e}");
                assert_eq!(e.attempts, 1, "{what}: never retried: {e}");
            }
            other => panic!("{what}: expected a transport error, got {other:?}"),
        };
        let blocking = helloflex_transport_ureq::Client::builder()
            .environment(environment.clone())
            .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
            .build()
            .unwrap();
        check(blocking.get("news").send().unwrap_err());
        assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), 1, "{what}");
        let rt = runtime();
        let nonblocking = rt
            .block_on(async {
                helloflex_transport_reqwest::Client::builder()
                    .environment(environment)
                    .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
                    .build()
            })
            .unwrap();
        check(rt.block_on(nonblocking.get("news").send()).unwrap_err());
        assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), 2, "{what}");
    }
}

const PROXY_CHILD: &str = "HELLOFLEX_PROXY_CHILD";

/// `*_PROXY` environment variables are honoured by default on both transports, and
/// `proxy_from_env(false)` turns them off. Run in a child process (this test binary again),
/// which is handed a proxy that refuses every connection.
#[test]
fn proxies_from_the_environment_can_be_turned_off() {
    if std::env::var_os(PROXY_CHILD).is_some() {
        let emu = emulator();
        let env = environment(&emu);
        let build_ureq = |from_env| {
            let builder = demo_once(helloflex_transport_ureq::Client::builder(), &env);
            builder.proxy_from_env(from_env).build().unwrap()
        };
        assert!(build_ureq(true).get("news").send().is_err(), "ureq went through the proxy");
        assert_eq!(build_ureq(false).get("news").send().unwrap().status(), 200);
        let rt = runtime();
        let build_reqwest = |from_env| {
            let builder = demo_once(helloflex_transport_reqwest::Client::builder(), &env);
            rt.block_on(async { builder.proxy_from_env(from_env).build() }).unwrap()
        };
        assert!(rt.block_on(build_reqwest(true).get("news").send()).is_err(), "reqwest proxied");
        assert_eq!(rt.block_on(build_reqwest(false).get("news").send()).unwrap().status(), 200);
        return;
    }
    let refusing = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }; // dropped: every connection to it is refused
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["proxies_from_the_environment_can_be_turned_off", "--exact", "--nocapture"])
        .env(PROXY_CHILD, "1")
        .env("HTTP_PROXY", &refusing)
        .env("http_proxy", &refusing)
        .env("ALL_PROXY", &refusing)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed or ran nothing: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads one HTTP/1.1 request for the loopback servers below: its head, lower-cased, and its
/// body (by `Content-Length`). `None` once the client has closed the connection.
fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Each request a [`recording_server`] saw: its head (lower-cased) and body length.
type Recorded = Arc<std::sync::Mutex<Vec<(String, usize)>>>;

/// A loopback HTTP/1.1 server that records each request, answers token requests with a token
/// and everything else with `200 []`.
fn recording_server() -> (String, Recorded) {
    recording_server_answering(|| None)
}

/// [`recording_server`], answering API requests with what `api` gives (the whole answer, after
/// which the connection is closed) where it gives one.
fn recording_server_answering(
    api: impl Fn() -> Option<&'static [u8]> + Send + Sync + 'static,
) -> (String, Recorded) {
    use std::io::{BufReader, Write};
    let api = Arc::new(api);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (record, api) = (Arc::clone(&record), Arc::clone(&api));
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while let Some((head, body)) = read_request(&mut reader) {
                    let token = head.starts_with("post /oauth2/token");
                    record.lock().unwrap().push((head, body.len()));
                    if let Some(whole) = api().filter(|_| !token) {
                        let _ = writer.write_all(whole);
                        return;
                    }
                    let answer = if token {
                        r#"{"access_token":"wire-token","token_type":"Bearer","expires_in":3599}"#
                    } else {
                        "[]"
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    writer.write_all(response.as_bytes()).unwrap();
                }
            });
        }
    });
    (base, seen)
}

/// The body cap holds however an answer is framed, on both shipped transports: chunked, or
/// read until the server closes (no length up front). (`body_cap` covers a declared length.)
#[test]
fn a_body_over_the_cap_is_refused_whatever_its_framing_on_both_transports() {
    // A 128-byte JSON list: over the cap of 100 below, where the token answer (69 bytes) fits.
    let list = format!("[\"{}\"]", "x".repeat(124));
    let leak = |text: String| -> &'static [u8] { text.into_bytes().leak() };
    let chunked = leak(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{list}\r\n0\r\n\r\n",
        list.len()
    ));
    let until_close = leak(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{list}"
    ));
    let rt = runtime();
    for (framing, answer) in [("chunked", chunked), ("until close", until_close)] {
        for transport in ["ureq", "reqwest"] {
            let (base, seen) = recording_server_answering(move || Some(answer));
            let environment = Environment::custom(&base, InsecureLoopback::Allow).unwrap();
            let send = |limit: usize| {
                if transport == "ureq" {
                    let builder =
                        demo_once(helloflex_transport_ureq::Client::builder(), &environment);
                    builder.body_limit(limit).build().unwrap().get("news").send()
                } else {
                    let builder =
                        demo_once(helloflex_transport_reqwest::Client::builder(), &environment);
                    let client = rt.block_on(async { builder.body_limit(limit).build() }).unwrap();
                    rt.block_on(client.get("news").send())
                }
            };
            let refused = transport_error(send(100));
            assert_eq!(refused, TransportErrorKind::BodyTooLarge, "{transport}, {framing}");
            let api =
                seen.lock().unwrap().iter().filter(|(h, _)| h.starts_with("get /news")).count();
            assert_eq!(api, 1, "{transport}, {framing}: the API answer was the one refused");
            // At the cap, the same answer is read whole.
            let read = send(list.len()).unwrap();
            assert_eq!(read.bytes(), list.as_bytes(), "{transport}, {framing}");
        }
    }
}

/// What the SDK puts on the wire is the same on both shipped transports: a bodiless method
/// without a body carries no body framing, a POST declares its (empty) length, the
/// `Authorization`, `Accept` and `User-Agent` headers are there, and a header the caller sets
/// wins over the client's own.
#[test]
fn both_transports_put_the_same_request_on_the_wire() {
    let rt = runtime();
    for transport in ["ureq", "reqwest"] {
        let (base, seen) = recording_server();
        let environment = Environment::custom(&base, InsecureLoopback::Allow).unwrap();
        let send = |request: ApiRequest| -> ApiResponse {
            if transport == "ureq" {
                let builder = demo_once(helloflex_transport_ureq::Client::builder(), &environment);
                builder.user_agent("wire-test/1").build().unwrap().request(request).send().unwrap()
            } else {
                let builder =
                    demo_once(helloflex_transport_reqwest::Client::builder(), &environment);
                let client = rt.block_on(async { builder.user_agent("wire-test/1").build() });
                rt.block_on(client.unwrap().request(request).send()).unwrap()
            }
        };
        send(ApiRequest::get("news").query("Lang", "en"));
        send(ApiRequest::delete("items/1"));
        send(ApiRequest::post("items"));
        send(ApiRequest::post("items").json(&json!({"name": "x"})));
        send(ApiRequest::get("news").header("user-agent", "per-call/2"));
        let seen = seen.lock().unwrap().clone();
        let api: Vec<_> = seen.iter().filter(|(h, _)| !h.contains("/oauth2/token")).collect();
        assert_eq!(api.len(), 5, "{transport}: {seen:?}");
        let has = |head: &str, line: &str| head.lines().any(|l| l.trim_end() == line);
        for (head, _) in &api {
            assert!(has(head, "authorization: bearer wire-token"), "{transport}: {head}");
            assert!(has(head, "accept: application/json"), "{transport}: {head}");
        }
        for (head, length) in &api[..2] {
            assert!(!head.contains("content-length") && *length == 0, "{transport}: {head}");
            assert!(!head.contains("transfer-encoding"), "{transport}: {head}");
        }
        assert!(api[0].0.starts_with("get /news?lang=en http/1.1"), "{transport}: {}", api[0].0);
        assert!(has(&api[0].0, "user-agent: wire-test/1"), "{transport}: {}", api[0].0);
        assert!(has(&api[2].0, "content-length: 0"), "{transport}: {}", api[2].0);
        assert!(has(&api[3].0, "content-type: application/json"), "{transport}: {}", api[3].0);
        assert_eq!(api[3].1, br#"{"name":"x"}"#.len(), "{transport}");
        assert!(has(&api[4].0, "user-agent: per-call/2"), "{transport}: {}", api[4].0);
        assert!(!api[4].0.contains("wire-test"), "{transport}: {}", api[4].0);
    }
}

/// What a [`mischievous_server`] does to a connection 50 ms after each answer.
#[derive(Clone, Copy, Debug)]
enum AfterAnswer {
    /// Closes it (no `Connection: close` was sent: the client pooled it).
    Closes,
    /// Writes a second, unasked-for answer on it and keeps it open.
    WritesAStaleAnswer,
}

/// A loopback server that answers each request `200 "fresh"` on a kept-alive connection, then
/// spoils the connection as `after` says and reports it on the channel. Returns its base URL,
/// the connections it accepted, and that channel.
fn mischievous_server(
    after: AfterAnswer,
) -> (String, Arc<std::sync::atomic::AtomicUsize>, std::sync::mpsc::Receiver<()>) {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    let (spoiled, spoils) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let spoiled = spoiled.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while read_request(&mut reader).is_some() {
                    let answer = |text: &str| {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                            text.len()
                        )
                    };
                    writer.write_all(answer("\"fresh\"").as_bytes()).unwrap();
                    // Time for the client to finish reading the answer, so the spoiling comes
                    // after it, on a connection the client has put back in its pool.
                    std::thread::sleep(Duration::from_millis(50));
                    match after {
                        AfterAnswer::Closes => {
                            drop((reader, writer));
                            let _ = spoiled.send(());
                            return;
                        }
                        AfterAnswer::WritesAStaleAnswer => {
                            let _ = writer.write_all(answer("\"stale\"").as_bytes());
                            let _ = spoiled.send(());
                        }
                    }
                }
            });
        }
    });
    (base, accepted, spoils)
}

/// A pooled connection the server closed, or wrote past its answer on, is never used again,
/// on both shipped transports: the next request (a POST, which no layer replays) goes out on a
/// new connection and gets its own answer, not an error or the stale bytes.
#[test]
fn a_spoiled_pooled_connection_is_not_reused_on_both_transports() {
    use helloflex_auth::AsyncTransport as _;
    let request = |base: &str| {
        http::Request::builder()
            .method("POST")
            .uri(format!("{base}/items"))
            .header("content-length", "2")
            .body(b"{}".to_vec())
            .unwrap()
    };
    let rt = runtime();
    for after in [AfterAnswer::Closes, AfterAnswer::WritesAStaleAnswer] {
        let blocking = helloflex_transport_ureq::UreqTransport::new(Timeouts::default());
        let nonblocking = rt
            .block_on(async {
                helloflex_transport_reqwest::ReqwestTransport::new(Timeouts::default(), "suite")
            })
            .unwrap();
        for transport in ["ureq", "reqwest"] {
            let (base, accepted, spoils) = mischievous_server(after);
            for call in 1..=2 {
                let answer = match transport {
                    "ureq" => blocking.send(request(&base)),
                    _ => rt.block_on(nonblocking.send(request(&base))),
                };
                let answer = answer.unwrap_or_else(|e| panic!("{transport}, {after:?}: {e}"));
                assert_eq!(answer.body(), b"\"fresh\"", "{transport}, {after:?}, call {call}");
                spoils.recv_timeout(Duration::from_secs(10)).expect("the server spoils it");
            }
            let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(connections, 2, "{transport}, {after:?}: a new connection for call 2");
        }
    }
}
