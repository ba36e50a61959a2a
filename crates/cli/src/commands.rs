//! The commands other than `login`: `token`, `api`, `logout`, `status`, `emulator`.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use helloflex::{ApiRequest, Error, RetryPolicy, TokenStore};
use helloflex::{Clock, SystemClock};

use crate::args::Grant;
use crate::failure::Failure;
use crate::interrupt::CLOSE_WITHIN;
use crate::profile::{EnvSource, Profile, Target};
use crate::storage::Storage;

type Client = helloflex::blocking::Client;

/// A command's client, closed when the command ends, on an error too. A call whose token is
/// near its end refreshes it in the background; closing stores that refresh before the
/// process exits, so the next invocation never presents a spent refresh token. (Today each
/// command makes one call on a freshly loaded token: one still usable is used as it is, one
/// past its use is refreshed within the call. The close keeps commands that make more calls
/// safe.)
struct Session(Client);

impl std::ops::Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.0.close(CLOSE_WITHIN) {
            eprintln!(
                "helloflex: a token refresh was still running at exit; if the next command \
                 says to log in again, run `helloflex login`"
            );
        }
    }
}

/// The client a call with `grant` uses: HelloFlex with the client credentials (their token
/// cached between invocations), or Flextell as the user signed in with `helloflex login`.
fn client(profile: &Profile, grant: Grant, verbose: bool) -> Result<Session, Failure> {
    let storage = Storage::open(profile, false)?;
    let signed_in = storage.as_ref().is_some_and(|s| s.user_path().exists());
    let mut builder = Client::builder();
    if let Target::Emulator(_) = profile.target {
        // A refused connection to a local emulator is not worth a second of backoff.
        builder = builder.retry_policy(
            RetryPolicy::default()
                .with_backoff(Duration::from_millis(10), Duration::from_millis(50)),
        );
    }
    let client = match grant {
        Grant::User => {
            if !profile.has_flextell() {
                return Err(profile
                    .flextell("http://127.0.0.1/callback")
                    .err()
                    .unwrap_or_else(|| Failure::usage("this profile has no Flextell settings")));
            }
            let Some(storage) = storage.filter(|_| signed_in) else {
                let mut failure = Failure::auth(format!(
                    "not signed in to Flextell (profile '{}', {})",
                    profile.name,
                    profile.target.key()
                ))
                .hint("run `helloflex login` first");
                if profile.machine_credentials().is_some() {
                    failure =
                        failure.hint("HelloFlex calls take the client credentials: --grant client");
                }
                return Err(failure);
            };
            // The redirect is not used after sign-in; any loopback value builds the config.
            let (config, environment) = profile.flextell("http://127.0.0.1/callback")?;
            if verbose {
                eprintln!(
                    "helloflex: Flextell API at {}, as the signed-in user (--grant user)",
                    environment.base_url()
                );
            }
            let store: Arc<dyn TokenStore> = Arc::new(storage.user_store());
            builder.environment(environment).authorization_code(config, store).build()?
        }
        Grant::Client => {
            let Some((id, secret, scopes)) = profile.machine_credentials() else {
                let mut failure = Failure::auth(format!(
                    "no HelloFlex client credentials for {}: set HELLOFLEX_CLIENT_ID and \
                     HELLOFLEX_CLIENT_SECRET",
                    profile.target.key()
                ));
                if signed_in {
                    failure = failure
                        .hint("to call Flextell as the signed-in user instead: --grant user");
                }
                return Err(failure);
            };
            let environment = profile.target.environment()?;
            if verbose {
                eprintln!(
                    "helloflex: HelloFlex API at {}, with the client credentials of {id} \
                     (--grant client)",
                    environment.base_url()
                );
            }
            let storage = match storage {
                Some(storage) => storage,
                None => Storage::open(profile, true)?
                    .ok_or_else(|| Failure::server("no token storage"))?,
            };
            builder
                .environment(environment)
                .client_credentials(id, secret)
                .scopes(scopes)
                .shared_token_store(Arc::new(storage.machine_store()))
                .build()?
        }
    };
    crate::interrupt::closes(&client);
    Ok(Session(client))
}

/// A failed call explained for a person: the grant it used, and what to run next.
fn explain(error: &Error, profile: &Profile, grant: Grant) -> Failure {
    let mut failure = Failure::from_error(error);
    if Failure::is_unreachable(error) {
        if let Target::Emulator(url) = &profile.target {
            failure = Failure::server(format!("cannot reach the emulator at {url}")).hint(
                "start it with `helloflex emulator` in another terminal (or point \
                 HELLOFLEX_EMULATOR_URL at a running one)",
            );
        } else {
            failure =
                failure.hint(format!("is {} reachable from here?", profile.target.describe()));
        }
    }
    if Failure::is_wrong_token(error) {
        let unauthorized = error.status().is_some_and(|s| s.as_u16() == 401);
        failure = failure.hint(match grant {
            Grant::Client if unauthorized => {
                "the token of the HelloFlex client credentials (--grant client) was refused: \
                 were they revoked or changed? A Flextell endpoint takes --grant user"
            }
            Grant::Client => {
                "this call used the HelloFlex client credentials (--grant client); to call \
                 Flextell as the signed-in user: --grant user"
            }
            Grant::User => {
                "this call was made as the signed-in Flextell user (--grant user); HelloFlex \
                 endpoints take the client credentials: --grant client"
            }
        });
    }
    failure
}

