//! `TokenExchange`: a token request with the retries its grant allows (`Replay`), and what it
//! brings back (`Fetched`).

use std::time::Instant;

use http::{Request, Response};

use crate::error::{Error, TransportError};
use crate::lifecycle::TokenSet;
use crate::oauth_error::OAuthErrorCode;
use crate::retry::{Attempts, RetryPolicy};
use crate::scrub::Sent;
use crate::secret::RefreshToken;
use crate::token_request::{TokenGrant, TokenRequest};
use crate::token_response::{TokenResponse, parse_token_response};

use super::{Exchange, Poll, RequestLine, State, transport_retryable, undecoded_body};

/// The error read again from a copy of the response with every sent secret scrubbed, if any
/// occurs in it (the error path only: a success body may rightly hold the same refresh token).
fn scrubbed(sent: &Sent, response: &Response<Vec<u8>>, error: Error) -> Error {
    let Some(body) = sent.scrub(response.body()) else { return error };
    match parse_token_response(response.status(), &body) {
        Err(error) => error,
        Ok(_) => crate::protocol_error::ProtocolError::UnexpectedResponse {
            status: response.status(),
            excerpt: crate::excerpt::Excerpt::of_bytes(&body),
        }
        .into(),
    }
}

/// Whether a token request may be sent again after it may have reached the server.
///
/// The replay rule (`docs/ARCHITECTURE.md`, "Replaying a token request"): a transient failure
/// (connection reset, timeout, 5xx, 408, 429) is retried within the same call, the same request,
/// bounded by the retry deadline; a definitive answer (any other status, `invalid_grant`) never
/// is. A refresh follows it: servers that rotate refresh tokens keep a short reuse window for
/// exactly this retry, and giving up instead only hands the replay to the next caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Client credentials and refresh: retried on transient failures.
    Transient,
    /// Code exchange: the code is single-use, and a server that sees it twice revokes what it
    /// issued for it. Only a request that never left (or a 429, not processed) is sent again.
    OnlyIfNotSent,
}

/// A token received, with the moment its request was sent (expiry counts from there).
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, RetryPolicy};
/// use helloflex_core::machines::{Exchange, Poll, TokenExchange};
///
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
/// let mut fetch = TokenExchange::new(config.token_request()?, RetryPolicy::default(), 1);
/// let sent_at = Instant::now();
/// let Poll::Send(_) = fetch.poll(sent_at) else { unreachable!() };
/// fetch.handle_response(sent_at, http::Response::new(br#"{"access_token":"t0k","expires_in":60}"#.to_vec()));
/// let Poll::Done(Ok(fetched)) = fetch.poll(sent_at) else { unreachable!() };
/// let set = fetched.into_token_set(Duration::from_secs(300));
/// assert_eq!(set.expires_at(), sent_at + Duration::from_secs(60)); // counted from sending
/// # Ok::<(), helloflex_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Fetched {
    /// The response.
    pub response: TokenResponse,
    /// When the successful request was sent.
    pub sent_at: Instant,
    /// The refresh token the request spent (a refresh's).
    spent: Option<RefreshToken>,
}

impl Fetched {
    /// The token set this answer makes: its expiry counted from when the request was sent
    /// (`default_lifetime` when the server names none), and the spent refresh token kept when
    /// the server sent no new one. The one step from a token response to a token set.
    pub fn into_token_set(self, default_lifetime: std::time::Duration) -> TokenSet {
        TokenSet::from_response(self.response, self.sent_at, self.spent.as_ref(), default_lifetime)
    }
}

/// A token request with retries. The output is the parsed response or the final error. Its
/// `Debug` never shows the request's body or headers (they carry secrets).
///
/// ```
/// use std::time::Instant;
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, Error, RetryPolicy};
/// use helloflex_core::machines::{Exchange, Poll, TokenExchange};
///
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
/// let mut fetch = TokenExchange::new(config.token_request()?, RetryPolicy::default(), 1);
/// let now = Instant::now();
/// let Poll::Send(_) = fetch.poll(now) else { unreachable!() };
/// // A 503 is retried after a backoff; a refusal is final.
/// fetch.handle_response(now, http::Response::builder().status(503).body(Vec::new()).unwrap());
/// let Poll::Sleep(until) = fetch.poll(now) else { unreachable!() };
/// let Poll::Send(_) = fetch.poll(until) else { unreachable!() };
/// let refused = br#"{"error":"invalid_client"}"#.to_vec();
/// fetch.handle_response(until, http::Response::builder().status(401).body(refused).unwrap());
/// assert!(matches!(fetch.poll(until), Poll::Done(Err(Error::OAuth(_)))));
/// # Ok::<(), helloflex_core::Error>(())
/// ```
pub struct TokenExchange {
    request: Request<Vec<u8>>,
    spends: Option<RefreshToken>,
    replay: Replay,
    refresh: bool,
    attempts: Attempts,
    sent_at: Option<Instant>,
    state: State<Result<Fetched, Error>>,
}

