//! `helloflex`: log in, get tokens and call the HelloFlex and Flextell APIs from a terminal.
//!
//! ```text
//! helloflex emulator &                   # a local sandbox, no credentials needed
//! helloflex login --env emulator         # sign in (Flextell); emulator becomes the default
//! helloflex api GET news                 # HelloFlex, with the client credentials; JSON out
//! helloflex api --grant user GET items   # Flextell, as the signed-in user
//! helloflex status                       # the environment and both grants
//! ```
//!
//! Tokens are kept encrypted (the key in the OS keyring, or a 0600 key file where none
//! answers); `helloflex status` says where, never what. Exit codes by class are in `--help`.

mod args;
mod commands;
mod config;
mod failure;
mod interrupt;
mod login;
mod profile;
mod storage;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::failure::Failure;
use crate::profile::Profile;

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupt::install();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("helloflex: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Writes `text` to standard output. A reader that stopped reading (`| head`) has what it
/// wanted: that is not an error, and never a panic as `print!` would make it.
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "helloflex", &mut script);
        say(&String::from_utf8_lossy(&script));
        return Ok(());
    }
    // `config` must work on a profile that does not exist yet, or whose settings are broken:
    // it is how they are made and fixed.
    let lenient = matches!(cli.command, Command::Config { .. });
    let profile = Profile::resolve(&cli.profile, cli.environment.as_deref(), lenient)?;
    match cli.command {
        Command::Login { port, no_browser, browser, timeout } => login::login(
            &profile,
            &login::Options { port, no_browser, browser, timeout: Duration::from_secs(timeout) },
        ),
        Command::Token { grant, json } => commands::token(&profile, grant, json, cli.verbose),
        Command::Api { grant, method, path, query, data, header } => {
            let call = commands::Call {
                grant,
                method: &method,
                path: &path,
                query: &query,
                data: data.as_deref(),
                headers: &header,
            };
            commands::api(&profile, &call, cli.verbose)
        }
        Command::Config { action } => config::run(&profile, &action),
        Command::Logout => commands::logout(&profile),
        Command::Status => commands::status(&profile),
        Command::Emulator { port } => commands::emulator(&profile, port),
        Command::Completions { .. } => Ok(()),
    }
}
