//! The example web app in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `crates/examples/browser/`), as a person uses it: sign in through the
//! emulator's consent page (a new session id at sign-in, the old one dead), reload the
//! callback, the back button, sign-out (a GET only asks, forged or cross-origin POSTs are
//! refused, the button works), two tabs, Deny (a friendly page, try again), an idle session
//! expiring, and a flood of anonymous sessions leaving a signed-in user signed in. Screenshots
//! of each step land in `target/web-app-browser/`.

#[path = "../examples/web_app/main.rs"]
#[allow(dead_code)]
mod web_app;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use helloflex_emulator::{Consent, EmulatorConfig, WEB_APP};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_reloads_goes_back_signs_out_uses_two_tabs_denies_idles_and_is_flooded() {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in crates/examples/browser (cargo xtask test does)"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let self_url = format!("http://{}", listener.local_addr().unwrap());
    // The same app with a table of 3 sessions, for the flood (idle sessions do not expire
    // during the test).
    let small_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let small_url = format!("http://{}", small_listener.local_addr().unwrap());
    let config = EmulatorConfig { consent: Consent::Prompt, ..EmulatorConfig::default() }
        .with_redirect_uri(WEB_APP.0, &format!("{self_url}/callback"))
        .with_redirect_uri(WEB_APP.0, &format!("{small_url}/callback"));
    let emulator = helloflex_emulator::start(config).unwrap();
    // Long enough that no step of a loaded machine (a screenshot under two busy cores took
    // over 2 s in CI) lets a session lapse between two of its requests; the expiry step waits
    // it out once.
    let idle = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let storage = |name: &str| {
        let db = dir.path().join(name);
        web_app::Storage::open(db.to_str().unwrap(), None, WEB_APP.0).unwrap()
    };
    let app =
        web_app::App::new(emulator.base_url(), &self_url, WEB_APP.0, WEB_APP.1, storage("app.db"))
            .unwrap()
            .with_session_idle(idle);
    tokio::spawn(async move { axum::serve(listener, app.router()).await });
    let small = web_app::App::new(
        emulator.base_url(),
        &small_url,
        WEB_APP.0,
        WEB_APP.1,
        storage("small.db"),
    )
    .unwrap()
    .with_max_sessions(3);
    let router = small.clone().router();
    tokio::spawn(async move { axum::serve(small_listener, router).await });

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/web-app-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = Command::new("node");
    node.arg(browser_dir().join("webapp.mjs"))
        .arg(&self_url)
        .arg(&shots)
        .arg(idle.as_millis().to_string())
        .arg(&small_url);
    // The app serves on this runtime's threads meanwhile.
    let output = tokio::task::spawn_blocking(move || node.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("{seen:#}");

    // The emulator's consent page, with both choices.
    assert_eq!(seen["consent"]["buttons"], serde_json::json!(["Approve", "Deny"]));
    // Signed in, a titled page with the news as a list.
    assert_eq!(seen["signin"]["path"], "/news");
    assert_eq!(seen["signin"]["title"], "News · HelloFlex demo");
    assert!(seen["signin"]["items"].as_u64().unwrap() >= 2);
    // Signing in replaced the session id from /login; the old id shows a signed-out page.
    let rotation = &seen["rotation"];
    assert_eq!((&rotation["before"], &rotation["after"]), (&true.into(), &true.into()), "{seen}");
    assert_eq!(rotation["changed"], true, "a new session id at sign-in: {seen}");
    assert_eq!(rotation["oldId"], "Welcome", "the pre-login id no longer works: {seen}");
    assert_eq!(rotation["newId"], "Signed in", "{seen}");
    // Reloading the callback: still signed in, no error.
    assert_eq!(seen["reload"]["path"], "/news", "{seen}");
    // Back to the consent page and Approve again: still signed in.
    assert_eq!(seen["back"]["consent"], true, "back leads to the consent page: {seen}");
    assert_eq!(seen["back"]["after"]["path"], "/news", "{seen}");
    // GET /logout only asks (a page with the Sign out button); the user stays signed in.
    let csrf = &seen["csrf"];
    assert_eq!(csrf["get"]["h1"], "Sign out", "{seen}");
    assert_eq!(csrf["get"]["buttons"], 2, "the page's button and the navigation's: {seen}");
    assert_eq!(csrf["get"]["after"], "Signed in", "GET /logout signs nobody out: {seen}");
    // The page's form posted without the token or with a wrong one: refused, and the page
    // says so; still signed in.
    for tampered in ["noToken", "wrongToken"] {
        assert_eq!(csrf[tampered]["status"], 403, "{tampered}: {seen}");
        assert_eq!(csrf[tampered]["h1"], "Still signed in", "{tampered}: {seen}");
    }
    assert_eq!(csrf["afterForged"], "Signed in", "{seen}");
    // The right token submitted from another origin of the same host: refused, and the
    // page says so; still signed in.
    assert_eq!(csrf["crossOrigin"]["status"], 403, "{seen}");
    assert_eq!(csrf["crossOrigin"]["h1"], "Still signed in", "{seen}");
    assert_eq!(csrf["crossOrigin"]["after"], "Signed in", "{seen}");
    // The Sign out button: Welcome, the cookie deleted; the news asks to sign in again.
    assert_eq!(seen["logout"]["h1"], "Welcome");
    assert_eq!(seen["logout"]["cookie"], false, "{seen}");
    assert_eq!(seen["logout"]["news"], "consent");
    // Two tabs signing in at once: both signed in.
    assert_eq!(seen["tabs"]["a"], "/news", "{seen}");
    assert_eq!(seen["tabs"]["b"], "/news", "{seen}");
    // Deny: a friendly page (200, no error styling) that says what happened, with a way to
    // try again (which leads back to the consent page) and a way back; not signed in.
    let deny = &seen["deny"];
    assert_eq!(deny["status"], 200, "{seen}");
    assert_eq!(deny["h1"], "Sign-in cancelled", "{seen}");
    let text = deny["text"].as_str().unwrap();
    assert!(text.contains("You chose not to let this app use your Flextell account"), "{text}");
    assert!(!text.contains("Something went wrong"), "{text}");
    assert_eq!(deny["errors"], 0, "no red error text: {seen}");
    assert_eq!((&deny["again"], &deny["back"]), (&1.into(), &1.into()), "{seen}");
    assert_eq!(deny["tryAgain"]["consent"], true, "Try again leads to the consent page: {seen}");
    assert_eq!(deny["home"], "Welcome");
    // An idle session expires.
    assert_eq!(seen["expiry"]["before"], "News");
    assert_eq!(seen["expiry"]["after"], "Welcome");
    // A flood of 30 anonymous sessions on a table of 3, while a user is signed in: each one is
    // served (anonymous sessions make room for each other), and the user stays signed in.
    let flood = &seen["flood"];
    assert_eq!(flood["before"], "News", "{seen}");
    assert_eq!(flood["statuses"], serde_json::json!({"303": 30}), "{seen}");
    assert_eq!(flood["home"], "Signed in", "{seen}");
    assert_eq!(flood["news"]["path"], "/news", "{seen}");
    assert_eq!(flood["news"]["h1"], "News", "{seen}");
    assert_eq!(small.session_counts(), Ok((2, 1)), "bounded, the user's session kept");
    // One code exchange per browser that signed in (the first, the two tabs, the idle one, the
    // flooded one): a stale callback of a signed-in session (back + Approve, the second tab)
    // exchanges nothing.
    assert_eq!(emulator.counters().token_requests_for_grant("authorization_code"), 4);
}
