//! [`ClientBuilder`]'s setters (the type is defined in `client/mod.rs`): where the API is, which
//! grant, then HTTP and token tuning, every setter once for both flavours; `build` hands the
//! transport's [`Connector`] what it collected.

use std::marker::PhantomData;
use std::sync::Arc;

use helloflex_core::{
    AuthorizationCodeConfig, ClientAuthMethod, ClientCredentialsConfig, ClientSecret, ConfigError,
    Endpoint, Environment, Error, RetryPolicy,
};

use crate::clock::{Clock, SystemClock};
use crate::manager::ManagerBuilder;
use crate::options::ManagerOptions;
use crate::store::TokenStore;

use super::{Client, ClientBuilder, Connector, HttpOptions, Timeouts};

impl<M, C: Connector<Manager = M> + Default> Client<M, C> {
    /// A builder with the transport's default connector.
    pub fn builder() -> ClientBuilder<C> {
        ClientBuilder::new(C::default())
    }
}

impl<C: Connector> ClientBuilder<C> {
    /// A builder over `connector`.
    pub fn new(connector: C) -> Self {
        Self {
            connector,
            http: HttpOptions::default(),
            environment: None,
            client_id: None,
            auth_method: ClientAuthMethod::default(),
            scopes: Vec::new(),
            token_url: None,
            authorization_code: None,
            retry: RetryPolicy::default(),
            manager: ManagerOptions::default(),
            shared_store: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the connector (for example one over your own HTTP client).
    pub fn connector(mut self, connector: C) -> Self {
        self.connector = connector;
        self
    }

    /// Where the API lives. HelloFlex (client credentials) defaults to
    /// [`Environment::Sandbox`]; Flextell (authorization code) has no default: its API is not
    /// HelloFlex's, so name it (`Environment::custom(..)`).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Client-credentials grant (HelloFlex) with this id and secret.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        self.client_id = Some((client_id.into(), secret));
        self
    }

    /// How the client secret is sent (default: in the form body, as HelloFlex documents).
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Scopes for the client-credentials grant.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A token endpoint other than the environment's `/oauth2/token`.
    pub fn token_url(mut self, url: Endpoint) -> Self {
        self.token_url = Some(url);
        self
    }

    /// Authorization-code grant (Flextell): user tokens kept in `store`.
    pub fn authorization_code(
        mut self,
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        self.authorization_code = Some((config, store));
        self
    }

    /// Client credentials (HelloFlex): shares the token with every process using `store` (a
    /// fleet of service instances): one of them fetches while holding the store's lease, the
    /// others adopt its token. See `docs/fleet.md` and the `helloflex-store-redis` crate.
    pub fn shared_token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.shared_store = Some(store);
        self
    }

    /// Retries of API calls (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Token lifecycle and token-request retries.
    pub fn token_options(mut self, options: ManagerOptions) -> Self {
        self.manager = options;
        self
    }

    /// Time limits of one HTTP attempt (default: [`Timeouts::default`]).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.http.timeouts = timeouts;
        self
    }

    /// The `User-Agent` sent with every request (`build` refuses one that is no header value).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.http.user_agent = Some(user_agent.into());
        self
    }

    /// Caps response bodies (default: 8 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.http.body_limit = Some(bytes);
        self
    }

    /// Whether `*_PROXY` environment variables apply (default: yes; see
    /// [`HttpOptions::proxy_from_env`]). Applies to the transport the client builds itself, not
    /// to an HTTP client you hand in.
    pub fn proxy_from_env(mut self, yes: bool) -> Self {
        self.http.proxy_from_env = yes;
        self
    }

    /// Trusts the PEM certificates in `pem` (the text, such as `std::fs::read_to_string` of a
    /// `.pem` file) as the only roots of TLS connections, in place of the transport's own: a
    /// private CA (see [`HttpOptions::root_certificates`]). `build` refuses text with no
    /// certificate in it.
    pub fn root_certificates(mut self, pem: impl Into<String>) -> Self {
        self.http.root_certificates = Some(pem.into());
        self
    }

    /// The clock (a manual clock in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the client. Fails if no grant was chosen, a setting cannot work (see
    /// [`HttpOptions::validate`]) or the transport cannot be built. A
    /// token store is read by the first call that needs a token, not here.
    pub fn build(self) -> Result<Client<C::Manager, C>, Error> {
        let (environment, token_url, mut tokens) = match (self.authorization_code, self.client_id) {
            (Some((config, store)), _) => {
                config.client().validate()?;
                let environment = self.environment.ok_or(ConfigError::Missing(
                    "the Flextell API's environment (.environment(Environment::custom(..))): \
                     an authorization-code client has no default",
                ))?;
                let token_url = config.token_url().clone();
                (environment, token_url, ManagerBuilder::authorization_code(config, store))
            }
            (None, Some((id, secret))) => {
                let environment = self.environment.unwrap_or(Environment::Sandbox);
                let mut config = ClientCredentialsConfig::new(id, secret, &environment)
                    .with_auth_method(self.auth_method)
                    .with_scopes(self.scopes);
                if let Some(url) = self.token_url {
                    config = config.with_token_url(url);
                }
                config.client().validate()?;
                let token_url = config.token_url().clone();
                (environment, token_url, ManagerBuilder::client_credentials(config))
            }
            (None, None) => {
                return Err(ConfigError::Missing("credentials (client id and secret)").into());
            }
        };
        if let Some(store) = self.shared_store {
            tokens = tokens.shared_store(store);
        }
        self.http.validate()?;
        let base = environment.base_url();
        // The API base and the token endpoint are the only origins a client sends to (a
        // request's path is appended to the base).
        let mut http = self.http;
        http.set_plain_http_only(!base.is_https() && !token_url.is_https());
        let attempt = self.connector.attempt_timeout(&http.timeouts);
        let options = self.manager.with_attempt_timeout(attempt);
        let tokens = self.connector.connect(&http, tokens.clock(self.clock).options(options))?;
        Ok(Client { tokens, base, retry: self.retry, connector: PhantomData })
    }
}
