//! Section 2: herds of 1,000 concurrent callers, cold and at expiry, with and without 25 ms
//! of token latency: the token requests the SDK makes beside a token per call and a
//! hand-written mutex cache.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use helloflex_core::ClientSecret;

use crate::clients::raw_reqwest;
use crate::emulator::{admin, environment, reset, token_requests};
use crate::{DEMO, ROLL, Result};

/// The callers in each herd.
const CALLERS: usize = 1000;

async fn raw_token(http: &reqwest::Client, base: &str) -> Option<String> {
    let body =
        format!("grant_type=client_credentials&client_id={}&client_secret={}", DEMO.0, DEMO.1);
    let r = http
        .post(format!("{base}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
    json["access_token"].as_str().map(str::to_owned)
}

/// Runs section 2 against the emulator at `base`: per pattern, the token requests made on
/// loopback and with 25 ms of token latency.
pub fn run(rt: &tokio::runtime::Runtime, base: &str) -> Result<Vec<(String, u64, u64)>> {
    let env = environment(base)?;
    let mut rows = Vec::new();
    let mut measure = |name: &str, run: &dyn Fn(&str) -> Result<()>| -> Result<()> {
        let mut counts = Vec::new();
        for latency in [0u64, 25] {
            let _ =
                ureq::Agent::new_with_defaults().delete(&format!("{base}/_admin/faults")).call();
            if latency > 0 {
                admin(
                    base,
                    "faults",
                    Some(
                        serde_json::json!({"path": "/oauth2/token", "kind": "latency", "ms": latency}),
                    ),
                )?;
            }
            run(base)?;
            counts.push(token_requests(base)?);
        }
        let _ = ureq::Agent::new_with_defaults().delete(&format!("{base}/_admin/faults")).call();
        rows.push((name.to_owned(), counts[0], counts[1]));
        Ok(())
    };
    let sdk = |credentials: (&str, &str)| {
        helloflex_transport_reqwest::Client::builder()
            .environment(env.clone())
            .client_credentials(credentials.0, ClientSecret::new(credentials.1))
            .build()
    };
    measure("helloflex-rs, cold cache", &|base| {
        reset(base)?;
        rt.block_on(async {
            let client = sdk(DEMO)?;
            herd(|| {
                let c = client.clone();
                async move { c.token().await.is_ok() }
            })
            .await
        })
    })?;
    measure("helloflex-rs, at expiry (1 s tokens)", &|base| {
        rt.block_on(async {
            let client = sdk(ROLL)?;
            client.token().await?;
            tokio::time::sleep(Duration::from_millis(1100)).await;
            reset(base)?;
            herd(|| {
                let c = client.clone();
                async move { c.token().await.is_ok() }
            })
            .await
        })
    })?;
    measure("a token per call (oauth2-rs README pattern)", &|base| {
        reset(base)?;
        rt.block_on(async {
            let http = raw_reqwest()?;
            herd(|| {
                let (h, b) = (http.clone(), base.to_owned());
                async move { raw_token(&h, &b).await }
            })
            .await
        })
    })?;
    measure("hand-written mutex cache (check, unlock, fetch, store)", &|base| {
        reset(base)?;
        rt.block_on(async {
            let http = raw_reqwest()?;
            let cache: Arc<Mutex<Option<String>>> = Arc::default();
            herd(|| {
                let (h, b, cache) = (http.clone(), base.to_owned(), cache.clone());
                async move {
                    let cached = cache.lock().ok().and_then(|c| c.clone());
                    if cached.is_none() {
                        let fresh = raw_token(&h, &b).await;
                        if let Ok(mut c) = cache.lock() {
                            *c = fresh;
                        }
                    }
                }
            })
            .await
        })
    })?;
    Ok(rows)
}

/// Runs [`CALLERS`] tasks at once, each the future `caller` makes, and waits for them all.
async fn herd<F>(caller: impl Fn() -> F) -> Result<()>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(caller())).collect();
    for t in tasks {
        t.await?;
    }
    Ok(())
}
