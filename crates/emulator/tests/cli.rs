//! The emulator program: `--help` documents every flag with examples and the demo clients,
//! the fault kinds, the admin API and the error format; `--version` answers; and every value
//! that cannot work is refused in the admin API's format with exit code 2 (never a panic, never
//! a silent default).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helloflex-emulator")).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_documents_every_flag_the_demo_clients_and_examples() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--port",
        "--token-lifetime",
        "--consent",
        "auto-approve",
        "--client",
        "--web-app",
        "--fault",
        "--version",
        "demo-client / demo-secret",
        "flextell-app / flextell-secret",
        "Admin API",
        "Examples:",
        "1..=31536000",
        "\"status\": 200..=599",
        "301, 302, 303, 307 or 308 (302 when left out)",
        "POST   token-lifetime  {\"seconds\": 1..=31536000",
        "POST   revoke          {\"client\": ID}",
        "\"refusals\": [{\"field\": \"faults[1].path\"",
        "error: --fault[1].path: must start with \"/\"",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let version = run(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// Every refusal is one line, `error: FLAG[ENTRY].FIELD: PROBLEM`, as the admin API names it
/// (`field: problem`), then a pointer to `--help`, and exit code 2; nothing starts.
#[test]
fn values_that_cannot_work_are_refused_in_the_admin_api_format() {
    let fault = |json: &str| vec!["--fault".to_owned(), json.to_owned()];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (args(&["--token-lifetime", "0"]), "--token-lifetime: must be 1..=31536000 (got 0)"),
        (
            args(&["--token-lifetime", "soon"]),
            r#"--token-lifetime: must be a whole number in 1..=31536000 (got "soon")"#,
        ),
        (args(&["--token-lifetime", "31536001"]), "--token-lifetime: must be 1..=31536000"),
        (args(&["--port", "99999"]), "--port: must be 0..=65535 (got 99999)"),
        (args(&["--port", "-1"]), r#"--port: must be a whole number in 0..=65535 (got "-1")"#),
        (
            args(&["--consent", "maybe"]),
            r#"--consent: must be one of prompt, auto-approve, auto-deny (got "maybe")"#,
        ),
        (
            args(&["--client", "only-an-id"]),
            r#"--client[0]: must be ID:SECRET[:SCOPES] with a non-empty ID and SECRET (got "only-an-id")"#,
        ),
        (
            args(&["--client", "a:b", "--client", "id:secret:news.read,bogus.scope"]),
            r#"--client[1]: SCOPES: must be one of news.read, domain.read, items.read, items.write, calls.read (got "bogus.scope")"#,
        ),
        (args(&["--client", "id:secret:"]), r#"--client[0]: SCOPES: must be one of"#),
        (
            args(&["--client", "demo-client:other"]),
            r#"--client[0]: ID: must be new (got "demo-client", registered already"#,
        ),
        (
            args(&["--client", "a:b", "--web-app", "a:c:http://x.test/cb"]),
            "--web-app[0]: ID: must be new",
        ),
        (
            args(&["--web-app", "id:secret:not-a-uri"]),
            r#"--web-app[0]: REDIRECT_URI: must be an absolute http:// or https:// URL without a fragment (got "not-a-uri")"#,
        ),
        (args(&["--web-app", "id:secret:http://x.test/cb#top"]), "--web-app[0]: REDIRECT_URI"),
        // Found by a review: browsers and the SDK refuse a redirect URI with user info.
        (
            args(&["--web-app", "a:b:http://user:pw@x/cb"]),
            r#"--web-app[0]: REDIRECT_URI: must not carry user info (user:password@): browsers and the SDK refuse it (got "http://user:pw@x/cb")"#,
        ),
        (
            args(&["--web-app", "a:b:http://127.0.0.1:0/cb"]),
            "--web-app[0]: REDIRECT_URI: must have a port in 1..=65535",
        ),
        (
            args(&["--port", "99999999999999999999"]),
            "--port: must be 0..=65535 (got 99999999999999999999)",
        ),
        (
            args(&["--token-lifetime", "99999999999999999999"]),
            "--token-lifetime: must be 1..=31536000 (got 99999999999999999999)",
        ),
        (
            args(&["--web-app", "id:secret"]),
            "--web-app[0]: must be ID:SECRET:REDIRECT_URI: REDIRECT_URI is missing",
        ),
        (fault("{broken"), r#"--fault[0]: must be JSON, e.g. {"path": "/news""#),
        (fault("[]"), "--fault[0]: must be a JSON object (one fault)"),
        (
            fault(r#"{"path":"news","kind":"drop"}"#),
            r#"--fault[0].path: must start with "/" (got "news")"#,
        ),
        (
            fault(r#"{"kind":"status","status":99}"#),
            "--fault[0].status: must be 200..=599 (got 99)",
        ),
        (fault(r#"{"kind":"drop","times":0}"#), "--fault[0].times: must be 1..=4294967295 (got 0)"),
        (
            fault(r#"{"kind":"redirect","status":200,"location":"/x"}"#),
            "--fault[0].status: must be one of 301, 302",
        ),
        (
            fault(r#"{"kind":"stauts"}"#),
            "--fault[0].kind: must be one of latency, status, rate_limit",
        ),
        (fault(r#"{"kind":"latency","ms":5,"time":1}"#), "--fault[0].time: unknown field"),
        (
            fault(r#"{"kind":"drop","kind":"hang"}"#),
            "--fault[0].kind: must appear once in its object (got 2 times",
        ),
        (
            fault(r#"{"kind":"redirect","location":"//evil.example/x"}"#),
            r#"--fault[0].location: must be a path starting with a single "/""#,
        ),
        (fault(r#"{"kind":"drop"} x"#), "--fault[0]: must be JSON"),
        (
            fault(r#"{"kind":"drop","client":"nobody"}"#),
            r#"--fault[0].client: must be a registered client: demo-client, flextell-app, limited-client (got "nobody")"#,
        ),
        (
            [fault(r#"{"kind":"drop"}"#), fault(r#"{"kind":"latency","ms":0}"#)].concat(),
            "--fault[1].ms: must be 1..=3600000 (got 0)",
        ),
    ];
    for (args, line) in cases {
        let output =
            Command::new(env!("CARGO_BIN_EXE_helloflex-emulator")).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        let first = message.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("error: {line}")), "{args:?}:\n{message}");
        assert!(message.contains("try '--help'"), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing started");
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_refusal_is_said_at_once() {
    let output = run(&[
        "--port",
        "x",
        "--token-lifetime",
        "0",
        "--fault",
        r#"{"path":"news","kind":"status","status":99}"#,
    ]);
    assert_eq!(output.status.code(), Some(2));
    let lines: Vec<String> = stderr(&output)
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(lines, ["--port", "--token-lifetime", "--fault[0].path", "--fault[0].status"]);
}

#[test]
fn an_unknown_flag_is_clap_s_usage_error() {
    let output = run(&["--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no-such-flag"));
}

/// What works is not refused: a fault for a client registered by `--client`, a redirect with
/// no status, the snake_case consent spelling, kebab-case kinds.
#[test]
fn values_that_work_start_the_emulator() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_helloflex-emulator"))
        .args([
            "--port",
            "0",
            "--consent",
            "auto_deny",
            "--token-lifetime",
            "31536000",
            "--client",
            "ci-bot:s3cret:news.read",
            "--web-app",
            "web:s:https://app.test/callback?x=1",
            "--fault",
            r#"{"kind":"latency","ms":1,"client":"ci-bot","path":"/news"}"#,
            "--fault",
            r#"{"kind":"redirect","location":"/elsewhere","path":"/items","times":1}"#,
            "--fault",
            r#"{"kind":"slow-drip","ms_per_byte":0,"client":"web"}"#,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut first);
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    read.unwrap();
    assert!(first.contains("listening on http://127.0.0.1:"), "{first}{}", stderr(&output));
}

#[test]
fn a_busy_port_is_said_plainly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = run(&["--port", &port]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("in use") && message.contains("--port"), "{message}");
    assert!(!message.contains("Os {"), "{message}");
}

/// Every line the program writes tolerates a closed pipe (`helloflex-emulator | head -1`):
/// `println!` panicked there ("failed printing to stdout: Broken pipe", exit 101).
mod closed_pipes {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    fn emulator() -> Command {
        Command::new(env!("CARGO_BIN_EXE_helloflex-emulator"))
    }

    /// A pipe nobody reads: every write to it fails with a broken pipe.
    fn closed_pipe() -> Stdio {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        writer.into()
    }

    /// `GET /_admin/health` on `addr` (`127.0.0.1:PORT`), retried for 20 s until it answers.
    fn health(addr: &str) -> String {
        for _ in 0..1000 {
            if let Ok(mut stream) = TcpStream::connect(addr) {
                let request = "GET /_admin/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                stream.write_all(request.as_bytes()).unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                return answer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{addr} never answered");
    }

    /// Stops `child` (still serving, not exited) and returns its stderr.
    fn stop(mut child: Child) -> String {
        assert!(child.try_wait().unwrap().is_none(), "it stopped serving");
        child.kill().unwrap();
        let output = child.wait_with_output().unwrap();
        assert_ne!(output.status.code(), Some(101), "a panic's exit code");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// As `| head -1` does: the first line is read, then the read end is closed.
    #[test]
    fn it_keeps_serving_when_stdout_is_closed_after_the_first_line() {
        let mut child = emulator()
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // The reader is dropped here: the read end is closed.
        let addr = first.trim().rsplit("http://").next().unwrap().to_owned();
        assert!(first.contains("listening on http://127.0.0.1:"), "{first}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(health(&addr).contains("\"status\":\"ok\""));
        let stderr = stop(child);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    }

    /// Every line to stdout fails (the read end closed before it starts): it serves anyway.
    #[test]
    fn it_serves_when_no_line_reaches_stdout() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = emulator()
            .args(["--port", &port.to_string()])
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(health(&format!("127.0.0.1:{port}")).contains("\"status\":\"ok\""));
        let stderr = stop(child);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    }

    /// A refusal with stderr closed still exits 2; help and version with stdout closed exit 0.
    #[test]
    fn refusals_help_and_version_exit_as_usual_when_the_pipe_is_closed() {
        let status = emulator().args(["--port", "x"]).stderr(closed_pipe()).status().unwrap();
        assert_eq!(status.code(), Some(2));
        let status = emulator().arg("--no-such-flag").stderr(closed_pipe()).status().unwrap();
        assert_eq!(status.code(), Some(2));
        for flag in ["--help", "--version"] {
            let output =
                emulator().arg(flag).stdout(closed_pipe()).stderr(Stdio::piped()).output().unwrap();
            assert_eq!(output.status.code(), Some(0), "{flag}");
            assert!(
                output.stderr.is_empty(),
                "{flag}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
