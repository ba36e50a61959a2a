//! Drives the example web app end to end against the emulator with a cookie-keeping HTTP
//! client: login -> consent (auto-approved) -> callback -> code exchange -> a page using the
//! tokens. No browser.

#[path = "../examples/web_app.rs"]
#[allow(dead_code)]
mod web_app;

use helloflex_emulator::{EmulatorConfig, WEB_APP};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_read_news() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let self_url = format!("http://{}", listener.local_addr().unwrap());
    let config =
        EmulatorConfig::default().with_redirect_uri(WEB_APP.0, &format!("{self_url}/callback"));
    let emulator = helloflex_emulator::start(config).unwrap();
    let app = web_app::App::new(emulator.base_url(), &self_url, WEB_APP.0, WEB_APP.1).unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router()).await });

    // A browser that follows redirects and keeps cookies; one that stops at each redirect, to
    // capture the callback URL and replay it.
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let page = browser.get(format!("{self_url}/login")).send().await.unwrap();
    assert_eq!(page.url().path(), "/news", "login -> authorize -> callback -> news");

    let stepper = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = stepper.get(format!("{self_url}/login")).send().await.unwrap();
    let to_emulator = authorize.headers()["location"].to_str().unwrap().to_owned();
    let consent = stepper.get(&to_emulator).send().await.unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(stepper.get(&callback).send().await.unwrap().status(), 303, "the callback signs in");
    // The same callback again (a reload, the back button): the user is signed in already, so
    // it leads to the news, and the code is not exchanged twice.
    let replay = stepper.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 303);
    assert_eq!(replay.headers()["location"], "/news");
    let html = page.text().await.unwrap();
    assert!(html.contains("HelloFlex sandbox is up"), "{html}");
    let counters = emulator.counters();
    assert_eq!(
        counters.token_requests_for_grant("authorization_code"),
        2,
        "one per sign-in, none for the replay"
    );

    // The session keeps the tokens: the next page makes no token request.
    let html = browser.get(format!("{self_url}/news")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("News"));
    assert_eq!(emulator.counters().total_token_requests(), 2);

    // A callback for another session's authorization is refused.
    let stranger = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = stranger.get(format!("{self_url}/callback?code=x&state=y")).send().await.unwrap();
    assert_eq!(r.status(), 400);
}
