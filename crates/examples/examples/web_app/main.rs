//! A server-side Flextell web application (axum), written to be copied: `/login` redirects to
//! the authorize URL, the callback is checked and the code exchanged, the pending
//! authorizations live server-side per browser session, the tokens live in a server-side store
//! per user, and a page calls the API with them.
//!
//! One `Client` serves every user: it is built once, and each signed-in user gets
//! `client.for_user(store)` (the same HTTP pool and the same memory of completed
//! authorizations, a token store of their own), created only after their callback succeeded.
//!
//! What keeps it safe (each is explained where it is done):
//! - sessions (`sessions.rs`): random ids or none at all, a new id at sign-in (no session
//!   fixation), a bounded table where anonymous sessions make room before signed-in ones, an
//!   idle timeout;
//! - sign-out is a `POST` carrying the session's CSRF token, from this site's own origin; a
//!   `GET /logout` only asks;
//! - cookies are `HttpOnly`, `SameSite=Lax`, and over https `Secure` with the `__Host-` prefix;
//! - every server-supplied text is escaped, pages are never cached and may not be framed, and
//!   error details go to the server's log, not to the page;
//! - refusing consent at Flextell (Deny) is a normal outcome with its own page.
//!
//! ```sh
//! cargo run --example web_app                 # then open http://127.0.0.1:3000/
//! cargo run --example web_app -- --port 3001  # another port (register its callback first)
//! cargo run --example web_app -- --help
//! ```
//!
//! It runs against the embedded emulator with its consent page;
//! `crates/examples/tests/web_app.rs` drives it with cookie-keeping HTTP clients and
//! `crates/examples/tests/web_app_browser.rs` with a real browser.

mod pages;
mod sessions;

use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Router, middleware};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use helloflex::{
    AuthorizationCodeConfig, CallbackError, Client, ClientIdentity, ClientSecret, ConfigError,
    CsrfState, Endpoint, Entropy, Environment, Error, InsecureLoopback, MemoryStore, OsEntropy,
};
use pages::{
    Viewer, error_page, escape, expired_sign_in, page, refused_page, sign_in_failed, sign_out_form,
};
use sessions::Sessions;

/// How long an idle session lives.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Sessions kept at most: memory stays bounded whatever arrives.
const MAX_SESSIONS: usize = 10_000;

/// The app's state: the sessions, and the one client every user shares.
#[derive(Clone)]
pub struct App {
    sessions: Arc<Mutex<Sessions>>,
    client: Client,
    /// This site's origin as a browser writes it in `Origin` (`http://127.0.0.1:3000`).
    origin: String,
    /// Served over https: cookies are `Secure` and named with the `__Host-` prefix.
    https: bool,
}

/// The app's own clock: sessions expire by it.
#[allow(clippy::disallowed_methods)] // an application reads the time; the SDK never does
fn now() -> Instant {
    Instant::now()
}

impl App {
    /// An app for the Flextell at `issuer` (the emulator's base URL), served at the origin
    /// `self_url` (`https://app.example` or, for development, `http://127.0.0.1:3000`).
    pub fn new(
        issuer: &str,
        self_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, Error> {
        let (origin, https) = origin_of(self_url)?;
        let e = |url: &str| Endpoint::parse(url, InsecureLoopback::Allow);
        let config = AuthorizationCodeConfig::builder(ClientIdentity::confidential(
            client_id,
            ClientSecret::new(client_secret),
        ))
        .authorize_url(e(&format!("{issuer}/oauth2/authorize"))?)
        .token_url(e(&format!("{issuer}/oauth2/token"))?)
        .redirect_uri(e(&format!("{origin}/callback"))?)
        .build()?
        .with_scopes(["news.read", "calls.read"])
        .with_issuer(issuer);
        let environment = Environment::custom(issuer, InsecureLoopback::Allow)?;
        // Its own store is never used: each user gets one through `for_user`.
        let client = Client::builder()
            .environment(environment)
            .authorization_code(config, Arc::new(MemoryStore::new()))
            .build()?;
        let sessions = Sessions::new(MAX_SESSIONS, SESSION_IDLE, Arc::new(OsEntropy));
        Ok(Self { sessions: Arc::new(Mutex::new(sessions)), client, origin, https })
    }

    /// Sessions end after `idle` without a request (default 30 minutes).
    pub fn with_session_idle(self, idle: Duration) -> Self {
        self.sessions().set_idle(idle);
        self
    }

    /// At most `max` sessions are kept (default 10,000).
    pub fn with_max_sessions(self, max: usize) -> Self {
        self.sessions().set_max(max);
        self
    }

    /// Where session ids and CSRF tokens come from (the OS; tests hand in a failing source).
    pub fn with_entropy(self, entropy: Arc<dyn Entropy>) -> Self {
        self.sessions().set_entropy(entropy);
        self
    }

    /// Sessions held: (anonymous, signed in).
    pub fn session_counts(&self) -> (usize, usize) {
        self.sessions().counts()
    }

    /// The routes, every response with the headers of `pages::harden`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/login", get(login))
            .route("/callback", get(callback))
            .route("/news", get(news))
            .route("/logout", get(confirm_logout).post(logout))
            .layer(middleware::map_response(pages::harden))
            .with_state(self)
    }

