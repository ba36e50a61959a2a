//! A canary secret planted in every secret slot: absent from TRACE-level logs of every flow,
//! from `Debug` of the managers and stores, and from every error's `Display`, `Debug` and
//! `source()` chain.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helloflex_auth::*;
use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment, TransportError};
use support::{CANARY_SECRET, FakeServer, config};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Answers token requests with the canary as access token, then fails.
struct Leaky;

impl BlockingTransport for Leaky {
    fn send(&self, _: Request) -> Result<Response, TransportError> {
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"bad secret {CANARY_SECRET}"}}"#
        );
        Ok(http::Response::builder().status(401).body(body.into_bytes()).unwrap())
    }
}

#[test]
fn canary_never_appears() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        // Spans are logged as they close, with their fields: those must not show it either.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut shown = String::new();
    // Global, not scoped: under `cargo test` the other test runs on another thread at the same
    // time and a scoped subscriber lost lines to that race (nextest runs one process per test).
    // What the other test logs is captured too, and must not show the canary either.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    {
        // Authorization-code flow with rotation, the canary as the client secret.
        let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
        let clock = Arc::new(ManualClock::new());
        let m = ManagerBuilder::authorization_code(config(), Arc::new(MemoryStore::new()))
            .clock(clock.clone())
            .blocking(server.clone());
        let (url, pending) = m.start_authorization().unwrap();
        shown.push_str(&format!("{pending:?} {m:?}"));
        m.complete_authorization(&pending, &server.approve(&url)).unwrap();
        clock.advance(Duration::from_secs(61));
        let token = m.token().unwrap();
        shown.push_str(&format!("{token:?}"));

        // Client credentials whose server echoes the secret back in an error.
        let cc = ClientCredentialsConfig::new(
            "id",
            ClientSecret::new(CANARY_SECRET),
            &Environment::Sandbox,
        );
        shown.push_str(&format!("{cc:?}"));
        let m = BlockingTokenManager::client_credentials(cc, Arc::new(Leaky));
        let error = m.token().unwrap_err();
        shown.push_str(&format!("{error} {error:?}"));
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
        while let Some(s) = source {
            shown.push_str(&s.to_string());
            source = s.source();
        }
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("refresh token grant succeeded"), "the flows were logged: {logs}");
    // The exchange span is recorded into when a subscriber wants it (and only then).
    assert!(logs.contains(r#"exchange{method=POST path="/token" attempt=1 status=200}"#), "{logs}");
    assert!(!logs.contains(CANARY_SECRET), "{logs}");
    assert!(!shown.contains(CANARY_SECRET), "{shown}");
}

/// Every public type a user can reach during a code exchange, a refresh and their failures,
/// formatted with `{:?}` (and `{}` where it has one), shows no secret: not the client secret
/// (raw, percent-encoded or inside base64), nor any token or code the server issued.
#[test]
fn no_reachable_type_shows_a_secret() {
    use base64::Engine as _;
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new());
    let environment =
        Environment::custom("https://api.flextell.test", helloflex_core::InsecureLoopback::Deny)
            .unwrap();
    let builder = ClientBuilder::new(OwnBlocking(server.clone()))
        .environment(environment)
        .authorization_code(config(), store.clone())
        .clock(clock.clone());
    let mut shown = format!("{builder:?}");
    let client = builder.build().unwrap();
    let (url, pending) = client.start_authorization().unwrap();
    shown += &format!("{pending:?} {client:?}");
    let callback = server.approve(&url);
    let forged = client.complete_authorization(&pending, "code=x&state=forged").unwrap_err();
    shown += &format!("{forged} {forged:?}");
    let token = client.complete_authorization(&pending, &callback).unwrap();
    let again = client.complete_authorization(&pending, &callback).unwrap_err();
    shown += &format!("{token:?} {client:?} {again} {again:?} {store:?}");
    let first = store.load().unwrap();
    shown += &format!("{first:?}");
    let first = first.into_tokens().unwrap();
    clock.advance(Duration::from_secs(61));
    let refreshed = client.token().unwrap();
    let second = store.load().unwrap().into_tokens().unwrap();
    shown += &format!("{refreshed:?} {second:?} {client:?} {:?}", client.store_error());
    // A refresh the server refuses (the family revoked behind our back).
    let spent = second.refresh_token.clone().unwrap();
    let _ =
        BlockingTransport::send(&*server, config().refresh_request(&spent).unwrap().into_request());
    let _ =
        BlockingTransport::send(&*server, config().refresh_request(&spent).unwrap().into_request());
    clock.advance(Duration::from_secs(61));
    let refused = client.token().unwrap_err();
    shown += &format!("{refused} {refused:?}");

    let mut secrets = vec![
        CANARY_SECRET.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("app:{CANARY_SECRET}")),
        code_of(&callback),
    ];
    for tokens in [&first, &second] {
        secrets.push(tokens.access_token.expose_secret().to_owned());
        secrets.push(tokens.refresh_token.as_ref().unwrap().expose_secret().to_owned());
    }
    for secret in secrets {
        assert!(!shown.contains(&secret), "{secret:?} shown in: {shown}");
    }
}

fn code_of(callback: &str) -> String {
    callback.split(['?', '&']).find_map(|p| p.strip_prefix("code=")).unwrap().to_owned()
}

/// A store failure shows where and why, never what: a token file that is not JSON, one that is
/// JSON but not a record, one sealed under another key, each holding the canary, fail with a
/// `StoreError` whose `Display` and `Debug` (and those of the `Error` a caller sees) name the
/// file and the problem, not the canary.
#[test]
fn a_store_failure_names_no_stored_value() {
    let dir = std::env::temp_dir().join(format!("helloflex-secrets-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens");
    let canary = format!(r#"{{"access_token":"{CANARY_SECRET}","refresh_token":"#);
    let record = format!(r#"["{CANARY_SECRET}"]"#);
    let mut shown = String::new();
    for (content, kind) in
        [(canary.clone(), StoreErrorKind::Corrupt), (record, StoreErrorKind::Corrupt)]
    {
        std::fs::write(&path, content).unwrap();
        let error = FileStore::plaintext_insecure(&path).load().unwrap_err();
        assert_eq!(error.kind, kind, "{error:?}");
        let caller = helloflex_core::Error::from(error.clone());
        shown += &format!("{error} {error:?} {caller} {caller:?}");
    }
    let other = FileStore::new(&path, KeyRing::new(Key::generate("k2").unwrap()));
    let sealed = KeyRing::new(Key::generate("k1").unwrap()).seal(canary.as_bytes(), b"x").unwrap();
    std::fs::write(&path, sealed).unwrap();
    let error = other.load().unwrap_err();
    assert_eq!(error.kind, StoreErrorKind::DoesNotOpen(OpenError::UnknownKey));
    shown += &format!("{error} {error:?}");
    assert!(shown.contains("tokens"), "the file is named: {shown}");
    assert!(!shown.contains(CANARY_SECRET), "{shown}");
    std::fs::remove_dir_all(&dir).unwrap();
}
