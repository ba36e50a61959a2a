//! Exchanges driven by a scripted loop: retries, backoff, Retry-After, 401 replay, deadlines.

mod support;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use helloflex_core::*;

use helloflex_core::machines::*;
use support::{response, t0};

/// What the scripted transport answers for each request, in order.
enum Reply {
    Http(http::Response<Vec<u8>>),
    Fail(TransportErrorKind),
}

/// Drives `exchange` to completion like a transport would, on a manual clock. Returns the output,
/// the requests sent, and the time that passed.
struct Run<T> {
    output: T,
    sent: Vec<http::Request<Vec<u8>>>,
    elapsed: Duration,
    token_requests: Vec<Option<TokenId>>,
    start: Instant,
}

fn drive<E: Exchange>(
    mut exchange: E,
    replies: Vec<Reply>,
    mut tokens: impl FnMut(Option<TokenId>) -> Result<Token, Error>,
) -> Run<E::Output> {
    let start = t0();
    let mut now = start;
    let mut replies: VecDeque<Reply> = replies.into();
    let mut sent = Vec::new();
    let mut token_requests = Vec::new();
    for _ in 0..100 {
        match exchange.poll(now) {
            Poll::Send(request) => {
                sent.push(request);
                match replies.pop_front().expect("the exchange sent more requests than scripted") {
                    Reply::Http(r) => exchange.handle_response(now, r),
                    Reply::Fail(kind) => {
                        exchange.handle_transport_error(now, TransportError::new(kind, "scripted"))
                    }
                }
            }
            Poll::Sleep(until) => {
                assert!(until > now, "sleep must move time forward");
                now = until;
            }
            Poll::NeedToken { rejected } => {
                token_requests.push(rejected);
                exchange.handle_token(tokens(rejected));
            }
            Poll::Done(output) => {
                assert!(replies.is_empty(), "{} scripted replies left unused", replies.len());
                return Run { output, sent, elapsed: now - start, token_requests, start };
            }
        }
    }
    panic!("the exchange did not finish in 100 steps");
}

fn token_request() -> TokenRequest {
    ClientCredentialsConfig::new("id", ClientSecret::new("secret"), &Environment::Sandbox)
        .token_request()
        .unwrap()
}

/// `request` relabelled as a request of `grant` (its replay class goes with the label).
fn labelled(grant: TokenGrant, request: TokenRequest) -> TokenRequest {
    TokenRequest::new(grant, request.into_request())
}

const TOKEN: &str = r#"{"access_token":"t","token_type":"Bearer","expires_in":60}"#;

fn no_tokens(_: Option<TokenId>) -> Result<Token, Error> {
    panic!("token exchanges never ask for a token")
}

#[test]
fn token_fetch_retries_transient_failures_then_succeeds() {
    let replies = vec![
        Reply::Fail(TransportErrorKind::Connect),
        Reply::Http(response(503, &[], "<html>busy</html>")),
        Reply::Http(response(200, &[], TOKEN)),
    ];
    let run =
        drive(TokenExchange::new(token_request(), RetryPolicy::default(), 1), replies, no_tokens);
    let fetched = run.output.unwrap();
    assert_eq!(run.sent.len(), 3);
    assert!(run.elapsed > Duration::ZERO);
    // Expiry counts from the moment the successful (last) request was sent, not the first.
    assert_eq!(fetched.sent_at, run.start + run.elapsed);
    assert!(fetched.sent_at > run.start);
}

#[test]
fn token_fetch_gives_up_after_max_attempts() {
    let replies = (0..4).map(|_| Reply::Http(response(500, &[], ""))).collect();
    let run =
        drive(TokenExchange::new(token_request(), RetryPolicy::default(), 1), replies, no_tokens);
    assert!(matches!(run.output, Err(Error::Protocol(ProtocolError::UnexpectedResponse { .. }))));
    assert_eq!(run.sent.len(), 4);
    assert!(run.elapsed <= RetryPolicy::default().deadline);
}

