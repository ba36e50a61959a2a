//! A faithful HelloFlex + Flextell sandbox on loopback: an OAuth 2.0 authorization server
//! (client credentials, authorization code with PKCE S256, refresh-token rotation with reuse
//! detection), the API resources from the vendor docs with their documented errors, fault
//! injection and counters. Use it as the quickstart's server, in end-to-end tests, and in your
//! own tests, as Stripe users use stripe-mock.
//!
//! It is written independently of `helloflex-core`'s parsing and serialisation (its own form
//! decoding, its own SHA-256 for PKCE), so a bug cannot hide in both.
//!
//! ```
//! let emulator = helloflex_emulator::start(Default::default())?;
//! assert!(emulator.base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(emulator.counters().total_token_requests(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Default clients: `demo-client` / `demo-secret` (client credentials, every scope),
//! `limited-client` / `limited-secret` (only `news.read`), and the web app `flextell-app` /
//! `flextell-secret` (authorization code, redirect URIs `http://127.0.0.1:3000/callback`,
//! `http://localhost:3000/callback`, and `http://127.0.0.1/callback` on any port for native apps
//! (RFC 8252); add more with [`EmulatorConfig::with_redirect_uri`]). [`Emulator::helloflex`] and
//! [`Emulator::flextell`] hand out ready settings for both.
//!
//! # The admin API
//!
//! Under `/_admin`, for tests in other languages and for the `helloflex-emulator` program.
//! Bodies are JSON, snake_case (the older kebab-case spellings of fault kinds and consent modes
//! are accepted too); the Content-Type is not checked. `ID` is a registered client (`GET
//! /_admin/health` lists them).
//!
//! | request | body | effect |
//! |---|---|---|
//! | `GET health` | | `{"status": "ok", "version", "base_url", "clients"}` |
//! | `GET counters` | | the [`Counters`] |
//! | `POST counters/reset` | none, or `{}` | zeroes them ([`Emulator::reset_counters`]) |
//! | `POST faults` | a [`Fault`] or a non-empty list of them | adds them all, or none |
//! | `GET faults` | | the faults in force |
//! | `DELETE faults` | none, or `{}` | clears them |
//! | `POST revoke` | `{"client": ID}`; none or `{}`: every client | revokes tokens now |
//! | `POST consent` | `{"mode": "prompt" \| "auto_approve" \| "auto_deny"}` | the [`Consent`] mode |
//! | `POST token-lifetime` | `{"seconds": 1..=31536000, "client": ID}` (`client` optional: every client) | lifetime of tokens issued from now |
//! | `POST reset` | none, or `{}` | everything back to the start |
//!
//! A fault's JSON: `"kind"` and its fields (`latency` `"ms": 1..=3600000`; `status` `"status":
//! 200..=599`; `rate_limit` `"retry_after"`: the header as sent; `drop`, `hang`, `truncate`;
//! `slow_drip` `"ms_per_byte": 0..=60000`; `redirect` `"location"`: a path (one leading `/`)
//! or an absolute http(s) URL without user info, `"status"`: 301, 302, 303, 307 or 308, 302 when left out), and optionally
//! `"path"` (a prefix starting with `/`, not under `/_admin`), `"client"` (`ID`), `"times"`
//! (`1..=4294967295`). See [`Fault`] and [`FaultKind`].
//!
//! # Refusals
//!
//! The emulator refuses what cannot work (a fault that would never fire, a status that is not
//! one, a lifetime of 0, a client that is not registered, an unknown field, a key given twice
//! in one JSON object, a body that is not JSON, a URI with user info) rather than accept it
//! silently, in one format that names the field, its list entry
//! (counting from 0) and what is allowed: a [`Refusal`], `field: problem`.
//!
//! - The admin API answers HTTP 400 (a path under `/_admin` that is no endpoint: 404, a method
//!   an endpoint does not take: 405) with this JSON, and changes nothing:
//!
//!   ```json
//!   {"error": "invalid_request",
//!    "message": "faults[2].path: must start with \"/\" (got \"news\")",
//!    "refusals": [{"field": "faults[2].path", "problem": "must start with \"/\" (got \"news\")"}],
//!    "example": {"path": "/news", "kind": "status", "status": 503, "times": 2}}
//!   ```
//!
//!   `error` is `invalid_request` (`not_found`, `method_not_allowed`); `message` is every
//!   refusal as `field: problem`, joined by `; `; `refusals` lists them; `example`, a correct
//!   body, is there where the endpoint takes one. A fault posted alone is `faults[0]`; a body
//!   that is not JSON at all is `body`.
//! - The program prints one line per refusal, `error: --fault[1].path: must start with "/" (got
//!   "news")`, and exits with code 2, before it listens.
//! - The Rust API: [`Emulator::try_add_fault`] returns the refusals, [`Emulator::add_fault`],
//!   [`Emulator::revoke`], [`Emulator::set_token_lifetime`] and
//!   [`EmulatorConfig::with_redirect_uri`] panic with them (a mistake in a test, said at
//!   once), and [`start`] refuses settings that cannot work ([`EmulatorConfig::check`]).

