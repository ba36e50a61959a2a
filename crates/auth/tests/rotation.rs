//! The authorization-code flow and refresh with rotation, over a fake server that revokes a
//! token family on reuse: store before use, single flight, store failures, several processes.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helloflex_auth::*;
use helloflex_core::Error;
use helloflex_testkit::{Passthrough, StoreHooks, SwapCall};
use support::{FakeServer, config};

fn manager(
    server: &Arc<FakeServer>,
    store: Arc<dyn TokenStore>,
    clock: &Arc<ManualClock>,
) -> BlockingTokenManager {
    ManagerBuilder::authorization_code(config(), store)
        .clock(clock.clone())
        .blocking(server.clone())
}

fn authorize(manager: &BlockingTokenManager, server: &FakeServer) -> String {
    let (url, pending) = manager.start_authorization().unwrap();
    let callback = server.approve(&url);
    let token = manager.complete_authorization(&pending, &callback).unwrap();
    token.access_token().expose_secret().to_owned()
}

/// A store that records every write and can be told to fail.
type Recording = Passthrough<Writes>;

/// The writes a [`Recording`] store saw, and whether to fail the next ones.
#[derive(Debug, Default)]
struct Writes {
    writes: Mutex<Vec<String>>,
    fail: std::sync::atomic::AtomicBool,
}

impl StoreHooks for Writes {
    /// Records (and, told to, fails) the writes that put new tokens in; a claim or a marked
    /// authorization keeps the tokens as they were.
    fn swap(&self, call: SwapCall<'_>) -> Result<Swap, StoreError> {
        let current = call.inner.load()?.into_tokens().map(|t| t.access_token);
        let written = call.new.tokens.as_ref().map(|t| t.access_token.clone());
        if written.is_some() && written != current {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::new("write", StoreErrorKind::Refused, "disk full"));
            }
            if let Some(access) = written {
                self.writes.lock().unwrap().push(access.expose_secret().to_owned());
            }
        }
        call.pass()
    }
}

#[test]
fn code_flow_with_pkce_then_rotation_stored_before_use() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let store = Arc::new(Recording::default());
    let clock = Arc::new(ManualClock::new());
    let m = manager(&server, store.clone(), &clock);
    let first = authorize(&m, &server);
    assert_eq!(store.hooks.writes.lock().unwrap().as_slice(), std::slice::from_ref(&first));

    clock.advance(Duration::from_secs(61));
    let second = m.token().unwrap().access_token().expose_secret().to_owned();
    assert_ne!(first, second);
    // The rotated set reached the store before this caller got the new access token.
    assert_eq!(store.hooks.writes.lock().unwrap().last().unwrap(), &second);
    let stored = store.load().unwrap().into_tokens().unwrap();
    let refreshed_with = server.refresh_requests.lock().unwrap().clone();
    assert_eq!(refreshed_with.len(), 1);
    assert_ne!(stored.refresh_token.unwrap().expose_secret(), refreshed_with[0], "rotation stored");
}

#[test]
fn concurrent_refreshes_make_one_request() {
    let server = Arc::new(FakeServer::new(Duration::from_millis(25), 60));
    let clock = Arc::new(ManualClock::new());
    let m = manager(&server, Arc::new(MemoryStore::new()), &clock);
    authorize(&m, &server);
    clock.advance(Duration::from_secs(61));
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || m.token())
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(server.refresh_requests.lock().unwrap().len(), 1);
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
}

#[test]
fn store_failure_keeps_new_tokens_and_never_resends_the_burnt_one() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let store = Arc::new(Recording::default());
    let clock = Arc::new(ManualClock::new());
    let m = manager(&server, store.clone(), &clock);
    authorize(&m, &server);
    store.hooks.fail.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(61));
    let kept = m.token().unwrap();
    // The failed write is reported, typed, and the new set kept in memory.
    assert!(matches!(
        m.store_error(),
        Some(StoreError { op: "write", kind: StoreErrorKind::Refused, .. })
    ));
    // It is written back as soon as the store takes it: the burnt token is never sent again.
    store.hooks.fail.store(false, Ordering::SeqCst);
    for _ in 0..400 {
        if m.store_error().is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(m.store_error().is_none(), "written back once the store took writes again");
    assert_eq!(store.load().unwrap().into_tokens().unwrap().access_token, *kept.access_token());
    clock.advance(Duration::from_secs(61));
    let latest = m.token().unwrap();
    assert_ne!(kept.access_token(), latest.access_token());
    let sent = server.refresh_requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], sent[1], "the burnt refresh token was sent again");
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
    assert_eq!(store.load().unwrap().into_tokens().unwrap().access_token, *latest.access_token());
    assert!(m.store_error().is_none());
}

