//! `helloflex login` through a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `crates/examples/browser/`, shared with the web app's browser tests): the consent page shows, the person clicks Approve
//! (signed in, the success page shown) or Deny (not signed in, exit 3, the failure page
//! shown). Screenshots land in `target/cli-browser/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use helloflex_emulator::{Consent, EmulatorConfig};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/browser")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/cli-browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `login --no-browser`, hands the URL to Chromium, which clicks `decision`. Returns the
/// title of the page the CLI served and the CLI's exit code and stderr.
fn login_in_chromium(decision: &str) -> (String, Option<i32>, String) {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in crates/examples/browser (cargo xtask test does)"
    );
    let emulator = helloflex_emulator::start(EmulatorConfig {
        consent: Consent::Prompt,
        ..EmulatorConfig::default()
    })
    .unwrap();
    let home =
        std::env::temp_dir().join(format!("helloflex-browser-{}-{decision}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut cli = Command::new(env!("CARGO_BIN_EXE_helloflex"))
        .args(["--env", "emulator", "login", "--no-browser", "--timeout", "60"])
        .env("HELLOFLEX_HOME", &home)
        .env("HELLOFLEX_KEY_STORE", "file")
        .env("HELLOFLEX_EMULATOR_URL", emulator.base_url())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(cli.stderr.take().unwrap());
    let mut url = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.trim().starts_with("http") {
            url = line.trim().to_owned();
            break;
        }
        line.clear();
    }
    let shot = screenshots().join(format!("login-{decision}.png"));
    let node = Command::new("node")
        .arg(browser_dir().join("consent.mjs"))
        .args([url.as_str(), decision])
        .arg(&shot)
        .output()
        .unwrap();
    assert!(node.status.success(), "chromium: {}", String::from_utf8_lossy(&node.stderr));
    let title = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let status = cli.wait().unwrap();
    let _ = std::fs::remove_dir_all(&home);
    (title, status.code(), rest)
}

#[test]
fn approve_in_chromium_signs_in() {
    let (title, code, stderr) = login_in_chromium("approve");
    assert_eq!(title, "Signed in");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("Logged in"), "{stderr}");
}

#[test]
fn deny_in_chromium_does_not_sign_in() {
    let (title, code, stderr) = login_in_chromium("deny");
    assert_eq!(title, "Sign-in not completed");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("access_denied") || stderr.contains("denied"), "{stderr}");
}
