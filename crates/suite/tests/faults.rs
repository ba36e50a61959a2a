//! Faults, on every transport: transient ones (429 with `Retry-After`, 503, a reset, a
//! truncated body) retried within the call where the request may be replayed and never for a
//! POST, bounded in attempts and time; deadlines that fire on a silent or dripping server; a
//! refused connection, a name that does not resolve and a TLS failure each of their own kind
//! (never retried where the same server would fail the same way); a private CA trusted once
//! named as the root; and `Duration::MAX` as every limit meaning no limit.

mod support;

use support::*;

fn rate_limit_and_server_errors<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    emu.add_fault(
        Fault::on_path("/news", FaultKind::RateLimit { retry_after: "1".into() }).times(1),
    );
    let started = SystemClock.now();
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");
    // GET is retried after a 503; POST is not.
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    emu.add_fault(Fault::on_path("/items", FaultKind::Status { status: 503 }).times(1));
    assert_eq!(
        api_error(h.send(ApiRequest::post("items").json(&json!({"name": "n"})))).status(),
        503
    );
    assert_eq!(
        h.send(ApiRequest::post("items").json(&json!({"name": "n"}))).unwrap().status(),
        201,
        "the first POST never reached the handler"
    );
}

fn connection_faults<H: Harness>() {
    let emu = emulator();
    let h = H::build(&emu, Setup::default());
    h.send(ApiRequest::get("news")).unwrap();
    emu.add_fault(Fault::on_path("/news", FaultKind::Drop).times(1));
    assert_eq!(
        h.send(ApiRequest::get("news")).unwrap().status(),
        200,
        "GET replayed after a reset"
    );
    emu.add_fault(Fault::on_path("/items", FaultKind::Drop).times(1));
    assert_eq!(
        transport_error(h.send(ApiRequest::post("items").json(&json!({"name": "z"})))),
        TransportErrorKind::Io
    );
    // Connection refused: nothing listens any more.
    drop(emu);
    let e = h.send(ApiRequest::post("items").json(&json!({"name": "z"})));
    assert_eq!(transport_error(e), TransportErrorKind::Connect);
}

