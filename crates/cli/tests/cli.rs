//! `helloflex` end to end against the emulator: the binary run as a user runs it, with its own
//! home directory (`HELLOFLEX_HOME`) and the key in a file (`HELLOFLEX_KEY_STORE=file`).

use std::io::{BufRead, BufReader, Write};
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
    // Each field once, and not the raw body.
    assert_eq!(message.matches("Id: ").count(), 1, "{message}");
    assert_eq!(message.matches("Lang: ").count(), 1, "{message}");
    assert!(!message.contains('{'), "{message}");

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
        (&["--env", "emulator", "api", "FOO", "news"][..], "not a method"),
        (&["--env", "emulator", "api", "--grant", "nobody", "GET", "news"][..], "--grant"),
        (&["--env", "https://bob:hunter2@example.com", "status"][..], "user name or password"),
        (&["--env", "emulator", "login", "--timeout", "0"][..], "--timeout"),
        (&["--env", "emulator", "api", "GET", "../etc"][..], ".."),
    ] {
        let output = run(&home.0, &emulator, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains(needle), "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).contains("hunter2"), "a password is never repeated");
    }
    // No credentials against the real sandbox: a clear authentication failure, no request.
    let anonymous = run(&home.0, &emulator, &["--env", "sandbox", "api", "GET", "news"]);
    assert_eq!(anonymous.status.code(), Some(3));
    assert!(text(&anonymous.stderr).contains("HELLOFLEX_CLIENT_ID"));

    // Nothing listening where the emulator should be: said at once, with what to run.
    let stopped = helloflex_emulator::start(EmulatorConfig::default()).unwrap();
    let url = stopped.base_url().to_owned();
    drop(stopped);
    let output = command(&home.0, &emulator, &["--env", "emulator", "api", "GET", "news"])
        .env("HELLOFLEX_EMULATOR_URL", &url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    assert!(text(&output.stderr).contains("helloflex emulator"), "{}", text(&output.stderr));

    // A Flextell call without a sign-in says so, and names the other grant.
    let output =
        run(&home.0, &emulator, &["--env", "emulator", "api", "--grant", "user", "GET", "items"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("helloflex login"), "{}", text(&output.stderr));
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

    // The sign-in made the emulator this profile's default: no more --env.
    let status = run(&home.0, &emulator, &["status"]);
    let shown = text(&status.stdout);
    assert!(
        shown.contains("Flextell  (--grant user):   signed in; access token expires in"),
        "{shown}"
    );
    assert!(shown.contains("HelloFlex (--grant client): client demo-client"), "{shown}");
    assert!(shown.contains("the emulator at"), "{shown}");
    assert!(shown.contains("key file"), "{shown}");

    let token = run(&home.0, &emulator, &["token", "--grant", "user"]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let access = text(&token.stdout).trim().to_owned();
    assert!(!access.is_empty() && !shown.contains(&access), "status never shows a token");
    let json = run(&home.0, &emulator, &["token", "--grant", "user", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["access_token"], access.as_str());
    assert_eq!(json["grant"], "user");
    let client = run(&home.0, &emulator, &["token", "--json"]);
    let client: serde_json::Value = serde_json::from_slice(&client.stdout).unwrap();
    assert_eq!(client["grant"], "client", "the client's token unless --grant user");
    assert_ne!(client["access_token"], access.as_str());

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
            command(&home.0, &emulator, &["token", "--grant", "user"])
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

    let logout = run(&home.0, &emulator, &["logout"]);
    assert!(logout.status.success());
    assert!(text(&logout.stderr).contains("the key file"), "{}", text(&logout.stderr));
    // Logged out: the tokens, the key and their directory are gone; the user grant with them.
    assert!(!home.0.join("data/default/emulator").exists(), "logout leaves nothing behind");
    let output = run(&home.0, &emulator, &["token", "--grant", "user"]);
    assert_eq!(output.status.code(), Some(3));
    let json = run(&home.0, &emulator, &["token", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["grant"], "client");
}

/// Signing in from a machine whose browser cannot reach the CLI (over SSH): the person pastes
/// the address the browser was sent to; anything else pasted is answered and the wait goes on.
#[test]
fn login_over_ssh_takes_the_pasted_address() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("paste");
    let mut child = command(&home.0, &emulator, &["--env", "emulator", "login"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    let mut said = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        said.push_str(&line);
        if line.trim().starts_with("http") {
            url = line.trim().to_owned();
        }
        if line.contains("ssh -L") {
            break;
        }
        line.clear();
    }
    // No terminal, no BROWSER: said at once, not after a silent wait.
    assert!(said.contains("No browser opened"), "{said}");
    assert!(said.contains("ssh -L"), "{said}");
    // The browser (here: the emulator's approval) ends on an address nobody listens to.
    let callback = emulator.approve(&url).unwrap();
    assert!(callback.contains("/callback?"), "{callback}");
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(stdin, "not an address").unwrap();
    // As a browser's address bar shows it: without `http://`.
    writeln!(stdin, "  {}  ", callback.trim_start_matches("http://")).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("not the address"), "{rest}");
    assert!(rest.contains("Logged in"), "{rest}");
    let status = run(&home.0, &emulator, &["status"]);
    assert!(text(&status.stdout).contains("signed in;"), "{}", text(&status.stdout));
}

#[test]
fn config_get_set_unset_list_path() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("config");
    std::fs::create_dir_all(home.0.join("config")).unwrap();
    std::fs::write(home.0.join("config/config.toml"), "# mine\n[profiles.other]\nenv = \"live\"\n")
        .unwrap();
    let set = run(&home.0, &emulator, &["config", "set", "env", "emulator"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let get = run(&home.0, &emulator, &["config", "get", "env"]);
    assert_eq!(text(&get.stdout).trim(), "emulator");
    let written = std::fs::read_to_string(home.0.join("config/config.toml")).unwrap();
    assert!(written.starts_with("# mine"), "comments kept: {written}");
    let status = run(&home.0, &emulator, &["status"]);
    assert!(text(&status.stdout).contains("the profile's default (config.toml)"));
    let output = run(&home.0, &emulator, &["api", "GET", "news"]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    let set = run(&home.0, &emulator, &["config", "set", "flextell.scopes", "a, b c"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let get = run(&home.0, &emulator, &["config", "get", "flextell.scopes"]);
    assert_eq!(text(&get.stdout).trim(), "a b c");
    let list = run(&home.0, &emulator, &["config", "list"]);
    assert!(text(&list.stdout).contains("flextell.token_url (not set)"), "{}", text(&list.stdout));
    let path = run(&home.0, &emulator, &["config", "path"]);
    assert!(text(&path.stdout).contains("config.toml"), "{}", text(&path.stdout));

    for (args, needle) in [
        (&["config", "set", "env", "nowhere"][..], "not an environment"),
        (&["config", "set", "client_secret", "s3cret"][..], "never kept"),
        (&["config", "set", "colour", "red"][..], "not a setting"),
        (&["config", "set", "flextell.token_url", "http://example.com/t"][..], "token_url"),
        (&["config", "get", "nope"][..], "not a setting"),
    ] {
        let output = run(&home.0, &emulator, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains(needle), "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).contains("s3cret"));
    }
    let unset = run(&home.0, &emulator, &["config", "unset", "env"]);
    assert!(unset.status.success());
    let status = run(&home.0, &emulator, &["status"]);
    assert!(text(&status.stdout).contains("sandbox"), "{}", text(&status.stdout));
    // Another profile's table is untouched.
    let written = std::fs::read_to_string(home.0.join("config/config.toml")).unwrap();
    assert!(written.contains("[profiles.other]\nenv = \"live\""), "{written}");
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
    let output = run(&home.0, &emulator, &["token", "--grant", "user"]);
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
    assert!(text(&status.stdout).contains("signed in;"), "{}", text(&status.stdout));
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

/// A request to the sign-in listener that cannot be this sign-in's (unreadable, a repeated
/// `state`, another `state`) is answered and ignored: it cannot end the sign-in; a slow client
/// holding a connection open delays nothing.
#[test]
fn a_stray_callback_does_not_end_the_sign_in() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("stray");
    let mut child = command(&home.0, &emulator, &["--env", "emulator", "login", "--no-browser"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.trim().starts_with("http") {
            url = line.trim().to_owned();
            break;
        }
        line.clear();
    }
    let callback = emulator.approve(&url).unwrap();
    let base = callback.split("/callback").next().unwrap().to_owned();
    // A client that connects and says nothing.
    let _idle = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    for stray in [
        "/callback?code=a&state=x&state=y",
        "/callback?code=%ZZ&state=x",
        "/callback?code=a&state=not-this-one",
        "/callback?code=a",
    ] {
        let answer = agent.get(&format!("{base}{stray}")).call().unwrap();
        assert_eq!(answer.status(), 400, "{stray}");
    }
    let answer = agent.get(&callback).call().unwrap();
    assert_eq!(answer.status(), 200);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
}

/// Ctrl-C while a refresh is in flight: the refresh is stored before the process exits, so the
/// next command does not present the spent refresh token (which would revoke the sign-in).
#[test]
fn an_interrupt_during_a_refresh_keeps_the_sign_in() {
    let emulator = emulator(Consent::AutoApprove);
    emulator.set_token_lifetime(Duration::from_secs(1), Some("flextell-app"));
    let home = Home::new("interrupt");
    login(&home.0, &emulator);
    // The refreshed token lives long: the trickle below takes about a second (longer on a busy
    // host), and a 1-s token would arrive expired and be refreshed again.
    emulator.set_token_lifetime(Duration::from_secs(600), Some("flextell-app"));
    std::thread::sleep(Duration::from_millis(1500));
    // The token response trickles: the interrupt lands while it is on its way.
    emulator.add_fault(
        Fault::on_path("/oauth2/token", FaultKind::SlowDrip { ms_per_byte: 3 }).times(1),
    );
    let child = command(&home.0, &emulator, &["api", "--grant", "user", "GET", "items"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let said = text(&output.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(emulator.counters().token_requests_for_grant("refresh_token"), 1, "{said}");
    let again = run(&home.0, &emulator, &["api", "--grant", "user", "GET", "items"]);
    assert!(again.status.success(), "{said}\n{}", text(&again.stderr));
    assert_eq!(emulator.counters().refresh_token_reuse, 0);
}

/// Tokens whose key is gone: every command says so and how to start over, never "not
/// signed in" over files it cannot open; logout clears them.
#[test]
fn tokens_without_their_key_are_named_not_hidden() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("lostkey");
    login(&home.0, &emulator);
    std::fs::remove_file(home.0.join("data/default/emulator/key")).unwrap();
    for args in
        [&["status"][..], &["api", "--grant", "user", "GET", "items"], &["login", "--no-browser"]]
    {
        let output = run(&home.0, &emulator, args);
        assert_eq!(output.status.code(), Some(5), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("helloflex logout"), "{}", text(&output.stderr));
    }
    assert!(run(&home.0, &emulator, &["logout"]).status.success());
    login(&home.0, &emulator);
}

#[test]
fn homes_profiles_and_pipes_that_cannot_work_are_refused_or_harmless() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("homes");
    let output = command(&home.0, &emulator, &["status"])
        .env("HELLOFLEX_HOME", "relative/dir")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("absolute"), "{}", text(&output.stderr));
    for name in ["", "../../x", ".hidden"] {
        let output = command(&home.0, &emulator, &["status"])
            .env("HELLOFLEX_PROFILE", name)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name:?}");
        assert!(text(&output.stderr).contains("not a profile name"), "{}", text(&output.stderr));
    }
    // A reader that is gone before the first line (`| head -0`): every write fails, yet no
    // panic and no error.
    for args in [&["config", "list"][..], &["status"], &["--env", "emulator", "api", "GET", "news"]]
    {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = command(&home.0, &emulator, args).stdout(writer).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).contains("panicked"), "{}", text(&output.stderr));
    }
    // --grant from the environment, in any case.
    let output = command(&home.0, &emulator, &["--env", "emulator", "token", "--json"])
        .env("HELLOFLEX_GRANT", "CLIENT")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn config_makes_profiles_fixes_broken_settings_and_keeps_parallel_writes() {
    let emulator = emulator(Consent::AutoApprove);
    let home = Home::new("config2");
    let made = run(&home.0, &emulator, &["--profile", "work", "config", "set", "env", "emulator"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let status = run(&home.0, &emulator, &["--profile", "work", "status"]);
    assert!(text(&status.stdout).contains("the emulator at"), "{}", text(&status.stdout));
    // A value that cannot work: commands say where and how to fix it; config fixes it.
    std::fs::write(home.0.join("config/config.toml"), "[profiles.default]\nenv = \"ftp://x\"\n")
        .unwrap();
    let broken = run(&home.0, &emulator, &["status"]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(text(&broken.stderr).contains("config set env"), "{}", text(&broken.stderr));
    let fixed = run(&home.0, &emulator, &["config", "set", "env", "emulator"]);
    assert!(fixed.status.success(), "{}", text(&fixed.stderr));
    assert!(run(&home.0, &emulator, &["status"]).status.success());
    // Not TOML: the line is named.
    std::fs::write(home.0.join("config/config.toml"), "[profiles.default]\nenv =\n").unwrap();
    let broken = run(&home.0, &emulator, &["status"]);
    assert!(text(&broken.stderr).contains("line 2"), "{}", text(&broken.stderr));
    std::fs::remove_file(home.0.join("config/config.toml")).unwrap();
    // Parallel writers each keep their change.
    let keys = ["client_id", "scopes", "flextell.client_id", "flextell.scopes", "flextell.api_url"];
    let children: Vec<_> = keys
        .iter()
        .map(|key| {
            let value = if key.ends_with("_url") { "https://flextell.example/api" } else { "x" };
            command(&home.0, &emulator, &["config", "set", key, value]).spawn().unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for key in keys {
        let got = run(&home.0, &emulator, &["config", "get", key]);
        assert!(!text(&got.stdout).trim().is_empty(), "{key} lost");
    }
    // Logout where nothing is stored names where something is.
    run(&home.0, &emulator, &["--env", "emulator", "api", "GET", "news"]);
    let logout = run(&home.0, &emulator, &["--env", "sandbox", "logout"]);
    assert!(
        text(&logout.stderr).contains("it has tokens for: emulator"),
        "{}",
        text(&logout.stderr)
    );
}
