//! Profiles: where the API is and who the client is, from the config file, the flags and the
//! environment. Secrets come from the environment only, never from the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use helloflex::InsecureLoopback;
use helloflex::{AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment};
use serde::Deserialize;

use crate::failure::Failure;

/// The port `helloflex emulator` listens on unless told otherwise.
pub const EMULATOR_PORT: u16 = 7878;

/// The emulator's demo machine client and web app (no credentials needed against it).
const EMULATOR_MACHINE: (&str, &str) = ("demo-client", "demo-secret");
const EMULATOR_WEB_APP: (&str, &str) = ("flextell-app", "flextell-secret");

/// `config.toml`: `[profiles.NAME]` tables (see `helloflex config list`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, ProfileConfig>,
}

/// One `[profiles.NAME]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileConfig {
    /// sandbox, live, emulator or a base URL.
    env: Option<String>,
    /// HelloFlex client id (the secret comes from `HELLOFLEX_CLIENT_SECRET`).
    client_id: Option<String>,
    /// HelloFlex scopes.
    #[serde(default)]
    scopes: Vec<String>,
    /// The Flextell app this profile signs in to.
    flextell: Option<FlextellConfig>,
}

/// `[profiles.NAME.flextell]`: every URL is needed to sign in; each may be set on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlextellConfig {
    client_id: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_url: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Where the CLI keeps its files.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `config.toml` lives here.
    pub config: PathBuf,
    /// Tokens and keys live here (per profile and environment).
    pub data: PathBuf,
}

impl Dirs {
    /// `$HELLOFLEX_HOME/{config,data}` if set, else the OS's config and data directories.
    pub fn locate() -> Result<Self, Failure> {
        if let Some(home) = std::env::var_os("HELLOFLEX_HOME").filter(|h| !h.is_empty()) {
            let home = PathBuf::from(home);
            // A relative home would put the key and tokens wherever the command runs (a
            // repository, one `git add .` from publishing them).
            if !home.is_absolute() {
                return Err(Failure::usage(format!(
                    "HELLOFLEX_HOME must be an absolute path, not {}",
                    home.display()
                )));
            }
            return Ok(Self { config: home.join("config"), data: home.join("data") });
        }
        let dirs = directories::ProjectDirs::from("", "", "helloflex")
            .ok_or_else(|| Failure::usage("no home directory: set HELLOFLEX_HOME"))?;
        Ok(Self { config: dirs.config_dir().to_path_buf(), data: dirs.data_dir().to_path_buf() })
    }

    /// `config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }

    /// Where `helloflex emulator` writes its URL.
    pub fn emulator_url_file(&self) -> PathBuf {
        self.data.join("emulator-url")
    }
}

/// Which API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sandbox,
    Live,
    Emulator(String),
    Custom(String),
}

impl Target {
    /// A short name for files and messages.
    pub fn key(&self) -> String {
        match self {
            Target::Sandbox => "sandbox".into(),
            Target::Live => "live".into(),
            Target::Emulator(_) => "emulator".into(),
            // One directory per URL: every byte but letters, digits, `.` and `-` escaped as
            // `_xx`, so two URLs never share one.
            Target::Custom(url) => {
                let mut key = String::from("url-");
                for byte in url.bytes() {
                    match byte {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => {
                            key.push(byte as char)
                        }
                        _ => key.push_str(&format!("_{byte:02x}")),
                    }
                }
                key
            }
        }
    }

    /// Where it is, for a person: `sandbox (https://...)`, `the emulator at http://...`.
    pub fn describe(&self) -> String {
        match self {
            Target::Emulator(url) => format!("the emulator at {url}"),
            Target::Custom(url) => url.clone(),
            Target::Sandbox | Target::Live => match self.environment() {
                Ok(environment) => format!("{} ({})", self.key(), environment.base_url()),
                Err(_) => self.key(),
            },
        }
    }

    /// The HelloFlex environment.
    pub fn environment(&self) -> Result<Environment, Failure> {
        Ok(match self {
            Target::Sandbox => Environment::Sandbox,
            Target::Live => Environment::Live,
            Target::Emulator(url) | Target::Custom(url) => {
                Environment::custom(url, InsecureLoopback::Allow)
                    .map_err(|e| Failure::usage(format!("--env {url}: {e}")))?
            }
        })
    }
}

/// Where the environment a command uses was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvSource {
    /// `--env` on this command.
    Flag,
    /// The profile's `env` in config.toml.
    Config,
    /// Neither: the sandbox.
    Default,
}

