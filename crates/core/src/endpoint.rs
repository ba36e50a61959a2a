//! Validated absolute URLs: HTTPS, or plain HTTP to a loopback host when the caller opted in.

use core::net::IpAddr;
use std::fmt;
use std::sync::Arc;

use http::Uri;
use http::uri::{Authority, Parts, PathAndQuery, Scheme};

use crate::error::ConfigError;

/// Whether plain `http://` is accepted for a loopback host (for the emulator and tests).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Environment, InsecureLoopback};
///
/// assert_eq!(InsecureLoopback::default(), InsecureLoopback::Deny);
/// assert!(Environment::custom("http://localhost:8080", InsecureLoopback::Deny).is_err());
/// assert!(Environment::custom("http://localhost:8080", InsecureLoopback::Allow).is_ok());
/// // Never plain HTTP to another host, allowed or not.
/// assert!(Environment::custom("http://10.0.0.8:8080", InsecureLoopback::Allow).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsecureLoopback {
    /// Only `https://` URLs are accepted (the default).
    #[default]
    Deny,
    /// `http://` is accepted when the host is `localhost`, `127.0.0.0/8` or `[::1]`.
    Allow,
}

/// An absolute `https://` URL (or `http://` to loopback, when allowed) without user info,
/// query or fragment, kept exactly as given (a redirect URI is compared byte for byte by
/// servers); trailing slashes are dropped only where a path is appended to it.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Endpoint, InsecureLoopback};
///
/// let redirect = Endpoint::parse("https://my-app.example/callback", InsecureLoopback::Deny)?;
/// assert_eq!(redirect.as_str(), "https://my-app.example/callback"); // kept byte for byte
/// // No query, fragment or user info: paths are appended to it.
/// assert!(Endpoint::parse("https://my-app.example/callback?next=/", InsecureLoopback::Deny).is_err());
/// # Ok::<(), helloflex::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Endpoint {
    /// Shared: every API call holds its base URL, and a clone must not allocate.
    inner: Arc<Parsed>,
}

/// An endpoint's text and what requests are built from, parsed once.
struct Parsed {
    /// Always parses as an absolute URI (checked in [`Endpoint::parse`]).
    text: Box<str>,
    host: Box<str>,
    /// The scheme and authority every request to this endpoint carries (cloning them shares
    /// their bytes), so a request URI is assembled from parts rather than parsed again.
    scheme: Scheme,
    authority: Authority,
    /// The path as given (empty for a bare origin).
    path: Box<str>,
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.inner.text == other.inner.text
    }
}

impl Eq for Endpoint {}

impl Endpoint {
    /// The same URL with `path` appended (`/oauth2/token` on a base URL).
    pub(crate) fn with_path_suffix(&self, path: &str) -> Endpoint {
        Endpoint::from_parts(self.join(path), self.host().to_owned())
    }

