//! `helloflex-emulator`: the HelloFlex and Flextell sandbox as a program, for trying the SDK,
//! curl or your own client on loopback with no credentials. `--help` lists every flag.
//!
//! A value that cannot work is refused before anything starts, in the admin API's form: one
//! line per refusal, `error: FLAG[ENTRY].FIELD: what is allowed (got ...)`, and exit code 2.
//! Every line it writes tolerates a closed pipe (`helloflex-emulator | head -1` keeps serving).

use std::io::Write as _;
use std::num::IntErrorKind;
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use helloflex_emulator::{
    ALL_SCOPES, ClientRegistration, Consent, DEMO_CLIENT, EmulatorConfig, Fault, LIMITED_CLIENT,
    Refusal, TOKEN_LIFETIME_SECONDS, WEB_APP,
};

/// The HelloFlex / Flextell sandbox on loopback: OAuth 2.0 token and authorize endpoints, the
/// API's resources and documented errors, fault injection and counters.
#[derive(Debug, Parser)]
#[command(
    name = "helloflex-emulator",
    version,
    about,
    after_help = AFTER_HELP,
)]
struct Args {
    /// Port on 127.0.0.1, 0..=65535 (0 picks a free one).
    #[arg(long, value_name = "PORT", default_value = "8080", allow_hyphen_values = true)]
    port: String,

    /// Access-token lifetime in seconds, 1..=31536000 (a year).
    #[arg(long, value_name = "SECONDS", default_value = "3599", allow_hyphen_values = true)]
    token_lifetime: String,

    /// How the authorize endpoint answers: prompt (an HTML page with Approve and Deny),
    /// auto-approve or auto-deny (at once, for tests).
    #[arg(long, value_name = "MODE", default_value = "auto-approve")]
    consent: String,

    /// Registers a client-credentials client; SCOPES is a comma-separated subset of the API's
    /// scopes (news.read, domain.read, items.read, items.write, calls.read; all of them when
    /// left out). The ID must be new and without ':'. Repeatable.
    #[arg(long, value_name = "ID:SECRET[:SCOPES]")]
    client: Vec<String>,

    /// Registers an authorization-code client with one redirect URI (matched exactly; an
    /// absolute http:// or https:// URL with a host, without a fragment or user info, with a
    /// port in 1..=65535 if any). Repeatable.
    #[arg(long, value_name = "ID:SECRET:REDIRECT_URI")]
    web_app: Vec<String>,

    /// Injects a fault from the start: one fault as the admin API's JSON (below). Repeatable.
    #[arg(long, value_name = "JSON")]
    fault: Vec<String>,
}

const AFTER_HELP: &str = r#"Demo clients (always registered):
  demo-client / demo-secret        client credentials, every scope
  limited-client / limited-secret  client credentials, news.read only
  flextell-app / flextell-secret   authorization code, redirect http://127.0.0.1:3000/callback