impl std::fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchange")
            .field("request", &RequestLine(&self.request))
            .field("replay", &self.replay)
            .field("refresh", &self.refresh)
            .field("attempts", &self.attempts.made())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TokenExchange {
    /// The exchange of `request`, replayed as its grant allows: client credentials and refresh
    /// are retried on transient failures within this exchange (the same request, bounded by the
    /// deadline), never after a definitive answer; a code exchange is sent again only if it
    /// never left. A refresh's `invalid_grant` becomes [`Error::ReauthorizationRequired`].
    pub fn new(request: TokenRequest, policy: RetryPolicy, seed: u64) -> Self {
        let (grant, request, spends) = request.into_parts();
        let replay = match grant {
            TokenGrant::AuthorizationCode => Replay::OnlyIfNotSent,
            TokenGrant::ClientCredentials | TokenGrant::RefreshToken => Replay::Transient,
        };
        Self {
            request,
            spends,
            replay,
            refresh: grant == TokenGrant::RefreshToken,
            attempts: Attempts::new(policy, seed),
            sent_at: None,
            state: State::Ready,
        }
    }

    /// The latest instant this exchange can still be running, if it starts at `start` and one
    /// attempt takes at most `attempt_timeout`: no retry starts after the policy's deadline, and
    /// the last attempt then runs for at most `attempt_timeout`. A ticket held for this exchange
    /// must live at least this long, or a waiting caller would send the same request again.
    /// A huge retry deadline or attempt timeout (`Duration::MAX`: no limit) gives a deadline in
    /// the far future ([`crate::machines::saturating_add`]), never `start`.
    pub fn deadline(&self, start: Instant, attempt_timeout: std::time::Duration) -> Instant {
        let budget = self.attempts.policy().deadline.saturating_add(attempt_timeout);
        crate::deadline::saturating_add(start, budget)
    }

    fn retry_or_finish(
        &mut self,
        now: Instant,
        retryable: bool,
        retry_after: Option<std::time::Duration>,
        error: Error,
    ) {
        match retryable.then(|| self.attempts.next_attempt(now, retry_after)).flatten() {
            Some(at) => self.state = State::Sleeping(at),
            None => self.state.finish(Err(error)),
        }
    }
}

impl Exchange for TokenExchange {
    type Output = Result<Fetched, Error>;

    fn poll(&mut self, now: Instant) -> Poll<Self::Output> {
        if let Some(settled) = self.state.settled(now) {
            return settled;
        }
        self.attempts.record(now);
        self.sent_at = Some(now);
        self.state = State::InFlight;
        Poll::Send(self.request.clone())
    }

    fn handle_response(&mut self, now: Instant, response: Response<Vec<u8>>) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        let status = response.status();
        if let Some(error) = undecoded_body(&response) {
            return self.state.finish(Err(error));
        }
        let parsed = parse_token_response(status, response.body())
            .map_err(|error| scrubbed(&Sent::of_token_request(&self.request), &response, error));
        match parsed {
            Ok(parsed) => {
                let sent_at = self.sent_at.unwrap_or(now);
                self.state.finish(Ok(Fetched {
                    response: parsed,
                    sent_at,
                    spent: self.spends.take(),
                }));
            }
            Err(Error::OAuth(e)) if self.refresh && *e.code() == OAuthErrorCode::InvalidGrant => {
                self.state.finish(Err(Error::ReauthorizationRequired(
                    crate::error::Reauthorization::Refused(e),
                )));
            }
            Err(error) => {
                let overloaded = status.as_u16() == 429;
                let transient = crate::retry::transient_status(status)
                    || matches!(&error, Error::OAuth(e) if e.is_transient());
                let retryable = match self.replay {
                    Replay::Transient => transient,
                    // A 429 says the request was not processed.
                    Replay::OnlyIfNotSent => overloaded,
                };
                let retry_after = crate::retry_after::retry_after(response.headers());
                self.retry_or_finish(now, retryable, retry_after, error);
            }
        }
    }

    fn handle_transport_error(&mut self, now: Instant, mut error: TransportError) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        error.attempts = self.attempts.made();
        let retryable = transport_retryable(error.kind, self.replay == Replay::Transient);
        let error = Error::Transport(error);
        self.retry_or_finish(now, retryable, None, error);
    }
}
