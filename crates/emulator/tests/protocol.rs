//! The emulator's protocol behaviour, pinned over raw HTTP (no SDK code involved).

use base64::Engine as _;
use helloflex_emulator::{Consent, EmulatorConfig, Fault, FaultKind, start};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest as _;

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn token(
    base: &str,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let body: String =
        form.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&");
    let r = http()
        .post(format!("{base}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn demo_token(base: &str) -> String {
    let (status, _, body) = token(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Runs the authorize step (auto-approve) and returns the code.
async fn authorize(base: &str, verifier: &str) -> String {
    let url = format!(
        "{base}/oauth2/authorize?response_type=code&client_id=flextell-app&redirect_uri={}&scope=calls.read&state=xyz&code_challenge={}&code_challenge_method=S256",
        enc("http://127.0.0.1:3000/callback"),
        challenge(verifier)
    );
    let r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://127.0.0.1:3000/callback?code="), "{location}");
    assert!(
        location.contains("state=xyz") && location.contains(&format!("iss={}", enc(base))),
        "{location}"
    );
    location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned()
}

async fn exchange(base: &str, code: &str, verifier: &str) -> (StatusCode, Value) {
    let (s, _, b) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:3000/callback"),
            ("code_verifier", verifier),
            ("client_id", "flextell-app"),
            ("client_secret", "flextell-secret"),
        ],
    )
    .await;
    (s, b)
}

async fn refresh(base: &str, rt: &str) -> (StatusCode, Value) {
    let (s, _, b) = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "flextell-app"),
            ("client_secret", "flextell-secret"),
        ],
    )
    .await;
    (s, b)
}

