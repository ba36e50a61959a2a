//! The behaviour suite's harness: a client over each transport (ureq, reqwest, and the
//! user-written hyper transport from `examples/custom_transport.rs`) behind one [`Harness`],
//! driven synchronously so every scenario reads the same, and [`over_transports!`], which
//! instantiates each scenario once per transport. Each test file of the suite holds the
//! scenarios of one area and names them in one `over_transports!`.

#![allow(dead_code, unused_imports, unused_macros)] // each test file uses the part it needs

#[path = "../../../examples/examples/custom_transport.rs"]
#[allow(dead_code, unreachable_pub)]
mod custom_transport;

pub use std::sync::Arc;
pub use std::time::Duration;

pub use helloflex_auth::{
    AsyncTokenManager, BlockingTransport, ClientBuilder, Clock, Connector, ManagerOptions,
    MemoryStore, OwnAsync, SystemClock, Timeouts, TokenStore,
};
pub use helloflex_core::{
    ApiErrorKind, ApiRequest, ApiResponse, AuthorizationCodeConfig, CallbackError, ClientIdentity,
    ClientSecret, Endpoint, Environment, Error, InsecureLoopback, PendingAuthorization,
    ProtocolError, RetryPolicy, TransportErrorKind, UnauthorizedCause,
};
pub use helloflex_emulator::{
    DEMO_CLIENT, Emulator, EmulatorConfig, Fault, FaultKind, LIMITED_CLIENT, WEB_APP,
};
pub use helloflex_testkit::Watchdog;
pub use serde_json::{Value, json};

/// How a scenario wants its client.
#[derive(Clone)]
pub struct Setup {
    pub client: (&'static str, &'static str),
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// The token manager's options (its attempt timeout is the client's, from `timeout`).
    pub token_options: ManagerOptions,
    pub body_limit: Option<usize>,
    /// The API somewhere else than the emulator.
    pub base: Option<&'static str>,
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
pub trait Harness: Sized {
    /// Callers in a herd: threads for a blocking transport (64), tasks for an async one.
    const HERD: usize;
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

pub fn environment(emulator: &Emulator) -> Environment {
    Environment::custom(emulator.base_url(), InsecureLoopback::Allow).unwrap()
}

pub struct Ureq(helloflex_transport_ureq::Client);

impl Harness for Ureq {
    const HERD: usize = 64;
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
pub fn spawn_all<T, Fut>(rt: &tokio::runtime::Runtime, n: usize, task: impl Fn() -> Fut) -> Vec<T>
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
pub async fn errors_of<R, F: std::future::Future<Output = Result<R, Error>>>(
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

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// How an async harness gets its connector: reqwest's, or the hyper transport from
/// `examples/custom_transport.rs` handed to the same ready client.
pub trait AsyncConnector: Connector<Manager = AsyncTokenManager> + Sized {
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
pub struct AsyncClient<C>(helloflex_auth::Client<AsyncTokenManager, C>, tokio::runtime::Runtime);

pub type Reqwest = AsyncClient<helloflex_transport_reqwest::Reqwest>;
/// The user-written transport from `examples/custom_transport.rs`, in the same ready client.
pub type Custom = AsyncClient<OwnAsync>;

impl<C: AsyncConnector + 'static> Harness for AsyncClient<C> {
    const HERD: usize = 1000;
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

pub fn emulator() -> Emulator {
    helloflex_emulator::start(EmulatorConfig::default()).unwrap()
}

pub fn api_error(result: Result<ApiResponse, Error>) -> helloflex_core::ApiError {
    match result {
        Err(Error::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn transport_error(result: Result<ApiResponse, Error>) -> TransportErrorKind {
    match result {
        Err(Error::Transport(e)) => e.kind,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

pub fn flextell_config(emulator: &Emulator) -> AuthorizationCodeConfig {
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
pub fn approve(url: &str) -> String {
    let browser = helloflex_transport_ureq::UreqTransport::default();
    let answer = browser.send(http::Request::get(url).body(Vec::new()).unwrap()).unwrap();
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// The demo client's settings on any connector, with every retry off (one attempt, so a test
/// can count them).
pub fn demo_once<C: Connector>(
    builder: ClientBuilder<C>,
    environment: &Environment,
) -> ClientBuilder<C> {
    builder
        .environment(environment.clone())
        .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
        .retry_policy(RetryPolicy::never())
        .token_options(helloflex_auth::ManagerOptions::default().with_retry(RetryPolicy::never()))
}

/// Instantiates each scenario named (a function generic over [`Harness`] in the calling test
/// file) once per transport: a module per transport (`ureq`, `reqwest`, `custom_hyper`), a test
/// per scenario in each.
macro_rules! over_transports {
    ($($scenario:ident),* $(,)?) => {
        $crate::support::over_transports!(@on ureq, $crate::support::Ureq, $($scenario),*);
        $crate::support::over_transports!(@on reqwest, $crate::support::Reqwest, $($scenario),*);
        $crate::support::over_transports!(@on custom_hyper, $crate::support::Custom, $($scenario),*);
    };
    (@on $module:ident, $harness:ty, $($scenario:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario::<$harness>();
                }
            )*
        }
    };
}
pub(crate) use over_transports;
