//! Name resolution inside the call's deadline, without a thread per call.
//!
//! ureq resolves the host on every call (before it looks in its connection pool), and its
//! default resolver, once any timeout covers resolution, does so on a new thread each time. The
//! transport wants a total deadline on every call, DNS included, at no cost on the hot path, so
//! it resolves itself: IP literals at once; names on a thread bounded by what is left of the
//! call's deadline, the answer kept for a short while (every call to one API names one host).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a resolved name is reused (well under typical DNS TTLs of API hosts).
const KEEP: Duration = Duration::from_secs(30);

/// Names resolved lately, by `host:port`.
#[derive(Debug, Default)]
pub(crate) struct DeadlineResolver {
    recent: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
}

#[allow(clippy::disallowed_methods)] // a transport times its own cache
fn now() -> Instant {
    Instant::now()
}

impl Resolver for DeadlineResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or_else(|| ureq::Error::HostNotFound)?;
        let port = uri
            .port_u16()
            .or_else(|| match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
            .ok_or_else(|| ureq::Error::HostNotFound)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.collect(config, [SocketAddr::new(ip, port)]);
        }
        self.resolve_name(bare, port, config, timeout)
    }
}

impl DeadlineResolver {
    /// A host name: from the names resolved lately, or the system resolver under the deadline.
    /// Out of line: an IP literal's path (every call to a loopback server) keeps a small frame.
    #[inline(never)]
    fn resolve_name(
        &self,
        bare: &str,
        port: u16,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!("{bare}:{port}");
        let cached = {
            let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.get(&key).filter(|(at, _)| now() < *at + KEEP).map(|(_, addrs)| addrs.clone())
        };
        if let Some(addrs) = cached {
            return self.collect(config, addrs);
        }
        // The system resolver cannot be cancelled: it runs on its own thread, and the call
        // stops waiting for it when its deadline comes.
        let (tx, rx) = mpsc::sync_channel(1);
        let target = key.clone();
        std::thread::Builder::new()
            .name("helloflex-resolve".into())
            .spawn(move || {
                let _ = tx.send(target.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
            })
            .map_err(ureq::Error::Io)?;
        let addrs = match rx.recv_timeout(*timeout.after) {
            Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
            // A name the system cannot resolve: nothing was sent (a connect-class failure, as
            // on the reqwest transport), whatever errno getaddrinfo chose to report.
            Ok(Ok(_) | Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ureq::Error::HostNotFound);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(ureq::Error::Timeout(timeout.reason));
            }
        };
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (now(), addrs.clone()));
        self.collect(config, addrs)
    }

    fn collect(
        &self,
        config: &Config,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for addr in config.ip_family().keep_wanted(addrs.into_iter()).take(16) {
            out.push(addr);
        }
        if out.is_empty() { Err(ureq::Error::HostNotFound) } else { Ok(out) }
    }
}
