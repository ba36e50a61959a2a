//! Token managers over mocked transports: single flight under contention, expiry, cancellation,
//! 401 invalidation. Latency is added to the token endpoint: loopback-fast answers hide races.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use helloflex_auth::*;
use helloflex_core::machines::ApiCall;
use helloflex_core::{
    ApiRequest, ClientCredentialsConfig, ClientSecret, Environment, Error, Interruption,
    RetryPolicy, TransportError,
};
use mockall::mock;

mod support;

mock! {
    pub Blocking {}
    impl BlockingTransport for Blocking {
        fn send(&self, request: Request) -> Result<Response, TransportError>;
        fn sleep(&self, duration: Duration);
    }
}

mock! {
    pub Async {}
    #[async_trait]
    impl AsyncTransport for Async {
        async fn send(&self, request: Request) -> Result<Response, TransportError>;
        async fn sleep(&self, duration: Duration);
    }
}

fn config() -> ClientCredentialsConfig {
    ClientCredentialsConfig::new("id", ClientSecret::new("secret"), &Environment::Sandbox)
}

fn token_body(n: usize, lifetime: u64) -> Response {
    http::Response::new(
        format!(r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":{lifetime}}}"#)
            .into_bytes(),
    )
}

fn is_token_request(request: &Request) -> bool {
    request.uri().path() == "/oauth2/token"
}

#[test]
fn sixty_four_threads_cold_cache_make_one_token_request() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut transport = MockBlocking::new();
    let seen = Arc::clone(&count);
    transport.expect_send().returning(move |request| {
        assert!(is_token_request(&request));
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(Duration::from_millis(25));
        Ok(token_body(n, 3600))
    });
    let manager = BlockingTokenManager::client_credentials(config(), Arc::new(transport));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let m = manager.clone();
            std::thread::spawn(move || {
                m.token().map(|t| t.access_token().expose_secret().to_owned())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), "t1");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn at_expiry_one_request_again_and_old_token_served_meanwhile() {
    let clock = Arc::new(ManualClock::new());
    let count = Arc::new(AtomicUsize::new(0));
    let mut transport = MockBlocking::new();
    let seen = Arc::clone(&count);
    transport
        .expect_send()
        .returning(move |_| Ok(token_body(seen.fetch_add(1, Ordering::SeqCst) + 1, 60)));
    let manager = ManagerBuilder::client_credentials(config())
        .clock(clock.clone())
        .blocking(Arc::new(transport));
    assert_eq!(manager.token().unwrap().access_token().expose_secret(), "t1");
    // Past expiry: 64 threads, one fetch.
    clock.advance(Duration::from_secs(61));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let m = manager.clone();
            std::thread::spawn(move || m.token().unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().access_token().expose_secret(), "t2");
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn unauthorized_invalidates_and_replays_once() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut transport = MockBlocking::new();
    let (t, c) = (Arc::clone(&tokens), Arc::clone(&calls));
    transport.expect_send().returning(move |request| {
        if is_token_request(&request) {
            return Ok(token_body(t.fetch_add(1, Ordering::SeqCst) + 1, 3600));
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            assert_eq!(request.headers()["authorization"], "Bearer t1");
            return Ok(http::Response::builder()
                .status(401)
                .header("www-authenticate", "Bearer error=\"invalid_token\"")
                .body(Vec::new())
                .unwrap());
        }
        assert_eq!(request.headers()["authorization"], "Bearer t2");
        Ok(http::Response::new(b"[]".to_vec()))
    });
    let manager = BlockingTokenManager::client_credentials(config(), Arc::new(transport));
    let response = manager
        .call(ApiCall::new(
            ApiRequest::get("news"),
            Environment::Sandbox.base_url(),
            RetryPolicy::default(),
            1,
        ))
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn fetch_failure_reaches_every_waiter_as_a_typed_error() {
    let mut transport = MockBlocking::new();
    transport.expect_send().returning(|_| {
        Ok(http::Response::builder()
            .status(401)
            .body(br#"{"error":"invalid_client"}"#.to_vec())
            .unwrap())
    });
    let manager = BlockingTokenManager::client_credentials(config(), Arc::new(transport));
    let error = manager.token().unwrap_err();
    assert!(matches!(error, Error::OAuth(_)), "{error:?}");
    // Backing off: the next caller fails fast with the same error, no new request.
    assert!(matches!(manager.token(), Err(Error::OAuth(_))));
}

/// An async transport with latency on the token endpoint, counting token requests.
struct Slow {
    tokens: AtomicUsize,
    latency: Duration,
}

#[async_trait]
impl AsyncTransport for Slow {
    async fn send(&self, _request: Request) -> Result<Response, TransportError> {
        let n = self.tokens.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.latency).await;
        Ok(token_body(n, 3600))
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_cold_cache_make_one_token_request() {
    let transport =
        Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_millis(25) });
    let manager = AsyncTokenManager::client_credentials(config(), transport.clone());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.token().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().access_token().expose_secret(), "t1");
    }
    assert_eq!(transport.tokens.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_fetch_does_not_wedge_the_others() {
    let transport =
        Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_millis(200) });
    let manager = AsyncTokenManager::client_credentials(config(), transport.clone());
    // The first caller takes the ticket and is cancelled mid-request.
    let first = tokio::time::timeout(Duration::from_millis(20), manager.token()).await;
    assert!(first.is_err());
    // The next caller is not stuck behind the ticket (its deadline is minutes away): with no
    // runtime it resumes the request the first one sent, rather than sending another.
    let token = tokio::time::timeout(Duration::from_secs(5), manager.token())
        .await
        .expect("wedged")
        .unwrap();
    assert_eq!(token.access_token().expose_secret(), "t1");
    assert_eq!(transport.tokens.load(Ordering::SeqCst), 1, "the request was sent again");
}

