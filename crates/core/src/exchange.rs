//! Exchanges: one shape for every round trip that may take several HTTP calls.
//!
//! The drive loop, written once per transport:
//!
//! 1. `poll(now)`.
//! 2. On [`Poll::Send`], send the request; give the response to `handle_response(now, ..)`, or
//!    a failure to `handle_transport_error(now, ..)`. Go to 1.
//! 3. On [`Poll::Sleep`], sleep until the instant. Go to 1.
//! 4. On [`Poll::NeedToken`], invalidate the rejected token if one is named, get a token from
//!    the token manager and give it (or the error) to `handle_token`. Go to 1.
//! 5. On [`Poll::Done`], return the result.
//!
//! Every decision (retry or not, how long to wait, replay after a 401) is made here.
//!
//! This file holds the trait, the steps every exchange shares and `ApiCall` (an API call);
//! `token_exchange.rs` holds `TokenExchange` (a token request) and its replay rule.

mod token_exchange;

use std::time::Instant;

use http::{Request, Response};

use crate::api_error::{ApiErrorKind, classify_response};
use crate::api_request::ApiRequest;
use crate::endpoint::Endpoint;
use crate::error::{Error, TransportError, TransportErrorKind, UsageError};
use crate::lifecycle::{Token, TokenId};
use crate::retry::{Attempts, RetryPolicy};
use crate::scrub::Sent;

pub use token_exchange::{Fetched, TokenExchange};

/// What an exchange wants next. Its `Debug` shows a request's method, URI and body size only:
/// a token request's body carries the client secret, a code or a refresh token.
///
/// ```
/// use std::time::Instant;
/// use helloflex_core::{ApiRequest, Environment, RetryPolicy};
/// use helloflex_core::machines::{ApiCall, Exchange, Poll};
///
/// let mut call = ApiCall::new(ApiRequest::get("news"), Environment::Sandbox.base_url(), RetryPolicy::default(), 1);
/// // An API call first asks for a token; a transport's loop answers each step.
/// assert!(matches!(call.poll(Instant::now()), Poll::NeedToken { rejected: None }));
/// ```
#[must_use]
// A `Poll` is moved once per step; boxing the request would cost an allocation per send.
#[allow(clippy::large_enum_variant)]
pub enum Poll<T> {
    /// Send this request.
    Send(Request<Vec<u8>>),
    /// Sleep until this instant, then poll again.
    Sleep(Instant),
    /// Get a token (first invalidating `rejected`, the token a 401 refused).
    NeedToken {
        /// The token to invalidate first, if any.
        rejected: Option<TokenId>,
    },
    /// Finished.
    Done(T),
}

impl<T: std::fmt::Debug> std::fmt::Debug for Poll<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Poll::Send(request) => f.debug_tuple("Send").field(&RequestLine(request)).finish(),
            Poll::Sleep(until) => f.debug_tuple("Sleep").field(until).finish(),
            Poll::NeedToken { rejected } => {
                f.debug_struct("NeedToken").field("rejected", rejected).finish()
            }
            Poll::Done(output) => f.debug_tuple("Done").field(output).finish(),
        }
    }
}

/// A request as `Debug` may show it: method, URI and body size; never a header or the body.
pub(crate) struct RequestLine<'a>(pub(crate) &'a Request<Vec<u8>>);

impl std::fmt::Debug for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0;
        write!(f, "{} {} ({} body bytes)", r.method(), r.uri(), r.body().len())
    }
}

/// A multi-step round trip driven by a transport's loop (see the module docs).
///
/// ```
/// use std::time::Instant;
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, RetryPolicy};
/// use helloflex_core::machines::{Exchange, Poll, TokenExchange};
///
/// /// A drive loop for any exchange, over a canned server (a transport's loop also sleeps and
/// /// hands out tokens: `docs/writing-a-transport.md`).
/// fn drive<E: Exchange>(exchange: &mut E, answer: &[u8]) -> Option<E::Output> {
///     loop {
///         match exchange.poll(Instant::now()) {
///             Poll::Send(_request) => {
///                 exchange.handle_response(Instant::now(), http::Response::new(answer.to_vec()))
///             }
///             Poll::Done(output) => return Some(output),
///             Poll::Sleep(_) | Poll::NeedToken { .. } => return None,
///         }
///     }
/// }
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
/// let mut fetch = TokenExchange::new(config.token_request()?, RetryPolicy::default(), 1);
/// let fetched = drive(&mut fetch, br#"{"access_token":"t0k"}"#).ok_or("stuck")??;
/// assert_eq!(fetched.response.access_token.expose_secret(), "t0k");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Exchange {
    /// What the exchange produces.
    type Output;
    /// The next step.
    fn poll(&mut self, now: Instant) -> Poll<Self::Output>;
    /// The response to the last [`Poll::Send`], whatever its status.
    fn handle_response(&mut self, now: Instant, response: Response<Vec<u8>>);
    /// The last [`Poll::Send`] failed in the transport.
    fn handle_transport_error(&mut self, now: Instant, error: TransportError);
    /// The answer to [`Poll::NeedToken`]. Exchanges that never ask may ignore it.
    fn handle_token(&mut self, token: Result<Token, Error>) {
        let _ = token;
    }
}

