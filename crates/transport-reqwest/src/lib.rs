//! The async transport of the HelloFlex / Flextell SDK, over reqwest 0.13 and tokio (rustls, no
//! OpenSSL), and a ready [`Client`] whose futures are `Send` (usable from axum handlers).
//!
//! Its own client's TLS runs on aws-lc-rs with the feature `aws-lc-rs` (on by default) and on
//! ring without it, verified by the platform's verifier as reqwest's own is; a `CryptoProvider`
//! installed as rustls's process default is used instead of either.
//!
//! Against the emulator (for the real API: `Environment::Sandbox` or `Environment::Live`, and
//! your id and secret from the environment):
//!
//! ```
//! use helloflex_core::{ClientSecret, Environment, InsecureLoopback};
//! use helloflex_transport_reqwest::Client;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = helloflex_emulator::start(Default::default())?;
//! let client = Client::builder()
//!     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
//!     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
//!     .build()?;
//! let values: serde_json::Value = client.get("domainTypes/7/domainValues").query("Lang", "en").send().await?.json()?;
//! assert!(values.is_array());
//! # Ok(())
//! # }
//! ```

mod client;
mod recent;
mod tls;
mod transport;

pub use client::{Client, ClientBuilder, RequestBuilder, Reqwest};
pub use helloflex_auth::Timeouts;
pub use helloflex_core::{ApiResponse, Error};
pub use transport::{ReqwestTransport, TokioRuntime};
