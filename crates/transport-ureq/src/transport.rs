//! [`UreqTransport`]: the workspace's [`BlockingTransport`] over ureq 3.

use std::io::{self, Read as _};

use helloflex_auth::{BlockingTransport, HttpOptions, MAX_BODY_BYTES, Request, Response, Timeouts};
use helloflex_core::{TransportError, TransportErrorKind};
use http::header::{CONTENT_LENGTH, USER_AGENT};
use ureq::unversioned::transport::Connector as _;

/// The transport contract on a ureq config builder (agent-wide or per request; ureq's scope
/// trait is private, so a macro rather than a generic function): every status returned, no
/// redirect followed, the whole call (name resolution included) within [`Timeouts::total`],
/// connecting within [`Timeouts::connect`]. Our own agent resolves names with
/// [`crate::resolve`], which needs no thread per call under a deadline.
macro_rules! contract {
    ($builder:expr, $t:expr) => {
        $builder
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            // The deadline covers every phase; one more per-phase timeout would only make
            // ureq compare more clocks on each read and write.
            .timeout_global(Some($t.total))
            .timeout_connect(Some($t.connect))
    };
}

/// A blocking transport over ureq 3 that honours the transport contract: every status returned
/// with headers and body, no redirects followed, body capped, every phase timed out.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_auth::*; pub use ::helloflex_auth as auth; pub use ::helloflex_emulator as emulator; pub use ::helloflex_transport_ureq as blocking; pub use ::http; }
/// use helloflex::Timeouts;
/// use helloflex::auth::BlockingTransport;
/// use helloflex::blocking::UreqTransport;
///
/// let emulator = helloflex::emulator::start(Default::default())?;
/// let transport = UreqTransport::new(Timeouts::default());
/// // Every status is a response: without a token, the API's 401 is data, not an error.
/// let news = format!("{}/news", emulator.base_url());
/// let answer = transport.send(http::Request::get(news).body(Vec::new())?)?;
/// assert_eq!(answer.status(), 401);
/// assert!(answer.headers().contains_key("www-authenticate"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    timeouts: Timeouts,
    body_limit: usize,
    user_agent: Option<http::HeaderValue>,
    /// A caller's agent may have any settings: the contract is applied to each request. Our own
    /// agent has it built in, which spares a config copy per call.
    per_request_config: bool,
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new(Timeouts::default())
    }
}

impl UreqTransport {
    /// A transport with its own agent: rustls, a pool of 32 idle connections per host (ureq's
    /// default of 3 is too small for 8 threads). A limit of `Duration::MAX` means none
    /// ([`Timeouts::clamped`]).
    /// Proxies named by `*_PROXY` environment variables are used (see [`Self::from_options`]).
    pub fn new(timeouts: Timeouts) -> Self {
        Self::build(timeouts, true, None, None)
    }

    /// A transport with its own agent, set up from `options` (timeouts, User-Agent, body cap,
    /// whether `*_PROXY` environment variables apply, root certificates). Settings
    /// [`HttpOptions::validate`] refuses are not checked here: an invalid User-Agent is left
    /// out, and root certificates that do not read as PEM are none to trust (every TLS
    /// connection then fails; never the default roots in their place).
    pub fn from_options(options: &HttpOptions) -> Self {
        let user_agent = options.user_agent_for("ureq");
        let roots = match options.root_certificates_der() {
            Ok(der) if der.is_empty() => None,
            Ok(der) => Some(der),
            Err(_) => Some(Vec::new()),
        };
        Self::build(options.timeouts, options.proxy_from_env, Some(&user_agent), roots)
            .with_body_limit(options.body_limit())
    }

    fn build(
        timeouts: Timeouts,
        proxy_from_env: bool,
        user_agent: Option<&str>,
        roots: Option<Vec<Vec<u8>>>,
    ) -> Self {
        // ureq adds each limit to an `Instant` and panics when that overflows: no limit
        // (`Duration::MAX`) is handed over as 100 years.
        let timeouts = timeouts.clamped();
        let pooled = ureq::Agent::config_builder()
            .max_idle_connections(64)
            .max_idle_connections_per_host(32);
        let pooled = if proxy_from_env { pooled } else { pooled.proxy(None) };
        // The agent adds it where a request has none, as cheaply as its own default; only a
        // valid header value is handed over (ureq would panic on another).
        let valid = user_agent.filter(|ua| http::HeaderValue::from_str(ua).is_ok());
        let pooled = match valid {
            Some(ua) => pooled.user_agent(ua),
            None => pooled,
        };
        let pooled = match roots {
            Some(der) => {
                use ureq::tls::{Certificate, RootCerts, TlsConfig};
                let roots: Vec<_> =
                    der.iter().map(|d| Certificate::from_der(d).to_owned()).collect();
                let tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&roots));
                pooled.tls_config(tls.build())
            }
            None => pooled,
        };
        let config = contract!(pooled, timeouts).build();
        // `SparingSyscalls` spares the socket a timeout change per read and write under the
        // deadline, and a liveness probe per call.
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default()
                .chain(crate::sparing::SparingSyscalls),
            crate::resolve::DeadlineResolver::default(),
        );
        Self { per_request_config: false, ..Self::with_agent(agent, timeouts) }
    }

    /// A transport over an existing agent. The contract (statuses, redirects, timeouts) is
    /// applied to each request, whatever the agent's own settings. A limit of `Duration::MAX`
    /// means none ([`Timeouts::clamped`]).
    pub fn with_agent(agent: ureq::Agent, timeouts: Timeouts) -> Self {
        Self {
            agent,
            timeouts: timeouts.clamped(),
            body_limit: MAX_BODY_BYTES,
            user_agent: None,
            per_request_config: true,
        }
    }

    /// Caps response bodies at `bytes`.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sends `User-Agent: value` on requests that do not set one. A value that is no header
    /// value is ignored ([`HttpOptions::validate`] refuses it, as the client builder does).
    pub fn with_user_agent(mut self, value: &str) -> Self {
        self.user_agent = http::HeaderValue::from_str(value).ok();
        self
    }
}

