//! API responses classified into data: success, or an [`ApiError`] that says what went wrong.

use std::fmt;
use std::time::Duration;

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};

use crate::challenge::{BearerChallenge, UnauthorizedCause, cause_from_text};
use crate::excerpt::Excerpt;
use crate::json;
use crate::retry_after::retry_after;

/// Most fields and messages per field kept from a validation answer.
const MAX_FIELDS: usize = 100;
const MAX_MESSAGES: usize = 20;
const MESSAGE_CHARS: usize = 500;

/// HelloFlex's validation answer: field name -> messages.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::ValidationErrors;
/// // What `e.validation()` of an `Error::Api(e)` 400 holds (read here from a body by hand):
/// let v = ValidationErrors::from_body(br#"{"Id": ["Value -1 is invalid."], "Lang": ["Should be valid ISO 639-1 language code."]}"#);
/// for (field, messages) in v.fields() {
///     println!("{field}: {}", messages.join("; "));
/// }
/// assert_eq!(v.get("Id"), Some(&["Value -1 is invalid.".to_string()][..]));
/// assert_eq!(v.get("lang").map(<[String]>::len), Some(1)); // ASCII case ignored if no exact match
/// assert_eq!(v.fields().count(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors {
    fields: Vec<(String, Vec<String>)>,
    title: Option<String>,
}

impl ValidationErrors {
    /// Reads a validation body: a plain `{"Field": ["message"]}` map, or an RFC 9457 / ASP.NET
    /// problem document with an `errors` map. Odd shapes give what could be read (a string value
    /// is one message); anything else gives an empty set.
    pub fn from_body(body: &[u8]) -> Self {
        let Ok(top) = json::parse_object(body) else { return Self::default() };
        let title = top
            .get("title")
            .and_then(json::as_string)
            .map(|t| Excerpt::of_text(&t, MESSAGE_CHARS).as_str().to_owned());
        let errors_raw = top.get("errors");
        let nested = errors_raw.and_then(|raw| json::parse_object(raw.get().as_bytes()).ok());
        let source = nested.as_ref().unwrap_or(&top);
        let mut fields = Vec::new();
        for (name, raw) in source.iter().take(MAX_FIELDS) {
            if nested.is_none()
                && matches!(name, "type" | "title" | "status" | "detail" | "instance" | "traceId")
            {
                continue;
            }
            let messages: Vec<String> = if let Some(text) = json::as_string(raw) {
                vec![text]
            } else if let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(raw.get()) {
                list.into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .take(MAX_MESSAGES)
                    .collect()
            } else {
                continue;
            };
            let messages = messages
                .iter()
                .map(|m| Excerpt::of_text(m, MESSAGE_CHARS).as_str().to_owned())
                .collect();
            fields.push((Excerpt::of_text(name, 100).as_str().to_owned(), messages));
        }
        Self { fields, title }
    }

    /// The messages for `field` (exact name first, then ignoring ASCII case).
    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .or_else(|| self.fields.iter().find(|(name, _)| name.eq_ignore_ascii_case(field)))
            .map(|(_, messages)| messages.as_slice())
    }

    /// Fields and their messages, in the server's order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.fields.iter().map(|(name, messages)| (name.as_str(), messages.as_slice()))
    }

    /// A problem document's `title`, if there was one.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Whether no field was named.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, messages) in &self.fields {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{name}: {}", messages.join(" "))?;
        }
        if first {
            f.write_str(self.title.as_deref().unwrap_or("no field named"))?;
        }
        Ok(())
    }
}

