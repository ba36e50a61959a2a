//! The authorization-code grant (Flextell), on every transport: a forged, repeated or denied
//! callback refused, the code exchanged once and never replayed, refresh tokens rotated and
//! stored, a refresh in flight stored before `close` returns, token endpoint redirects not
//! followed, and load on 1-second tokens without a storm or a reuse.

mod support;

use support::*;

fn authorization_code_flow<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(1), Some(WEB_APP.0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store.clone());
    // Before authorizing there is nothing to refresh with.
    assert!(h.send(ApiRequest::get("news")).unwrap_err().requires_reauthorization());
    let (url, pending) = h.start_authorization();
    // A forged callback is refused and the pending authorization is not consumed by it.
    let forged = h.complete_authorization(&pending, "code=x&state=forged");
    assert!(matches!(forged, Err(Error::Callback(CallbackError::StateMismatch))));
    let callback = approve(&url);
    h.complete_authorization(&pending, &callback).unwrap();
    // The same callback again (a reload, a double submit): refused locally, no second exchange.
    let again = h.complete_authorization(&pending, &callback);
    assert!(matches!(again, Err(Error::Callback(CallbackError::AlreadyCompleted))), "{again:?}");
    assert_eq!(emu.counters().token_requests_for_grant("authorization_code"), 1);
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    let first = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200, "refreshed unnoticed");
    let second = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    assert_ne!(first, second, "the refresh token rotated and the new one was stored");
    assert_eq!(emu.counters().refresh_token_reuse, 0);
    assert_eq!(emu.counters().token_requests_for_grant("refresh_token"), 1);
    // Denied consent surfaces as a typed error.
    emu.set_consent(helloflex_emulator::Consent::AutoDeny);
    let (url, pending) = h.start_authorization();
    let denied = h.complete_authorization(&pending, &approve(&url));
    assert!(matches!(denied, Err(Error::Callback(CallbackError::Denied { .. }))), "{denied:?}");
}

/// A refresh ahead of expiry runs in the background while the call goes on with the old
/// token; closing waits for it, so the set the server rotated is in the store when `close`
/// returns, and a process exiting then loses nothing.
fn closing_stores_a_refresh_in_flight<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(10), Some(WEB_APP.0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store.clone());
    let (url, pending) = h.start_authorization();
    h.complete_authorization(&pending, &approve(&url)).unwrap();
    #[allow(clippy::disallowed_methods)] // a test's own timing
    let signed_in = std::time::Instant::now();
    let first = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    // Into the refresh window: the last 10-15% of the token's life (from 9 s at the latest),
    // before its last 5% (9.5 s).
    std::thread::sleep(Duration::from_millis(9150).saturating_sub(signed_in.elapsed()));
    // The server rotates at once and drips its answer for about a second.
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::SlowDrip { ms_per_byte: 4 }).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    assert!(!h.close(Duration::ZERO), "the call left its refresh running in the background");
    assert!(h.close(Duration::from_secs(10)), "nothing left in flight");
    let stored = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    assert_ne!(first, stored, "the rotated set was stored before close returned");
    assert_eq!(emu.counters().token_requests_for_grant("refresh_token"), 1);
    assert_eq!(emu.counters().refresh_token_reuse, 0);
}

fn token_endpoint_redirects_and_resets<H: Harness>() {
    let emu = emulator();
    let elsewhere = emulator();
    for status in [302, 307, 308] {
        let h = H::build(&emu, Setup::default());
        emu.clear_faults();
        emu.add_fault(Fault::on_path(
            "/oauth2/token",
            FaultKind::Redirect {
                status,
                location: format!("{}/oauth2/token", elsewhere.base_url()),
            },
        ));
        let e = h.send(ApiRequest::get("news"));
        assert!(
            matches!(e, Err(Error::Protocol(ProtocolError::UnexpectedResponse { .. }))),
            "{status}: {e:?}"
        );
    }
    assert!(elsewhere.counters().requests.is_empty(), "the secret was never sent elsewhere");
    emu.clear_faults();
    // A code exchange cut after it was sent is not replayed (the code is single-use).
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store);
    let (url, pending) = h.start_authorization();
    let callback = approve(&url);
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Drop).times(1));
    let before = emu.counters().requests.get("POST /oauth2/token").copied().unwrap_or(0);
    let result = h.complete_authorization(&pending, &callback);
    assert!(matches!(result, Err(Error::Transport(_))), "{result:?}");
    assert_eq!(
        emu.counters().requests["POST /oauth2/token"] - before,
        1,
        "sent once, never replayed"
    );
}

fn load_on_one_second_tokens<H: Harness>() {
    let emu = emulator();
    emu.set_token_lifetime(Duration::from_secs(1), Some(WEB_APP.0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let h = H::build_user(&emu, flextell_config(&emu), store);
    let (url, pending) = h.start_authorization();
    h.complete_authorization(&pending, &approve(&url)).unwrap();
    let started = SystemClock.now();
    let errors = h.load(64, 157, "news"); // 10,048 calls
    let elapsed = started.elapsed();
    assert!(
        errors.is_empty(),
        "{} errors reached callers, first: {:?}",
        errors.len(),
        errors.first()
    );
    let counters = emu.counters();
    assert_eq!(counters.refresh_token_reuse, 0);
    // About one refresh per 0.85-0.9 s of 1 s tokens (refreshed 10-15% early), never a storm.
    let refreshes = counters.token_requests_for_grant("refresh_token");
    let expected = elapsed.as_secs_f64() / 0.85;
    assert!((refreshes as f64) <= expected + 2.0, "{refreshes} refreshes in {elapsed:?}");
    eprintln!("load: 10,048 calls in {elapsed:?}, {refreshes} refreshes, 0 errors, 0 reuse events");
}

support::over_transports!(
    authorization_code_flow,
    closing_stores_a_refresh_in_flight,
    token_endpoint_redirects_and_resets,
    load_on_one_second_tokens,
);
