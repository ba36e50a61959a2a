//! Drives the example web app end to end against the emulator with HTTP clients (no browser):
//! sign in (login -> consent -> callback -> code exchange -> a page using the tokens), reload
//! the callback, two tabs, Deny, and sign out; then what a security review checks: a new
//! session id at sign-in, sign-out only by a same-origin POST with the CSRF token, no session
//! when randomness fails, anonymous sessions making room before signed-in ones, the cookie's
//! attributes and the headers, and `--help`. Then what the database is for: a restart signs
//! nobody out (the same cookie reads the news with the stored tokens, no new sign-in), the
//! table holds no session id and no token in clear, and signing out deletes the user's tokens.

#[path = "../examples/web_app/main.rs"]
#[allow(dead_code)]
mod web_app;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use helloflex::{ConfigError, Error};
use helloflex::{Entropy, OsEntropy};
use helloflex_emulator::{Consent, Emulator, EmulatorConfig, WEB_APP};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A browser that follows redirects and keeps cookies.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().unwrap()
}

/// A browser that stops at every redirect (to capture callback URLs).
fn stepper() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn location(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_redirection(), "{url}: {}", response.status());
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The app on a local port, against its own emulator (consent approved unless told otherwise),
/// keeping its sessions and tokens in a SQLite file of a temporary directory.
struct Site {
    url: String,
    app: web_app::App,
    emulator: Emulator,
    db: PathBuf,
    /// Stops the server gracefully, and the task serving it.
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    _dir: tempfile::TempDir,
}

/// A storage on the SQLite file `db` (its key file beside it, made on the first run).
fn storage(db: &Path) -> web_app::Storage {
    web_app::Storage::open(db.to_str().unwrap(), None, WEB_APP.0).unwrap()
}

/// Serves `app` on `listener` until told to stop.
fn serve(
    listener: tokio::net::TcpListener,
    app: web_app::App,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        axum::serve(listener, app.router())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, served)
}

async fn site(configure: impl FnOnce(web_app::App) -> web_app::App) -> Site {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = EmulatorConfig::default().with_redirect_uri(WEB_APP.0, &format!("{url}/callback"));
    let emulator = helloflex_emulator::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web_app.db");
    let app = configure(
        web_app::App::new(emulator.base_url(), &url, WEB_APP.0, WEB_APP.1, storage(&db)).unwrap(),
    );
    let server = Some(serve(listener, app.clone()));
    Site { url, app, emulator, db, server, _dir: dir }
}

impl Site {
    /// Stops the app (its connections closed, the app dropped) and starts a new one, on the
    /// same port and the same database file, as a restarted process would.
    async fn restart(&mut self) {
        if let Some((stop, served)) = self.server.take() {
            stop.send(()).unwrap();
            served.await.unwrap();
        }
        let address = self.url.trim_start_matches("http://");
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        self.app = web_app::App::new(
            self.emulator.base_url(),
            &self.url,
            WEB_APP.0,
            WEB_APP.1,
            storage(&self.db),
        )
        .unwrap();
        self.server = Some(serve(listener, self.app.clone()));
    }
}

/// One browser driven by hand: it stops at redirects and keeps the session cookie itself, so a
/// test can read it, or hand it to another browser.
struct Tab {
    http: reqwest::Client,
    sid: Option<String>,
}

