//! The command line, as clap derives it: every flag, its help, and the exit codes.

use clap::{Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Which grant a call uses:
  --grant client (the default)  the HelloFlex API, with the client credentials (HELLOFLEX_CLIENT_ID
                                and HELLOFLEX_CLIENT_SECRET; the demo client against the emulator)
  --grant user                  the Flextell API, as the user signed in with `helloflex login`
  `helloflex status` shows both.

Where things are kept (`helloflex config path` prints the paths on this machine):
  config.toml  settings per profile (never a secret): $HELLOFLEX_HOME/config/, else
               ~/.config/helloflex/ (Linux), ~/Library/Application Support/helloflex/ (macOS),
               %APPDATA%\\helloflex\\config\\ (Windows)
  tokens       encrypted (ChaCha20-Poly1305) files per profile and environment in the data
               directory ($HELLOFLEX_HOME/data/, else ~/.local/share/helloflex/ on Linux), in a
               0700 directory
  the key      that seals them: in the OS keyring, or where none answers (or with
               HELLOFLEX_KEY_STORE=file) in a 0600 `key` file beside the tokens
  `helloflex logout` deletes a profile's tokens and its key.

Exit codes:
  0  success
  2  usage: a bad flag or argument, an unknown profile or setting, malformed --data, a port in use
  3  authentication: not logged in, sign-in denied or timed out, re-authorization required,
     credentials refused (OAuth errors, 401)
  4  the API refused the request (4xx other than 401)
  5  the API or the network failed (5xx, timeouts, connection errors), or the token store did

Environment:
  HELLOFLEX_CLIENT_ID, HELLOFLEX_CLIENT_SECRET  HelloFlex client credentials
  FLEXTELL_CLIENT_ID, FLEXTELL_CLIENT_SECRET    Flextell app credentials (for login)
  HELLOFLEX_PROFILE, HELLOFLEX_GRANT            --profile, --grant
  HELLOFLEX_EMULATOR_URL                        where --env emulator points
  HELLOFLEX_KEY_STORE=file                      the token key in a 0600 file, not the keyring
  HELLOFLEX_HOME                                config and tokens here, not the OS dirs
  BROWSER                                       the browser login opens";

/// Log in, get tokens and call the HelloFlex and Flextell APIs.
#[derive(Debug, Parser)]
#[command(name = "helloflex", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// The profile (settings and stored tokens) to use.
    #[arg(long, global = true, env = "HELLOFLEX_PROFILE", default_value = "default")]
    pub profile: String,
    /// Where the API is: sandbox, live, emulator, or a base URL. Default: the profile's `env`
    /// (set by `login --env`, or `helloflex config set env ...`), else sandbox.
    #[arg(long = "env", global = true, value_name = "sandbox|live|emulator|URL")]
    pub environment: Option<String>,
    /// Say on stderr which API, environment and grant a call uses.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Whose token a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Grant {
    /// The HelloFlex API with the client credentials (client-credentials grant).
    Client,
    /// The Flextell API as the signed-in user (authorization-code grant; `helloflex login`).
    User,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in to Flextell in a browser (authorization code with PKCE, loopback redirect); the
    /// environment given with --env becomes the profile's default.
    #[command(after_help = "\
Over SSH, or wherever no browser opens: open the printed URL in a browser on any machine, sign
in, then paste here the address the browser was sent to (it starts with
http://127.0.0.1:PORT/callback?). Or forward the port first (`login --port 8765`, then
`ssh -L 8765:127.0.0.1:8765 HOST` on your machine) and the sign-in completes by itself.")]
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
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
    },
    /// Print a valid access token (for scripts): from the store, refreshed when due.
    Token {
        /// Whose token: the HelloFlex client's or the signed-in Flextell user's.
        #[arg(long, short = 'g', env = "HELLOFLEX_GRANT", value_enum, ignore_case = true, default_value_t = Grant::Client)]
        grant: Grant,
        /// Print JSON with the expiry and scopes instead.
        #[arg(long)]
        json: bool,
    },
    /// Call the API: `helloflex api GET news --query Lang=en`; `--grant user` for Flextell.
    #[command(after_help = AFTER_HELP)]
    Api {
        /// Which API and token: HelloFlex with the client credentials, or Flextell as the
        /// signed-in user.
        #[arg(long, short = 'g', env = "HELLOFLEX_GRANT", value_enum, ignore_case = true, default_value_t = Grant::Client)]
        grant: Grant,
        /// The HTTP method: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
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
    /// Sign out: delete the profile's stored tokens (both grants) and the key that seals them.
    Logout,
    /// Which environment, both grants (who is signed in, which client), where the tokens are
    /// kept and when they expire (never the tokens).
    Status,
    /// Read or change the profile's settings in config.toml.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run the embedded emulator (a HelloFlex + Flextell sandbox on loopback) until Ctrl-C.
    Emulator {
        /// Port on 127.0.0.1 (0: a free one).
        #[arg(long, default_value_t = crate::profile::EMULATOR_PORT)]
        port: u16,
    },
    /// Print shell completions: `helloflex completions bash > /etc/bash_completion.d/helloflex`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `helloflex config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print a setting of the profile (nothing when it is not set).
    Get {
        /// The setting (`helloflex config list` shows them all).
        key: String,
    },
    /// Change a setting of the profile (checked before it is written).
    Set {
        /// The setting.
        key: String,
        /// Its value (scopes: space- or comma-separated).
        value: String,
    },
    /// Remove a setting of the profile (its default applies again).
    Unset {
        /// The setting.
        key: String,
    },
    /// Every setting there is, with the profile's values.
    List,
    /// Where config.toml, the tokens and the key are on this machine.
    Path,
}
