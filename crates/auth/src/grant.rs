//! What the blocking and async managers share: the grant a cache is filled by, and how a
//! ticket's result goes back into the cache. Neither decides anything; the core does.

use std::sync::{Mutex, MutexGuard, PoisonError};

use helloflex_core::{
    ClientCredentialsConfig, Completion, Error, Fetched, Grant, LifecyclePolicy, RetryPolicy,
    Ticket, TokenCache, TokenExchange,
};

use crate::clock::Clock;
use crate::entropy::jitter_seed;

/// How a manager's cache is filled.
#[derive(Debug, Clone)]
pub(crate) enum GrantConfig {
    ClientCredentials(ClientCredentialsConfig),
}

impl GrantConfig {
    /// The exchange that performs `ticket`'s request.
    pub(crate) fn exchange(
        &self,
        ticket: &Ticket,
        retry: &RetryPolicy,
    ) -> Result<TokenExchange, Error> {
        match (self, ticket.grant()) {
            (GrantConfig::ClientCredentials(config), _) => Ok(TokenExchange::client_credentials(
                config.token_request()?,
                retry.clone(),
                jitter_seed(),
            )),
        }
    }
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

/// The cache and what fills it; locked only around the core's pure calls, never across I/O.
#[derive(Debug)]
pub(crate) struct Cache {
    state: Mutex<TokenCache>,
    pub(crate) grant: GrantConfig,
    pub(crate) retry: RetryPolicy,
}

impl Cache {
    pub(crate) fn new(grant: GrantConfig, options: ManagerOptions) -> Self {
        let cache = match &grant {
            GrantConfig::ClientCredentials(_) => TokenCache::client_credentials(options.lifecycle),
        };
        Self { state: Mutex::new(cache), grant, retry: options.retry }
    }

    /// The lock. A panic while it was held cannot leave the machine half-updated (each call is
    /// one pure step), so a poisoned lock is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, TokenCache> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a ticket's outcome back to the cache.
    pub(crate) fn finish(
        &self,
        clock: &dyn Clock,
        ticket: Ticket,
        result: Result<Fetched, Error>,
    ) -> Completion {
        let mut cache = self.lock();
        let refresh = matches!(ticket.grant(), Grant::Refresh(_));
        let result =
            result.map(|fetched| cache.token_set(&ticket, fetched.response, fetched.sent_at));
        let completion = cache.complete(clock.now(), ticket, result, jitter_seed());
        match &completion {
            Completion::Stored(token) => {
                tracing::debug!(target: "helloflex::token", refresh, expires_in_ms = token.expires_at().saturating_duration_since(clock.now()).as_millis() as u64, "token stored");
            }
            Completion::Failed(error) => {
                tracing::warn!(target: "helloflex::token", refresh, %error, "token request failed")
            }
            Completion::Stale => {
                tracing::debug!(target: "helloflex::token", "stale token completion ignored")
            }
            _ => {}
        }
        completion
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
        result: Result<Fetched, Error>,
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
