//! What one `firstcall` process does, per variant: build a client, fetch a token with the demo
//! client's credentials, make one authenticated `GET /news`, and succeed only on a 200; or, for
//! the `build-*` variants, build the SDK's client alone (no network). Every variant prints the
//! nanoseconds its client took to build (`build_ns <n>`) on stdout.
//!
//! The raw variants put the SDK's requests on the wire by hand: the form POST with the client id
//! and secret in the body, `Accept: application/json`, the SDK's User-Agent, the JSON answer's
//! `access_token`, then a bearer GET whose body is read.

use std::path::Path;
use std::time::{Duration, Instant};

use helloflex_core::ClientSecret;

use crate::emulator::environment;
use crate::{DEMO, Result, clients, peer};

/// The clients a first-call row compares, each in a process of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The SDK's async client (reqwest), built in a tokio runtime as `#[tokio::main]` makes it.
    SdkAsync,
    /// The same with ring installed as the process's rustls crypto provider (reqwest's default,
    /// aws-lc-rs, seeds its random generator from CPU jitter on the first handshake).
    SdkAsyncRing,
    /// The SDK's blocking client (ureq).
    SdkBlocking,
    /// reqwest configured as the SDK's transport, the token POST and the GET by hand.
    RawReqwest,
    /// ureq configured as the SDK's transport, the token POST and the GET by hand.
    RawUreq,
    /// oauth2-rs 5's client-credentials exchange over the same reqwest client, then the GET.
    Oauth2Reqwest,
    /// The SDK's async `ClientBuilder::build()` alone.
    BuildAsync,
    /// The SDK's blocking `ClientBuilder::build()` alone.
    BuildBlocking,
}

impl Variant {
    /// Every variant, in the order a round starts from before it is rotated.
    pub const ALL: [Variant; 8] = [
        Variant::SdkAsync,
        Variant::SdkAsyncRing,
        Variant::SdkBlocking,
        Variant::RawReqwest,
        Variant::RawUreq,
        Variant::Oauth2Reqwest,
        Variant::BuildAsync,
        Variant::BuildBlocking,
    ];

    /// Its name on `firstcall`'s command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::SdkAsync => "sdk-async",
            Variant::SdkAsyncRing => "sdk-async-ring",
            Variant::SdkBlocking => "sdk-blocking",
            Variant::RawReqwest => "raw-reqwest",
            Variant::RawUreq => "raw-ureq",
            Variant::Oauth2Reqwest => "oauth2-reqwest",
            Variant::BuildAsync => "build-async",
            Variant::BuildBlocking => "build-blocking",
        }
    }

    /// The variant named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// Runs `variant` against the API at `base`; over TLS, the ureq clients are told to trust the CA
/// in the PEM file `ca` (it is not among ureq's compiled-in roots; reqwest's clients find it in
/// the system's store through `SSL_CERT_FILE`, see [`super::TlsFiles`]). Answers how long its
/// client took to build.
pub fn run(variant: Variant, base: &str, ca: Option<&Path>) -> Result<Duration> {
    let ca = ca.map(std::fs::read_to_string).transpose()?;
    match variant {
        Variant::SdkBlocking => sdk_blocking(base, ca.as_deref(), true),
        Variant::BuildBlocking => sdk_blocking(base, ca.as_deref(), false),
        Variant::RawUreq => raw_ureq(base, ca.as_deref()),
        async_variant => {
            if async_variant == Variant::SdkAsyncRing {
                // reqwest takes the process's provider where one is installed.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            // What `#[tokio::main]` builds.
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                match async_variant {
                    Variant::SdkAsync | Variant::SdkAsyncRing => sdk_async(base, true).await,
                    Variant::BuildAsync => sdk_async(base, false).await,
                    Variant::Oauth2Reqwest => oauth2_reqwest(base).await,
                    _ => raw_reqwest(base).await,
                }
            })
        }
    }
}

