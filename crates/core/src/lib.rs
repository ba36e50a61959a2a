//! The sans-IO core of the HelloFlex / Flextell SDK.
//!
//! It builds requests, reads responses and decides what happens next, as pure state machines.
//! It reads no clock, opens no socket or file, spawns nothing and draws no randomness: `now`
//! and random bytes are handed in. The transport crates (blocking and async, or your own) move the
//! bytes; `helloflex-auth` shares the token lifecycle between threads and tasks.
//!
//! Examples of the types an application names are written as a user of the `helloflex` crate
//! (the one dependency most users have) writes them: `helloflex::Environment` is this crate's
//! [`Environment`]; the machines, which `helloflex` keeps under `helloflex::core::machines`, are
//! named by their path here.
//!
//! A client-credentials token fetch and an API call, driven by hand against canned responses:
//!
//! ```
//! use std::time::Instant;
//! use helloflex_core::*;
//! use helloflex_core::machines::*;
//!
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now();
//! let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
//!
//! // 1. The token lifecycle says this caller must fetch.
//! let mut cache = TokenCache::client_credentials(LifecyclePolicy::default());
//! let Acquire::Fetch(ticket) = cache.acquire(now) else { unreachable!() };
//!
//! // 2. The exchange says what to send; a transport would send it.
//! let mut fetch = TokenExchange::new(config.token_request()?, RetryPolicy::default(), 1);
//! let Poll::Send(request) = fetch.poll(now) else { unreachable!() };
//! assert_eq!(request.uri(), "https://api.uat-helloflex.com/oauth2/token");
//! let reply = http::Response::new(br#"{"access_token":"t0k","token_type":"Bearer","expires_in":3599}"#.to_vec());
//! fetch.handle_response(now, reply);
//! let Poll::Done(Ok(fetched)) = fetch.poll(now) else { unreachable!() };
//!
//! // 3. The token goes into the cache, and the API call asks for it.
//! let set = cache.token_set(&ticket, fetched.response, fetched.sent_at);
//! cache.complete(now, ticket, Ok(set), 7);
//! let mut call = ApiCall::new(ApiRequest::get("news"), Environment::Sandbox.base_url(), RetryPolicy::default(), 2);
//! assert!(matches!(call.poll(now), Poll::NeedToken { rejected: None }));
//! let Acquire::Use(token) = cache.acquire(now) else { unreachable!() };
//! call.handle_token(Ok(token));
//! let Poll::Send(request) = call.poll(now) else { unreachable!() };
//! assert_eq!(request.headers()["authorization"], "Bearer t0k");
//! call.handle_response(now, http::Response::new(b"[]".to_vec()));
//! assert!(matches!(call.poll(now), Poll::Done(Ok(_))));
//! # Ok::<(), Error>(())
//! ```
//!
//! The same exchange against the emulator, with ureq moving the bytes: this loop is all a
//! transport does (`docs/writing-a-transport.md` has the whole contract).
//!
//! ```
//! use std::time::Instant;
//! use helloflex_core::*;
//! use helloflex_core::machines::*;
//!
//! let emulator = helloflex_emulator::start(Default::default())?;
//! let environment = Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?;
//! let config = ClientCredentialsConfig::new("demo-client", ClientSecret::new("demo-secret"), &environment);
//! let mut fetch = TokenExchange::new(config.token_request()?, RetryPolicy::default(), 1);
//! let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
//! # #[allow(clippy::disallowed_methods)]
//! let fetched = loop {
//!     match fetch.poll(Instant::now()) {
//!         Poll::Send(request) => {
//!             let (parts, mut body) = http.run(request)?.into_parts();
//!             let response = http::Response::from_parts(parts, body.read_to_vec()?);
//!             fetch.handle_response(Instant::now(), response);
//!         }
//!         Poll::Sleep(until) => std::thread::sleep(until.saturating_duration_since(Instant::now())),
//!         Poll::Done(result) => break result?,
//!         Poll::NeedToken { .. } => unreachable!("a token request needs no token"),
//!     }
//! };
//! assert!(!fetched.response.access_token.expose_secret().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// No panics on any input: the core's code (not its tests) may not unwrap, index or panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod api_error;
mod api_request;
mod api_response;
mod callback;
mod challenge;
mod config;
mod deadline;
mod encoding;
mod endpoint;
mod error;
mod excerpt;
mod exchange;
mod identity;
mod interruption;
mod json;
mod lifecycle;
mod oauth_error;
mod pkce;
mod protocol_error;
mod retry;
mod retry_after;
mod scrub;
mod secret;
mod store_error;
mod token_request;
mod token_response;