// Handlers return `Result<_, Response>` (axum's idiom); a response is the error path's value.
#![allow(clippy::result_large_err)]

mod admin;
mod api;
mod config;
mod faults;
mod oauth;
mod refusal;
mod server;
mod state;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;

pub use config::{
    ALL_SCOPES, ClientRegistration, Consent, DEMO_CLIENT, EmulatorConfig, GRANTS, LIMITED_CLIENT,
    TOKEN_LIFETIME_SECONDS, WEB_APP,
};
pub use faults::{Fault, FaultKind};
pub use refusal::Refusal;
pub use state::Counters;

use state::State;

/// What a HelloFlex client needs to talk to the emulator (plain values: the emulator shares
/// no types with the SDK, so a bug cannot hide in both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloFlexSettings {
    /// The API base URL (for `Environment::custom(.., InsecureLoopback::Allow)`).
    pub base_url: String,
    /// The demo machine client.
    pub client_id: &'static str,
    /// Its secret.
    pub client_secret: &'static str,
}

/// What a Flextell client needs to sign users in against the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlextellSettings {
    /// `<base>/oauth2/authorize`.
    pub authorize_url: String,
    /// `<base>/oauth2/token`.
    pub token_url: String,
    /// Where users come back.
    pub redirect_uri: String,
    /// The API base URL.
    pub base_url: String,
    /// The `iss` the emulator puts on callbacks (RFC 9207).
    pub issuer: String,
    /// The demo web app.
    pub client_id: &'static str,
    /// Its secret.
    pub client_secret: &'static str,
    /// Every scope the emulator knows.
    pub scopes: &'static [&'static str],
}

/// A running emulator. Stops when dropped.
#[derive(Debug)]
pub struct Emulator {
    base_url: String,
    addr: SocketAddr,
    state: State,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn router(state: State) -> Router {
    Router::new()
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/authorize", get(oauth::authorize))
        .route("/news", get(api::news))
        .route("/customers/{id}/news", get(api::customer_news))
        .route("/domainTypes/{id}/domainValues", get(api::domain_values))
        .route("/items", post(api::create_item).get(api::list_items))
        .route(
            "/items/{id}",
            get(api::get_item).put(api::write_item).patch(api::write_item).delete(api::delete_item),
        )
        .route("/boom", get(api::boom))
        .route("/_admin/counters", get(admin::counters).fallback(admin::wrong_method))
        .route("/_admin/counters/reset", post(admin::reset_counters).fallback(admin::wrong_method))
        .route(
            "/_admin/faults",
            post(admin::add_faults)
                .get(admin::list_faults)
                .delete(admin::clear_faults)
                .fallback(admin::wrong_method),
        )
        .route("/_admin/health", get(admin::health).fallback(admin::wrong_method))
        .route("/_admin/reset", post(admin::reset).fallback(admin::wrong_method))
        .route("/_admin/revoke", post(admin::revoke).fallback(admin::wrong_method))
        .route("/_admin/consent", post(admin::consent).fallback(admin::wrong_method))
        .route("/_admin/token-lifetime", post(admin::token_lifetime).fallback(admin::wrong_method))
        .fallback(not_found)
        .with_state(state)
}

/// No route: the admin API's JSON 404 under `/_admin`, the API's own elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path() == "/_admin" || uri.path().starts_with("/_admin/") {
        admin::no_such_endpoint(&uri)
    } else {
        api::not_found().await
    }
}

