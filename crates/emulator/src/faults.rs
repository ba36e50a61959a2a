//! Fault injection, per path prefix or per client: latency, N x status, 429 with Retry-After,
//! dropped connections, slow-drip and truncated bodies, redirects.

use serde::{Deserialize, Serialize};

/// One injected fault: what happens, on which paths, for which client, how many times.
///
/// ```
/// use helloflex_emulator::{Fault, FaultKind};
///
/// let emulator = helloflex_emulator::start(Default::default())?;
/// // The next two calls to /news answer 503, then it recovers.
/// emulator.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(2));
/// // Every token request of one client is 800 ms late.
/// emulator.add_fault(Fault::on_path("/oauth2/token", FaultKind::Latency { ms: 800 }).for_client("demo-client"));
/// // The same as JSON, for the admin API (`POST /_admin/faults`) or `--fault`.
/// let json = r#"{"path":"/news","kind":"rate_limit","retry_after":"3","times":1}"#;
/// emulator.add_fault(serde_json::from_str::<Fault>(json).unwrap());
/// emulator.clear_faults();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Applies to request paths starting with this (all paths if absent).
    #[serde(default)]
    pub path: Option<String>,
    /// Applies to requests of this client (by bearer token, or HTTP Basic on the token endpoint).
    #[serde(default)]
    pub client: Option<String>,
    /// How many requests it hits; forever if absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answers late (then normally).
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Answers with this status and a small JSON (or empty) body instead.
    Status {
        /// The status code.
        status: u16,
    },
    /// Answers 429 with `Retry-After`.
    #[serde(alias = "rate-limit")]
    RateLimit {
        /// The header's value, as sent (`"3"`, an HTTP date, or junk).
        retry_after: String,
    },
    /// Closes the connection without answering.
    Drop,
    /// Accepts the request and never answers (until the emulator stops).
    Hang,
    /// Answers normally, one body byte every `ms_per_byte` milliseconds.
    #[serde(alias = "slow-drip")]
    SlowDrip {
        /// Delay between bytes.
        ms_per_byte: u64,
    },
    /// Announces the full body length, sends half of it, closes the connection.
    Truncate,
    /// Answers with a redirect.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The `Location`.
        location: String,
    },
}

impl Fault {
    /// A fault on every request whose path starts with `path`.
    pub fn on_path(path: &str, kind: FaultKind) -> Self {
        Self { path: Some(path.into()), client: None, times: None, kind }
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Only requests of `client`.
    pub fn for_client(mut self, client: &str) -> Self {
        self.client = Some(client.into());
        self
    }

    pub(crate) fn matches(&self, path: &str, client: Option<&str>) -> bool {
        self.times != Some(0)
            && self.path.as_deref().is_none_or(|p| path.starts_with(p))
            && self.client.as_deref().is_none_or(|c| client == Some(c))
    }
}
