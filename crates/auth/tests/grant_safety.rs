//! No grant burnt, mixed up or held up: each way a manager could spend a refresh token twice,
//! exchange a callback twice or against its user, hold valid callers up behind store I/O or lose
//! a rotated set is a deterministic scenario (manual clock, scripted server) run over both
//! flavours of the manager, the async one with a runtime to detach its token requests onto and (where a scenario applies) without.
//! The async flavour runs on a single executor thread, so any blocking call on it would stall
//! the others.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use helloflex_auth::*;
use helloflex_core::{CallbackError, Error, PendingAuthorization, Token};
use helloflex_testkit::{Passthrough, StoreHooks, SwapCall};
use support::{AsyncFake, FakeServer, Tokio, config};

/// What a scenario needs from a manager, blocking or async.
trait Flavour: Sized + Send + Sync + 'static {
    fn new(server: &Arc<FakeServer>, store: Arc<dyn TokenStore>, clock: &Arc<ManualClock>) -> Self {
        Self::with_options(server, store, clock, ManagerOptions::default())
    }
    fn with_options(
        server: &Arc<FakeServer>,
        store: Arc<dyn TokenStore>,
        clock: &Arc<ManualClock>,
        options: ManagerOptions,
    ) -> Self;
    fn token(&self) -> Result<Token, Error>;
    /// Starts `token()` elsewhere; the closure waits for its answer.
    fn token_elsewhere(self: &Arc<Self>) -> Box<dyn FnOnce() -> Result<Token, Error>>;
    fn start(&self) -> (String, PendingAuthorization);
    fn complete(&self, pending: &PendingAuthorization, callback: &str) -> Result<Token, Error>;
    fn close(&self, within: Duration) -> bool;
    /// Starts `close(within)` elsewhere; the closure waits for its answer.
    fn close_elsewhere(self: &Arc<Self>, within: Duration) -> Box<dyn FnOnce() -> bool>;
}

struct Blocking(BlockingTokenManager);

impl Flavour for Blocking {
    fn with_options(
        server: &Arc<FakeServer>,
        store: Arc<dyn TokenStore>,
        clock: &Arc<ManualClock>,
        options: ManagerOptions,
    ) -> Self {
        Self(
            ManagerBuilder::authorization_code(config(), store)
                .clock(clock.clone())
                .options(options)
                .blocking(server.clone()),
        )
    }
    fn token(&self) -> Result<Token, Error> {
        self.0.token()
    }
    fn token_elsewhere(self: &Arc<Self>) -> Box<dyn FnOnce() -> Result<Token, Error>> {
        let m = self.0.clone();
        let thread = std::thread::spawn(move || m.token());
        Box::new(move || thread.join().unwrap())
    }
    fn start(&self) -> (String, PendingAuthorization) {
        self.0.start_authorization().unwrap()
    }
    fn complete(&self, pending: &PendingAuthorization, callback: &str) -> Result<Token, Error> {
        self.0.complete_authorization(pending, callback)
    }
    fn close(&self, within: Duration) -> bool {
        self.0.close(within)
    }
    fn close_elsewhere(self: &Arc<Self>, within: Duration) -> Box<dyn FnOnce() -> bool> {
        let m = self.0.clone();
        let thread = std::thread::spawn(move || m.close(within));
        Box::new(move || thread.join().unwrap())
    }
}

/// The async manager, its token requests detached on the runtime it is handed
/// (`DETACHED`), or with no runtime handed in: then the manager keeps them and its callers
/// drive them.
struct Async<const DETACHED: bool>(AsyncTokenManager, tokio::runtime::Runtime);

/// With a runtime, as the reqwest client always is.
type Detached = Async<true>;
/// Without one, as a transport of your own may be.
type Held = Async<false>;

