//! What the emulator serves: registered clients, lifetimes, consent behaviour.

use std::time::Duration;

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

/// A registered OAuth client.
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

/// All scopes the emulator's API knows.
pub const ALL_SCOPES: &[&str] =
    &["news.read", "domain.read", "items.read", "items.write", "calls.read"];

/// The emulator's settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Access-token lifetime.
    pub token_lifetime: Duration,
    /// Authorization-code lifetime.
    pub code_lifetime: Duration,
    /// Consent behaviour.
    pub consent: Consent,
    /// Registered clients.
    pub clients: Vec<ClientRegistration>,
}

impl EmulatorConfig {
    /// Registers one more redirect URI for `client_id` (matching is exact, as real servers do).
    pub fn with_redirect_uri(mut self, client_id: &str, uri: &str) -> Self {
        if let Some(client) = self.clients.iter_mut().find(|c| c.id == client_id) {
            client.redirect_uris.push(uri.to_owned());
        }
        self
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