/// The least a printed token has left: a script must be able to use it.
const MIN_LEFT: Duration = Duration::from_secs(30);

/// `helloflex token`: a token with at least [`MIN_LEFT`] to live, refreshed first if needed.
pub fn token(profile: &Profile, grant: Grant, json: bool, verbose: bool) -> Result<(), Failure> {
    let client = client(profile, grant, verbose)?;
    let explain = |e: Error| explain(&e, profile, grant);
    let mut token = client.token().map_err(explain)?;
    if token.expires_at().saturating_duration_since(SystemClock.now()) < MIN_LEFT {
        // Another invocation may be refreshing at this moment: the store's lease makes one
        // of them refresh and the others adopt its result.
        client.tokens().invalidate(token.id());
        token = client.token().map_err(explain)?;
    }
    let secret = token.access_token().expose_secret();
    if json {
        let expires_in = token.expires_at().saturating_duration_since(SystemClock.now()).as_secs();
        let scope = stored_scope(profile, grant);
        let out = serde_json::json!({
            "access_token": secret,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": scope,
            "grant": match grant { Grant::Client => "client", Grant::User => "user" },
        });
        crate::say(&format!("{out}\n"));
    } else {
        crate::say(&format!("{secret}\n"));
    }
    Ok(())
}

fn stored_scope(profile: &Profile, grant: Grant) -> Option<Vec<String>> {
    let storage = Storage::open(profile, false).ok()??;
    let store = match grant {
        Grant::User => storage.user_store(),
        Grant::Client => storage.machine_store(),
    };
    store.load().ok()?.into_tokens()?.scope
}

/// The methods `api` sends.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// `helloflex api METHOD PATH ...`: what to send, and whose token it carries.
pub struct Call<'a> {
    pub grant: Grant,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [String],
    pub data: Option<&'a str>,
    pub headers: &'a [String],
}

/// `helloflex api METHOD PATH ...`.
pub fn api(profile: &Profile, call: &Call<'_>, verbose: bool) -> Result<(), Failure> {
    let Call { grant, method, path, query, data, headers } = *call;
    let upper = method.to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(Failure::usage(format!(
            "'{method}' is not a method the API takes: {}",
            METHODS.join(", ")
        )));
    }
    let method = http::Method::from_bytes(upper.as_bytes())
        .map_err(|_| Failure::usage(format!("not an HTTP method: {method}")))?;
    let mut request = ApiRequest::new(method, path.trim_start_matches('/'));
    for pair in query {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--query {pair}: expected KEY=VALUE")))?;
        request = request.query(key, value);
    }
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| Failure::usage(format!("--header {header}: expected NAME:VALUE")))?;
        if ["authorization", "host"].contains(&name.trim().to_ascii_lowercase().as_str()) {
            return Err(Failure::usage(format!(
                "--header {}: set by helloflex itself (--grant chooses the token)",
                name.trim()
            )));
        }
        request = request.header(name.trim(), value.trim());
    }
    if let Some(data) = data {
        request = request.json(&read_json(data)?);
    }
    let client = client(profile, grant, verbose)?;
    let response = client.request(request).send().map_err(|e| explain(&e, profile, grant))?;
    let body = response.bytes();
    let mut out = std::io::stdout().lock();
    let written = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if std::io::stdout().is_terminal() => {
            writeln!(out, "{}", serde_json::to_string_pretty(&value).unwrap_or_default())
        }
        _ if body.is_empty() => Ok(()),
        _ => out
            .write_all(body)
            .and_then(|()| if body.ends_with(b"\n") { Ok(()) } else { writeln!(out) }),
    };
    match written.and_then(|()| out.flush()) {
        // The reader stopped reading (`| head`): what it wanted, it has.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.map_err(|e| Failure::server(format!("writing the answer: {e}"))),
    }
}

/// `--data`: JSON text, `@file` or `@-` (standard input), checked to be JSON.
fn read_json(data: &str) -> Result<serde_json::Value, Failure> {
    let (text, source) = match data.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::usage(format!("--data @-: {e}")))?;
            (text, "standard input".to_owned())
        }
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("--data @{path}: {e}")))?,
            path.to_owned(),
        ),
        None => (data.to_owned(), "--data".to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{source} is not JSON: {} at line {} column {}",
            describe(&e),
            e.line(),
            e.column()
        ))
    })
}

fn describe(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "it ends early",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "it could not be read",
    }
}