impl<const DETACHED: bool> Flavour for Async<DETACHED> {
    fn with_options(
        server: &Arc<FakeServer>,
        store: Arc<dyn TokenStore>,
        clock: &Arc<ManualClock>,
        options: ManagerOptions,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let runtime: Arc<dyn AsyncRuntime> = Arc::new(Tokio(rt.handle().clone()));
        let manager = ManagerBuilder::authorization_code(config(), store)
            .clock(clock.clone())
            .options(options)
            .nonblocking(Arc::new(AsyncFake(server.clone())), DETACHED.then_some(runtime));
        Self(manager, rt)
    }
    fn token(&self) -> Result<Token, Error> {
        self.1.block_on(self.0.token())
    }
    fn token_elsewhere(self: &Arc<Self>) -> Box<dyn FnOnce() -> Result<Token, Error>> {
        let m = self.0.clone();
        let task = self.1.spawn(async move { m.token().await });
        let me = Arc::clone(self);
        Box::new(move || me.1.block_on(task).unwrap())
    }
    fn start(&self) -> (String, PendingAuthorization) {
        self.0.start_authorization().unwrap()
    }
    fn complete(&self, pending: &PendingAuthorization, callback: &str) -> Result<Token, Error> {
        self.1.block_on(self.0.complete_authorization(pending, callback))
    }
    fn close(&self, within: Duration) -> bool {
        self.1.block_on(self.0.close(within))
    }
    fn close_elsewhere(self: &Arc<Self>, within: Duration) -> Box<dyn FnOnce() -> bool> {
        let m = self.0.clone();
        let task = self.1.spawn(async move { m.close(within).await });
        let me = Arc::clone(self);
        Box::new(move || me.1.block_on(task).unwrap())
    }
}

/// A server issuing 600 s tokens, a manual clock and a manager over `store`, authorized.
fn setup<F: Flavour>(
    store: Arc<dyn TokenStore>,
) -> (Arc<FakeServer>, Arc<ManualClock>, Arc<F>, Token) {
    let clock = Arc::new(ManualClock::new());
    let (server, m, token) = setup_with::<F>(store, &clock, ManagerOptions::default());
    (server, clock, m, token)
}

/// [`setup`] on `clock`, with `options`.
fn setup_with<F: Flavour>(
    store: Arc<dyn TokenStore>,
    clock: &Arc<ManualClock>,
    options: ManagerOptions,
) -> (Arc<FakeServer>, Arc<F>, Token) {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let m = Arc::new(F::with_options(&server, store, clock, options));
    let (url, pending) = m.start();
    let token = m.complete(&pending, &server.approve(&url)).unwrap();
    (server, m, token)
}

fn secret(token: &Token) -> String {
    token.access_token().expose_secret().to_owned()
}

fn stored_access(store: &dyn TokenStore) -> String {
    store.load().unwrap().into_tokens().unwrap().access_token.expose_secret().to_owned()
}

/// Behaviour 2: A refresh slower than any fixed ticket timeout is still sent once: a caller arriving
/// while it is in flight waits for it, however long it takes within its own deadline.
fn slow_refresh_is_sent_once<F: Flavour>() {
    let (server, clock, m, _) = setup::<F>(Arc::new(MemoryStore::new()));
    clock.advance(Duration::from_secs(601));
    server.gate.close();
    let first = m.token_elsewhere();
    server.wait_for_refreshes(1);
    clock.advance(Duration::from_secs(90)); // past the old fixed 60 s ticket timeout
    let second = m.token_elsewhere();
    std::thread::sleep(Duration::from_millis(50));
    server.gate.open();
    let (a, b) = (first().unwrap(), second().unwrap());
    assert_eq!(a.id(), b.id());
    assert_eq!(server.arrived_refreshes.load(Ordering::SeqCst), 1, "the refresh was sent twice");
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
}

