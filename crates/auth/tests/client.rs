//! The one client over a user's own transport: per-user clients sharing one transport and one
//! memory of completed authorizations, and the Flextell environment that has no default.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use helloflex_auth::*;
use helloflex_core::{CallbackError, ConfigError, Endpoint, Environment, Error, InsecureLoopback};
use support::{FakeServer, config};

fn flextell() -> Environment {
    Environment::custom("https://api.flextell.test", InsecureLoopback::Deny).unwrap()
}

#[test]
fn an_authorization_code_client_needs_its_own_environment() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let built = ClientBuilder::new(OwnBlocking(server))
        .authorization_code(config(), Arc::new(MemoryStore::new()))
        .build();
    assert!(matches!(built, Err(Error::Config(ConfigError::Missing(_)))), "{built:?}");
}

/// A setting that cannot work is refused when the client is built, whatever the transport
/// would have made of it (ureq dropped a bad User-Agent, reqwest failed to build): never
/// dropped in silence, and the error names the setting, not its value.
#[test]
fn settings_that_cannot_work_are_refused_by_name() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let builder = || {
        ClientBuilder::new(OwnBlocking(server.clone()))
            .environment(flextell())
            .client_credentials("id", helloflex_core::ClientSecret::new("secret"))
    };
    for ua in ["app/1\r\nX-Injected: 1", "app\n", "app\u{0}"] {
        let built = builder().user_agent(ua).build();
        let Err(Error::Config(ConfigError::Invalid { name, .. })) = &built else {
            panic!("{ua:?} was accepted: {built:?}");
        };
        assert_eq!(*name, "user_agent");
        assert!(!format!("{built:?}").contains("Injected"));
    }
    for timeouts in
        [Timeouts::uniform(Duration::ZERO), Timeouts::new(Duration::from_secs(1), Duration::ZERO)]
    {
        let built = builder().timeouts(timeouts).build();
        assert!(
            matches!(&built, Err(Error::Config(ConfigError::Invalid { name: "timeouts", .. }))),
            "{built:?}"
        );
    }
    let not_pem = ["/etc/ssl/ca.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n"];
    for pem in not_pem {
        let built = builder().root_certificates(pem).build();
        assert!(
            matches!(
                &built,
                Err(Error::Config(ConfigError::Invalid { name: "root_certificates", .. }))
            ),
            "{pem:?}: {built:?}"
        );
    }
    assert!(builder().user_agent("my-app/1.0 (ops@example.com)").build().is_ok());
    let ca = helloflex_testkit::tls::loopback_tls().ca;
    assert!(builder().root_certificates(ca).build().is_ok());
}

#[test]
fn users_share_the_transport_and_the_completed_authorizations() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let app = ClientBuilder::new(OwnBlocking(server.clone()))
        .environment(flextell())
        .authorization_code(config(), Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    let (alice_store, bob_store) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let alice = app.for_user(alice_store.clone()).unwrap();
    let bob = app.for_user(bob_store.clone()).unwrap();
    let (url, pending) = app.start_authorization().unwrap();
    let callback = server.approve(&url);
    let token = alice.complete_authorization(&pending, &callback).unwrap();
    assert_eq!(alice.token().unwrap().id(), token.id());
    assert!(alice_store.load().unwrap().record.is_some());
    // Alice's callback replayed into Bob's session: refused, no second exchange.
    let exchanged = server.token_requests.load(Ordering::SeqCst);
    let replay = bob.complete_authorization(&pending, &callback).unwrap_err();
    assert!(matches!(replay, Error::Callback(CallbackError::AlreadyCompleted)), "{replay:?}");
    assert_eq!(server.token_requests.load(Ordering::SeqCst), exchanged);
    // Bob has tokens of his own or none: never Alice's. No request was made, so no status.
    let none = bob.token().unwrap_err();
    assert!(matches!(
        none,
        Error::ReauthorizationRequired(helloflex_core::Reauthorization::NothingStored)
    ));
    assert_eq!(none.status(), None, "{none}");
    assert!(bob_store.load().unwrap().record.is_none());
}

