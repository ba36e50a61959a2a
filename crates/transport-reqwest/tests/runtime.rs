//! The async client and the tokio runtime its token requests run on: never found by chance.
//! Built outside a runtime it refuses, naming the fix; handed one, it works from anywhere; its
//! runtime gone, a token request fails at once, typed, rather than when a caller's timeout
//! gives up. Against the emulator on loopback.

use std::time::Duration;

use helloflex_core::{
    ClientSecret, ConfigError, Environment, Error, InsecureLoopback, Interruption,
};
use helloflex_emulator::{DEMO_CLIENT, Emulator, EmulatorConfig};
use helloflex_transport_reqwest::{Client, ClientBuilder, Reqwest};

fn emulator() -> Emulator {
    helloflex_emulator::start(EmulatorConfig::default()).unwrap()
}

fn builder(emulator: &Emulator) -> ClientBuilder {
    Client::builder()
        .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow).unwrap())
        .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
}

fn ring() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

/// Outside a runtime, with none handed in: a configuration error whose message says what to
/// do, not a client that would run its token requests inside its callers' futures.
#[test]
fn building_outside_a_runtime_is_a_typed_error_that_names_the_fix() {
    let emu = emulator();
    let built = builder(&emu).build();
    let Err(Error::Config(error @ ConfigError::NoRuntime { .. })) = &built else {
        panic!("expected ConfigError::NoRuntime, got {built:?}");
    };
    let message = error.to_string();
    for fix in ["inside the tokio runtime", "async fn main", "block_on", "with_runtime(handle)"] {
        assert!(message.contains(fix), "{fix:?} is not named in: {message}");
    }
    // A client of your own counts too: it is the runtime that is missing.
    // (Over ring, with no roots: without the feature `aws-lc-rs` reqwest has no provider.)
    let tls = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let yours = reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap();
    let own = builder(&emu).connector(Reqwest::with_client(yours)).build();
    assert!(matches!(own, Err(Error::Config(ConfigError::NoRuntime { .. }))), "{own:?}");
    assert_eq!(emu.counters().total_token_requests(), 0);
}

/// Handed a runtime, a client built outside any (a `static`, before the runtime starts) works
/// when called from inside another one: its token request runs on the one handed in.
#[test]
fn a_client_handed_a_runtime_works_from_outside_and_inside() {
    let emu = emulator();
    let tokens = runtime();
    let client = builder(&emu)
        .connector(Reqwest::default().with_runtime(tokens.handle().clone()))
        .build()
        .expect("built outside a runtime, with one handed in");
    // Called on a runtime of its own (a `#[tokio::test]`, a web framework's).
    let callers = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let news = callers.block_on(async { client.get("news").send().await }).unwrap();
    assert_eq!(news.status(), 200);
    // And on the one handed in.
    let again = tokens.block_on(async { client.get("news").send().await }).unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(emu.counters().total_token_requests(), 1);
}

/// The runtime a client was built in was dropped (a `#[tokio::test]` that built a shared
/// client and ended): the next token request fails at once, typed, each time, instead of
/// waiting for a task that never runs. A client built on a live runtime works.
#[test]
fn a_client_whose_runtime_was_dropped_fails_at_once() {
    let emu = emulator();
    let first = runtime();
    let client = first.block_on(async { builder(&emu).build() }).unwrap();
    drop(first);
    let live = runtime();
    for attempt in 0..3 {
        let answer = live.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), client.get("news").send()).await
        });
        let error = answer.expect("waited for a token request that never runs").unwrap_err();
        assert!(
            matches!(error, Error::Interrupted(Interruption::RuntimeShutDown)),
            "attempt {attempt}: {error:?}"
        );
        assert!(error.to_string().contains("runtime"), "{error}");
    }
    assert_eq!(emu.counters().total_token_requests(), 0);
    let rebuilt = live.block_on(async { builder(&emu).build() }).unwrap();
    let news = live.block_on(async { rebuilt.get("news").send().await }).unwrap();
    assert_eq!(news.status(), 200);
}
