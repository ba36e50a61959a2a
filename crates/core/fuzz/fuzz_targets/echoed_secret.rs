//! Excerpts and secret scrubbing: a token endpoint echoes the client secret inside arbitrary
//! text; the error must never show it, and nothing may panic. Input: `secret \0 text`.
#![no_main]
use helloflex_core::*;
use helloflex_core::machines::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(secret), Some(text)) = (parts.next(), parts.next()) else { return };
    let (Ok(secret), Ok(text)) = (std::str::from_utf8(secret), std::str::from_utf8(text)) else {
        return;
    };
    // Any text at all must be excerpted without a panic, within its bound.
    let excerpt = Excerpt::of_text(text, 64);
    assert!(excerpt.as_str().chars().count() <= 65);
    let _ = Excerpt::of_bytes(data);
    // The echo property, for secrets a server could echo by accident: printable ASCII without
    // spaces, long enough to be a secret. A secret with a bracket, or inside `[redacted]`, could
    // be spelled by the marker itself and its neighbours (`:[redact` after a `:`), which shows
    // nothing of the echo; such secrets are left out of the property.
    let printable = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b));
    let bracketed = secret.contains('[') || secret.contains(']');
    if secret.len() < 8 || !printable(secret) || bracketed || "[redacted]".contains(secret) {
        return;
    }
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return;
    }
    let config = ClientCredentialsConfig::new("id", ClientSecret::new(secret), &Environment::Sandbox);
    let Ok(request) = config.token_request() else { return };
    let mut exchange = TokenExchange::new(request, RetryPolicy::never(), 1);
    let now = std::time::Instant::now();
    let Poll::Send(_) = exchange.poll(now) else { return };
    let description = serde_json::to_string(&format!("{text}{secret}{text}")).unwrap_or_default();
    let body = format!(r#"{{"error":"invalid_client","error_description":{description}}}"#);
    let response = http::Response::builder().status(401).body(body.into_bytes()).unwrap_or_default();
    exchange.handle_response(now, response);
    if let Poll::Done(Err(Error::OAuth(error))) = exchange.poll(now) {
        let shown = error.description().unwrap_or_default();
        assert!(!shown.contains(secret), "the secret leaked: {shown}");
    }
});
