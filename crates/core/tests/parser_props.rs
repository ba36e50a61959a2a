//! Every parser in the core, fed arbitrary and hostile input: never a panic, and a canary secret
//! planted in the input never reaches an error's `Display`, `Debug` or `source()` chain.
//! (The fuzz targets in `crates/core/fuzz` explore the same entry points for longer.)

mod support;

use helloflex_core::*;

use helloflex_core::machines::*;
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;

const CANARY: &str = "CANARYsecret0value0that0must0never0leak";

fn assert_no_canary(e: &dyn std::error::Error) {
    let mut shown = format!("{e} {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        shown.push_str(&s.to_string());
        source = s.source();
    }
    assert!(!shown.contains(CANARY), "{shown}");
}

/// JSON-ish bodies built from pieces real servers and attackers send.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(r#"{"access_token":""#.to_string()),
        Just(CANARY.to_string()),
        Just(r#"","token_type":"#.to_string()),
        Just(r#""bearer""#.to_string()),
        Just(r#""mac""#.to_string()),
        Just(r#","expires_in":"#.to_string()),
        Just("1e400".to_string()),
        Just("-9223372036854775809".to_string()),
        Just(r#""3600""#.to_string()),
        Just(r#","refresh_token":"#.to_string()),
        Just(r#","error":"#.to_string()),
        Just(r#","error_description":"\u001b[31m"#.to_string()),
        Just(r#","scope":["a","b"]"#.to_string()),
        Just("}".to_string()),
        Just("<html>".to_string()),
        Just("\u{feff}".to_string()),
        Just("\\".to_string()),
        Just("\"".to_string()),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn token_responses(status in 100u16..600, body in body()) {
        let status = StatusCode::from_u16(status).unwrap();
        match parse_token_response(status, &body) {
            Ok(t) => {
                // Whatever parsed is safe to put in a header.
                prop_assert!(bearer_header(&t.access_token).is_ok());
                let shown = format!("{t:?}");
                prop_assert!(!shown.contains(CANARY));
            }
            Err(e) => assert_no_canary(&e),
        }
    }

    #[test]
    fn api_responses(status in 100u16..600, body in body(), challenge in "[ -~]{0,80}", retry in "[ -~]{0,20}") {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("{challenge}{CANARY}")) {
            headers.insert("www-authenticate", v);
        }
        if let Ok(v) = HeaderValue::from_str(&retry) {
            headers.insert("retry-after", v);
        }
        let status = StatusCode::from_u16(status).unwrap();
        if let Err(e) = classify_response(status, &headers, &body) {
            assert_no_canary(&e);
            if let Some(v) = e.validation() {
                prop_assert!(!v.to_string().contains(CANARY));
            }
        }
        let _ = retry_after(&headers);
        if let Err(e) = decode_json::<Vec<serde_json::Value>>(&body) {
            assert_no_canary(&e);
        }
    }

    #[test]
    fn challenges(header in "[ -~]{0,200}") {
        if let Some(c) = BearerChallenge::parse(&header) {
            let _ = c.cause();
        }
        let with_canary = format!("Bearer error=\"invalid_token\", error_description=\"{CANARY} {header}");
        let c = BearerChallenge::parse(&with_canary).unwrap();
        let shown = format!("{c:?}");
        prop_assert!(!shown.contains(CANARY));
    }

    #[test]
    fn callbacks(query in "[ -~]{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let config = AuthorizationCodeConfig::new(
            ClientIdentity::public("app"),
            Endpoint::parse("https://auth.example/authorize", InsecureLoopback::Deny).unwrap(),
            Endpoint::parse("https://auth.example/token", InsecureLoopback::Deny).unwrap(),
            Endpoint::parse("https://app.example/cb", InsecureLoopback::Deny).unwrap(),
        );
        let entropy: [u8; 64] = std::array::from_fn(|i| i as u8);
        let (_, pending) = start_authorization(&config, &entropy).unwrap();
        let lossy = String::from_utf8_lossy(&bytes);
        for input in [query.clone(), format!("https://app.example/cb?{query}"), lossy.into_owned(), format!("code={CANARY}&state={CANARY}&error_description={CANARY}&{query}")] {
            if let Err(rejected) = pending.check_callback(&input) {
                assert_no_canary(&rejected);
            }
        }
    }
}