#[derive(Debug)]
enum State<T> {
    Ready,
    InFlight,
    AwaitingToken,
    Sleeping(Instant),
    Done(Option<T>),
}

impl<T> State<T> {
    fn finish(&mut self, value: T) {
        *self = State::Done(Some(value));
    }
}

impl<O> State<Result<O, Error>> {
    /// What `poll` answers in every state but `Ready` (and a sleep that is over), the same for
    /// every exchange: the result once, a sleep, or a misuse error.
    fn settled(&mut self, now: Instant) -> Option<Poll<Result<O, Error>>> {
        let misuse = |what| Some(Poll::Done(Err(UsageError::WrongState(what).into())));
        match self {
            State::Done(result) => match result.take() {
                Some(result) => Some(Poll::Done(result)),
                None => misuse("exchange polled after it finished"),
            },
            State::Sleeping(until) if now < *until => Some(Poll::Sleep(*until)),
            State::InFlight => misuse("exchange polled before its request was answered"),
            State::AwaitingToken => misuse("exchange polled before handle_token"),
            State::Sleeping(_) | State::Ready => None,
        }
    }
}

/// Whether a transport failure may be retried: a request that never left always may; one that
/// may have reached the server only if replaying it is safe.
fn transport_retryable(kind: TransportErrorKind, replay_safe: bool) -> bool {
    match kind {
        TransportErrorKind::Connect => true,
        TransportErrorKind::Timeout | TransportErrorKind::Io => replay_safe,
        // TLS would fail the same way again; a cap, a redirect or the unknown are final.
        _ => false,
    }
}

/// A body in a `Content-Encoding` other than `identity`: no transport of ours decodes one (none
/// asks for compression), so its bytes are not the JSON they claim to be.
fn undecoded_body(response: &Response<Vec<u8>>) -> Option<Error> {
    let encoding = response.headers().get(http::header::CONTENT_ENCODING)?;
    let name = encoding.to_str().unwrap_or("<not text>").trim();
    if name.is_empty() || name.eq_ignore_ascii_case("identity") {
        return None;
    }
    let encoding = crate::excerpt::Excerpt::of_text(name, 32).as_str().to_owned();
    Some(
        crate::protocol_error::ProtocolError::UnsupportedEncoding {
            status: response.status(),
            encoding,
        }
        .into(),
    )
}

/// The API error classified again from a scrubbed copy of the response, if the token occurs in
/// its body or headers.
fn scrubbed_api_error(
    sent: &Sent,
    response: &Response<Vec<u8>>,
    error: crate::api_error::ApiError,
) -> crate::api_error::ApiError {
    let body = sent.scrub(response.body());
    let headers = sent.scrub_headers(response.headers());
    if body.is_none() && headers.is_none() {
        return error;
    }
    let body = body.as_deref().unwrap_or(response.body());
    let headers = headers.as_ref().unwrap_or(response.headers());
    classify_response(response.status(), headers, body).err().unwrap_or(error)
}

/// An authenticated API call: gets a token, sends, retries what is safe to retry, and replays
/// once with a fresh token after a 401.
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{AccessToken, ApiRequest, Environment, LifecyclePolicy, RetryPolicy, TokenSet};
/// use helloflex_core::machines::{ApiCall, Exchange, Poll, TokenCache};
///
/// let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
/// let token = cache.insert(TokenSet::new(AccessToken::new("old"), None, Instant::now(), Duration::from_secs(60), None), 1);
/// let mut call = ApiCall::new(ApiRequest::get("news"), Environment::Sandbox.base_url(), RetryPolicy::default(), 2);
/// let now = Instant::now();
/// assert!(matches!(call.poll(now), Poll::NeedToken { rejected: None }));
/// call.handle_token(Ok(token));
/// let Poll::Send(_) = call.poll(now) else { unreachable!() };
/// // A 401: the call asks for a fresh token, naming the one refused, and is replayed once.
/// call.handle_response(now, http::Response::builder().status(401).body(Vec::new()).unwrap());
/// let Poll::NeedToken { rejected: Some(refused) } = call.poll(now) else { unreachable!() };
/// assert!(cache.invalidate(refused));
/// ```
#[derive(Debug)]
pub struct ApiCall {
    request: ApiRequest,
    base: Endpoint,
    token: Option<Token>,
    rejected: Option<TokenId>,
    replayed_after_401: bool,
    attempts: Attempts,
    state: State<Result<Response<Vec<u8>>, Error>>,
}