/// What kind of API error a response is.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ApiErrorKind, Error, http};
///
/// // What `client.put("news").send()` answers where only GET is allowed (classified here by hand).
/// let mut headers = http::HeaderMap::new();
/// headers.insert("allow", "GET, HEAD".parse()?);
/// let status = http::StatusCode::METHOD_NOT_ALLOWED;
/// let answer: Result<(), Error> = helloflex::core::classify_response(status, &headers, b"").map_err(Error::from);
/// match answer {
///     Err(Error::Api(e)) => match e.kind() {
///         ApiErrorKind::BadRequest(validation) => println!("{} invalid fields", validation.fields().count()),
///         ApiErrorKind::MethodNotAllowed { allow } => assert_eq!(allow, &[http::Method::GET, http::Method::HEAD]),
///         ApiErrorKind::RateLimited { retry_after } => println!("wait {retry_after:?}"),
///         other => println!("{other:?}"),
///     },
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// 400, with the validation map if the body had one.
    BadRequest(ValidationErrors),
    /// 401: the token was refused.
    Unauthorized {
        /// Why, as far as the server said.
        cause: UnauthorizedCause,
        /// The parsed challenge, if the server sent one.
        challenge: Option<BearerChallenge>,
    },
    /// 403: valid credentials, not allowed (a refresh does not help).
    Forbidden {
        /// The challenge, if sent; `insufficient_scope` names the missing scopes.
        challenge: Option<BearerChallenge>,
    },
    /// 404
    NotFound,
    /// 405, with the methods the resource allows.
    MethodNotAllowed {
        /// The `Allow` header's methods.
        allow: Vec<Method>,
    },
    /// 406
    NotAcceptable,
    /// 408
    RequestTimeout,
    /// 409
    Conflict,
    /// 415
    UnsupportedMediaType,
    /// 429, with how long the server asked to wait.
    RateLimited {
        /// `Retry-After`, if readable.
        retry_after: Option<Duration>,
    },
    /// 5xx
    Server,
    /// A redirect that was not followed.
    Redirect,
    /// Any other status (418, a 2xx the API does not use).
    Unexpected,
}

/// An API call that the server answered with an error status: the status, the kind (what
/// the documented error means), the validation map of a 400, `Retry-After` of a 429, the 401's
/// cause, and a short sanitised excerpt of the body.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ApiErrorKind, http};
///
/// // What `Error::Api(error)` carries for a 429 (classified here from a response by hand).
/// let mut headers = http::HeaderMap::new();
/// headers.insert("retry-after", "7".parse()?);
/// let status = http::StatusCode::TOO_MANY_REQUESTS;
/// let error = helloflex::core::classify_response(status, &headers, b"").unwrap_err();
/// assert_eq!(error.status(), 429);
/// assert!(error.is_transient());
/// assert!(matches!(error.kind(), ApiErrorKind::RateLimited { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ApiError(Box<ApiErrorInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiErrorInner {
    status: StatusCode,
    kind: ApiErrorKind,
    excerpt: Excerpt,
}

impl ApiError {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The classification.
    pub fn kind(&self) -> &ApiErrorKind {
        &self.0.kind
    }

    /// The validation errors of a 400, if any.
    pub fn validation(&self) -> Option<&ValidationErrors> {
        match &self.0.kind {
            ApiErrorKind::BadRequest(v) => Some(v),
            _ => None,
        }
    }

    /// A short sanitised excerpt of the body.
    pub fn excerpt(&self) -> &str {
        self.0.excerpt.as_str()
    }

    /// Whether a retry of an idempotent request may succeed (408, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        crate::retry::transient_status(self.0.status)
    }

    fn render(&self) -> String {
        let ApiErrorInner { status, kind, excerpt } = &*self.0;
        let what = match kind {
            ApiErrorKind::BadRequest(v) if !v.is_empty() => format!("validation failed: {v}"),
            ApiErrorKind::BadRequest(_) => "bad request".to_owned(),
            ApiErrorKind::Unauthorized { cause, .. } => format!("unauthorized ({cause:?})"),
            ApiErrorKind::Forbidden { challenge: Some(c) } if c.is_insufficient_scope() => {
                format!("forbidden: insufficient scope (needs {})", c.scope.join(" "))
            }
            ApiErrorKind::Forbidden { .. } => "forbidden".to_owned(),
            ApiErrorKind::NotFound => "not found".to_owned(),
            ApiErrorKind::MethodNotAllowed { allow } => {
                let allow: Vec<&str> = allow.iter().map(Method::as_str).collect();
                format!("method not allowed (allowed: {})", allow.join(", "))
            }
            ApiErrorKind::NotAcceptable => "not acceptable".to_owned(),
            ApiErrorKind::RequestTimeout => "request timeout".to_owned(),
            ApiErrorKind::Conflict => "conflict".to_owned(),
            ApiErrorKind::UnsupportedMediaType => "unsupported media type".to_owned(),
            ApiErrorKind::RateLimited { retry_after: Some(d) } => {
                format!("rate limited (retry after {}s)", d.as_secs())
            }
            ApiErrorKind::RateLimited { retry_after: None } => "rate limited".to_owned(),
            ApiErrorKind::Server => "server error".to_owned(),
            ApiErrorKind::Redirect => "redirect not followed".to_owned(),
            ApiErrorKind::Unexpected => "unexpected status".to_owned(),
        };
        if excerpt.is_empty() {
            format!("API answered {}: {what}", status.as_u16())
        } else {
            format!("API answered {}: {what}; body starts: {:?}", status.as_u16(), excerpt.as_str())
        }
    }
}

