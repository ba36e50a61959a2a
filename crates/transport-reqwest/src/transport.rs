//! [`ReqwestTransport`]: the workspace's [`AsyncTransport`] over reqwest 0.13.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::tls::Roots;
use helloflex_auth::{
    AsyncRuntime, AsyncTransport, HttpOptions, MAX_BODY_BYTES, Request, Response, Task, Timeouts,
};
use helloflex_core::{TransportError, TransportErrorKind};

/// An async transport over reqwest that honours the transport contract: every status returned
/// with headers and body, no redirects followed, body capped while reading, timeouts on.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_reqwest::{Client, ClientBuilder, RequestBuilder, Reqwest, ReqwestTransport, TokioRuntime}; }
/// use std::sync::Arc;
/// use helloflex::auth::{AsyncTransport, ClientBuilder, OwnAsync};
/// use helloflex::{ClientSecret, Environment, InsecureLoopback, ReqwestTransport, Timeouts, TokioRuntime};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let transport = ReqwestTransport::new(Timeouts::default(), "my-app/1.0")?;
/// // Every status is a response: without a token, the API's 401 is data, not an error.
/// let news = format!("{}/news", emulator.base_url());
/// let answer = transport.send(http::Request::get(news).body(Vec::new())?).await?;
/// assert_eq!(answer.status(), 401);
/// // Under a client of your own making (a wrapper around it, say):
/// let runtime = TokioRuntime::current().map(|r| Arc::new(r) as _);
/// let client = ClientBuilder::new(OwnAsync(Arc::new(transport), runtime))
///     .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
///     .client_credentials("demo-client", ClientSecret::new("demo-secret"))
///     .build()?;
/// assert_eq!(client.get("news").send().await?.status(), 200);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    body_limit: usize,
    /// Our own client follows no redirect (its policy is `none`); a caller's client might, so
    /// only then is each answer's URL compared with the request's.
    check_redirects: bool,
    /// Parsed `scheme://authority/` of the origins called: a request's URL is the origin's with
    /// the core's already-encoded path and query set, instead of the whole URL printed from the
    /// `http::Uri` and parsed again (host parsing is most of a URL parse).
    origins: Arc<Origins>,
}

/// The origins called, parsed, each in a slot filled once and read without a lock, so
/// concurrent calls write to no shared cache line.
#[derive(Debug, Default)]
struct Origins([OnceLock<(String, reqwest::Url)>; ORIGINS_KEPT]);

/// Origins remembered (an SDK client talks to one or two: the API, the token endpoint); one
/// more is parsed on each call.
const ORIGINS_KEPT: usize = 8;

impl Origins {
    /// The parsed origin `scheme://authority`, kept on first sight while a slot is free.
    fn get(&self, scheme: &str, authority: &str) -> Option<reqwest::Url> {
        let same = |key: &String| {
            key.len() == scheme.len() + 3 + authority.len()
                && key.starts_with(scheme)
                && key.ends_with(authority)
        };
        let mut filled = self.0.iter().map_while(OnceLock::get);
        if let Some((_, url)) = filled.find(|(key, _)| same(key)) {
            return Some(url.clone());
        }
        let key = format!("{scheme}://{authority}");
        let url = reqwest::Url::parse(&key).ok()?;
        let mut entry = (key, url.clone());
        for slot in &self.0 {
            // Another caller may fill a slot first (with this origin, at worst a second time).
            match slot.set(entry) {
                Ok(()) => break,
                Err(back) => entry = back,
            }
        }
        Some(url)
    }
}

impl ReqwestTransport {
    /// A transport with its own client: rustls (over aws-lc-rs with the feature `aws-lc-rs`,
    /// else ring, unless the process has a default provider), redirects and reqwest's own
    /// retries off (the core decides every retry), connect and total timeouts
    /// (`Duration::MAX`: none, see [`Timeouts::clamped`]).
    /// Proxies named by `*_PROXY` environment variables are used (see [`Self::from_options`]).
    pub fn new(timeouts: Timeouts, user_agent: &str) -> Result<Self, TransportError> {
        let mut options = HttpOptions::default();
        options.timeouts = timeouts;
        Self::build(&options, user_agent)
    }

    /// A transport with its own client, set up from `options` (timeouts, User-Agent, body cap,
    /// whether `*_PROXY` environment variables apply, root certificates).
    pub fn from_options(options: &HttpOptions) -> Result<Self, TransportError> {
        let transport = Self::build(options, &options.user_agent_for("reqwest"))?;
        Ok(transport.with_body_limit(options.body_limit()))
    }