impl Tab {
    fn new() -> Self {
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, sid: None }
    }

    /// Another browser that has stolen (or been planted with) `sid`.
    fn with_sid(sid: &str) -> Self {
        Self { sid: Some(sid.to_owned()), ..Self::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = match &self.sid {
            Some(sid) => request.header("cookie", format!("sid={sid}")),
            None => request,
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some(value) = pair.strip_prefix("sid=") {
                self.sid = Some(value.to_owned()).filter(|v| !v.is_empty());
            }
        }
        response
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.http.get(url);
        self.send(request).await
    }

    /// A form POST to `/logout` with these fields and extra headers.
    async fn logout(
        &mut self,
        site: &Site,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut request = self
            .http
            .post(format!("{}/logout", site.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// The `<h1>` of a page.
    async fn h1(&mut self, url: &str) -> String {
        let html = self.get(url).await.text().await.unwrap();
        let start = html.find("<h1>").unwrap() + 4;
        html[start..start + html[start..].find("</h1>").unwrap()].to_owned()
    }

    /// Login -> the emulator approves -> the callback; returns the callback URL.
    async fn sign_in(&mut self, site: &Site) -> String {
        let login = self.get(&format!("{}/login", site.url)).await;
        assert_eq!(login.status(), 303, "login");
        let authorize = login.headers()["location"].to_str().unwrap().to_owned();
        let callback = location(&self.http, &authorize).await;
        let done = self.get(&callback).await;
        assert_eq!(done.headers()["location"], "/news", "the callback signs in");
        callback
    }

    /// The CSRF token in the page's sign-out form.
    async fn csrf(&mut self, site: &Site) -> String {
        let html = self.get(&format!("{}/", site.url)).await.text().await.unwrap();
        let start = html.find(r#"name="csrf" value=""#).expect("a sign-out form") + 19;
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_reload_two_tabs_deny_and_sign_out() {
    let site = site(|app| app).await;
    let self_url = &site.url;

    // Sign in: login -> authorize -> callback -> news, a titled page with the news as a list.
    let page = browser().get(format!("{self_url}/login")).send().await.unwrap();
    assert_eq!(page.url().path(), "/news", "login -> authorize -> callback -> news");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>News"), "{html}");
    assert!(html.contains("<li>HelloFlex sandbox is up"), "{html}");

    // One browser, step by step: the callback signs in; reloading it leads to the news and
    // exchanges no second code.
    let mut tab = Tab::new();
    let callback = tab.sign_in(&site).await;
    assert_eq!(tab.get(&callback).await.headers()["location"], "/news", "a reload: the news");
    assert_eq!(tab.h1(&format!("{self_url}/")).await, "Signed in");
    let counters = site.emulator.counters();
    assert_eq!(counters.token_requests_for_grant("authorization_code"), 2, "one per sign-in");

    // Sign out with the page's form: the session is gone, the news asks to sign in again.
    let csrf = tab.csrf(&site).await;
    let out = tab.logout(&site, &[("csrf", &csrf)], &[]).await;
    assert_eq!((out.status().as_u16(), &out.headers()["location"]), (303, &"/".parse().unwrap()));
    assert_eq!(tab.sid, None, "the cookie is deleted");
    assert_eq!(tab.h1(&format!("{self_url}/")).await, "Welcome");
    assert_eq!(location(&stepper(), &format!("{self_url}/news")).await, "/login");

    // Two tabs of one browser sign in at once: the later callback signs in, the earlier one
    // then finds the user signed in.
    let both = stepper();
    let first = location(&both, &location(&both, &format!("{self_url}/login")).await).await;
    let second = location(&both, &location(&both, &format!("{self_url}/login")).await).await;
    assert_eq!(location(&both, &second).await, "/news");
    assert_eq!(location(&both, &first).await, "/news");

    // Deny: a friendly page (200, not an error) that says so, with a way to try again and a
    // way back, and the session is not signed in.
    site.emulator.set_consent(Consent::AutoDeny);
    let denied = stepper();
    let callback = location(&denied, &location(&denied, &format!("{self_url}/login")).await).await;
    let refused = denied.get(&callback).send().await.unwrap();
    assert_eq!(refused.status(), 200);
    let html = refused.text().await.unwrap();
    assert!(html.contains("<h1>Sign-in cancelled</h1>"), "{html}");
    assert!(!html.contains("Something went wrong") && !html.contains("class=\"error\""), "{html}");
    assert!(html.contains(r#"href="/login">Try again"#) && html.contains(r#"href="/""#), "{html}");
    let home = denied.get(format!("{self_url}/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Welcome"), "not signed in after Deny: {home}");

    // A callback for no session of this browser is refused.
    let stranger = stepper();
    let r = stranger.get(format!("{self_url}/callback?code=x&state=y")).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

/// Session fixation: the id a browser had before signing in (which an attacker may have
/// planted, or seen) is worth nothing after: sign-in issues a new one and drops the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_issues_a_new_session_id_and_ends_the_old_one() {
    let site = site(|app| app).await;
    let mut tab = Tab::new();
    let login = tab.get(&format!("{}/login", site.url)).await;
    let before = tab.sid.clone().expect("login sets a session cookie");
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    // The attacker holds the pre-login id too.
    let mut attacker = Tab::with_sid(&before);
    let callback = location(&tab.http, &authorize).await;
    let done = tab.get(&callback).await;
    assert_eq!(done.headers()["location"], "/news");
    let after = tab.sid.clone().expect("sign-in sets a session cookie");
    assert_ne!(before, after, "a new id at sign-in");
    assert_eq!(after.len(), 32, "128 random bits in hex");
    assert_eq!(tab.h1(&format!("{}/", site.url)).await, "Signed in");
    assert_eq!(attacker.h1(&format!("{}/", site.url)).await, "Welcome", "the old id is dead");
    let news = attacker.get(&format!("{}/news", site.url)).await;
    assert_eq!(news.headers()["location"], "/login");
    assert_eq!(site.app.session_counts(), Ok((0, 1)), "the pre-login session is gone");
}

/// Sign-out changes state, so it is a POST from this site's page carrying the session's CSRF
/// token; anything else leaves the user signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_takes_a_same_origin_post_with_the_csrf_token() {
    let site = site(|app| app).await;
    let home = format!("{}/", site.url);
    let mut tab = Tab::new();
    tab.sign_in(&site).await;
    let csrf = tab.csrf(&site).await;
    assert_eq!(csrf.len(), 32);

    // A GET (a link or an image on another site) only asks.
    let asked = tab.get(&format!("{}/logout", site.url)).await;
    assert_eq!(asked.status(), 200);
    assert!(asked.text().await.unwrap().contains(r#"<form method="post" action="/logout">"#));
    assert_eq!(tab.h1(&home).await, "Signed in", "GET /logout signs nobody out");

    // POSTs without the token, with a wrong one, with another session's, or from another
    // origin (even with the right token): refused, still signed in.
    let mut other = Tab::new();
    other.sign_in(&site).await;
    let others = other.csrf(&site).await;
    let wrong = "0".repeat(32);
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let refusals: [(&str, Pairs<'_>, Pairs<'_>); 6] = [
        ("no token", &[], &[]),
        ("an empty token", &[("csrf", "")], &[]),
        ("a wrong token", &[("csrf", &wrong)], &[]),
        ("another session's token", &[("csrf", &others)], &[]),
        ("another origin", &[("csrf", &csrf)], &[("origin", "http://evil.example")]),
        ("a cross-site fetch", &[("csrf", &csrf)], &[("sec-fetch-site", "same-site")]),
    ];
    for (what, fields, headers) in refusals {
        let refused = tab.logout(&site, fields, headers).await;
        assert_eq!(refused.status(), 403, "{what}");
        assert!(tab.sid.is_some(), "{what}: the cookie stays");
        assert!(refused.text().await.unwrap().contains("<h1>Still signed in</h1>"), "{what}");
        assert_eq!(tab.h1(&home).await, "Signed in", "{what}");
    }
    assert_eq!(other.h1(&home).await, "Signed in");

    // The form's POST, as a browser sends it: signed out, the old id is dead.
    let sid = tab.sid.clone().unwrap();
    let same_origin = [("origin", site.url.as_str()), ("sec-fetch-site", "same-origin")];
    let out = tab.logout(&site, &[("csrf", &csrf)], &same_origin).await;
    assert_eq!(out.status(), 303);
    assert_eq!(tab.h1(&home).await, "Welcome");
    assert_eq!(Tab::with_sid(&sid).h1(&home).await, "Welcome");
    assert_eq!(other.h1(&home).await, "Signed in", "only that session ended");
}

/// Entropy that fails while `fail` is set, like an OS RNG that cannot answer.
#[derive(Debug, Default)]
struct Flaky {
    fail: AtomicBool,
}

impl Entropy for Flaky {
    fn jitter_seed(&self) -> u64 {
        OsEntropy.jitter_seed()
    }
    fn fill(&self, bytes: &mut [u8]) -> Result<(), Error> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ConfigError::Invalid { name: "entropy", reason: "test: no RNG" }.into());
        }
        OsEntropy.fill(bytes)
    }
}

/// Without randomness there is no session: never a fixed or guessable id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_randomness_means_no_session_never_a_fixed_id() {
    let entropy = Arc::new(Flaky::default());
    let site = site(|app| app.with_entropy(entropy.clone())).await;

    // At login: a 500 page, no cookie, nothing in the table.
    entropy.fail.store(true, Ordering::SeqCst);
    let mut tab = Tab::new();
    let refused = tab.get(&format!("{}/login", site.url)).await;
    assert_eq!(refused.status(), 500);
    assert!(refused.headers().get("set-cookie").is_none(), "no session cookie");
    assert!(refused.text().await.unwrap().contains("could not start a session safely"));
    assert_eq!(site.app.session_counts(), Ok((0, 0)));

    // At sign-in: the pre-login session is dropped, the cookie deleted, nobody is signed in.
    entropy.fail.store(false, Ordering::SeqCst);
    let login = tab.get(&format!("{}/login", site.url)).await;
    let before = tab.sid.clone().unwrap();
    let callback = location(&tab.http, login.headers()["location"].to_str().unwrap()).await;
    entropy.fail.store(true, Ordering::SeqCst);
    let refused = tab.get(&callback).await;
    assert_eq!(refused.status(), 500);
    assert_eq!(tab.sid, None, "the cookie is deleted");
    assert_eq!(site.app.session_counts(), Ok((0, 0)));
    assert_eq!(Tab::with_sid(&before).h1(&format!("{}/", site.url)).await, "Welcome");

    // Randomness back: signing in works again, with distinct ids.
    entropy.fail.store(false, Ordering::SeqCst);
    let (mut a, mut b) = (Tab::new(), Tab::new());
    a.sign_in(&site).await;
    b.sign_in(&site).await;
    assert_ne!(a.sid, b.sid);
}

/// A flood of anonymous requests fills the table: anonymous sessions make room for each
/// other, and signed-in users stay signed in. A table full of signed-in users turns a
/// newcomer away (503) rather than signing anyone out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_anonymous_sessions_signs_nobody_out() {
    let site = site(|app| app.with_max_sessions(3)).await;
    let home = format!("{}/", site.url);
    let mut user = Tab::new();
    user.sign_in(&site).await;
    let mut first_anonymous = Tab::new();
    first_anonymous.get(&format!("{}/login", site.url)).await;
    for _ in 0..50 {
        let anonymous = Tab::new().get(&format!("{}/login", site.url)).await;
        assert_eq!(anonymous.status(), 303, "anonymous sessions make room for each other");
    }
    assert_eq!(site.app.session_counts(), Ok((2, 1)), "bounded: 3 sessions");
    assert_eq!(user.h1(&home).await, "Signed in");
    let news = user.get(&format!("{}/news", site.url)).await;
    assert_eq!(news.status(), 200);
    // The longest-idle anonymous session made room: its sign-in is gone.
    let page = first_anonymous.get(&format!("{}/callback?code=x&state=y", site.url)).await;
    assert!(page.text().await.unwrap().contains("<h1>Sign-in expired</h1>"));

    // Two more sign in: the table holds three signed-in sessions, and a newcomer waits.
    let (mut second, mut third) = (Tab::new(), Tab::new());
    second.sign_in(&site).await;
    third.sign_in(&site).await;
    assert_eq!(site.app.session_counts(), Ok((0, 3)));
    let newcomer = Tab::new().get(&format!("{}/login", site.url)).await;
    assert_eq!(newcomer.status(), 503);
    assert_eq!(newcomer.headers()["retry-after"], "60");
    for tab in [&mut user, &mut second, &mut third] {
        assert_eq!(tab.h1(&home).await, "Signed in");
    }
}

/// Cookies: `HttpOnly` and `SameSite=Lax` always; over https also `Secure`, with the
/// `__Host-` prefix. Every page: not cached, not framed, a strict CSP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_attributes_and_headers() {
    let local = site(|app| app).await;
    let login = Tab::new().get(&format!("{}/login", local.url)).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sid="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http on loopback: {cookie}");
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(login.headers()[name], value, "{name}");
    }
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"), "{csp}");

    // Served as https://app.example (behind a TLS-terminating proxy): a `__Host-` cookie.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let db = local._dir.path().join("https.db");
    let app = web_app::App::new(
        local.emulator.base_url(),
        "https://app.example",
        WEB_APP.0,
        WEB_APP.1,
        storage(&db),
    )
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router()).await });
    let login = Tab::new().get(&format!("http://{address}/login")).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-sid="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");

    // `self_url` must be an origin.
    let with_path = web_app::App::new(
        local.emulator.base_url(),
        "https://app.example/app",
        "a",
        "b",
        storage(&db),
    );
    assert!(with_path.is_err());
}

