//! `helloflex login`: the authorization-code flow with PKCE over an RFC 8252 loopback redirect.
//! The CLI listens on 127.0.0.1 (a free port unless `--port`), sends the browser to Flextell,
//! and takes the one callback that comes back: a forged or stray request is answered and
//! ignored, so only the genuine callback completes the sign-in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use helloflex::core::machines::saturating_add;
use helloflex::{Error, TokenStore};

use crate::failure::Failure;
use crate::profile::Profile;
use crate::storage::Storage;

/// How `login` reaches the person.
pub struct Options {
    pub port: Option<u16>,
    pub no_browser: bool,
    pub browser: bool,
    pub timeout: Duration,
}

/// Signs in; on success the tokens are in the profile's store.
pub fn login(profile: &Profile, options: &Options) -> Result<(), Failure> {
    if !profile.has_flextell() {
        // Say so before a browser opens.
        profile.flextell("http://127.0.0.1/callback")?;
    }
    let listener = TcpListener::bind(("127.0.0.1", options.port.unwrap_or(0))).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => Failure::usage(format!(
            "port {} is in use on 127.0.0.1: pick another with --port, or leave it out for a free one",
            options.port.unwrap_or(0)
        )),
        _ => Failure::server(format!("cannot listen on 127.0.0.1: {e}")),
    })?;
    let port = listener.local_addr().map_err(|e| Failure::server(e.to_string()))?.port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let (config, environment) = profile.flextell(&redirect)?;
    let storage =
        Storage::open(profile, true)?.ok_or_else(|| Failure::server("no token storage"))?;
    let store: Arc<dyn TokenStore> = Arc::new(storage.user_store());
    let client = helloflex::blocking::Client::builder()
        .environment(environment)
        .authorization_code(config, store)
        .build()?;
    let (url, pending) = client.start_authorization()?;

    crate::interrupt::closes(&client);

    let opened = match browser_plan(options) {
        Plan::Open => webbrowser::open(&url).is_ok(),
        Plan::Print(why) => {
            if let Some(why) = why {
                eprintln!("No browser opened: {why}.");
            }
            false
        }
    };
    if opened {
        eprintln!("Opened a browser to sign in. If it did not open, visit:\n  {url}");
    } else {
        eprintln!("Open this URL in a browser, on this machine or another, to sign in:\n  {url}");
    }
    eprintln!(
        "A browser on another machine (over SSH) cannot come back here after you approve: \
         paste the address it then shows (it starts with {redirect}?) here and press Enter, or \
         forward the port first (`login --port {port}`, and `ssh -L {port}:127.0.0.1:{port} HOST` \
         on your machine)."
    );
    eprintln!("Waiting for the browser (Ctrl-C to cancel)...");

    wait_for_callback(listener, read_lines(), options.timeout, |target| {
        client.complete_authorization(&pending, &format!("http://127.0.0.1:{port}{target}"))
    })?;
    eprintln!(
        "Logged in to Flextell (profile '{}', {}); tokens encrypted in {}, key in {}.",
        profile.name,
        profile.target.key(),
        storage.user_path().display(),
        storage.key_place
    );
    match crate::config::remember_env(profile) {
        Ok(Some(changed)) => eprintln!("{changed}."),
        Ok(None) => {}
        Err(failure) => {
            eprintln!("helloflex: the default environment was not saved: {}", failure.message)
        }
    }
    eprintln!(
        "Call Flextell as this user with `helloflex api --grant user GET ...`; HelloFlex calls \
         (`helloflex api GET ...`) keep using the client credentials."
    );
    Ok(())
}

/// Whether to open a browser, or why not.
enum Plan {
    Open,
    Print(Option<&'static str>),
}

/// A browser is opened when asked (`--browser`, `BROWSER`), or at a terminal of a machine that
/// can show one: not over SSH, and on Linux and the BSDs only with a display.
fn browser_plan(options: &Options) -> Plan {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if options.no_browser {
        return Plan::Print(None);
    }
    if options.browser || set("BROWSER") {
        return Plan::Open;
    }
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !interactive {
        return Plan::Print(Some("not attached to a terminal (set BROWSER or pass --browser)"));
    }
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return Plan::Print(Some("this is an SSH session (set BROWSER or pass --browser)"));
    }
    let needs_display = cfg!(all(unix, not(target_os = "macos")));
    if needs_display && !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
        return Plan::Print(Some("no display (set BROWSER or pass --browser)"));
    }
    Plan::Open
}

/// Standard input's lines, read on a thread (a pasted address; the thread ends at end of input
/// or with the process).
fn read_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new().name("paste".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The request target (`/callback?code=..&state=..`) of a pasted redirect address, with or
/// without its scheme and host (browsers often hide `http://`).
fn pasted_target(line: &str) -> Option<String> {
    let line = line.trim().trim_matches(['"', '\'', '<', '>']);
    let after_scheme = line.split_once("://").map_or(line, |(_, rest)| rest);
    let target = &after_scheme[after_scheme.find('/')?..];
    (target == "/callback" || target.starts_with("/callback?")).then(|| target.to_owned())
}

/// What became of one callback.
enum Outcome {
    SignedIn,
    /// Not this sign-in's callback (a stale tab, a forgery, an unreadable request): the
    /// sign-in stays open.
    NotThisSignIn,
    Failed {
        title: &'static str,
        failure: Failure,
    },
}

fn judge(result: Result<helloflex::Token, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::SignedIn,
        Err(Error::Callback(e)) if e.is_stray() => Outcome::NotThisSignIn,
        Err(error) => {
            let title = match &error {
                Error::Callback(_) => "Sign-in not completed",
                _ => "Sign-in failed",
            };
            Outcome::Failed { title, failure: Failure::from_error(&error) }
        }
    }
}

