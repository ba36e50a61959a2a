//! Interop with oidc-provider (OpenID Certified; none of us wrote it), for both transports:
//! client credentials (post and Basic with a secret that needs form-encoding), the full
//! authorization-code flow with PKCE, refresh with rotation (the old refresh token then rejected
//! as "re-authorization required"), concurrent refreshes single-flighted (the server revokes the
//! grant if two race), a wrong secret, and an expired token answered by one transparent retry.
//!
//! Each test starts `server/server.mjs` on 127.0.0.1 and stops it. `npm ci` in `server/` first
//! (`.ci/run` does).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use helloflex_auth::{Clock, ManualClock, MemoryStore, Record, StoredTokens, TokenStore};
use helloflex_core::{
    AuthorizationCodeConfig, Blame, ClientAuthMethod, ClientIdentity, ClientSecret, Endpoint,
    Environment, Error, InsecureLoopback, OAuthErrorCode, PendingAuthorization,
};

const BASIC_SECRET: &str = "p@ss w:rd/+?&=%~!";

/// The provider, killed on drop.
struct Server {
    child: Child,
    issuer: String,
}

impl Server {
    fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("server");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run `npm ci --prefix crates/interop/server` (.ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is on PATH");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let issuer = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .to_owned();
        Self { child, issuer }
    }

    fn endpoint(&self, path: &str) -> Endpoint {
        Endpoint::parse(&format!("{}{path}", self.issuer), InsecureLoopback::Allow).unwrap()
    }

    fn environment(&self) -> Environment {
        Environment::custom(&self.issuer, InsecureLoopback::Allow).unwrap()
    }

    fn webapp(&self) -> AuthorizationCodeConfig {
        AuthorizationCodeConfig::new(
            ClientIdentity::confidential("webapp", ClientSecret::new("webapp-secret")),
            self.endpoint("/auth"),
            self.endpoint("/token"),
            Endpoint::parse("http://127.0.0.1:3000/callback", InsecureLoopback::Allow).unwrap(),
        )
        .with_scopes(["openid", "api:read"])
        .with_issuer(&self.issuer)
    }

