//! A server that echoes what it was sent (client secret, code, verifier, refresh token, access
//! token) in an error gets none of it into the error's `Display` or `Debug`, in any form it
//! could echo it in: raw, percent-encoded (either hex case), form-encoded, JSON-escaped, or as
//! the Basic header's base64. Secrets here carry punctuation (`@`, a space, `:`, `/`), which
//! splits them into runs too short for the excerpt's token masking.

mod support;

use base64::Engine as _;
use helloflex_core::machines::*;
use helloflex_core::*;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use support::{response, t0};

const SECRET: &str = "s3cr@t with:colon/and+plus";

fn forms(secret: &str) -> Vec<String> {
    let encoded = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    vec![
        secret.to_owned(),
        encoded.clone(),
        encoded.to_lowercase(),
        encoded.replace("%20", "+"),
        secret.replace('/', "\\/"),
    ]
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Sends `exchange`'s request, answers it with an error echoing `echo`, returns what the caller
/// would see of the error.
fn shown_after_echo(mut exchange: TokenExchange, status: u16, echo: &str) -> String {
    let Poll::Send(_) = exchange.poll(t0()) else { panic!("expected a request") };
    // Written into the JSON as a server would (the `\/` form is PHP's escaped slash).
    assert!(!echo.contains('"'));
    let body = format!(
        r#"{{"error":"invalid_grant","error_description":"you sent {echo}, which is wrong","error_uri":"https://auth.test/errors?sent={echo}"}}"#
    );
    exchange.handle_response(t0(), response(status, &[], &body));
    let Poll::Done(Err(error)) = exchange.poll(t0()) else { panic!("expected an error") };
    format!("{error} {error:?}")
}

fn assert_clean(shown: &str, secret: &str) {
    for form in forms(secret) {
        assert!(!shown.contains(&form), "{form:?} leaked: {shown}");
    }
}

#[test]
fn client_secret_echoed_in_any_form_is_scrubbed() {
    for method in [ClientAuthMethod::default(), ClientAuthMethod::BasicAuth] {
        let config =
            ClientCredentialsConfig::new("id", ClientSecret::new(SECRET), &Environment::Sandbox)
                .with_auth_method(method);
        let request = config.token_request().unwrap();
        let mut echoes = forms(SECRET);
        if let Some(basic) = request.request().headers().get("authorization") {
            echoes.push(basic.to_str().unwrap().trim_start_matches("Basic ").to_owned());
        }
        for echo in echoes {
            let exchange =
                TokenExchange::new(config.token_request().unwrap(), RetryPolicy::never(), 1);
            let shown = shown_after_echo(exchange, 400, &echo);
            assert_clean(&shown, SECRET);
            assert!(!shown.contains(&echo), "{echo:?} leaked: {shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("id:{SECRET}"));
    assert!(basic.len() > 8);
}

#[test]
fn refresh_token_code_and_verifier_echoed_are_scrubbed() {
    let e = |u| Endpoint::parse(u, InsecureLoopback::Deny).unwrap();
    let config = AuthorizationCodeConfig::new(
        ClientIdentity::public("app"),
        e("https://auth.test/authorize"),
        e("https://auth.test/token"),
        e("https://app.test/callback"),
    );
    let refresh = "rt@with space:and/slash";
    for echo in forms(refresh) {
        let request = config.refresh_request(&RefreshToken::new(refresh)).unwrap();
        let shown =
            shown_after_echo(TokenExchange::new(request, RetryPolicy::never(), 1), 400, &echo);
        assert_clean(&shown, refresh);
    }
    let entropy: [u8; AUTHORIZATION_ENTROPY_BYTES] =
        std::array::from_fn(|i| (i as u8).wrapping_mul(13).wrapping_add(5));
    let (url, pending) = start_authorization(&config, &entropy).unwrap();
    let state = url.split('&').find_map(|p| p.strip_prefix("state=")).unwrap();
    let code = "c0de@with:colon/and+plus";
    let callback = format!("code={}&state={state}", utf8_percent_encode(code, NON_ALPHANUMERIC));
    let authorized = || pending.check_callback(&callback).unwrap();
    let request = authorized().into_token_request(&config).unwrap();
    let body = String::from_utf8(request.request().body().clone()).unwrap();
    let verifier =
        body.split('&').find_map(|p| p.strip_prefix("code_verifier=")).unwrap().to_owned();
    for (secret, echo) in
        forms(code).into_iter().map(|f| (code, f)).chain([(verifier.as_str(), verifier.clone())])
    {
        let request = authorized().into_token_request(&config).unwrap();
        let exchange = TokenExchange::new(request, RetryPolicy::never(), 1);
        let shown = shown_after_echo(exchange, 400, &echo);
        assert!(!shown.contains(&echo), "{echo:?} leaked: {shown}");
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn error_codes_and_uris_are_readable() {
    let error = OAuthError::new(
        http::StatusCode::BAD_REQUEST,
        "bad_verification_code",
        Some("The code passed is incorrect or expired."),
        Some("http://127.0.0.1:8080/docs/errors/bad_verification_code"),
    );
    assert!(error.to_string().contains("bad_verification_code"), "{error}");
    assert_eq!(error.uri(), Some("http://127.0.0.1:8080/docs/errors/bad_verification_code"));
}

#[test]
fn an_access_token_echoed_by_the_api_is_scrubbed() {
    let access = "at@echoed:token/with+punctuation";
    let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
    let Acquire::Fetch(ticket) = cache.acquire(t0()) else { panic!() };
    let body = format!(r#"{{"access_token":{},"expires_in":3600}}"#, json_string(access));
    let parsed = parse_token_response(http::StatusCode::OK, body.as_bytes()).unwrap();
    let set = cache.token_set(&ticket, parsed, t0());
    let Completion::Stored(token) = cache.complete(t0(), ticket, Ok(set), 1) else { panic!() };
    for echo in forms(access) {
        let mut call = ApiCall::new(
            ApiRequest::get("news"),
            Environment::Sandbox.base_url(),
            RetryPolicy::never(),
            1,
        );
        assert!(matches!(call.poll(t0()), Poll::NeedToken { .. }));
        call.handle_token(Ok(token.clone()));
        let Poll::Send(_) = call.poll(t0()) else { panic!() };
        let challenge =
            format!(r#"Bearer error="invalid_token", error_description="token {echo} expired""#);
        let body = format!(r#"{{"message":"bad token {echo}"}}"#);
        // 403 (no replay) carries the challenge and the body into the error.
        call.handle_response(t0(), response(403, &[("www-authenticate", &challenge)], &body));
        let Poll::Done(Err(error)) = call.poll(t0()) else { panic!() };
        let shown = format!("{error} {error:?}");
        assert_clean(&shown, access);
    }
}