    /// The session table, locked. Never held across an `.await`. A panic while it was held
    /// leaves a table that is still consistent (every change is one map operation), so a
    /// poisoned lock is taken over rather than taking the whole app down.
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cookie_name(&self) -> &'static str {
        // `__Host-`: the browser takes this cookie only from this exact host over https, with
        // `Path=/`, so a sibling subdomain cannot plant a session id here.
        if self.https { "__Host-sid" } else { "sid" }
    }

    /// The session id the browser sent, if any.
    fn session_id(&self, jar: &CookieJar) -> Option<String> {
        jar.get(self.cookie_name()).map(|c| c.value().to_owned())
    }

    /// The session cookie: out of reach of scripts (`HttpOnly`), not sent on cross-site
    /// subrequests or POSTs (`SameSite=Lax`; a top-level link still carries it, which the
    /// callback from Flextell needs), https-only when served over https.
    fn cookie(&self, id: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.cookie_name(), id);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_secure(self.https);
        cookie.set_path("/");
        cookie
    }

    /// Deletes the session cookie (with the same attributes, or a `__Host-` one is ignored).
    fn forget(&self, jar: CookieJar) -> CookieJar {
        let mut cookie = self.cookie(String::new());
        cookie.make_removal();
        jar.add(cookie)
    }

    /// Whether a state-changing request comes from this site's own pages. Browsers send
    /// `Sec-Fetch-Site` (current ones) and `Origin` (on every POST); one that names another
    /// origin is refused, even a sibling on the same host, which `SameSite` treats as the same
    /// site. A request with neither is not from a browser's page (or from a very old
    /// browser): the CSRF token alone decides.
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        let site_ok = headers.get("sec-fetch-site").is_none_or(|site| site == "same-origin");
        let origin_ok = headers.get(header::ORIGIN).is_none_or(|origin| origin == &self.origin);
        site_ok && origin_ok
    }
}

/// The origin of `self_url` as browsers write it in `Origin`, and whether it is https. Plain
/// http is accepted only for loopback (`Endpoint::parse` refuses it elsewhere), so "not https"
/// means "a developer's machine", where `Secure` cookies would not be kept.
fn origin_of(self_url: &str) -> Result<(String, bool), ConfigError> {
    let not_an_origin =
        ConfigError::Invalid { name: "self_url", reason: "must be an origin, with no path" };
    let self_url = self_url.trim_end_matches('/');
    Endpoint::parse(self_url, InsecureLoopback::Allow)?;
    let uri: Uri = self_url.parse().map_err(|_| not_an_origin.clone())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(not_an_origin);
    };
    if !matches!(uri.path(), "" | "/") {
        return Err(not_an_origin);
    }
    let https = scheme.eq_ignore_ascii_case("https");
    let default_port = if https { 443 } else { 80 };
    let host = authority.host().to_ascii_lowercase();
    let origin = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}://{host}:{port}", scheme.to_lowercase()),
        _ => format!("{}://{host}", scheme.to_lowercase()),
    };
    Ok((origin, https))
}

