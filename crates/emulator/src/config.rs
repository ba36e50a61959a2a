//! What the emulator serves: registered clients, lifetimes, consent behaviour.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::faults::Fault;
use crate::refusal::{Refusal, absolute_url_problem, got_str};

/// The access-token lifetimes, in seconds, that `--token-lifetime` and
/// `POST /_admin/token-lifetime` take: a second to a year. (The Rust API also takes less than a
/// second, and zero: tokens issued expired.)
pub const TOKEN_LIFETIME_SECONDS: RangeInclusive<u64> = 1..=31_536_000;

/// The grant types a client may be registered for.
pub const GRANTS: &[&str] = &["client_credentials", "authorization_code", "refresh_token"];

/// How the authorize endpoint answers a person (or a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// Show an HTML consent page listing the scopes, with Approve and Deny buttons.
    Prompt,
    /// Approve at once and redirect back with a code (for tests).
    #[serde(alias = "auto-approve")]
    AutoApprove,
    /// Deny at once and redirect back with `error=access_denied` (for tests).
    #[serde(alias = "auto-deny")]
    AutoDeny,
}

/// A registered OAuth client. [`start`](crate::start) refuses one that cannot work (see
/// [`ClientRegistration::check`]).
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// The client id.
    pub id: String,
    /// The client secret.
    pub secret: String,
    /// Scopes this client may be granted.
    pub scopes: Vec<String>,
    /// Grants it may use (`client_credentials`, `authorization_code`, `refresh_token`).
    pub grants: Vec<String>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
}

impl ClientRegistration {
    /// A client-credentials client.
    pub fn machine(id: &str, secret: &str, scopes: &[&str]) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            grants: vec!["client_credentials".into()],
            redirect_uris: Vec::new(),
        }
    }

    /// An authorization-code client (Flextell style) with refresh tokens.
    pub fn web_app(id: &str, secret: &str, scopes: &[&str], redirect_uris: &[&str]) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            grants: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: redirect_uris.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl ClientRegistration {
    /// What cannot work in this registration: an empty id or one with `:` (HTTP Basic could not
    /// carry it), an empty secret, a scope the API does not know, no grant or an unknown one, an
    /// authorization-code client without redirect URIs, a redirect URI that is not an absolute
    /// `http://` or `https://` URL with a host, or has a fragment, user info (`user:pw@`) or a
    /// port outside 1..=65535. Fields are named as in the struct
    /// (`scopes[1]`).
    ///
    /// ```
    /// use helloflex_emulator::ClientRegistration;
    ///
    /// let client = ClientRegistration::machine("ci-bot", "s3cret", &["news.read", "bogus"]);
    /// let refused = client.check().unwrap_err();
    /// assert_eq!(refused[0].field, "scopes[1]");
    /// assert!(refused[0].problem.starts_with("must be one of news.read, domain.read"));
    /// ```
    pub fn check(&self) -> Result<(), Vec<Refusal>> {
        let mut refusals = Vec::new();
        if self.id.trim().is_empty() || self.id.contains(':') {
            refusals.push(Refusal::new(
                "id",
                format!("must be a non-empty id without \":\" (got {})", got_str(&self.id)),
            ));
        }
        if self.secret.is_empty() {
            refusals.push(Refusal::new("secret", "must not be empty"));
        }
        for (i, scope) in self.scopes.iter().enumerate() {
            if !ALL_SCOPES.contains(&scope.as_str()) {
                refusals.push(Refusal::new(
                    format!("scopes[{i}]"),
                    format!("must be one of {} (got {})", ALL_SCOPES.join(", "), got_str(scope)),
                ));
            }
        }
        if self.grants.is_empty() {
            refusals.push(Refusal::new(
                "grants",
                format!("must name at least one of {}", GRANTS.join(", ")),
            ));
        }
        for (i, grant) in self.grants.iter().enumerate() {
            if !GRANTS.contains(&grant.as_str()) {
                refusals.push(Refusal::new(
                    format!("grants[{i}]"),
                    format!("must be one of {} (got {})", GRANTS.join(", "), got_str(grant)),
                ));
            }
        }
        if self.redirect_uris.is_empty() && self.grants.iter().any(|g| g == "authorization_code") {
            refusals.push(Refusal::new(
                "redirect_uris",
                "must hold at least one URI for an authorization_code client",
            ));
        }
        for (i, uri) in self.redirect_uris.iter().enumerate() {
            if let Some(problem) = redirect_uri_problem(uri) {
                refusals.push(Refusal::new(format!("redirect_uris[{i}]"), problem));
            }
        }
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }
}

/// Why users could never be sent back to `uri`, if they could not.
pub(crate) fn redirect_uri_problem(uri: &str) -> Option<String> {
    absolute_url_problem(uri)
}

/// The refusal of a client id that is not registered, listing those that are.
pub(crate) fn unregistered<'a>(client: &str, ids: impl Iterator<Item = &'a str>) -> String {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    format!("must be a registered client: {} (got {})", ids.join(", "), got_str(client))
}