// What an application uses: settings, requests and answers, tokens, errors.
pub use api_error::{ApiError, ApiErrorKind, ValidationErrors, classify_response};
pub use api_request::ApiRequest;
pub use api_response::{ApiResponse, decode_json};
pub use callback::{AuthorizationId, PendingAuthorization};
pub use challenge::{BearerChallenge, UnauthorizedCause};
pub use config::{
    AuthorizationCodeConfig, AuthorizationCodeConfigBuilder, ClientCredentialsConfig, Environment,
    LIVE_URL, SANDBOX_URL, TOKEN_PATH,
};
pub use endpoint::{Endpoint, InsecureLoopback};
pub use error::{
    Blame, CallbackError, ConfigError, Error, ProtocolError, Reauthorization, TransportError,
    TransportErrorKind, UsageError,
};
pub use identity::{ClientAuthMethod, ClientIdentity};
pub use interruption::Interruption;
pub use lifecycle::{LifecyclePolicy, Token, TokenId, TokenSet};
pub use oauth_error::{OAuthError, OAuthErrorCode};
pub use retry::RetryPolicy;
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, CsrfState, PkceVerifier, RefreshToken,
};
pub use store_error::{OpenError, StoreError, StoreErrorKind};
pub use token_response::{MAX_LIFETIME, MIN_LIFETIME, TokenResponse, parse_token_response};

/// The state machines and helpers beneath the clients, for people who drive the core by hand
/// or write a transport or a token manager: the token lifecycle ([`machines::TokenCache`]),
/// exchanges ([`machines::TokenExchange`], [`machines::ApiCall`]) and the authorization-code
/// chain. An application using `helloflex-auth`'s client never needs them.
///
/// The authorization-code chain, by value from the authorization URL to a token set:
///
/// ```
/// use std::time::{Duration, Instant};
/// use helloflex_core::{AuthorizationCodeConfig, ClientIdentity, Endpoint, InsecureLoopback, RetryPolicy};
/// use helloflex_core::machines::{Exchange, Poll, TokenExchange, start_authorization};
///
/// let url = |u: &str| Endpoint::parse(u, InsecureLoopback::Deny);
/// let config = AuthorizationCodeConfig::builder(ClientIdentity::public("my-cli"))
///     .authorize_url(url("https://login.flextell.example/oauth2/authorize")?)
///     .token_url(url("https://login.flextell.example/oauth2/token")?)
///     .redirect_uri(url("https://my-app.example/callback")?)
///     .build()?;
/// let entropy: [u8; 64] = std::array::from_fn(|i| (i * 37 + 11) as u8); // from the OS RNG in real use
/// let (authorize, pending) = start_authorization(&config, &entropy)?;
/// // The browser goes to `authorize` and comes back with a code and the same state.
/// let state = authorize.split("state=").nth(1).and_then(|s| s.split('&').next()).ok_or("no state")?;
/// let code = pending.check_callback(&format!("?code=c0de&state={state}"))?;
/// let mut exchange = TokenExchange::new(code.into_token_request(&config)?, RetryPolicy::default(), 1);
/// let now = Instant::now();
/// let Poll::Send(_) = exchange.poll(now) else { unreachable!() };
/// let tokens = br#"{"access_token":"at","refresh_token":"rt","expires_in":3600}"#.to_vec();
/// exchange.handle_response(now, http::Response::new(tokens));
/// let Poll::Done(fetched) = exchange.poll(now) else { unreachable!() };
/// let set = fetched?.into_token_set(Duration::from_secs(300));
/// assert_eq!(set.refresh_token.map(|r| r.len()), Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod machines {
    pub use crate::api_error::is_success;
    pub use crate::api_request::bearer_header;
    pub use crate::callback::{AUTHORIZATION_ENTROPY_BYTES, AuthorizedCode, start_authorization};
    pub use crate::deadline::{FAR_FUTURE, saturating_add, saturating_add_wall};
    pub use crate::excerpt::{EXCERPT_CHARS, Excerpt};
    pub use crate::exchange::{ApiCall, Exchange, Fetched, Poll, TokenExchange};
    pub use crate::lifecycle::{
        Acquire, Completion, Grant, Ticket, TokenCache, live_and_not_held, newer_than_held,
    };
    pub use crate::pkce::pkce_challenge;
    pub use crate::retry_after::retry_after;
    pub use crate::token_request::{TokenGrant, TokenRequest};
    pub use crate::token_response::{MAX_TOKEN_BYTES, MAX_TOKEN_RESPONSE_BYTES};
}
