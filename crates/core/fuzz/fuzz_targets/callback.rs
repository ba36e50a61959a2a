//! Authorization callbacks against a pending authorization.
#![no_main]
use helloflex_core::*;
use helloflex_core::machines::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let e = |u: &str| Endpoint::parse(u, InsecureLoopback::Deny).ok();
    let (Some(a), Some(t), Some(r)) = (e("https://auth.example/authorize"), e("https://auth.example/token"), e("https://app.example/cb")) else {
        return;
    };
    let config = AuthorizationCodeConfig::new(ClientIdentity::public("app"), a, t, r).with_issuer("https://auth.example");
    let entropy: [u8; 64] = std::array::from_fn(|i| i as u8);
    if let Ok((_, pending)) = start_authorization(&config, &entropy) {
        let _ = pending.check_callback(query);
    }
});
