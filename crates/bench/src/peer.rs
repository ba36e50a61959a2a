//! The peer a user would otherwise pick: oauth2-rs 5 over the same reqwest client, with the
//! token cache they would write around it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clients::async_rate;
use crate::{DEMO, Result};

/// The client credentials grant as a user of oauth2-rs 5 would call the API: oauth2's
/// exchange (over the same reqwest client) and the cache they would write around it, a token
/// behind a lock, fetched when missing or close to expiry (no single flight, no proactive
/// refresh: the best the default crate offers, hand-written).
pub struct Oauth2Cached {
    client: oauth2::basic::BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    http: reqwest::Client,
    cached: tokio::sync::RwLock<Option<(String, Instant)>>,
}

impl Oauth2Cached {
    /// The demo client at the emulator at `base`, over `http`.
    pub fn new(base: &str, http: reqwest::Client) -> Result<Self> {
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(DEMO.0.into()))
            .set_client_secret(oauth2::ClientSecret::new(DEMO.1.into()))
            .set_token_uri(oauth2::TokenUrl::new(format!("{base}/oauth2/token"))?);
        Ok(Self { client, http, cached: tokio::sync::RwLock::new(None) })
    }

    async fn bearer(&self) -> Option<String> {
        if let Some((token, until)) = &*self.cached.read().await
            && Instant::now() < *until
        {
            return Some(format!("Bearer {token}"));
        }
        use oauth2::TokenResponse as _;
        let http = self.http.clone();
        let send = move |request: oauth2::HttpRequest| {
            let http = http.clone();
            async move {
                let (parts, body) = request.into_parts();
                let response = http
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let mut out = http::Response::new(Vec::new());
                *out.status_mut() = response.status();
                *out.headers_mut() = response.headers().clone();
                *out.body_mut() = response.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>(out)
            }
        };
        let token = self.client.exchange_client_credentials().request_async(&send).await.ok()?;
        let secret = token.access_token().secret().clone();
        let lifetime = token.expires_in().unwrap_or(Duration::from_secs(300));
        let until = Instant::now() + lifetime.mul_f64(0.9);
        *self.cached.write().await = Some((secret.clone(), until));
        Some(format!("Bearer {secret}"))
    }

    /// Calls/s of this client at concurrency 32 (the throughput rows' load) on `url`.
    pub async fn rate(self: &Arc<Self>, url: &str) -> f64 {
        let (peer, url) = (Arc::clone(self), url.to_owned());
        async_rate(32, move || {
            let (peer, url) = (Arc::clone(&peer), url.clone());
            async move { peer.get(&url).await }
        })
        .await
    }

    /// One GET of `url` with a token from the cache; whether it succeeded.
    pub async fn get(&self, url: &str) -> bool {
        let Some(bearer) = self.bearer().await else { return false };
        match self
            .http
            .get(url)
            .header("authorization", bearer)
            .header("accept", "application/json")
            .send()
            .await
        {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}
