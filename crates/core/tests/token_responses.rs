//! Token endpoint responses from the RFC, the vendor docs and real-world quirks, read through
//! the public API from raw HTTP fixtures.

mod support;

use std::time::Duration;

use helloflex_core::{
    Error, MAX_LIFETIME, MIN_LIFETIME, OAuthErrorCode, ProtocolError, TokenResponse,
    parse_token_response,
};
use support::fixture;

fn parse(name: &str) -> Result<TokenResponse, Error> {
    let response = fixture(&format!("token/{name}.http"));
    parse_token_response(response.status(), response.body())
}

fn protocol(name: &str) -> ProtocolError {
    match parse(name) {
        Err(Error::Protocol(e)) => e,
        other => panic!("{name}: expected a protocol error, got {other:?}"),
    }
}

#[test]
fn vendor_and_rfc_successes() {
    let t = parse("seed_helloflex_sample").unwrap();
    assert_eq!(t.access_token.expose_secret(), "<Access-Token>");
    assert_eq!(t.expires_in, Some(Duration::from_secs(3599)));

    let t = parse("rfc6749_5_1_bearer").unwrap();
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "tGzv3JOkF0XG5Qx2TlKWIA");
}

#[test]
fn rfc_example_token_type_is_refused() {
    assert!(
        matches!(protocol("rfc6749_5_1_example_token_type"), ProtocolError::UnsupportedTokenType { token_type } if token_type == "example")
    );
    assert!(matches!(protocol("token_type_mac"), ProtocolError::UnsupportedTokenType { .. }));
    assert!(matches!(
        protocol("token_type_number"),
        ProtocolError::InvalidField { field: "token_type", .. }
    ));
    // Present but null is not "absent, so Bearer": the server named no type we can use.
    assert!(matches!(
        protocol("token_type_null"),
        ProtocolError::InvalidField { field: "token_type", .. }
    ));
}

#[test]
fn lenient_where_servers_are_sloppy() {
    assert_eq!(parse("expires_in_string").unwrap().expires_in, Some(Duration::from_secs(3600)));
    assert!(parse("created_201").is_ok());
    assert!(parse("missing_token_type").is_ok());
    assert!(parse("bom").is_ok());
    assert_eq!(parse("float_expires_in").unwrap().expires_in, Some(Duration::from_secs(59)));
    assert_eq!(parse("negative_expires_in").unwrap().expires_in, Some(MIN_LIFETIME));
    assert_eq!(parse("huge_expires_in").unwrap().expires_in, Some(MAX_LIFETIME));
    assert_eq!(parse("scope_array").unwrap().scope.unwrap(), vec!["news.read", "domain.read"]);
    assert!(parse("empty_refresh_token").unwrap().refresh_token.is_none());
}

#[test]
fn oauth_errors_keep_code_description_and_status() {
    let Err(Error::OAuth(e)) = parse("rfc6749_5_2_invalid_request") else { panic!() };
    assert_eq!(e.code(), &OAuthErrorCode::InvalidRequest);
    assert_eq!(e.status().as_u16(), 400);

    let Err(Error::OAuth(e)) = parse("invalid_client_401") else { panic!() };
    assert_eq!(e.code(), &OAuthErrorCode::InvalidClient);
    assert_eq!(e.description(), Some("Client authentication failed"));
    assert!(e.uri().is_some());

    let Err(Error::OAuth(e)) = parse("error_in_200") else { panic!() };
    assert_eq!(e.code(), &OAuthErrorCode::InvalidGrant);
    assert_eq!(e.status().as_u16(), 200);
}

#[test]
fn hostile_description_is_sanitised() {
    let Err(Error::OAuth(e)) = parse("unknown_error_code") else { panic!() };
    assert_eq!(e.code(), &OAuthErrorCode::Other("slow_down_please".into()));
    let description = e.description().unwrap();
    assert!(!description.chars().any(char::is_control), "{description:?}");
    let shown = e.to_string();
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'));
}

#[test]
fn broken_bodies_are_typed_with_status_and_excerpt() {
    for (name, status) in [("html_502", 502), ("empty_500", 500), ("text_plain_400", 400)] {
        match protocol(name) {
            ProtocolError::UnexpectedResponse { status: s, excerpt } => {
                assert_eq!(s.as_u16(), status, "{name}");
                if name == "html_502" {
                    assert!(excerpt.as_str().contains("502 Bad Gateway"));
                }
            }
            e => panic!("{name}: {e:?}"),
        }
    }
    for name in ["truncated_json", "trailing_garbage", "invalid_utf8"] {
        assert!(matches!(protocol(name), ProtocolError::NotJson { .. }), "{name}");
    }
    assert!(matches!(protocol("array_body"), ProtocolError::NotAnObject { .. }));
    assert!(
        matches!(protocol("duplicate_access_token"), ProtocolError::DuplicateField { field, .. } if field == "access_token")
    );
    assert!(matches!(
        protocol("missing_access_token"),
        ProtocolError::MissingField { field: "access_token", .. }
    ));
    assert!(matches!(
        protocol("crlf_in_token"),
        ProtocolError::InvalidField { field: "access_token", .. }
    ));
}