#[tokio::test]
async fn mocked_async_transport_and_send_futures() {
    let mut transport = MockAsync::new();
    transport.expect_send().times(1).returning(|_| Ok(token_body(1, 3600)));
    let manager = AsyncTokenManager::client_credentials(config(), Arc::new(transport));
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let token = assert_send(manager.token()).await.unwrap();
    assert_eq!(token.access_token().expose_secret(), "t1");
    assert_eq!(manager.token().await.unwrap().id(), token.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_at_expiry_make_one_token_request() {
    let clock = Arc::new(ManualClock::new());
    let transport =
        Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_millis(25) });
    let manager = ManagerBuilder::client_credentials(config())
        .clock(clock.clone())
        .nonblocking(transport.clone(), None);
    assert_eq!(manager.token().await.unwrap().access_token().expose_secret(), "t1");
    clock.advance(Duration::from_secs(3601));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.token().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().access_token().expose_secret(), "t2");
    }
    assert_eq!(transport.tokens.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_runtime_a_dropped_fetch_still_lands_as_the_one_request() {
    let transport =
        Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_millis(200) });
    let runtime: Arc<dyn AsyncRuntime> =
        Arc::new(support::Tokio(tokio::runtime::Handle::current()));
    let manager =
        ManagerBuilder::client_credentials(config()).nonblocking(transport.clone(), Some(runtime));
    for delay_ms in [0, 1, 20, 100] {
        let dropped = tokio::time::timeout(Duration::from_millis(delay_ms), manager.token()).await;
        assert!(dropped.is_err(), "dropped at {delay_ms} ms");
    }
    // The fetch the first caller started ran on, detached: its token is the one served.
    let token = manager.token().await.unwrap();
    assert_eq!(token.access_token().expose_secret(), "t1");
    assert_eq!(transport.tokens.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_runtime_a_fetch_dropped_after_every_poll_still_lands_once() {
    for k in 0..10 {
        let transport =
            Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_millis(20) });
        let runtime: Arc<dyn AsyncRuntime> =
            Arc::new(support::Tokio(tokio::runtime::Handle::current()));
        let manager = ManagerBuilder::client_credentials(config())
            .nonblocking(transport.clone(), Some(runtime));
        let mut caller = Box::pin(manager.token());
        for _ in 0..k {
            let finished = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(caller.as_mut().poll(cx).is_ready())
            })
            .await;
            if finished {
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(caller);
        let token = manager.token().await.unwrap();
        assert_eq!(token.access_token().expose_secret(), "t1", "k={k}");
        assert_eq!(transport.tokens.load(Ordering::SeqCst), 1, "k={k}: one request");
    }
}

