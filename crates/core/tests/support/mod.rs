//! Shared helpers for the core's behaviour tests: raw HTTP fixtures and a fixed starting instant.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Instant;

/// The directory holding raw HTTP response fixtures.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// Reads a raw HTTP/1.1 response (`status line`, headers, blank line, body) into a response.
pub fn response_from_raw(raw: &[u8]) -> http::Response<Vec<u8>> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("fixture has a blank line");
    let head = std::str::from_utf8(&raw[..split]).expect("fixture head is UTF-8");
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let mut builder = http::Response::builder().status(status);
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(body).unwrap()
}

/// Loads `fixtures/<path>`.
pub fn fixture(path: &str) -> http::Response<Vec<u8>> {
    let raw = std::fs::read(fixtures_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    response_from_raw(&raw)
}

/// One real instant for tests to count from; everything after is `t0() + duration`.
#[allow(clippy::disallowed_methods)]
pub fn t0() -> Instant {
    Instant::now()
}

/// A response with `status`, `headers` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Vec<u8>> {
    let mut builder = http::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(body.as_bytes().to_vec()).unwrap()
}