    fn build(options: &HttpOptions, user_agent: &str) -> Result<Self, TransportError> {
        // No limit (`Duration::MAX`) as 100 years, as every transport hands it over: tokio
        // saturates a far deadline today, but nothing promises every timer in the stack will.
        let timeouts = options.timeouts.clamped();
        let invalid = |e: &dyn std::fmt::Display| {
            TransportError::new(TransportErrorKind::Other, format!("root certificates: {e}"))
        };
        let certificates = options.root_certificates_der().map_err(|e| invalid(&e))?;
        let proxy_env = |name: &str| std::env::var(name).ok();
        let roots = if !certificates.is_empty() {
            Roots::Only(certificates)
        } else if options.needs_tls() || (options.proxy_from_env && tls_proxy(proxy_env)) {
            Roots::Platform
        } else {
            // Every endpoint is plain HTTP on loopback, and no proxy speaks TLS.
            Roots::Nothing
        };
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config(roots)?)
            .redirect(reqwest::redirect::Policy::none())
            // Retries are the core's alone (it counts each attempt and knows which requests may
            // be replayed). reqwest's own layer would replay only HTTP/2 refusals, which this
            // HTTP/1.1 client never gets, yet copies every request in case; with no retry
            // allowed it copies none (about 1,800 instructions per call).
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .pool_max_idle_per_host(64)
            .user_agent(user_agent);
        let builder = if options.proxy_from_env { builder } else { builder.no_proxy() };
        let client = builder.build().map_err(|e| {
            TransportError::new(TransportErrorKind::Other, format!("building the HTTP client: {e}"))
        })?;
        Ok(Self { check_redirects: false, ..Self::with_client(client) })
    }

    /// A transport over an existing client. Build it with
    /// `redirect(reqwest::redirect::Policy::none())` and timeouts: reqwest cannot turn redirects
    /// off per request. A response that arrives after a redirect is refused as
    /// [`TransportErrorKind::Redirect`], but by then the request was re-sent.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client, body_limit: MAX_BODY_BYTES, check_redirects: true, origins: Arc::default() }
    }

    /// The URL of `uri` as reqwest wants it: the origin parsed once, path and query set (or a
    /// copy of the one this thread built for the same URI lately, see [`crate::recent`]).
    fn url(&self, uri: &http::Uri) -> Result<reqwest::Url, TransportError> {
        let invalid = || TransportError::new(TransportErrorKind::Other, "invalid request URL");
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(invalid());
        };
        let path_and_query = uri.path_and_query();
        let text = path_and_query.map_or("", |pq| pq.as_str());
        crate::recent::url_for(scheme, authority.as_str(), text, || {
            let mut url = self.origins.get(scheme, authority.as_str())?;
            url.set_path(path_and_query.map_or("/", |pq| pq.path()));
            url.set_query(path_and_query.and_then(|pq| pq.query()));
            Some(url)
        })
        .ok_or_else(invalid)
    }

    /// Caps response bodies at `bytes`.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