#[test]
fn oversized_body_refused_unread() {
    let mut body = br#"{"access_token":"abc","padding":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', helloflex_core::machines::MAX_TOKEN_RESPONSE_BYTES));
    body.extend(br#""}"#);
    let e = parse_token_response(http::StatusCode::OK, &body).unwrap_err();
    assert!(matches!(e, Error::Protocol(ProtocolError::BodyTooLarge { .. })));
}

#[test]
fn no_secret_in_any_error_text() {
    const CANARY: &str = "CANARY0secret0value0that0must0never0leak";
    let bodies = [
        format!(r#"{{"access_token":"{CANARY}","token_type":"mac"}}"#),
        format!(r#"{{"access_token":"{CANARY}","access_token":"x"}}"#),
        format!(r#"{{"access_token":"{CANARY}","expires_in":"soon"}}"#),
        format!(r#"{{"access_token":"{CANARY}"#),
        format!(
            r#"{{"error":"invalid_grant","error_description":"refresh token {CANARY} is revoked"}}"#
        ),
        format!("<html>{CANARY}</html>"),
    ];
    for body in bodies {
        for status in [200u16, 400, 502] {
            let status = http::StatusCode::from_u16(status).unwrap();
            if let Err(e) = parse_token_response(status, body.as_bytes()) {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(CANARY), "{shown}");
            }
        }
    }
}

#[test]
fn ten_kilobyte_description_is_truncated() {
    let body = format!(
        r#"{{"error":"invalid_request","error_description":"{}<script>x</script>"}}"#,
        "word ".repeat(2048)
    );
    let Err(Error::OAuth(e)) = parse_token_response(http::StatusCode::BAD_REQUEST, body.as_bytes())
    else {
        panic!()
    };
    assert!(e.description().unwrap().chars().count() <= 301);
    assert!(e.to_string().len() < 400);
}

#[test]
fn narrower_scope_than_asked_is_accepted_and_reported() {
    let t =
        parse_token_response(http::StatusCode::OK, br#"{"access_token":"a","scope":"news.read"}"#)
            .unwrap();
    assert_eq!(t.scope.unwrap(), vec!["news.read"]);
    let t = parse_token_response(http::StatusCode::OK, br#"{"access_token":"a"}"#).unwrap();
    assert!(t.scope.is_none());
}

#[test]
fn no_secret_in_any_request_url() {
    use helloflex_core::machines::*;
    use helloflex_core::*;
    let secret = "CANARYclientsecret0123456789";
    let config =
        ClientCredentialsConfig::new("id", ClientSecret::new(secret), &Environment::Sandbox);
    for method in [ClientAuthMethod::RequestBody, ClientAuthMethod::BasicAuth] {
        let request = config.clone().with_auth_method(method).token_request().unwrap();
        assert!(!request.request().uri().to_string().contains(secret));
    }
    let token = AccessToken::new("CANARYaccesstoken0123456789");
    let request = ApiRequest::get("news")
        .query("q", "x")
        .to_http(&Environment::Sandbox.base_url(), &token)
        .unwrap();
    assert!(!request.uri().to_string().contains(token.expose_secret()));
    let refresh = RefreshToken::new("CANARYrefreshtoken0123456789");
    let ac = AuthorizationCodeConfig::new(
        ClientIdentity::confidential("app", ClientSecret::new(secret)),
        Endpoint::parse("https://a.example/authorize", InsecureLoopback::Deny).unwrap(),
        Endpoint::parse("https://a.example/token", InsecureLoopback::Deny).unwrap(),
        Endpoint::parse("https://app.example/cb", InsecureLoopback::Deny).unwrap(),
    );
    let request = ac.refresh_request(&refresh).unwrap();
    let uri = request.request().uri().to_string();
    assert!(!uri.contains(refresh.expose_secret()) && !uri.contains(secret));
    // The authorize URL carries the state and the PKCE challenge (public), never the verifier.
    let entropy: [u8; 64] = std::array::from_fn(|i| (i * 7) as u8);
    let (url, pending) = start_authorization(&ac, &entropy).unwrap();
    let json = serde_json::to_value(&pending).unwrap();
    assert!(!url.contains(json["verifier"].as_str().unwrap()));
    assert!(!url.contains(secret));
}
