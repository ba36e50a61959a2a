//! `WWW-Authenticate` challenges.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        if let Some(challenge) = helloflex_core::BearerChallenge::parse(header) {
            let _ = challenge.cause();
            let _ = challenge.is_insufficient_scope();
        }
    }
});
