//! The blocking transport of the HelloFlex / Flextell SDK, over ureq 3 (rustls, no OpenSSL),
//! and a ready [`Client`].
//!
//! ```no_run
//! use helloflex_core::{ClientSecret, Environment};
//! use helloflex_transport_ureq::Client;
//!
//! let client = Client::builder()
//!     .environment(Environment::Sandbox)
//!     .client_credentials(std::env::var("HELLOFLEX_CLIENT_ID")?, ClientSecret::new(std::env::var("HELLOFLEX_CLIENT_SECRET")?))
//!     .build()?;
//! let values: serde_json::Value = client.get("domainTypes/7/domainValues").query("Lang", "en").send()?.json()?;
//! println!("{values:#}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod transport;

pub use client::{Client, ClientBuilder, RequestBuilder, Ureq};
pub use helloflex_auth::Timeouts;
pub use helloflex_core::{ApiResponse, Error};
pub use transport::UreqTransport;