/// Behaviour 3: A forged callback does not end the real login; a callback delivered twice is refused
/// locally and its code is not exchanged again.
fn callbacks_cannot_be_used_against_the_user<F: Flavour>() {
    let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
    let clock = Arc::new(ManualClock::new());
    let m = F::new(&server, Arc::new(MemoryStore::new()), &clock);
    let (url, pending) = m.start();
    let forged = m.complete(&pending, "code=attacker&state=forged").unwrap_err();
    assert!(matches!(forged, Error::Callback(CallbackError::StateMismatch)));
    let missing = m.complete(&pending, "code=attacker").unwrap_err();
    assert!(matches!(missing, Error::Callback(CallbackError::MissingState)));
    let callback = server.approve(&url);
    m.complete(&pending, &callback).unwrap();
    let exchanged = server.token_requests.load(Ordering::SeqCst);
    let again = m.complete(&pending, &callback).unwrap_err();
    assert!(matches!(again, Error::Callback(CallbackError::AlreadyCompleted)), "{again:?}");
    assert_eq!(server.token_requests.load(Ordering::SeqCst), exchanged, "code exchanged twice");
    // A kept copy of the pending authorization (it is `Clone` + `Deserialize`) is no way around.
    let copy: PendingAuthorization = pending.clone();
    assert!(m.complete(&copy, &callback).is_err());
    assert_eq!(server.token_requests.load(Ordering::SeqCst), exchanged);
}

/// Behaviour 3b: two instances sharing one store (two app servers behind a load balancer, with a
/// shared session store) both receive the same callback: the code is exchanged once; the other
/// instance, which never saw the first accept it, is refused from the store's record, also when
/// both race. The server never sees the code twice, so the sign-in stands.
fn a_callback_is_exchanged_once_across_instances<F: Flavour>() {
    for racing in [false, true] {
        let server = Arc::new(FakeServer::new(Duration::from_millis(20), 600));
        let clock = Arc::new(ManualClock::new());
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let (a, b) = (
            Arc::new(F::new(&server, Arc::clone(&store), &clock)),
            Arc::new(F::new(&server, Arc::clone(&store), &clock)),
        );
        let (url, pending) = a.start();
        let callback = server.approve(&url);
        let results = if racing {
            let (pa, ca, a2) = (pending.clone(), callback.clone(), Arc::clone(&a));
            let first = std::thread::spawn(move || a2.complete(&pa, &ca));
            let second = b.complete(&pending, &callback);
            [first.join().unwrap(), second]
        } else {
            let first = a.complete(&pending, &callback);
            [first, b.complete(&pending, &callback)]
        };
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 1, "racing={racing}: {results:?}");
        let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            matches!(refused, Error::Callback(CallbackError::AlreadyCompleted)),
            "racing={racing}: {refused:?}"
        );
        assert_eq!(
            server.token_requests.load(Ordering::SeqCst),
            1,
            "racing={racing}: the code once"
        );
        assert!(store.load().unwrap().into_tokens().is_some());
    }
}

/// A store whose writes wait at a gate.
type SlowStore = Passthrough<GateFlag>;

#[derive(Debug, Default)]
struct GateFlag {
    closed: Mutex<bool>,
    changed: std::sync::Condvar,
    waiting: std::sync::atomic::AtomicUsize,
}

impl GateFlag {
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.changed.notify_all();
    }
}

impl StoreHooks for GateFlag {
    fn swap(&self, call: SwapCall<'_>) -> Result<Swap, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.changed.wait(closed).unwrap();
        }
        drop(closed);
        call.pass()
    }
}

/// Behaviour 4: No lock is held across store I/O: while a refresh's store write hangs, callers with a
/// valid token get it at once (and on the async flavour the one executor thread stays free).
fn store_io_never_holds_up_valid_callers<F: Flavour>() {
    let store = Arc::new(SlowStore::default());
    let (_server, clock, m, first) = setup::<F>(store.clone());
    store.hooks.set(true);
    let before = store.hooks.waiting.load(Ordering::SeqCst);
    clock.advance(Duration::from_secs(560)); // in the refresh window, still valid
    let served = m.token().unwrap();
    assert_eq!(served.id(), first.id(), "the valid token is served while refreshing");
    for _ in 0..2000 {
        if store.hooks.waiting.load(Ordering::SeqCst) > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        store.hooks.waiting.load(Ordering::SeqCst),
        before + 1,
        "the refresh reached the store"
    );
    // The write hangs; ten more callers are served, none waits for it.
    let (done, finished) = mpsc::channel();
    let callers = Arc::clone(&m);
    std::thread::spawn(move || {
        for _ in 0..10 {
            let _ = done.send(callers.token().map(|t| t.id()));
        }
    });
    for _ in 0..10 {
        let id = finished.recv_timeout(Duration::from_secs(20)).expect("a caller was held up");
        assert_eq!(id.unwrap(), first.id());
    }
    store.hooks.set(false);
}

