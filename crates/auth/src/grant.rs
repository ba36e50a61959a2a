//! What the blocking and async managers share: the grant a cache is filled by, what the holder
//! of a ticket does before and after its request, and how the result goes back into the cache.
//! Only the sending itself differs between the two flavours.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use helloflex_core::{
    AuthorizationCodeConfig, ClientCredentialsConfig, Completion, Error, Fetched, Grant,
    LifecyclePolicy, PendingAuthorization, RefreshToken, RetryPolicy, Ticket, Token, TokenCache,
    TokenExchange, TokenSet,
};

use crate::clock::Clock;
use crate::entropy::{authorization_entropy, jitter_seed};
use crate::store::{StoreError, StoreLock, StoredTokens, TokenStore};

/// How a manager's cache is filled.
#[derive(Debug, Clone)]
pub(crate) enum GrantConfig {
    ClientCredentials(ClientCredentialsConfig),
    AuthorizationCode { config: AuthorizationCodeConfig, store: Arc<dyn TokenStore> },
}

/// Settings shared by every token manager.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ManagerOptions {
    /// Token lifecycle tuning (refresh margin, default lifetime, ticket timeout, backoff).
    pub lifecycle: LifecyclePolicy,
    /// Retries of one token request.
    pub retry: RetryPolicy,
}

/// What the holder of a ticket does, decided before any request.
pub(crate) enum Plan {
    /// Send this exchange; hold `lock` (if any) until the result is stored.
    Send(Box<TokenExchange>, Option<StoreLock>),
    /// Another process sharing the store has already refreshed: use its set, send nothing.
    Adopt(TokenSet),
}

/// The cache and what fills it; locked only around the core's pure calls, never across I/O.
#[derive(Debug)]
pub(crate) struct Cache {
    state: Mutex<TokenCache>,
    grant: GrantConfig,
    retry: RetryPolicy,
}

impl Cache {
    pub(crate) fn new(
        grant: GrantConfig,
        options: ManagerOptions,
        clock: &dyn Clock,
    ) -> Result<Self, StoreError> {
        let mut cache = match &grant {
            GrantConfig::ClientCredentials(_) => TokenCache::client_credentials(options.lifecycle),
            GrantConfig::AuthorizationCode { .. } => TokenCache::refreshing(options.lifecycle),
        };
        if let GrantConfig::AuthorizationCode { store, .. } = &grant
            && let Some(stored) = store.load()?
        {
            let _ = cache.insert(stored.to_set(clock), jitter_seed());
        }
        Ok(Self { state: Mutex::new(cache), grant, retry: options.retry })
    }

