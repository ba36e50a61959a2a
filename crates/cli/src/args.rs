//! The command line, as clap derives it: every flag, its help, and the exit codes.

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  2  usage: a bad flag or argument, an unknown profile, malformed --data, a port in use
  3  authentication: not logged in, sign-in denied or timed out, re-authorization required,
     credentials refused (OAuth errors, 401)
  4  the API refused the request (4xx other than 401)
  5  the API or the network failed (5xx, timeouts, connection errors), or the token store did

Environment:
  HELLOFLEX_CLIENT_ID, HELLOFLEX_CLIENT_SECRET  HelloFlex client credentials
  FLEXTELL_CLIENT_ID, FLEXTELL_CLIENT_SECRET    Flextell app credentials (for login)
  HELLOFLEX_EMULATOR_URL                        where --env emulator points
  HELLOFLEX_KEY_STORE=file                      the token key in a 0600 file, not the keyring
  HELLOFLEX_HOME                                config and tokens here, not the OS dirs
  BROWSER                                       the browser login opens";

/// Log in, get tokens and call the HelloFlex and Flextell APIs.
#[derive(Debug, Parser)]
#[command(name = "helloflex", version, about, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// The profile (settings and stored tokens) to use.
    #[arg(long, global = true, env = "HELLOFLEX_PROFILE", default_value = "default")]
    pub profile: String,
    /// Where the API is: sandbox, live, emulator, or a base URL (overrides the profile).
    #[arg(long = "env", global = true, value_name = "sandbox|live|emulator|URL")]
    pub environment: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in to Flextell in the browser (authorization code with PKCE, loopback redirect).
    Login {
        /// Port of the loopback redirect on 127.0.0.1 (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long, conflicts_with = "browser")]
        no_browser: bool,
        /// Open the browser even when not attached to a terminal.
        #[arg(long)]
        browser: bool,
        /// Seconds to wait for the browser to come back.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print a valid access token (for scripts): from the store, refreshed when due.
    Token {
        /// Print JSON with the expiry and scopes instead.
        #[arg(long)]
        json: bool,
    },
    /// Call the API: `helloflex api GET news --query Lang=en`.
    #[command(after_help = EXIT_CODES)]
    Api {
        /// The HTTP method (GET, POST, PUT, PATCH, DELETE).
        method: String,
        /// The path under the API's base URL, e.g. `news` or `customers/7/news`.
        path: String,
        /// A query parameter `key=value` (repeatable).
        #[arg(long, short = 'q', value_name = "KEY=VALUE")]
        query: Vec<String>,
        /// A JSON body: the JSON itself, `@file`, or `@-` for standard input.
        #[arg(long, short = 'd', value_name = "JSON|@FILE")]
        data: Option<String>,
        /// A request header `name:value` (repeatable).
        #[arg(long, short = 'H', value_name = "NAME:VALUE")]
        header: Vec<String>,
    },
    /// Delete the profile's stored tokens.
    Logout,
    /// Who is logged in, where the tokens are kept and when they expire (never the tokens).
    Status,
    /// Run the embedded emulator (a HelloFlex + Flextell sandbox on loopback) until Ctrl-C.
    Emulator {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = crate::profile::EMULATOR_PORT)]
        port: u16,
    },
    /// Print shell completions: `helloflex completions bash > /etc/bash_completion.d/helloflex`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}
