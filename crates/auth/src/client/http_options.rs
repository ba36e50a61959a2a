//! What [`Timeouts`] and [`HttpOptions`] do (the types are defined in `client/mod.rs`): their
//! defaults, `Timeouts::LONGEST` (no limit in practice) and `clamped`, and `HttpOptions`'s
//! `User-Agent`, body cap, whether TLS is needed, the root certificates read from PEM, and
//! `validate`.

use std::time::Duration;

use helloflex_core::ConfigError;

use super::{HttpOptions, Timeouts};

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), total: Duration::from_secs(60) }
    }
}

impl Timeouts {
    /// A connect and a total limit.
    pub fn new(connect: Duration, total: Duration) -> Self {
        Self { connect, total }
    }

    /// Both limits `each`.
    pub fn uniform(each: Duration) -> Self {
        Self { connect: each, total: each }
    }

    /// The longest limit a transport hands its HTTP library: 100 years
    /// ([`helloflex_core::machines::FAR_FUTURE`]), no limit in practice. A longer one is cut
    /// to it.
    pub const LONGEST: Duration = helloflex_core::machines::FAR_FUTURE;

    /// These limits, each cut to [`Timeouts::LONGEST`]: what a transport hands its HTTP library
    /// (a transport of your own should too, if its library adds a limit to an `Instant`).
    pub fn clamped(self) -> Self {
        Self { connect: self.connect.min(Self::LONGEST), total: self.total.min(Self::LONGEST) }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            user_agent: None,
            body_limit: None,
            proxy_from_env: true,
            root_certificates: None,
            plain_http_only: false,
        }
    }
}

impl HttpOptions {
    /// The `User-Agent`: the one set, or `helloflex-rs/<version> (<transport>)`.
    pub fn user_agent_for(&self, transport: &str) -> String {
        match &self.user_agent {
            Some(ua) => ua.clone(),
            None => format!("helloflex-rs/{} ({transport})", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Whether the client calls an `https` endpoint: yes, unless
    /// [`ClientBuilder::build`](super::ClientBuilder::build) found its API base and its token
    /// endpoint both plain HTTP (on loopback, as the emulator is, which
    /// [`InsecureLoopback::Allow`](helloflex_core::InsecureLoopback::Allow) lets through). A
    /// transport may then leave out what only TLS needs: the shipped reqwest transport loads no
    /// root certificates (reading and parsing the system's store takes milliseconds).
    ///
    /// ```
    /// use helloflex_auth::HttpOptions;
    ///
    /// assert!(HttpOptions::default().needs_tls()); // for a transport built without a client
    /// ```
    pub fn needs_tls(&self) -> bool {
        !self.plain_http_only
    }

    /// Records whether every endpoint the client calls is plain HTTP.
    pub(crate) fn set_plain_http_only(&mut self, yes: bool) {
        self.plain_http_only = yes;
    }

    /// The DER bytes of each certificate in [`HttpOptions::root_certificates`] (none when
    /// unset), for a transport to trust as its roots. Fails when the text holds no
    /// `CERTIFICATE` block, or one whose base64 does not decode.
    ///
    /// ```
    /// use helloflex_auth::HttpOptions;
    ///
    /// let mut options = HttpOptions::default();
    /// assert!(options.root_certificates_der()?.is_empty());
    /// options.root_certificates =
    ///     Some("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n".into());
    /// assert_eq!(options.root_certificates_der()?, vec![vec![0, 1, 2]]);
    /// options.root_certificates = Some("ca.pem".into()); // a path, not the PEM text
    /// assert!(options.root_certificates_der().is_err());
    /// # Ok::<(), helloflex_core::ConfigError>(())
    /// ```
    pub fn root_certificates_der(&self) -> Result<Vec<Vec<u8>>, ConfigError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject as _;
        let Some(pem) = self.root_certificates.as_deref() else { return Ok(Vec::new()) };
        let refused = |reason| ConfigError::Invalid { name: "root_certificates", reason };
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.map(|der| der.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                refused("a certificate's PEM block does not read (no end, or not base64)")
            })?;
        if certificates.is_empty() {
            return Err(refused("no PEM certificate (the PEM text, not a path, is expected)"));
        }
        Ok(certificates)
    }

    /// The response body cap: the one set, or [`crate::MAX_BODY_BYTES`].
    pub fn body_limit(&self) -> usize {
        self.body_limit.unwrap_or(crate::MAX_BODY_BYTES)
    }

    /// Refuses settings that cannot work, rather than have a transport drop or misread them: a
    /// `User-Agent` that is no header value (a control character, a line break), a zero
    /// timeout (every request would time out), root certificates that are not PEM.
    /// [`ClientBuilder::build`](super::ClientBuilder::build) calls it.
    ///
    /// ```
    /// use helloflex_auth::HttpOptions;
    ///
    /// let mut options = HttpOptions::default();
    /// assert!(options.validate().is_ok());
    /// options.user_agent = Some("my-app/1.0\r\nX-Injected: 1".into());
    /// assert!(options.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.user_agent.as_deref().is_some_and(|ua| http::HeaderValue::from_str(ua).is_err()) {
            return Err(ConfigError::Invalid {
                name: "user_agent",
                reason: "not a header value (control characters and line breaks are refused)",
            });
        }
        if self.timeouts.connect.is_zero() || self.timeouts.total.is_zero() {
            return Err(ConfigError::Invalid {
                name: "timeouts",
                reason: "a zero timeout fails every request",
            });
        }
        self.root_certificates_der()?;
        Ok(())
    }
}