/// Whether `status` is a success the HelloFlex API uses (200-206).
///
/// ```
/// use helloflex_core::machines::is_success;
///
/// assert!(is_success(http::StatusCode::CREATED));
/// assert!(!is_success(http::StatusCode::NOT_MODIFIED));
/// ```
pub fn is_success(status: StatusCode) -> bool {
    (200..=206).contains(&status.as_u16())
}

/// Classifies an API response to a request that carried a token (every SDK call does):
/// `Ok(())` for success, otherwise the typed error.
///
/// ```
/// use helloflex_core::{classify_response, ApiErrorKind};
/// let response = http::Response::builder().status(404).body(Vec::new()).unwrap();
/// let error = classify_response(response.status(), response.headers(), response.body()).unwrap_err();
/// assert_eq!(error.kind(), &ApiErrorKind::NotFound);
/// ```
pub fn classify_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    if is_success(status) {
        return Ok(());
    }
    let kind = match status.as_u16() {
        400 => ApiErrorKind::BadRequest(if looks_like_json(headers, body) {
            ValidationErrors::from_body(body)
        } else {
            ValidationErrors::default()
        }),
        401 => {
            let challenge = BearerChallenge::from_headers(headers);
            let cause = match &challenge {
                Some(c) => c.cause(),
                None => body_cause(body).unwrap_or(UnauthorizedCause::Unknown),
            };
            // A challenge without `error` means "no credentials" only for a request without
            // any (RFC 6750 3.1); ours carried a token, so it was refused for a reason the
            // server did not name, unless the body names one.
            let cause = match (cause, challenge.as_ref().and_then(|c| c.error.as_ref())) {
                (UnauthorizedCause::MissingCredentials, None) => {
                    body_cause(body).unwrap_or(UnauthorizedCause::InvalidToken)
                }
                _ => cause,
            };
            ApiErrorKind::Unauthorized { cause, challenge }
        }
        403 => ApiErrorKind::Forbidden { challenge: BearerChallenge::from_headers(headers) },
        404 => ApiErrorKind::NotFound,
        405 => ApiErrorKind::MethodNotAllowed { allow: allow_header(headers) },
        406 => ApiErrorKind::NotAcceptable,
        408 => ApiErrorKind::RequestTimeout,
        409 => ApiErrorKind::Conflict,
        415 => ApiErrorKind::UnsupportedMediaType,
        429 => ApiErrorKind::RateLimited { retry_after: retry_after(headers) },
        300..=399 => ApiErrorKind::Redirect,
        500..=599 => ApiErrorKind::Server,
        _ => ApiErrorKind::Unexpected,
    };
    Err(ApiError(Box::new(ApiErrorInner { status, kind, excerpt: Excerpt::of_bytes(body) })))
}

fn looks_like_json(headers: &HeaderMap, body: &[u8]) -> bool {
    let declared =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|v| v.to_ascii_lowercase());
    match declared {
        Some(ct) if ct.contains("json") => true,
        Some(ct) if ct.contains("html") => false,
        _ => json::trim_body(body).first() == Some(&b'{'),
    }
}

/// The cause named in a JSON error body (`error_description`, `message`, `error`, `cause`).
fn body_cause(body: &[u8]) -> Option<UnauthorizedCause> {
    let fields = json::parse_object(body).ok()?;
    ["cause", "error_description", "message", "error", "detail", "title"]
        .iter()
        .filter_map(|name| fields.get(name).and_then(json::as_string))
        .find_map(|text| cause_from_text(&text.replace(['_', '-'], " ")))
}

