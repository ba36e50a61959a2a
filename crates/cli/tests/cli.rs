//! `helloflex` end to end against the emulator: the binary run as a user runs it, with its own
//! home directory (`HELLOFLEX_HOME`) and the key in a file (`HELLOFLEX_KEY_STORE=file`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use helloflex_emulator::{Consent, Emulator, EmulatorConfig, Fault, FaultKind};

struct Home(PathBuf);

impl Home {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("helloflex-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn command(home: &Path, emulator: &Emulator, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_helloflex"));
    command
        .args(args)
        .env("HELLOFLEX_HOME", home)
        .env("HELLOFLEX_KEY_STORE", "file")
        .env("HELLOFLEX_EMULATOR_URL", emulator.base_url())
        .env_remove("HELLOFLEX_CLIENT_ID")
        .env_remove("HELLOFLEX_CLIENT_SECRET")
        .env_remove("HELLOFLEX_PROFILE")
        .env_remove("BROWSER")
        .stdin(Stdio::null());
    command
}

fn run(home: &Path, emulator: &Emulator, args: &[&str]) -> Output {
    command(home, emulator, args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn emulator(consent: Consent) -> Emulator {
    helloflex_emulator::start(EmulatorConfig { consent, ..EmulatorConfig::default() }).unwrap()
}

/// Signs in with `login --no-browser`, playing the browser with plain HTTP requests.
fn login(home: &Path, emulator: &Emulator) {
    login_with(home, emulator, &[]);
}

/// [`login`] with more arguments to `login`.
fn login_with(home: &Path, emulator: &Emulator, more: &[&str]) {
    let args = [&["--env", "emulator", "login", "--no-browser"][..], more].concat();
    let mut child = command(home, emulator, &args).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(found) = line.trim().strip_prefix("http") {
            url = format!("http{found}");
            break;
        }
        line.clear();
    }
    assert!(url.contains("/oauth2/authorize?"), "no URL printed");
    let callback = emulator.approve(&url).unwrap();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let answer = agent.get(&callback).call().unwrap();
    assert_eq!(answer.status(), 200);
    assert!(child.wait().unwrap().success());
}

#[test]
fn help_is_stable() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("help");
    for args in [&["--help"][..], &["api", "--help"][..], &["login", "--help"][..]] {
        let output = run(&home.0, &emulator, args);
        assert!(output.status.success());
        let name = args.join("_").replace("--", "");
        insta::assert_snapshot!(name, text(&output.stdout));
    }
}

#[test]
fn api_answers_json_and_exits_by_class() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("api");
    let ok = run(&home.0, &emulator, &["--env", "emulator", "api", "GET", "news"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let news: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(news.is_array());

    let invalid = run(
        &home.0,
        &emulator,
        &["--env", "emulator", "api", "GET", "domainTypes/-1/domainValues", "--query", "Lang=xx"],
    );
    assert_eq!(invalid.status.code(), Some(4));
    let message = text(&invalid.stderr);
    assert!(message.contains("Id: ") && message.contains("Lang: "), "{message}");

    let missing = run(&home.0, &emulator, &["--env", "emulator", "api", "GET", "nowhere"]);
    assert_eq!(missing.status.code(), Some(4), "{}", text(&missing.stderr));

    let created = run(
        &home.0,
        &emulator,
        &["--env", "emulator", "api", "POST", "items", "--data", r#"{"name":"cli"}"#],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));

    emulator.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }));
    let down = run(&home.0, &emulator, &["--env", "emulator", "api", "GET", "news"]);
    assert_eq!(down.status.code(), Some(5), "{}", text(&down.stderr));
    emulator.clear_faults();

    for (args, needle) in [
        (&["--env", "emulator", "api", "POST", "items", "--data", "{oops"][..], "not JSON"),
        (&["--env", "emulator", "api", "GET", "news", "--query", "novalue"][..], "KEY=VALUE"),
        (
            &["--profile", "nosuch", "--env", "emulator", "api", "GET", "news"][..],
            "unknown profile",
        ),
        (&["--env", "ftp://x", "api", "GET", "news"][..], "expected sandbox"),
        (&["--env", "emulator", "api", "GET", "news", "--data", "@/no/such/file"][..], "--data"),
    ] {
        let output = run(&home.0, &emulator, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains(needle), "{args:?}: {}", text(&output.stderr));
    }
    // No credentials against the real sandbox: a clear authentication failure, no request.
    let anonymous = run(&home.0, &emulator, &["--env", "sandbox", "api", "GET", "news"]);
    assert_eq!(anonymous.status.code(), Some(3));
    assert!(text(&anonymous.stderr).contains("not logged in"));
}

