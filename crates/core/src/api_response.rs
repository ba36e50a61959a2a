//! A successful API response, as both clients hand it to callers.

use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{Error, UsageError};

/// A successful (2xx) API response.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ApiResponse, http};
///
/// #[derive(serde::Deserialize)]
/// struct Item {
///     id: u64,
///     name: String,
/// }
/// // What `send()` answers (made here by hand): the body is already read, so `json()`, `text()`
/// // and `bytes()` are not awaited, on the async client too.
/// let response = ApiResponse::new(http::Response::new(br#"{"id": 7, "name": "first"}"#.to_vec()));
/// assert_eq!(response.status(), 200);
/// let item: Item = response.json()?;
/// assert_eq!((item.id, item.name.as_str()), (7, "first"));
/// let any: serde_json::Value = response.json()?; // or untyped
/// assert_eq!(any["name"], "first");
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ApiResponse {
    inner: http::Response<Vec<u8>>,
}

impl ApiResponse {
    /// Wraps a response the core classified as a success.
    pub fn new(response: http::Response<Vec<u8>>) -> Self {
        Self { inner: response }
    }

    /// The status (200, 201, 204, ...).
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The body bytes (empty for a 204).
    pub fn bytes(&self) -> &[u8] {
        self.inner.body()
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.inner.body()).into_owned()
    }

    /// The body decoded as JSON into `T`. A mismatch is a [`UsageError::Decode`] naming where,
    /// never quoting a value from the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode_json(self.inner.body())
    }

    /// The underlying `http::Response`.
    pub fn into_inner(self) -> http::Response<Vec<u8>> {
        self.inner
    }
}

/// Decodes `body` as JSON into `T`, with an error that names the position and the kind of
/// mismatch (for example ``missing field `name` ``) but never quotes the body's content.
///
/// ```
/// use helloflex_core::decode_json;
///
/// let numbers: Vec<u32> = decode_json(b"[1, 2, 3]")?;
/// assert_eq!(numbers, [1, 2, 3]);
/// let wrong = decode_json::<Vec<u32>>(br#"[1, "secret-ish"]"#).unwrap_err();
/// assert!(!wrong.to_string().contains("secret-ish"));
/// # Ok::<(), helloflex_core::Error>(())
/// ```
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(crate::json::trim_body(body));
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        // Map keys in the path come from the body: sanitised like any server text.
        let path = crate::excerpt::Excerpt::of_text(&e.path().to_string(), 200).as_str().to_owned();
        let inner = e.inner();
        let reason =
            format!("{} (line {} column {})", unquoted(inner), inner.line(), inner.column());
        Error::from(UsageError::Decode { path, reason })
    })?;
    deserializer.end().map_err(|e| {
        Error::from(UsageError::Decode {
            path: ".".into(),
            reason: format!("{} (line {} column {})", unquoted(&e), e.line(), e.column()),
        })
    })?;
    Ok(value)
}

/// serde's message with every quoted or backticked value removed. Only a `missing field` message
/// keeps its name: that name comes from the target type. In `unknown field` / `unknown variant`
/// messages the body chose the name, so it is removed like any value.
fn unquoted(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or_default();
    let keeps_name = text.starts_with("missing field");
    let mut out = String::with_capacity(text.len());
    let mut in_quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match in_quote {
            // An escaped character (`\"` inside a quoted value) never ends the quote.
            Some(_) if escaped => {
                escaped = false;
                if keeps_name {
                    out.push(c);
                }
            }
            Some(_) if c == '\\' => {
                escaped = true;
                if keeps_name {
                    out.push(c);
                }
            }
            Some(q) if c == q => {
                in_quote = None;
                out.push(c);
            }
            Some(_) if keeps_name => out.push(c),
            Some(_) => {}
            None if c == '"' || c == '`' => {
                in_quote = Some(c);
                out.push(c);
                if !keeps_name {
                    out.push('…');
                }
            }
            None => out.push(c),
        }
    }
    crate::excerpt::Excerpt::of_text(&out, 200).as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct News {
        id: u32,
        title: String,
    }

    #[test]
    fn decode_errors_name_the_problem_not_the_value() {
        let e = decode_json::<News>(br#"{"id": "CANARY-VALUE", "title": "x"}"#).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("invalid type"), "{shown}");
        let e = decode_json::<News>(br#"{"id": 1}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `title`"), "{e}");
        let e =
            decode_json::<Vec<News>>(br#"[{"id": 1, "title": "a"}, {"id": "x", "title": "b"}]"#)
                .unwrap_err();
        assert!(e.to_string().contains("at [1].id"), "{e}");
        assert!(decode_json::<News>(br#"{"id": 1, "title": "t"} trailing"#).is_err());
        // A value with an escaped quote inside: nothing after it leaks either.
        let e = decode_json::<News>(br#"{"id": "a\"b CANARY-TAIL", "title": "x"}"#).unwrap_err();
        assert!(!e.to_string().contains("CANARY"), "{e}");
        let ok: News = decode_json(br#"{"id": 1, "title": "t", "extra": true}"#).unwrap();
        assert_eq!(ok.id, 1);
    }
}