async fn home(State(app): State<App>, jar: CookieJar) -> Html<String> {
    let viewer = match app.session_id(&jar) {
        Some(id) => Viewer::of(app.sessions().get(&id, now()).as_deref()),
        None => Viewer::Anonymous,
    };
    match viewer {
        Viewer::SignedIn(_) => page(
            "Signed in",
            &viewer,
            r#"<p><a href="/news">Read the news with your tokens</a></p>"#,
        ),
        Viewer::Anonymous => page(
            "Welcome",
            &viewer,
            r#"<p><a href="/login">Sign in with Flextell</a> to read the news.</p>"#,
        ),
    }
}

async fn login(State(app): State<App>, jar: CookieJar) -> Response {
    let (url, pending) = match app.client.start_authorization() {
        Ok(started) => started,
        Err(e) => {
            let message = "Signing in could not start. Please try again.";
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &Viewer::Anonymous,
                message,
                Some("/login"),
                &e,
            );
        }
    };
    let mut sessions = app.sessions();
    // A second tab (or a signed-in user whose tokens were revoked) signing in adds its own
    // pending authorization to the session it has.
    if let Some(session) = app.session_id(&jar).and_then(|id| sessions.get(&id, now())) {
        session.add_pending(pending);
        return Redirect::to(&url).into_response();
    }
    let started = sessions.start(pending, now());
    drop(sessions);
    match started {
        Ok(id) => (jar.add(app.cookie(id)), Redirect::to(&url)).into_response(),
        Err(refused) => refused_page(refused),
    }
}

async fn callback(State(app): State<App>, jar: CookieJar, uri: Uri) -> Response {
    let id = app.session_id(&jar).unwrap_or_default();
    let (pending, viewer) = {
        let mut sessions = app.sessions();
        let session = sessions.get(&id, now());
        (
            session.as_ref().map(|s| s.pending.clone()).unwrap_or_default(),
            Viewer::of(session.as_deref()),
        )
    };
    let signed_in = matches!(viewer, Viewer::SignedIn(_));
    if pending.is_empty() {
        // A reload or the back button after signing in: nothing to do, the user is in.
        if signed_in {
            return Redirect::to("/news").into_response();
        }
        return expired_sign_in(&viewer);
    }
    let user = match app.client.for_user(Arc::new(MemoryStore::new())) {
        Ok(user) => user,
        Err(e) => {
            let message = "Signing in failed. Please try again.";
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &viewer,
                message,
                Some("/login"),
                &e,
            );
        }
    };
    let callback = uri.to_string();
    // The callback belongs to at most one of this session's sign-ins (by its `state`).
    for candidate in &pending {
        match user.complete_authorization(candidate, &callback).await {
            Ok(_) => {
                // Signed in: a new session with a new id replaces the one the browser had.
                let signed_in = app.sessions().sign_in(&id, user, now());
                return match signed_in {
                    Ok(new_id) => {
                        (jar.add(app.cookie(new_id)), Redirect::to("/news")).into_response()
                    }
                    Err(refused) => (app.forget(jar), refused_page(refused)).into_response(),
                };
            }
            // Not this sign-in's callback (or unreadable, so no sign-in's): try the next one.
            // These leave the sign-ins in place, so a forged link cannot cancel one.
            Err(Error::Callback(
                CallbackError::StateMismatch
                | CallbackError::MissingState
                | CallbackError::Malformed(_)
                | CallbackError::DuplicateParameter(_),
            )) => {}
            Err(Error::Callback(CallbackError::AlreadyCompleted)) if signed_in => {
                return Redirect::to("/news").into_response();
            }
            Err(e) => {
                // This sign-in's callback, refused (Deny) or failed: it is used up (Flextell
                // never accepts its code twice); the session's other sign-ins stay.
                if let Some(session) = app.sessions().get(&id, now()) {
                    session.pending.retain(|p| p.id() != candidate.id());
                }
                return sign_in_failed(&viewer, &e);
            }
        }
    }
    let message = "This sign-in link is not valid in this browser.";
    let detail = "a callback for no sign-in of this session";
    error_page(StatusCode::BAD_REQUEST, &viewer, message, Some("/login"), &detail)
}