#[test]
fn login_token_status_logout() {
    let emulator = emulator(Consent::AutoApprove);
    // 32 s: just above the 30 s a printed token must have left, so it is due 2 s from now.
    emulator.set_token_lifetime(Duration::from_secs(32), Some("flextell-app"));
    let home = Home::new("login");
    login(&home.0, &emulator);
    #[allow(clippy::disallowed_methods)] // a test's own timing
    let logged_in = std::time::Instant::now();

    let status = run(&home.0, &emulator, &["--env", "emulator", "status"]);
    let shown = text(&status.stdout);
    assert!(shown.contains("logged in (user: access token expires in"), "{shown}");
    assert!(shown.contains("key file"), "{shown}");

    let token = run(&home.0, &emulator, &["--env", "emulator", "token"]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let access = text(&token.stdout).trim().to_owned();
    assert!(!access.is_empty() && !shown.contains(&access), "status never shows a token");
    let json = run(&home.0, &emulator, &["--env", "emulator", "token", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["access_token"], access.as_str());
    assert_eq!(json["grant"], "user");

    // The token files hold no token bytes.
    for entry in std::fs::read_dir(home.0.join("data/default/emulator")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(access.len()).any(|w| w == access.as_bytes()));
    }

    // Due (under 30 s left): 20 invocations at once make one refresh between them.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(logged_in.elapsed()));
    emulator.reset_counters();
    let children: Vec<_> = (0..20)
        .map(|_| {
            command(&home.0, &emulator, &["--env", "emulator", "token"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let tokens: Vec<String> = children
        .into_iter()
        .map(|c| {
            let output = c.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", text(&output.stderr));
            text(&output.stdout).trim().to_owned()
        })
        .collect();
    assert_eq!(
        emulator.counters().token_requests_for_grant("refresh_token"),
        1,
        "one refresh for 20 processes"
    );
    assert!(tokens.iter().all(|t| t == &tokens[0]), "every invocation printed the new token");

    let logout = run(&home.0, &emulator, &["--env", "emulator", "logout"]);
    assert!(logout.status.success());
    // Logged out: the emulator profile falls back to the demo client; the user grant is gone.
    let json = run(&home.0, &emulator, &["--env", "emulator", "token", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["grant"], "client");
}

#[test]
fn login_failures_are_clear() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("failures");
    // A port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let output =
        run(&home.0, &emulator, &["--env", "emulator", "login", "--no-browser", "--port", &port]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("in use"), "{}", text(&output.stderr));
    // Nobody comes back (the browser was closed): a timeout, typed as authentication.
    let output =
        run(&home.0, &emulator, &["--env", "emulator", "login", "--no-browser", "--timeout", "1"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        text(&output.stderr).contains("no answer from the browser"),
        "{}",
        text(&output.stderr)
    );
    // No browser to open ($BROWSER fails): the URL is printed instead, and the wait goes on.
    let output =
        command(&home.0, &emulator, &["--env", "emulator", "login", "--browser", "--timeout", "1"])
            .env("BROWSER", "/bin/false")
            .output()
            .unwrap();
    assert!(text(&output.stderr).contains("/oauth2/authorize?"), "{}", text(&output.stderr));
    // A store that cannot be read.
    login(&home.0, &emulator);
    std::fs::write(home.0.join("data/default/emulator/user.tokens"), b"garbage").unwrap();
    let output = run(&home.0, &emulator, &["--env", "emulator", "token"]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("token store"), "{}", text(&output.stderr));
}

/// A `--timeout` of any size, the largest included, waits for the browser (no limit): it
/// never panics and never gives up at once.
#[test]
fn login_with_the_largest_timeout_waits_for_the_browser() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("endless");
    login_with(&home.0, &emulator, &["--timeout", &u64::MAX.to_string()]);
    let status = run(&home.0, &emulator, &["--env", "emulator", "status"]);
    assert!(text(&status.stdout).contains("logged in"), "{}", text(&status.stdout));
}

#[test]
fn profiles_and_completions() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("profiles");
    std::fs::create_dir_all(home.0.join("config")).unwrap();
    std::fs::write(home.0.join("config/config.toml"), "[profiles.local]\nenv = \"emulator\"\n")
        .unwrap();
    // A named profile brings its environment; its tokens are its own.
    let output = run(&home.0, &emulator, &["--profile", "local", "api", "GET", "news"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(home.0.join("data/local/emulator/client.tokens").exists());
    let status = run(&home.0, &emulator, &["--profile", "local", "status"]);
    assert!(text(&status.stdout).contains("profile:  local"));
    let output = run(&home.0, &emulator, &["--profile", "nosuch", "status"]);
    assert!(text(&output.stderr).contains("local"), "names the profiles there are");
    // A config file that does not parse: a usage error naming the file, not a panic.
    std::fs::write(home.0.join("config/config.toml"), "[profiles.local]\nenv = 7\n").unwrap();
    let output = run(&home.0, &emulator, &["--profile", "local", "status"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("config.toml"), "{}", text(&output.stderr));

    let completions = run(&home.0, &emulator, &["completions", "bash"]);
    assert!(completions.status.success());
    assert!(text(&completions.stdout).contains("helloflex"));
}