fn slow_drip_hits_the_deadline<H: Harness>() {
    let emu = emulator();
    let setup =
        Setup { retry: RetryPolicy::never(), timeout: Duration::from_secs(1), ..Setup::default() };
    let h = H::build(&emu, setup);
    h.send(ApiRequest::get("news")).unwrap();
    emu.add_fault(Fault::on_path("/news", FaultKind::SlowDrip { ms_per_byte: 100 }));
    let started = SystemClock.now();
    let kind = transport_error(h.send(ApiRequest::get("news")));
    assert!(matches!(kind, TransportErrorKind::Timeout | TransportErrorKind::Io), "{kind:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A name that does not resolve (`.invalid`, RFC 6761) is a `Connect` error on every
/// transport: the request never left.
fn an_unresolvable_host_is_a_connect_error<H: Harness>() {
    let emu = emulator();
    let setup = Setup {
        retry: RetryPolicy::never(),
        timeout: Duration::from_secs(2),
        base: Some("https://helloflex-nowhere.invalid"),
        ..Setup::default()
    };
    let h = H::build(&emu, setup);
    let started = SystemClock.now();
    let kind = transport_error(h.send(ApiRequest::get("news")));
    assert_eq!(kind, TransportErrorKind::Connect);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

fn silent_server_and_repeated_failures<H: Harness>() {
    let emu = emulator();
    let setup =
        Setup { timeout: Duration::from_secs(1), retry: RetryPolicy::never(), ..Setup::default() };
    let h = H::build(&emu, setup);
    h.send(ApiRequest::get("news")).unwrap();
    // Accepted, never answered: the deadline fires.
    emu.add_fault(Fault::on_path("/news", FaultKind::Hang).times(1));
    let started = SystemClock.now();
    assert_eq!(transport_error(h.send(ApiRequest::get("news"))), TransportErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Ten 503s in a row: bounded attempts (4 by default) and bounded time.
    let h = H::build(&emu, Setup::default());
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(10));
    let before = emu.counters().requests.get("GET /news").copied().unwrap_or(0);
    let started = SystemClock.now();
    assert_eq!(api_error(h.send(ApiRequest::get("news"))).status(), 503);
    assert_eq!(emu.counters().requests["GET /news"] - before, 4);
    assert!(started.elapsed() < Duration::from_secs(5));
    emu.clear_faults();
    // A truncated body: GET is replayed, POST is not.
    emu.add_fault(Fault::on_path("/news", FaultKind::Truncate).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    emu.add_fault(Fault::on_path("/items", FaultKind::Truncate).times(1));
    let kind = transport_error(h.send(ApiRequest::post("items").json(&json!({"name": "t"}))));
    assert!(matches!(kind, TransportErrorKind::Io | TransportErrorKind::Other), "{kind:?}");
}

/// `Duration::MAX` as every limit (the HTTP timeouts, hence the token request's attempt timeout;
/// the retry deadlines; the store timeout; the close) means no limit, never none and never a
/// panic: a token request and an API call that fail transiently are retried, the calls go
/// through, and concurrent callers share one token request (its ticket is not taken over at
/// once).
fn unlimited_timeouts_mean_no_limit<H: Harness>() {
    // A limit taken for none left an async caller spinning, spawning one token request after
    // another (each one's ticket lapsed at once): that must fail the test, not hang it.
    let _watchdog = Watchdog::arm(Duration::from_secs(60));
    let emu = emulator();
    let unlimited = Duration::MAX;
    let retry = Setup::default().retry.with_deadline(unlimited);
    let token_options =
        ManagerOptions::default().with_retry(retry.clone()).with_store_timeout(unlimited);
    let setup = Setup { retry, timeout: unlimited, token_options, ..Setup::default() };
    let h = H::build(&emu, setup.clone());
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Status { status: 503 }).times(1));
    emu.add_fault(Fault::on_path("/news", FaultKind::Status { status: 503 }).times(1));
    assert_eq!(h.send(ApiRequest::get("news")).unwrap().status(), 200);
    let counters = emu.counters();
    assert_eq!(counters.requests["POST /oauth2/token"], 2, "the 503 was retried");
    assert_eq!(counters.requests["GET /news"], 2, "the 503 was retried");
    assert!(h.close(unlimited));
    // A new client's callers all wait for the one token request in flight.
    emu.add_fault(Fault::on_path("/oauth2/token", FaultKind::Latency { ms: 25 }));
    let herd = H::build(&emu, setup);
    let tokens = herd.herd(8);
    let first = tokens[0].as_ref().unwrap().clone();
    assert!(tokens.iter().all(|t| t.as_ref().unwrap() == &first));
    assert_eq!(emu.counters().total_token_requests(), 2, "a waiting caller took the ticket over");
    assert_eq!(herd.send(ApiRequest::get("news")).unwrap().status(), 200);
}

support::over_transports!(
    rate_limit_and_server_errors,
    connection_faults,
    slow_drip_hits_the_deadline,
    an_unresolvable_host_is_a_connect_error,
    silent_server_and_repeated_failures,
    unlimited_timeouts_mean_no_limit,
);

/// The same failure gets the same kind on both shipped transports, and the HTTP library's own
/// error stays reachable through `source()`.
#[test]
fn a_refused_connection_is_connect_with_its_cause_on_both_transports() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }; // dropped: nothing listens there now
    let environment = Environment::custom(&closed, InsecureLoopback::Allow).unwrap();
    let check = |error: Error| match error {
        Error::Transport(e) => {
            assert_eq!(e.kind, TransportErrorKind::Connect, "{e}");
            assert!(std::error::Error::source(&e).is_some(), "the cause was kept: {e:?}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    };
    let blocking = demo_once(helloflex_transport_ureq::Client::builder(), &environment);
    check(blocking.build().unwrap().get("news").send().unwrap_err());
    let rt = runtime();
    let builder = demo_once(helloflex_transport_reqwest::Client::builder(), &environment);
    let nonblocking = rt.block_on(async { builder.build() }).unwrap();
    check(rt.block_on(nonblocking.get("news").send()).unwrap_err());
}

/// A server for the TLS tests: accepts connections on loopback, counts them, and serves each
/// with `serve`.
fn counting_server(
    serve: impl Fn(std::net::TcpStream) + Send + 'static,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&handshakes);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            serve(stream);
        }
    });
    (address, handshakes)
}

/// A server that answers the TLS handshake in plain HTTP.
fn plain_http_on_tls(mut stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut hello = [0u8; 512];
    let _ = stream.read(&mut hello);
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
}

