//! The drive loop, written once: it moves bytes and time for the core's [`Exchange`]s exactly
//! as the core's `exchange` module documents, with no policy of its own. Private to this crate:
//! the managers run every exchange through it, and a transport only sends and sleeps. The blocking and async
//! entry points differ only in how they send, sleep and get a token (`Io`); the blocking one's
//! steps are ready at once, so it runs the same loop to completion with a no-op waker.
//!
//! Each exchange runs inside one `tracing` span (target `helloflex::http`, name `exchange`)
//! with the fields `method`, `path`, `status` and `attempt`, recorded as the loop goes; the
//! span is at DEBUG level and names no secret (the query string is left out).

use std::future::Future;
use std::time::{Duration, Instant};

use helloflex_core::machines::{Exchange, Poll};
use helloflex_core::{Error, Token, TokenId, TransportError};
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::transport::{AsyncTransport, BlockingTransport, Request, Response};

/// Answers an exchange's [`Poll::NeedToken`] for the blocking loop: the blocking manager
/// (invalidate the rejected token, then get one).
pub(crate) trait TokenSource {
    /// A valid token, after invalidating `rejected` if given.
    fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error>;

    /// A cached token, if one can be had without waiting (the common case): the loop then
    /// reads no clock after it. `None` means "ask [`TokenSource::token_for`]".
    fn try_token_now(&self) -> Option<Token> {
        None
    }
}

/// Answers [`Poll::NeedToken`] for the async loop: the async manager.
#[async_trait::async_trait]
pub(crate) trait AsyncTokenSource: Send + Sync {
    /// A valid token, after invalidating `rejected` if given.
    async fn token_for(&self, rejected: Option<TokenId>) -> Result<Token, Error>;

    /// A cached token, if one can be had without waiting (the common case): spares the driver a
    /// boxed future per call. `None` means "ask [`AsyncTokenSource::token_for`]".
    fn try_token_now(&self) -> Option<Token> {
        None
    }
}

/// How one flavour sends, sleeps and gets tokens for the loop.
trait Io {
    fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send;
    fn sleep(&self, wait: Duration) -> impl Future<Output = ()> + Send;
    fn token(&self, rejected: Option<TokenId>)
    -> impl Future<Output = Result<Token, Error>> + Send;
    /// A token had at once, without waiting (the common case: a cached one), if this flavour
    /// can tell; `None` means "ask [`Io::token`]".
    fn token_now(&self) -> Option<Token>;
}

/// The loop (see the module docs). `span` is the exchange's, recorded into as the loop goes;
/// `finish` maps the exchange's output as it is returned (a typed response), so that no future
/// around this one is polled per call for it.
async fn drive<E: Exchange, I: Io, O>(
    io: I,
    clock: &dyn Clock,
    mut exchange: E,
    span: tracing::Span,
    finish: impl FnOnce(E::Output) -> O,
) -> O {
    let mut attempt = 0u32;
    // A span no subscriber wants still looks each field up by name when recorded into.
    let recording = !span.is_disabled();
    let mut now = clock.now();
    loop {
        // The step's I/O is started here and awaited below: the core's answer (a whole request,
        // the largest value in the loop) is gone before the wait, so the future does not keep
        // room for it.
        let step = match exchange.poll(now) {
            Poll::Send(request) => {
                attempt += 1;
                if recording {
                    record_attempt(&span, &request, attempt);
                }
                Step::Send(io.send(request))
            }
            Poll::Sleep(until) => {
                let wait = remaining(until, clock.now());
                note_backoff(wait);
                Step::Sleep(io.sleep(wait))
            }
            // After a 401 the refused token is invalidated first, which only `Io::token` does
            // (and it may wait, so the clock is read after it).
            Poll::NeedToken { rejected } => {
                match rejected.is_none().then(|| io.token_now()).flatten() {
                    // No time passed: `now` still holds for the next poll.
                    Some(token) => {
                        exchange.handle_token(Ok(token));
                        continue;
                    }
                    None => Step::Token(io.token(rejected)),
                }
            }
            Poll::Done(output) => return finish(output),
        };
        match step {
            Step::Send(sent) => match sent.await {
                Ok(response) => {
                    if recording {
                        record_status(&span, &response);
                    }
                    now = clock.now();
                    exchange.handle_response(now, response);
                }
                Err(error) => {
                    now = clock.now();
                    exchange.handle_transport_error(now, error);
                }
            },
            Step::Sleep(slept) => {
                slept.await;
                now = clock.now();
            }
            // Getting a token may have waited for a token request.
            Step::Token(token) => {
                exchange.handle_token(token.await);
                now = clock.now();
            }
        }
    }
}

// The span's records and the backoff's event, out of the loop's line: a call that nobody
// traces and that is not retried runs none of their code, and its cache lines hold only the
// loop's (at 32 callers a call's cost follows the lines it touches more than its instructions).