/// A runtime that has shut down runs no token request: its task is dropped unstarted, and the
/// callers hear so at once, typed, rather than waiting out the ticket's deadline (minutes) for
/// a task that never runs. Rebuilt on a live runtime, the manager works.
#[test]
fn a_dead_runtime_fails_callers_at_once() {
    let gone = tokio::runtime::Runtime::new().unwrap();
    let runtime: Arc<dyn AsyncRuntime> = Arc::new(support::Tokio(gone.handle().clone()));
    drop(gone);
    let transport =
        Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_millis(20) });
    let manager =
        ManagerBuilder::client_credentials(config()).nonblocking(transport.clone(), Some(runtime));
    let live = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for attempt in 0..3 {
        let answer = live.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), manager.token()).await
        });
        let error = answer.expect("the caller waited for a task that never runs").unwrap_err();
        assert!(
            matches!(error, Error::Interrupted(Interruption::RuntimeShutDown)),
            "{attempt}: {error:?}"
        );
    }
    assert_eq!(transport.tokens.load(Ordering::SeqCst), 0);
    let runtime: Arc<dyn AsyncRuntime> = Arc::new(support::Tokio(live.handle().clone()));
    let manager =
        ManagerBuilder::client_credentials(config()).nonblocking(transport.clone(), Some(runtime));
    assert_eq!(live.block_on(manager.token()).unwrap().access_token().expose_secret(), "t1");
}

