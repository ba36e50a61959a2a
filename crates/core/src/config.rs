//! Where the APIs live and how this client authenticates to their token endpoints.

use crate::endpoint::{Endpoint, InsecureLoopback};
use crate::error::{ConfigError, Error};
use crate::identity::ClientAuthMethod;
use crate::identity::ClientIdentity;
use crate::secret::ClientSecret;

/// The HelloFlex sandbox base URL.
pub const SANDBOX_URL: &str = "https://api.uat-helloflex.com";
/// The HelloFlex live base URL.
pub const LIVE_URL: &str = "https://api.helloflex.com";
/// The HelloFlex token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth2/token";

/// A HelloFlex environment.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Environment, InsecureLoopback};
///
/// assert_eq!(Environment::Sandbox.base_url().as_str(), "https://api.uat-helloflex.com");
/// assert_eq!(Environment::Live.token_url().as_str(), "https://api.helloflex.com/oauth2/token");
/// // The emulator, a proxy: HTTPS, or plain HTTP to loopback when allowed.
/// let local = Environment::custom("http://127.0.0.1:8080", InsecureLoopback::Allow)?;
/// assert_eq!(local.token_url().as_str(), "http://127.0.0.1:8080/oauth2/token");
/// assert!(Environment::custom("http://api.example.com", InsecureLoopback::Allow).is_err());
/// # Ok::<(), helloflex::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Environment {
    /// `https://api.uat-helloflex.com`
    Sandbox,
    /// `https://api.helloflex.com`
    Live,
    /// Any other base URL (the emulator, a proxy).
    Custom(Endpoint),
}

impl Environment {
    /// A custom environment at `base_url` (HTTPS, or HTTP to loopback when `insecure` allows).
    pub fn custom(base_url: &str, insecure: InsecureLoopback) -> Result<Self, ConfigError> {
        Endpoint::parse(base_url, insecure).map(Self::Custom)
    }

    /// The API base URL.
    pub fn base_url(&self) -> Endpoint {
        match self {
            Environment::Sandbox => Endpoint::from_static(SANDBOX_URL, "api.uat-helloflex.com"),
            Environment::Live => Endpoint::from_static(LIVE_URL, "api.helloflex.com"),
            Environment::Custom(e) => e.clone(),
        }
    }

    /// The token endpoint: the base URL with `/oauth2/token`.
    pub fn token_url(&self) -> Endpoint {
        self.base_url().with_path_suffix(TOKEN_PATH)
    }
}

/// Settings for the client-credentials grant (HelloFlex).
///
/// ```
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment};
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
/// assert_eq!(config.token_url().as_str(), "https://api.uat-helloflex.com/oauth2/token");
/// // The secret never shows in Debug output.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentialsConfig {
    pub(crate) client: ClientIdentity,
    pub(crate) token_url: Endpoint,
    pub(crate) scopes: Vec<String>,
}

impl ClientCredentialsConfig {
    /// A confidential client in `environment`, sending its secret in the form body.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        environment: &Environment,
    ) -> Self {
        Self {
            client: ClientIdentity::confidential(client_id, client_secret),
            token_url: environment.token_url(),
            scopes: Vec::new(),
        }
    }

    /// Uses another token endpoint.
    pub fn with_token_url(mut self, token_url: Endpoint) -> Self {
        self.token_url = token_url;
        self
    }

    /// Chooses how the secret is sent.
    pub fn with_auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.client.method = method;
        self
    }

    /// Asks for these scopes.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Endpoint {
        &self.token_url
    }

    /// The client.
    pub fn client(&self) -> &ClientIdentity {
        &self.client
    }

    /// The token request for this grant.
    pub fn token_request(&self) -> Result<crate::token_request::TokenRequest, Error> {
        crate::token_request::client_credentials(&self.token_url, &self.client, &self.scopes)
    }
}

/// Settings for the authorization-code grant (Flextell). Build it with named setters, so the
/// three URLs cannot be swapped unnoticed:
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, InsecureLoopback};
///
/// let url = |u: &str| Endpoint::parse(u, InsecureLoopback::Deny);
/// let config = AuthorizationCodeConfig::builder(ClientIdentity::confidential("my-app", ClientSecret::new("s3cret")))
///     .authorize_url(url("https://login.flextell.example/oauth2/authorize")?)
///     .token_url(url("https://login.flextell.example/oauth2/token")?)
///     .redirect_uri(url("https://my-app.example/callback")?)
///     .build()?
///     .with_scopes(["calls.read"]);
/// assert_eq!(config.redirect_uri().as_str(), "https://my-app.example/callback");
///
/// // A forgotten URL is an error, not a default.
/// let missing = AuthorizationCodeConfig::builder(ClientIdentity::public("my-app"))
///     .authorize_url(url("https://login.flextell.example/oauth2/authorize")?)
///     .build();
/// assert!(missing.is_err());
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizationCodeConfig {
    pub(crate) client: ClientIdentity,
    pub(crate) authorize_url: Endpoint,
    pub(crate) token_url: Endpoint,
    pub(crate) redirect_uri: Endpoint,
    pub(crate) scopes: Vec<String>,
    pub(crate) issuer: Option<String>,
}

