//! Client-credentials tokens, on every transport: an expired token is replaced without the
//! caller noticing, and a herd of concurrent callers makes one token request.

mod support;

use support::*;

fn expired_token_is_refreshed_without_the_caller_noticing<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(1), None);
    let h = H::build(&emu, Setup::default());
    for _ in 0..6 {
        assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    let tokens = emu.counters().total_token_requests();
    assert!((2..=4).contains(&tokens), "{tokens} token requests over ~1.8 s of 1 s tokens");
}

fn herd_makes_one_token_request<H: Harness>() {
    let emu = emulator();
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Latency { ms: 25 }));
    let h = H::build(&emu, Setup::default());
    let tokens = h.herd(H::HERD);
    let first = tokens[0].as_ref().unwrap().clone();
    assert!(tokens.iter().all(|t| t.as_ref().unwrap() == &first));
    assert_eq!(emu.counters().total_token_requests(), 1);
}

support::over_transports!(
    expired_token_is_refreshed_without_the_caller_noticing,
    herd_makes_one_token_request,
);
