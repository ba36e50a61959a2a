//! `helloflex login`: the authorization-code flow with PKCE over an RFC 8252 loopback redirect.
//! The CLI listens on 127.0.0.1 (a free port unless `--port`), sends the browser to Flextell,
//! and takes the one callback that comes back: a forged or stray request is answered and
//! ignored, so only the genuine callback completes the sign-in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use helloflex::core::machines::saturating_add;
use helloflex::{CallbackError, Error, TokenStore};

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

    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let open = !options.no_browser && (options.browser || interactive);
    if open && webbrowser::open(&url).is_ok() {
        eprintln!("Opened the browser to sign in. If it did not open, visit:\n  {url}");
    } else {
        if open {
            eprintln!("Could not open a browser.");
        }
        eprintln!("Open this URL in a browser to sign in:\n  {url}");
    }
    let spinner =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    spinner.set_message("waiting for the browser (Ctrl-C to cancel)");
    spinner.enable_steady_tick(Duration::from_millis(120));

    let result = wait_for_callback(&listener, options.timeout, |target| {
        client.complete_authorization(&pending, &format!("http://127.0.0.1:{port}{target}"))
    });
    spinner.finish_and_clear();
    result?;
    eprintln!(
        "Logged in (profile '{}', {}); tokens encrypted in {}, key in {}.",
        profile.name,
        profile.target.key(),
        storage.user_path().display(),
        storage.key_place
    );
    Ok(())
}

/// Serves the loopback redirect until the genuine callback completes, is refused, or the time
/// is up. `complete` gets the request target (`/callback?code=..&state=..`).
fn wait_for_callback(
    listener: &TcpListener,
    timeout: Duration,
    complete: impl Fn(&str) -> Result<helloflex::Token, Error>,
) -> Result<(), Failure> {
    // `--timeout` of any size: a huge one waits (100 years at most), never panics.
    #[allow(clippy::disallowed_methods)] // a program's own deadline
    let deadline = saturating_add(Instant::now(), timeout);
    listener.set_nonblocking(true).map_err(|e| Failure::server(e.to_string()))?;
    loop {
        #[allow(clippy::disallowed_methods)]
        if Instant::now() >= deadline {
            return Err(Failure::auth(format!(
                "no answer from the browser within {} s (was the browser closed?); run `helloflex login` again",
                timeout.as_secs()
            )));
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(Failure::server(format!("loopback redirect: {e}"))),
        };
        let Some((mut stream, target)) = read_request(stream) else { continue };
        if !(target == "/callback" || target.starts_with("/callback?")) {
            respond(&mut stream, 404, "Not found", "This is the helloflex sign-in listener.");
            continue;
        }
        match complete(&target) {
            Ok(_) => {
                respond(
                    &mut stream,
                    200,
                    "Signed in",
                    "You are signed in to helloflex. You can close this tab.",
                );
                return Ok(());
            }
            // Not this sign-in's callback (a stale tab, a forgery): the sign-in stays open.
            Err(Error::Callback(CallbackError::StateMismatch | CallbackError::MissingState)) => {
                respond(
                    &mut stream,
                    400,
                    "Not this sign-in",
                    "This link does not belong to the sign-in in progress.",
                );
            }
            Err(error) => {
                let failure = Failure::from_error(&error);
                let denied = matches!(&error, Error::Callback(_));
                let title = if denied { "Sign-in not completed" } else { "Sign-in failed" };
                let message = format!(
                    "{} You can close this tab; run `helloflex login` to try again.",
                    failure.message
                );
                respond(&mut stream, 400, title, &message);
                return Err(Failure::auth(format!("sign-in not completed: {}", failure.message)));
            }
        }
    }
}

/// The request target of one HTTP request, read with a short timeout and a size cap.
fn read_request(stream: TcpStream) -> Option<(TcpStream, String)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?.take(16 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    // Drain the headers (the browser waits for nothing else; a GET has no body).
    let mut header = String::new();
    while reader.read_line(&mut header).ok()? > 2 {
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
