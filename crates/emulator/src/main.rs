//! `helloflex-emulator`: the HelloFlex and Flextell sandbox as a program, for trying the SDK,
//! curl or your own client on loopback with no credentials. `--help` lists every flag.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use helloflex_emulator::{
    ALL_SCOPES, ClientRegistration, Consent, DEMO_CLIENT, EmulatorConfig, Fault, LIMITED_CLIENT,
    WEB_APP,
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
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,

    /// Access-token lifetime in seconds (1 to 31536000).
    #[arg(long, value_name = "SECONDS", default_value_t = 3599,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    token_lifetime: u64,

    /// How the authorize endpoint answers: a consent page, or at once.
    #[arg(long, value_enum, default_value_t = ConsentMode::AutoApprove)]
    consent: ConsentMode,

    /// Registers a client-credentials client; SCOPES is a comma-separated subset of the API's
    /// scopes (all of them when left out). Repeatable.
    #[arg(long, value_name = "ID:SECRET[:SCOPES]", value_parser = parse_client)]
    client: Vec<ClientRegistration>,

    /// Registers an authorization-code client with one redirect URI (matched exactly).
    /// Repeatable.
    #[arg(long, value_name = "ID:SECRET:REDIRECT_URI", value_parser = parse_web_app)]
    web_app: Vec<ClientRegistration>,

    /// Injects a fault from the start, as the admin API's JSON. Repeatable.
    #[arg(long, value_name = "JSON", value_parser = parse_fault)]
    fault: Vec<Fault>,
}

const AFTER_HELP: &str = "\
Demo clients (always registered):
  demo-client / demo-secret        client credentials, every scope
  limited-client / limited-secret  client credentials, news.read only
  flextell-app / flextell-secret   authorization code, redirect http://127.0.0.1:3000/callback

Admin API (JSON, snake_case, under /_admin): GET health, GET counters, POST counters/reset,
POST/GET/DELETE faults, POST revoke, POST consent, POST token-lifetime, POST reset (everything).
See docs/testing-with-the-emulator.md.

Examples:
  helloflex-emulator --port 8080
  helloflex-emulator --token-lifetime 5 --consent auto-approve
  helloflex-emulator --client ci-bot:s3cret:news.read,items.read
  helloflex-emulator --fault '{\"path\":\"/news\",\"kind\":\"status\",\"status\":503,\"times\":2}'

Fault kinds: latency {ms}, status {status}, rate_limit {retry_after}, drop, hang,
slow_drip {ms_per_byte}, truncate, redirect {location}; each optionally limited to a path
prefix, a client and a count.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConsentMode {
    /// An HTML page with Approve and Deny buttons.
    Prompt,
    /// Approve at once (for tests).
    AutoApprove,
    /// Deny at once (for tests).
    AutoDeny,
}

fn id_and_secret<'a>(
    parts: &mut impl Iterator<Item = &'a str>,
) -> Result<(&'a str, &'a str), String> {
    match (parts.next(), parts.next()) {
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => Err("expected a non-empty ID and SECRET separated by ':'".into()),
    }
}

fn parse_client(spec: &str) -> Result<ClientRegistration, String> {
    let mut parts = spec.splitn(3, ':');
    let (id, secret) = id_and_secret(&mut parts)?;
    let scopes: Vec<&str> = match parts.next() {
        None => ALL_SCOPES.to_vec(),
        Some(list) => list.split(',').map(str::trim).collect(),
    };
    if let Some(unknown) = scopes.iter().find(|s| !ALL_SCOPES.contains(s)) {
        return Err(format!(
            "unknown scope {unknown:?}; the API's scopes are: {}",
            ALL_SCOPES.join(", ")
        ));
    }
    Ok(ClientRegistration::machine(id, secret, &scopes))
}

fn parse_web_app(spec: &str) -> Result<ClientRegistration, String> {
    let mut parts = spec.splitn(3, ':');
    let (id, secret) = id_and_secret(&mut parts)?;
    let uri = parts.next().unwrap_or_default();
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return Err("expected ID:SECRET:REDIRECT_URI with an http:// or https:// URI".into());
    }
    Ok(ClientRegistration::web_app(id, secret, ALL_SCOPES, &[uri]))
}

fn parse_fault(json: &str) -> Result<Fault, String> {
    serde_json::from_str(json).map_err(|e| {
        format!(
            "not a fault ({e}); example: {{\"path\":\"/news\",\"kind\":\"status\",\"status\":503,\"times\":2}}"
        )
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = EmulatorConfig {
        port: args.port,
        token_lifetime: Duration::from_secs(args.token_lifetime),
        consent: match args.consent {
            ConsentMode::Prompt => Consent::Prompt,
            ConsentMode::AutoApprove => Consent::AutoApprove,
            ConsentMode::AutoDeny => Consent::AutoDeny,
        },
        ..EmulatorConfig::default()
    };
    config.clients.extend(args.client);
    config.clients.extend(args.web_app);
    let emulator = match helloflex_emulator::start(config) {
        Ok(emulator) => emulator,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "helloflex-emulator: port {} is in use; pick another with --port (0 picks a free one)",
                args.port
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("helloflex-emulator: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    for fault in args.fault {
        emulator.add_fault(fault);
    }
    let base = emulator.base_url();
    println!("helloflex-emulator {} listening on {base}", env!("CARGO_PKG_VERSION"));
    println!("  token endpoint:     {}", emulator.token_url());
    println!("  authorize endpoint: {}", emulator.authorize_url());
    println!("  admin API:          {base}/_admin/counters");
    println!(
        "  demo clients:       {} / {} (every scope), {} / {} (news.read), {} / {} (authorization code)",
        DEMO_CLIENT.0, DEMO_CLIENT.1, LIMITED_CLIENT.0, LIMITED_CLIENT.1, WEB_APP.0, WEB_APP.1
    );
    println!("try it:");
    println!(
        "  curl -s -d grant_type=client_credentials -d client_id={} -d client_secret={} {}",
        DEMO_CLIENT.0,
        DEMO_CLIENT.1,
        emulator.token_url()
    );
    loop {
        std::thread::park();
    }
}