/// `Duration::MAX` as the retry deadline or as the attempt timeout means "no limit": the
/// exchange's deadline (how long a ticket and a store lease live for it) is in the far future,
/// never its start, which would let a waiting caller send the same request again at once.
#[test]
fn an_unlimited_retry_deadline_or_attempt_timeout_puts_the_deadline_in_the_far_future() {
    let start = t0();
    let minute = Duration::from_secs(60);
    for (deadline, attempt) in
        [(Duration::MAX, minute), (minute, Duration::MAX), (Duration::MAX, Duration::MAX)]
    {
        let policy = RetryPolicy::default().with_deadline(deadline);
        let exchange = TokenExchange::new(token_request(), policy, 1);
        assert_eq!(
            exchange.deadline(start, attempt),
            start + FAR_FUTURE,
            "{deadline:?} {attempt:?}"
        );
    }
    // Within range the sum is exact.
    let exchange = TokenExchange::new(token_request(), RetryPolicy::default(), 1);
    assert_eq!(exchange.deadline(start, minute), start + Duration::from_secs(90));
}

/// An unlimited retry deadline still retries (it is no limit, not "no retry"); a `Retry-After`
/// too long for the clock to express is not waited for, even when every limit is lifted.
#[test]
fn an_unlimited_retry_deadline_retries_and_an_endless_retry_after_gives_up() {
    let unlimited =
        RetryPolicy::default().with_deadline(Duration::MAX).with_max_retry_after(Duration::MAX);
    let replies = vec![
        Reply::Fail(TransportErrorKind::Connect),
        Reply::Http(response(503, &[], "")),
        Reply::Http(response(200, &[], TOKEN)),
    ];
    let run = drive(TokenExchange::new(token_request(), unlimited.clone(), 1), replies, no_tokens);
    assert!(run.output.is_ok(), "{:?}", run.output.err());
    assert_eq!(run.sent.len(), 3);
    let endless = response(503, &[("retry-after", "99999999999999999999999")], "");
    let run = drive(
        TokenExchange::new(token_request(), unlimited, 1),
        vec![Reply::Http(endless)],
        no_tokens,
    );
    assert!(run.output.is_err());
    assert_eq!((run.sent.len(), run.elapsed), (1, Duration::ZERO));
}

#[test]
fn oauth_errors_are_not_retried() {
    let body = r#"{"error":"invalid_client"}"#;
    let run = drive(
        TokenExchange::new(token_request(), RetryPolicy::default(), 1),
        vec![Reply::Http(response(401, &[], body))],
        no_tokens,
    );
    let Err(e) = run.output else { panic!() };
    assert_eq!(e.blame(), Blame::Configuration);
}