#[test]
fn help_prints_usage_and_bad_arguments_are_refused() {
    use web_app::{Command, Options, parse_args};
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(args(&["-h"]), Ok(Command::Help));
    assert_eq!(args(&["--port", "3001", "--help"]), Ok(Command::Help));
    let defaults = Options {
        port: 3000,
        max_sessions: 10_000,
        database: "web_app.db".into(),
        key_file: None,
        flextell: None,
    };
    assert_eq!(args(&[]), Ok(Command::Serve(Options { ..defaults })));
    assert_eq!(
        args(&[
            "--port",
            "3001",
            "--max-sessions",
            "5",
            "--database",
            "/var/lib/app/app.db",
            "--key-file",
            "/etc/app/token.key",
            "--flextell",
            "http://127.0.0.1:8080/",
        ]),
        Ok(Command::Serve(Options {
            port: 3001,
            max_sessions: 5,
            database: "/var/lib/app/app.db".into(),
            key_file: Some("/etc/app/token.key".into()),
            flextell: Some("http://127.0.0.1:8080".into()),
        }))
    );
    assert!(args(&["--port"]).is_err());
    assert!(args(&["--port", "0"]).is_err());
    assert!(args(&["--port", "70000"]).is_err());
    assert!(args(&["--max-sessions", "0"]).is_err());
    assert!(args(&["--database"]).is_err());
    assert!(args(&["--key-file", ""]).is_err());
    assert!(args(&["--flextell", "127.0.0.1:8080"]).is_err());
    assert!(args(&["--verbose"]).is_err());
    // A database URL in the wrong place is refused without being echoed (its password).
    let misplaced = args(&["postgres://app:s3cret@db/app"]).unwrap_err();
    assert!(!misplaced.contains("s3cret"), "{misplaced}");
    for flag in ["--help", "--port", "--database", "--key-file", "--flextell", "WEB_APP_TOKEN_KEYS"]
    {
        assert!(web_app::USAGE.contains(flag), "{flag}");
    }
}

