//! Grant flows, token managers and the transport seam of the HelloFlex / Flextell SDK.
//!
//! The core (`helloflex-core`) decides; this crate makes its single-threaded machines safe to
//! share between threads ([`BlockingTokenManager`]) and tasks ([`AsyncTokenManager`]), drives
//! them over any transport ([`BlockingTransport`], [`AsyncTransport`]), and owns the two edges
//! the core is handed: the [`Clock`] and the OS entropy.
//!
//! Examples of the types an application names are written as a user of the `helloflex` crate
//! (the one dependency most users have) writes them: `helloflex::MemoryStore` is this crate's
//! [`MemoryStore`], `helloflex::blocking::Client` the [`Client`] over the ureq transport. The
//! seam and the managers beneath the client, which `helloflex` keeps under `helloflex::auth`,
//! are named by their path here.
//!
//! The one [`Client`], against the emulator, over the ureq transport (with reqwest it is the
//! same, with `.await`):
//!
//! ```
//! # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
//! use helloflex::{ClientSecret, Environment, InsecureLoopback};
//!
//! let emulator = helloflex::emulator::start(Default::default())?;
//! let settings = emulator.helloflex();
//! let client = helloflex::blocking::Client::builder()
//!     .environment(Environment::custom(&settings.base_url, InsecureLoopback::Allow)?)
//!     .client_credentials(settings.client_id, ClientSecret::new(settings.client_secret))
//!     .build()?;
//! let news: serde_json::Value = client.get("news").send()?.json()?;
//! assert!(news.is_array());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Beneath it, the transport seam: any HTTP stack (here a test double) under a token manager.
//!
//! ```
//! use std::sync::Arc;
//! use helloflex_auth::{BlockingTokenManager, BlockingTransport, Request, Response};
//! use helloflex_core::{ApiRequest, ClientCredentialsConfig, ClientSecret, Environment, RetryPolicy, TransportError};
//! use helloflex_core::machines::{ApiCall};
//!
//! /// A test double: answers token requests and API calls.
//! struct Canned;
//! impl BlockingTransport for Canned {
//!     fn send(&self, request: Request) -> Result<Response, TransportError> {
//!         let body = if request.uri().path() == "/oauth2/token" {
//!             br#"{"access_token":"t0k","token_type":"Bearer","expires_in":3599}"#.to_vec()
//!         } else {
//!             assert_eq!(request.headers()["authorization"], "Bearer t0k");
//!             br#"[{"title":"hello"}]"#.to_vec()
//!         };
//!         Ok(http::Response::new(body))
//!     }
//! }
//!
//! let environment = Environment::Sandbox;
//! let config = ClientCredentialsConfig::new("id", ClientSecret::new("secret"), &environment);
//! let tokens = BlockingTokenManager::client_credentials(config, Arc::new(Canned));
//! let call = ApiCall::new(ApiRequest::get("news"), environment.base_url(), RetryPolicy::default(), 1);
//! let news = tokens.call(call)?;
//! assert_eq!(news.status(), 200);
//! # Ok::<(), helloflex_core::Error>(())
//! ```

mod blocking;
mod client;
mod clock;
mod drive;
mod entropy;
mod fill;
mod flavour;
mod held;
mod manager;
mod nonblocking;
mod options;
mod ready;
mod steps;
mod store;
mod transport;

pub use blocking::BlockingTokenManager;
pub use client::{
    Client, ClientBuilder, Connector, HttpOptions, OwnAsync, OwnBlocking, RequestBuilder, Timeouts,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use entropy::{Entropy, OsEntropy, os_bytes};
pub use manager::ManagerBuilder;
pub use nonblocking::{AsyncRuntime, AsyncTokenManager, Task};
pub use options::ManagerOptions;
// The one store error is the core's, so that it reaches a caller's `Error::Store` unchanged.
pub use helloflex_core::{OpenError, StoreError, StoreErrorKind};
pub use store::{
    Claim, FileStore, Key, KeyError, KeyRing, Loaded, MemoryStore, Record, RecordScope,
    RecordSealing, StoredTokens, Swap, TokenStore,
};
pub use transport::{
    AsyncTransport, BlockingTransport, MAX_BODY_BYTES, Request, Response, TransportErrorKind,
};
