//! A fake authorization server as a blocking transport: PKCE S256 checked, refresh tokens
//! rotated, reuse of an old refresh token revokes the whole family (as real servers do).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use helloflex_auth::{BlockingTransport, Request, Response};
use helloflex_core::{
    AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, InsecureLoopback,
    TransportError,
};

pub const CANARY_SECRET: &str = "CANARYclientsecret0123456789abcdef";

pub fn config() -> AuthorizationCodeConfig {
    let e = |u| Endpoint::parse(u, InsecureLoopback::Allow).unwrap();
    AuthorizationCodeConfig::new(
        ClientIdentity::confidential("app", ClientSecret::new(CANARY_SECRET)),
        e("https://auth.flextell.test/authorize"),
        e("https://auth.flextell.test/token"),
        e("http://127.0.0.1:3000/callback"),
    )
    .with_scopes(["calls.read"])
}

#[derive(Default)]
struct State {
    /// code -> PKCE challenge
    codes: HashMap<String, String>,
    /// live refresh token -> family
    live: HashMap<String, u32>,
    /// refresh tokens already used -> family
    used: HashMap<String, u32>,
    revoked_families: Vec<u32>,
    next: u32,
}

pub struct FakeServer {
    state: Mutex<State>,
    pub refresh_requests: Mutex<Vec<String>>,
    pub token_requests: AtomicUsize,
    pub reuse_events: AtomicUsize,
    pub latency: Duration,
    pub lifetime: u64,
    /// Refresh requests answered 503 before they reach the server's logic (a proxy hiccup).
    pub refresh_503s: AtomicUsize,
    /// While closed, refresh requests wait here (a slow network), counted as arrived first.
    pub gate: Gate,
    pub arrived_refreshes: AtomicUsize,
    /// When set, a transport sleep (retry backoff) moves this clock instead of waiting.
    pub sleeps_advance: Mutex<Option<std::sync::Arc<helloflex_auth::ManualClock>>>,
}

/// A door requests wait at until it is opened.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Gate {
    pub fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }
    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.changed.notify_all();
    }
    pub fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.changed.wait(closed).unwrap();
        }
    }
}

impl FakeServer {
    pub fn new(latency: Duration, lifetime: u64) -> Self {
        Self {
            state: Mutex::default(),
            refresh_requests: Mutex::default(),
            token_requests: AtomicUsize::new(0),
            reuse_events: AtomicUsize::new(0),
            latency,
            lifetime,
            refresh_503s: AtomicUsize::new(0),
            gate: Gate::default(),
            arrived_refreshes: AtomicUsize::new(0),
            sleeps_advance: Mutex::new(None),
        }
    }

    /// Retry backoffs move `clock` instead of waiting (for transient-failure scenarios).
    pub fn sleeps_advance(&self, clock: &std::sync::Arc<helloflex_auth::ManualClock>) {
        *self.sleeps_advance.lock().unwrap() = Some(clock.clone());
    }

    fn pause(&self, duration: Duration) {
        match &*self.sleeps_advance.lock().unwrap() {
            Some(clock) => clock.advance(duration),
            None => std::thread::sleep(duration),
        }
    }

