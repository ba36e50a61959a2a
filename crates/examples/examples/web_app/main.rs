//! A server-side Flextell web application (axum), written to be copied: `/login` redirects to
//! the authorize URL, the callback is checked and the code exchanged, the pending
//! authorizations live server-side per browser session, the tokens live in the app's database
//! (one sealed row per user), and a page calls the API with them. A restart signs nobody out:
//! the sessions and the users' tokens are in the database, the key that seals the tokens in a
//! key file beside it (or an environment variable).
//!
//! One `Client` serves every user: it is built once, and each signed-in user gets
//! `client.for_user(store)` (the same HTTP pool and the same memory of completed
//! authorizations, a token store of their own: `SqlStore::for_user`, their row).
//!
//! Where things are kept (`--database`, see `USAGE`):
//! - `web_app.db` (SQLite, created 0600 in the current directory unless `--database` says
//!   otherwise): the users' tokens (the SDK's `helloflex_*` tables, each row sealed with
//!   XChaCha20-Poly1305) and the app's session table (`sessions.rs`: hashed ids only). Not a
//!   temporary directory: a fixed name there can be planted by another local user, and is
//!   cleaned away at reboot. With `--database postgres://...` (feature `postgres`), the tokens
//!   go to PostgreSQL and the session table to `web_app-sessions.db`: the same code.
//! - the key: `WEB_APP_TOKEN_KEYS` if set (`id:base64-of-32-bytes`, see `KeyRing::parse`),
//!   else the key file (`<database>.key`, or `--key-file`), created 0600 with a new key on the
//!   first run, refused if others can read it. Keep it out of the database's backups (a stolen
//!   backup is then no stolen tokens) and never commit it; lose it and everyone signs in again.
//! - who the user is: Flextell answers a sign-in with tokens only (no `sub`, no userinfo), so
//!   each sign-in gets a random user id, the key of its row. An app whose provider names the
//!   user keys the row by that instead (see `callback`).
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
//! cargo run --example web_app -- --port 3001  # another port (the built-in emulator learns its callback; register it with a real Flextell)
//! cargo run --example web_app -- --help
//! # Signed in across a restart: a Flextell that outlives the app (the embedded one forgets
//! # every grant when the app stops), then stop and start the app at will.
//! cargo run -p helloflex-emulator -- --port 8080 --consent prompt
//! cargo run --example web_app -- --flextell http://127.0.0.1:8080
//! # The users' tokens in PostgreSQL.
//! cargo run --example web_app --features postgres -- --database postgres://app@localhost/app
//! ```
//!
//! It runs against the embedded emulator with its consent page;
//! `crates/examples/tests/web_app.rs` drives it with cookie-keeping HTTP clients and
//! `crates/examples/tests/web_app_browser.rs` and `web_app_restart_browser.rs` with a real
//! browser.

mod pages;
mod sessions;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Router, middleware};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use helloflex::{
    AuthorizationCodeConfig, CallbackError, Client, ClientIdentity, ClientSecret, ConfigError,
    CsrfState, Database, Endpoint, Entropy, Environment, Error, InsecureLoopback, Key, KeyError,
    KeyRing, MemoryStore, OsEntropy, SqlStore,
};
use pages::{
    Viewer, error_page, escape, expired_sign_in, page, refused_page, sign_in_failed, sign_out_form,
};
use sessions::{Millis, Refused, Session, Sessions};

/// How long an idle session lives.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Sessions kept at most: the table stays bounded whatever arrives.
const MAX_SESSIONS: usize = 10_000;
/// The database unless `--database` says otherwise.
pub const DEFAULT_DATABASE: &str = "web_app.db";
/// The environment variable that holds the key ring the tokens are sealed with
/// (`id:base64-of-32-bytes`, more keys after commas while rotating), if it is set.
pub const KEY_VARIABLE: &str = "WEB_APP_TOKEN_KEYS";
/// The session table's SQLite file when the tokens are in PostgreSQL.
const POSTGRES_SESSIONS: &str = "web_app-sessions.db";
/// The key file when the tokens are in PostgreSQL and `--key-file` is not given.
const POSTGRES_KEY_FILE: &str = "web_app.key";

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

