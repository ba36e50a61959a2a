//! The whole SDK, end to end, against the embedded emulator: no credentials, no network.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Point the same code at the real hosts by replacing the environment and credentials:
//! `Environment::Sandbox` or `Environment::Live`, and a client id and secret read from the
//! environment (`HELLOFLEX_CLIENT_ID`, `HELLOFLEX_CLIENT_SECRET`).

use std::sync::Arc;
use std::time::Duration;

use helloflex::auth::BlockingTransport;
use helloflex::core::parse_token_response;
use helloflex::{
    ApiErrorKind, AuthorizationCodeConfig, ClientIdentity, ClientSecret, Clock, Endpoint,
    Environment, Error, InsecureLoopback, MemoryStore, SystemClock, TokenStore,
};
use helloflex_emulator::{DEMO_CLIENT, EmulatorConfig, WEB_APP};
use serde_json::Value;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn step(text: &str) {
    println!("  \u{2713} {text}");
}

fn main() -> Result<()> {
    let emulator = helloflex_emulator::start(EmulatorConfig::default())?;
    println!("helloflex-rs quickstart: emulator at {}\n", emulator.base_url());
    // The emulator speaks plain HTTP on loopback; real hosts need HTTPS and no opt-in.
    let environment = Environment::custom(emulator.base_url(), InsecureLoopback::Allow)?;

    println!("HelloFlex (client credentials), blocking client over ureq:");
    let client = helloflex::blocking::Client::builder()
        .environment(environment.clone())
        .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
        .build()?;
    let token = client.token()?;
    step(&format!(
        "got an access token, valid for {}s",
        token.expires_at().saturating_duration_since(SystemClock.now()).as_secs()
    ));
    let news: Value = client.get("news").send()?.json()?;
    step(&format!(
        "listed news: {} item(s), first: {}",
        news.as_array().map_or(0, Vec::len),
        news[0]["title"]
    ));
    let values: Value =
        client.get("domainTypes/7/domainValues").query("Lang", "en").send()?.json()?;
    step(&format!("read domain values: {}", values.as_array().map_or(0, Vec::len)));
    match client.get("domainTypes/-1/domainValues").query("Lang", "xx").send() {
        Err(Error::Api(e)) if e.validation().is_some() => {
            step(&format!("a validation error ({}), field by field:", e.status()));
            for (field, messages) in e.validation().into_iter().flat_map(|v| v.fields()) {
                println!("        {field}: {}", messages.join(" "));
            }
        }
        other => return Err(format!("expected a validation error, got {other:?}").into()),
    }
    emulator.set_token_lifetime(Duration::from_secs(2), Some(DEMO_CLIENT.0));
    emulator.revoke(Some(DEMO_CLIENT.0));
    let before = emulator.counters().total_token_requests();
    client.get("news").send()?;
    step("the token was revoked: the 401 was answered by one fresh token and one replay");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(900));
        client.get("news").send()?;
    }
    let fetched = emulator.counters().total_token_requests() - before;
    step(&format!(
        "2-second tokens expired and were refreshed unnoticed ({fetched} token requests, 0 errors)"
    ));
    emulator.set_token_lifetime(Duration::from_secs(3599), Some(DEMO_CLIENT.0));

    println!("\nHelloFlex (client credentials), async client over reqwest:");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = helloflex::Client::builder()
            .environment(environment.clone())
            .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
            .build()?;
        let news: Value = client.get("news").send().await?.json()?;
        step(&format!("listed news: {} item(s)", news.as_array().map_or(0, Vec::len)));
        let created =
            client.post("items").json(&serde_json::json!({"name": "widget"})).send().await?;
        let again =
            client.post("items").json(&serde_json::json!({"name": "widget"})).send().await?;
        step(&format!(
            "created an item ({}), the same POST again answered {}",
            created.status(),
            again.status()
        ));
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.get("news").send().await })
            })
            .collect();
        for call in calls {
            call.await??;
        }
        step("100 concurrent calls shared one token");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;

    println!(
        "\nFlextell (authorization code with PKCE, rotating refresh tokens), blocking client:"
    );
    let e = |url: &str| Endpoint::parse(url, InsecureLoopback::Allow);
    let config = AuthorizationCodeConfig::new(
        ClientIdentity::confidential(WEB_APP.0, ClientSecret::new(WEB_APP.1)),
        e(&emulator.authorize_url())?,
        e(&emulator.token_url())?,
        e("http://127.0.0.1:3000/callback")?,
    )
    .with_scopes(["calls.read", "news.read"])
    .with_issuer(emulator.base_url());
    let store = Arc::new(MemoryStore::new());
    let client = helloflex::blocking::Client::builder()
        .environment(environment.clone())
        .authorization_code(config.clone(), store.clone())
        .build()?;
    let (url, pending) = client.start_authorization()?;
    step(&format!("authorization URL: {}...", &url[..url.len().min(90)]));
    // A browser would follow this; the emulator auto-approves and redirects to our callback.
    let browser = helloflex::blocking::UreqTransport::default();
    let answer = browser.send(http::Request::get(url.as_str()).body(Vec::new())?)?;
    let callback = answer.headers()["location"].to_str()?.to_owned();
    // Print the callback's shape only: its code and state are secrets.
    let (target, query) = callback.split_once('?').unwrap_or((&callback, ""));
    let names: Vec<&str> = query.split('&').filter_map(|p| p.split('=').next()).collect();
    step(&format!(
        "consent auto-approved; redirected to {target}?{}",
        names.iter().map(|n| format!("{n}=…")).collect::<Vec<_>>().join("&")
    ));
    emulator.set_token_lifetime(Duration::from_secs(2), Some(WEB_APP.0));
    client.complete_authorization(&pending, &callback)?;
    step("callback checked (state, iss) and the code exchanged (PKCE verifier sent)");
    let old = store
        .load()?
        .into_tokens()
        .and_then(|t| t.refresh_token)
        .ok_or("no refresh token stored")?;
    std::thread::sleep(Duration::from_millis(2100));
    client.get("news").send()?;
    let new = store
        .load()?
        .into_tokens()
        .and_then(|t| t.refresh_token)
        .ok_or("no refresh token stored")?;
    step(&format!(
        "the access token expired and was refreshed; refresh token rotated: {}",
        old != new
    ));
    let replay = browser.send(config.refresh_request(&old)?.into_request())?;
    match parse_token_response(replay.status(), replay.body()) {
        Err(Error::OAuth(e)) => {
            step(&format!("the old refresh token is rejected: {} ({})", e.code(), e.status()))
        }
        other => return Err(format!("the old refresh token was accepted: {other:?}").into()),
    }
    step(&format!(
        "the emulator saw {} reuse event (and revoked that grant, as real servers do)",
        emulator.counters().refresh_token_reuse
    ));
    match client.get("news").send() {
        Err(e)
            if e.requires_reauthorization()
                || matches!(&e, Error::Api(a) if matches!(a.kind(), ApiErrorKind::Unauthorized { .. })) =>
        {
            step("after the revocation, the client says: re-authorization required")
        }
        other => println!("    (after revocation: {other:?})"),
    }

    // Last before exit: a refresh still running in the background is stored first, so the
    // rotated refresh token is not lost with the process.
    if client.close(Duration::from_secs(10)) {
        step("closed: no token request left in flight");
    }

    println!("\nAll done: every call above went through the SDK against the emulator.");
    Ok(())
}