// Written out rather than with `#[async_trait]`: the request is turned into reqwest's before
// the future is made, so the boxed future holds only what crosses an await (about half the
// size an `async fn` body keeps, its moved-from argument included), and is moved once.
impl AsyncTransport for ReqwestTransport {
    fn send<'a, 'f>(&'a self, request: Request) -> BoxFuture<'f, Result<Response, TransportError>>
    where
        'a: 'f,
        Self: 'f,
    {
        let request = match self.prepare(request) {
            Ok(request) => request,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let sent_to = self.check_redirects.then(|| target(request.url()));
        // reqwest starts its timers as it takes the request, which only works inside a runtime:
        // there (the drive loop always is) it takes it now, and the boxed future holds reqwest's
        // small handle instead of the request (760 bytes -> a third of that, written per call).
        if tokio::runtime::Handle::try_current().is_err() {
            return self.send_when_polled(request, sent_to);
        }
        Box::pin(self.read(self.client.execute(request), sent_to))
    }

    fn sleep<'a, 'f>(&'a self, duration: Duration) -> BoxFuture<'f, ()>
    where
        'a: 'f,
        Self: 'f,
    {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The boxed future of an [`AsyncTransport`] method, as `async_trait` writes it.
type BoxFuture<'f, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'f>>;

impl ReqwestTransport {
    /// A send made outside any runtime: reqwest takes the request on the future's first poll.
    /// Out of `send`'s line, so its future (the whole request) is not laid out in `send`'s
    /// stack frame, below which reqwest builds its own on every call.
    #[cold]
    #[inline(never)]
    fn send_when_polled<'f>(
        &'f self,
        request: reqwest::Request,
        sent_to: Option<u64>,
    ) -> BoxFuture<'f, Result<Response, TransportError>> {
        Box::pin(async move { self.read(self.client.execute(request), sent_to).await })
    }

    /// The core's request as reqwest's. Out of `send`'s line, so the parts it takes apart
    /// are laid out in a frame of its own, gone before reqwest builds its own below `send`'s.
    #[inline(never)]
    fn prepare(&self, request: Request) -> Result<reqwest::Request, TransportError> {
        let (parts, body) = request.into_parts();
        let mut request = reqwest::Request::new(parts.method, self.url(&parts.uri)?);
        *request.headers_mut() = parts.headers;
        *request.version_mut() = parts.version;
        // No body at all where there is none: the headers carry any framing (the core's).
        if !body.is_empty() {
            *request.body_mut() = Some(body.into());
        }
        Ok(request)
    }

    /// Reads the answer to a request sent (`sent`) under the contract. `sent_to` is the
    /// request's target when a followed redirect must be told apart: compared as reqwest parsed
    /// both (host case, IPv6 spelling, dot segments normalised alike), so only a followed
    /// redirect can make them differ; a fingerprint rather than a copy of the URL, so no
    /// allocation per call.
    async fn read(
        &self,
        sent: impl Future<Output = Result<reqwest::Response, reqwest::Error>>,
        sent_to: Option<u64>,
    ) -> Result<Response, TransportError> {
        let mut response = sent.await.map_err(map_error)?;
        let same_target = sent_to.is_none_or(|sent_to| target(response.url()) == sent_to);
        if !same_target {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                "the HTTP client followed a redirect",
            ));
        }
        if response.content_length().is_some_and(|len| len > self.body_limit as u64) {
            return Err(too_large(self.body_limit));
        }
        let mut body = Vec::with_capacity(response.content_length().map_or(0, |l| l as usize));
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if body.len() + chunk.len() > self.body_limit {
                return Err(too_large(self.body_limit));
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = response.status();
        *out.version_mut() = response.version();
        *out.headers_mut() = std::mem::take(response.headers_mut());
        Ok(out)
    }
}

/// A fingerprint of where a URL points (scheme, host, port, path), to tell a followed redirect
/// from the request's own target without copying the URL.
fn target(url: &reqwest::Url) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    url.scheme().hash(&mut hasher);
    url.host_str().hash(&mut hasher);
    url.port_or_known_default().hash(&mut hasher);
    url.path().hash(&mut hasher);
    hasher.finish()
}

#[cold]
fn too_large(limit: usize) -> TransportError {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        format!("response body exceeds {limit} bytes"),
    )
}

/// Whether a proxy named by the environment (read through `var`) is reached over TLS, so a
/// client of plain-HTTP endpoints needs root certificates after all.
fn tls_proxy(var: impl Fn(&str) -> Option<String>) -> bool {
    ["ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"]
        .into_iter()
        .filter_map(var)
        .any(|url| url.trim().get(..6).is_some_and(|s| s.eq_ignore_ascii_case("https:")))
}

/// Sorts reqwest's errors by what they say about whether the request was sent.
#[cold]
fn map_error(error: reqwest::Error) -> TransportError {
    let kind = if is_tls(&error) {
        TransportErrorKind::Tls
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_redirect() {
        TransportErrorKind::Redirect
    } else if error.is_body() || error.is_request() || error.is_decode() {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    };
    // Drop the URL: ours never carries secrets, but a caller's query might.
    let error = error.without_url();
    TransportError::new(kind, error.to_string()).with_source(error)
}

/// Whether rustls is behind the failure (an untrusted certificate, a peer that speaks no TLS),
/// anywhere in the chain. An `io::Error`'s `source()` skips the error it wraps, so the walk
/// goes through `get_ref()` there.
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<rustls::Error>() {
            return true;
        }
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// The token manager's [`AsyncRuntime`] on tokio: token requests run as detached tasks, store
/// I/O on tokio's blocking pool.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_reqwest::{Client, ClientBuilder, RequestBuilder, Reqwest, ReqwestTransport, TokioRuntime}; }
/// use helloflex::TokioRuntime;
///
/// assert!(TokioRuntime::current().is_none()); // not inside a runtime here
/// let runtime = tokio::runtime::Runtime::new()?;
/// assert!(runtime.block_on(async { TokioRuntime::current() }).is_some());
/// let handed = TokioRuntime::new(runtime.handle().clone()); // for a client built elsewhere
/// # drop(handed);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokioRuntime(tokio::runtime::Handle);

impl TokioRuntime {
    /// The runtime this is called from, if any.
    pub fn current() -> Option<Self> {
        tokio::runtime::Handle::try_current().ok().map(Self)
    }

    /// A given runtime.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        Self(handle)
    }
}