async fn news(State(app): State<App>, jar: CookieJar) -> Response {
    let user = app
        .session_id(&jar)
        .and_then(|id| app.sessions().get(&id, now()).and_then(|s| s.user.clone()));
    let Some(user) = user else { return Redirect::to("/login").into_response() };
    let viewer = Viewer::SignedIn(user.csrf.clone());
    match user.client.get("news").send().await {
        Ok(response) => {
            let items: Vec<serde_json::Value> = response.json().unwrap_or_default();
            let list: String = items
                .iter()
                .map(|item| {
                    let title = item["title"].as_str().unwrap_or("(untitled)");
                    format!("<li>{}</li>", escape(title))
                })
                .collect();
            page("News", &viewer, &format!("<ul>{list}</ul>")).into_response()
        }
        Err(e) if e.requires_reauthorization() => Redirect::to("/login").into_response(),
        Err(e) => {
            let message = "The news could not be loaded. Please try again later.";
            error_page(StatusCode::BAD_GATEWAY, &viewer, message, Some("/news"), &e)
        }
    }
}

/// `GET /logout` changes nothing (a link or an image on another site could make a browser
/// fetch it): it shows the sign-out button.
async fn confirm_logout(State(app): State<App>, jar: CookieJar) -> Response {
    let viewer = match app.session_id(&jar) {
        Some(id) => Viewer::of(app.sessions().get(&id, now()).as_deref()),
        None => Viewer::Anonymous,
    };
    match &viewer {
        Viewer::SignedIn(csrf) => {
            let body = format!("<p>Sign out of this app?</p>{}", sign_out_form(csrf));
            page("Sign out", &viewer, &body).into_response()
        }
        Viewer::Anonymous => Redirect::to("/").into_response(),
    }
}

/// The sign-out form's fields.
#[derive(serde::Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /logout`: ends the session if the request comes from this site's page, with this
/// session's CSRF token. Otherwise the user stays signed in and is told so.
async fn logout(
    State(app): State<App>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Some(id) = app.session_id(&jar) else { return Redirect::to("/").into_response() };
    let submitted = form.ok().and_then(|Form(form)| form.csrf).map(CsrfState::new);
    let mut sessions = app.sessions();
    let Some(session) = sessions.get(&id, now()) else {
        // Expired or unknown: already signed out.
        drop(sessions);
        return (app.forget(jar), Redirect::to("/")).into_response();
    };
    let viewer = Viewer::of(Some(session));
    let Viewer::SignedIn(csrf) = &viewer else { return Redirect::to("/").into_response() };
    // `==` on `CsrfState` compares in constant time.
    if app.same_origin(&headers) && submitted.as_ref() == Some(csrf) {
        sessions.remove(&id);
        drop(sessions);
        return (app.forget(jar), Redirect::to("/")).into_response();
    }
    drop(sessions);
    eprintln!("web_app: 403: a sign-out without this site's origin or CSRF token was refused");
    let body = format!(
        "<p>This sign-out request did not come from this site's own page, so you are still \
         signed in. To sign out, use this button:</p>{}",
        sign_out_form(csrf)
    );
    (StatusCode::FORBIDDEN, page("Still signed in", &viewer, &body)).into_response()
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the usage and exit.
    Help,
    /// Serve.
    Serve {
        /// The port on 127.0.0.1.
        port: u16,
        /// Sessions kept at most.
        max_sessions: usize,
    },
}

/// The usage text of `--help`.
pub const USAGE: &str = "\
A Flextell web app (sign in, read the news) against the embedded Flextell emulator.

Usage: cargo run --example web_app -- [OPTIONS]

Options:
  --port <PORT>          Listen on 127.0.0.1:<PORT> [default: 3000]
  --max-sessions <N>     Keep at most N sessions [default: 10000]; when full, the
                         longest-idle anonymous session makes room, and signed-in
                         users are never signed out to make room
  -h, --help             Print this help and exit
";

/// Reads the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let (mut port, mut max_sessions) = (3000, MAX_SESSIONS);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .filter(|&p| p > 0)
                    .ok_or("--port takes a number from 1 to 65535")?;
            }
            "--max-sessions" => {
                max_sessions = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--max-sessions takes a number above 0")?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Command::Serve { port, max_sessions })
}

#[allow(dead_code)] // the tests include this file as a module and never call `main`
#[tokio::main]
async fn main() -> ExitCode {
    let (port, max_sessions) = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve { port, max_sessions }) => (port, max_sessions),
        Err(e) => {
            eprintln!("web_app: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(port, max_sessions).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web_app: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(dead_code)]
async fn serve(port: u16, max_sessions: usize) -> Result<(), Box<dyn std::error::Error>> {
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
    )?
    .with_max_sessions(max_sessions);
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
