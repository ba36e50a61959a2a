//! The async transport of the HelloFlex / Flextell SDK, over reqwest 0.13 and tokio (rustls, no
//! OpenSSL), and a ready [`Client`] whose futures are `Send` (usable from axum handlers).
//!
//! ```no_run
//! use helloflex_core::{ClientSecret, Environment};
//! use helloflex_transport_reqwest::Client;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder()
//!     .environment(Environment::Sandbox)
//!     .client_credentials(std::env::var("HELLOFLEX_CLIENT_ID")?, ClientSecret::new(std::env::var("HELLOFLEX_CLIENT_SECRET")?))
//!     .build()?;
//! let values: serde_json::Value = client.get("domainTypes/7/domainValues").query("Lang", "en").send().await?.json()?;
//! println!("{values:#}");
//! # Ok(())
//! # }
//! ```

mod client;
mod transport;

pub use client::{Client, ClientBuilder, RequestBuilder, Reqwest};
pub use helloflex_auth::Timeouts;
pub use helloflex_core::{ApiResponse, Error};
pub use transport::{ReqwestTransport, TokioRuntime};
