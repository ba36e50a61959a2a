//! One dependency for the **HelloFlex** API (client-credentials grant) and the **Flextell** API
//! (authorization code with PKCE and rotating refresh tokens): tokens are fetched once, shared
//! by every clone, thread and task, refreshed before they expire and stored before they are
//! used; a 401 replays the call once with a fresh token; errors are typed.
//!
//! | | async (reqwest, tokio) | blocking (ureq) |
//! |---|---|---|
//! | the client | [`Client`] | [`blocking::Client`] |
//! | its builder | [`ClientBuilder`] | [`blocking::ClientBuilder`] |
//! | a request | [`RequestBuilder`]: `.send().await?` | [`blocking::RequestBuilder`]: `.send()?` |
//!
//! Both are the same client with the same builder and methods; only waiting differs. Features
//! `async` and `blocking` (both on by default) choose which are compiled; `redis` adds
//! `RedisStore` (one token lifecycle for a fleet of instances), `emulator` adds
//! `helloflex::emulator`, a local HelloFlex + Flextell sandbox for your tests.
//!
//! TLS is rustls: the async client's over aws-lc-rs (feature `aws-lc-rs`, on by default, as in
//! reqwest: it also offers the post-quantum X25519MLKEM768 key exchange and has a FIPS build),
//! the blocking client's over ring (as in ureq). With `default-features = false, features =
//! ["async", "blocking"]` both run on ring: fewer crates, a faster cold build, a smaller binary,
//! no C toolchain (README.md, "A lighter build"; the figures in docs/benchmarks.md). A
//! `CryptoProvider` the application installs as rustls's process default is used either way.
//!
//! The examples below run against that emulator: no network, no credentials. Against the real
//! API, name the environment and your client, its id and secret from the environment, never
//! from code:
//!
//! ```no_run
//! use helloflex::{ClientSecret, Environment};
//!
//! let client = helloflex::blocking::Client::builder()
//!     .environment(Environment::Sandbox) // https://api.uat-helloflex.com; Environment::Live for production
//!     .client_credentials(
//!         std::env::var("HELLOFLEX_CLIENT_ID")?,
//!         ClientSecret::new(std::env::var("HELLOFLEX_CLIENT_SECRET")?),
//!     )
//!     .build()?;
//! let news: serde_json::Value = client.get("news").send()?.json()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # HelloFlex, async
//!
//! `Cargo.toml`: `helloflex = "0.1"` and, for `#[tokio::main]`,
//! `tokio = { version = "1", features = ["macros", "rt-multi-thread"] }` (the client itself needs
//! no tokio feature of yours: it runs on the runtime it is built in). For the emulator in your
//! tests: `helloflex = { version = "0.1", features = ["emulator"] }` under `[dev-dependencies]`.
//!
//! ```
//! use std::time::Duration;
//! use helloflex::{ClientSecret, Environment, InsecureLoopback};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let emulator = helloflex::emulator::start(Default::default())?;
//!     let client = helloflex::Client::builder()
//!         .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
//!         .client_credentials("demo-client", ClientSecret::new("demo-secret"))
//!         .build()?;
//!
//!     // `send()` is awaited; `json()` is not: the body has been read when `send` returns.
//!     let values: serde_json::Value = client
//!         .get("domainTypes/7/domainValues")
//!         .query("Lang", "en") // ?Lang=en (keys and values are percent-encoded)
//!         .send()
//!         .await?
//!         .json()?;
//!     assert!(values.is_array());
//!
//!     // Before the runtime shuts down: a refresh running in the background is stored first.
//!     if !client.close(Duration::from_secs(10)).await {
//!         eprintln!("a token request was still in flight");
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The async client runs its token requests as tasks on a tokio runtime, never inside a
//! caller's future (a caller dropped mid-request must not abandon a request that may have
//! spent a refresh token): the runtime it is built in, so build it inside one (in
//! `async fn main`, or inside `Runtime::block_on`), or hand it one for a client built before
//! or outside its runtime (a `static`): `.connector(Reqwest::default().with_runtime(handle))`
//! (see [`Reqwest`]). Built outside a runtime with none handed in, `build` fails with
//! [`ConfigError::NoRuntime`]; once that runtime has shut down, a token request fails at once
//! with [`Interruption::RuntimeShutDown`]. Its futures are `Send`: fine in axum handlers.
//!
//! # HelloFlex, blocking
//!
//! ```
//! use std::time::Duration;
//! use helloflex::{ClientSecret, Environment, Error, InsecureLoopback};
//!
//! let emulator = helloflex::emulator::start(Default::default())?;
//! let client = helloflex::blocking::Client::builder()
//!     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
//!     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
//!     .build()?;
//! let news: serde_json::Value = client.get("news").send()?.json()?;
//! assert!(news.is_array());
//!
//! // Errors are typed. A 400 carries HelloFlex's validation map, field by field.
//! match client.get("domainTypes/7/domainValues").query("Lang", "english").send() {
//!     Err(Error::Api(e)) if e.status() == 400 => {
//!         let validation = e.validation().ok_or("a 400 without a validation map")?;
//!         for (field, messages) in validation.fields() {
//!             println!("{field}: {}", messages.join("; ")); // Lang: Should be valid ISO 639-1 ...
//!         }
//!         assert!(validation.get("Lang").is_some());
//!     }
//!     other => panic!("expected a validation error, got {other:?}"),
//! }
//!
//! if !client.close(Duration::from_secs(10)) {
//!     eprintln!("a token request was still in flight");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Flextell: signing a user in
//!
//! The authorization-code flow with PKCE: send the user to the URL from
//! `start_authorization`, keep the [`PendingAuthorization`] in your server-side session, and
//! hand the callback URL the user comes back with to `complete_authorization`. A forged
//! callback leaves `pending` usable; a callback accepted once is refused (no code is exchanged
//! twice). Tokens are kept in a [`TokenStore`] ([`MemoryStore`], [`FileStore`], `RedisStore`) and
//! refreshed, with rotation, behind every call. Here the emulator plays the user who approves:
//!
//! ```
//! use std::sync::Arc;
//! use helloflex::{
//!     AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, Environment,
//!     InsecureLoopback, MemoryStore,
//! };
//!
//! let emulator = helloflex::emulator::start(Default::default())?;
//! let flextell = emulator.flextell("http://127.0.0.1:3000/callback");
//! let url = |u: &str| Endpoint::parse(u, InsecureLoopback::Allow); // Deny for https-only
//! let app = ClientIdentity::confidential(flextell.client_id, ClientSecret::new(flextell.client_secret));
//! let config = AuthorizationCodeConfig::builder(app)
//!     .authorize_url(url(&flextell.authorize_url)?)
//!     .token_url(url(&flextell.token_url)?)
//!     .redirect_uri(url(&flextell.redirect_uri)?)
//!     .build()?
//!     .with_scopes(["calls.read", "news.read"])
//!     .with_issuer(flextell.issuer);
//! let client = helloflex::blocking::Client::builder()
//!     .environment(Environment::custom(&flextell.base_url, InsecureLoopback::Allow)?)
//!     .authorization_code(config, Arc::new(MemoryStore::new()))
//!     .build()?;
//!
//! // 1. Send the user to `authorize`; keep `pending` in the session.
//! let (authorize, pending) = client.start_authorization()?;
//! // 2. The user approves and comes back to the redirect URI (here the emulator plays them).
//! let callback = emulator.approve(&authorize)?;
//! // 3. The callback is checked (state, issuer), the code exchanged, the tokens stored.
//! client.complete_authorization(&pending, &callback)?;
//! let news: serde_json::Value = client.get("news").send()?.json()?;
//! assert!(news.is_array());
//! // The same callback again is refused.
//! assert!(client.complete_authorization(&pending, &callback).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the async client the same calls are awaited (`complete_authorization(..).await`). A
//! web service builds one client and one per signed-in user with
//! [`for_user`](helloflex_auth::Client::for_user) (their tokens in a store of their own).
//!
//! # Beneath
//!
//! The layered crates stay available for people who embed the sans-IO core or bring their own
//! HTTP stack: [`core`] (requests, parsing, the token lifecycle as pure machines) and [`auth`]
//! (token managers, stores, the transport seam, the one client over any transport;
//! `docs/writing-a-transport.md`). [`http`] is the `http` crate the seam speaks.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use helloflex_auth as auth;
pub use helloflex_core as core;
pub use http;

