//! The emulator program: `--help` documents every flag with examples and the demo clients,
//! `--version` answers, and every bad value is refused with a clear message and exit code 2
//! (never a panic, never a silent default).

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
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let version = run(&["--version"]);
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_values_are_refused_clearly() {
    for (args, says) in [
        (vec!["--token-lifetime", "0"], "token-lifetime"),
        (vec!["--token-lifetime", "soon"], "token-lifetime"),
        (vec!["--client", "only-an-id"], "ID and SECRET"),
        (vec!["--client", "id:secret:news.read,bogus.scope"], "news.read, domain.read"),
        (vec!["--web-app", "id:secret:not-a-uri"], "REDIRECT_URI"),
        (vec!["--consent", "maybe"], "auto-approve"),
        (vec!["--fault", "{broken"], "example"),
        (vec!["--port", "99999"], "port"),
        (vec!["--no-such-flag"], "no-such-flag"),
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains(says), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
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