/// A runtime shut down under a request in flight: the callers waiting for it on another
/// runtime hear at once too (the ticket is given back, the next attempt cannot start).
#[test]
fn a_runtime_shut_down_mid_request_fails_the_waiters_at_once() {
    let dying =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let runtime: Arc<dyn AsyncRuntime> = Arc::new(support::Tokio(dying.handle().clone()));
    let transport =
        Arc::new(Slow { tokens: AtomicUsize::new(0), latency: Duration::from_secs(30) });
    let manager =
        ManagerBuilder::client_credentials(config()).nonblocking(transport.clone(), Some(runtime));
    let live =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let waiter = live.spawn({
        let manager = manager.clone();
        async move { manager.token().await }
    });
    for _ in 0..2000 {
        if transport.tokens.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(transport.tokens.load(Ordering::SeqCst), 1, "the request is in flight");
    dying.shutdown_background();
    let answer =
        live.block_on(async { tokio::time::timeout(Duration::from_secs(1), waiter).await });
    let error = answer.expect("the waiter sat out the ticket's deadline").unwrap().unwrap_err();
    assert!(matches!(error, Error::Interrupted(Interruption::RuntimeShutDown)), "{error:?}");
    // The task was dropped under the call: not the caller's fault.
    assert_eq!(error.blame(), helloflex_core::Blame::Interruption);
}

/// A scripted token endpoint shared by several "processes": counts requests, numbers tokens.
fn counting_endpoint(count: &Arc<AtomicUsize>) -> MockBlocking {
    let mut transport = MockBlocking::new();
    let seen = Arc::clone(count);
    transport.expect_send().returning(move |request| {
        assert!(is_token_request(&request));
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(Duration::from_millis(20));
        Ok(token_body(n, 3600))
    });
    transport.expect_sleep().returning(std::thread::sleep);
    transport
}

#[test]
fn managers_sharing_a_store_fetch_one_client_credentials_token_and_never_readopt_a_refused_one() {
    let count = Arc::new(AtomicUsize::new(0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    // Four "processes": each its own manager and cache, one store between them.
    let managers: Vec<_> = (0..4)
        .map(|_| {
            ManagerBuilder::client_credentials(config())
                .shared_store(Arc::clone(&store))
                .blocking(Arc::new(counting_endpoint(&count)))
        })
        .collect();
    std::thread::scope(|scope| {
        for manager in &managers {
            for _ in 0..8 {
                scope.spawn(move || {
                    assert_eq!(manager.token().unwrap().access_token().expose_secret(), "t1");
                });
            }
        }
    });
    assert_eq!(count.load(Ordering::SeqCst), 1, "one token request for the whole fleet");
    assert_eq!(store.load().unwrap().into_tokens().unwrap().access_token.expose_secret(), "t1");

    // The API refuses t1 in one process: it fetches t2 rather than adopting t1 from the store;
    // another process whose t1 is refused next adopts t2.
    let refused = managers[0].token().unwrap();
    managers[0].invalidate(refused.id());
    assert_eq!(managers[0].token().unwrap().access_token().expose_secret(), "t2");
    let refused = managers[1].token().unwrap();
    managers[1].invalidate(refused.id());
    assert_eq!(managers[1].token().unwrap().access_token().expose_secret(), "t2");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn a_shared_store_that_fails_is_retried_then_reported_typed() {
    let count = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(support::Unreachable::default());
    let manager = ManagerBuilder::client_credentials(config())
        .shared_store(Arc::clone(&store) as Arc<dyn TokenStore>)
        .options(
            ManagerOptions::default()
                .with_attempt_timeout(Duration::from_millis(100))
                .with_store_timeout(Duration::from_secs(1)),
        )
        .blocking(Arc::new(counting_endpoint(&count)));
    let error = manager.token().unwrap_err();
    assert!(matches!(error, Error::Store(_)), "{error:?}");
    assert_eq!(count.load(Ordering::SeqCst), 0, "no fetch without a claim");
    // Asked every 250 ms for the 1 s store timeout, not given up at the first failure.
    let asked = store.calls.load(Ordering::SeqCst);
    assert!((3..=6).contains(&asked), "store asked {asked} times");
}

/// A refresh token the server refuses is marked refused in the shared store (a tombstone): the
/// other holders stop with a typed re-authorization error without presenting it again.
#[test]
fn a_refused_refresh_token_is_marked_in_the_store_and_never_presented_again() {
    let count = Arc::new(AtomicUsize::new(0));
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let stale: StoredTokens = serde_json::from_str(
        r#"{"access_token":"old","refresh_token":"rt1","expires_at_unix_ms":1000}"#,
    )
    .unwrap();
    store.swap(0, &Record::new(stale, 1)).unwrap();
    let refusing = || {
        let mut transport = MockBlocking::new();
        let seen = Arc::clone(&count);
        transport.expect_send().returning(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(http::Response::builder()
                .status(400)
                .body(br#"{"error":"invalid_grant"}"#.to_vec())
                .unwrap())
        });
        transport.expect_sleep().returning(std::thread::sleep);
        transport
    };
    let managers: Vec<_> = (0..3)
        .map(|_| {
            ManagerBuilder::authorization_code(support::config(), Arc::clone(&store))
                .blocking(Arc::new(refusing()))
        })
        .collect();
    let first = managers[0].token().unwrap_err();
    assert!(first.requires_reauthorization(), "{first:?}");
    for manager in &managers[1..] {
        let error = manager.token().unwrap_err();
        assert!(
            matches!(
                error,
                Error::ReauthorizationRequired(helloflex_core::Reauthorization::RefusedElsewhere)
            ),
            "{error:?}"
        );
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "one refused request for every holder");
    assert!(store.load().unwrap().into_tokens().unwrap().refused);
}