/// Behaviour 5: A refresh still in flight when the user completes a new authorization is stale: memory
/// and store both end with the new grant.
fn new_authorization_supersedes_an_inflight_refresh<F: Flavour>() {
    let store = Arc::new(MemoryStore::new());
    let (server, clock, m, _) = setup::<F>(store.clone());
    clock.advance(Duration::from_secs(601));
    server.gate.close();
    let waiting = m.token_elsewhere();
    server.wait_for_refreshes(1);
    let (url, pending) = m.start();
    let fresh = m.complete(&pending, &server.approve(&url)).unwrap();
    server.gate.open();
    assert_eq!(waiting().unwrap().id(), fresh.id(), "the waiting caller gets the new grant");
    assert_eq!(m.token().unwrap().id(), fresh.id());
    assert_eq!(stored_access(&*store), secret(&fresh), "the store holds the new grant");
}

/// A store whose next read answers with an older record (a lagging replica, a race).
type Lagging = Passthrough<Stale>;

/// The older record a [`Lagging`] store answers its next read with.
#[derive(Debug, Default)]
struct Stale(Mutex<Option<Record>>);

impl StoreHooks for Stale {
    fn load(&self, inner: &dyn TokenStore) -> Result<Loaded, StoreError> {
        match self.0.lock().unwrap().take() {
            Some(old) => Ok(Loaded::new(Some(old))),
            None => inner.load(),
        }
    }
}

/// Behaviour 6: On `invalid_grant` the store is read again: the instance that lost a race to another one
/// adopts the set the winner stored instead of declaring the user logged out.
fn invalid_grant_rereads_the_store<F: Flavour>() {
    let store = Arc::new(Lagging::default());
    let (server, clock, m, _) = setup::<F>(store.clone());
    // Another instance refreshes with the same token and stores the result.
    let before = store.inner.load().unwrap().record.unwrap();
    let held = before.tokens.as_ref().unwrap().refresh_token.clone().unwrap();
    let answer = helloflex_auth::BlockingTransport::send(
        &*server,
        config().refresh_request(&held).unwrap().into_request(),
    )
    .unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
    let mut winner = before.tokens.clone().unwrap();
    winner.access_token =
        helloflex_core::AccessToken::new(theirs["access_token"].as_str().unwrap());
    winner.refresh_token =
        Some(helloflex_core::RefreshToken::new(theirs["refresh_token"].as_str().unwrap()));
    winner.expires_at_unix_ms += 600_000;
    store.inner.swap(before.version, &Record::new(winner, before.version + 2)).unwrap();
    // Our read before sending still sees the old record.
    *store.hooks.0.lock().unwrap() = Some(before);
    clock.advance(Duration::from_secs(601));
    let token = m.token().expect("adopted the winner's set, not logged out");
    assert_eq!(secret(&token), theirs["access_token"].as_str().unwrap());
}

/// Behaviour 7: The replay rule: a refresh that fails transiently is retried within the same call, the
/// same request; the caller never sees the hiccup.
fn transient_refresh_failure_is_retried_in_the_call<F: Flavour>() {
    let store = Arc::new(MemoryStore::new());
    let (server, clock, m, first) = setup::<F>(store.clone());
    server.sleeps_advance(&clock);
    server.refresh_503s.store(1, Ordering::SeqCst);
    clock.advance(Duration::from_secs(601));
    let token = m.token().expect("the 503 was retried inside the call");
    assert_ne!(token.id(), first.id());
    assert_eq!(server.arrived_refreshes.load(Ordering::SeqCst), 2, "sent, then sent again");
    assert_eq!(server.refresh_requests.lock().unwrap().len(), 1, "one reached the server");
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
    assert_eq!(stored_access(&*store), secret(&token));
}

