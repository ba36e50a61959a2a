//! Drives the example web app end to end against the emulator with cookie-keeping HTTP
//! clients: sign in (login -> consent -> callback -> code exchange -> a page using the
//! tokens), reload the callback, two tabs, Deny, and sign out. No browser.

#[path = "../examples/web_app.rs"]
#[allow(dead_code)]
mod web_app;

use helloflex_emulator::{Consent, EmulatorConfig, WEB_APP};

/// A browser that follows redirects and keeps cookies.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().unwrap()
}

/// A browser that stops at every redirect (to capture callback URLs).
fn stepper() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn location(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_redirection(), "{url}: {}", response.status());
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_reload_two_tabs_deny_and_sign_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let self_url = format!("http://{}", listener.local_addr().unwrap());
    let config =
        EmulatorConfig::default().with_redirect_uri(WEB_APP.0, &format!("{self_url}/callback"));
    let emulator = helloflex_emulator::start(config).unwrap();
    let app = web_app::App::new(emulator.base_url(), &self_url, WEB_APP.0, WEB_APP.1).unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router()).await });

    // Sign in: login -> authorize -> callback -> news, a titled page with the news as a list.
    let page = browser().get(format!("{self_url}/login")).send().await.unwrap();
    assert_eq!(page.url().path(), "/news", "login -> authorize -> callback -> news");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>News"), "{html}");
    assert!(html.contains("<li>HelloFlex sandbox is up"), "{html}");

    // One browser, step by step: the callback signs in; reloading it leads to the news and
    // exchanges no second code.
    let tab = stepper();
    let to_emulator = location(&tab, &format!("{self_url}/login")).await;
    let callback = location(&tab, &to_emulator).await;
    assert_eq!(location(&tab, &callback).await, "/news", "the callback signs in");
    assert_eq!(location(&tab, &callback).await, "/news", "a reload leads to the news");
    let home = tab.get(format!("{self_url}/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Signed in"), "{home}");
    let counters = emulator.counters();
    assert_eq!(counters.token_requests_for_grant("authorization_code"), 2, "one per sign-in");

    // Sign out: the session is gone, the news asks to sign in again.
    let _ = tab.get(format!("{self_url}/logout")).send().await.unwrap();
    let home = tab.get(format!("{self_url}/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Welcome"), "{home}");
    assert_eq!(location(&tab, &format!("{self_url}/news")).await, "/login");

    // Two tabs of one browser sign in at once: the later callback signs in, the earlier one
    // then finds the user signed in.
    let both = stepper();
    let first = location(&both, &location(&both, &format!("{self_url}/login")).await).await;
    let second = location(&both, &location(&both, &format!("{self_url}/login")).await).await;
    assert_eq!(location(&both, &second).await, "/news");
    assert_eq!(location(&both, &first).await, "/news");

    // Deny: a page that says so, with a way back, and the session is not signed in.
    emulator.set_consent(Consent::AutoDeny);
    let denied = stepper();
    let callback = location(&denied, &location(&denied, &format!("{self_url}/login")).await).await;
    let refused = denied.get(&callback).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let html = refused.text().await.unwrap();
    assert!(html.contains("access_denied") && html.contains(r#"href="/""#), "{html}");
    let home = denied.get(format!("{self_url}/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("Welcome"), "not signed in after Deny: {home}");

    // A callback for no session of this browser is refused.
    let stranger = stepper();
    let r = stranger.get(format!("{self_url}/callback?code=x&state=y")).send().await.unwrap();
    assert_eq!(r.status(), 400);
}
