//! A server-side Flextell web application (axum): login redirects to the authorize URL, the
//! callback is checked and the code exchanged, the pending authorization lives server-side per
//! browser session, the tokens live in a server-side store, and a page calls the API with them.
//!
//! ```sh
//! cargo run --example web_app     # then open http://127.0.0.1:3000/ in a browser
//! ```
//!
//! It runs against the embedded emulator with its consent page; `crates/examples/tests/web_app.rs`
//! drives it end to end with a cookie-keeping HTTP client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use helloflex_auth::MemoryStore;
use helloflex_core::{
    AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment, InsecureLoopback,
    PendingAuthorization,
};
use helloflex_transport_reqwest::Client;

/// One browser's server-side session.
#[derive(Default)]
struct Session {
    /// Between `/login` and `/callback`.
    pending: Option<PendingAuthorization>,
    /// After a successful callback: a client holding this user's tokens.
    client: Option<Client>,
}

/// The app's state: sessions by id, and how to reach Flextell.
#[derive(Clone)]
pub struct App {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    environment: Environment,
    config: AuthorizationCodeConfig,
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
        let config = AuthorizationCodeConfig::new(
            ClientIdentity::confidential(client_id, ClientSecret::new(client_secret)),
            e(&format!("{issuer}/oauth2/authorize"))?,
            e(&format!("{issuer}/oauth2/token"))?,
            e(&format!("{self_url}/callback"))?,
        )
        .with_scopes(["news.read", "calls.read"])
        .with_issuer(issuer);
        let environment = Environment::custom(issuer, InsecureLoopback::Allow)?;
        Ok(Self { sessions: Arc::default(), environment, config })
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/login", get(login))
            .route("/callback", get(callback))
            .route("/news", get(news))
            .with_state(self)
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| c.trim().strip_prefix("sid=").map(str::to_owned))
}

fn new_session_id() -> String {
    let bytes: [u8; 16] = helloflex_auth::os_bytes().unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn home(State(app): State<App>, headers: HeaderMap) -> Html<String> {
    let signed_in = session_id(&headers).is_some_and(|id| {
        app.sessions.lock().is_ok_and(|s| s.get(&id).is_some_and(|s| s.client.is_some()))
    });
    Html(if signed_in {
        "<p>Signed in. <a href=\"/news\">Read the news with your tokens</a></p>".into()
    } else {
        "<p><a href=\"/login\">Sign in with Flextell</a></p>".into()
    })
}

async fn login(State(app): State<App>) -> Response {
    let client = match Client::builder()
        .environment(app.environment.clone())
        .authorization_code(app.config.clone(), Arc::new(MemoryStore::new()))
        .build()
    {
        Ok(c) => c,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let (url, pending) = match client.start_authorization() {
        Ok(started) => started,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let id = new_session_id();
    if let Ok(mut sessions) = app.sessions.lock() {
        sessions.insert(id.clone(), Session { pending: Some(pending), client: Some(client) });
    }
    // The client is kept, but it holds no tokens until the callback succeeds.
    let cookie = format!("sid={id}; HttpOnly; SameSite=Lax; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response()
}

async fn callback(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(id) = session_id(&headers) else {
        return (StatusCode::BAD_REQUEST, "no session").into_response();
    };
    let (pending, client) = match app.sessions.lock() {
        Ok(mut sessions) => match sessions.get_mut(&id) {
            Some(s) => (s.pending.take(), s.client.clone()),
            None => (None, None),
        },
        Err(_) => (None, None),
    };
    let (Some(pending), Some(client)) = (pending, client) else {
        return (StatusCode::BAD_REQUEST, "no authorization in progress for this session")
            .into_response();
    };
    match client.complete_authorization(&pending, &uri.to_string()).await {
        Ok(_) => Redirect::to("/news").into_response(),
        Err(e) => (StatusCode::FORBIDDEN, format!("sign-in failed: {e}")).into_response(),
    }
}

async fn news(State(app): State<App>, headers: HeaderMap) -> Response {
    let client =
        session_id(&headers).and_then(|id| app.sessions.lock().ok()?.get(&id)?.client.clone());
    let Some(client) = client else { return Redirect::to("/login").into_response() };
    match client.get("news").send().await {
        Ok(response) => {
            Html(format!("<h1>News</h1><pre>{}</pre>", response.text().replace('<', "&lt;")))
                .into_response()
        }
        Err(e) if e.requires_reauthorization() => Redirect::to("/login").into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = helloflex_emulator::start(helloflex_emulator::EmulatorConfig {
        consent: helloflex_emulator::Consent::Prompt,
        ..Default::default()
    })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let app = App::new(
        emulator.base_url(),
        "http://127.0.0.1:3000",
        helloflex_emulator::WEB_APP.0,
        helloflex_emulator::WEB_APP.1,
    )?;
    println!("open http://127.0.0.1:3000/ (Flextell emulator at {})", emulator.base_url());
    axum::serve(listener, app.router()).await?;
    Ok(())
}