#[test]
fn invalid_grant_means_reauthorize_without_a_retry_loop() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new());
    let m = manager(&server, store.clone(), &clock);
    authorize(&m, &server);
    // Another client spends our refresh token behind our back.
    let stolen = store.load().unwrap().into_tokens().unwrap().refresh_token.unwrap();
    let request = config().refresh_request(&stolen).unwrap().into_request();
    let _ = server.send(request).unwrap();
    clock.advance(Duration::from_secs(61));
    let before = server.token_requests.load(Ordering::SeqCst);
    let error = m.token().unwrap_err();
    assert!(error.requires_reauthorization(), "{error:?}");
    assert!(m.token().unwrap_err().requires_reauthorization());
    assert_eq!(server.token_requests.load(Ordering::SeqCst), before + 1, "no retry loop");
}

#[test]
fn two_processes_on_one_file_lose_no_rotation() {
    let dir = std::env::temp_dir().join(format!("helloflex-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let _ = std::fs::remove_file(&path);
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let a = manager(&server, Arc::new(FileStore::new(&path, support::keys())), &clock);
    authorize(&a, &server);
    // Process B starts from the same file, holding the same refresh token.
    let b = manager(&server, Arc::new(FileStore::new(&path, support::keys())), &clock);
    clock.advance(Duration::from_secs(61));
    let from_a = a.token().unwrap();
    // B's refresh token was rotated away by A: B adopts A's set instead of reusing it.
    let from_b = b.token().unwrap();
    assert_eq!(from_a.access_token(), from_b.access_token());
    assert_eq!(server.refresh_requests.lock().unwrap().len(), 1);
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_store_is_private_atomic_and_refuses_corruption() {
    let dir = std::env::temp_dir().join(format!("helloflex-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let m = manager(&server, Arc::new(FileStore::new(&path, support::keys())), &clock);
    authorize(&m, &server);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty());
    // A restart reads the same tokens back (expiry is wall-clock).
    let again = manager(&server, Arc::new(FileStore::new(&path, support::keys())), &clock);
    assert_eq!(again.token().unwrap().access_token(), m.token().unwrap().access_token());
    // A corrupt file is an error, and is left as it was.
    std::fs::write(&path, b"{\"access_token\": tru").unwrap();
    let e = manager(&server, Arc::new(FileStore::new(&path, support::keys())), &clock)
        .token()
        .unwrap_err();
    assert!(matches!(e, Error::Store(_)), "{e:?}");
    assert!(!e.to_string().contains("tru"));
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"access_token\": tru");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_state_callback_keeps_the_flow_alive() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 60));
    let clock = Arc::new(ManualClock::new());
    let m = manager(&server, Arc::new(MemoryStore::new()), &clock);
    let (url, pending) = m.start_authorization().unwrap();
    let error = m.complete_authorization(&pending, "code=x&state=forged").unwrap_err();
    assert!(matches!(error, Error::Callback(helloflex_core::CallbackError::StateMismatch)));
    assert!(m.complete_authorization(&pending, "").is_err(), "no state at all");
    let callback = server.approve(&url);
    assert!(m.complete_authorization(&pending, &callback).is_ok());
    // Delivered twice (a reload): refused locally, the code is not exchanged again.
    let before = server.token_requests.load(Ordering::SeqCst);
    let again = m.complete_authorization(&pending, &callback).unwrap_err();
    assert!(matches!(again, Error::Callback(helloflex_core::CallbackError::AlreadyCompleted)));
    assert_eq!(server.token_requests.load(Ordering::SeqCst), before);
}
