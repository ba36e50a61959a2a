//! What a ready API client is built from: shared by the blocking and async clients so both
//! make the same choices from the same settings.

use std::sync::Arc;

use helloflex_core::{
    AuthorizationCodeConfig, ClientAuthMethod, ClientCredentialsConfig, ClientSecret, ConfigError,
    Endpoint, Environment, RetryPolicy,
};

use crate::clock::{Clock, SystemClock};
use crate::manager::ManagerOptions;
use crate::store::TokenStore;

/// Which grant keeps a client's tokens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// HelloFlex: the client's own id and secret.
    ClientCredentials(ClientCredentialsConfig),
    /// Flextell: user tokens from the authorization-code flow, kept in `store`.
    AuthorizationCode(AuthorizationCodeConfig, Arc<dyn TokenStore>),
}

/// Settings of a ready API client (see the transport crates' `ClientBuilder`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientSettings {
    /// Where the API lives (default: the sandbox).
    pub environment: Environment,
    /// Client id and secret for the client-credentials grant, set by
    /// [`ClientSettings::client_credentials`].
    client_id: Option<(String, ClientSecret)>,
    auth_method: ClientAuthMethod,
    scopes: Vec<String>,
    token_url: Option<Endpoint>,
    /// A fully built grant, overriding the client-credentials fields.
    pub credentials: Option<Credentials>,
    /// Retries of API calls.
    pub retry: RetryPolicy,
    /// Token lifecycle and token-request retries.
    pub manager: ManagerOptions,
    /// The clock (a manual one in tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            environment: Environment::Sandbox,
            client_id: None,
            auth_method: ClientAuthMethod::default(),
            scopes: Vec::new(),
            token_url: None,
            credentials: None,
            retry: RetryPolicy::default(),
            manager: ManagerOptions::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl ClientSettings {
    /// Uses the client-credentials grant with this id and secret.
    pub fn client_credentials(&mut self, client_id: String, secret: ClientSecret) {
        self.client_id = Some((client_id, secret));
    }

    /// How the client secret is sent.
    pub fn auth_method(&mut self, method: ClientAuthMethod) {
        self.auth_method = method;
    }

    /// Scopes for the client-credentials grant.
    pub fn scopes(&mut self, scopes: Vec<String>) {
        self.scopes = scopes;
    }

    /// A token endpoint other than the environment's `/oauth2/token`.
    pub fn token_url(&mut self, url: Endpoint) {
        self.token_url = Some(url);
    }

    /// The grant to use, or a configuration error if none was chosen.
    pub fn resolve(&self) -> Result<Credentials, ConfigError> {
        if let Some(credentials) = &self.credentials {
            return Ok(credentials.clone());
        }
        let (id, secret) = self
            .client_id
            .clone()
            .ok_or(ConfigError::Missing("credentials (client id and secret)"))?;
        let mut config = ClientCredentialsConfig::new(id, secret, &self.environment)
            .with_auth_method(self.auth_method)
            .with_scopes(self.scopes.clone());
        if let Some(url) = &self.token_url {
            config = config.with_token_url(url.clone());
        }
        Ok(Credentials::ClientCredentials(config))
    }
}