impl AsyncRuntime for TokioRuntime {
    fn spawn(&self, task: Task) {
        drop(self.0.spawn(task));
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) -> Task {
        let handle = self.0.spawn_blocking(work);
        Box::pin(async move {
            let _ = handle.await;
        })
    }
}

#[cfg(test)]
mod tls_proxy_tests {
    /// Only a proxy URL with the `https` scheme counts; unset, plain-HTTP and unparseable
    /// values do not.
    #[test]
    fn only_an_https_proxy_needs_roots() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert!(!super::tls_proxy(env(&[])));
        assert!(!super::tls_proxy(env(&[("HTTP_PROXY", "http://proxy:3128"), ("NO_PROXY", "*")])));
        assert!(!super::tls_proxy(env(&[("all_proxy", "socks5://proxy:1080")])));
        assert!(super::tls_proxy(env(&[("http_proxy", " HTTPS://proxy:443")])));
        assert!(super::tls_proxy(env(&[("ALL_PROXY", "https://proxy")])));
    }
}

#[cfg(test)]
mod url_tests {
    use super::{ORIGINS_KEPT, ReqwestTransport};

    /// A client of the caller's own (with the transport's TLS: without the feature
    /// `aws-lc-rs`, reqwest has no provider of its own).
    fn own_client() -> reqwest::Client {
        let tls = crate::tls::client_config(crate::tls::Roots::Nothing).unwrap();
        reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap()
    }

    /// The URL reqwest is handed is the request's, byte for byte: the core's percent-encoding
    /// kept, the query kept, across origins (one parsed once and reused).
    #[test]
    fn the_url_is_the_requests_exactly() {
        let transport = ReqwestTransport::with_client(own_client());
        for uri in [
            "https://api.example/news",
            "https://api.example/customers/a%2Fb%20c/news?Lang=en&q=%26x%3Dy",
            "http://127.0.0.1:8080/domainTypes/7/domainValues?Lang=en",
            "http://[::1]:9/items/%E2%82%AC",
            "https://api.example/",
            "https://api.example/news?",
        ] {
            let parsed: http::Uri = uri.parse().unwrap();
            let expected = reqwest::Url::parse(uri).unwrap();
            // Built, built again (now kept), then copied: the same URL each time.
            for sighting in 0..3 {
                let url = transport.url(&parsed).unwrap();
                assert_eq!(url.as_str(), expected.as_str(), "{uri} ({sighting})");
            }
        }
        assert!(transport.url(&"/relative".parse().unwrap()).is_err());
    }

    /// Past the origins kept, each is still right (parsed per call), and the kept ones too.
    #[test]
    fn more_origins_than_are_kept_still_get_their_own_urls() {
        let transport = ReqwestTransport::with_client(own_client());
        for round in 0..2 {
            for port in 1..=(ORIGINS_KEPT as u16 + 3) {
                let uri: http::Uri =
                    format!("http://127.0.0.1:{port}/n?r={round}").parse().unwrap();
                let url = transport.url(&uri).unwrap();
                assert_eq!(url.as_str(), format!("http://127.0.0.1:{port}/n?r={round}"));
            }
        }
        // A same-length origin that differs inside is not taken for a kept one.
        let url = transport.url(&"http://127.0.0.2:1/n".parse().unwrap()).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.2:1/n");
    }
}

#[cfg(test)]
mod send_tests {
    use helloflex_auth::{AsyncTransport as _, Timeouts};

    fn get(url: &str) -> http::Request<Vec<u8>> {
        http::Request::get(url).body(Vec::new()).unwrap()
    }

    /// Inside a runtime reqwest takes the request at once, and the boxed future holds only
    /// its handle and what reading the answer needs: a third of what holding the request took.
    #[test]
    fn the_future_of_a_send_is_small() {
        let transport = super::ReqwestTransport::new(Timeouts::default(), "t").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _inside = runtime.enter();
        let sent = transport.send(get("http://127.0.0.1:9/news"));
        let size = std::mem::size_of_val(&*sent);
        assert!(size <= 320, "the boxed future of a send is {size} bytes");
    }

    /// A send made outside any runtime (reqwest's timers need one) is no panic: the request
    /// is taken when the future is first polled, inside one.
    #[test]
    fn a_send_made_outside_a_runtime_runs_when_polled_in_one() {
        let transport = super::ReqwestTransport::new(Timeouts::default(), "t").unwrap();
        let sent = transport.send(get("http://127.0.0.1:9/news"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // Port 9 (discard) on loopback refuses: a transport error, not a panic.
        let answer = runtime.block_on(sent);
        assert!(answer.is_err());
    }
}