#[tokio::test]
async fn client_authentication_methods() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    // Basic with form-encoded parts.
    let basic = base64::engine::general_purpose::STANDARD.encode("demo-client:demo-secret");
    let r = http()
        .post(format!("{base}/oauth2/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Both methods at once: 400.
    let r = http()
        .post(format!("{base}/oauth2/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_secret=demo-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Wrong secret over Basic: 401 with a challenge.
    let bad = base64::engine::general_purpose::STANDARD.encode("demo-client:nope");
    let r = http()
        .post(format!("{base}/oauth2/token"))
        .header("authorization", format!("Basic {bad}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let (s, _, b) = token(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert_eq!(emu.counters().token_requests_for_grant("client_credentials"), 3);
}

#[tokio::test]
async fn pkce_mismatch_and_code_replay_are_rejected() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let code = authorize(base, VERIFIER).await;
    let (s, b) = exchange(base, &code, "wrong-verifier-wrong-verifier-wrong-verifier-00").await;
    assert_eq!((s, b["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    let code = authorize(base, VERIFIER).await;
    let (s, first) = exchange(base, &code, VERIFIER).await;
    assert_eq!(s, 200);
    // Replaying the code fails and revokes what it issued.
    let (s, _) = exchange(base, &code, VERIFIER).await;
    assert_eq!(s, 400);
    let r = http()
        .get(format!("{base}/news"))
        .bearer_auth(first["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(emu.counters().code_replays, 1);
}

#[tokio::test]
async fn rotation_reuse_revokes_the_family() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let code = authorize(base, VERIFIER).await;
    let (_, tokens) = exchange(base, &code, VERIFIER).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, rotated) = refresh(base, &r1).await;
    assert_eq!(s, 200);
    let r2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    // Reusing r1 revokes the family: r2 and its access token die too.
    let (s, b) = refresh(base, &r1).await;
    assert_eq!((s, b["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (s, _) = refresh(base, &r2).await;
    assert_eq!(s, 400);
    let r = http()
        .get(format!("{base}/news"))
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(emu.counters().refresh_token_reuse, 1);
}

#[tokio::test]
async fn authorize_errors_and_denial() {
    let emu = start(EmulatorConfig { consent: Consent::AutoDeny, ..Default::default() }).unwrap();
    let base = emu.base_url();
    let r = http()
        .get(format!("{base}/oauth2/authorize?response_type=code&client_id=nobody&redirect_uri=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Unknown client"));
    let r = http()
        .get(format!(
            "{base}/oauth2/authorize?response_type=code&client_id=flextell-app&redirect_uri={}",
            enc("https://evil.example/cb")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an unregistered redirect URI is never redirected to");
    // Exact matching (as oidc-provider), except RFC 8252's portless loopback registration
    // (`http://127.0.0.1/callback`, for native apps): any port, that path only.
    let authorize = |redirect: &str| {
        format!(
            "{base}/oauth2/authorize?response_type=code&client_id=flextell-app&redirect_uri={}&state=s1&code_challenge={}&code_challenge_method=S256",
            enc(redirect),
            challenge(VERIFIER)
        )
    };
    for unregistered in ["http://127.0.0.1:49152/other", "http://localhost:49152/callback"] {
        assert_eq!(http().get(authorize(unregistered)).send().await.unwrap().status(), 400);
    }
    let r = http().get(authorize("http://127.0.0.1:49152/callback")).send().await.unwrap();
    assert!(
        r.headers()["location"].to_str().unwrap().starts_with("http://127.0.0.1:49152/callback?")
    );
    let r = http().get(authorize("http://127.0.0.1:3000/callback")).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:3000/callback?error=access_denied"),
        "{location}"
    );
    emu.set_consent(Consent::Prompt);
    let url = format!(
        "{base}/oauth2/authorize?response_type=code&client_id=flextell-app&redirect_uri={}&scope=calls.read&state=s1&code_challenge={}&code_challenge_method=S256",
        enc("http://127.0.0.1:3000/callback"),
        challenge(VERIFIER)
    );
    let page = http().get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("calls.read") && page.contains("Approve"));
}

#[tokio::test]
async fn documented_api_errors() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let token = demo_token(base).await;
    let get = |path: &str| http().get(format!("{base}{path}"));

    let r = get("/news").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"helloflex\"");
    assert_eq!(r.json::<Value>().await.unwrap()["cause"], "missing_authorization_header");
    let r = get("/news").header("authorization", "Bearer not a token").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["cause"], "malformed_token");

    let r = get("/domainTypes/-1/domainValues?Lang=xx").bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["Id"][0], "Value -1 is invalid.");
    assert_eq!(body["Lang"][0], "Should be valid ISO 639-1 language code.");
    assert_eq!(
        get("/domainTypes/7/domainValues?Lang=en")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = http().delete(format!("{base}/news")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    assert_eq!(
        get("/news")
            .bearer_auth(&token)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
            .status(),
        406
    );
    assert_eq!(
        http()
            .post(format!("{base}/items"))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        415
    );
    assert_eq!(get("/nowhere").bearer_auth(&token).send().await.unwrap().status(), 404);
    assert_eq!(get("/boom").bearer_auth(&token).send().await.unwrap().status(), 500);

    // 403 for a missing scope.
    let (_, _, b) = token_for(base, "limited-client", "limited-secret").await;
    let r = get("/domainTypes/7/domainValues")
        .bearer_auth(b["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));

    // Revoked and expired.
    emu.revoke(None);
    let r = get("/news").bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["cause"], "revoked_token");
    emu.set_token_lifetime(std::time::Duration::ZERO, None);
    let short = demo_token(base).await;
    let r = get("/news").bearer_auth(&short).send().await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("expired"));
}

async fn token_for(
    base: &str,
    id: &str,
    secret: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    token(
        base,
        &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)],
    )
    .await
}

#[tokio::test]
async fn writable_resource_lifecycle() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let token = demo_token(base).await;
    let post = || {
        http()
            .post(format!("{base}/items"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "widget"}))
    };
    let first = post().send().await.unwrap();
    assert_eq!(first.status(), 201);
    let item: Value = first.json().await.unwrap();
    assert_eq!(post().send().await.unwrap().status(), 200, "the same POST again");
    let id = item["id"].as_u64().unwrap();
    let url = format!("{base}/items/{id}");
    assert_eq!(
        http()
            .put(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "gadget"}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let patched: Value = http()
        .patch(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"colour": "red"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (patched["name"].as_str(), patched["colour"].as_str()),
        (Some("gadget"), Some("red"))
    );
    assert_eq!(http().delete(&url).bearer_auth(&token).send().await.unwrap().status(), 204);
    assert_eq!(http().get(&url).bearer_auth(&token).send().await.unwrap().status(), 404);
    let r = http()
        .post(format!("{base}/items"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["Name"][0], "The Name field is required.");
}

#[tokio::test]
async fn faults_and_counters() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let token = demo_token(base).await;
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(2));
    for expected in [503, 503, 200] {
        assert_eq!(
            http().get(format!("{base}/news")).bearer_auth(&token).send().await.unwrap().status(),
            expected
        );
    }
    emu.add_fault(
        Fault::on_path("/news", FaultKind::RateLimit { retry_after: "3".into() }).times(1),
    );
    let r = http().get(format!("{base}/news")).bearer_auth(&token).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (429, "3"));
    emu.add_fault(Fault::on_path("/news", FaultKind::Drop).times(1));
    assert!(http().get(format!("{base}/news")).bearer_auth(&token).send().await.is_err());
    emu.add_fault(Fault::on_path("/news", FaultKind::Truncate).times(1));
    // Cut mid-response: the client sees an error, at the headers or at the body.
    let outcome = match http().get(format!("{base}/news")).bearer_auth(&token).send().await {
        Ok(r) => r.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err(), "a truncated response is an error");
    // The admin API does the same over HTTP.
    let r = http()
        .post(format!("{base}/_admin/faults"))
        .json(&serde_json::json!({"path": "/news", "kind": "status", "status": 500, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        http().get(format!("{base}/news")).bearer_auth(&token).send().await.unwrap().status(),
        500
    );
    let counters: Value =
        http().get(format!("{base}/_admin/counters")).send().await.unwrap().json().await.unwrap();
    assert_eq!(counters["token_requests"]["demo-client/client_credentials"], 1);
    assert!(counters["requests"]["GET /news"].as_u64().unwrap() >= 7);
}

/// A token fetched while the client's last one had over a quarter of its life left counts as
/// early (a duplicate, not a renewal); calls refused for their token count by cause.
#[tokio::test]
async fn early_fetches_and_refused_tokens_are_counted() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    emu.set_token_lifetime(std::time::Duration::from_millis(1000), Some("demo-client"));
    let first = demo_token(base).await;
    demo_token(base).await;
    assert_eq!(emu.counters().early_tokens, 1, "fetched again at once");
    tokio::time::sleep(std::time::Duration::from_millis(850)).await;
    demo_token(base).await;
    assert_eq!(emu.counters().early_tokens, 1, "a renewal in the last quarter is not early");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let unknown = format!("hfx_at_{}", "x".repeat(48));
    for token in [first.as_str(), unknown.as_str()] {
        let r = http().get(format!("{base}/news")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let counters: Value =
        http().get(format!("{base}/_admin/counters")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        counters["rejected_tokens"],
        serde_json::json!({"expired_token": 1, "revoked_token": 1})
    );
    assert_eq!(counters["early_tokens"], 1);
    // After a reset (over the admin API) a fetch is compared with nothing fetched before it.
    demo_token(base).await;
    let reset = http().post(format!("{base}/_admin/counters/reset")).json(&serde_json::json!({}));
    assert!(reset.send().await.unwrap().status().is_success());
    demo_token(base).await;
    assert_eq!(emu.counters().early_tokens, 0, "the token before the reset is forgotten");
}

#[tokio::test]
async fn admin_api_health_fault_list_clear_errors_and_reset() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url().to_owned();
    let health: Value =
        http().get(format!("{base}/_admin/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["clients"].as_array().unwrap().iter().any(|c| c == "demo-client"));
    // A typo gets a 400 that lists the valid kinds and shows an example, no internal names
    // (tests/refusals.rs covers every refusal).
    let r = http()
        .post(format!("{base}/_admin/faults"))
        .json(&serde_json::json!({"path": "/news", "kind": "stauts", "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["refusals"][0]["field"], "faults[0].kind");
    assert!(error["message"].as_str().unwrap().contains("rate_limit"), "{error}");
    assert_eq!(error["example"]["kind"], "status");
    let text = error.to_string();
    assert!(!text.contains("OneOrMany") && !text.contains("untagged"), "{text}");
    // One naming convention (snake_case); the older kebab-case spelling is still accepted.
    for kind in ["rate_limit", "rate-limit"] {
        let r = http()
            .post(format!("{base}/_admin/faults"))
            .json(&serde_json::json!({"path": "/x", "kind": kind, "retry_after": "1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{kind}");
    }
    let listed: Value =
        http().get(format!("{base}/_admin/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["kind"], "rate_limit");
    let (status, _, _) = token(
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    // Reset: everything back to the start.
    let r = http().post(format!("{base}/_admin/reset")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let listed: Value =
        http().get(format!("{base}/_admin/faults")).send().await.unwrap().json().await.unwrap();
    assert!(listed.as_array().unwrap().is_empty());
    assert_eq!(emu.counters().total_token_requests(), 0);
}

#[tokio::test]
async fn approve_and_deny_play_the_person_without_http() {
    let emu =
        start(EmulatorConfig { consent: Consent::Prompt, ..EmulatorConfig::default() }).unwrap();
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let url = format!(
        "{}?response_type=code&client_id=flextell-app&redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=S256&scope=news.read",
        emu.authorize_url(),
        enc("http://127.0.0.1:3000/callback")
    );
    let denied = emu.deny(&url).unwrap();
    assert!(denied.contains("error=access_denied") && denied.contains("state=s1"), "{denied}");
    let approved = emu.approve(&url).unwrap();
    let code = approved.split(['?', '&']).find_map(|p| p.strip_prefix("code=")).unwrap();
    // The code is real: the token endpoint exchanges it.
    let (status, _, body) = token(
        emu.base_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:3000/callback"),
            ("code_verifier", verifier),
            ("client_id", "flextell-app"),
            ("client_secret", "flextell-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    // What the endpoint refuses, the helper refuses.
    assert!(emu.approve(&url.replace("flextell-app", "nobody")).is_err());
    assert!(emu.approve("not a url").is_err());
}
