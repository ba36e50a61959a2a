//! Validated absolute URLs: HTTPS, or plain HTTP to a loopback host when the caller opted in.

use core::net::IpAddr;
use std::fmt;
use std::sync::Arc;

use http::Uri;

use crate::error::ConfigError;

/// Whether plain `http://` is accepted for a loopback host (for the emulator and tests).
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
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Always parses as an absolute URI (checked in [`Endpoint::parse`]). Shared: every API call
    /// holds its base URL, and a clone must not allocate.
    text: Arc<str>,
    host: Arc<str>,
}

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
    /// use helloflex_core::{Endpoint, InsecureLoopback};
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
        Ok(Self { text: url.into(), host: host.into() })
    }

    /// A constant URL known to be valid HTTPS.
    pub(crate) fn from_static(url: &'static str, host: &'static str) -> Self {
        Self { text: url.into(), host: host.into() }
    }

    /// An endpoint from an already validated one with a path appended.
    pub(crate) fn from_parts(text: String, host: String) -> Self {
        Self { text: text.into(), host: host.into() }
    }

    /// The URL exactly as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host, lower-cased (brackets kept for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// This URL with `path` (which must start with `/`) appended.
    pub(crate) fn join(&self, path: &str) -> String {
        let base = self.text.trim_end_matches('/');
        let mut out = String::with_capacity(base.len() + path.len());
        out.push_str(base);
        out.push_str(path);
        out
    }

    pub(crate) fn uri(&self) -> Uri {
        // Invariant: `text` parsed as an absolute URI in `parse` (or is a checked constant), and
        // removing trailing slashes keeps it one.
        self.text.parse().unwrap_or_else(|_| Uri::from_static("https://invalid.invalid"))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.text)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
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