/// The embedded HelloFlex + Flextell emulator (feature `emulator`): `emulator::start(..)`.
#[cfg(feature = "emulator")]
pub use helloflex_emulator as emulator;

/// The Redis token store (feature `redis`): one token lifecycle shared by a fleet of
/// instances, encrypted at rest (`docs/fleet.md`).
#[cfg(feature = "redis")]
pub use helloflex_store_redis::RedisStore;

/// The SQL token store (feature `sql`; PostgreSQL with feature `postgres`): users' tokens in the
/// application's own database, sealed, on the Redis store's protocol.
#[cfg(feature = "sql")]
pub use helloflex_store_sql::{Database, SqlError, SqlStore};

// Settings, requests and answers.
pub use helloflex_core::{
    AccessToken, ApiRequest, ApiResponse, AuthorizationCodeConfig, AuthorizationCodeConfigBuilder,
    ClientAuthMethod, ClientIdentity, ClientSecret, CsrfState, Endpoint, Environment,
    InsecureLoopback, LifecyclePolicy, PendingAuthorization, RefreshToken, RetryPolicy, Token,
};
// Errors.
pub use helloflex_core::{
    ApiError, ApiErrorKind, Blame, CallbackError, ConfigError, Error, Interruption, OAuthError,
    OAuthErrorCode, OpenError, ProtocolError, Reauthorization, StoreError, StoreErrorKind,
    TransportError, TransportErrorKind, UnauthorizedCause, UsageError, ValidationErrors,
};
// Token stores, keys, clocks, tuning.
pub use helloflex_auth::{
    Claim, Clock, Entropy, FileStore, Key, KeyError, KeyRing, Loaded, ManagerOptions, ManualClock,
    MemoryStore, OsEntropy, Record, StoredTokens, Swap, SystemClock, Timeouts, TokenStore,
};

