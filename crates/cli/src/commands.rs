//! The commands other than `login`: `token`, `api`, `logout`, `status`, `emulator`.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use helloflex::{ApiRequest, TokenStore};
use helloflex_auth::{Clock, SystemClock};

use crate::failure::Failure;
use crate::profile::{Profile, Target};
use crate::storage::Storage;

type Client = helloflex::blocking::Client;

/// A command's client, closed when the command ends, on an error too. A call whose token is
/// near its end refreshes it in the background; closing stores that refresh before the
/// process exits, so the next invocation never presents a spent refresh token. (Today each
/// command makes one call on a freshly loaded token: one still usable is used as it is, one
/// past its use is refreshed within the call. The close keeps commands that make more calls
/// safe.)
struct Session(Client);

/// How long a command waits at exit for a token request in flight.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

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

/// The client a command uses: the signed-in Flextell user when this profile has one stored,
/// else HelloFlex client credentials (their token cached between invocations).
fn client(profile: &Profile) -> Result<(Session, &'static str), Failure> {
    let (client, grant) = open_client(profile)?;
    Ok((Session(client), grant))
}

fn open_client(profile: &Profile) -> Result<(Client, &'static str), Failure> {
    let storage = Storage::open(profile, false)?;
    if let Some(storage) = &storage
        && storage.user_path().exists()
    {
        // The redirect is not used after sign-in; any loopback value builds the config.
        let (config, environment) = profile.flextell("http://127.0.0.1/callback")?;
        let store: Arc<dyn TokenStore> = Arc::new(storage.user_store());
        let client =
            Client::builder().environment(environment).authorization_code(config, store).build()?;
        return Ok((client, "user"));
    }
    let Some((id, secret, scopes)) = profile.machine_credentials() else {
        return Err(Failure::auth(
            "not logged in: run `helloflex login` (Flextell), or set HELLOFLEX_CLIENT_ID and \
             HELLOFLEX_CLIENT_SECRET (HelloFlex client credentials)",
        ));
    };
    let mut builder = Client::builder()
        .environment(profile.target.environment()?)
        .client_credentials(id, secret)
        .scopes(scopes);
    let storage = match storage {
        Some(storage) => storage,
        None => Storage::open(profile, true)?.ok_or_else(|| Failure::server("no token storage"))?,
    };
    builder = builder.shared_token_store(Arc::new(storage.machine_store()));
    Ok((builder.build()?, "client"))
}

/// The least a printed token has left: a script must be able to use it.
const MIN_LEFT: Duration = Duration::from_secs(30);

/// `helloflex token`: a token with at least [`MIN_LEFT`] to live, refreshed first if needed.
pub fn token(profile: &Profile, json: bool) -> Result<(), Failure> {
    let (client, grant) = client(profile)?;
    let mut token = client.token()?;
    if token.expires_at().saturating_duration_since(SystemClock.now()) < MIN_LEFT {
        // Another invocation may be refreshing at this moment: the store's lease makes one
        // of them refresh and the others adopt its result.
        client.tokens().invalidate(token.id());
        token = client.token()?;
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
            "grant": grant,
        });
        println!("{out}");
    } else {
        println!("{secret}");
    }
    Ok(())
}

fn stored_scope(profile: &Profile, grant: &str) -> Option<Vec<String>> {
    let storage = Storage::open(profile, false).ok()??;
    let store = if grant == "user" { storage.user_store() } else { storage.machine_store() };
    store.load().ok()?.into_tokens()?.scope
}

/// `helloflex api METHOD PATH ...`.
pub fn api(
    profile: &Profile,
    method: &str,
    path: &str,
    query: &[String],
    data: Option<&str>,
    headers: &[String],
) -> Result<(), Failure> {
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
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
        request = request.header(name.trim(), value.trim());
    }
    if let Some(data) = data {
        request = request.json(&read_json(data)?);
    }
    let (client, _) = client(profile)?;
    let response = client.request(request).send()?;
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
    written.map_err(|e| Failure::server(format!("writing the answer: {e}")))
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

/// `helloflex logout`.
pub fn logout(profile: &Profile) -> Result<(), Failure> {
    let deleted = match Storage::open(profile, false)? {
        Some(storage) => storage.delete()?,
        None => false,
    };
    if deleted {
        eprintln!(
            "Logged out (profile '{}', {}): stored tokens deleted.",
            profile.name,
            profile.target.key()
        );
    } else {
        eprintln!("Nothing stored for profile '{}' ({}).", profile.name, profile.target.key());
    }
    Ok(())
}

/// `helloflex status`: never a token.
pub fn status(profile: &Profile) -> Result<(), Failure> {
    let mut out = String::new();
    out.push_str(&format!("profile:  {}\n", profile.name));
    let api = match &profile.target {
        Target::Sandbox => "sandbox (https://api.uat-helloflex.com)".to_owned(),
        Target::Live => "live".to_owned(),
        Target::Emulator(url) => format!("emulator ({url})"),
        Target::Custom(url) => url.clone(),
    };
    out.push_str(&format!("api:      {api}\n"));
    let storage = Storage::open(profile, false)?;
    match &storage {
        Some(storage) => {
            let describe = |name: &str, store: helloflex::FileStore| -> Result<String, Failure> {
                Ok(match store.load().map(helloflex::Loaded::into_tokens) {
                    Ok(Some(tokens)) if tokens.refused => {
                        format!("{name}: refused by the server (run `helloflex login` again)\n")
                    }
                    Ok(Some(tokens)) => {
                        let left = tokens.expires_in(&SystemClock);
                        let expiry = if left.is_zero() {
                            "access token expired".to_owned()
                        } else {
                            format!("access token expires in {}", human(left))
                        };
                        let refresh = if tokens.refresh_token.is_some() {
                            ", refresh token held"
                        } else {
                            ""
                        };
                        format!("{name}: {expiry}{refresh}\n")
                    }
                    Ok(None) => String::new(),
                    Err(e) => {
                        return Err(Failure::server(format!(
                            "{name}: the token store cannot be read: {e}"
                        )));
                    }
                })
            };
            let user = describe("user", storage.user_store())?;
            let machine = describe("client", storage.machine_store())?;
            if user.is_empty() {
                out.push_str("login:    not logged in to Flextell\n");
            } else {
                out.push_str(&format!("login:    logged in ({user}"));
                out.pop();
                out.push_str(")\n");
            }
            if !machine.is_empty() {
                out.push_str(&format!("cached:   HelloFlex client token ({}", machine.trim_end()));
                out.push_str(")\n");
            }
            out.push_str(&format!("tokens:   encrypted files in {}\n", storage.dir().display()));
            out.push_str(&format!("key:      {}\n", storage.key_place));
        }
        None => out.push_str("login:    not logged in (nothing stored)\n"),
    }
    print!("{out}");
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
