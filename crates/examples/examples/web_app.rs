//! A server-side Flextell web application (axum), written to be copied: login redirects to the
//! authorize URL, the callback is checked and the code exchanged, the pending authorizations
//! live server-side per browser session, the tokens live in a server-side store per user, and
//! a page calls the API with them.
//!
//! One `Client` serves every user: it is built once, and each signed-in user gets
//! `client.for_user(store)` (the same HTTP pool and the same memory of completed
//! authorizations, a token store of their own), created only after their callback succeeded.
//! Sessions expire after 30 idle minutes; `/logout` ends one. Cookies are `HttpOnly`,
//! `SameSite=Lax`, and `Secure` when the app is served over https. Every server-supplied text is
//! escaped.
//!
//! ```sh
//! cargo run --example web_app                 # then open http://127.0.0.1:3000/
//! cargo run --example web_app -- --port 3001  # another port (register its callback first)
//! ```
//!
//! It runs against the embedded emulator with its consent page; `crates/examples/tests/web_app.rs`
//! drives it end to end with a cookie-keeping HTTP client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use helloflex_auth::MemoryStore;
use helloflex_core::{
    AuthorizationCodeConfig, CallbackError, ClientIdentity, ClientSecret, Endpoint, Environment,
    Error, InsecureLoopback, PendingAuthorization,
};
use helloflex_transport_reqwest::Client;

/// How long an idle session lives.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Sessions kept at most: a flood of `GET /login` evicts the longest idle, never grows memory
/// without bound (about 1 KB each).
const MAX_SESSIONS: usize = 10_000;
/// Sign-ins a session may have in flight at once (one per tab).
const PENDING_PER_SESSION: usize = 4;
const COOKIE: &str = "sid";

/// One browser's server-side session.
struct Session {
    /// Sign-ins started and not yet completed (a forged callback leaves them in place).
    pending: Vec<PendingAuthorization>,
    /// After a successful callback: this user's client (their tokens, the shared pool).
    client: Option<Client>,
    last_seen: Instant,
}

/// The app's state: sessions by id, and the one client every user shares.
#[derive(Clone)]
pub struct App {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    client: Client,
    secure_cookies: bool,
    session_idle: Duration,
}

/// The app's own clock: sessions expire by it.
#[allow(clippy::disallowed_methods)] // an application reads the time; the SDK never does
fn now() -> Instant {
    Instant::now()
}

impl App {
    /// An app for the Flextell at `issuer` (the emulator's base URL), served on `self_url`.
    pub fn new(
        issuer: &str,
        self_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, helloflex_core::Error> {
        let e = |url: &str| Endpoint::parse(url, InsecureLoopback::Allow);
        let config = AuthorizationCodeConfig::builder(ClientIdentity::confidential(
            client_id,
            ClientSecret::new(client_secret),
        ))
        .authorize_url(e(&format!("{issuer}/oauth2/authorize"))?)
        .token_url(e(&format!("{issuer}/oauth2/token"))?)
        .redirect_uri(e(&format!("{self_url}/callback"))?)
        .build()?
        .with_scopes(["news.read", "calls.read"])
        .with_issuer(issuer);
        let environment = Environment::custom(issuer, InsecureLoopback::Allow)?;
        // Its own store is never used: each user gets one through `for_user`.
        let client = Client::builder()
            .environment(environment)
            .authorization_code(config, Arc::new(MemoryStore::new()))
            .build()?;
        let secure_cookies = self_url.starts_with("https://");
        Ok(Self { sessions: Arc::default(), client, secure_cookies, session_idle: SESSION_IDLE })
    }

    /// Sessions end after `idle` without a request (default 30 minutes).
    pub fn with_session_idle(mut self, idle: Duration) -> Self {
        self.session_idle = idle;
        self
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/login", get(login))
            .route("/callback", get(callback))
            .route("/news", get(news))
            .route("/logout", get(logout))
            .with_state(self)
    }

    /// Runs `f` on the live session behind `jar`'s cookie (expired ones are dropped first).
    fn with_session<T>(&self, jar: &CookieJar, f: impl FnOnce(Option<&mut Session>) -> T) -> T {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < self.session_idle);
        let session = jar.get(COOKIE).and_then(|c| sessions.get_mut(c.value()));
        match session {
            Some(session) => {
                session.last_seen = now;
                f(Some(session))
            }
            None => f(None),
        }
    }

    fn cookie(&self, id: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(COOKIE, id);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_secure(self.secure_cookies);
        cookie.set_path("/");
        cookie
    }
}

