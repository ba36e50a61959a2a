//! The fleet's shared vocabulary: the clients and store a member uses, and what it reports
//! (the tests and the benchmark read it).

use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::{KeyRing, TokenStore};
use helloflex_core::{
    AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, InsecureLoopback,
};
use helloflex_store_redis::RedisStore;
use helloflex_store_sql::{Database, SqlStore};
use serde::{Deserialize, Serialize};

/// The emulator's demo machine client (the fleet is a test program: it knows it).
pub const MACHINE: (&str, &str) = ("demo-client", "demo-secret");
/// The emulator's demo web app.
pub const WEB_APP: (&str, &str) = ("flextell-app", "flextell-secret");
/// The redirect URI registered for the web app.
pub const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";
/// Where members read the key ring from.
pub const KEYS_VARIABLE: &str = "HELLOFLEX_TOKEN_KEYS";

type Failure = Box<dyn std::error::Error>;

/// A wall-clock time in milliseconds since the Unix epoch (what reports and fault tests use to
/// compare moments across processes on one host).
pub fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Flextell configuration of the emulator's web app.
pub fn web_app_config(emulator: &str) -> Result<AuthorizationCodeConfig, Failure> {
    let e = |path: &str| Endpoint::parse(&format!("{emulator}{path}"), InsecureLoopback::Allow);
    Ok(AuthorizationCodeConfig::new(
        ClientIdentity::confidential(WEB_APP.0, ClientSecret::new(WEB_APP.1)),
        e("/oauth2/authorize")?,
        e("/oauth2/token")?,
        Endpoint::parse(REDIRECT_URI, InsecureLoopback::Allow)?,
    )
    .with_scopes(["news.read"]))
}

/// How long a store call may take, on either store: connecting, waiting for a lock, each
/// command or statement.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// The store every member of a fleet shares, for its grant (the user's record for the
/// authorization-code grant): Redis for a `redis://` (or `rediss://`) URL, the SQL store on
/// PostgreSQL for a `postgres://` (or `postgresql://`) one, with the same time-out.
pub fn fleet_store(
    url: &str,
    authorization_code: bool,
    user: &str,
    keys: KeyRing,
) -> Result<Arc<dyn TokenStore>, Failure> {
    let client = if authorization_code { WEB_APP.0 } else { MACHINE.0 };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store =
            SqlStore::open(Database::from_url(url)?, client, keys)?.with_timeout(STORE_TIMEOUT);
        return Ok(if authorization_code {
            Arc::new(store.for_user(user))
        } else {
            Arc::new(store)
        });
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let store = RedisStore::open(url, client, keys)?.with_timeout(STORE_TIMEOUT);
        return Ok(if authorization_code {
            Arc::new(store.for_user(user))
        } else {
            Arc::new(store)
        });
    }
    // Not quoted back: a URL may carry a password.
    Err("the store must be a redis://, rediss://, postgres:// or postgresql:// URL".into())
}

/// Who claims the record's refresh token now (its holder's name: process id, then a dot and a
/// random part), on either store.
pub fn claim_holder(store: &dyn TokenStore) -> Result<Option<String>, Failure> {
    Ok(store.load()?.record.and_then(|r| r.claim).map(|c| c.holder))
}

/// One member's report, printed as one JSON line when it ends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The member's process id.
    pub pid: u32,
    /// API calls answered 200.
    pub ok: u64,
    /// API calls that failed (any error or status).
    pub failed: u64,
    /// A few of the failures, as their errors read.
    pub failures: Vec<String>,
    /// How a last call after the run ended: `ok`, `reauthorize` or `error`.
    pub last: String,
    /// When calls failed (wall clock): the failed calls merged into spans, oldest first. A fault
    /// test reads from them how soon after the store's return the member's callers recovered.
    #[serde(default)]
    pub failure_spans: Vec<FailureSpan>,
    /// The error of the failed call that ended last, if any (what a late failure was).
    #[serde(default)]
    pub last_failure: Option<String>,
    /// `async` (reqwest) or `blocking` (ureq).
    #[serde(default)]
    pub flavour: String,
}

/// Failed calls that ended close together (no gap longer than [`FailureSpan::GAP_MS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSpan {
    /// When the first of them ended, in milliseconds since the Unix epoch.
    pub from_unix_ms: u64,
    /// When the last of them ended.
    pub to_unix_ms: u64,
    /// How many calls failed.
    pub calls: u64,
    /// How many of them were told to re-authorize.
    pub reauthorize: u64,
    /// When the first call that succeeded after the last of them ended (none if none did
    /// before the run ended): when the member's callers were served again.
    #[serde(default)]
    pub served_again_unix_ms: Option<u64>,
}

impl FailureSpan {
    /// The longest pause between two failures of one span.
    pub const GAP_MS: u64 = 500;

    /// Merges failed calls, each `(ended at, told to re-authorize)`, into spans, each with the
    /// first of `served` (when calls succeeded after a failure) at or after its end.
    pub fn merge(mut failures: Vec<(u64, bool)>, mut served: Vec<u64>) -> Vec<FailureSpan> {
        failures.sort_unstable();
        served.sort_unstable();
        let mut spans: Vec<FailureSpan> = Vec::new();
        for (at, reauthorize) in failures {
            match spans.last_mut() {
                Some(span) if at <= span.to_unix_ms.saturating_add(Self::GAP_MS) => {
                    span.to_unix_ms = at;
                    span.calls += 1;
                    span.reauthorize += u64::from(reauthorize);
                }
                _ => spans.push(FailureSpan {
                    from_unix_ms: at,
                    to_unix_ms: at,
                    calls: 1,
                    reauthorize: u64::from(reauthorize),
                    served_again_unix_ms: None,
                }),
            }
        }
        for span in &mut spans {
            span.served_again_unix_ms = served.iter().copied().find(|ok| *ok >= span.to_unix_ms);
        }
        spans
    }
}