#[cfg(feature = "async")]
pub use helloflex_transport_reqwest::{Reqwest, ReqwestTransport, TokioRuntime};

/// The async client: `send().await`. See the crate docs for the whole picture.
///
/// ```
/// use helloflex::{Client, ClientSecret, Environment, InsecureLoopback};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let client: Client = Client::builder()
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// // Clones share one token: a hundred concurrent calls, one token request.
/// let calls: Vec<_> = (0..100)
///     .map(|_| {
///         let client = client.clone();
///         tokio::spawn(async move { client.get("news").send().await })
///     })
///     .collect();
/// for call in calls {
///     assert_eq!(call.await??.status(), 200);
/// }
/// assert_eq!(emulator.counters().total_token_requests(), 1);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "async")]
pub type Client = helloflex_auth::Client<helloflex_auth::AsyncTokenManager, Reqwest>;

/// Builds an async [`Client`]: where the API is, which grant, then HTTP and token tuning.
/// Nothing is sent until the first call.
///
/// ```
/// use std::time::Duration;
/// use helloflex::{ClientBuilder, ClientSecret, Environment, RetryPolicy, Timeouts};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), helloflex::Error> {
/// let builder: ClientBuilder = helloflex::Client::builder();
/// let client = builder
///     .environment(Environment::Sandbox)
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .scopes(["news.read"])
///     .timeouts(Timeouts::new(Duration::from_secs(5), Duration::from_secs(20)))
///     .retry_policy(RetryPolicy::default().with_max_attempts(2))
///     .user_agent("my-app/1.0")
///     .build()?;
/// assert_eq!(client.base_url().as_str(), "https://api.uat-helloflex.com");
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "async")]
pub type ClientBuilder = helloflex_auth::ClientBuilder<Reqwest>;

/// A request being built by an async [`Client`]: query parameters, headers, a JSON body, then
/// `send().await`, which answers an [`ApiResponse`] (read it with `json()`, `text()` or
/// `bytes()`, not awaited) or a typed [`Error`].
///
/// ```
/// use helloflex::{ClientSecret, Environment, Error, InsecureLoopback, RequestBuilder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let client = helloflex::Client::builder()
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// let create: RequestBuilder<'_> = client
///     .post("items")
///     .header("x-request-id", "42")
///     .json(&serde_json::json!({"name": "first"}));
/// let created = create.send().await?;
/// assert_eq!(created.status(), 201);
/// let item: serde_json::Value = created.json()?;
/// assert_eq!(item["name"], "first");
/// // An error status is an `Err`, typed.
/// let missing = client.get("nowhere").send().await;
/// assert!(matches!(missing, Err(Error::Api(e)) if e.status() == 404));
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "async")]
pub type RequestBuilder<'a> = helloflex_auth::RequestBuilder<'a, helloflex_auth::AsyncTokenManager>;

