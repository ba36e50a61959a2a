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
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut shown = String::new();
    tracing::subscriber::with_default(subscriber, || {
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
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("refresh token grant succeeded"), "the flows were logged: {logs}");
    assert!(!logs.contains(CANARY_SECRET), "{logs}");
    assert!(!shown.contains(CANARY_SECRET), "{shown}");
}
