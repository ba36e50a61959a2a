//! The ready async client: [`helloflex_auth::Client`] over [`ReqwestTransport`], its token
//! requests run on the tokio runtime it is built in, or on the one handed to it.

use std::sync::Arc;

use helloflex_auth::{AsyncTokenManager, Connector, HttpOptions, ManagerBuilder};
use helloflex_core::{ConfigError, Error};

use crate::transport::{ReqwestTransport, TokioRuntime};

/// The async HelloFlex / Flextell client (see [`helloflex_auth::Client`]): `send().await`.
pub type Client = helloflex_auth::Client<AsyncTokenManager, Reqwest>;
/// Builds a [`Client`].
pub type ClientBuilder = helloflex_auth::ClientBuilder<Reqwest>;
/// A request being built by a [`Client`].
pub type RequestBuilder<'a> = helloflex_auth::RequestBuilder<'a, AsyncTokenManager>;

/// What [`ConfigError::NoRuntime`] tells a client built outside a tokio runtime to do.
const NO_RUNTIME_FIX: &str = "build the client inside the tokio runtime (in `async fn main`, \
    or inside `Runtime::block_on`), or hand it one with \
    `.connector(Reqwest::default().with_runtime(handle))`";

/// The reqwest connector of a [`ClientBuilder`]: its own `reqwest::Client` by default, or yours
/// (its pool, TLS and proxy settings) through [`Reqwest::with_client`]; the tokio runtime the
/// client is built in, or the one handed to it with [`Reqwest::with_runtime`].
///
/// The client's token requests run as tasks on that runtime, never inside a caller's future,
/// so a caller dropped mid-request (a `timeout`, a client disconnect) never abandons a request
/// that may have spent a refresh token. Built outside a runtime with none handed to it, `build`
/// fails with [`ConfigError::NoRuntime`] rather than guess.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_reqwest::{Client, ClientBuilder, RequestBuilder, Reqwest, ReqwestTransport, TokioRuntime}; }
/// use helloflex::{ClientSecret, ConfigError, Error, Reqwest};
///
/// let runtime = tokio::runtime::Runtime::new()?;
/// // Built outside the runtime (here in a plain `fn main`): hand it the runtime it runs on.
/// let client = helloflex::Client::builder()
///     .connector(Reqwest::default().with_runtime(runtime.handle().clone()))
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .build()?;
/// # drop(client);
/// // With none handed in, building says what to do.
/// let refused = helloflex::Client::builder()
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .build();
/// assert!(matches!(refused, Err(Error::Config(ConfigError::NoRuntime { .. }))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Reqwest {
    client: Option<reqwest::Client>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Reqwest {
    /// Uses an existing reqwest client. Build it with
    /// `redirect(reqwest::redirect::Policy::none())` and timeouts (see
    /// [`ReqwestTransport::with_client`]).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client: Some(client), runtime: None }
    }

    /// Runs the client's token requests on the runtime of `handle`, wherever the client is
    /// built: for a client built before its runtime starts (a `static`), or outside it. The
    /// runtime must live as long as the client: once it has shut down, a token request fails
    /// at once with [`helloflex_core::Interruption::RuntimeShutDown`].
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_reqwest::{Client, ClientBuilder, RequestBuilder, Reqwest, ReqwestTransport, TokioRuntime}; }
    /// use std::sync::LazyLock;
    /// use helloflex::{Client, ClientSecret, Environment, InsecureLoopback, Reqwest};
    ///
    /// // One runtime for the process, and a client built before anything runs on it.
    /// static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    ///     LazyLock::new(|| tokio::runtime::Runtime::new().expect("a tokio runtime"));
    ///
    /// let emulator = helloflex::emulator::start(Default::default())?;
    /// let client = Client::builder()
    ///     .connector(Reqwest::default().with_runtime(RUNTIME.handle().clone()))
    ///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
    ///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
    ///     .build()?;
    /// let news = RUNTIME.block_on(client.get("news").send())?;
    /// assert_eq!(news.status(), 200);
    ///
    /// // Outside a runtime and with none handed in, building says what to do.
    /// let built = Client::builder().client_credentials("demo-client", ClientSecret::new("s")).build();
    /// assert!(built.unwrap_err().to_string().contains("with_runtime"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }
}

impl Connector for Reqwest {
    type Manager = AsyncTokenManager;

    /// Token requests run detached on the runtime handed in, else on the one this is called
    /// in, and store I/O on its blocking pool; with neither, [`ConfigError::NoRuntime`].
    fn connect(self, http: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        let runtime = match self.runtime {
            Some(handle) => TokioRuntime::new(handle),
            None => {
                TokioRuntime::current().ok_or(ConfigError::NoRuntime { fix: NO_RUNTIME_FIX })?
            }
        };
        let transport = match self.client {
            Some(client) => {
                ReqwestTransport::with_client(client).with_body_limit(http.body_limit())
            }
            None => ReqwestTransport::from_options(http)?,
        };
        Ok(tokens.nonblocking(Arc::new(transport), Some(Arc::new(runtime))))
    }
}
