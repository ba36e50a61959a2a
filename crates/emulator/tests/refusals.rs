//! The emulator refuses what cannot work, in one format: every admin endpoint answers a body
//! that is not JSON, not its shape, or holds a value that cannot work with HTTP 400 and
//! `{"error": "invalid_request", "message", "refusals": [{"field", "problem"}], "example"?}`,
//! naming the field and the list entry, and changes nothing. The Rust API refuses the same.

use std::time::Duration;

use helloflex_emulator::{
    ClientRegistration, EmulatorConfig, Fault, FaultKind, Refusal, WEB_APP, start,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Sends `body` as is (no Content-Type: the admin API does not check it).
async fn send(base: &str, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let r = http()
        .request(method, format!("{base}/_admin/{path}"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn post(base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send(base, Method::POST, path, &body.to_string()).await
}

/// Asserts the one error format with `status` and `error`, refusing exactly `fields` (in
/// order), each problem containing its `says`; returns the body.
#[track_caller]
fn assert_refused(
    (status, body): (StatusCode, Value),
    expected: (StatusCode, &str),
    refusals: &[(&str, &str)],
) -> Value {
    assert_eq!(status, expected.0, "{body:#}");
    assert_eq!(body["error"], expected.1, "{body:#}");
    let listed = body["refusals"].as_array().unwrap_or_else(|| panic!("no refusals: {body:#}"));
    let fields: Vec<&str> = listed.iter().map(|r| r["field"].as_str().unwrap()).collect();
    let wanted: Vec<&str> = refusals.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, wanted, "{body:#}");
    let mut message = Vec::new();
    for (refusal, (field, says)) in listed.iter().zip(refusals) {
        let problem = refusal["problem"].as_str().unwrap();
        assert!(problem.contains(says), "{field}: {problem:?} lacks {says:?}");
        assert_eq!(refusal.as_object().unwrap().len(), 2, "only field and problem: {refusal}");
        message.push(format!("{field}: {problem}"));
    }
    assert_eq!(body["message"], message.join("; "), "{body:#}");
    body
}

const BAD: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "invalid_request");

async fn faults_in_force(base: &str) -> Vec<Value> {
    let (status, listed) = send(base, Method::GET, "faults", "").await;
    assert_eq!(status, 200);
    listed.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_fault_that_cannot_work_is_refused_naming_the_entry_and_field() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let ok = json!({"path": "/news", "kind": "status", "status": 503, "times": 1});
    for (fault, field, says) in [
        // Found by a user: never fires.
        (json!({"path": "news", "kind": "drop"}), "path", r#"must start with "/" (got "news")"#),
        // Found by a user: not an HTTP status.
        (json!({"kind": "status", "status": 99}), "status", "must be 200..=599 (got 99)"),
        (json!({"kind": "status", "status": 600}), "status", "200..=599"),
        (json!({"kind": "status", "status": "503"}), "status", "whole number in 200..=599"),
        (json!({"kind": "status"}), "status", "required: an HTTP status, 200..=599"),
        (json!({"path": "", "kind": "drop"}), "path", r#"must start with "/""#),
        (json!({"path": "/_admin/counters", "kind": "drop"}), "path", "never apply to the admin"),
        (json!({"path": "/news?Lang=en", "kind": "drop"}), "path", "without a query"),
        (json!({"path": "/news items", "kind": "drop"}), "path", "visible ASCII"),
        (json!({"path": 7, "kind": "drop"}), "path", r#"a path starting with "/" (got 7)"#),
        (json!({"times": 0, "kind": "drop"}), "times", "must be 1..=4294967295 (got 0)"),
        (json!({"times": -1, "kind": "drop"}), "times", "whole number"),
        (json!({"times": 4_294_967_296_u64, "kind": "drop"}), "times", "1..=4294967295"),
        (json!({"client": "nobody", "kind": "drop"}), "client", "demo-client, flextell-app"),
        (json!({"kind": "latency", "ms": 0}), "ms", "must be 1..=3600000 (got 0)"),
        (json!({"kind": "latency"}), "ms", "required"),
        (json!({"kind": "slow_drip", "ms_per_byte": 60_001}), "ms_per_byte", "0..=60000"),
        (json!({"kind": "rate_limit"}), "retry_after", "required"),
        (json!({"kind": "rate_limit", "retry_after": "1\n"}), "retry_after", "visible ASCII"),
        (json!({"kind": "redirect", "status": 200, "location": "/x"}), "status", "301, 302, 303"),
        (json!({"kind": "redirect", "status": 304, "location": "/x"}), "status", "307, 308"),
        (json!({"kind": "redirect"}), "location", "required"),
        (json!({"kind": "redirect", "location": "not a url"}), "location", "absolute http://"),
        (json!({"kind": "redirect", "location": "ftp://x/y"}), "location", "absolute http://"),
        // Found by a review: "a path starting with /", but clients go to another host.
        (json!({"kind": "redirect", "location": "//evil.example/x"}), "location", "a single \"/\""),
        (json!({"kind": "redirect", "location": "/\\evil.example/x"}), "location", "another host"),
        (json!({"kind": "redirect", "location": "http://u:p@x.test/"}), "location", "user info"),
        (json!({"kind": "redirect", "location": "https://x.test:0/"}), "location", "1..=65535"),
        (json!({"kind": "redirect", "location": "https://x.test:65536/"}), "location", "1..=65535"),
        (json!({"kind": "redirect", "location": "http://:80/x"}), "location", "must name a host"),
        // Too large even for u64: out of range, not "not a number".
        (json!({"kind": "drop", "times": 1e20}), "times", "must be 1..=4294967295 (got 1e+20)"),
        (json!({"kind": "latency", "ms": 1e30}), "ms", "must be 1..=3600000 (got 1e+30)"),
        (json!({"kind": "stauts", "status": 500}), "kind", "rate_limit, drop, hang"),
        (json!({"kind": 5}), "kind", "must be one of latency, status"),
        (json!({"path": "/news"}), "kind", "required: one of latency"),
        (json!({"kind": "latency", "ms": 5, "time": 2}), "time", "unknown field"),
        (json!({"kind": "drop", "status": 500}), "status", "unknown field; the fields here are"),
    ] {
        // Alone, and as the third entry of a list: nothing of it is added.
        let alone = format!("faults[0].{field}");
        let body =
            assert_refused(post(base, "faults", fault.clone()).await, BAD, &[(&alone, says)]);
        assert_eq!(body["example"]["kind"], "status", "a correct body is shown");
        let list = json!([ok, ok, fault]);
        let at = format!("faults[2].{field}");
        assert_refused(post(base, "faults", list).await, BAD, &[(&at, says)]);
        assert!(faults_in_force(base).await.is_empty(), "{fault}: nothing was added");
    }
}

#[tokio::test]
async fn every_problem_of_a_fault_list_is_named_at_once() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let list = json!([
        {"path": "/news", "kind": "drop"},
        {"path": "news", "kind": "status", "status": 99, "times": 0, "client": "nobody"},
        "drop",
    ]);
    assert_refused(
        post(base, "faults", list).await,
        BAD,
        &[
            ("faults[1].path", r#"must start with "/""#),
            ("faults[1].times", "1..=4294967295"),
            ("faults[1].status", "200..=599"),
            ("faults[1].client", "must be a registered client"),
            ("faults[2]", "must be a JSON object (one fault)"),
        ],
    );
    assert!(faults_in_force(base).await.is_empty());
}

#[tokio::test]
async fn a_fault_body_that_is_not_faults_is_refused_in_the_same_format() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    for (body, field, says) in [
        ("{broken", "body", "must be JSON"),
        ("", "faults", "required: a fault or a list of faults"),
        ("5", "faults", "must be a fault (a JSON object) or a list of them"),
        ("\"drop\"", "faults", "or a list of them"),
        ("[5]", "faults[0]", "must be a JSON object"),
    ] {
        let refused = send(base, Method::POST, "faults", body).await;
        assert_refused(refused, BAD, &[(field, says)]);
    }
}

/// Found by a review: `{"mode":"prompt","mode":"auto_deny"}` was taken (the last one won; other
/// JSON readers take the first). A key given twice is refused in every admin body, wherever it
/// is, named like any field.
#[tokio::test]
async fn a_key_given_twice_is_refused_in_every_admin_body() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let token = demo_token(base).await["access_token"].as_str().unwrap().to_owned();
    let twice = "must appear once in its object (got 2 times";
    for (path, body, refusals) in [
        ("consent", r#"{"mode": "prompt", "mode": "auto_deny"}"#, vec![("mode", twice)]),
        ("token-lifetime", r#"{"seconds": 5, "seconds": 60}"#, vec![("seconds", twice)]),
        (
            "revoke",
            r#"{"client": "demo-client", "client": "limited-client", "client": "x"}"#,
            vec![("client", "(got 3 times")],
        ),
        // A fault posted alone is faults[0]; in a list, its entry.
        ("faults", r#"{"kind": "drop", "kind": "hang"}"#, vec![("faults[0].kind", twice)]),
        (
            "faults",
            r#"[{"kind": "drop"}, {"kind": "status", "status": 500, "status": 503, "path": "/a", "path": "/b"}]"#,
            vec![("faults[1].status", twice), ("faults[1].path", twice)],
        ),
        ("counters/reset", r#"{"x": 1, "x": 1}"#, vec![("x", twice)]),
        ("reset", r#"{"x": {"y": 1, "y": 2}}"#, vec![("x.y", twice)]),
    ] {
        let refused = send(base, Method::POST, path, body).await;
        assert_refused(refused, BAD, &refusals);
    }
    let refused = send(base, Method::DELETE, "faults", r#"{"a": null, "a": null}"#).await;
    assert_refused(refused, BAD, &[("a", twice)]);
    // Nothing changed.
    assert!(faults_in_force(base).await.is_empty());
    assert_eq!(news_status(base, &token).await, 200, "nothing was revoked");
    assert_eq!(demo_token(base).await["expires_in"], 3599);
    // The same key in two objects is no repetition.
    let two = r#"[{"kind": "drop", "path": "/a"}, {"kind": "drop", "path": "/b"}]"#;
    assert_eq!(send(base, Method::POST, "faults", two).await.0, StatusCode::NO_CONTENT);
}

/// Found by a review: `POST /_admin/faults []` answered 204 and did nothing.
#[tokio::test]
async fn an_empty_fault_list_is_refused() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    for empty in ["[]", " [ ] "] {
        let refused = send(base, Method::POST, "faults", empty).await;
        let body = assert_refused(refused, BAD, &[("faults", "must hold at least one fault")]);
        assert_eq!(body["example"]["kind"], "status");
    }
}

#[tokio::test]
async fn a_redirect_without_a_status_is_a_302() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let fault = json!({"path": "/news", "kind": "redirect", "location": "/elsewhere", "times": 1});
    assert_eq!(post(base, "faults", fault).await.0, StatusCode::NO_CONTENT);
    assert_eq!(faults_in_force(base).await[0]["status"], 302);
    let r = http().get(format!("{base}/news")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "/elsewhere");
    // The other redirect statuses, and the kebab-case kinds, still work.
    for status in [301, 302, 303, 307, 308] {
        let fault = json!({"kind": "redirect", "status": status, "location": "http://x.test/"});
        assert_eq!(post(base, "faults", fault).await.0, StatusCode::NO_CONTENT);
    }
    let kebab = json!([{"kind": "slow-drip", "ms_per_byte": 0}, {"kind": "rate-limit", "retry_after": "x"}]);
    assert_eq!(post(base, "faults", kebab).await.0, StatusCode::NO_CONTENT);
    assert_eq!(faults_in_force(base).await.len(), 8);
}

#[tokio::test]
async fn a_token_lifetime_that_cannot_work_is_refused() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    for (body, refusals) in [
        (json!({"seconds": 1e20}), vec![("seconds", "must be 1..=31536000 (got 1e+20)")]),
        // Found by a user: 0 was accepted (`--help` says 1..=31536000).
        (json!({"seconds": 0}), vec![("seconds", "must be 1..=31536000 (got 0)")]),
        (json!({"seconds": 31_536_001}), vec![("seconds", "1..=31536000")]),
        (json!({"seconds": -5}), vec![("seconds", "whole number in 1..=31536000 (got -5)")]),
        (json!({"seconds": 1.5}), vec![("seconds", "whole number")]),
        (json!({"seconds": "60"}), vec![("seconds", "whole number")]),
        (json!({}), vec![("seconds", "required: 1..=31536000")]),
        (json!({"seconds": 60, "client": "nobody"}), vec![("client", "demo-client")]),
        (json!({"seconds": 60, "client": 5}), vec![("client", "a registered client id")]),
        (
            json!({"secs": 60, "client": "nobody"}),
            vec![
                ("seconds", "required"),
                ("client", "must be a registered client"),
                ("secs", "unknown field; the fields here are seconds, client"),
            ],
        ),
        (json!([60]), vec![("body", "must be a JSON object like")]),
    ] {
        let body = assert_refused(post(base, "token-lifetime", body).await, BAD, &refusals);
        assert_eq!(body["example"]["seconds"], 60);
    }
    let empty = send(base, Method::POST, "token-lifetime", "").await;
    assert_refused(empty, BAD, &[("seconds", "required")]);
    let broken = send(base, Method::POST, "token-lifetime", "{\"seconds\":").await;
    assert_refused(broken, BAD, &[("body", "must be JSON")]);
    // Nothing changed: tokens still live the configured hour.
    let token = demo_token(base).await;
    assert_eq!(token["expires_in"], 3599);
    let (status, _) =
        post(base, "token-lifetime", json!({"seconds": 5, "client": "demo-client"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(demo_token(base).await["expires_in"], 5);
}

async fn demo_token(base: &str) -> Value {
    http()
        .post(format!("{base}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn news_status(base: &str, token: &str) -> StatusCode {
    http().get(format!("{base}/news")).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test]
async fn a_revocation_of_a_client_that_is_not_registered_is_refused() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let token = demo_token(base).await["access_token"].as_str().unwrap().to_owned();
    for (body, refusals) in [
        // Found by a user: a 204 that revoked nothing.
        (
            json!({"client": "nobody"}),
            vec![(
                "client",
                r#"must be a registered client: demo-client, flextell-app, limited-client (got "nobody")"#,
            )],
        ),
        // A misspelt field would have revoked every client's tokens.
        (json!({"clients": "demo-client"}), vec![("clients", "unknown field")]),
        (json!({"client": ["demo-client"]}), vec![("client", "a registered client id")]),
        (json!("demo-client"), vec![("body", r#"a JSON object like {"client":"demo-client"}"#)]),
    ] {
        let body = assert_refused(post(base, "revoke", body).await, BAD, &refusals);
        assert_eq!(body["example"], json!({"client": "demo-client"}));
    }
    assert_eq!(news_status(base, &token).await, 200, "nothing was revoked");
    assert_eq!(post(base, "revoke", json!({"client": "limited-client"})).await.0, 204);
    assert_eq!(news_status(base, &token).await, 200, "another client's tokens only");
    assert_eq!(post(base, "revoke", json!({"client": "demo-client"})).await.0, 204);
    assert_eq!(news_status(base, &token).await, 401);
    for every in ["", "{}", "{\"client\": null}"] {
        assert_eq!(send(base, Method::POST, "revoke", every).await.0, 204, "{every:?}");
    }
}

#[tokio::test]
async fn a_bad_consent_mode_gets_the_same_json_400_as_a_bad_fault() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    for (body, refusals) in [
        // Found by a user: a 422 in plain text.
        (
            json!({"mode": "maybe"}),
            vec![("mode", r#"must be one of prompt, auto_approve, auto_deny (got "maybe")"#)],
        ),
        (json!({"mode": 1}), vec![("mode", "one of prompt")]),
        (json!({}), vec![("mode", "required: one of prompt, auto_approve, auto_deny")]),
        (json!({"mode": "prompt", "extra": true}), vec![("extra", "unknown field")]),
        (json!(["prompt"]), vec![("body", "must be a JSON object like {\"mode\":\"prompt\"}")]),
    ] {
        let body = assert_refused(post(base, "consent", body).await, BAD, &refusals);
        assert_eq!(body["example"], json!({"mode": "prompt"}));
    }
    for (body, field) in [("", "mode"), ("mode=prompt", "body"), ("{\"mode\": \"prompt\"", "body")]
    {
        let refused = send(base, Method::POST, "consent", body).await;
        assert_refused(refused, BAD, &[(field, "")]);
    }
    // Any Content-Type, either spelling.
    for mode in ["auto_deny", "auto-deny", "prompt", "auto-approve"] {
        let body = json!({ "mode": mode }).to_string();
        let r = http()
            .post(format!("{base}/_admin/consent"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{mode}");
    }
}

#[tokio::test]
async fn the_endpoints_that_take_no_value_refuse_one() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    emu.add_fault(Fault::on_path("/news", FaultKind::Drop));
    for (method, path) in
        [(Method::POST, "counters/reset"), (Method::POST, "reset"), (Method::DELETE, "faults")]
    {
        let refused = send(base, method.clone(), path, "{\"path\": \"/news\"}").await;
        let body = assert_refused(refused, BAD, &[("path", "unknown field; this takes no fields")]);
        assert!(body.get("example").is_none(), "{body}");
        let refused = send(base, method.clone(), path, "[1]").await;
        assert_refused(refused, BAD, &[("body", "must be empty or {}")]);
        let refused = send(base, method.clone(), path, "{").await;
        assert_refused(refused, BAD, &[("body", "must be JSON")]);
        assert_eq!(faults_in_force(base).await.len(), 1, "{path}: nothing was cleared");
    }
    for (method, path) in [(Method::POST, "counters/reset"), (Method::DELETE, "faults")] {
        for nothing in ["", "{}", "null"] {
            assert_eq!(send(base, method.clone(), path, nothing).await.0, 204, "{path} {nothing}");
        }
    }
    assert_eq!(send(base, Method::POST, "reset", "").await.0, 204);
}

#[tokio::test]
async fn an_unknown_admin_path_or_method_gets_the_same_json() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let base = emu.base_url();
    let refused = send(base, Method::GET, "fault", "").await;
    assert_refused(
        refused,
        (StatusCode::NOT_FOUND, "not_found"),
        &[("path", "must be an admin endpoint: GET /_admin/health;")],
    );
    let r = http().get(format!("{base}/_admin/reset")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    let body: Value = r.json().await.unwrap();
    assert_refused(
        (StatusCode::METHOD_NOT_ALLOWED, body),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        &[("method", "must be POST for /_admin/reset (got GET)")],
    );
    let refused = send(base, Method::PUT, "faults", "").await;
    assert_refused(
        refused,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        &[("method", "must be one of GET, POST, DELETE")],
    );
    // The API keeps its own errors.
    let r = http().get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"error": "no such resource"}));
}

#[test]
fn the_rust_api_refuses_the_same_faults() {
    let emu = start(EmulatorConfig::default()).unwrap();
    let refused = emu
        .try_add_fault(
            Fault::on_path("news", FaultKind::Redirect { status: 200, location: "#x".into() })
                .times(0)
                .for_client("nobody"),
        )
        .unwrap_err();
    let fields: Vec<&str> = refused.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["path", "times", "status", "location", "client"]);
    assert_eq!(refused[0], Refusal::new("path", r#"must start with "/" (got "news")"#));
    assert!(emu.try_add_fault(Fault::on_path("/news", FaultKind::Latency { ms: 1 })).is_ok());
    // serde refuses them too (what `--fault` and the admin API read).
    let error = serde_json::from_str::<Fault>(r#"{"path": "news", "kind": "drop"}"#).unwrap_err();
    assert!(error.to_string().contains(r#"path: must start with "/""#), "{error}");
    let error = serde_json::from_str::<FaultKind>(r#"{"kind": "status", "status": 99}"#);
    assert!(error.unwrap_err().to_string().contains("status: must be 200..=599"));
    let kind: FaultKind =
        serde_json::from_str(r#"{"kind": "redirect", "location": "/x"}"#).unwrap();
    assert_eq!(kind, FaultKind::Redirect { status: 302, location: "/x".into() });
}

#[test]
#[should_panic(expected = r#"add_fault: status: must be 200..=599 (got 99)"#)]
fn add_fault_says_at_once_what_cannot_work() {
    let emu = start(EmulatorConfig::default()).unwrap();
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 99 }));
}

#[test]
#[should_panic(expected = "revoke: client: must be a registered client")]
fn revoking_a_client_that_is_not_registered_is_a_mistake_said_at_once() {
    start(EmulatorConfig::default()).unwrap().revoke(Some("nobody"));
}

#[test]
#[should_panic(expected = "set_token_lifetime: client: must be a registered client")]
fn a_lifetime_for_a_client_that_is_not_registered_is_a_mistake_said_at_once() {
    start(EmulatorConfig::default()).unwrap().set_token_lifetime(Duration::from_secs(5), Some("x"));
}

#[test]
#[should_panic(expected = "set_token_lifetime: lifetime: must be at most 31536000 s")]
fn a_lifetime_over_a_year_is_refused() {
    start(EmulatorConfig::default()).unwrap().set_token_lifetime(Duration::MAX, None);
}

#[test]
#[should_panic(expected = "with_redirect_uri: client_id: must be a registered client")]
fn a_redirect_uri_for_a_client_that_is_not_registered_is_refused() {
    let _ = EmulatorConfig::default().with_redirect_uri("nobody", "http://127.0.0.1:1/cb");
}

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    let mut config = EmulatorConfig {
        token_lifetime: Duration::from_secs(31_536_001),
        ..EmulatorConfig::default()
    }
    .with_redirect_uri(WEB_APP.0, "http://127.0.0.1:1/cb#fragment");
    config.clients.push(ClientRegistration::machine("demo-client", "", &["news.read", "nope"]));
    config.clients.push(ClientRegistration {
        grants: vec!["password".into()],
        ..ClientRegistration::machine("a:b", "s", &[])
    });
    config.clients.push(ClientRegistration::web_app("web", "s", &[], &[]));
    let fields: Vec<String> = config.check().unwrap_err().into_iter().map(|r| r.field).collect();
    assert_eq!(
        fields,
        [
            "token_lifetime",
            "clients[2].redirect_uris[3]",
            "clients[3].secret",
            "clients[3].scopes[1]",
            "clients[3].id",
            "clients[4].id",
            "clients[4].grants[0]",
            "clients[5].redirect_uris",
        ]
    );
    let error = start(config).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().starts_with("token_lifetime: must be at most 31536000 s"), "{error}");
    // Zero and sub-second lifetimes stay open to tests.
    let emu = start(EmulatorConfig { token_lifetime: Duration::ZERO, ..Default::default() });
    emu.unwrap().set_token_lifetime(Duration::from_millis(500), Some("demo-client"));
}

/// Found by a review: a redirect URI with user info was registered, though browsers and the SDK
/// refuse such URIs. Every URI the emulator is given must be one a client could use.
#[test]
fn a_uri_no_client_could_use_is_refused() {
    let client = ClientRegistration::web_app(
        "web",
        "s",
        &[],
        &[
            "http://user:pw@x.test/cb",
            "http://user@x.test/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:65536/cb",
            "http://:80/cb",
            "https://x.test:/cb",
            // These work.
            "http://127.0.0.1:3000/cb",
            "https://[::1]:8443/cb",
            "https://x.test/cb?next=/",
        ],
    );
    let refused = client.check().unwrap_err();
    let fields: Vec<&str> = refused.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "redirect_uris[0]",
            "redirect_uris[1]",
            "redirect_uris[2]",
            "redirect_uris[3]",
            "redirect_uris[4]",
            "redirect_uris[5]",
        ]
    );
    assert_eq!(
        refused[0].problem,
        r#"must not carry user info (user:password@): browsers and the SDK refuse it (got "http://user:pw@x.test/cb")"#
    );
    assert!(refused[2].problem.starts_with("must have a port in 1..=65535"), "{:?}", refused[2]);
    assert!(refused[4].problem.starts_with("must name a host"), "{:?}", refused[4]);
    // The same through the settings, and `with_redirect_uri`.
    let config = EmulatorConfig::default().with_redirect_uri(WEB_APP.0, "http://a:b@127.0.0.1/cb");
    let refused = config.check().unwrap_err();
    assert_eq!(refused[0].field, "clients[2].redirect_uris[3]");
    assert!(start(config).unwrap_err().to_string().contains("must not carry user info"));
    // A redirect fault's location, through the Rust API and serde.
    let emu = start(EmulatorConfig::default()).unwrap();
    for location in ["//evil.example/x", "/\\evil.example/x", "https://u:p@x.test/"] {
        let kind = FaultKind::Redirect { status: 302, location: location.into() };
        let refused = emu.try_add_fault(Fault::on_path("/news", kind)).unwrap_err();
        assert_eq!(refused[0].field, "location", "{location}");
    }
    assert!(
        emu.try_add_fault(Fault::on_path(
            "/news",
            FaultKind::Redirect { status: 302, location: "/news/elsewhere//x".into() }
        ))
        .is_ok()
    );
}

/// serde (what `--fault` and the admin API read) refuses a key given twice, as the admin API
/// does.
#[test]
fn serde_refuses_a_key_given_twice() {
    let error = serde_json::from_str::<Fault>(r#"{"kind": "drop", "kind": "hang"}"#).unwrap_err();
    assert!(error.to_string().starts_with("kind: must appear once in its object"), "{error}");
    let error = serde_json::from_str::<FaultKind>(r#"{"kind": "latency", "ms": 1, "ms": 2}"#);
    assert!(error.unwrap_err().to_string().starts_with("ms: must appear once"));
    let refused = Fault::parse(r#"{"kind": "drop", "path": "/a", "path": "/b"}"#).unwrap_err();
    assert_eq!(refused[0].field, "path");
    let faults: Vec<Fault> =
        serde_json::from_str(r#"[{"kind": "drop"}, {"kind": "hang", "times": 1}]"#).unwrap();
    assert_eq!(faults[1].times, Some(1));
}
