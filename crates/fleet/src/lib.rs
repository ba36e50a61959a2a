//! The fleet's shared vocabulary: the clients and store a member uses, and what it reports
//! (the tests and the benchmark read it).

use std::time::Duration;

use helloflex_auth::KeyRing;
use helloflex_core::{
    AuthorizationCodeConfig, ClientIdentity, ClientSecret, Endpoint, InsecureLoopback,
};
use helloflex_store_redis::RedisStore;
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

/// The store every member of a fleet shares, for its grant (the user's record for the
/// authorization-code grant).
pub fn fleet_store(
    redis: &str,
    authorization_code: bool,
    user: &str,
    keys: KeyRing,
) -> Result<RedisStore, Failure> {
    let client = if authorization_code { WEB_APP.0 } else { MACHINE.0 };
    let store = RedisStore::open(redis, client, keys)?.with_timeout(Duration::from_secs(1));
    Ok(if authorization_code { store.for_user(user) } else { store })
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
}
