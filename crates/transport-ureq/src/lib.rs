//! The blocking transport of the HelloFlex / Flextell SDK, over ureq 3 (rustls, no OpenSSL),
//! and a ready [`Client`].
//!
//! Against the emulator (for the real API: `Environment::Sandbox` or `Environment::Live`, and
//! your id and secret from the environment):
//!
//! ```
//! use helloflex_core::{ClientSecret, Environment, InsecureLoopback};
//! use helloflex_transport_ureq::Client;
//!
//! let emulator = helloflex_emulator::start(Default::default())?;
//! let client = Client::builder()
//!     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
//!     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
//!     .build()?;
//! let values: serde_json::Value = client.get("domainTypes/7/domainValues").query("Lang", "en").send()?.json()?;
//! assert!(values.is_array());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod resolve;
mod sparing;
mod transport;

pub use client::{Client, ClientBuilder, RequestBuilder, Ureq};
pub use helloflex_auth::Timeouts;
pub use helloflex_core::{ApiResponse, Error};
pub use transport::UreqTransport;
