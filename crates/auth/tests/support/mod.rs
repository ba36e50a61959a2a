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
        }
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
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.latency);
        let params = form(request.body());
        let mut state = self.state.lock().unwrap();
        match params["grant_type"].as_str() {
            "authorization_code" => {
                let Some(challenge) = state.codes.remove(&params["code"]) else {
                    return Ok(oauth_error(400, "invalid_grant"));
                };
                let verifier = &params["code_verifier"];
                let computed = helloflex_core::pkce_challenge(&helloflex_core::PkceVerifier::new(
                    verifier.as_str(),
                ));
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
}