/// The blocking client: the same client and builder, `send()` without `.await`.
///
/// ```
/// use helloflex::{ClientSecret, Environment, InsecureLoopback};
///
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let client = helloflex::blocking::Client::builder()
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// let news: serde_json::Value = client.get("news").send()?.json()?;
/// assert!(news.is_array());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "blocking")]
pub mod blocking {
    pub use helloflex_transport_ureq::{Ureq, UreqTransport};

    /// The blocking client: `send()`. Cheap to clone; clones (on any thread) share one token.
    ///
    /// ```
    /// use helloflex::{ClientSecret, Environment, InsecureLoopback};
    /// use helloflex::blocking::Client;
    ///
    /// let emulator = helloflex::emulator::start(Default::default())?;
    /// let client: Client = Client::builder()
    ///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
    ///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
    ///     .build()?;
    /// std::thread::scope(|threads| {
    ///     for _ in 0..8 {
    ///         let client = client.clone();
    ///         threads.spawn(move || client.get("news").send().map(|r| r.status()));
    ///     }
    /// });
    /// assert_eq!(emulator.counters().total_token_requests(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub type Client = helloflex_auth::Client<helloflex_auth::BlockingTokenManager, Ureq>;

    /// Builds a blocking [`Client`]. Nothing is sent until the first call.
    ///
    /// ```
    /// use helloflex::{ClientSecret, Environment, Timeouts};
    /// use helloflex::blocking::{Client, ClientBuilder};
    ///
    /// let builder: ClientBuilder = Client::builder();
    /// let client = builder
    ///     .environment(Environment::Live)
    ///     .client_credentials("my-client", ClientSecret::new("s3cret"))
    ///     .timeouts(Timeouts::default())
    ///     .build()?;
    /// assert_eq!(client.base_url().as_str(), "https://api.helloflex.com");
    /// // No grant chosen: a configuration error, not a panic.
    /// assert!(Client::builder().build().is_err());
    /// # Ok::<(), helloflex::Error>(())
    /// ```
    pub type ClientBuilder = helloflex_auth::ClientBuilder<Ureq>;

    /// A request being built by a blocking [`Client`]; `send()` runs it (with retries, and one
    /// replay after a 401) and answers an [`ApiResponse`](crate::ApiResponse) or a typed
    /// [`Error`](crate::Error).
    ///
    /// ```
    /// use helloflex::{ClientSecret, Environment, InsecureLoopback};
    /// use helloflex::blocking::RequestBuilder;
    ///
    /// let emulator = helloflex::emulator::start(Default::default())?;
    /// let client = helloflex::blocking::Client::builder()
    ///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
    ///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
    ///     .build()?;
    /// let request: RequestBuilder<'_> = client.get("customers/1/news").query("top", "5");
    /// let news: serde_json::Value = request.send()?.json()?;
    /// assert!(news.is_array());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub type RequestBuilder<'a> =
        helloflex_auth::RequestBuilder<'a, helloflex_auth::BlockingTokenManager>;
}

/// README.md and every page of `docs/`, as doctests: `cargo test -p helloflex --doc` compiles
/// and runs each Rust block in them, as a user of this crate would write it. `cargo xtask docs`
/// checks that every page is listed here.
#[cfg(doctest)]
mod markdown {
    #[doc = include_str!("../../../README.md")]
    mod readme {}
    #[doc = include_str!("../../../docs/ARCHITECTURE.md")]
    mod architecture {}
    #[doc = include_str!("../../../docs/behaviour.md")]
    mod behaviour {}
    #[doc = include_str!("../../../docs/benchmarks.md")]
    mod benchmarks {}
    #[doc = include_str!("../../../docs/benchmarks-notes.md")]
    mod benchmarks_notes {}
    #[doc = include_str!("../../../docs/fleet.md")]
    mod fleet {}
    #[doc = include_str!("../../../docs/interop.md")]
    mod interop {}
    #[doc = include_str!("../../../docs/security.md")]
    mod security {}
    #[doc = include_str!("../../../docs/stores.md")]
    mod stores {}
    #[doc = include_str!("../../../docs/testing-with-the-emulator.md")]
    mod testing_with_the_emulator {}
    #[doc = include_str!("../../../docs/writing-a-transport.md")]
    mod writing_a_transport {}
}
