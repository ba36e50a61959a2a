//! The example web app in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `crates/examples/browser/`), as a person uses it: sign in through the
//! emulator's consent page, reload the callback, the back button, two tabs, sign out, Deny, and
//! an idle session expiring. Screenshots of each step land in `target/web-app-browser/`.

#[path = "../examples/web_app.rs"]
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
async fn a_person_signs_in_reloads_goes_back_uses_two_tabs_signs_out_denies_and_idles() {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in crates/examples/browser (cargo xtask test does)"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let self_url = format!("http://{}", listener.local_addr().unwrap());
    let config = EmulatorConfig { consent: Consent::Prompt, ..EmulatorConfig::default() }
        .with_redirect_uri(WEB_APP.0, &format!("{self_url}/callback"));
    let emulator = helloflex_emulator::start(config).unwrap();
    let idle = Duration::from_secs(2);
    let app = web_app::App::new(emulator.base_url(), &self_url, WEB_APP.0, WEB_APP.1)
        .unwrap()
        .with_session_idle(idle);
    tokio::spawn(async move { axum::serve(listener, app.router()).await });

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/web-app-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = Command::new("node");
    node.arg(browser_dir().join("webapp.mjs"))
        .arg(&self_url)
        .arg(&shots)
        .arg(idle.as_millis().to_string());
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
    // Reloading the callback: still signed in, no error.
    assert_eq!(seen["reload"]["path"], "/news", "{seen}");
    // Back to the consent page and Approve again: still signed in.
    assert_eq!(seen["back"]["consent"], true, "back leads to the consent page: {seen}");
    assert_eq!(seen["back"]["after"]["path"], "/news", "{seen}");
    // Sign out: Welcome; the news asks to sign in again.
    assert_eq!(seen["logout"]["h1"], "Welcome");
    assert_eq!(seen["logout"]["news"], "consent");
    // Two tabs signing in at once: both signed in.
    assert_eq!(seen["tabs"]["a"], "/news", "{seen}");
    assert_eq!(seen["tabs"]["b"], "/news", "{seen}");
    // Deny: says so, offers a way back, not signed in.
    assert_eq!(seen["deny"]["h1"], "Something went wrong");
    assert!(seen["deny"]["text"].as_str().unwrap().contains("access_denied"));
    assert_eq!(seen["deny"]["back"], 1);
    assert_eq!(seen["deny"]["home"], "Welcome");
    // An idle session expires.
    assert_eq!(seen["expiry"]["before"], "News");
    assert_eq!(seen["expiry"]["after"], "Welcome");
    // One code exchange per browser that signed in (the first, the two tabs, the idle one): a
    // stale callback of a signed-in session (back + Approve, the second tab) exchanges nothing.
    assert_eq!(emulator.counters().token_requests_for_grant("authorization_code"), 3);
}
