//! The ready blocking API client.

use std::sync::Arc;

use helloflex_auth::{
    BlockingTokenManager, ClientSettings, Clock, Credentials, ManagerBuilder, ManagerOptions,
    TokenStore,
};
use helloflex_core::{
    ApiRequest, ApiResponse, AuthorizationCodeConfig, ClientAuthMethod, ClientSecret, Endpoint,
    Environment, Error, PendingAuthorization, RetryPolicy, Token,
};
use serde::Serialize;

use crate::transport::{Timeouts, UreqTransport};

/// A blocking HelloFlex / Flextell API client: tokens fetched, cached, refreshed early and
/// single-flighted behind every call; a 401 replays the call once with a fresh token.
///
/// Cheap to clone; clones share one token cache.
#[derive(Debug, Clone)]
pub struct Client {
    tokens: BlockingTokenManager,
    base: Endpoint,
    retry: RetryPolicy,
}

/// Builds a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    settings: ClientSettings,
    timeouts: Timeouts,
    agent: Option<ureq::Agent>,
    user_agent: Option<String>,
    body_limit: Option<usize>,
}

impl ClientBuilder {
    /// The environment (default: [`Environment::Sandbox`]).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.settings.environment = environment;
        self
    }

    /// Client-credentials grant (HelloFlex) with this id and secret.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        self.settings.client_credentials(client_id.into(), secret);
        self
    }

    /// How the client secret is sent (default: in the form body, as HelloFlex documents).
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.settings.auth_method(method);
        self
    }

    /// Scopes for the client-credentials grant.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.settings.scopes(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// A token endpoint other than the environment's `/oauth2/token`.
    pub fn token_url(mut self, url: Endpoint) -> Self {
        self.settings.token_url(url);
        self
    }

    /// Authorization-code grant (Flextell): user tokens kept in `store`.
    pub fn authorization_code(
        mut self,
        config: AuthorizationCodeConfig,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        self.settings.credentials = Some(Credentials::AuthorizationCode(config, store));
        self
    }

    /// Retries of API calls (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.settings.retry = retry;
        self
    }

    /// Token lifecycle and token-request retries.
    pub fn token_options(mut self, options: ManagerOptions) -> Self {
        self.settings.manager = options;
        self
    }

    /// Time limits (default: [`Timeouts::default`]).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The `User-Agent` sent with every request.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Uses an existing ureq agent (its pool, TLS and proxy settings); the transport contract
    /// is still applied to each request.
    pub fn agent(mut self, agent: ureq::Agent) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Caps response bodies (default: 8 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// The clock (a manual clock in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.settings.clock = clock;
        self
    }

    /// Builds the client. Fails if no credentials were given or a token store is unreadable.
    pub fn build(self) -> Result<Client, Error> {
        let mut transport = match self.agent {
            Some(agent) => UreqTransport::with_agent(agent, self.timeouts),
            None => UreqTransport::new(self.timeouts),
        };
        let ua = self.user_agent.unwrap_or_else(|| {
            concat!("helloflex-rs/", env!("CARGO_PKG_VERSION"), " (ureq)").into()
        });
        transport = transport.with_user_agent(&ua);
        if let Some(limit) = self.body_limit {
            transport = transport.with_body_limit(limit);
        }
        let transport = Arc::new(transport);
        let settings = self.settings;
        let clock = settings.clock.clone();
        let tokens = match settings.resolve()? {
            Credentials::ClientCredentials(config) => ManagerBuilder::client_credentials(config),
            Credentials::AuthorizationCode(config, store) => {
                ManagerBuilder::authorization_code(config, store)
            }
            _ => return Err(helloflex_core::ConfigError::Missing("a supported grant").into()),
        };
        let attempt = self.timeouts.connect
            + self.timeouts.send
            + self.timeouts.response
            + self.timeouts.body;
        let options = settings.manager.clone().with_attempt_timeout(attempt);
        let tokens = tokens.clock(clock).options(options).blocking(transport);
        Ok(Client { tokens, base: settings.environment.base_url(), retry: settings.retry })
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// `GET path`
    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request(ApiRequest::get(path))
    }
    /// `POST path`
    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(ApiRequest::post(path))
    }
    /// `PUT path`
    pub fn put(&self, path: &str) -> RequestBuilder<'_> {
        self.request(ApiRequest::put(path))
    }
    /// `PATCH path`
    pub fn patch(&self, path: &str) -> RequestBuilder<'_> {
        self.request(ApiRequest::patch(path))
    }
    /// `DELETE path`
    pub fn delete(&self, path: &str) -> RequestBuilder<'_> {
        self.request(ApiRequest::delete(path))
    }

    /// A request built from a core [`ApiRequest`].
    pub fn request(&self, request: ApiRequest) -> RequestBuilder<'_> {
        RequestBuilder { client: self, request }
    }

    /// The token manager behind the client.
    pub fn tokens(&self) -> &BlockingTokenManager {
        &self.tokens
    }

    /// A valid access token (cached, or fetched once for all callers).
    pub fn token(&self) -> Result<Token, Error> {
        self.tokens.token()
    }

    /// Flextell: the URL to send the user to, and the pending authorization to keep server-side.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.tokens.start_authorization()
    }

    /// Flextell: checks the callback, exchanges the code, stores the tokens. `pending` is
    /// borrowed: a forged callback leaves it usable, and a callback accepted once is refused.
    pub fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        self.tokens.complete_authorization(pending, callback)
    }

    /// The API base URL.
    pub fn base_url(&self) -> &Endpoint {
        &self.base
    }
}

/// A request being built; [`RequestBuilder::send`] runs it.
#[derive(Debug)]
#[must_use = "a request does nothing until sent"]
pub struct RequestBuilder<'a> {
    client: &'a Client,
    request: ApiRequest,
}

impl RequestBuilder<'_> {
    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.request = self.request.query(key, value);
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.request = self.request.json(body);
        self
    }

    /// Adds a header (`Authorization` and `Host` are refused: the SDK sets them).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Declares whether replaying this request after a failure is safe (default: by method).
    pub fn retry_safe(mut self, safe: bool) -> Self {
        self.request = self.request.retry_safe(safe);
        self
    }

    /// Sends the request: a success, or a typed error with the core's classification.
    pub fn send(self) -> Result<ApiResponse, Error> {
        let client = self.client;
        client.tokens.call(self.request, &client.base, client.retry.clone()).map(ApiResponse::new)
    }
}
