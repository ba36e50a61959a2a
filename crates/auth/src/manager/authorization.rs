//! The authorization-code flow's part of a manager: an authorization started with the manager's
//! entropy, and a callback checked against the bounded memory of completed authorizations
//! (shared by every per-user manager), so a code is never exchanged twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use helloflex_core::machines::TokenExchange;
use helloflex_core::{
    AuthorizationCodeConfig, AuthorizationId, CallbackError, Error, PendingAuthorization,
    UsageError,
};

use crate::fill::{FillJob, Purpose};

use super::{GrantConfig, Job, Running, Shared};

/// How many completed authorizations are remembered (to refuse a callback delivered twice).
const COMPLETED_KEPT: usize = 4096;

/// Authorizations whose callback was accepted (or attributed and refused), oldest first:
/// shared by every user's manager made with `for_store`, so a callback replayed into another
/// user's session is refused too.
pub(super) type Completed = Arc<Mutex<VecDeque<AuthorizationId>>>;

impl Shared {
    pub(super) fn auth_code(&self) -> Result<&Arc<AuthorizationCodeConfig>, Error> {
        match &self.grant {
            GrantConfig::AuthorizationCode { config, .. } => Ok(config),
            GrantConfig::ClientCredentials { .. } => Err(UsageError::WrongState(
                "this token manager uses the client-credentials grant, not the authorization-code flow",
            )
            .into()),
        }
    }

    /// Starts an authorization with the manager's entropy.
    pub(crate) fn start_authorization(&self) -> Result<(String, PendingAuthorization), Error> {
        let mut bytes = [0u8; helloflex_core::machines::AUTHORIZATION_ENTROPY_BYTES];
        self.entropy.fill(&mut bytes)?;
        let started = helloflex_core::machines::start_authorization(self.auth_code()?, &bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        started
    }

    /// Checks a callback for `pending` and returns the code exchange to run. A wrong or missing
    /// `state` leaves `pending` good for the genuine callback; an authorization whose callback
    /// was accepted once is refused locally, so a code is never exchanged twice.
    pub(crate) fn begin_authorization(
        &self,
        pending: &PendingAuthorization,
        callback: &str,
    ) -> Result<Job, Error> {
        let config = self.auth_code()?;
        let id = pending.id();
        let completed = || self.completed.lock().unwrap_or_else(PoisonError::into_inner);
        if completed().contains(&id) {
            return Err(CallbackError::AlreadyCompleted.into());
        }
        let checked = pending.check_callback(callback);
        let attributed = checked.as_ref().map_or_else(|e| !e.is_stray(), |_| true);
        if attributed {
            let mut completed = completed();
            if completed.contains(&id) {
                // Another caller took this callback in between.
                return Err(CallbackError::AlreadyCompleted.into());
            }
            if completed.len() == COMPLETED_KEPT {
                completed.pop_front();
            }
            completed.push_back(id);
        }
        let request = checked?.into_token_request(config)?;
        let seed = self.entropy.jitter_seed();
        let exchange = TokenExchange::new(request, self.options.retry.clone(), seed);
        let purpose =
            Purpose::Authorize { id: id.fingerprint(), held_version: self.lock().version };
        let (holder, now) = (self.holder_name(), self.clock.now());
        let fill = FillJob::new(purpose, Some(exchange), now, holder, &self.options);
        Ok(Job { ticket: None, check: false, fill, running: Running::start(&self.jobs) })
    }
}