impl BlockingTransport for UreqTransport {
    fn send(&self, mut request: Request) -> Result<Response, TransportError> {
        if let Some(ua) = &self.user_agent {
            request.headers_mut().entry(USER_AGENT).or_insert_with(|| ua.clone());
        }
        // The framing is the request's (the core declares it): one that declares no length
        // and has no body goes without one, where a `Vec`, even empty, would make ureq send
        // `Content-Length: 0` on a GET.
        if request.body().is_empty() && !request.headers().contains_key(CONTENT_LENGTH) {
            return self.run(request.map(|_| ()));
        }
        self.run(request)
    }
}

impl UreqTransport {
    /// Runs `request` under the contract (our own agent has it built in).
    fn run(
        &self,
        request: http::Request<impl ureq::AsSendBody>,
    ) -> Result<Response, TransportError> {
        if self.per_request_config {
            return self.run_configured(request);
        }
        self.finish(self.agent.run(request).map_err(map_error)?)
    }

    /// [`Self::run`] on a caller's agent: a request config is built per call. Out of line, so
    /// the common path's frame has no room for it (a call is cheaper when it touches less
    /// memory: it runs cold after each wait for the server).
    #[inline(never)]
    fn run_configured(
        &self,
        request: http::Request<impl ureq::AsSendBody>,
    ) -> Result<Response, TransportError> {
        let t = self.timeouts;
        let request = contract!(self.agent.configure_request(request), t).build();
        self.finish(self.agent.run(request).map_err(map_error)?)
    }

    /// Reads a response's body under the cap.
    fn finish(&self, response: http::Response<ureq::Body>) -> Result<Response, TransportError> {
        let (parts, body) = response.into_parts();
        // The length of the body that follows, as ureq framed it: none for an answer without
        // one (a HEAD's declares its GET's length), chunked or decompressed.
        let declared = body.content_length();
        if declared.is_some_and(|len| len > self.body_limit as u64) {
            return Err(too_large(self.body_limit));
        }
        // Sized once: ureq's own `read_to_vec` grows the buffer from nothing.
        let mut bytes = Vec::with_capacity(declared.map_or(0, |len| len as usize));
        body.into_with_config()
            .limit(self.body_limit as u64)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| match ureq::Error::from(e) {
                ureq::Error::BodyExceedsLimit(_) => too_large(self.body_limit),
                other => map_error(other),
            })?;
        Ok(http::Response::from_parts(parts, bytes))
    }
}

fn too_large(limit: usize) -> TransportError {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        format!("response body exceeds {limit} bytes"),
    )
}

/// Sorts ureq's errors by what they say about whether the request was sent.
fn map_error(error: ureq::Error) -> TransportError {
    use ureq::Error as E;
    use ureq::Timeout as T;
    let kind = match &error {
        E::Tls(_) | E::Rustls(_) => TransportErrorKind::Tls,
        E::HostNotFound | E::ConnectionFailed | E::ConnectProxyFailed(_) => {
            TransportErrorKind::Connect
        }
        E::Timeout(T::Resolve | T::Connect) => TransportErrorKind::Connect,
        E::Timeout(_) => TransportErrorKind::Timeout,
        E::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            TransportErrorKind::Tls
        }
        E::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable
            ) =>
        {
            TransportErrorKind::Connect
        }
        E::Io(io) if io.kind() == io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
        E::Io(_) | E::Protocol(_) | E::BodyStalled => TransportErrorKind::Io,
        E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) => TransportErrorKind::BodyTooLarge,
        E::TooManyRedirects | E::RedirectFailed => TransportErrorKind::Redirect,
        _ => TransportErrorKind::Other,
    };
    // ureq's errors name no URL and no body.
    TransportError::new(kind, error.to_string()).with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller's agent keeps its own settings (ureq's defaults make a 404 an error): the
    /// contract is applied per request, so the status comes back as a response.
    #[test]
    fn a_callers_agent_gets_the_contract_per_request() -> Result<(), Box<dyn std::error::Error>> {
        let emulator = helloflex_emulator::start(Default::default())?;
        let transport =
            UreqTransport::with_agent(ureq::Agent::new_with_defaults(), Timeouts::default());
        let request =
            http::Request::get(format!("{}/nowhere", emulator.base_url())).body(Vec::new())?;
        let response = transport.send(request)?;
        assert_eq!(response.status(), 404);
        Ok(())
    }

    /// No limit (`Duration::MAX`) is handed to ureq as 100 years, on our own agent and on a
    /// caller's: ureq adds each limit to an `Instant`, which panicked on the overflow.
    #[test]
    fn no_limit_is_no_panic_on_either_agent() -> Result<(), Box<dyn std::error::Error>> {
        let emulator = helloflex_emulator::start(Default::default())?;
        let unlimited = Timeouts::uniform(std::time::Duration::MAX);
        for transport in [
            UreqTransport::new(unlimited),
            UreqTransport::with_agent(ureq::Agent::new_with_defaults(), unlimited),
        ] {
            let request =
                http::Request::get(format!("{}/nowhere", emulator.base_url())).body(Vec::new())?;
            assert_eq!(transport.send(request)?.status(), 404);
        }
        Ok(())
    }
}