/// The app's own clock, the wall clock (sessions expire by it, also across a restart). A clock
/// set back makes sessions last longer by as much; one set forward ends them early.
#[allow(clippy::disallowed_methods)] // an application reads the time; the SDK never does
fn now() -> Millis {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Millis::try_from(since_epoch.as_millis()).unwrap_or(Millis::MAX)
}

/// Where the app keeps what survives a restart: the users' tokens (sealed), the session table,
/// and the key.
pub struct Storage {
    tokens: SqlStore,
    sessions: PathBuf,
    /// Where things are, for the start-up line (paths only, never a secret).
    described: String,
}

impl Storage {
    /// The storage of `client_id`'s users. `database`: a SQLite file (`PATH`, `sqlite:PATH`)
    /// or, with the `postgres` feature, `postgres://...`. The key ring: `WEB_APP_TOKEN_KEYS`
    /// if set, else `key_file` (default `<database>.key`, or `web_app.key` with PostgreSQL),
    /// created with a new key when neither it nor the SDK's tables exist yet. A database that
    /// holds tokens while its key file is missing is refused: those tokens could not be
    /// opened, and a new key would hide that.
    pub fn open(
        database: &str,
        key_file: Option<&Path>,
        client_id: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let postgres = database.starts_with("postgres://") || database.starts_with("postgresql://");
        let (db, sessions, default_key, shown) = if postgres {
            // Not shown: the URL may carry a password.
            let db = Database::from_url(database)?;
            (db, PathBuf::from(POSTGRES_SESSIONS), PathBuf::from(POSTGRES_KEY_FILE), "PostgreSQL")
        } else {
            let path = database.strip_prefix("sqlite://").or(database.strip_prefix("sqlite:"));
            let path = PathBuf::from(path.unwrap_or(database));
            let mut key = path.clone().into_os_string();
            key.push(".key");
            (Database::sqlite(&path), path, PathBuf::from(key), "")
        };
        let key_file = key_file.map_or(default_key, Path::to_path_buf);
        // Whether the SDK's tables exist yet: asked through a store with a throwaway key,
        // which reads the schema version and no record.
        let probe = SqlStore::open(db.clone(), client_id, KeyRing::new(Key::generate("probe")?))?;
        let new_database = probe.schema_version()? == 0;
        let (keys, key_place) = key_ring(&key_file, new_database)?;
        let where_tokens = if postgres { shown.to_owned() } else { sessions.display().to_string() };
        let described = format!(
            "tokens in {where_tokens}, sessions in {}, sealed with {key_place}",
            sessions.display()
        );
        Ok(Self { tokens: SqlStore::open(db, client_id, keys)?, sessions, described })
    }

    /// Where things are (paths only), for a log line.
    pub fn describe(&self) -> &str {
        &self.described
    }
}

