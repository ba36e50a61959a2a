//! API responses: status, `WWW-Authenticate`, `Retry-After`, `Allow` and body, then JSON decoding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let (Some(head), Some(challenge), Some(retry), Some(body)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let status = head.first().map_or(400, |s| 200 + u16::from(*s) * 2);
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let mut headers = http::HeaderMap::new();
    for (name, value) in [("www-authenticate", challenge), ("retry-after", retry), ("allow", retry)] {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let _ = helloflex_core::classify_response(status, &headers, body);
    let _ = helloflex_core::machines::retry_after(&headers);
    let _ = helloflex_core::decode_json::<serde_json::Value>(body);
});
