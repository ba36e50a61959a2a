//! Every answer becomes typed data, on every transport: success statuses with their bodies,
//! each documented error status as its `ApiErrorKind` (validation messages, `Allow`, scope
//! challenges), a 401 replayed once with a new token, redirects never followed (a token
//! endpoint's included: the secret goes nowhere else), and the body cap on the body read.

mod support;

use support::*;

fn success_statuses<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    let news = h.send(ApiRequest::get("news")).unwrap();
    assert_eq!(news.status(), 200);
    assert_eq!(news.json::<Value>().unwrap()[0]["id"], 1);
    let values = h.send(ApiRequest::get("domainTypes/7/domainValues").query("Lang", "en")).unwrap();
    assert_eq!(values.json::<Value>().unwrap().as_array().unwrap().len(), 2);
    // 201, then 200 for the same POST repeated; 204 on delete.
    let created = h.send(ApiRequest::post("items").json(&json!({"name": "widget"}))).unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        h.send(ApiRequest::post("items").json(&json!({"name": "widget"}))).unwrap().status(),
        200
    );
    let id = created.json::<Value>().unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        h.send(ApiRequest::put("items").segment(id.to_string()).json(&json!({"name": "gadget"})))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.send(ApiRequest::patch("items").segment(id.to_string()).json(&json!({"x": 1})))
            .unwrap()
            .status(),
        200
    );
    let deleted = h.send(ApiRequest::delete("items").segment(id.to_string())).unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().is_empty());
    assert_eq!(emu.counters().total_token_requests(), 1, "one token for all calls");
}

fn error_statuses<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    let e = api_error(h.send(ApiRequest::get("domainTypes/-1/domainValues").query("Lang", "xx")));
    assert_eq!(e.status(), 400);
    let v = e.validation().unwrap();
    assert_eq!(v.get("Id").unwrap(), ["Value -1 is invalid."]);
    assert_eq!(v.get("Lang").unwrap(), ["Should be valid ISO 639-1 language code."]);
    assert_eq!(api_error(h.send(ApiRequest::get("nowhere"))).kind(), &ApiErrorKind::NotFound);
    let e = api_error(h.send(ApiRequest::delete("news")));
    assert!(
        matches!(e.kind(), ApiErrorKind::MethodNotAllowed { allow } if allow.contains(&http::Method::GET))
    );
    assert_eq!(
        api_error(h.send(ApiRequest::get("news").header("accept", "text/html"))).kind(),
        &ApiErrorKind::NotAcceptable
    );
    let raw =
        ApiRequest::post("items").header("content-type", "text/plain").body(b"name=x".to_vec());
    assert_eq!(api_error(h.send(raw)).kind(), &ApiErrorKind::UnsupportedMediaType);
    let e = api_error(h.send(ApiRequest::get("boom")));
    assert_eq!((e.status().as_u16(), e.kind()), (500, &ApiErrorKind::Server));
    // 403: the limited client lacks domain.read; no token refresh follows.
    let limited = H::build(&emu, Setup { client: LIMITED_CLIENT, ..Setup::default() });
    let before = emu.counters().total_token_requests();
    let e = api_error(limited.send(ApiRequest::get("domainTypes/7/domainValues")));
    assert!(
        matches!(e.kind(), ApiErrorKind::Forbidden { challenge: Some(c) } if c.is_insufficient_scope())
    );
    assert_eq!(emu.counters().total_token_requests(), before + 1);
}

fn unauthorized_replays_once<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    emu.revoke(None);
    assert_eq!(
        h.send(ApiRequest::get("news")).unwrap().status(),
        200,
        "a revoked token is replaced transparently"
    );
    assert_eq!(emu.counters().total_token_requests(), 2);
    // A 401 that persists is returned after exactly one replay.
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 401 }).times(2));
    let before = emu.counters().requests.get("GET /news").copied().unwrap_or(0);
    let e = api_error(h.send(ApiRequest::get("news")));
    assert!(matches!(
        e.kind(),
        ApiErrorKind::Unauthorized { cause: UnauthorizedCause::Unknown, .. }
    ));
    assert_eq!(emu.counters().requests["GET /news"] - before, 2);
}

fn redirects_are_not_followed<H: Harness>() {
    let emu = emulator();
    let elsewhere = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    let location = format!("{}/news", elsewhere.base_url());
    emu.add_fault(Fault::on_path(
        "/news",
        FaultKind::Redirect { status: 302, location: location.clone() },
    ));
    assert_eq!(api_error(h.send(ApiRequest::get("news"))).kind(), &ApiErrorKind::Redirect);
    // A token endpoint redirect is not followed either: the secret goes nowhere else.
    emu.revoke(None);
    emu.add_fault(Fault::on_path(
        "/oauth2/token",
        FaultKind::Redirect {
            status: 307,
            location: format!("{}/oauth2/token", elsewhere.base_url()),
        },
    ));
    let e = h.send(ApiRequest::get("domainTypes/1/domainValues"));
    assert!(matches!(e, Err(Error::Protocol(ProtocolError::UnexpectedResponse { .. }))), "{e:?}");
    assert!(
        elsewhere.counters().requests.is_empty()
            && elsewhere.counters().total_token_requests() == 0
    );
}

/// The cap is on the body read, on every transport: a declared length over it is refused
/// before reading, and one that comes with no body (a HEAD answer declares its GET's) is not
/// a body at all.
fn body_cap<H: Harness>() {
    let emu = emulator();
    // A token answer (180 bytes) fits under the cap; the list below does not.
    let cap = 250;
    let h = H::build(&emu, Setup { body_limit: Some(cap), ..Setup::default() });
    let uncapped = H::build(&emu, Setup::default());
    let name = "x".repeat(2 * cap);
    uncapped
        .send(ApiRequest::post("items").body(json!({ "name": name }).to_string().into_bytes()))
        .unwrap();
    assert_eq!(transport_error(h.send(ApiRequest::get("items"))), TransportErrorKind::BodyTooLarge);
    assert_eq!(emu.counters().requests.get("GET /items"), Some(&1), "the API answer was refused");
    let head = h.send(ApiRequest::new(http::Method::HEAD, "items")).unwrap();
    assert_eq!(head.status(), 200);
    let declared: usize = head.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(declared > cap && head.bytes().is_empty(), "{declared}");
}

support::over_transports!(
    success_statuses,
    error_statuses,
    unauthorized_replays_once,
    redirects_are_not_followed,
    body_cap,
);

/// reqwest normalises the URL it sends to (dot segments, host case); the redirect check
/// compares it with the answer's URL as reqwest parsed both, so a plain answer is never taken
/// for a redirect (which on a refresh would throw away the rotated token).
#[test]
fn reqwest_never_takes_a_normalised_url_for_a_redirect() {
    let emu = emulator();
    let base = format!("{}/v1/..", emu.base_url());
    let environment = Environment::custom(&base, InsecureLoopback::Allow).unwrap();
    let rt = runtime();
    let client = rt
        .block_on(async {
            helloflex_transport_reqwest::Client::builder()
                .environment(environment)
                .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
                .build()
        })
        .unwrap();
    let news = rt.block_on(client.get("news").send()).unwrap();
    assert_eq!(news.status(), 200);
    assert_eq!(emu.counters().total_token_requests(), 1);
}