/// Behaviour 8: Closing (the last thing before the process exits) waits for the refresh running
/// in the background, so the set the server rotated is stored, not lost with the process (the
/// next refresh would present the spent token: a reuse, and the grant revoked). After it no
/// refresh starts ahead of expiry, while a caller whose token expired still gets a new one.
fn closing_stores_the_refresh_in_flight_and_starts_no_other<F: Flavour>() {
    let store = Arc::new(MemoryStore::new());
    let (server, clock, m, first) = setup::<F>(store.clone());
    // Inside the refresh window of a 600 s token: its last 10-15%, before its last 5%.
    clock.advance(Duration::from_secs(545));
    server.gate.close();
    // A failed assertion below must not leave the refresh stuck at the gate (the runtime's
    // drop would wait for it).
    let _opened = OpenOnDrop(&server.gate);
    assert_eq!(m.token().unwrap().id(), first.id(), "the old token, refreshed in the background");
    server.wait_for_refreshes(1);
    assert!(!m.close(Duration::ZERO), "with no time allowed, the refresh is still in flight");
    let closed = m.close_elsewhere(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(stored_access(&*store), secret(&first), "not answered yet");
    server.gate.open();
    assert!(closed(), "nothing left in flight");
    let renewed = stored_access(&*store);
    assert_ne!(renewed, secret(&first), "the rotated set was stored before close returned");
    // In the new token's refresh window: used, not refreshed.
    clock.advance(Duration::from_secs(545));
    assert_eq!(secret(&m.token().unwrap()), renewed);
    assert_eq!(server.refresh_requests.lock().unwrap().len(), 1, "a refresh ahead after close");
    // Past its use: a caller still gets a new token.
    clock.advance(Duration::from_secs(60));
    assert_ne!(secret(&m.token().unwrap()), renewed);
    assert_eq!(server.refresh_requests.lock().unwrap().len(), 2);
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
    assert!(m.close(Duration::ZERO), "nothing in flight");
}

/// Behaviour 9: `Duration::MAX` as the attempt timeout, the retry deadline, the store timeout
/// and the close's wait means no limit, never none: a refresh in flight keeps its ticket and
/// its claim in the store however long it takes (another caller waits for it, the claim
/// declares a budget that does not lapse, nobody sends the refresh token again), and a close
/// waits for it.
fn unlimited_timeouts_hold_the_ticket_the_lease_and_the_close<F: Flavour>() {
    // A ticket lapsing at once left an async caller spinning on the executor thread, spawning
    // one job after another: that must fail the test, not hang it.
    let _watchdog = helloflex_testkit::Watchdog::arm(Duration::from_secs(60));
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new());
    let options = ManagerOptions::default()
        .with_attempt_timeout(Duration::MAX)
        .with_store_timeout(Duration::MAX)
        .with_retry(helloflex_core::RetryPolicy::default().with_deadline(Duration::MAX));
    let (server, m, first) = setup_with::<F>(store.clone(), &clock, options);
    clock.advance(Duration::from_secs(601));
    server.gate.close();
    let _opened = OpenOnDrop(&server.gate);
    let refreshed = m.token_elsewhere();
    server.wait_for_refreshes(1);
    let year_ms = 365 * 86_400_000;
    let claimed = || store.load().unwrap().record.and_then(|r| r.claim).map(|c| c.budget_ms);
    assert!(claimed().is_some_and(|ms| ms >= year_ms), "the refresh's claim: {:?}", claimed());
    // Past every fixed limit (the 60 s ticket, the 90 s attempt, the 10 s store timeout), well
    // before the new token would expire.
    clock.advance(Duration::from_secs(300));
    assert!(claimed().is_some_and(|ms| ms >= year_ms), "still claimed: {:?}", claimed());
    let waiting = m.token_elsewhere();
    let closed = m.close_elsewhere(Duration::MAX);
    std::thread::sleep(Duration::from_millis(50));
    server.gate.open();
    let (a, b) = (refreshed().unwrap(), waiting().unwrap());
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), first.id());
    assert!(closed(), "the close waited for the refresh");
    assert_eq!(server.arrived_refreshes.load(Ordering::SeqCst), 1, "the refresh was sent twice");
    assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0);
    assert_eq!(stored_access(&*store), secret(&a));
}

