//! One dependency for the HelloFlex API (client-credentials grant) and the Flextell API
//! (authorization code with PKCE and rotating refresh tokens): tokens are fetched once, shared
//! by every clone, thread and task, refreshed before they expire and stored before they are
//! used; errors are typed.
//!
//! `helloflex::Client` is async (reqwest, tokio); `helloflex::blocking::Client` is blocking
//! (ureq). Both are the same client with the same builder; features `async` and `blocking`
//! (both on by default) choose which are compiled.
//!
//! The async client runs its token requests as tasks on a tokio runtime, never inside a
//! caller's future (a caller dropped mid-request must not abandon a request that may have
//! spent a refresh token): the runtime it is built in, so build it inside one (in
//! `async fn main`, or inside `Runtime::block_on`), or hand it one for a client built before
//! or outside its runtime (a `static`):
//! `Client::builder().connector(helloflex::Reqwest::default().with_runtime(handle))`.
//! Built outside a runtime with none handed in, `build` fails with
//! [`ConfigError::NoRuntime`]; once that runtime has shut down, a token request fails at once
//! with [`UsageError::RuntimeShutDown`].
//!
//! Against the embedded emulator (no network, no credentials; against the real API use
//! `Environment::Sandbox` or `Environment::Live` and your own client id and secret):
//!
//! ```
//! use helloflex::{ClientSecret, Environment, InsecureLoopback};
//!
//! let emulator = helloflex_emulator::start(Default::default())?;
//! let client = helloflex::blocking::Client::builder()
//!     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
//!     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
//!     .build()?;
//! let news: serde_json::Value = client.get("news").send()?.json()?;
//! assert!(news.is_array());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The layered crates stay available for people who embed the sans-IO core or bring their own
//! HTTP stack: [`core`] (requests, parsing, the token lifecycle as pure machines) and [`auth`]
//! (token managers, stores, the one client over any transport).

pub use helloflex_auth as auth;
pub use helloflex_core as core;

pub use helloflex_auth::{
    FileStore, Loaded, ManagerOptions, MemoryStore, Record, StoreError, StoredTokens, Timeouts,
    TokenStore,
};
pub use helloflex_core::{
    ApiError, ApiErrorKind, ApiRequest, ApiResponse, AuthorizationCodeConfig, CallbackError,
    ClientAuthMethod, ClientIdentity, ClientSecret, ConfigError, Endpoint, Environment, Error,
    InsecureLoopback, PendingAuthorization, Reauthorization, RetryPolicy, Token, UsageError,
};

#[cfg(feature = "async")]
pub use helloflex_transport_reqwest::{Client, ClientBuilder, RequestBuilder, Reqwest};

/// The blocking client: the same client and builder, `send()` without `.await`.
#[cfg(feature = "blocking")]
pub mod blocking {
    pub use helloflex_transport_ureq::{Client, ClientBuilder, RequestBuilder};
}