    /// Waits (real time) until `n` refresh requests have arrived at the gate.
    pub fn wait_for_refreshes(&self, n: usize) {
        for _ in 0..2000 {
            if self.arrived_refreshes.load(Ordering::SeqCst) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{n} refresh requests never arrived");
    }

    /// Simulates the user approving: issues a code for `authorize_url` and returns the callback.
    pub fn approve(&self, authorize_url: &str) -> String {
        let query = authorize_url.split_once('?').unwrap().1;
        let param = |name: &str| {
            query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap().to_owned()
        };
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let code = format!("code{}", state.next);
        state.codes.insert(code.clone(), param("code_challenge"));
        format!("http://127.0.0.1:3000/callback?code={code}&state={}", param("state"))
    }

    fn issue(&self, state: &mut State, family: u32) -> Response {
        state.next += 1;
        let refresh = format!("rt{}f{family}", state.next);
        state.live.insert(refresh.clone(), family);
        let body = format!(
            r#"{{"access_token":"at{}","token_type":"Bearer","expires_in":{},"refresh_token":"{refresh}"}}"#,
            state.next, self.lifetime
        );
        http::Response::new(body.into_bytes())
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn oauth_error(status: u16, code: &str) -> Response {
    http::Response::builder()
        .status(status)
        .body(format!(r#"{{"error":"{code}"}}"#).into_bytes())
        .unwrap()
}

impl BlockingTransport for FakeServer {
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        assert_eq!(request.uri().path(), "/token");
        std::thread::sleep(self.latency);
        let params = form(request.body());
        if params["grant_type"] == "refresh_token" {
            self.arrived_refreshes.fetch_add(1, Ordering::SeqCst);
            self.gate.pass();
            if self
                .refresh_503s
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Ok(http::Response::builder().status(503).body(Vec::new()).unwrap());
            }
        }
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock().unwrap();
        match params["grant_type"].as_str() {
            "authorization_code" => {
                let Some(challenge) = state.codes.remove(&params["code"]) else {
                    return Ok(oauth_error(400, "invalid_grant"));
                };
                let verifier = &params["code_verifier"];
                let computed = helloflex_core::machines::pkce_challenge(
                    &helloflex_core::PkceVerifier::new(verifier.as_str()),
                );
                if computed != challenge {
                    return Ok(oauth_error(400, "invalid_grant"));
                }
                state.next += 1;
                let family = state.next;
                Ok(self.issue(&mut state, family))
            }
            "refresh_token" => {
                let token = params["refresh_token"].clone();
                self.refresh_requests.lock().unwrap().push(token.clone());
                if let Some(family) = state.used.get(&token).copied() {
                    // Reuse: revoke the whole family.
                    self.reuse_events.fetch_add(1, Ordering::SeqCst);
                    state.revoked_families.push(family);
                    state.live.retain(|_, f| *f != family);
                    return Ok(oauth_error(400, "invalid_grant"));
                }
                let Some(family) = state.live.remove(&token) else {
                    return Ok(oauth_error(400, "invalid_grant"));
                };
                state.used.insert(token, family);
                Ok(self.issue(&mut state, family))
            }
            _ => Ok(oauth_error(400, "unsupported_grant_type")),
        }
    }

    fn sleep(&self, duration: Duration) {
        self.pause(duration);
    }
}

/// The fake server behind an async transport: each request runs on tokio's blocking pool, so a
/// closed gate never stalls the executor.
pub struct AsyncFake(pub std::sync::Arc<FakeServer>);

#[async_trait::async_trait]
impl helloflex_auth::AsyncTransport for AsyncFake {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let server = std::sync::Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || server.send(request)).await.unwrap()
    }
    async fn sleep(&self, duration: Duration) {
        // Backoffs move the manual clock; a waiter's long timeout (the ticket's deadline) must
        // not, or waiting would itself expire the ticket being waited for.
        if duration <= Duration::from_secs(30) && self.0.sleeps_advance.lock().unwrap().is_some() {
            return self.0.pause(duration);
        }
        tokio::time::sleep(duration).await;
    }
}

/// The async manager's runtime on tokio (what the reqwest crate provides, for these tests).
#[derive(Debug)]
pub struct Tokio(pub tokio::runtime::Handle);

impl helloflex_auth::AsyncRuntime for Tokio {
    fn spawn(&self, task: helloflex_auth::Task) {
        drop(self.0.spawn(task));
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> helloflex_auth::Task {
        let handle = self.0.spawn_blocking(work);
        Box::pin(async move {
            let _ = handle.await;
        })
    }
}

/// The key ring the tests' file stores share (a child process must open what its parent wrote).
pub fn keys() -> helloflex_auth::KeyRing {
    helloflex_auth::KeyRing::new(helloflex_auth::Key::new("test-key", [7u8; 32]).unwrap())
}

/// A store whose every call fails, as a remote store does while unreachable.
#[derive(Debug, Default)]
pub struct Unreachable {
    /// Calls seen (a job asks again while the store is down).
    pub calls: std::sync::atomic::AtomicUsize,
}

impl helloflex_auth::TokenStore for Unreachable {
    fn load(&self) -> Result<helloflex_auth::Loaded, helloflex_auth::StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(down())
    }
    fn swap(
        &self,
        _: u64,
        _: &helloflex_auth::Record,
    ) -> Result<helloflex_auth::Swap, helloflex_auth::StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(down())
    }
}

fn down() -> helloflex_auth::StoreError {
    use helloflex_auth::{StoreError, StoreErrorKind};
    StoreError::new("read", StoreErrorKind::Unreachable, "connection refused")
}
