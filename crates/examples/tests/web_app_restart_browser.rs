//! The example web app in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `crates/examples/browser/`, `restart.mjs`) across a restart of the
//! server: a person signs in, the server stops and a new one starts on the same database file,
//! and the news page still loads in the same browser with no new sign-in (no consent page, no
//! new code exchange at Flextell). Screenshots land in `target/web-app-browser/`.

#[path = "../examples/web_app/main.rs"]
#[allow(dead_code)]
mod web_app;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use helloflex_emulator::{Consent, EmulatorConfig, WEB_APP};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The app for `issuer` at `url`, on the SQLite file `db`, served on `listener` until told to
/// stop.
fn start(
    listener: tokio::net::TcpListener,
    issuer: &str,
    url: &str,
    db: &Path,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let storage = web_app::Storage::open(db.to_str().unwrap(), None, WEB_APP.0).unwrap();
    let app = web_app::App::new(issuer, url, WEB_APP.0, WEB_APP.1, storage).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_stays_signed_in_across_a_restart_of_the_server() {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in crates/examples/browser (cargo xtask test does)"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let url = format!("http://{address}");
    let config = EmulatorConfig { consent: Consent::Prompt, ..EmulatorConfig::default() }
        .with_redirect_uri(WEB_APP.0, &format!("{url}/callback"));
    let emulator = helloflex_emulator::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("web_app.db");
    let (stop, served) = start(listener, emulator.base_url(), &url, &db);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/web-app-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = Command::new("node")
        .arg(browser_dir().join("restart.mjs"))
        .arg(&url)
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    // The app serves on this runtime's threads while the browser signs in.
    let (first, mut lines) =
        tokio::task::spawn_blocking(move || (lines.next(), lines)).await.unwrap();
    if first.as_ref().and_then(|l| l.as_ref().ok()).map(String::as_str) != Some("signed-in") {
        let output = node.wait_with_output().unwrap();
        panic!("chromium did not sign in: {}", String::from_utf8_lossy(&output.stderr));
    }
    let counted = emulator.counters();
    assert_eq!(counted.token_requests_for_grant("authorization_code"), 1);

    // The restart: the server stops (its connections closed, the app dropped), a new app
    // opens the same database file and serves on the same address.
    stop.send(()).unwrap();
    served.await.unwrap();
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let (_stop, _served) = start(listener, emulator.base_url(), &url, &db);
    let mut stdin = node.stdin.take().unwrap();
    writeln!(stdin, "restarted").unwrap();

    let (rest, output) = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = lines.by_ref().map_while(Result::ok).collect();
        (rest, node.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    println!("{seen:#}");

    assert_eq!(seen["signin"]["path"], "/news", "{seen}");
    assert_eq!(seen["signin"]["h1"], "News", "{seen}");
    assert_eq!(seen["restarted"], true, "{seen}");
    // After the restart: the news, in the same browser with the same cookie, and no sign-in.
    let after = &seen["after"];
    assert_eq!(after["path"], "/news", "{seen}");
    assert_eq!(after["h1"], "News", "{seen}");
    assert!(after["items"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(after["newSignIns"], 0, "no consent page on the way: {seen}");
    assert_eq!(after["sameCookie"], true, "{seen}");
    assert_eq!(after["home"], "Signed in", "{seen}");
    // Flextell saw no new code exchange, and no token request at all: the access token the
    // first process stored was still good.
    let counters = emulator.counters();
    assert_eq!(counters.token_requests_for_grant("authorization_code"), 1, "no new sign-in");
    assert_eq!(counters.total_token_requests(), counted.total_token_requests());
    // Signing out works on the restarted server (its form's CSRF token included).
    assert_eq!(seen["logout"]["h1"], "Welcome", "{seen}");
    assert_eq!(seen["logout"]["cookie"], false, "{seen}");
    assert_eq!(seen["logout"]["news"], "consent", "{seen}");
}