/// A restart signs nobody out: the session (its id hashed) and the user's tokens (sealed) are
/// in the database file, so the same cookie reads the news from a new process on the same
/// file, with the stored tokens: no new sign-in, no new code exchange, not even a refresh.
/// Sign-out after the restart still takes the page's CSRF token, and deletes the tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_signs_nobody_out() {
    let mut site = site(|app| app).await;
    let news = format!("{}/news", site.url);
    let mut tab = Tab::new();
    tab.sign_in(&site).await;
    assert_eq!(tab.h1(&news).await, "News");
    let sid = tab.sid.clone().unwrap();
    let csrf = tab.csrf(&site).await;
    let before = site.emulator.counters();
    assert_eq!(before.token_requests_for_grant("authorization_code"), 1);

    site.restart().await;

    // The same cookie, from a new connection: signed in, the news read with the stored tokens.
    let mut same = Tab::with_sid(&sid);
    let page = same.get(&news).await;
    assert_eq!(page.status(), 200, "no redirect to /login");
    let html = page.text().await.unwrap();
    assert!(html.contains("<h1>News</h1>") && html.contains("<li>"), "{html}");
    let after = site.emulator.counters();
    assert_eq!(after.token_requests_for_grant("authorization_code"), 1, "no new code exchange");
    assert_eq!(after.total_token_requests(), before.total_token_requests(), "not even a refresh");
    assert_eq!(site.app.session_counts(), Ok((0, 1)));
    // The same CSRF token (derived from the session id, so it survives too); the old
    // pre-login session is still dead, and a made-up id is nobody.
    assert_eq!(same.csrf(&site).await, csrf);
    assert_eq!(Tab::with_sid(&"0".repeat(32)).h1(&format!("{}/", site.url)).await, "Welcome");

    // What the file holds: the SHA-256 of the session id, never the id; no token in clear.
    let file = std::fs::read(&site.db).unwrap();
    let wal = std::fs::read(site.db.with_extension("db-wal")).unwrap_or_default();
    for bytes in [&file, &wal] {
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!holds(sid.as_bytes()), "the session id in clear");
        assert!(!holds(b"hfx_rt_") && !holds(b"access_token"), "a token in clear");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key_file = site.db.with_extension("db.key");
        for file in [&site.db, &key_file] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}: {mode:o}", file.display());
        }
    }

    // Sign-out after the restart: the session ends and the user's token row is deleted.
    let tokens_held = |db: &Path| -> i64 {
        let db = rusqlite::Connection::open(db).unwrap();
        db.query_row("SELECT COUNT(*) FROM helloflex_tokens", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(tokens_held(&site.db), 1);
    let out = same.logout(&site, &[("csrf", &csrf)], &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(tokens_held(&site.db), 0, "signing out deletes the user's tokens");
    assert_eq!(site.app.session_counts(), Ok((0, 0)));
    site.restart().await;
    assert_eq!(Tab::with_sid(&sid).h1(&format!("{}/", site.url)).await, "Welcome");
}

/// A key file that others can read is refused, and so is a database holding tokens whose key
/// file is gone (a new key would not open them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_file_must_be_private_and_present() {
    let site = site(|app| app).await;
    let mut tab = Tab::new();
    tab.sign_in(&site).await;
    let key_file = site.db.with_extension("db.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::metadata(&key_file).unwrap().permissions();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = web_app::Storage::open(site.db.to_str().unwrap(), None, WEB_APP.0);
        let message = refused.err().unwrap().to_string();
        assert!(message.contains("readable by group or others"), "{message}");
        std::fs::set_permissions(&key_file, private).unwrap();
    }
    std::fs::remove_file(&key_file).unwrap();
    let refused = web_app::Storage::open(site.db.to_str().unwrap(), None, WEB_APP.0);
    let message = refused.err().unwrap().to_string();
    assert!(message.contains("is missing"), "{message}");
    assert!(!key_file.exists(), "no new key was made");
}
