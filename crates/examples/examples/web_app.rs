//! A server-side Flextell web application (axum): login redirects to the authorize URL, the
//! callback is checked and the code exchanged, the pending authorization lives server-side per
//! browser session, the tokens live in a server-side store, and a page calls the API with them.
//!
//! One `Client` serves every user: it is built once, and each signed-in user gets
//! `client.for_user(store)` (the same HTTP pool and the same memory of completed
//! authorizations, a token store of their own), created only after their callback succeeded.
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
    AuthorizationCodeConfig, CallbackError, ClientIdentity, ClientSecret, Endpoint, Environment,
    Error, InsecureLoopback, PendingAuthorization,
};
use helloflex_transport_reqwest::Client;

/// One browser's server-side session.
#[derive(Default)]
struct Session {
    /// Between `/login` and a successful `/callback` (kept through a forged callback).
    pending: Option<PendingAuthorization>,
    /// After a successful callback: this user's client (their tokens, the shared pool).
    client: Option<Client>,
}

/// The app's state: sessions by id, and the one client every user shares.
#[derive(Clone)]
pub struct App {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    client: Client,
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
        // Its own store is never used: each user gets one through `for_user`.
        let client = Client::builder()
            .environment(environment)
            .authorization_code(config, Arc::new(MemoryStore::new()))
            .build()?;
        Ok(Self { sessions: Arc::default(), client })
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
    let (url, pending) = match app.client.start_authorization() {
        Ok(started) => started,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let id = new_session_id();
    if let Ok(mut sessions) = app.sessions.lock() {
        sessions.insert(id.clone(), Session { pending: Some(pending), client: None });
    }
    // Not signed in yet: only a successful callback signs the session in.
    let cookie = format!("sid={id}; HttpOnly; SameSite=Lax; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response()
}

async fn callback(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(id) = session_id(&headers) else {
        return (StatusCode::BAD_REQUEST, "no session").into_response();
    };
    let (pending, signed_in) = match app.sessions.lock() {
        Ok(sessions) => match sessions.get(&id) {
            Some(s) => (s.pending.clone(), s.client.is_some()),
            None => (None, false),
        },
        Err(_) => (None, false),
    };
    let Some(pending) = pending else {
        // A reload or the back button after signing in: nothing to do, the user is in.
        if signed_in {
            return Redirect::to("/news").into_response();
        }
        return (StatusCode::BAD_REQUEST, "no authorization in progress for this session")
            .into_response();
    };
    let user = match app.client.for_user(Arc::new(MemoryStore::new())) {
        Ok(user) => user,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match user.complete_authorization(&pending, &uri.to_string()).await {
        Ok(_) => {
            if let Ok(mut sessions) = app.sessions.lock() {
                sessions.insert(id, Session { pending: None, client: Some(user) });
            }
            Redirect::to("/news").into_response()
        }
        // A forged or stray callback: the session's sign-in stays in progress.
        Err(Error::Callback(CallbackError::StateMismatch | CallbackError::MissingState)) => {
            (StatusCode::BAD_REQUEST, "this callback is not for this session").into_response()
        }
        Err(e) => {
            // Denied, or the exchange failed: this authorization is used up.
            if let Ok(mut sessions) = app.sessions.lock()
                && let Some(session) = sessions.get_mut(&id)
            {
                session.pending = None;
            }
            (StatusCode::FORBIDDEN, format!("sign-in failed: {e}")).into_response()
        }
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