#[cold]
#[inline(never)]
fn record_attempt(span: &tracing::Span, request: &Request, attempt: u32) {
    span.record("method", tracing::field::display(request.method()));
    span.record("path", request.uri().path());
    span.record("attempt", attempt);
}

#[cold]
#[inline(never)]
fn record_status(span: &tracing::Span, response: &Response) {
    span.record("status", response.status().as_u16());
}

#[cold]
#[inline(never)]
fn note_backoff(wait: Duration) {
    tracing::debug!(target: "helloflex::retry", wait_ms = wait.as_millis() as u64, "retrying after backoff");
}

/// One step's I/O, started.
enum Step<S, W, T> {
    Send(S),
    Sleep(W),
    Token(T),
}

fn exchange_span() -> tracing::Span {
    use tracing::field::Empty;
    tracing::debug_span!(target: "helloflex::http", "exchange", method = Empty, path = Empty, status = Empty, attempt = Empty)
}

/// What one flavour drives an exchange with: its transport and what answers `NeedToken`.
struct Flavour<'a, T: ?Sized, K: ?Sized> {
    transport: &'a T,
    tokens: &'a K,
}

/// The blocking flavour: each step does its I/O on the calling thread, then is ready.
impl<'a> Io for Flavour<'a, dyn BlockingTransport + 'a, dyn TokenSource + 'a> {
    fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send {
        std::future::ready(self.transport.send(request))
    }
    fn sleep(&self, wait: Duration) -> impl Future<Output = ()> + Send {
        self.transport.sleep(wait);
        std::future::ready(())
    }
    fn token(
        &self,
        rejected: Option<TokenId>,
    ) -> impl Future<Output = Result<Token, Error>> + Send {
        std::future::ready(self.tokens.token_for(rejected))
    }
    fn token_now(&self) -> Option<Token> {
        self.tokens.try_token_now()
    }
}

/// The async flavour: the transport's futures, and the token source's fast path first.
impl<'a> Io for Flavour<'a, dyn AsyncTransport + 'a, dyn AsyncTokenSource + 'a> {
    fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send {
        self.transport.send(request)
    }
    fn sleep(&self, wait: Duration) -> impl Future<Output = ()> + Send {
        self.transport.sleep(wait)
    }
    fn token(
        &self,
        rejected: Option<TokenId>,
    ) -> impl Future<Output = Result<Token, Error>> + Send {
        self.tokens.token_for(rejected)
    }
    fn token_now(&self) -> Option<Token> {
        self.tokens.try_token_now()
    }
}

/// The token source of an exchange that needs none (a token request): asked anyway, it says
/// so as a typed error rather than panicking.
pub(crate) struct NoTokens;

impl TokenSource for NoTokens {
    fn token_for(&self, _: Option<TokenId>) -> Result<Token, Error> {
        Err(no_token_source())
    }
}

#[async_trait::async_trait]
impl AsyncTokenSource for NoTokens {
    async fn token_for(&self, _: Option<TokenId>) -> Result<Token, Error> {
        Err(no_token_source())
    }
}

/// Runs `exchange` to completion on a blocking transport; `tokens` answers `NeedToken` (a
/// token request needs none: [`NoTokens`]).
pub(crate) fn drive_blocking<E: Exchange>(
    transport: &dyn BlockingTransport,
    clock: &dyn Clock,
    tokens: &dyn TokenSource,
    exchange: E,
) -> E::Output {
    let io = Flavour { transport, tokens };
    // The whole exchange runs on this thread within this call, so entering the span here is
    // what `Instrumented` would do on each poll, without one more move of the future.
    let span = exchange_span();
    let _entered = span.enter();
    crate::ready::run_ready(drive(io, clock, exchange, span.clone(), std::convert::identity))
}

/// Runs `exchange` to completion on an async transport. A plain function returning the loop's
/// future (not an `async fn`, which would keep a second copy of `exchange` beside it): every
/// layer of a call's future is carried by each task that awaits it.
pub(crate) fn drive_async<'a, E: Exchange + Send + 'a>(
    transport: &'a dyn AsyncTransport,
    clock: &'a dyn Clock,
    tokens: &'a dyn AsyncTokenSource,
    exchange: E,
) -> impl Future<Output = E::Output> + Send + 'a
where
    E::Output: Send,
{
    drive_async_then(transport, clock, tokens, exchange, std::convert::identity)
}

/// [`drive_async`], its output mapped by `finish` as the loop returns it.
pub(crate) fn drive_async_then<'a, E: Exchange + Send + 'a, O: Send + 'a>(
    transport: &'a dyn AsyncTransport,
    clock: &'a dyn Clock,
    tokens: &'a dyn AsyncTokenSource,
    exchange: E,
    finish: impl FnOnce(E::Output) -> O + Send + 'a,
) -> impl Future<Output = O> + Send + 'a
where
    E::Output: Send,
{
    let span = exchange_span();
    drive(Flavour { transport, tokens }, clock, exchange, span.clone(), finish).instrument(span)
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