/// Builds an [`AuthorizationCodeConfig`] with a named setter per URL.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{AuthorizationCodeConfig, AuthorizationCodeConfigBuilder, ClientIdentity, Endpoint};
/// use helloflex::InsecureLoopback::Deny;
///
/// // A native app: a public client (no secret; PKCE protects the code).
/// let builder: AuthorizationCodeConfigBuilder = AuthorizationCodeConfig::builder(ClientIdentity::public("my-cli"));
/// let config = builder
///     .authorize_url(Endpoint::parse("https://login.flextell.example/oauth2/authorize", Deny)?)
///     .token_url(Endpoint::parse("https://login.flextell.example/oauth2/token", Deny)?)
///     .redirect_uri(Endpoint::parse("https://my-app.example/callback", Deny)?)
///     .build()?;
/// assert_eq!(config.client().client_id(), "my-cli");
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct AuthorizationCodeConfigBuilder {
    client: ClientIdentity,
    authorize_url: Option<Endpoint>,
    token_url: Option<Endpoint>,
    redirect_uri: Option<Endpoint>,
}

impl AuthorizationCodeConfigBuilder {
    /// Where users are sent to sign in and consent.
    pub fn authorize_url(mut self, url: Endpoint) -> Self {
        self.authorize_url = Some(url);
        self
    }
    /// Where codes are exchanged and tokens refreshed.
    pub fn token_url(mut self, url: Endpoint) -> Self {
        self.token_url = Some(url);
        self
    }
    /// Where users come back, exactly as registered with the server.
    pub fn redirect_uri(mut self, url: Endpoint) -> Self {
        self.redirect_uri = Some(url);
        self
    }
    /// The configuration (scopes and issuer are set on it: [`AuthorizationCodeConfig::with_scopes`],
    /// [`AuthorizationCodeConfig::with_issuer`]); each URL must have been given.
    pub fn build(self) -> Result<AuthorizationCodeConfig, ConfigError> {
        let authorize_url =
            self.authorize_url.ok_or(ConfigError::Missing("the authorize URL (.authorize_url)"))?;
        let token_url = self.token_url.ok_or(ConfigError::Missing("the token URL (.token_url)"))?;
        let redirect_uri =
            self.redirect_uri.ok_or(ConfigError::Missing("the redirect URI (.redirect_uri)"))?;
        Ok(AuthorizationCodeConfig::new(self.client, authorize_url, token_url, redirect_uri))
    }
}

impl AuthorizationCodeConfig {
    /// A builder for `client`, with a named setter per URL (prefer it to [`Self::new`]).
    pub fn builder(client: ClientIdentity) -> AuthorizationCodeConfigBuilder {
        AuthorizationCodeConfigBuilder {
            client,
            authorize_url: None,
            token_url: None,
            redirect_uri: None,
        }
    }

    /// A client that sends users to `authorize_url`, receives them back on `redirect_uri` and
    /// exchanges codes at `token_url` (positional: [`Self::builder`] names each URL).
    pub fn new(
        client: ClientIdentity,
        authorize_url: Endpoint,
        token_url: Endpoint,
        redirect_uri: Endpoint,
    ) -> Self {
        Self { client, authorize_url, token_url, redirect_uri, scopes: Vec::new(), issuer: None }
    }

    /// Asks for these scopes (space-joined in the authorization URL).
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Requires the callback to carry `iss` equal to `issuer`, exactly (RFC 9207).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The client.
    pub fn client(&self) -> &ClientIdentity {
        &self.client
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Endpoint {
        &self.token_url
    }

    /// The registered redirect URI.
    pub fn redirect_uri(&self) -> &Endpoint {
        &self.redirect_uri
    }

    /// The refresh request for `refresh_token`.
    pub fn refresh_request(
        &self,
        refresh_token: &crate::RefreshToken,
    ) -> Result<crate::token_request::TokenRequest, Error> {
        crate::token_request::refresh(&self.token_url, &self.client, refresh_token)
    }
}
