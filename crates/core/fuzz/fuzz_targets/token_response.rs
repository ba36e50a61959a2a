//! Token endpoint responses: any status, any body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (100 + u16::from(*s) * 2, rest),
        None => (200, data),
    };
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(token) = helloflex_core::parse_token_response(status, body) {
        // Whatever parses must be safe to put in a header.
        assert!(helloflex_core::machines::bearer_header(&token.access_token).is_ok());
    }
});