#[test]
fn a_client_credentials_client_has_no_users() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let client = ClientBuilder::new(OwnBlocking(server))
        .client_credentials("id", helloflex_core::ClientSecret::new("secret"))
        .build()
        .unwrap();
    assert_eq!(client.base_url().as_str(), Environment::Sandbox.base_url().as_str());
    assert!(matches!(client.for_user(Arc::new(MemoryStore::new())), Err(Error::Usage(_))));
}

#[test]
fn a_blank_client_id_or_an_empty_secret_is_refused_when_built() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    for (id, secret) in [("", "s"), ("   ", "s"), ("id", "")] {
        let built = ClientBuilder::new(OwnBlocking(server.clone()))
            .client_credentials(id, helloflex_core::ClientSecret::new(secret))
            .build();
        assert!(matches!(built, Err(Error::Config(_))), "{id:?}/{secret:?}: {built:?}");
    }
}

/// A user's task carries the future of each call it awaits: that future stays small (an async
/// layer that kept a second copy of the call, or the core's answer across a wait, made it
/// 3 KB; it moved, and missed caches, on every call).
#[test]
fn an_async_call_is_a_small_future() {
    struct Never;
    #[async_trait::async_trait]
    impl AsyncTransport for Never {
        async fn send(&self, _: Request) -> Result<Response, helloflex_core::TransportError> {
            std::future::pending().await
        }
        async fn sleep(&self, _: Duration) {}
    }
    let client = ClientBuilder::new(OwnAsync(Arc::new(Never), None))
        .client_credentials("id", helloflex_core::ClientSecret::new("secret"))
        .build()
        .unwrap();
    let sent = client.get("news").query("a", "b").send();
    let size = std::mem::size_of_val(&sent);
    assert!(size <= 512, "the future of an API call is {size} bytes");
}

/// A transport is told TLS is not needed only when every origin the client sends to (the API
/// base, the token endpoint) is plain HTTP, so it can skip loading root certificates.
#[test]
fn a_transport_is_told_whether_any_endpoint_needs_tls() {
    /// Notes what the builder told it, over the fake server.
    struct Noting(Arc<FakeServer>, Arc<AtomicBool>);
    impl Connector for Noting {
        type Manager = BlockingTokenManager;
        fn connect(
            self,
            http: &HttpOptions,
            tokens: ManagerBuilder,
        ) -> Result<Self::Manager, Error> {
            self.1.store(http.needs_tls(), Ordering::Relaxed);
            OwnBlocking(self.0).connect(http, tokens)
        }
    }
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let needs_tls = |setup: &dyn Fn(ClientBuilder<Noting>) -> ClientBuilder<Noting>| {
        let told = Arc::new(AtomicBool::new(false));
        setup(ClientBuilder::new(Noting(server.clone(), told.clone()))).build().unwrap();
        told.load(Ordering::Relaxed)
    };
    let loopback =
        || Environment::custom("http://127.0.0.1:8080", InsecureLoopback::Allow).unwrap();
    let secret = || helloflex_core::ClientSecret::new("s");
    let https_token = Endpoint::parse("https://login.flextell.test/token", InsecureLoopback::Deny);
    let https_token = https_token.unwrap();
    let users = || Arc::new(MemoryStore::new());

    assert!(!needs_tls(&|b| b.environment(loopback()).client_credentials("id", secret())));
    assert!(needs_tls(&|b| b.client_credentials("id", secret())), "the sandbox");
    assert!(needs_tls(&|b| b
        .environment(loopback())
        .client_credentials("id", secret())
        .token_url(https_token.clone())));
    // The test configuration's token endpoint is HTTPS.
    assert!(needs_tls(&|b| b.environment(loopback()).authorization_code(config(), users())));
    assert!(needs_tls(&|b| b.environment(flextell()).authorization_code(config(), users())));
}
