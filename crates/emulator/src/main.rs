//! `helloflex-emulator`: the sandbox as a program.
//!
//! ```text
//! helloflex-emulator [--port N] [--token-lifetime SECONDS] [--consent prompt|auto-approve|auto-deny]
//!                    [--client ID:SECRET[:SCOPE,SCOPE...]] [--web-app ID:SECRET:REDIRECT_URI]
//!                    [--fault JSON]...
//! ```

use std::process::ExitCode;
use std::time::Duration;

use helloflex_emulator::{ALL_SCOPES, ClientRegistration, Consent, EmulatorConfig, Fault};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("helloflex-emulator: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = EmulatorConfig { port: 8080, ..EmulatorConfig::default() };
    let mut faults = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => config.port = value()?.parse().map_err(|_| "--port takes a number")?,
            "--token-lifetime" => {
                config.token_lifetime = Duration::from_secs(
                    value()?.parse().map_err(|_| "--token-lifetime takes seconds")?,
                )
            }
            "--consent" => {
                config.consent = match value()?.as_str() {
                    "prompt" => Consent::Prompt,
                    "auto-approve" => Consent::AutoApprove,
                    "auto-deny" => Consent::AutoDeny,
                    other => return Err(format!("unknown consent mode {other}")),
                }
            }
            "--client" => {
                let spec = value()?;
                let mut parts = spec.splitn(3, ':');
                let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
                    return Err("--client takes ID:SECRET[:SCOPES]".into());
                };
                let scopes: Vec<&str> =
                    parts.next().map_or_else(|| ALL_SCOPES.to_vec(), |s| s.split(',').collect());
                config.clients.push(ClientRegistration::machine(id, secret, &scopes));
            }
            "--web-app" => {
                let spec = value()?;
                let mut parts = spec.splitn(3, ':');
                let (Some(id), Some(secret), Some(uri)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err("--web-app takes ID:SECRET:REDIRECT_URI".into());
                };
                config.clients.push(ClientRegistration::web_app(id, secret, ALL_SCOPES, &[uri]));
            }
            "--fault" => faults.push(
                serde_json::from_str::<Fault>(&value()?).map_err(|e| format!("--fault: {e}"))?,
            ),
            "--help" | "-h" => {
                println!(
                    "see the crate docs: helloflex-emulator [--port N] [--token-lifetime S] [--consent MODE] [--client ID:SECRET[:SCOPES]] [--web-app ID:SECRET:URI] [--fault JSON]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let emulator = helloflex_emulator::start(config).map_err(|e| format!("cannot start: {e}"))?;
    for fault in faults {
        emulator.add_fault(fault);
    }
    println!("helloflex-emulator listening on {}", emulator.base_url());
    println!("  token endpoint:     {}", emulator.token_url());
    println!("  authorize endpoint: {}", emulator.authorize_url());
    println!("  admin API:          {}/_admin/counters", emulator.base_url());
    loop {
        std::thread::park();
    }
}
