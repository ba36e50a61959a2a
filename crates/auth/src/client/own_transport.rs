//! A user's own transport as a client's [`Connector`]: [`OwnBlocking`] and [`OwnAsync`].

use std::sync::Arc;

use helloflex_core::Error;

use crate::blocking::BlockingTokenManager;
use crate::manager::ManagerBuilder;
use crate::nonblocking::{AsyncRuntime, AsyncTokenManager};
use crate::transport::{AsyncTransport, BlockingTransport};

use super::{Connector, HttpOptions};

/// Your own blocking transport as a client's connector.
///
/// ```
/// # mod helloflex { pub use ::helloflex_auth::*; pub use ::helloflex_core::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use std::sync::Arc;
/// use helloflex::auth::{BlockingTransport, ClientBuilder, OwnBlocking, Request, Response};
/// use helloflex::{ClientSecret, Environment, InsecureLoopback, Timeouts, TransportError};
/// use helloflex::blocking::UreqTransport;
/// # let emulator = helloflex::emulator::start(Default::default())?;
///
/// /// Counts the requests it sends: a transport of your own around the shipped one.
/// struct Counted(UreqTransport, std::sync::atomic::AtomicU32);
///
/// impl BlockingTransport for Counted {
///     fn send(&self, request: Request) -> Result<Response, TransportError> {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.send(request)
///     }
/// }
///
/// let transport = Arc::new(Counted(UreqTransport::new(Timeouts::default()), Default::default()));
/// let client = ClientBuilder::new(OwnBlocking(transport.clone()))
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// client.get("news").send()?;
/// assert_eq!(transport.1.load(std::sync::atomic::Ordering::Relaxed), 2); // the token, the call
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OwnBlocking(pub Arc<dyn BlockingTransport>);

impl Connector for OwnBlocking {
    type Manager = BlockingTokenManager;
    fn connect(self, _: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        Ok(tokens.blocking(self.0))
    }
}

/// Your own async transport (and runtime) as a client's connector. Hand it your runtime where
/// you have one (token requests then run detached on it, store I/O off the executor); without
/// one (`None`) the manager keeps each token request and the callers waiting for it drive it
/// (see [`AsyncTokenManager`]).
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{AsyncRuntime, AsyncTransport, ClientBuilder, OwnAsync, Request, Response, Task};
/// use helloflex_core::{ClientSecret, TransportError};
///
/// /// A test double: a token for token requests, `[]` for API calls.
/// struct Canned;
///
/// #[async_trait::async_trait]
/// impl AsyncTransport for Canned {
///     async fn send(&self, request: Request) -> Result<Response, TransportError> {
///         let body: &[u8] = match request.uri().path() {
///             "/oauth2/token" => br#"{"access_token":"t0k","expires_in":3600}"#,
///             _ => b"[]",
///         };
///         Ok(http::Response::new(body.to_vec()))
///     }
///
///     async fn sleep(&self, duration: std::time::Duration) {
///         tokio::time::sleep(duration).await;
///     }
/// }
///
/// /// Your runtime: token requests run detached on it, store I/O on its blocking pool.
/// #[derive(Debug)]
/// struct Tokio(tokio::runtime::Handle);
///
/// impl AsyncRuntime for Tokio {
///     fn spawn(&self, task: Task) {
///         drop(self.0.spawn(task));
///     }
///
///     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) -> Task {
///         let done = self.0.spawn_blocking(work);
///         Box::pin(async move {
///             let _ = done.await;
///         })
///     }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
/// let runtime = Arc::new(Tokio(tokio::runtime::Handle::current()));
/// let client = ClientBuilder::new(OwnAsync(Arc::new(Canned), Some(runtime)))
///     .client_credentials("my-client", ClientSecret::new("s3cret"))
///     .build()?;
/// assert_eq!(client.get("news").send().await?.status(), 200);
/// # Ok::<(), helloflex_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OwnAsync(pub Arc<dyn AsyncTransport>, pub Option<Arc<dyn AsyncRuntime>>);

impl Connector for OwnAsync {
    type Manager = AsyncTokenManager;
    fn connect(self, _: &HttpOptions, tokens: ManagerBuilder) -> Result<Self::Manager, Error> {
        Ok(tokens.nonblocking(self.0, self.1))
    }
}