/// A resolved profile: everything a command needs to know except the secrets' values.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub target: Target,
    pub env_source: EnvSource,
    pub dirs: Dirs,
    config: ProfileConfig,
}

impl Profile {
    /// Resolves `name` with the `--env` override. `lenient` (for `helloflex config`): an
    /// unknown profile, or settings that do not parse, are taken as empty, so they can be made
    /// and fixed.
    pub fn resolve(name: &str, env: Option<&str>, lenient: bool) -> Result<Self, Failure> {
        check_name(name)?;
        let dirs = Dirs::locate()?;
        let path = dirs.config_file();
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => match parse_config(&text, &path) {
                Ok(file) => file,
                Err(_) if lenient => ConfigFile::default(),
                Err(failure) => return Err(failure),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => return Err(Failure::usage(format!("{}: {e}", path.display()))),
        };
        let config = match file.profiles.get(name) {
            Some(config) => config.clone(),
            None if name == "default" || lenient => ProfileConfig::default(),
            None => {
                let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
                return Err(Failure::usage(format!(
                    "unknown profile '{name}' (profiles in {}: {})",
                    path.display(),
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ))
                .hint(format!(
                    "make it with `helloflex --profile {name} config set env sandbox`"
                )));
            }
        };
        let (target, env_source) = match (env, &config.env) {
            (Some(env), _) => {
                (parse_env(env, &dirs).map_err(|e| e.context("--env"))?, EnvSource::Flag)
            }
            (None, Some(env)) => match parse_env(env, &dirs) {
                Ok(target) => (target, EnvSource::Config),
                Err(_) if lenient => (Target::Sandbox, EnvSource::Default),
                Err(e) => {
                    return Err(e
                        .context(&format!("{}: env of profile '{name}'", path.display()))
                        .hint(format!(
                            "fix it with `helloflex --profile {name} config set env sandbox` (or \
                             live, emulator, a URL)"
                        )));
                }
            },
            (None, None) => (Target::Sandbox, EnvSource::Default),
        };
        Ok(Self { name: name.to_owned(), target, env_source, dirs, config })
    }

    /// The value `config.toml` would hold for this profile's environment.
    pub fn env_setting(&self) -> String {
        match &self.target {
            Target::Sandbox => "sandbox".into(),
            Target::Live => "live".into(),
            Target::Emulator(_) => "emulator".into(),
            Target::Custom(url) => url.clone(),
        }
    }

    /// The profile's `env` in config.toml, if set.
    pub fn configured_env(&self) -> Option<&str> {
        self.config.env.as_deref()
    }

    /// This profile's files for this environment.
    pub fn data_dir(&self) -> PathBuf {
        self.dirs.data.join(&self.name).join(self.target.key())
    }

    /// HelloFlex client credentials: the environment's, else the profile's id with the
    /// environment's secret; the demo client against the emulator.
    pub fn machine_credentials(&self) -> Option<(String, ClientSecret, Vec<String>)> {
        let id =
            std::env::var("HELLOFLEX_CLIENT_ID").ok().or_else(|| self.config.client_id.clone());
        let secret = std::env::var("HELLOFLEX_CLIENT_SECRET").ok();
        match (id, secret, &self.target) {
            (Some(id), Some(secret), _) => {
                Some((id, ClientSecret::new(secret), self.config.scopes.clone()))
            }
            (_, _, Target::Emulator(_)) => {
                Some((EMULATOR_MACHINE.0.into(), ClientSecret::new(EMULATOR_MACHINE.1), Vec::new()))
            }
            _ => None,
        }
    }

