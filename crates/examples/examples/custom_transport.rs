//! A user-written transport over another HTTP stack (plain hyper), in under 50 lines, in the same
//! ready client the shipped transports get. It passes the same behaviour suite
//! (`crates/suite`). `cargo run --example custom_transport` calls the embedded emulator with it.
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use helloflex::auth::{AsyncTransport, MAX_BODY_BYTES, Request, Response};
use helloflex::{TransportError, TransportErrorKind as Kind};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{Client, connect::HttpConnector};

/// Plain hyper: follows no redirects; the body is capped and the whole call is bounded.
pub struct HyperTransport {
    client: Client<HttpConnector, Full<Bytes>>,
    total: Duration,
    limit: usize,
}

impl HyperTransport {
    /// A transport whose calls end within `total` and read at most `limit` body bytes.
    pub fn new(total: Duration, limit: Option<usize>) -> Self {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Self { client, total, limit: limit.unwrap_or(MAX_BODY_BYTES) }
    }
}

#[async_trait]
impl AsyncTransport for HyperTransport {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let fail = |kind, e: &dyn std::fmt::Display| TransportError::new(kind, e.to_string());
        let call = async {
            let response = self
                .client
                .request(request.map(|b| Full::new(Bytes::from(b))))
                .await
                .map_err(|e| fail(if e.is_connect() { Kind::Connect } else { Kind::Io }, &e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.limit).collect().await.map_err(|e| {
                let too_large = e.is::<http_body_util::LengthLimitError>();
                fail(if too_large { Kind::BodyTooLarge } else { Kind::Io }, &e)
            })?;
            Ok(Response::from_parts(parts, body.to_bytes().to_vec()))
        };
        tokio::time::timeout(self.total, call).await.map_err(|e| fail(Kind::Timeout, &e))?
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::Arc;

    use helloflex::TokioRuntime;
    use helloflex::auth::{ClientBuilder, OwnAsync};
    use helloflex::{ClientSecret, Environment, InsecureLoopback};
    use helloflex_emulator::{DEMO_CLIENT, EmulatorConfig};

    let emulator = helloflex_emulator::start(EmulatorConfig::default())?;
    println!("emulator at {}", emulator.base_url());
    let transport = Arc::new(HyperTransport::new(Duration::from_secs(10), None));
    let runtime = TokioRuntime::current().map(|r| Arc::new(r) as _);
    let client = ClientBuilder::new(OwnAsync(transport, runtime))
        .environment(Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?)
        .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
        .build()?;
    let news: serde_json::Value = client.get("news").send().await?.json()?;
    let titles = news.as_array().map_or(0, Vec::len);
    println!("GET news over plain hyper: {titles} items, token fetched once and cached");
    let again = client.get("news").send().await?;
    println!(
        "GET news again: {} (token requests so far: {})",
        again.status(),
        emulator.counters().total_token_requests()
    );
    Ok(())
}