/// The SDK's async client: built, then (with `call`) one GET, its token fetched first.
async fn sdk_async(base: &str, call: bool) -> Result<Duration> {
    let env = environment(base)?;
    let started = Instant::now();
    let client = helloflex_transport_reqwest::Client::builder()
        .environment(env)
        .client_credentials(DEMO.0, ClientSecret::new(DEMO.1))
        .build()?;
    let built = started.elapsed();
    if call {
        let news = client.get("news").send().await?;
        ok(news.status().as_u16())?;
    }
    Ok(built)
}

/// The SDK's blocking client: built (trusting the CA in `ca` where given), then (with `call`)
/// one GET.
fn sdk_blocking(base: &str, ca: Option<&str>, call: bool) -> Result<Duration> {
    let env = environment(base)?;
    let started = Instant::now();
    let builder = helloflex_transport_ureq::Client::builder();
    let builder = match ca {
        Some(pem) => builder.root_certificates(pem),
        None => builder,
    };
    let client =
        builder.environment(env).client_credentials(DEMO.0, ClientSecret::new(DEMO.1)).build()?;
    let built = started.elapsed();
    if call {
        ok(client.get("news").send()?.status().as_u16())?;
    }
    Ok(built)
}

/// A ureq agent that trusts the CA in `pem` alone, otherwise configured as
/// [`clients::raw_ureq`].
fn agent(pem: &str) -> Result<ureq::Agent> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(pem.as_bytes())?.to_owned();
    let tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca])).build();
    Ok(clients::raw_ureq_config().tls_config(tls).build().new_agent())
}

/// The token request's form, as the SDK sends it (the secret in the body).
fn form() -> String {
    format!("grant_type=client_credentials&client_id={}&client_secret={}", DEMO.0, DEMO.1)
}

/// The `access_token` of a token endpoint's JSON answer.
fn access_token(body: &[u8]) -> Result<String> {
    let json: serde_json::Value = serde_json::from_slice(body)?;
    Ok(json["access_token"].as_str().ok_or("no access_token in the answer")?.to_owned())
}

/// A status other than 200 as an error.
fn ok(status: u16) -> Result<()> {
    if status == 200 { Ok(()) } else { Err(format!("the API answered {status}").into()) }
}

/// reqwest by hand: the token POST, then the GET.
async fn raw_reqwest(base: &str) -> Result<Duration> {
    let started = Instant::now();
    let http = clients::raw_reqwest()?;
    let built = started.elapsed();
    let answer = http
        .post(format!("{base}/oauth2/token"))
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form())
        .send()
        .await?;
    ok(answer.status().as_u16())?;
    let token = access_token(&answer.bytes().await?)?;
    let news = http
        .get(format!("{base}/news"))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await?;
    ok(news.status().as_u16())?;
    news.bytes().await?;
    Ok(built)
}

/// ureq by hand: the token POST, then the GET.
fn raw_ureq(base: &str, ca: Option<&str>) -> Result<Duration> {
    let started = Instant::now();
    let http = match ca {
        Some(pem) => agent(pem)?,
        None => clients::raw_ureq(),
    };
    let built = started.elapsed();
    let mut answer = http
        .post(format!("{base}/oauth2/token"))
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .send(form())?;
    ok(answer.status().as_u16())?;
    let token = access_token(&answer.body_mut().read_to_vec()?)?;
    let mut news = http
        .get(format!("{base}/news"))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .call()?;
    ok(news.status().as_u16())?;
    news.body_mut().read_to_vec()?;
    Ok(built)
}

/// oauth2-rs 5 over the same reqwest client, as section 1's peer calls it.
async fn oauth2_reqwest(base: &str) -> Result<Duration> {
    let started = Instant::now();
    let peer = peer::Oauth2Cached::new(base, clients::raw_reqwest()?)?;
    let built = started.elapsed();
    if !peer.get(&format!("{base}/news")).await {
        return Err("oauth2-rs: the token or the GET failed".into());
    }
    Ok(built)
}
