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

/// The `helloflex` a new user runs: `HELLOFLEX_CLI_BIN` when set (what `cargo install
/// --locked` put in place; `cargo xtask ci` sets it), else the one cargo built for this test.
fn cli_binary() -> PathBuf {
    std::env::var_os("HELLOFLEX_CLI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_helloflex")))
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
    let mut cli = Command::new(cli_binary())
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

/// A new user's path, as README.md tells it: start the emulator, sign in through the browser
/// (the emulator becomes the default environment), call HelloFlex with the client credentials
/// and Flextell as the signed-in user without repeating `--env`, see both grants in `status`,
/// log out.
#[test]
fn a_new_users_path() {
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in crates/examples/browser (cargo xtask test does)"
    );
    let home = std::env::temp_dir().join(format!("helloflex-newuser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let helloflex = |args: &[&str]| {
        let mut command = Command::new(cli_binary());
        command
            .args(args)
            .env("HELLOFLEX_HOME", &home)
            .env("HELLOFLEX_KEY_STORE", "file")
            .env_remove("HELLOFLEX_EMULATOR_URL")
            .env_remove("HELLOFLEX_CLIENT_ID")
            .env_remove("HELLOFLEX_CLIENT_SECRET")
            .env_remove("HELLOFLEX_PROFILE")
            .env_remove("HELLOFLEX_GRANT")
            .env_remove("BROWSER")
            .stdin(Stdio::null());
        command
    };
    let run = |args: &[&str]| {
        let output = helloflex(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "helloflex {args:?}: {stderr}");
        (stdout, stderr)
    };

    // `helloflex emulator &` (on a free port: it says where, and `--env emulator` finds it).
    let mut emulator =
        helloflex(&["emulator", "--port", "0"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut said = BufReader::new(emulator.stderr.take().unwrap());
    let mut line = String::new();
    while said.read_line(&mut line).unwrap() > 0 && !line.contains("helloflex emulator at") {
        line.clear();
    }
    assert!(line.contains("http://127.0.0.1:"), "{line}");

    // `helloflex login --env emulator`, the person approving in Chromium.
    let mut login = helloflex(&["login", "--env", "emulator", "--no-browser", "--timeout", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(login.stderr.take().unwrap());
    let mut url = String::new();
    line.clear();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.trim().starts_with("http") {
            url = line.trim().to_owned();
            break;
        }
        line.clear();
    }
    let node = Command::new("node")
        .arg(browser_dir().join("consent.mjs"))
        .args([url.as_str(), "approve"])
        .arg(screenshots().join("new-user-login.png"))
        .output()
        .unwrap();
    assert!(node.status.success(), "chromium: {}", String::from_utf8_lossy(&node.stderr));
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(login.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("emulator is now the default environment"), "{rest}");

    // HelloFlex with the client credentials, Flextell as the user: no --env.
    let (values, _) = run(&["api", "GET", "domainTypes/7/domainValues"]);
    assert!(serde_json::from_str::<serde_json::Value>(&values).is_ok(), "{values}");
    let (items, _) = run(&["api", "--grant", "user", "GET", "items"]);
    assert!(serde_json::from_str::<serde_json::Value>(&items).is_ok(), "{items}");

    let (status, _) = run(&["status"]);
    assert!(status.contains("the emulator at"), "{status}");
    assert!(status.contains("HelloFlex (--grant client): client demo-client;"), "{status}");
    assert!(status.contains("Flextell  (--grant user):   signed in;"), "{status}");

    let (_, said_out) = run(&["logout"]);
    assert!(said_out.contains("Logged out"), "{said_out}");
    let (status, _) = run(&["status"]);
    assert!(status.contains("Flextell  (--grant user):   not signed in"), "{status}");

    let _ = emulator.kill();
    let _ = emulator.wait();
    let _ = std::fs::remove_dir_all(&home);
}
