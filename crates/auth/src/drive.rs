//! The drive loops: one per flavour, no policy. They move bytes and time for the core's
//! [`Exchange`]s exactly as the core's `exchange` module documents.

use std::time::Instant;

use helloflex_core::{Error, Exchange, Poll, Token, TokenId};

use crate::clock::Clock;
use crate::transport::{AsyncTransport, BlockingTransport};

/// Answers an exchange's [`Poll::NeedToken`]: invalidate the rejected token, then get one.
pub trait TokenSource {
    /// A valid token, after invalidating `rejected` if given.
    fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error>;
}

/// Runs `exchange` to completion on a blocking transport.
pub fn drive_blocking<E: Exchange>(
    transport: &dyn BlockingTransport,
    clock: &dyn Clock,
    tokens: Option<&dyn TokenSource>,
    mut exchange: E,
) -> E::Output {
    loop {
        match exchange.poll(clock.now()) {
            Poll::Send(request) => match transport.send(request) {
                Ok(response) => exchange.handle_response(clock.now(), response),
                Err(error) => exchange.handle_transport_error(clock.now(), error),
            },
            Poll::Sleep(until) => {
                let wait = until.saturating_duration_since(clock.now());
                tracing::debug!(target: "helloflex::retry", wait_ms = wait.as_millis() as u64, "retrying after backoff");
                transport.sleep(wait);
            }
            Poll::NeedToken { rejected } => exchange.handle_token(match tokens {
                Some(tokens) => tokens.token_for(rejected),
                None => Err(no_token_source()),
            }),
            Poll::Done(output) => return output,
        }
    }
}

/// Answers [`Poll::NeedToken`] for async drivers.
#[async_trait::async_trait]
pub trait AsyncTokenSource: Send + Sync {
    /// A valid token, after invalidating `rejected` if given.
    async fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error>;

    /// A cached token, if one can be had without waiting (the common case): spares the driver a
    /// boxed future per call. `None` means "ask [`AsyncTokenSource::token_for`]".
    fn try_token_now(&self) -> Option<Token> {
        None
    }
}

/// Runs `exchange` to completion on an async transport.
pub async fn drive_async<E: Exchange + Send>(
    transport: &dyn AsyncTransport,
    clock: &dyn Clock,
    tokens: Option<&dyn AsyncTokenSource>,
    mut exchange: E,
) -> E::Output {
    loop {
        match exchange.poll(clock.now()) {
            Poll::Send(request) => match transport.send(request).await {
                Ok(response) => exchange.handle_response(clock.now(), response),
                Err(error) => exchange.handle_transport_error(clock.now(), error),
            },
            Poll::Sleep(until) => {
                let wait = until.saturating_duration_since(clock.now());
                tracing::debug!(target: "helloflex::retry", wait_ms = wait.as_millis() as u64, "retrying after backoff");
                transport.sleep(wait).await;
            }
            Poll::NeedToken { rejected } => {
                let token = match tokens {
                    Some(tokens) => {
                        match rejected.is_none().then(|| tokens.try_token_now()).flatten() {
                            Some(token) => Ok(token),
                            None => tokens.token_for(rejected).await,
                        }
                    }
                    None => Err(no_token_source()),
                };
                exchange.handle_token(token);
            }
            Poll::Done(output) => return output,
        }
    }
}

fn no_token_source() -> Error {
    helloflex_core::UsageError::WrongState(
        "the exchange asked for a token but the driver has no token source",
    )
    .into()
}

/// `until - now`, or zero.
pub(crate) fn remaining(until: Instant, now: Instant) -> std::time::Duration {
    until.saturating_duration_since(now)
}