    /// Plays the user in a browser: follows the authorize URL through the provider's development
    /// login and consent pages over plain HTTP, and returns the callback URL.
    fn approve(&self, authorize_url: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let browser = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let mut response = browser.get(authorize_url).send().await.unwrap();
            for _ in 0..12 {
                if let Some(location) = response.headers().get("location") {
                    let location = location.to_str().unwrap().to_owned();
                    if location.starts_with("http://127.0.0.1:3000/callback") {
                        return location;
                    }
                    let next = if location.starts_with('/') {
                        format!("{}{location}", self.issuer)
                    } else {
                        location
                    };
                    response = browser.get(next).send().await.unwrap();
                    continue;
                }
                // The development interactions: a login form, then a consent form, both posting
                // to the interaction URL with a hidden `prompt` field.
                let page = response.text().await.unwrap();
                let action = page
                    .split("action=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .expect("a form");
                let form = if page.contains("name=\"prompt\" value=\"login\"") {
                    "prompt=login&login=alice&password=secret"
                } else {
                    "prompt=consent"
                };
                let action = if action.starts_with('/') {
                    format!("{}{action}", self.issuer)
                } else {
                    action.to_owned()
                };
                response = browser
                    .post(action)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .unwrap();
            }
            panic!("the provider did not redirect back");
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client over one transport, driven synchronously.
trait Harness: Sized + Send + 'static {
    fn machine(
        server: &Server,
        id: &str,
        secret: &str,
        method: ClientAuthMethod,
        clock: Arc<dyn Clock>,
    ) -> Self;
    fn user(server: &Server, store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>) -> Self;
    fn get(&self, path: &str) -> Result<serde_json::Value, Error>;
    fn start(&self) -> (String, PendingAuthorization);
    fn complete(&self, pending: &PendingAuthorization, callback: &str) -> Result<(), Error>;
    fn clone_for_thread(&self) -> Self;
}

struct Ureq(helloflex_transport_ureq::Client);

impl Harness for Ureq {
    fn machine(
        server: &Server,
        id: &str,
        secret: &str,
        method: ClientAuthMethod,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let client = helloflex_transport_ureq::Client::builder()
            .environment(server.environment())
            .token_url(server.endpoint("/token"))
            .client_credentials(id, ClientSecret::new(secret))
            .auth_method(method)
            .scopes(["api:read"])
            .clock(clock)
            .build()
            .unwrap();
        Self(client)
    }
    fn user(server: &Server, store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>) -> Self {
        let client = helloflex_transport_ureq::Client::builder()
            .environment(server.environment())
            .authorization_code(server.webapp(), store)
            .clock(clock)
            .build()
            .unwrap();
        Self(client)
    }
    fn get(&self, path: &str) -> Result<serde_json::Value, Error> {
        self.0.get(path).send()?.json()
    }
    fn start(&self) -> (String, PendingAuthorization) {
        self.0.start_authorization().unwrap()
    }
    fn complete(&self, pending: &PendingAuthorization, callback: &str) -> Result<(), Error> {
        self.0.complete_authorization(pending, callback).map(drop)
    }
    fn clone_for_thread(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Reqwest(helloflex_transport_reqwest::Client, Arc<tokio::runtime::Runtime>);

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
    )
}

impl Harness for Reqwest {
    fn machine(
        server: &Server,
        id: &str,
        secret: &str,
        method: ClientAuthMethod,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rt = runtime();
        let builder = helloflex_transport_reqwest::Client::builder()
            .environment(server.environment())
            .token_url(server.endpoint("/token"))
            .client_credentials(id, ClientSecret::new(secret))
            .auth_method(method)
            .scopes(["api:read"])
            .clock(clock);
        let client = rt.block_on(async { builder.build() }).unwrap();
        Self(client, rt)
    }
    fn user(server: &Server, store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>) -> Self {
        let rt = runtime();
        let builder = helloflex_transport_reqwest::Client::builder()
            .environment(server.environment())
            .authorization_code(server.webapp(), store)
            .clock(clock);
        let client = rt.block_on(async { builder.build() }).unwrap();
        Self(client, rt)
    }
    fn get(&self, path: &str) -> Result<serde_json::Value, Error> {
        self.1.block_on(self.0.get(path).send())?.json()
    }
    fn start(&self) -> (String, PendingAuthorization) {
        self.0.start_authorization().unwrap()
    }
    fn complete(&self, pending: &PendingAuthorization, callback: &str) -> Result<(), Error> {
        self.1.block_on(self.0.complete_authorization(pending, callback)).map(drop)
    }
    fn clone_for_thread(&self) -> Self {
        Self(self.0.clone(), self.1.clone())
    }
}

fn system() -> Arc<dyn Clock> {
    Arc::new(helloflex_auth::SystemClock)
}

fn client_credentials_post_and_basic<H: Harness>() {
    let server = Server::start();
    let post = H::machine(
        &server,
        "machine-post",
        "machine-post-secret",
        ClientAuthMethod::RequestBody,
        system(),
    );
    assert_eq!(post.get("api/news").unwrap()[0]["client"], "machine-post");
    let basic =
        H::machine(&server, "machine-basic", BASIC_SECRET, ClientAuthMethod::BasicAuth, system());
    assert_eq!(basic.get("api/news").unwrap()[0]["client"], "machine-basic");
}

fn wrong_secret_is_invalid_client<H: Harness>() {
    let server = Server::start();
    let client = H::machine(
        &server,
        "machine-basic",
        "not the secret",
        ClientAuthMethod::BasicAuth,
        system(),
    );
    match client.get("api/news") {
        Err(Error::OAuth(e)) => {
            assert_eq!(e.code(), &OAuthErrorCode::InvalidClient);
            assert_eq!(Error::OAuth(e).blame(), Blame::Configuration);
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

fn expired_token_gets_one_transparent_retry<H: Harness>() {
    let server = Server::start();
    // The SDK's clock stands still, so it keeps a token the server has let expire.
    let frozen = Arc::new(ManualClock::new());
    let client = H::machine(
        &server,
        "machine-post",
        "machine-post-secret",
        ClientAuthMethod::RequestBody,
        frozen,
    );
    client.get("api/news").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(client.get("api/news").unwrap()[0]["id"], 1, "401 -> new token -> one replay");
}

fn authorization_code_flow_rotation_and_reuse<H: Harness>() {
    let server = Server::start();
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemoryStore::new());
    let client = H::user(&server, store.clone(), clock.clone());
    let (url, pending) = client.start();
    client.complete(&pending, &server.approve(&url)).unwrap();
    assert_eq!(client.get("api/news").unwrap()[0]["client"], "webapp");
    let first: StoredTokens = store.load().unwrap().into_tokens().unwrap();

    // Past expiry (the provider's 2 s and our clock both): 32 callers, one refresh. A second
    // refresh with the same token would make the provider revoke the grant.
    std::thread::sleep(Duration::from_millis(2100));
    clock.advance(Duration::from_secs(3));
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let c = client.clone_for_thread();
            std::thread::spawn(move || c.get("api/news").map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let second = store.load().unwrap().into_tokens().unwrap();
    assert_ne!(first.refresh_token, second.refresh_token, "the provider rotated the refresh token");
    // Another refresh later still works: the grant was not revoked by a race.
    std::thread::sleep(Duration::from_millis(2100));
    clock.advance(Duration::from_secs(3));
    client.get("api/news").unwrap();

    // The old refresh token is now rejected: a client still holding it must re-authorize.
    let stale = Arc::new(MemoryStore::new());
    stale.swap(0, &Record::new(first, 1)).unwrap();
    let old = H::user(&server, stale, clock.clone());
    clock.advance(Duration::from_secs(3));
    let error = old.get("api/news").unwrap_err();
    assert!(error.requires_reauthorization(), "{error:?}");
}

macro_rules! interop {
    ($module:ident, $harness:ty) => {
        mod $module {
            use super::*;
            #[test]
            fn client_credentials_post_and_basic() {
                super::client_credentials_post_and_basic::<$harness>();
            }
            #[test]
            fn wrong_secret_is_invalid_client() {
                super::wrong_secret_is_invalid_client::<$harness>();
            }
            #[test]
            fn expired_token_gets_one_transparent_retry() {
                super::expired_token_gets_one_transparent_retry::<$harness>();
            }
            #[test]
            fn authorization_code_flow_rotation_and_reuse() {
                super::authorization_code_flow_rotation_and_reuse::<$harness>();
            }
        }
    };
}

interop!(over_ureq, Ureq);
interop!(over_reqwest, Reqwest);