/// What reaches the waiting sign-in: a request to the loopback redirect, or a pasted line.
enum Arrival {
    Request(TcpStream, String),
    Pasted(String),
}

/// How many requests to the loopback listener are read at once (each on its own thread, so a
/// slow or idle one, such as a browser's preconnect, delays nothing).
const MAX_READERS: usize = 16;

/// Serves the loopback redirect and takes pasted addresses until the genuine callback
/// completes, is refused, or the time is up. `complete` gets the request target
/// (`/callback?code=..&state=..`).
fn wait_for_callback(
    listener: TcpListener,
    pasted: mpsc::Receiver<String>,
    timeout: Duration,
    complete: impl Fn(&str) -> Result<helloflex::Token, Error>,
) -> Result<(), Failure> {
    // `--timeout` of any size: a huge one waits (100 years at most), never panics.
    #[allow(clippy::disallowed_methods)] // a program's own deadline
    let deadline = saturating_add(Instant::now(), timeout);
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let (tx, arrivals) = mpsc::channel();
    let readers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let requests = tx.clone();
    let _ = std::thread::Builder::new().name("loopback".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if readers.load(std::sync::atomic::Ordering::Relaxed) >= MAX_READERS {
                continue; // dropped: a flood of connections waits for nothing
            }
            readers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (requests, readers) = (requests.clone(), readers.clone());
            let _ = std::thread::Builder::new().name("request".into()).spawn(move || {
                if let Some((stream, target)) = read_request(stream) {
                    let _ = requests.send(Arrival::Request(stream, target));
                }
                readers.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    let _ = std::thread::Builder::new().name("paste".into()).spawn(move || {
        for line in pasted {
            if tx.send(Arrival::Pasted(line)).is_err() {
                break;
            }
        }
    });
    let failed = |failure: Failure| Failure {
        code: failure.code,
        message: format!("sign-in not completed: {}", failure.message),
    };
    loop {
        #[allow(clippy::disallowed_methods)]
        let left = deadline.saturating_duration_since(Instant::now());
        let arrival = match arrivals.recv_timeout(left.min(Duration::from_secs(3600))) {
            Ok(arrival) => arrival,
            Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => continue,
            Err(_) => {
                return Err(Failure::auth(format!(
                    "no answer from the browser within {} s (was the browser closed?)",
                    timeout.as_secs()
                ))
                .hint("run `helloflex login` again"));
            }
        };
        match arrival {
            Arrival::Pasted(line) => match pasted_target(&line).map(|t| judge(complete(&t))) {
                Some(Outcome::SignedIn) => return Ok(()),
                Some(Outcome::NotThisSignIn) => eprintln!(
                    "That address does not belong to this sign-in (an older tab, or cut short?): \
                     paste the whole address from this one."
                ),
                Some(Outcome::Failed { failure, .. }) => return Err(failed(failure)),
                None if line.trim().is_empty() => {}
                None => eprintln!(
                    "That is not the address the browser was sent to: it starts with \
                     http://127.0.0.1:{port}/callback?"
                ),
            },
            Arrival::Request(mut stream, target) => {
                if !(target == "/callback" || target.starts_with("/callback?")) {
                    respond(
                        &mut stream,
                        404,
                        "Not found",
                        "This is the helloflex sign-in listener.",
                    );
                    continue;
                }
                match judge(complete(&target)) {
                    Outcome::SignedIn => {
                        respond(
                            &mut stream,
                            200,
                            "Signed in",
                            "You are signed in to helloflex. You can close this tab.",
                        );
                        return Ok(());
                    }
                    Outcome::NotThisSignIn => respond(
                        &mut stream,
                        400,
                        "Not this sign-in",
                        "This link does not belong to the sign-in in progress.",
                    ),
                    Outcome::Failed { title, failure } => {
                        let message = format!(
                            "{} You can close this tab; run `helloflex login` to try again.",
                            failure.message
                        );
                        respond(&mut stream, 400, title, &message);
                        return Err(failed(failure).hint("run `helloflex login` to try again"));
                    }
                }
            }
        }
    }
}

/// The request target of one HTTP request, read with a short timeout and a size cap.
fn read_request(stream: TcpStream) -> Option<(TcpStream, String)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    #[allow(clippy::disallowed_methods)] // a program's own deadline
    let started = Instant::now();
    let mut reader = BufReader::new(stream.try_clone().ok()?.take(16 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    // Drain the headers (the browser waits for nothing else; a GET has no body); a client
    // that trickles them gets 10 s in all.
    let mut header = String::new();
    while reader.read_line(&mut header).ok()? > 2 {
        if started.elapsed() > Duration::from_secs(10) {
            return None;
        }
        header.clear();
    }
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some((stream, target.to_owned())),
        _ => None,
    }
}

fn respond(stream: &mut TcpStream, status: u16, title: &str, message: &str) {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}</style>\
         </head><body><h1>{title}</h1><p>{}</p></body></html>",
        escape(message)
    );
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