/// Opens the gate when dropped, on a panic too.
struct OpenOnDrop<'a>(&'a support::Gate);

impl Drop for OpenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.open();
    }
}

macro_rules! over_flavours {
    ($($module:ident: $flavour:ty => [$($scenario:ident),* $(,)?]);* $(;)?) => {
        $(mod $module {
            use super::*;
            $(#[test] fn $scenario() { super::$scenario::<$flavour>() })*
        })*
    };
}

over_flavours!(
    blocking: Blocking => [
        slow_refresh_is_sent_once,
        callbacks_cannot_be_used_against_the_user,
        a_callback_is_exchanged_once_across_instances,
        store_io_never_holds_up_valid_callers,
        new_authorization_supersedes_an_inflight_refresh,
        invalid_grant_rereads_the_store,
        transient_refresh_failure_is_retried_in_the_call,
        closing_stores_the_refresh_in_flight_and_starts_no_other,
        unlimited_timeouts_hold_the_ticket_the_lease_and_the_close,
    ];
    nonblocking: Detached => [
        slow_refresh_is_sent_once,
        callbacks_cannot_be_used_against_the_user,
        a_callback_is_exchanged_once_across_instances,
        store_io_never_holds_up_valid_callers,
        new_authorization_supersedes_an_inflight_refresh,
        invalid_grant_rereads_the_store,
        transient_refresh_failure_is_retried_in_the_call,
        closing_stores_the_refresh_in_flight_and_starts_no_other,
        unlimited_timeouts_hold_the_ticket_the_lease_and_the_close,
        dropped_async_callers_never_burn_the_grant,
        dropped_after_every_poll_the_grant_survives,
    ];
    // Without a runtime, store I/O runs inline and the caller that starts a refresh ahead of
    // expiry drives it before it returns: behaviours 4 and 8 ask the opposite, and the
    // manager's docs say so.
    nonblocking_without_runtime: Held => [
        slow_refresh_is_sent_once,
        callbacks_cannot_be_used_against_the_user,
        new_authorization_supersedes_an_inflight_refresh,
        invalid_grant_rereads_the_store,
        transient_refresh_failure_is_retried_in_the_call,
        dropped_async_callers_never_burn_the_grant,
        dropped_after_every_poll_the_grant_survives,
    ];
);

/// The async flavours' own parts, for the scenarios that drop a caller's future.
trait AsyncFlavour: Flavour {
    /// Whether token requests run detached on a runtime (else the manager keeps them, and
    /// nothing runs them until a caller comes).
    const DETACHED: bool;
    fn manager(&self) -> &AsyncTokenManager;
    fn runtime(&self) -> &tokio::runtime::Runtime;
}

impl<const DETACHED: bool> AsyncFlavour for Async<DETACHED> {
    const DETACHED: bool = DETACHED;
    fn manager(&self) -> &AsyncTokenManager {
        &self.0
    }
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.1
    }
}

/// The next caller's token, within 20 s: a caller held up behind what a dropped one left (a
/// ticket, a store lease) fails the scenario rather than hanging it.
fn next_caller<F: AsyncFlavour>(m: &F) -> Token {
    let next = async { tokio::time::timeout(Duration::from_secs(20), m.manager().token()).await };
    m.runtime().block_on(next).expect("the next caller was held up").unwrap()
}