/// `helloflex logout`: both grants' tokens and the key that sealed them.
pub fn logout(profile: &Profile) -> Result<(), Failure> {
    let removed = crate::storage::remove_all(profile)?;
    if removed.is_empty() {
        let others: Vec<String> = std::fs::read_dir(profile.dirs.data.join(&profile.name))
            .map(|entries| {
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        eprintln!("Nothing stored for profile '{}' ({}).", profile.name, profile.target.key());
        if !others.is_empty() {
            eprintln!(
                "  it has tokens for: {} (`helloflex logout --env ...` for each)",
                others.join(", ")
            );
        }
    } else {
        eprintln!(
            "Logged out (profile '{}', {}): deleted {}.",
            profile.name,
            profile.target.key(),
            removed.join(", ")
        );
    }
    Ok(())
}

/// How `status` shows a set the server refused.
const REFUSED: &str = "Flextell refused this sign-in (run `helloflex login`)";

/// `helloflex status`: the environment, both grants, where tokens are kept; never a token.
pub fn status(profile: &Profile) -> Result<(), Failure> {
    let mut out = String::new();
    out.push_str(&format!("profile:  {}\n", profile.name));
    let source = match profile.env_source {
        EnvSource::Flag => "from --env".to_owned(),
        EnvSource::Config => "the profile's default (config.toml)".to_owned(),
        EnvSource::Default => {
            "the default; `helloflex login --env ...` or `helloflex config set env ...` changes it"
                .to_owned()
        }
    };
    out.push_str(&format!("env:      {}, {source}\n", profile.target.describe()));
    let storage = Storage::open(profile, false)?;
    let describe = |store: Option<helloflex::FileStore>| -> Option<String> {
        match store?.load().map(helloflex::Loaded::into_tokens) {
            Ok(Some(tokens)) if tokens.refused => Some(REFUSED.to_owned()),
            Ok(Some(tokens)) => {
                let left = tokens.expires_in(&SystemClock);
                let expiry = if left.is_zero() {
                    "access token expired".to_owned()
                } else {
                    format!("access token expires in {}", human(left))
                };
                let refresh =
                    if tokens.refresh_token.is_some() { ", refresh token held" } else { "" };
                Some(format!("{expiry}{refresh}"))
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot be read ({e}); `helloflex logout` starts over")),
        }
    };
    let client_line = match profile.machine_credentials() {
        None => {
            "no client credentials (set HELLOFLEX_CLIENT_ID and HELLOFLEX_CLIENT_SECRET)".to_owned()
        }
        Some((id, _, _)) => {
            let cached = describe(storage.as_ref().map(Storage::machine_store));
            let cached =
                cached.map(|c| format!("; {c}")).unwrap_or_else(|| "; no token cached".into());
            format!("client {id}{cached}")
        }
    };
    out.push_str(&format!("HelloFlex (--grant client): {client_line}\n"));
    let user_line = match describe(storage.as_ref().map(Storage::user_store)) {
        Some(state) if state == REFUSED => format!("signed out: {state}"),
        Some(state) => format!("signed in; {state}"),
        None if profile.has_flextell() => "not signed in (run `helloflex login`)".to_owned(),
        None => format!(
            "not set up for {} (`helloflex config list` shows the flextell settings)",
            profile.target.key()
        ),
    };
    out.push_str(&format!("Flextell  (--grant user):   {user_line}\n"));
    match &storage {
        Some(storage) => {
            out.push_str(&format!("tokens:   encrypted files in {}\n", storage.dir().display()));
            out.push_str(&format!("key:      {}\n", storage.key_place));
        }
        None => out.push_str(&format!(
            "tokens:   none stored yet (they go in {})\n",
            profile.data_dir().display()
        )),
    }
    out.push_str(&format!("config:   {}\n", profile.dirs.config_file().display()));
    crate::say(&out);
    Ok(())
}

fn human(left: Duration) -> String {
    let s = left.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `helloflex emulator`: runs until killed.
pub fn emulator(profile: &Profile, port: u16) -> Result<(), Failure> {
    let config = helloflex_emulator::EmulatorConfig {
        port,
        consent: helloflex_emulator::Consent::Prompt,
        ..Default::default()
    };
    let emulator = helloflex_emulator::start(config).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            Failure::usage(format!("port {port} is in use on 127.0.0.1: pick another with --port"))
        }
        _ => Failure::server(format!("cannot start the emulator: {e}")),
    })?;
    let url = emulator.base_url().to_owned();
    let file = profile.dirs.emulator_url_file();
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&file, format!("{url}\n"));
    eprintln!(
        "helloflex emulator at {url} (Ctrl-C to stop)\n\
         \x20 try: helloflex --env emulator api GET news\n\
         \x20      helloflex --env emulator login\n\
         \x20 demo clients: demo-client / demo-secret (client credentials), \
         flextell-app / flextell-secret (sign-in; the consent page asks)"
    );
    loop {
        std::thread::park();
    }
}
