//! A [`Client`]'s calls (the type is defined in `client/mod.rs`): a request per method, the
//! token manager behind it, and what differs by flavour (`token`, `complete_authorization`,
//! `close`, plain or `async`; `for_user`, an inherent method of each flavour's client).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use helloflex_core::{ApiRequest, Endpoint, Error, PendingAuthorization, StoreError, Token};

use crate::blocking::BlockingTokenManager;
use crate::nonblocking::AsyncTokenManager;
use crate::store::TokenStore;

use super::{Client, RequestBuilder};

impl<M, C> Client<M, C> {
    /// `GET path`
    pub fn get(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::get(path))
    }
    /// `POST path`
    pub fn post(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::post(path))
    }
    /// `PUT path`
    pub fn put(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::put(path))
    }
    /// `PATCH path`
    pub fn patch(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::patch(path))
    }
    /// `DELETE path`
    pub fn delete(&self, path: &str) -> RequestBuilder<'_, M> {
        self.request(ApiRequest::delete(path))
    }

    /// A request built from a core [`ApiRequest`]. A request made often can be built once and
    /// cloned per call: its path and query were percent-encoded when it was built, and the
    /// client's base URL was parsed when the client was, so a call only assembles them.
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
    /// use helloflex::{ApiRequest, ClientSecret, Environment, InsecureLoopback};
    ///
    /// let emulator = helloflex::emulator::start(Default::default())?;
    /// let client = helloflex::blocking::Client::builder()
    ///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
    ///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
    ///     .build()?;
    /// let values = ApiRequest::get("domainTypes/7/domainValues").query("Lang", "en");
    /// for _ in 0..3 {
    ///     assert_eq!(client.request(values.clone()).send()?.status(), 200);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request(&self, request: ApiRequest) -> RequestBuilder<'_, M> {
        RequestBuilder { tokens: &self.tokens, base: &self.base, retry: &self.retry, request }
    }

    /// This client with another token manager (`for_user`).
    fn with_tokens(&self, tokens: M) -> Self {
        Self { tokens, base: self.base.clone(), retry: self.retry.clone(), connector: PhantomData }
    }

    /// The token manager behind the client.
    pub fn tokens(&self) -> &M {
        &self.tokens
    }

    /// The API base URL.
    pub fn base_url(&self) -> &Endpoint {
        &self.base
    }
}

impl<C> Client<BlockingTokenManager, C> {
    /// The same Flextell client for another user, whose tokens live in `store`. A web service
    /// builds one client at start-up and one of these per signed-in user: every user shares the
    /// HTTP connection pool and the memory of completed authorizations (a callback replayed
    /// into another session is refused too); each has a token cache of its own. Fails for the
    /// client-credentials grant. See [`BlockingTokenManager::for_store`].
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
    /// use std::sync::Arc;
    /// use helloflex::MemoryStore;
    /// # use helloflex::{AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment};
    /// # use helloflex::InsecureLoopback::Allow;
    /// # let emulator = helloflex::emulator::start(Default::default())?;
    /// # let app = emulator.flextell("http://127.0.0.1:3000/callback");
    /// # let config = AuthorizationCodeConfig::builder(ClientIdentity::confidential(app.client_id, ClientSecret::new(app.client_secret)))
    /// #     .authorize_url(Endpoint::parse(&app.authorize_url, Allow)?)
    /// #     .token_url(Endpoint::parse(&app.token_url, Allow)?)
    /// #     .redirect_uri(Endpoint::parse(&app.redirect_uri, Allow)?)
    /// #     .build()?;
    /// # let environment = Environment::custom(&app.base_url, Allow)?;
    ///
    /// // One client for the service, and one per signed-in user (`Client::for_user`).
    /// let client = helloflex::blocking::Client::builder()
    ///     .environment(environment)
    ///     .authorization_code(config, Arc::new(MemoryStore::new()))
    ///     .build()?;
    /// let alice = client.for_user(Arc::new(MemoryStore::new()))?;
    /// let bob = client.for_user(Arc::new(MemoryStore::new()))?;
    /// let (url, pending) = alice.start_authorization()?;
    /// alice.complete_authorization(&pending, &emulator.approve(&url)?)?;
    /// assert_eq!(alice.get("news").send()?.status(), 200);
    /// // Bob has not signed in: his calls say so.
    /// assert!(matches!(bob.get("news").send(), Err(e) if e.requires_reauthorization()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_user(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        Ok(self.with_tokens(self.tokens.for_store(store)?))
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

    /// The last failed store write, if no write succeeded since.
    pub fn store_error(&self) -> Option<StoreError> {
        self.tokens.store_error()
    }

    /// Call before the process exits: starts no more refreshes ahead of expiry and waits up to
    /// `within` for a token request in flight (a background refresh), so the tokens the server
    /// rotated are stored, not lost with the process. `true` when nothing was left in flight.
    /// See [`BlockingTokenManager::close`].
    #[must_use = "`false` means a token request was still in flight"]
    pub fn close(&self, within: Duration) -> bool {
        self.tokens.close(within)
    }
}

impl<C> Client<AsyncTokenManager, C> {
    /// The same Flextell client for another user, whose tokens live in `store`; as the blocking
    /// client's `for_user`. See [`AsyncTokenManager::for_store`].
    pub fn for_user(&self, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        Ok(self.with_tokens(self.tokens.for_store(store)?))
    }

    /// A valid access token (cached, or fetched once for all callers).
    pub async fn token(&self) -> Result<Token, Error> {
        self.tokens.token().await
    }

    /// Flextell: the URL to send the user to, and the pending authorization to keep server-side.
    pub fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        self.tokens.start_authorization()
    }

    /// Flextell: checks the callback, exchanges the code, stores the tokens. `pending` is
    /// borrowed: a forged callback leaves it usable, and a callback accepted once is refused.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Token, Error> {
        self.tokens.complete_authorization(pending, callback).await
    }

    /// The last failed store write, if no write succeeded since.
    pub fn store_error(&self) -> Option<StoreError> {
        self.tokens.store_error()
    }

    /// Await before the runtime shuts down: starts no more refreshes ahead of expiry and waits
    /// up to `within` for a token request in flight (a detached refresh, which a runtime shut
    /// down would cancel), so the tokens the server rotated are stored. `true` when nothing was
    /// left in flight. See [`AsyncTokenManager::close`].
    #[must_use = "`false` means a token request was still in flight"]
    pub async fn close(&self, within: Duration) -> bool {
        self.tokens.close(within).await
    }
}