/// With a runtime, waits (up to 2 s) for the detached exchange to land in `store`; without one
/// nothing runs it until the next caller, so there is nothing to wait for.
fn await_detached<F: AsyncFlavour>(store: &dyn TokenStore) {
    for _ in 0..400 {
        if !F::DETACHED || store.load().unwrap().into_tokens().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Behaviour 1: A dropped async caller never burns the grant: the caller is dropped at each
/// point of a refresh (before it is sent, while it is in flight, as the answer lands: the
/// server holds the answer back until the caller is gone) and of a code exchange; the request
/// it started is concluded and stored anyway (by its detached task, or by the next caller that
/// resumes it), so the next caller gets the rotated set and no refresh token is ever sent
/// twice.
fn dropped_async_callers_never_burn_the_grant<F: AsyncFlavour>() {
    for delay_ms in [0u64, 1, 5, 20, 60, 150] {
        let store = Arc::new(MemoryStore::new());
        let (server, clock, m, _) = setup::<F>(store.clone());
        clock.advance(Duration::from_secs(601));
        server.gate.close();
        let dropped = m.runtime().block_on(async {
            tokio::time::timeout(Duration::from_millis(delay_ms), m.manager().token()).await
        });
        assert!(dropped.is_err(), "the caller was dropped mid-refresh");
        server.gate.open();
        let token = next_caller(&*m);
        assert_eq!(server.refresh_requests.lock().unwrap().len(), 1, "dropped at {delay_ms} ms");
        assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0, "dropped at {delay_ms} ms");
        assert_eq!(stored_access(&*store), secret(&token), "the rotated set was stored");
    }
    // A code exchange dropped at each point: the tokens still land, the code is used once.
    for delay_ms in [0u64, 1, 5, 20, 60] {
        let server = Arc::new(FakeServer::new(Duration::from_millis(30), 600));
        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(MemoryStore::new());
        let m = F::new(&server, store.clone(), &clock);
        let (url, pending) = m.start();
        let callback = server.approve(&url);
        let dropped = m.runtime().block_on(async {
            tokio::time::timeout(
                Duration::from_millis(delay_ms),
                m.manager().complete_authorization(&pending, &callback),
            )
            .await
        });
        if dropped.is_err() {
            // Whatever point it was dropped at, the exchange finishes and is stored.
            await_detached::<F>(&*store);
        }
        let token = next_caller(&m);
        assert_eq!(stored_access(&*store), secret(&token), "dropped at {delay_ms} ms");
        assert_eq!(server.token_requests.load(Ordering::SeqCst), 1);
        assert!(matches!(
            m.complete(&pending, &callback),
            Err(Error::Callback(CallbackError::AlreadyCompleted))
        ));
    }
}

/// Polls `future` once (with the task's waker) and reports whether it finished.
async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> bool {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx).is_ready())
    })
    .await
}

/// Behaviour 1, exhaustively: the caller's future is dropped after its k-th poll, for every k
/// until it would have finished, during a refresh and during a code exchange. Whatever point it
/// is dropped at, the request it started lands in memory and in the store, and no refresh
/// token or code is sent twice.
fn dropped_after_every_poll_the_grant_survives<F: AsyncFlavour>() {
    for k in 0..12 {
        let store = Arc::new(MemoryStore::new());
        let (server, clock, m, _) = setup::<F>(store.clone());
        clock.advance(Duration::from_secs(601));
        let finished = m.runtime().block_on(async {
            let mut caller = Box::pin(m.manager().token());
            for _ in 0..k {
                if poll_once(&mut caller).await {
                    return true;
                }
                tokio::task::yield_now().await;
            }
            false
        });
        let token = next_caller(&*m);
        assert_eq!(server.refresh_requests.lock().unwrap().len(), 1, "k={k} finished={finished}");
        assert_eq!(server.reuse_events.load(Ordering::SeqCst), 0, "k={k}");
        assert_eq!(stored_access(&*store), secret(&token), "k={k}");
    }
    for k in 0..12 {
        let server = Arc::new(FakeServer::new(Duration::ZERO, 600));
        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(MemoryStore::new());
        let m = F::new(&server, store.clone(), &clock);
        let (url, pending) = m.start();
        let callback = server.approve(&url);
        m.runtime().block_on(async {
            let mut caller = Box::pin(m.manager().complete_authorization(&pending, &callback));
            for _ in 0..k {
                if poll_once(&mut caller).await {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        // The exchange, once started, finishes and is stored whatever happened to its caller.
        if k > 0 {
            await_detached::<F>(&*store);
        }
        if k == 0 {
            // Never polled: nothing was started, the authorization is still pending.
            assert_eq!(server.token_requests.load(Ordering::SeqCst), 0);
            continue;
        }
        let token = next_caller(&m);
        assert_eq!(stored_access(&*store), secret(&token), "k={k}");
        assert_eq!(server.token_requests.load(Ordering::SeqCst), 1, "k={k}: the code once");
    }
}