fn allow_header(headers: &HeaderMap) -> Vec<Method> {
    headers
        .get_all(ALLOW)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|m| Method::from_bytes(m.trim().as_bytes()).ok())
        .take(16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn classify(status: u16, headers: &[(&str, &str)], body: &str) -> Result<(), ApiError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        classify_response(StatusCode::from_u16(status).unwrap(), &map, body.as_bytes())
    }

    #[test]
    fn success_statuses() {
        for s in [200, 201, 204] {
            assert!(classify(s, &[], "").is_ok());
        }
        assert_eq!(classify(299, &[], "").unwrap_err().kind(), &ApiErrorKind::Unexpected);
        assert_eq!(classify(418, &[], "").unwrap_err().kind(), &ApiErrorKind::Unexpected);
    }

    #[test]
    fn validation_map_shapes() {
        let e = classify(400, &[], r#"{"Id": ["Value -1 is invalid."], "Lang": ["Should be valid ISO 639-1 language code."]}"#).unwrap_err();
        let v = e.validation().unwrap();
        assert_eq!(v.get("lang").unwrap()[0], "Should be valid ISO 639-1 language code.");
        let e = classify(400, &[("content-type", "application/problem+json")], r#"{"title":"One or more validation errors occurred.","status":400,"errors":{"Id":["bad"]}}"#).unwrap_err();
        assert_eq!(e.validation().unwrap().get("Id").unwrap(), ["bad"]);
        assert_eq!(
            e.validation().unwrap().title(),
            Some("One or more validation errors occurred.")
        );
        assert!(classify(400, &[], "{}").unwrap_err().validation().unwrap().is_empty());
        assert!(
            classify(400, &[], r#"{"Id": []}"#)
                .unwrap_err()
                .validation()
                .unwrap()
                .get("Id")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            classify(400, &[], r#"{"Id": "x"}"#)
                .unwrap_err()
                .validation()
                .unwrap()
                .get("Id")
                .unwrap(),
            ["x"]
        );
        assert!(
            classify(400, &[("content-type", "text/html")], "<html>{</html>")
                .unwrap_err()
                .validation()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unauthorized_causes() {
        let cause =
            |h: &[(&str, &str)], body: &str| match classify(401, h, body).unwrap_err().kind() {
                ApiErrorKind::Unauthorized { cause, .. } => *cause,
                k => panic!("{k:?}"),
            };
        assert_eq!(
            cause(&[("www-authenticate", "Bearer realm=\"api\"")], ""),
            UnauthorizedCause::InvalidToken,
            "a token was sent: not missing credentials"
        );
        assert_eq!(
            cause(
                &[("www-authenticate", "Bearer realm=\"api\"")],
                r#"{"message":"Missing Authorization header"}"#
            ),
            UnauthorizedCause::MissingCredentials,
            "unless the server says so"
        );
        assert_eq!(
            cause(
                &[(
                    "www-authenticate",
                    "Bearer error=\"invalid_token\", error_description=\"token expired\""
                )],
                ""
            ),
            UnauthorizedCause::Expired
        );
        assert_eq!(cause(&[], r#"{"error":"token_revoked"}"#), UnauthorizedCause::Revoked);
        assert_eq!(cause(&[], "nope"), UnauthorizedCause::Unknown);
    }

    #[test]
    fn other_statuses() {
        let e = classify(405, &[("allow", "GET, POST")], "").unwrap_err();
        assert_eq!(
            e.kind(),
            &ApiErrorKind::MethodNotAllowed { allow: vec![Method::GET, Method::POST] }
        );
        let e = classify(429, &[("retry-after", "3")], "").unwrap_err();
        assert_eq!(
            e.kind(),
            &ApiErrorKind::RateLimited { retry_after: Some(Duration::from_secs(3)) }
        );
        assert!(e.is_transient());
        assert!(classify(503, &[], "<html>down</html>").unwrap_err().is_transient());
        assert!(!classify(404, &[], "").unwrap_err().is_transient());
    }
}