    /// The Flextell sign-in for a loopback redirect at `redirect`, and the API's environment.
    pub fn flextell(
        &self,
        redirect: &str,
    ) -> Result<(AuthorizationCodeConfig, Environment), Failure> {
        let endpoint = |url: &str, what: &str| {
            Endpoint::parse(url, InsecureLoopback::Allow)
                .map_err(|e| Failure::usage(format!("Flextell {what} {url}: {e}")))
        };
        let redirect = endpoint(redirect, "redirect URI")?;
        let (identity, authorize, token, api, scopes) = match (&self.target, &self.config.flextell)
        {
            (Target::Emulator(url), _) => (
                ClientIdentity::confidential(
                    EMULATOR_WEB_APP.0,
                    ClientSecret::new(EMULATOR_WEB_APP.1),
                ),
                format!("{url}/oauth2/authorize"),
                format!("{url}/oauth2/token"),
                url.clone(),
                vec!["news.read".to_owned(), "items.read".to_owned(), "items.write".to_owned()],
            ),
            (_, Some(f)) => {
                let setting = |value: &Option<String>, key: &str| {
                    value.clone().ok_or_else(|| {
                        Failure::usage(format!(
                            "profile '{}' has no flextell.{key}: run `helloflex config set flextell.{key} ...`",
                            self.name
                        ))
                    })
                };
                let id = std::env::var("FLEXTELL_CLIENT_ID").ok().or_else(|| f.client_id.clone()).ok_or_else(|| {
                    Failure::usage(format!("profile '{}': no Flextell client id (set FLEXTELL_CLIENT_ID, or `helloflex config set flextell.client_id ID`)", self.name))
                })?;
                let identity = match std::env::var("FLEXTELL_CLIENT_SECRET") {
                    Ok(secret) => ClientIdentity::confidential(id, ClientSecret::new(secret)),
                    Err(_) => ClientIdentity::public(id),
                };
                (
                    identity,
                    setting(&f.authorize_url, "authorize_url")?,
                    setting(&f.token_url, "token_url")?,
                    setting(&f.api_url, "api_url")?,
                    f.scopes.clone(),
                )
            }
            (_, None) => {
                return Err(Failure::usage(format!(
                    "profile '{}' has no Flextell settings for {} (Flextell's URLs are not public \
                     defaults): set them with `helloflex config set flextell.authorize_url URL` \
                     (and token_url, api_url, client_id), or try `--env emulator`",
                    self.name,
                    self.target.key(),
                )));
            }
        };
        let config = AuthorizationCodeConfig::new(
            identity,
            endpoint(&authorize, "authorize URL")?,
            endpoint(&token, "token URL")?,
            redirect,
        )
        .with_scopes(scopes);
        let environment = Environment::custom(&api, InsecureLoopback::Allow)
            .map_err(|e| Failure::usage(format!("Flextell API URL {api}: {e}")))?;
        Ok((config, environment))
    }

    /// Whether this profile can sign in to Flextell at all.
    pub fn has_flextell(&self) -> bool {
        matches!(self.target, Target::Emulator(_)) || self.config.flextell.is_some()
    }
}

/// Reads config.toml (the reader every command and `helloflex config` share).
pub(crate) fn parse_config(text: &str, path: &Path) -> Result<ConfigFile, Failure> {
    // The error's own text says where (line, column, the line itself).
    toml::from_str::<ConfigFile>(text)
        .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.to_string().trim_end())))
}

/// A profile's name becomes a directory: letters, digits, `-`, `_` and `.`, not leading.
fn check_name(name: &str) -> Result<(), Failure> {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(fits) {
        return Err(Failure::usage(format!(
            "'{name}' is not a profile name: 1-64 letters, digits, '-', '_' or '.' (not first); \
             is HELLOFLEX_PROFILE set to something else?"
        )));
    }
    Ok(())
}

/// An environment as `--env` and config.toml's `env` name it. A URL with a user name or
/// password is refused without repeating it (it would be stored and shown).
pub(crate) fn parse_env(env: &str, dirs: &Dirs) -> Result<Target, Failure> {
    Ok(match env {
        "sandbox" => Target::Sandbox,
        "live" => Target::Live,
        "emulator" => Target::Emulator(emulator_url(dirs)),
        url if url.starts_with("http://") || url.starts_with("https://") => {
            let authority = url.split_once("://").map_or("", |(_, rest)| rest);
            let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.contains('@') {
                return Err(Failure::usage(
                    "a URL with a user name or password is refused (credentials go in \
                     HELLOFLEX_CLIENT_ID and HELLOFLEX_CLIENT_SECRET)",
                ));
            }
            let url = url.trim_end_matches('/').to_owned();
            Environment::custom(&url, InsecureLoopback::Allow)
                .map_err(|e| Failure::usage(e.to_string()))?;
            Target::Custom(url)
        }
        other => {
            return Err(Failure::usage(format!(
                "'{other}' is not an environment: expected sandbox, live, emulator or an https:// URL"
            )));
        }
    })
}

/// Where `--env emulator` points: `HELLOFLEX_EMULATOR_URL`, else what `helloflex emulator`
/// wrote, else its default port.
fn emulator_url(dirs: &Dirs) -> String {
    if let Ok(url) = std::env::var("HELLOFLEX_EMULATOR_URL") {
        return url.trim_end_matches('/').to_owned();
    }
    read_trimmed(&dirs.emulator_url_file())
        .unwrap_or_else(|| format!("http://127.0.0.1:{EMULATOR_PORT}"))
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let url = text.trim().trim_end_matches('/');
    (!url.is_empty()).then(|| url.to_owned())
}