/// All scopes the emulator's API knows.
pub const ALL_SCOPES: &[&str] =
    &["news.read", "domain.read", "items.read", "items.write", "calls.read"];

/// The emulator's settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Access-token lifetime, at most a year (zero: tokens issued expired).
    pub token_lifetime: Duration,
    /// Authorization-code lifetime, at most a year.
    pub code_lifetime: Duration,
    /// Consent behaviour.
    pub consent: Consent,
    /// Registered clients.
    pub clients: Vec<ClientRegistration>,
}

impl EmulatorConfig {
    /// Registers one more redirect URI for `client_id` (matching is exact, as real servers do).
    ///
    /// # Panics
    ///
    /// If no client `client_id` is registered (the URI could never be used): a mistake in the
    /// test that calls it, said at once.
    #[track_caller]
    pub fn with_redirect_uri(mut self, client_id: &str, uri: &str) -> Self {
        match self.clients.iter_mut().find(|c| c.id == client_id) {
            Some(client) => client.redirect_uris.push(uri.to_owned()),
            None => panic!(
                "with_redirect_uri: client_id: {}",
                unregistered(client_id, self.clients.iter().map(|c| c.id.as_str()))
            ),
        }
        self
    }

    /// What cannot work in these settings: a lifetime over a year, a client that cannot work
    /// (see [`ClientRegistration::check`]), two clients with one id. [`start`](crate::start)
    /// refuses such settings.
    ///
    /// ```
    /// use helloflex_emulator::{ClientRegistration, EmulatorConfig};
    ///
    /// let mut config = EmulatorConfig::default();
    /// config.clients.push(ClientRegistration::machine("demo-client", "other", &["news.read"]));
    /// let refused = config.check().unwrap_err();
    /// assert_eq!(refused[0].field, "clients[3].id");
    /// assert!(helloflex_emulator::start(config).is_err());
    /// ```
    pub fn check(&self) -> Result<(), Vec<Refusal>> {
        let mut refusals = Vec::new();
        let max = Duration::from_secs(*TOKEN_LIFETIME_SECONDS.end());
        for (field, lifetime) in
            [("token_lifetime", self.token_lifetime), ("code_lifetime", self.code_lifetime)]
        {
            if lifetime > max {
                refusals.push(Refusal::new(
                    field,
                    format!("must be at most {} s (got {lifetime:?})", max.as_secs()),
                ));
            }
        }
        for (i, client) in self.clients.iter().enumerate() {
            let at = format!("clients[{i}]");
            if let Err(problems) = client.check() {
                refusals.extend(problems.into_iter().map(|r| r.within(&at)));
            }
            if let Some(first) = self.clients[..i].iter().position(|c| c.id == client.id) {
                refusals.push(Refusal::new(
                    format!("{at}.id"),
                    format!(
                        "must be unique: clients[{first}] has the id {} too",
                        got_str(&client.id)
                    ),
                ));
            }
        }
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }

    /// What cannot work in `fault` with these clients (see [`Fault`]'s fields): a fault that
    /// would never fire (a path without a leading `/`, `times: 0`, a client that is not
    /// registered) or could not do what it says (a status out of range, a redirect without a
    /// redirect status). Fields are named as in the fault's JSON (`path`, `status`).
    pub fn check_fault(&self, fault: &Fault) -> Result<(), Vec<Refusal>> {
        let mut refusals = fault.problems();
        if let Some(client) = &fault.client
            && !self.clients.iter().any(|c| &c.id == client)
        {
            refusals.push(Refusal::new(
                "client",
                unregistered(client, self.clients.iter().map(|c| c.id.as_str())),
            ));
        }
        if refusals.is_empty() { Ok(()) } else { Err(refusals) }
    }
}

/// The default machine client: `demo-client` / `demo-secret`, every scope.
pub const DEMO_CLIENT: (&str, &str) = ("demo-client", "demo-secret");
/// A machine client allowed only `news.read` (for 403 scenarios).
pub const LIMITED_CLIENT: (&str, &str) = ("limited-client", "limited-secret");
/// The default web app (authorization code): `flextell-app` / `flextell-secret`.
pub const WEB_APP: (&str, &str) = ("flextell-app", "flextell-secret");

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            port: 0,
            token_lifetime: Duration::from_secs(3599),
            code_lifetime: Duration::from_secs(60),
            consent: Consent::AutoApprove,
            clients: vec![
                ClientRegistration::machine(DEMO_CLIENT.0, DEMO_CLIENT.1, ALL_SCOPES),
                ClientRegistration::machine(LIMITED_CLIENT.0, LIMITED_CLIENT.1, &["news.read"]),
                ClientRegistration::web_app(
                    WEB_APP.0,
                    WEB_APP.1,
                    ALL_SCOPES,
                    &[
                        "http://127.0.0.1:3000/callback",
                        "http://localhost:3000/callback",
                        // A native app (the `helloflex` CLI): any port (RFC 8252).
                        "http://127.0.0.1/callback",
                    ],
                ),
            ],
        }
    }
}