/// The key ring from the environment, or from the key file (made on a new database's first
/// run). Says where it came from; never the key.
fn key_ring(key_file: &Path, new_database: bool) -> Result<(KeyRing, String), String> {
    if std::env::var_os(KEY_VARIABLE).is_some() {
        let keys = KeyRing::from_env(KEY_VARIABLE).map_err(|e| format!("{KEY_VARIABLE}: {e}"))?;
        return Ok((keys, format!("the key in {KEY_VARIABLE}")));
    }
    let shown = key_file.display();
    match KeyRing::from_file(key_file) {
        Ok(keys) => Ok((keys, format!("the key in {shown}"))),
        Err(KeyError::Io { kind: std::io::ErrorKind::NotFound, .. }) if new_database => {
            let keys = KeyRing::create_file(key_file, "web-app-1").map_err(|e| e.to_string())?;
            Ok((keys, format!("a new key in {shown} (mode 0600)")))
        }
        Err(KeyError::Io { kind: std::io::ErrorKind::NotFound, .. }) => Err(format!(
            "the key file {shown} is missing, and the database holds tokens sealed with a key: \
             restore the file (or set {KEY_VARIABLE}); to start over without it, delete the \
             database (everyone signs in again)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl App {
    /// An app for the Flextell at `issuer` (the emulator's base URL), served at the origin
    /// `self_url` (`https://app.example` or, for development, `http://127.0.0.1:3000`),
    /// keeping its sessions and its users' tokens in `storage`.
    pub fn new(
        issuer: &str,
        self_url: &str,
        client_id: &str,
        client_secret: &str,
        storage: Storage,
    ) -> Result<Self, Box<dyn std::error::Error>> {
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
        let sessions = Sessions::open(
            &storage.sessions,
            client.clone(),
            storage.tokens,
            MAX_SESSIONS,
            SESSION_IDLE,
            Arc::new(OsEntropy),
        )?;
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

    /// Where session ids and user ids come from (the OS; tests hand in a failing source).
    pub fn with_entropy(self, entropy: Arc<dyn Entropy>) -> Self {
        self.sessions().set_entropy(entropy);
        self
    }

    /// Sessions held: (anonymous, signed in).
    pub fn session_counts(&self) -> Result<(usize, usize), Refused> {
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

    /// The session table, locked. Never held across an `.await`; each call on it is one short
    /// SQLite transaction (a sign-in, a sign-out or an expiry also deletes a user's token row),
    /// run on the request's thread: fine for an example, where a busy site would hand them to
    /// `spawn_blocking` or a connection pool. A panic while it was held leaves a table that is
    /// still consistent (every change is one statement), so a poisoned lock is taken over
    /// rather than taking the whole app down.
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The browser's live session, if any.
    fn session(&self, jar: &CookieJar) -> Result<Option<Session>, Refused> {
        let Some(id) = self.session_id(jar) else { return Ok(None) };
        self.sessions().get(&id, now())
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
    /// callback from Flextell needs), https-only when served over https. A session cookie (no
    /// `Max-Age`): the server's idle timeout decides how long it is worth anything.
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

async fn home(State(app): State<App>, jar: CookieJar) -> Response {
    let session = match app.session(&jar) {
        Ok(session) => session,
        Err(refused) => return refused_page(refused),
    };
    let viewer = Viewer::of(session.as_ref());
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
    .into_response()
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
    if let Some(id) = app.session_id(&jar) {
        match sessions.get(&id, now()) {
            Ok(Some(_)) => {
                sessions.add_pending(&id, pending);
                return Redirect::to(&url).into_response();
            }
            Ok(None) => {}
            Err(refused) => return refused_page(refused),
        }
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
    let session = match app.sessions().get(&id, now()) {
        Ok(session) => session,
        Err(refused) => return refused_page(refused),
    };
    let pending = session.as_ref().map(|s| s.pending.clone()).unwrap_or_default();
    let viewer = Viewer::of(session.as_ref());
    let signed_in = matches!(viewer, Viewer::SignedIn(_));
    if pending.is_empty() {
        // A reload or the back button after signing in: nothing to do, the user is in.
        if signed_in {
            return Redirect::to("/news").into_response();
        }
        return expired_sign_in(&viewer);
    }
    // Who is signing in: Flextell's answer is tokens only (no OpenID Connect `sub`, no
    // userinfo endpoint), so nothing names the person. Each sign-in is therefore a user of its
    // own, under a random id: the key of their token row, found again through the session
    // (also after a restart). With a provider that names the user, key the row by the issuer
    // and that subject instead, so that signing in again, from any browser, finds the same row.
    let new_user = app.sessions().new_user();
    let (user_id, user) = match new_user {
        Ok(new) => new,
        Err(refused) => {
            // No user without randomness: this sign-in ends here, with the session.
            if let Err(e) = app.sessions().remove(&id) {
                eprintln!("web_app: a session could not be ended: {e:?}");
            }
            return (app.forget(jar), refused_page(refused)).into_response();
        }
    };
    let callback = uri.to_string();
    // The callback belongs to at most one of this session's sign-ins (by its `state`).
    for candidate in &pending {
        match user.complete_authorization(candidate, &callback).await {
            Ok(_) => {
                // Signed in (the tokens are in the user's row): a new session with a new id
                // replaces the one the browser had.
                let signed_in = app.sessions().sign_in(&id, &user_id, user, now());
                return match signed_in {
                    Ok(new_id) => {
                        (jar.add(app.cookie(new_id)), Redirect::to("/news")).into_response()
                    }
                    Err(refused) => (app.forget(jar), refused_page(refused)).into_response(),
                };
            }
            // Not this sign-in's callback (or unreadable, so no sign-in's): try the next one.
            // These leave the sign-ins in place, so a forged link cannot cancel one.
            Err(Error::Callback(e)) if e.is_stray() => {}
            Err(Error::Callback(CallbackError::AlreadyCompleted)) if signed_in => {
                return Redirect::to("/news").into_response();
            }
            Err(e) => {
                // This sign-in's callback, refused (Deny) or failed: it is used up (Flextell
                // never accepts its code twice); the session's other sign-ins stay.
                app.sessions().drop_pending(&id, candidate);
                return sign_in_failed(&viewer, &e);
            }
        }
    }
    let message = "This sign-in link is not valid in this browser.";
    let detail = "a callback for no sign-in of this session";
    error_page(StatusCode::BAD_REQUEST, &viewer, message, Some("/login"), &detail)
}

async fn news(State(app): State<App>, jar: CookieJar) -> Response {
    let session = match app.session(&jar) {
        Ok(session) => session,
        Err(refused) => return refused_page(refused),
    };
    let Some(user) = session.and_then(|s| s.user) else {
        return Redirect::to("/login").into_response();
    };
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
    let session = match app.session(&jar) {
        Ok(session) => session,
        Err(refused) => return refused_page(refused),
    };
    let viewer = Viewer::of(session.as_ref());
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

/// `POST /logout`: ends the session (and deletes the user's tokens) if the request comes from
/// this site's page, with this session's CSRF token. Otherwise the user stays signed in and is
/// told so.
async fn logout(
    State(app): State<App>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Some(id) = app.session_id(&jar) else { return Redirect::to("/").into_response() };
    let submitted = form.ok().and_then(|Form(form)| form.csrf).map(CsrfState::new);
    let mut sessions = app.sessions();
    let session = match sessions.get(&id, now()) {
        Ok(session) => session,
        Err(refused) => {
            drop(sessions);
            return refused_page(refused);
        }
    };
    let Some(session) = session else {
        // Expired or unknown: already signed out.
        drop(sessions);
        return (app.forget(jar), Redirect::to("/")).into_response();
    };
    let viewer = Viewer::of(Some(&session));
    let Viewer::SignedIn(csrf) = &viewer else { return Redirect::to("/").into_response() };
    // `==` on `CsrfState` compares in constant time.
    if app.same_origin(&headers) && submitted.as_ref() == Some(csrf) {
        let removed = sessions.remove(&id);
        drop(sessions);
        return match removed {
            Ok(()) => (app.forget(jar), Redirect::to("/")).into_response(),
            Err(refused) => refused_page(refused),
        };
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
    Serve(Options),
}

/// How to serve.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// Sessions kept at most.
    pub max_sessions: usize,
    /// The database: a SQLite file, or `postgres://...`.
    pub database: String,
    /// The key file, if not the default one.
    pub key_file: Option<PathBuf>,
    /// A Flextell (emulator) running apart, instead of the embedded one.
    pub flextell: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: 3000,
            max_sessions: MAX_SESSIONS,
            database: DEFAULT_DATABASE.to_owned(),
            key_file: None,
            flextell: None,
        }
    }
}

/// The usage text of `--help`.
pub const USAGE: &str = "\
A Flextell web app (sign in, read the news) against the embedded Flextell emulator. Users stay
signed in across restarts: their sessions and tokens (sealed) are kept in a database.

Usage: cargo run --example web_app -- [OPTIONS]

Options:
  --port <PORT>          Listen on 127.0.0.1:<PORT> [default: 3000]
  --max-sessions <N>     Keep at most N sessions [default: 10000]; when full, the
                         longest-idle anonymous session makes room, and signed-in
                         users are never signed out to make room
  --database <DB>        Where sessions and users' tokens are kept [default: web_app.db]:
                         a SQLite file (PATH or sqlite:PATH, created mode 0600), or
                         postgres://USER:PASSWORD@HOST/DB for the tokens (build with
                         --features postgres; sessions then go to web_app-sessions.db)
  --key-file <PATH>      The key the tokens are sealed with [default: <DB>.key, or
                         web_app.key with PostgreSQL]; created (mode 0600) on a new
                         database's first run. WEB_APP_TOKEN_KEYS (id:base64-of-32-bytes),
                         if set, is used instead. Back it up apart from the database
  --flextell <URL>       Use the Flextell (emulator) at URL instead of the embedded one,
                         which forgets every grant when the app stops: with one that
                         outlives the app, a restart signs nobody out
  -h, --help             Print this help and exit
";

/// Reads the arguments (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--port" => {
                options.port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .filter(|&p| p > 0)
                    .ok_or("--port takes a number from 1 to 65535")?;
            }
            "--max-sessions" => {
                options.max_sessions = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--max-sessions takes a number above 0")?;
            }
            "--database" => {
                options.database = args
                    .next()
                    .filter(|d| !d.is_empty())
                    .ok_or("--database takes a SQLite file or a postgres:// URL")?;
            }
            "--key-file" => {
                let path =
                    args.next().filter(|p| !p.is_empty()).ok_or("--key-file takes a path")?;
                options.key_file = Some(PathBuf::from(path));
            }
            "--flextell" => {
                let url = args
                    .next()
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .ok_or("--flextell takes an http:// or https:// URL")?;
                options.flextell = Some(url.trim_end_matches('/').to_owned());
            }
            // Not quoted back: it may be a database URL with a password, given in the wrong
            // place.
            _ if arg.contains("://") => return Err("unexpected argument (a URL)".to_owned()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Command::Serve(options))
}

#[allow(dead_code)] // the tests include this file as a module and never call `main`
#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(options)) => options,
        Err(e) => {
            eprintln!("web_app: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web_app: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(dead_code)]
async fn serve(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let port = options.port;
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(format!("port {port} is in use: pick another with --port").into());
        }
        Err(e) => return Err(format!("cannot listen on port {port}: {e}").into()),
    };
    let self_url = format!("http://127.0.0.1:{port}");
    // The Flextell given, or an emulator of our own (alive until `serve` returns).
    let (issuer, _emulator) = match options.flextell {
        Some(url) => (url, None),
        None => {
            let config = helloflex_emulator::EmulatorConfig {
                consent: helloflex_emulator::Consent::Prompt,
                ..Default::default()
            }
            .with_redirect_uri(helloflex_emulator::WEB_APP.0, &format!("{self_url}/callback"));
            let emulator = helloflex_emulator::start(config)?;
            (emulator.base_url().to_owned(), Some(emulator))
        }
    };
    let (client_id, client_secret) = helloflex_emulator::WEB_APP;
    let storage = Storage::open(&options.database, options.key_file.as_deref(), client_id)?;
    println!("web_app: {}", storage.describe());
    let app = App::new(&issuer, &self_url, client_id, client_secret, storage)?
        .with_max_sessions(options.max_sessions);
    println!("open {self_url}/ (Flextell at {issuer})");
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
