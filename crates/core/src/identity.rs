//! Who the client is at a token endpoint and how it proves it (RFC 6749 section 2.3), and what
//! scopes it may ask for: shared by the grant configurations, token requests and authorization
//! URLs, and depending on none of them.

use crate::error::ConfigError;
use crate::secret::ClientSecret;

/// How the client authenticates to a token endpoint.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ClientAuthMethod, ClientSecret, Environment};
/// use helloflex::core::ClientCredentialsConfig;
///
/// assert_eq!(ClientAuthMethod::default(), ClientAuthMethod::RequestBody);
/// // On a client builder: `.auth_method(ClientAuthMethod::BasicAuth)`.
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox)
///     .with_auth_method(ClientAuthMethod::BasicAuth);
/// let request = config.token_request()?;
/// assert!(request.request().headers()["authorization"].to_str()?.starts_with("Basic "));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body, as HelloFlex documents
    /// (`client_secret_post`). The default.
    #[default]
    RequestBody,
    /// HTTP Basic with form-urlencoded id and secret (RFC 6749 section 2.3.1,
    /// `client_secret_basic`).
    BasicAuth,
}

/// A client's identity at a token endpoint.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ClientIdentity, ClientSecret};
///
/// let web_app = ClientIdentity::confidential("my-app", ClientSecret::new("s3cret"));
/// let native = ClientIdentity::public("my-cli"); // no secret: PKCE protects the code
/// assert_eq!(native.client_id(), "my-cli");
/// assert!(web_app.validate().is_ok());
/// assert!(ClientIdentity::confidential(" ", ClientSecret::new("s3cret")).validate().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    pub(crate) method: ClientAuthMethod,
}

impl ClientIdentity {
    /// A confidential client.
    pub fn confidential(client_id: impl Into<String>, client_secret: ClientSecret) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: Some(client_secret),
            method: ClientAuthMethod::default(),
        }
    }

    /// A public client (no secret; PKCE protects the code).
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            method: ClientAuthMethod::default(),
        }
    }

    /// Chooses how the secret is sent.
    pub fn with_method(mut self, method: ClientAuthMethod) -> Self {
        self.method = method;
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Refuses a blank client id, an empty secret, and Basic auth without a secret.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Missing("client_id"));
        }
        if self.client_secret.as_ref().is_some_and(|s| s.expose_secret().is_empty()) {
            return Err(ConfigError::Invalid {
                name: "client_secret",
                reason: "it is empty (a public client has no secret: use ClientIdentity::public)",
            });
        }
        if self.method == ClientAuthMethod::BasicAuth && self.client_secret.is_none() {
            return Err(ConfigError::Invalid {
                name: "auth_method",
                reason: "HTTP Basic needs a client secret",
            });
        }
        Ok(())
    }
}

/// A scope token must be printable ASCII without space, `"` or `\` (RFC 6749 section 3.3).
pub(crate) fn validate_scopes(scopes: &[String]) -> Result<(), ConfigError> {
    let ok = scopes.iter().all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name: "scopes",
            reason: "a scope is empty or has a character RFC 6749 forbids",
        })
    }
}