impl ApiCall {
    /// A call of `request` against `base`.
    pub fn new(request: ApiRequest, base: Endpoint, policy: RetryPolicy, seed: u64) -> Self {
        Self {
            request,
            base,
            token: None,
            rejected: None,
            replayed_after_401: false,
            attempts: Attempts::new(policy, seed),
            state: State::Ready,
        }
    }
}

impl Exchange for ApiCall {
    type Output = Result<Response<Vec<u8>>, Error>;

    fn poll(&mut self, now: Instant) -> Poll<Self::Output> {
        if let Some(settled) = self.state.settled(now) {
            return settled;
        }
        let Some(token) = &self.token else {
            self.state = State::AwaitingToken;
            return Poll::NeedToken { rejected: self.rejected.take() };
        };
        match token.authorization().and_then(|value| self.request.to_http_with(&self.base, value)) {
            Ok(request) => {
                self.attempts.record(now);
                self.state = State::InFlight;
                Poll::Send(request)
            }
            Err(e) => Poll::Done(Err(e)),
        }
    }

    fn handle_token(&mut self, token: Result<Token, Error>) {
        if !matches!(self.state, State::AwaitingToken) {
            return;
        }
        match token {
            Ok(token) => {
                self.token = Some(token);
                self.state = State::Ready;
            }
            Err(e) => self.state.finish(Err(e)),
        }
    }

    fn handle_response(&mut self, now: Instant, response: Response<Vec<u8>>) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        if let Some(error) = undecoded_body(&response) {
            return self.state.finish(Err(error));
        }
        let error = match classify_response(response.status(), response.headers(), response.body())
        {
            Ok(()) => return self.state.finish(Ok(response)),
            Err(e) => e,
        };
        // A server echoing the token it refused gets it into no error text.
        let sent = self.token.as_ref().map(|t| Sent::of_bearer(t.access_token().expose_secret()));
        let error = match sent {
            Some(sent) => scrubbed_api_error(&sent, &response, error),
            None => error,
        };
        match error.kind() {
            ApiErrorKind::Unauthorized { .. } if !self.replayed_after_401 => {
                // The token was refused: drop exactly that one and replay once with a fresh one.
                self.replayed_after_401 = true;
                self.rejected = self.token.take().map(|t| t.id());
                self.state = State::Ready;
            }
            _ if error.is_transient() && self.request.is_retry_safe() => {
                // The same reading as the token endpoint's: any transient answer's Retry-After.
                let retry_after = crate::retry_after::retry_after(response.headers());
                match self.attempts.next_attempt(now, retry_after) {
                    Some(at) => self.state = State::Sleeping(at),
                    None => self.state.finish(Err(error.into())),
                }
            }
            _ => self.state.finish(Err(error.into())),
        }
    }

    fn handle_transport_error(&mut self, now: Instant, mut error: TransportError) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        error.attempts = self.attempts.made();
        let retryable = transport_retryable(error.kind, self.request.is_retry_safe());
        match retryable.then(|| self.attempts.next_attempt(now, None)).flatten() {
            Some(at) => self.state = State::Sleeping(at),
            None => self.state.finish(Err(Error::Transport(error))),
        }
    }
}

impl<E: Exchange + ?Sized> Exchange for Box<E> {
    type Output = E::Output;

    fn poll(&mut self, now: Instant) -> Poll<Self::Output> {
        (**self).poll(now)
    }
    fn handle_response(&mut self, now: Instant, response: Response<Vec<u8>>) {
        (**self).handle_response(now, response);
    }
    fn handle_transport_error(&mut self, now: Instant, error: TransportError) {
        (**self).handle_transport_error(now, error);
    }
    fn handle_token(&mut self, token: Result<Token, Error>) {
        (**self).handle_token(token);
    }
}