    /// Parses `url`, refusing anything but HTTPS unless `insecure` allows HTTP to loopback.
    ///
    /// The decision reads the parsed host, never a string prefix: `http://localhost:@evil.example/`
    /// is refused (it carries user info and its host is `evil.example`).
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
    /// use helloflex::{Endpoint, InsecureLoopback};
    /// assert!(Endpoint::parse("https://api.helloflex.com", InsecureLoopback::Deny).is_ok());
    /// assert!(Endpoint::parse("http://127.0.0.1:8080", InsecureLoopback::Allow).is_ok());
    /// assert!(Endpoint::parse("http://127.0.0.1:8080", InsecureLoopback::Deny).is_err());
    /// assert!(Endpoint::parse("http://localhost:@evil.example/", InsecureLoopback::Allow).is_err());
    /// ```
    pub fn parse(url: &str, insecure: InsecureLoopback) -> Result<Self, ConfigError> {
        let invalid = |reason: &'static str| ConfigError::InvalidUrl { reason };
        if url.len() > 2048 {
            return Err(invalid("longer than 2048 bytes"));
        }
        if url.contains('#') {
            return Err(invalid("has a fragment"));
        }
        if url.contains('?') {
            return Err(invalid("has a query string (paths appended to it would land inside it)"));
        }
        let uri: Uri = url.parse().map_err(|_| invalid("not an absolute URL"))?;
        let scheme = uri.scheme_str().ok_or(invalid("not an absolute URL"))?;
        let authority = uri.authority().ok_or(invalid("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("carries user info"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("has no host"));
        }
        // What follows the host (after an IPv6 literal's `]`) is the port, if anything.
        let after_host = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, r)| r);
        if let Some((_, port)) = after_host.rsplit_once(':')
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(invalid("has a port outside 1-65535"));
        }
        if scheme.eq_ignore_ascii_case("https") {
            // accepted
        } else if scheme.eq_ignore_ascii_case("http") {
            if !is_loopback(host) {
                return Err(ConfigError::InsecureUrl { host: host.to_owned() });
            }
            if insecure == InsecureLoopback::Deny {
                return Err(ConfigError::InsecureLoopbackNotAllowed);
            }
        } else {
            return Err(invalid("scheme is neither https nor http"));
        }
        let host = host.to_ascii_lowercase();
        let (scheme, authority) = (uri.scheme().cloned(), uri.authority().cloned());
        let (Some(scheme), Some(authority)) = (scheme, authority) else {
            return Err(invalid("not an absolute URL"));
        };
        let path = path_of(url).into();
        let text = url.into();
        Ok(Self { inner: Arc::new(Parsed { text, host: host.into(), scheme, authority, path }) })
    }

    /// A constant URL known to be valid HTTPS.
    pub(crate) fn from_static(url: &'static str, host: &'static str) -> Self {
        Self::from_parts(url.to_owned(), host.to_owned())
    }

    /// An endpoint from an already validated one with a path appended.
    pub(crate) fn from_parts(text: String, host: String) -> Self {
        // Invariant: `text` is a checked constant or a validated endpoint with an encoded path
        // appended, so it parses; the fallback only keeps this function total.
        let uri: Uri = text.parse().unwrap_or_else(|_| Uri::from_static("https://invalid.invalid"));
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let authority =
            uri.authority().cloned().unwrap_or_else(|| Authority::from_static("invalid.invalid"));
        let path = path_of(&text).into();
        let parsed = Parsed { text: text.into(), host: host.into(), scheme, authority, path };
        Self { inner: Arc::new(parsed) }
    }

    /// The URL exactly as given.
    pub fn as_str(&self) -> &str {
        &self.inner.text
    }

    /// The host, lower-cased (brackets kept for IPv6).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Whether requests to this endpoint go over TLS (`https`); the other scheme an endpoint
    /// can have is plain `http`, on loopback only.
    ///
    /// ```
    /// use helloflex_core::{Endpoint, InsecureLoopback};
    ///
    /// assert!(Endpoint::parse("https://api.example", InsecureLoopback::Deny)?.is_https());
    /// assert!(Endpoint::parse("HTTPS://api.example", InsecureLoopback::Deny)?.is_https());
    /// assert!(!Endpoint::parse("http://127.0.0.1:8080", InsecureLoopback::Allow)?.is_https());
    /// # Ok::<(), helloflex_core::ConfigError>(())
    /// ```
    pub fn is_https(&self) -> bool {
        self.inner.scheme == Scheme::HTTPS
    }

    /// This URL with `path` (which must start with `/`) appended.
    pub(crate) fn join(&self, path: &str) -> String {
        let base = self.inner.text.trim_end_matches('/');
        let mut out = String::with_capacity(base.len() + path.len());
        out.push_str(base);
        out.push_str(path);
        out
    }

    /// The request URI for `path` (encoded, starting with `/`, or empty) and `query` (encoded,
    /// or empty) below this URL: assembled from the parts parsed once, so only the path and
    /// query are checked per request.
    pub(crate) fn request_uri(&self, path: &str, query: &str) -> Option<Uri> {
        self.uri_below(self.inner.path.trim_end_matches('/'), path, query)
    }

    fn uri_below(&self, base: &str, path: &str, query: &str) -> Option<Uri> {
        let mut text = String::with_capacity(base.len() + path.len() + query.len() + 2);
        text.push_str(base);
        text.push_str(path);
        if text.is_empty() {
            text.push('/');
        }
        if !query.is_empty() {
            text.push('?');
            text.push_str(query);
        }
        let mut parts = Parts::default();
        parts.scheme = Some(self.inner.scheme.clone());
        parts.authority = Some(self.inner.authority.clone());
        parts.path_and_query = Some(PathAndQuery::try_from(text).ok()?);
        Uri::from_parts(parts).ok()
    }

    /// This URL as a URI, its path exactly as given.
    pub(crate) fn uri(&self) -> Uri {
        // Invariant: the parts were parsed from this URL, so they assemble again.
        self.uri_below(&self.inner.path, "", "")
            .unwrap_or_else(|| Uri::from_static("https://invalid.invalid"))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.inner.text)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.text)
    }
}

/// The path of an absolute URL without query or fragment: from the first `/` after
/// `scheme://`, or empty.
fn path_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = url.get(after_scheme..).unwrap_or("");
    rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("")
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(url: &str) -> Result<Endpoint, ConfigError> {
        Endpoint::parse(url, InsecureLoopback::Allow)
    }

    #[test]
    fn https_accepted_kept_exactly_and_trimmed_only_when_joined() {
        let e = Endpoint::parse("https://API.uat-helloflex.com/", InsecureLoopback::Deny).unwrap();
        assert_eq!(e.as_str(), "https://API.uat-helloflex.com/", "a redirect URI keeps its slash");
        assert_eq!(e.host(), "api.uat-helloflex.com");
        assert_eq!(e.join("/oauth2/token"), "https://API.uat-helloflex.com/oauth2/token");
    }

    #[test]
    fn loopback_http_needs_opt_in() {
        for url in
            ["http://localhost:1", "http://127.0.0.1:9", "http://127.8.9.10", "http://[::1]:80"]
        {
            assert!(allow(url).is_ok(), "{url}");
            assert!(matches!(
                Endpoint::parse(url, InsecureLoopback::Deny),
                Err(ConfigError::InsecureLoopbackNotAllowed)
            ));
        }
    }

    #[test]
    fn remote_http_refused_even_with_opt_in() {
        for url in [
            "http://api.helloflex.com",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://0x7f000001",
            "http://[::2]",
        ] {
            assert!(matches!(allow(url), Err(ConfigError::InsecureUrl { .. })), "{url}");
        }
    }

    #[test]
    fn user_info_fragment_and_odd_schemes_refused() {
        for url in [
            "http://localhost:@evil.example/",
            "https://user:pw@api.helloflex.com",
            "http://127.0.0.1@evil.example",
            "https://api.helloflex.com/#x",
            "ftp://api.helloflex.com",
            "api.helloflex.com",
            "/oauth2/token",
            "",
            "https://api.helloflex.com/v1?tenant=a",
            "https://api.helloflex.com:99999",
            "https://api.helloflex.com:0",
            "https://api.helloflex.com:",
            "http://[::1]:70000",
        ] {
            assert!(allow(url).is_err(), "{url}");
        }
    }
}