/// Starts an emulator on `127.0.0.1` (port 0 picks a free one) on a thread of its own, so it
/// works from blocking code and from inside another async runtime alike.
///
/// Settings that cannot work (see [`EmulatorConfig::check`]) are refused with
/// [`io::ErrorKind::InvalidInput`], every refusal in the message.
pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
    if let Err(refusals) = config.check() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, refusal::one_line(&refusals)));
    }
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let state = State::new(config, base_url.clone());
    let (stop, stopped) = watch::channel(false);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let app = router(state.clone());
    let serve_state = state.clone();
    let thread =
        std::thread::Builder::new().name("helloflex-emulator".into()).spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => server::serve(listener, app, serve_state, stopped).await,
                    // Not `eprintln!`, which panics when stderr is a closed pipe.
                    Err(e) => {
                        let _ = writeln!(io::stderr().lock(), "helloflex-emulator: {e}");
                    }
                }
            });
            runtime.shutdown_timeout(Duration::from_millis(100));
        })?;
    Ok(Emulator { base_url, addr, state, stop, thread: Some(thread) })
}

impl Emulator {
    /// `http://127.0.0.1:<port>`: the API base URL, and the issuer (`iss`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `<base>/oauth2/token`
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base_url)
    }

    /// `<base>/oauth2/authorize`
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.base_url)
    }

    /// Ready settings for a HelloFlex client (client credentials) against this emulator.
    ///
    /// ```
    /// let emulator = helloflex_emulator::start(Default::default())?;
    /// let settings = emulator.helloflex();
    /// assert_eq!((settings.client_id, settings.client_secret), ("demo-client", "demo-secret"));
    /// assert_eq!(settings.base_url, emulator.base_url());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn helloflex(&self) -> HelloFlexSettings {
        HelloFlexSettings {
            base_url: self.base_url.clone(),
            client_id: config::DEMO_CLIENT.0,
            client_secret: config::DEMO_CLIENT.1,
        }
    }

    /// Ready settings for a Flextell client (authorization code) against this emulator, with
    /// users sent back to `redirect_uri` (registered by the caller: the defaults are
    /// `http://127.0.0.1:3000/callback`, and `http://127.0.0.1:<any port>/callback`).
    ///
    /// ```
    /// let emulator = helloflex_emulator::start(Default::default())?;
    /// let settings = emulator.flextell("http://127.0.0.1:3000/callback");
    /// assert_eq!(settings.authorize_url, format!("{}/oauth2/authorize", emulator.base_url()));
    /// assert_eq!(settings.client_id, "flextell-app");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn flextell(&self, redirect_uri: &str) -> FlextellSettings {
        FlextellSettings {
            authorize_url: self.authorize_url(),
            token_url: self.token_url(),
            redirect_uri: redirect_uri.to_owned(),
            base_url: self.base_url.clone(),
            issuer: self.base_url.clone(),
            client_id: config::WEB_APP.0,
            client_secret: config::WEB_APP.1,
            scopes: config::ALL_SCOPES,
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.state.lock().counters.clone()
    }

    /// Zeroes the counters and forgets each client's last token, so a token fetched after the
    /// reset is not counted early against one fetched before it.
    pub fn reset_counters(&self) {
        self.state.lock().reset_counters();
    }

    /// Plays a person who approves the authorization request `authorize_url` (the URL the SDK
    /// sends the browser to), whatever the consent mode: the same checks as the authorize
    /// endpoint, and the callback URL the browser would be sent to, with a fresh code. No HTTP
    /// client needed.
    ///
    /// ```
    /// let emulator = helloflex_emulator::start(Default::default())?;
    /// let url = format!(
    ///     "{}?response_type=code&client_id=flextell-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback\
    ///      &state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
    ///     emulator.authorize_url()
    /// );
    /// let callback = emulator.approve(&url).unwrap();
    /// assert!(callback.starts_with("http://127.0.0.1:3000/callback?code="));
    /// assert!(callback.contains("&state=s1"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn approve(&self, authorize_url: &str) -> Result<String, String> {
        self.decide(authorize_url, "approve")
    }

    /// Plays a person who clicks Deny: the callback URL with `error=access_denied`.
    pub fn deny(&self, authorize_url: &str) -> Result<String, String> {
        self.decide(authorize_url, "deny")
    }

    fn decide(&self, authorize_url: &str, decision: &str) -> Result<String, String> {
        let uri: axum::http::Uri =
            authorize_url.parse().map_err(|e| format!("not an authorize URL: {e}"))?;
        let axum::extract::Query(params) =
            axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(&uri)
                .map_err(|e| format!("unreadable authorize URL query: {e}"))?;
        match oauth::decide(&self.state, &params, Some(decision)) {
            oauth::Authorize::Redirect(location) => Ok(location),
            oauth::Authorize::Refuse(message) => Err(message.to_owned()),
            oauth::Authorize::AskConsent { .. } => Err("no decision was taken".to_owned()),
        }
    }

    /// Adds a fault.
    ///
    /// # Panics
    ///
    /// If the fault cannot work (see [`Emulator::try_add_fault`]), with the refusals: a mistake
    /// in the test that adds it, said at once rather than a fault that never fires.
    #[track_caller]
    pub fn add_fault(&self, fault: Fault) {
        if let Err(refusals) = self.try_add_fault(fault) {
            panic!("add_fault: {}", refusal::one_line(&refusals));
        }
    }

    /// Adds a fault, or refuses it if it cannot work (see [`EmulatorConfig::check_fault`]):
    /// the fields are named as in the fault's JSON (`path`, `status`).
    pub fn try_add_fault(&self, fault: Fault) -> Result<(), Vec<Refusal>> {
        let mut inner = self.state.lock();
        inner.config.check_fault(&fault)?;
        inner.faults.push(fault);
        Ok(())
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Revokes every token now (of one client, if named).
    ///
    /// # Panics
    ///
    /// If `client` is not registered (nothing would be revoked): a mistake in the test.
    #[track_caller]
    pub fn revoke(&self, client: Option<&str>) {
        let mut inner = self.state.lock();
        if let Some(problem) = client.and_then(|c| inner.unregistered(c)) {
            drop(inner);
            panic!("revoke: client: {problem}");
        }
        inner.revoke_all(client);
    }

    /// Sets the consent behaviour.
    pub fn set_consent(&self, consent: Consent) {
        self.state.lock().consent = consent;
    }

    /// Sets the lifetime of access tokens issued from now (of one client, if named): at most a
    /// year; less than a second works, and zero issues tokens already expired.
    ///
    /// # Panics
    ///
    /// If `client` is not registered, or `lifetime` is over a year: a mistake in the test.
    #[track_caller]
    pub fn set_token_lifetime(&self, lifetime: Duration, client: Option<&str>) {
        let mut inner = self.state.lock();
        let max = Duration::from_secs(*TOKEN_LIFETIME_SECONDS.end());
        let problem = match client.and_then(|c| inner.unregistered(c)) {
            Some(problem) => Some(format!("client: {problem}")),
            None => (lifetime > max).then(|| {
                format!("lifetime: must be at most {} s (got {lifetime:?})", max.as_secs())
            }),
        };
        if let Some(problem) = problem {
            drop(inner);
            panic!("set_token_lifetime: {problem}");
        }
        match client {
            Some(c) => {
                inner.client_lifetimes.insert(c.to_owned(), lifetime);
            }
            None => inner.token_lifetime = lifetime,
        }
    }

    /// Stops serving and waits for the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