#[test]
fn refresh_is_retried_on_transient_failures_and_invalid_grant_means_reauthorize() {
    let request = || token_request();
    // The replay rule: a transient failure is retried within the call, the same request.
    for kind in [TransportErrorKind::Io, TransportErrorKind::Timeout, TransportErrorKind::Connect] {
        let run = drive(
            TokenExchange::new(
                labelled(TokenGrant::RefreshToken, request()),
                RetryPolicy::default(),
                1,
            ),
            vec![Reply::Fail(kind), Reply::Http(response(200, &[], TOKEN))],
            no_tokens,
        );
        assert!(run.output.is_ok(), "{kind:?}");
        assert_eq!(run.sent.len(), 2);
        assert_eq!(run.sent[0].body(), run.sent[1].body(), "the same request");
    }
    for status in [502, 503, 408, 429] {
        let run = drive(
            TokenExchange::new(
                labelled(TokenGrant::RefreshToken, request()),
                RetryPolicy::default(),
                1,
            ),
            vec![Reply::Http(response(status, &[], "")), Reply::Http(response(200, &[], TOKEN))],
            no_tokens,
        );
        assert!(run.output.is_ok(), "{status}");
        assert_eq!(run.sent.len(), 2);
    }
    // A definitive answer is never replayed.
    let run = drive(
        TokenExchange::new(
            labelled(TokenGrant::RefreshToken, request()),
            RetryPolicy::default(),
            1,
        ),
        vec![Reply::Http(response(400, &[], r#"{"error":"invalid_grant"}"#))],
        no_tokens,
    );
    assert_eq!(run.sent.len(), 1);
    assert!(run.output.unwrap_err().requires_reauthorization());
    let run = drive(
        TokenExchange::new(
            labelled(TokenGrant::RefreshToken, request()),
            RetryPolicy::default(),
            1,
        ),
        vec![Reply::Http(response(401, &[], r#"{"error":"invalid_client"}"#))],
        no_tokens,
    );
    assert_eq!(run.sent.len(), 1);
    assert!(run.output.is_err());
}

#[test]
fn code_exchange_is_never_replayed_once_sent() {
    for kind in [TransportErrorKind::Io, TransportErrorKind::Timeout] {
        let run = drive(
            TokenExchange::new(
                labelled(TokenGrant::AuthorizationCode, token_request()),
                RetryPolicy::default(),
                1,
            ),
            vec![Reply::Fail(kind)],
            no_tokens,
        );
        assert!(matches!(run.output, Err(Error::Transport(_))));
        assert_eq!(run.sent.len(), 1);
    }
    let run = drive(
        TokenExchange::new(
            labelled(TokenGrant::AuthorizationCode, token_request()),
            RetryPolicy::default(),
            1,
        ),
        vec![Reply::Http(response(502, &[], ""))],
        no_tokens,
    );
    assert_eq!(run.sent.len(), 1);
    // A connection that never opened is safe to retry.
    let run = drive(
        TokenExchange::new(
            labelled(TokenGrant::AuthorizationCode, token_request()),
            RetryPolicy::default(),
            1,
        ),
        vec![Reply::Fail(TransportErrorKind::Connect), Reply::Http(response(200, &[], TOKEN))],
        no_tokens,
    );
    assert!(run.output.is_ok());
}

#[test]
fn token_endpoint_redirect_is_not_followed() {
    let run = drive(
        TokenExchange::new(token_request(), RetryPolicy::default(), 1),
        vec![Reply::Http(response(307, &[("location", "https://evil.example/steal")], ""))],
        no_tokens,
    );
    assert_eq!(run.sent.len(), 1);
    assert!(matches!(run.output, Err(Error::Protocol(ProtocolError::UnexpectedResponse { .. }))));
}

/// A token source backed by a real lifecycle, refilled on demand with token "t1", "t2", ...
struct Tokens {
    cache: TokenCache,
    issued: u32,
    now: Instant,
}

impl Tokens {
    fn new() -> Self {
        Self {
            cache: TokenCache::client_credentials(LifecyclePolicy::default()),
            issued: 0,
            now: t0(),
        }
    }

    fn get(&mut self, rejected: Option<TokenId>) -> Result<Token, Error> {
        if let Some(id) = rejected {
            self.cache.invalidate(id);
        }
        match self.cache.acquire(self.now) {
            Acquire::Use(t) => Ok(t),
            Acquire::Fetch(ticket) => {
                self.issued += 1;
                let body = format!(r#"{{"access_token":"t{}","expires_in":3600}}"#, self.issued);
                let parsed = parse_token_response(http::StatusCode::OK, body.as_bytes())?;
                let set = self.cache.token_set(&ticket, parsed, self.now);
                match self.cache.complete(self.now, ticket, Ok(set), 0) {
                    Completion::Stored(t) => Ok(t),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

fn call(request: ApiRequest) -> ApiCall {
    ApiCall::new(request, Environment::Sandbox.base_url(), RetryPolicy::default(), 9)
}

fn bearer(request: &http::Request<Vec<u8>>) -> &str {
    request.headers()["authorization"].to_str().unwrap()
}

#[test]
fn unauthorized_replays_once_with_a_fresh_token() {
    let mut tokens = Tokens::new();
    let expired = response(
        401,
        &[(
            "www-authenticate",
            r#"Bearer error="invalid_token", error_description="The access token expired""#,
        )],
        "",
    );
    let run = drive(
        call(ApiRequest::get("news")),
        vec![Reply::Http(expired), Reply::Http(response(200, &[], "[]"))],
        |r| tokens.get(r),
    );
    assert_eq!(run.output.unwrap().status(), 200);
    assert_eq!(bearer(&run.sent[0]), "Bearer t1");
    assert_eq!(bearer(&run.sent[1]), "Bearer t2");
    assert_eq!(run.token_requests.len(), 2);
    assert!(run.token_requests[0].is_none() && run.token_requests[1].is_some());
}

#[test]
fn a_second_unauthorized_is_returned_not_looped() {
    let mut tokens = Tokens::new();
    let run = drive(
        call(ApiRequest::get("news")),
        vec![
            Reply::Http(response(401, &[], "")),
            Reply::Http(response(
                401,
                &[(
                    "www-authenticate",
                    "Bearer error=\"invalid_token\", error_description=\"revoked\"",
                )],
                "",
            )),
        ],
        |r| tokens.get(r),
    );
    let Err(Error::Api(e)) = run.output else { panic!() };
    assert!(matches!(
        e.kind(),
        ApiErrorKind::Unauthorized { cause: UnauthorizedCause::Revoked, .. }
    ));
    assert_eq!(run.sent.len(), 2);
}

#[test]
fn forbidden_insufficient_scope_never_refreshes() {
    let mut tokens = Tokens::new();
    let run = drive(
        call(ApiRequest::get("admin")),
        vec![Reply::Http(response(
            403,
            &[("www-authenticate", r#"Bearer error="insufficient_scope", scope="admin""#)],
            "",
        ))],
        |r| tokens.get(r),
    );
    assert!(matches!(run.output, Err(Error::Api(_))));
    assert_eq!(run.token_requests.len(), 1);
    assert_eq!(tokens.issued, 1);
}

#[test]
fn server_errors_retried_for_idempotent_methods_only() {
    let mut tokens = Tokens::new();
    let run = drive(
        call(ApiRequest::get("news")),
        vec![
            Reply::Http(response(503, &[], "")),
            Reply::Http(response(500, &[], "")),
            Reply::Http(response(200, &[], "[]")),
        ],
        |r| tokens.get(r),
    );
    assert!(run.output.is_ok());
    assert_eq!(run.sent.len(), 3);

    let run = drive(
        call(ApiRequest::post("items").json(&1)),
        vec![Reply::Http(response(503, &[], ""))],
        |r| tokens.get(r),
    );
    assert!(matches!(run.output, Err(Error::Api(ref e)) if e.status() == 503));
    assert_eq!(run.sent.len(), 1);

    // A reset after sending is not replayed for POST; a refused connection is.
    let run =
        drive(call(ApiRequest::post("items")), vec![Reply::Fail(TransportErrorKind::Io)], |r| {
            tokens.get(r)
        });
    assert!(matches!(run.output, Err(Error::Transport(_))));
    let run = drive(
        call(ApiRequest::post("items")),
        vec![Reply::Fail(TransportErrorKind::Connect), Reply::Http(response(201, &[], "{}"))],
        |r| tokens.get(r),
    );
    assert_eq!(run.output.unwrap().status(), 201);
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let mut tokens = Tokens::new();
    let run = drive(
        call(ApiRequest::get("news")),
        vec![
            Reply::Http(response(429, &[("retry-after", "3")], "")),
            Reply::Http(response(200, &[], "[]")),
        ],
        |r| tokens.get(r),
    );
    assert!(run.output.is_ok());
    assert_eq!(run.elapsed, Duration::from_secs(3));

    let run = drive(
        call(ApiRequest::get("news")),
        vec![Reply::Http(response(429, &[("retry-after", "99999999")], ""))],
        |r| tokens.get(r),
    );
    let Err(Error::Api(e)) = run.output else { panic!() };
    assert_eq!(
        e.kind(),
        &ApiErrorKind::RateLimited { retry_after: Some(Duration::from_secs(99_999_999)) }
    );
    assert_eq!(run.elapsed, Duration::ZERO);
}

#[test]
fn ten_503s_stop_within_attempts_and_deadline() {
    let mut tokens = Tokens::new();
    let policy =
        RetryPolicy::default().with_max_attempts(100).with_deadline(Duration::from_secs(10));
    // The exchange must stop within the deadline, before it has used all ten.
    let mut sent_limit = 0;
    let mut replies: VecDeque<Reply> =
        (0..10).map(|_| Reply::Http(response(503, &[], ""))).collect();
    let mut exchange =
        ApiCall::new(ApiRequest::get("news"), Environment::Sandbox.base_url(), policy, 3);
    let mut now = t0();
    let start = now;
    let output = loop {
        match exchange.poll(now) {
            Poll::Send(_) => {
                sent_limit += 1;
                match replies.pop_front() {
                    Some(Reply::Http(r)) => exchange.handle_response(now, r),
                    _ => panic!("more than ten attempts"),
                }
            }
            Poll::Sleep(until) => now = until,
            Poll::NeedToken { rejected } => exchange.handle_token(tokens.get(rejected)),
            Poll::Done(output) => break output,
        }
    };
    assert!(output.is_err());
    assert!(now - start <= Duration::from_secs(10));
    assert!((2..10).contains(&sent_limit), "{sent_limit}");
}

#[test]
fn validation_errors_come_back_field_by_field() {
    let mut tokens = Tokens::new();
    let body =
        r#"{"Id": ["Value -1 is invalid."], "Lang": ["Should be valid ISO 639-1 language code."]}"#;
    let run = drive(
        call(ApiRequest::get("domainTypes/-1/domainValues").query("Lang", "xx")),
        vec![Reply::Http(response(400, &[("content-type", "application/json")], body))],
        |r| tokens.get(r),
    );
    let Err(Error::Api(e)) = run.output else { panic!() };
    let v = e.validation().unwrap();
    assert_eq!(v.get("Id").unwrap(), ["Value -1 is invalid."]);
    assert_eq!(v.get("Lang").unwrap(), ["Should be valid ISO 639-1 language code."]);
}

#[test]
fn no_request_body_or_secret_header_in_debug_output() {
    let secret = "CANARYsecret0123456789";
    let cc = ClientCredentialsConfig::new("id", ClientSecret::new(secret), &Environment::Sandbox);
    let basic = cc.clone().with_auth_method(ClientAuthMethod::BasicAuth);
    let code_config = AuthorizationCodeConfig::new(
        ClientIdentity::confidential("app", ClientSecret::new(secret)),
        Endpoint::parse("https://auth.flextell.test/authorize", InsecureLoopback::Deny).unwrap(),
        Endpoint::parse("https://auth.flextell.test/token", InsecureLoopback::Deny).unwrap(),
        Endpoint::parse("https://app.test/callback", InsecureLoopback::Deny).unwrap(),
    );
    let refresh =
        code_config.refresh_request(&RefreshToken::new("CANARYrefresh0123456789")).unwrap();
    let entropy: [u8; AUTHORIZATION_ENTROPY_BYTES] =
        std::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(1));
    let (_, pending) = start_authorization(&code_config, &entropy).unwrap();
    let code = pending.check_callback("code=CANARYcode0123456789&state=x");
    assert!(code.is_err(), "a wrong state");
    for (exchange, label) in [
        (TokenExchange::new(cc.token_request().unwrap(), RetryPolicy::default(), 1), "form"),
        (TokenExchange::new(basic.token_request().unwrap(), RetryPolicy::default(), 1), "basic"),
        (
            TokenExchange::new(
                labelled(TokenGrant::RefreshToken, refresh),
                RetryPolicy::default(),
                1,
            ),
            "refresh",
        ),
    ] {
        let mut exchange = exchange;
        let shown = format!("{exchange:?}");
        let poll = exchange.poll(t0());
        let shown = format!("{shown} {poll:?} {poll:#?}");
        assert!(shown.contains("POST https://"), "{label}: {shown}");
        for canary in ["CANARY", "Q0FOQVJZ", "client_secret", "refresh_token="] {
            assert!(!shown.contains(canary), "{label} shows {canary}: {shown}");
        }
    }
}

#[test]
fn a_body_in_an_encoding_nobody_asked_for_is_a_typed_error_on_both_paths() {
    let gzip = || response(200, &[("content-encoding", "gzip")], TOKEN);
    let run = drive(
        TokenExchange::new(token_request(), RetryPolicy::default(), 1),
        vec![Reply::Http(gzip())],
        no_tokens,
    );
    assert!(
        matches!(&run.output, Err(Error::Protocol(ProtocolError::UnsupportedEncoding { encoding, .. })) if encoding == "gzip"),
        "{:?}",
        run.output
    );
    let mut tokens = Tokens::new();
    let run = drive(
        call(ApiRequest::get("news")),
        vec![Reply::Http(response(200, &[("content-encoding", "br")], "[]"))],
        |rejected| tokens.get(rejected),
    );
    assert!(matches!(run.output, Err(Error::Protocol(ProtocolError::UnsupportedEncoding { .. }))));
    // `identity` is no encoding at all.
    let run = drive(
        TokenExchange::new(token_request(), RetryPolicy::default(), 1),
        vec![Reply::Http(response(200, &[("content-encoding", "identity")], TOKEN))],
        no_tokens,
    );
    assert!(run.output.is_ok());
}

#[test]
fn a_503_with_retry_after_is_honoured_the_same_way_on_both_paths() {
    let busy = || response(503, &[("retry-after", "2")], "");
    let run = drive(
        TokenExchange::new(token_request(), RetryPolicy::default(), 1),
        vec![Reply::Http(busy()), Reply::Http(response(200, &[], TOKEN))],
        no_tokens,
    );
    assert!(run.output.is_ok());
    let token_wait = run.elapsed;
    let mut tokens = Tokens::new();
    let run = drive(
        call(ApiRequest::get("news")),
        vec![Reply::Http(busy()), Reply::Http(response(200, &[], "[]"))],
        |rejected| tokens.get(rejected),
    );
    assert!(run.output.is_ok());
    assert_eq!(run.elapsed, token_wait, "the same wait on both paths");
    assert_eq!(token_wait, Duration::from_secs(2), "the server's Retry-After, not the backoff");
}