Faults (--fault, POST /_admin/faults): a JSON object with "kind" and its fields:
  latency     "ms": 1..=3600000
  status      "status": 200..=599
  rate_limit  "retry_after": the Retry-After value as sent ("3", an HTTP date, any text)
  drop, hang, truncate (no fields)
  slow_drip   "ms_per_byte": 0..=60000
  redirect    "location": a path starting with one "/" (not "//" or "/\"), or an
              absolute http(s) URL without user info;
              "status": 301, 302, 303, 307 or 308 (302 when left out)
and optionally "path" (a prefix starting with "/", not under /_admin; every path if left
out), "client" (a registered client; every client if left out), "times" (1..=4294967295;
forever if left out). Kebab-case kinds (rate-limit, slow-drip) are accepted too.

Admin API (under /_admin; JSON bodies, snake_case; the Content-Type is not checked):
  GET    health          status, version, base URL, registered clients
  GET    counters        the counters
  POST   counters/reset  no body (or {}): zeroes the counters
  POST   faults          one fault or a non-empty list: all are added, or none
  GET    faults          the faults in force
  DELETE faults          no body (or {}): clears them
  POST   revoke          {"client": ID} revokes that client's tokens; no body or {}: all tokens
  POST   consent         {"mode": "prompt" | "auto_approve" | "auto_deny"}
  POST   token-lifetime  {"seconds": 1..=31536000, "client": ID}: for tokens issued from now
                         (every client when "client" is left out)
  POST   reset           no body (or {}): everything back to the start
ID is a registered client (GET /_admin/health lists them). See
docs/testing-with-the-emulator.md.

Refusals: a value that cannot work is refused, naming the flag or field, the list entry
(counting from 0) and what is allowed. Here: one line each, and exit code 2:
  error: --fault[1].path: must start with "/" (got "news")
A key given twice in one JSON object is refused too (readers disagree on which counts).
The admin API: HTTP 400 (an unknown /_admin path 404, a wrong method 405), and nothing changes:
  {"error": "invalid_request",
   "message": "faults[1].path: must start with \"/\" (got \"news\")",
   "refusals": [{"field": "faults[1].path", "problem": "must start with \"/\" (got \"news\")"}],
   "example": {"path": "/news", "kind": "status", "status": 503, "times": 2}}
("message" joins every refusal with "; "; "example" is a correct body, where one is taken.)

Examples:
  helloflex-emulator --port 8080
  helloflex-emulator --token-lifetime 5 --consent auto-approve
  helloflex-emulator --client ci-bot:s3cret:news.read,items.read
  helloflex-emulator --fault '{"path":"/news","kind":"status","status":503,"times":2}'
  curl -d '{"path":"/news","kind":"latency","ms":800}' http://127.0.0.1:8080/_admin/faults"#;

/// What the flags ask for, once every value is known to work.
struct Settings {
    config: EmulatorConfig,
    faults: Vec<Fault>,
}

/// A whole number within `range`, or a refusal of `flag`.
fn whole_number(flag: &str, text: &str, range: &RangeInclusive<u64>) -> Result<u64, Refusal> {
    let (start, end) = (range.start(), range.end());
    match text.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        Ok(n) => Err(Refusal::new(flag, format!("must be {start}..={end} (got {n})"))),
        // A whole number too large even for u64 is out of range, not "not a number".
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
            Err(Refusal::new(flag, format!("must be {start}..={end} (got {})", text.trim())))
        }
        Err(_) => Err(Refusal::new(
            flag,
            format!("must be a whole number in {start}..={end} (got {text:?})"),
        )),
    }
}

/// The part of a `--client` / `--web-app` value a registration field comes from.
fn part(field: &str) -> &'static str {
    match field.split(['.', '[']).next() {
        Some("id") => "ID",
        Some("secret") => "SECRET",
        Some("scopes") => "SCOPES",
        Some("redirect_uris") => "REDIRECT_URI",
        _ => "the value",
    }
}

/// `ID` and `SECRET` from `ID:SECRET[:REST]`, and the rest.
fn id_and_secret<'a>(
    spec: &'a str,
    form: &str,
) -> Result<(&'a str, &'a str, Option<&'a str>), String> {
    let mut parts = spec.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => {
            Ok((id, secret, parts.next()))
        }
        _ => Err(format!("must be {form} with a non-empty ID and SECRET (got {spec:?})")),
    }
}

/// Reads `--client` values (`ID:SECRET[:SCOPES]`).
fn machine(spec: &str) -> Result<ClientRegistration, String> {
    let (id, secret, scopes) = id_and_secret(spec, "ID:SECRET[:SCOPES]")?;
    let scopes: Vec<&str> = match scopes {
        None => ALL_SCOPES.to_vec(),
        Some(list) => list.split(',').map(str::trim).collect(),
    };
    Ok(ClientRegistration::machine(id, secret, &scopes))
}

/// Reads `--web-app` values (`ID:SECRET:REDIRECT_URI`).
fn web_app(spec: &str) -> Result<ClientRegistration, String> {
    let form = "ID:SECRET:REDIRECT_URI";
    match id_and_secret(spec, form)? {
        (id, secret, Some(uri)) => Ok(ClientRegistration::web_app(id, secret, ALL_SCOPES, &[uri])),
        (_, _, None) => Err(format!("must be {form}: REDIRECT_URI is missing (got {spec:?})")),
    }
}

/// Registers one `--client` or `--web-app` value, refusing one that cannot work.
fn register(
    config: &mut EmulatorConfig,
    flag: &str,
    parsed: Result<ClientRegistration, String>,
    refusals: &mut Vec<Refusal>,
) {
    let client = match parsed {
        Ok(client) => client,
        Err(problem) => return refusals.push(Refusal::new(flag, problem)),
    };
    let before = refusals.len();
    if let Err(problems) = client.check() {
        refusals.extend(
            problems
                .into_iter()
                .map(|r| Refusal::new(flag, format!("{}: {}", part(&r.field), r.problem))),
        );
    }
    if config.clients.iter().any(|c| c.id == client.id) {
        refusals.push(Refusal::new(
            flag,
            format!(
                "ID: must be new (got {:?}, registered already; the demo clients are {}, {} and {})",
                client.id, DEMO_CLIENT.0, LIMITED_CLIENT.0, WEB_APP.0
            ),
        ));
    }
    if refusals.len() == before {
        config.clients.push(client);
    }
}