    /// The lock. A panic while it was held cannot leave the machine half-updated (each call is
    /// one pure step), so a poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, TokenCache> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn auth_code(&self) -> Result<(&AuthorizationCodeConfig, &Arc<dyn TokenStore>), Error> {
        match &self.grant {
            GrantConfig::AuthorizationCode { config, store } => Ok((config, store)),
            GrantConfig::ClientCredentials(_) => Err(helloflex_core::UsageError::WrongState(
                "this token manager uses the client-credentials grant, not the authorization-code flow",
            )
            .into()),
        }
    }

    /// What `ticket`'s holder does.
    pub(crate) fn plan(&self, ticket: &Ticket, clock: &dyn Clock) -> Result<Plan, Error> {
        match (&self.grant, ticket.grant()) {
            (GrantConfig::ClientCredentials(config), _) => Ok(Plan::Send(
                Box::new(TokenExchange::client_credentials(
                    config.token_request()?,
                    self.retry.clone(),
                    jitter_seed(),
                )),
                None,
            )),
            (GrantConfig::AuthorizationCode { config, store }, Grant::Refresh(ours)) => {
                // Serialise with other processes, then check whether one of them already rotated
                // the refresh token we hold: using ours again would be a reuse.
                let lock = store.lock_for_refresh().unwrap_or_else(|error| {
                    tracing::warn!(target: "helloflex::store", %error, "refresh lock unavailable; refreshing unlocked");
                    None
                });
                match store.load() {
                    Ok(Some(stored))
                        if stored
                            .refresh_token
                            .as_ref()
                            .is_some_and(|theirs| self.lock().should_adopt(theirs)) =>
                    {
                        tracing::info!(target: "helloflex::token", "adopting tokens another process rotated");
                        return Ok(Plan::Adopt(stored.to_set(clock)));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(target: "helloflex::store", %error, "token store unreadable before refresh")
                    }
                }
                let request = config.refresh_request(ours)?;
                Ok(Plan::Send(
                    Box::new(TokenExchange::refresh(request, self.retry.clone(), jitter_seed())),
                    lock,
                ))
            }
            (GrantConfig::AuthorizationCode { .. }, _) => {
                Err(helloflex_core::UsageError::WrongState(
                    "a refreshing cache handed out a non-refresh ticket",
                )
                .into())
            }
        }
    }

    /// Turns a request's result into a token set and, for user tokens, stores it before anyone
    /// can use it. A store failure is logged and the set kept in memory: the refresh token it
    /// replaced is burnt and must never be sent again.
    pub(crate) fn conclude(
        &self,
        ticket: &Ticket,
        result: Result<Fetched, Error>,
        clock: &dyn Clock,
    ) -> Result<TokenSet, Error> {
        let fetched = result?;
        let set = self.lock().token_set(ticket, fetched.response, fetched.sent_at);
        if let (GrantConfig::AuthorizationCode { store, .. }, Grant::Refresh(previous)) =
            (&self.grant, ticket.grant())
        {
            tracing::info!(target: "helloflex::token", rotated = set.rotated, "refresh token grant succeeded");
            let cache = self.lock();
            let is_retired = |token: &RefreshToken| cache.is_retired(token) || token == previous;
            persist(store.as_ref(), Some(previous), &set, clock, &is_retired);
        }
        Ok(set)
    }

    /// Hands a ticket's outcome back to the cache.
    pub(crate) fn finish(
        &self,
        clock: &dyn Clock,
        ticket: Ticket,
        result: Result<TokenSet, Error>,
    ) -> Completion {
        let refresh = matches!(ticket.grant(), Grant::Refresh(_));
        let completion = self.lock().complete(clock.now(), ticket, result, jitter_seed());
        match &completion {
            Completion::Stored(token) => {
                let left = token.expires_at().saturating_duration_since(clock.now());
                tracing::debug!(target: "helloflex::token", refresh, expires_in_s = left.as_secs(), "token installed");
            }
            Completion::Failed(error) => {
                tracing::warn!(target: "helloflex::token", refresh, reauthorize = error.requires_reauthorization(), %error, "token request failed");
            }
            Completion::Stale => {
                tracing::debug!(target: "helloflex::token", "stale token completion ignored")
            }
            _ => {}
        }
        completion
    }

    /// Starts an authorization with OS entropy.
    pub(crate) fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        let (config, _) = self.auth_code()?;
        helloflex_core::start_authorization(config, &authorization_entropy()?)
    }

    /// Checks the callback and returns the code-exchange exchange.
    pub(crate) fn code_exchange(
        &self,
        pending: PendingAuthorization,
        callback: &str,
    ) -> Result<TokenExchange, Error> {
        let (config, _) = self.auth_code()?;
        let code = pending.handle_callback(callback)?;
        Ok(TokenExchange::authorization_code(
            code.exchange_request(config)?,
            self.retry.clone(),
            jitter_seed(),
        ))
    }

    /// Stores and installs the tokens a code exchange brought.
    pub(crate) fn install_authorized(
        &self,
        result: Result<Fetched, Error>,
        clock: &dyn Clock,
    ) -> Result<Token, Error> {
        let (_, store) = self.auth_code()?;
        let fetched = result?;
        let default_lifetime = self.lock().policy().default_lifetime;
        let set =
            TokenSet::from_response(fetched.response, fetched.sent_at, None, default_lifetime);
        // A new authorization replaces whatever the store held.
        let current = store.load().ok().flatten().and_then(|s| s.refresh_token);
        persist(store.as_ref(), current.as_ref(), &set, clock, &|_| true);
        tracing::info!(target: "helloflex::token", "authorization code exchanged");
        Ok(self.lock().insert(set, jitter_seed()))
    }
}

/// Stores `set` if the store still holds `expected`, or a token `is_stale` says we have spent
/// (a store left behind by an earlier failed write). Never fails: the set stays in memory.
fn persist(
    store: &dyn TokenStore,
    expected: Option<&RefreshToken>,
    set: &TokenSet,
    clock: &dyn Clock,
    is_stale: &dyn Fn(&RefreshToken) -> bool,
) {
    let new = StoredTokens::from_set(set, clock);
    let outcome = store.compare_and_swap(expected, &new).and_then(|stored| {
        if stored {
            return Ok(true);
        }
        match store.load()?.and_then(|s| s.refresh_token) {
            Some(stale) if is_stale(&stale) => store.compare_and_swap(Some(&stale), &new),
            _ => Ok(false),
        }
    });
    match outcome {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(target: "helloflex::store", "token store holds newer tokens; ours kept in memory only")
        }
        Err(error) => {
            tracing::warn!(target: "helloflex::store", %error, "storing new tokens failed; kept in memory")
        }
    }
}

/// Holds a ticket while its request runs; if the holder unwinds or its future is dropped, the
/// ticket is abandoned so the next caller can fetch at once instead of waiting for a timeout.
pub(crate) struct TicketGuard<'a> {
    cache: &'a Cache,
    ticket: Option<Ticket>,
    notify: &'a (dyn Fn() + Sync),
}

impl<'a> TicketGuard<'a> {
    pub(crate) fn new(cache: &'a Cache, ticket: Ticket, notify: &'a (dyn Fn() + Sync)) -> Self {
        Self { cache, ticket: Some(ticket), notify }
    }

    pub(crate) fn ticket(&self) -> Option<&Ticket> {
        self.ticket.as_ref()
    }

    /// Completes the ticket with `result` and wakes the waiters.
    pub(crate) fn finish(
        mut self,
        clock: &dyn Clock,
        result: Result<TokenSet, Error>,
    ) -> Completion {
        let completion = match self.ticket.take() {
            Some(ticket) => self.cache.finish(clock, ticket, result),
            None => Completion::Stale,
        };
        (self.notify)();
        completion
    }
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            tracing::debug!(target: "helloflex::token", "token request abandoned");
            self.cache.lock().abandon(ticket);
            (self.notify)();
        }
    }
}