fn new_session_id() -> String {
    let bytes: [u8; 16] = helloflex_auth::os_bytes().unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Text from a server or a user, made safe to put in HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A page: a title, a little CSS, a navigation bar, and `body` (already HTML).
fn page(title: &str, signed_in: bool, body: &str) -> Html<String> {
    let nav = if signed_in {
        r#"<a href="/">Home</a> · <a href="/news">News</a> · <a href="/logout">Sign out</a>"#
    } else {
        r#"<a href="/">Home</a> · <a href="/login">Sign in with Flextell</a>"#
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · HelloFlex demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
nav{{margin-bottom:1.5rem}} .error{{color:#a00}} li{{margin:.3rem 0}}</style></head>
<body><nav>{nav}</nav><h1>{title}</h1>{body}</body></html>"#,
        title = escape(title)
    ))
}

fn error_page(status: StatusCode, signed_in: bool, message: &str) -> Response {
    let body = format!(
        r#"<p class="error">{}</p><p><a href="/">Back to the start</a></p>"#,
        escape(message)
    );
    (status, page("Something went wrong", signed_in, &body)).into_response()
}

async fn home(State(app): State<App>, jar: CookieJar) -> Html<String> {
    let signed_in = app.with_session(&jar, |s| s.is_some_and(|s| s.client.is_some()));
    if signed_in {
        page("Signed in", true, r#"<p><a href="/news">Read the news with your tokens</a></p>"#)
    } else {
        page(
            "Welcome",
            false,
            r#"<p><a href="/login">Sign in with Flextell</a> to read the news.</p>"#,
        )
    }
}

async fn login(State(app): State<App>, jar: CookieJar) -> Response {
    let (url, pending) = match app.client.start_authorization() {
        Ok(started) => started,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, false, &e.to_string()),
    };
    // A second tab signing in adds its own pending authorization to the same session.
    let existing = app.with_session(&jar, |session| match session {
        Some(session) => {
            if session.pending.len() == PENDING_PER_SESSION {
                session.pending.remove(0);
            }
            session.pending.push(pending.clone());
            true
        }
        None => false,
    });
    if existing {
        return Redirect::to(&url).into_response();
    }
    let id = new_session_id();
    let session = Session { pending: vec![pending], client: None, last_seen: now() };
    let mut sessions = app.sessions.lock().unwrap_or_else(PoisonError::into_inner);
    if sessions.len() >= MAX_SESSIONS {
        let idlest = sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(id, _)| id.clone());
        if let Some(idlest) = idlest {
            sessions.remove(&idlest);
        }
    }
    sessions.insert(id.clone(), session);
    drop(sessions);
    (jar.add(app.cookie(id)), Redirect::to(&url)).into_response()
}

async fn callback(State(app): State<App>, jar: CookieJar, uri: Uri) -> Response {
    let (pending, signed_in) = app.with_session(&jar, |s| match s {
        Some(s) => (s.pending.clone(), s.client.is_some()),
        None => (Vec::new(), false),
    });
    if pending.is_empty() {
        // A reload or the back button after signing in: nothing to do, the user is in.
        if signed_in {
            return Redirect::to("/news").into_response();
        }
        return error_page(StatusCode::BAD_REQUEST, false, "No sign-in is in progress here.");
    }
    let user = match app.client.for_user(Arc::new(MemoryStore::new())) {
        Ok(user) => user,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, false, &e.to_string()),
    };
    let callback = uri.to_string();
    // The callback belongs to at most one of this session's sign-ins (by its `state`).
    for candidate in &pending {
        match user.complete_authorization(candidate, &callback).await {
            Ok(_) => {
                app.with_session(&jar, |s| {
                    if let Some(s) = s {
                        s.pending.clear();
                        s.client = Some(user.clone());
                    }
                });
                return Redirect::to("/news").into_response();
            }
            Err(Error::Callback(CallbackError::StateMismatch | CallbackError::MissingState)) => {}
            Err(Error::Callback(CallbackError::AlreadyCompleted)) if signed_in => {
                return Redirect::to("/news").into_response();
            }
            Err(e) => {
                // Denied, or the exchange failed: this sign-in is used up; others stay.
                app.with_session(&jar, |s| {
                    if let Some(s) = s {
                        s.pending.retain(|p| p.id() != candidate.id());
                    }
                });
                return error_page(
                    StatusCode::FORBIDDEN,
                    signed_in,
                    &format!("Sign-in failed: {e}"),
                );
            }
        }
    }
    error_page(StatusCode::BAD_REQUEST, signed_in, "This callback is not for this session.")
}

async fn news(State(app): State<App>, jar: CookieJar) -> Response {
    let client = app.with_session(&jar, |s| s.and_then(|s| s.client.clone()));
    let Some(client) = client else { return Redirect::to("/login").into_response() };
    match client.get("news").send().await {
        Ok(response) => {
            let items: Vec<serde_json::Value> = response.json().unwrap_or_default();
            let list: String = items
                .iter()
                .map(|item| {
                    let title = item["title"].as_str().unwrap_or("(untitled)");
                    format!("<li>{}</li>", escape(title))
                })
                .collect();
            page("News", true, &format!("<ul>{list}</ul>")).into_response()
        }
        Err(e) if e.requires_reauthorization() => Redirect::to("/login").into_response(),
        Err(e) => error_page(StatusCode::BAD_GATEWAY, true, &format!("The API failed: {e}")),
    }
}

async fn logout(State(app): State<App>, jar: CookieJar) -> Response {
    if let Some(cookie) = jar.get(COOKIE) {
        app.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(cookie.value());
    }
    (jar.remove(Cookie::build(COOKIE).path("/")), Redirect::to("/")).into_response()
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().skip_while(|a| a != "--port").nth(1) {
        Some(port) => port.parse().map_err(|_| "--port takes a number from 1 to 65535")?,
        None => 3000,
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(format!("port {port} is in use: pick another with --port").into());
        }
        Err(e) => return Err(format!("cannot listen on port {port}: {e}").into()),
    };
    let self_url = format!("http://127.0.0.1:{port}");
    let config = helloflex_emulator::EmulatorConfig {
        consent: helloflex_emulator::Consent::Prompt,
        ..Default::default()
    }
    .with_redirect_uri(helloflex_emulator::WEB_APP.0, &format!("{self_url}/callback"));
    let emulator = helloflex_emulator::start(config)?;
    let app = App::new(
        emulator.base_url(),
        &self_url,
        helloflex_emulator::WEB_APP.0,
        helloflex_emulator::WEB_APP.1,
    )?;
    println!("open {self_url}/ (Flextell emulator at {})", emulator.base_url());
    let client = app.client.clone();
    axum::serve(listener, app.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The users' refreshes still in flight are stored before the process exits: a rotated
    // refresh token lost here would be a reuse on the next refresh, and the grant revoked.
    if !client.close(Duration::from_secs(10)).await {
        eprintln!("a token refresh was still in flight at exit");
    }
    Ok(())
}