/// The settings the flags ask for, or every refusal.
fn settings(args: &Args) -> Result<Settings, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let port = whole_number("--port", &args.port, &(0..=u64::from(u16::MAX)))
        .map_err(|r| refusals.push(r))
        .ok()
        .and_then(|n| u16::try_from(n).ok());
    let lifetime = whole_number("--token-lifetime", &args.token_lifetime, &TOKEN_LIFETIME_SECONDS)
        .map_err(|r| refusals.push(r))
        .ok();
    let consent = match args.consent.trim() {
        "prompt" => Some(Consent::Prompt),
        "auto-approve" | "auto_approve" => Some(Consent::AutoApprove),
        "auto-deny" | "auto_deny" => Some(Consent::AutoDeny),
        other => {
            refusals.push(Refusal::new(
                "--consent",
                format!("must be one of prompt, auto-approve, auto-deny (got {other:?})"),
            ));
            None
        }
    };
    let mut config = EmulatorConfig::default();
    for (i, spec) in args.client.iter().enumerate() {
        register(&mut config, &format!("--client[{i}]"), machine(spec), &mut refusals);
    }
    for (i, spec) in args.web_app.iter().enumerate() {
        register(&mut config, &format!("--web-app[{i}]"), web_app(spec), &mut refusals);
    }
    let mut faults = Vec::with_capacity(args.fault.len());
    for (i, json) in args.fault.iter().enumerate() {
        let at = format!("--fault[{i}]");
        match Fault::parse(json).and_then(|fault| config.check_fault(&fault).map(|()| fault)) {
            Ok(fault) => faults.push(fault),
            Err(problems) => refusals.extend(problems.into_iter().map(|r| r.within(&at))),
        }
    }
    let (Some(port), Some(lifetime), Some(consent)) = (port, lifetime, consent) else {
        return Err(refusals);
    };
    if !refusals.is_empty() {
        return Err(refusals);
    }
    config.port = port;
    config.token_lifetime = Duration::from_secs(lifetime);
    config.consent = consent;
    // Whatever the flags above let through and the emulator would still refuse.
    config.check()?;
    Ok(Settings { config, faults })
}

/// Writes one line to stdout, like `println!`, which panics on a broken pipe: a stdout closed
/// early (`helloflex-emulator | head -1`) is no reason to stop serving, and never a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Writes one line to stderr, like `eprintln!` without its panic: a closed stderr changes
/// nothing (the exit code still says what happened).
macro_rules! complain {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Settings { config, faults } = match settings(&args) {
        Ok(settings) => settings,
        Err(refusals) => {
            for refusal in &refusals {
                complain!("error: {refusal}");
            }
            complain!("\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
    let port = config.port;
    let emulator = match helloflex_emulator::start(config) {
        Ok(emulator) => emulator,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            complain!(
                "error: --port: {port} is in use on 127.0.0.1; pick another (0 picks a free one)"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            complain!("error: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    for fault in faults {
        // Checked against these very clients in `settings`: this cannot refuse.
        if let Err(refusals) = emulator.try_add_fault(fault) {
            for refusal in &refusals {
                complain!("error: --fault: {refusal}");
            }
            return ExitCode::from(2);
        }
    }
    let base = emulator.base_url();
    say!("helloflex-emulator {} listening on {base}", env!("CARGO_PKG_VERSION"));
    say!("  token endpoint:     {}", emulator.token_url());
    say!("  authorize endpoint: {}", emulator.authorize_url());
    say!("  admin API:          {base}/_admin/counters");
    say!(
        "  demo clients:       {} / {} (every scope), {} / {} (news.read), {} / {} (authorization code)",
        DEMO_CLIENT.0,
        DEMO_CLIENT.1,
        LIMITED_CLIENT.0,
        LIMITED_CLIENT.1,
        WEB_APP.0,
        WEB_APP.1
    );
    say!("try it:");
    say!(
        "  curl -s -d grant_type=client_credentials -d client_id={} -d client_secret={} {}",
        DEMO_CLIENT.0,
        DEMO_CLIENT.1,
        emulator.token_url()
    );
    loop {
        std::thread::park();
    }
}