/// A real TLS server whose certificate no client trusts (a self-signed one: unknown issuer).
fn unknown_issuer() -> impl Fn(std::net::TcpStream) + Send + 'static {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    move |stream| {
        use std::io::Read;
        let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let mut buf = [0u8; 64];
        // Drives the handshake until the client gives up on the certificate.
        let _ = tls.read(&mut buf);
    }
}

/// A TLS failure (a server answering the handshake in plain HTTP; a certificate from an unknown
/// issuer) is its own kind on both transports and is never retried: the same server would fail
/// the same way.
#[test]
fn a_tls_failure_is_tls_and_is_not_retried_on_both_transports() {
    for (what, (address, handshakes)) in [
        ("plain HTTP", counting_server(plain_http_on_tls)),
        ("unknown issuer", counting_server(unknown_issuer())),
    ] {
        let environment =
            Environment::custom(&format!("https://{address}"), InsecureLoopback::Deny).unwrap();
        let check = |error: Error| match error {
            Error::Transport(e) => {
                assert_eq!(e.kind, TransportErrorKind::Tls, "{what}: {e}");
                assert_eq!(e.attempts, 1, "{what}: never retried: {e}");
            }
            other => panic!("{what}: expected a transport error, got {other:?}"),
        };
        let blocking = helloflex_transport_ureq::Client::builder()
            .environment(environment.clone())
            .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
            .build()
            .unwrap();
        check(blocking.get("news").send().unwrap_err());
        assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), 1, "{what}");
        let rt = runtime();
        let nonblocking = rt
            .block_on(async {
                helloflex_transport_reqwest::Client::builder()
                    .environment(environment)
                    .client_credentials(DEMO_CLIENT.0, ClientSecret::new(DEMO_CLIENT.1))
                    .build()
            })
            .unwrap();
        check(rt.block_on(nonblocking.get("news").send()).unwrap_err());
        assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), 2, "{what}");
    }
}

/// A TLS server whose certificate a private CA signed, answering every connection's one
/// request with a token (then closing it).
fn token_over_tls(
    tls: &helloflex_testkit::tls::LoopbackTls,
) -> impl Fn(std::net::TcpStream) + Send + use<> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(tls.cert.as_bytes()).map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    move |stream| {
        use std::io::{Read, Write};
        let connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        // The request: its head, then as many body bytes as it declares.
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        let complete = |r: &[u8]| {
            let text = String::from_utf8_lossy(r).to_ascii_lowercase();
            let Some(head) = text.find("\r\n\r\n") else { return false };
            let length = text[..head]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse().unwrap_or(0));
            r.len() >= head + 4 + length
        };
        while !complete(&request) {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return, // the client gave up (an unknown issuer)
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = r#"{"access_token":"private-ca","token_type":"Bearer","expires_in":3600}"#;
        let _ = write!(
            tls,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
}

/// A private CA named with `root_certificates` is trusted on both transports, in place of
/// their own roots; without it, the same server's certificate is from an unknown issuer.
#[test]
fn a_private_ca_named_as_the_root_is_trusted_on_both_transports() {
    let tls = helloflex_testkit::tls::loopback_tls();
    let (address, _) = counting_server(token_over_tls(&tls));
    let environment =
        Environment::custom(&format!("https://{address}"), InsecureLoopback::Deny).unwrap();
    let unknown_issuer = |result: Result<helloflex_core::Token, Error>| match result {
        Err(Error::Transport(e)) => e.kind == TransportErrorKind::Tls,
        _ => false,
    };
    let blocking = || demo_once(helloflex_transport_ureq::Client::builder(), &environment);
    let token = blocking().root_certificates(tls.ca.clone()).build().unwrap().token().unwrap();
    assert_eq!(token.access_token().expose_secret(), "private-ca");
    assert!(unknown_issuer(blocking().build().unwrap().token()));
    let rt = runtime();
    let nonblocking = |pem: Option<&str>| {
        let builder = demo_once(helloflex_transport_reqwest::Client::builder(), &environment);
        let builder = match pem {
            Some(pem) => builder.root_certificates(pem),
            None => builder,
        };
        let client = rt.block_on(async { builder.build() }).unwrap();
        rt.block_on(client.token())
    };
    let token = nonblocking(Some(&tls.ca)).unwrap();
    assert_eq!(token.access_token().expose_secret(), "private-ca");
    assert!(unknown_issuer(nonblocking(None)));
}
