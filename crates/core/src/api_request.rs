//! API requests: method, percent-encoded path, query, JSON body, bearer header.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use serde::Serialize;

use crate::encoding::push_encoded;
use crate::endpoint::Endpoint;
use crate::error::{Error, UsageError};
use crate::secret::AccessToken;

/// An API request, independent of the token it will carry. Builder methods never fail; the first
/// mistake is kept and reported by [`ApiRequest::to_http`].
///
/// A client's `get(..)`, `post(..)`, ... build one; [`ApiRequest`] itself suits a request made
/// often (built once, cloned per call: `client.request(values.clone())`).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{AccessToken, ApiRequest, Environment};
/// let request = ApiRequest::get("domainTypes/7/domainValues").query("Lang", "en");
/// let http = request.to_http(&Environment::Sandbox.base_url(), &AccessToken::new("t0k")).unwrap();
/// assert_eq!(http.uri(), "https://api.uat-helloflex.com/domainTypes/7/domainValues?Lang=en");
/// assert_eq!(http.headers()["authorization"], "Bearer t0k");
/// assert!(http.headers()["authorization"].is_sensitive());
/// ```
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    retry_safe: Option<bool>,
    error: Option<UsageError>,
}

impl ApiRequest {
    /// A request for `path`, split on `/` with each segment percent-encoded.
    pub fn new(method: Method, path: &str) -> Self {
        let mut request = Self {
            method,
            path: String::with_capacity(path.len() + 1),
            query: String::new(),
            headers: HeaderMap::new(),
            body: None,
            retry_safe: None,
            error: None,
        };
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            request.push_segment(segment);
        }
        request
    }

    /// `GET path`
    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }
    /// `POST path`
    pub fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }
    /// `PUT path`
    pub fn put(path: &str) -> Self {
        Self::new(Method::PUT, path)
    }
    /// `PATCH path`
    pub fn patch(path: &str) -> Self {
        Self::new(Method::PATCH, path)
    }
    /// `DELETE path`
    pub fn delete(path: &str) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Appends one path segment, percent-encoded (a `/` in it is encoded, not a separator).
    pub fn segment(mut self, segment: impl AsRef<str>) -> Self {
        self.push_segment(segment.as_ref());
        self
    }

    /// [`ApiRequest::segment`] in place: a path's segments are added without moving the whole
    /// request once per segment.
    fn push_segment(&mut self, segment: &str) {
        if segment == "." || segment == ".." {
            return self.fail(UsageError::DotSegment(segment.to_owned()));
        }
        self.path.push('/');
        push_encoded(&mut self.path, segment);
    }

    /// Appends a query parameter, percent-encoded.
    pub fn query(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        push_encoded(&mut self.query, key.as_ref());
        self.query.push('=');
        push_encoded(&mut self.query, value.as_ref());
        self
    }

    /// Sets a JSON body (and `Content-Type: application/json`).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = Some(bytes),
            Err(e) => self.fail(UsageError::Serialize(e.to_string())),
        }
        self
    }

    /// Sets a raw body; the caller sets its `Content-Type` with [`ApiRequest::header`].
    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(bytes);
        self
    }

    /// Adds a header. `Authorization`, `Host` and the body framing (`Content-Length`,
    /// `Transfer-Encoding`) belong to the SDK and are refused.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let header = |reason| UsageError::Header { name: name.to_owned(), reason };
        let owned = [AUTHORIZATION, HOST, CONTENT_LENGTH, TRANSFER_ENCODING];
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), _) if owned.contains(&n) => self.fail(header("set by the SDK")),
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            (Err(_), _) => self.fail(header("invalid name")),
            (_, Err(_)) => self.fail(header("invalid value")),
        }
        self
    }

    /// Declares whether replaying this request after a failure is safe. By default only
    /// idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) are replayed once sent.
    pub fn retry_safe(mut self, safe: bool) -> Self {
        self.retry_safe = Some(safe);
        self
    }

    /// Whether a failed attempt that may have reached the server can be replayed.
    pub fn is_retry_safe(&self) -> bool {
        self.retry_safe.unwrap_or_else(|| self.method.is_idempotent())
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The encoded path (starting with `/`, or empty for the base URL itself).
    pub fn path(&self) -> &str {
        &self.path
    }

    fn fail(&mut self, error: UsageError) {
        self.error.get_or_insert(error);
    }

    /// The HTTP request against `base`, carrying `token` in a sensitive `Authorization` header.
    pub fn to_http(&self, base: &Endpoint, token: &AccessToken) -> Result<Request<Vec<u8>>, Error> {
        self.to_http_with(base, bearer_header(token)?)
    }

    /// The HTTP request against `base` with a prepared `Authorization` value (a cached token's).
    pub fn to_http_with(
        &self,
        base: &Endpoint,
        authorization: HeaderValue,
    ) -> Result<Request<Vec<u8>>, Error> {
        if let Some(e) = &self.error {
            return Err(e.clone().into());
        }
        let uri = base
            .request_uri(&self.path, &self.query)
            .ok_or(UsageError::WrongState("the request URL is not valid"))?;
        // Sized once for what is added below: no growth per request.
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 4);
        let json = || HeaderValue::from_static("application/json");
        if self.headers.is_empty() {
            headers.insert(ACCEPT, json());
            if self.body.is_some() {
                headers.insert(CONTENT_TYPE, json());
            }
        } else {
            headers.extend(self.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
            headers.entry(ACCEPT).or_insert_with(json);
            if self.body.is_some() {
                headers.entry(CONTENT_TYPE).or_insert_with(json);
            }
        }
        // The framing is decided here, once for every transport (which sends what the headers
        // say): a method whose requests carry content declares its length, 0 included (RFC 9110
        // section 8.6: a server may refuse a POST without it, 411); a bodiless method without
        // a body declares none.
        if self.body.is_some() || carries_content(&self.method) {
            let length = self.body.as_ref().map_or(0, Vec::len);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        headers.insert(AUTHORIZATION, authorization);
        let mut request = Request::new(self.body.clone().unwrap_or_default());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// Whether requests with `method` carry content (so declare its length even when empty).
fn carries_content(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// `Bearer <token>`, marked sensitive so HTTP libraries and loggers leave it out.
///
/// ```
/// use helloflex_core::AccessToken;
/// use helloflex_core::machines::bearer_header;
///
/// let header = bearer_header(&AccessToken::new("t0k"))?;
/// assert_eq!(header, "Bearer t0k");
/// assert!(header.is_sensitive());
/// // A token that cannot be a header value is refused, not sent.
/// assert!(bearer_header(&AccessToken::new("t0k\r\nX-Injected: 1")).is_err());
/// # Ok::<(), helloflex_core::Error>(())
/// ```
pub fn bearer_header(token: &AccessToken) -> Result<HeaderValue, Error> {
    let mut text = String::with_capacity(7 + token.len());
    text.push_str("Bearer ");
    text.push_str(token.expose_secret());
    let mut value = HeaderValue::try_from(text).map_err(|_| UsageError::Header {
        name: "authorization".into(),
        reason: "the token is not a valid header value",
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Environment;

    fn http(request: ApiRequest) -> Result<Request<Vec<u8>>, Error> {
        request.to_http(&Environment::Live.base_url(), &AccessToken::new("tok"))
    }

    #[test]
    fn segments_and_query_are_encoded() {
        let req = http(ApiRequest::get("news").segment("a/b c?#").query("q", "x&y=z é")).unwrap();
        assert_eq!(
            req.uri(),
            "https://api.helloflex.com/news/a%2Fb%20c%3F%23?q=x%26y%3Dz%20%C3%A9"
        );
        assert_eq!(req.headers()[ACCEPT], "application/json");
        assert!(req.body().is_empty());
    }

    #[test]
    fn json_body_sets_content_type() {
        let req = http(ApiRequest::post("items").json(&serde_json::json!({"name": "x"}))).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(req.headers()[CONTENT_LENGTH], "12");
        assert_eq!(req.body(), br#"{"name":"x"}"#);
    }

    #[test]
    fn misuse_is_reported_at_build() {
        assert!(matches!(
            http(ApiRequest::get("a/../b")),
            Err(Error::Usage(UsageError::DotSegment(_)))
        ));
        assert!(matches!(
            http(ApiRequest::get("a").header("Authorization", "x")),
            Err(Error::Usage(_))
        ));
        assert!(matches!(http(ApiRequest::get("a").header("x", "a\nb")), Err(Error::Usage(_))));
    }

    #[test]
    fn the_body_framing_is_declared_by_method_and_body() {
        let length = |request: ApiRequest| {
            let request = http(request).unwrap();
            assert!(!request.headers().contains_key(TRANSFER_ENCODING));
            request.headers().get(CONTENT_LENGTH).map(|v| v.to_str().unwrap().to_owned())
        };
        for bodiless in
            [ApiRequest::get("a"), ApiRequest::delete("a"), ApiRequest::new(Method::HEAD, "a")]
        {
            assert_eq!(length(bodiless), None);
        }
        for empty in [ApiRequest::post("a"), ApiRequest::put("a"), ApiRequest::patch("a")] {
            assert_eq!(length(empty).as_deref(), Some("0"));
        }
        assert_eq!(length(ApiRequest::get("a").body(b"abc".to_vec())).as_deref(), Some("3"));
        assert_eq!(length(ApiRequest::delete("a").json(&1)).as_deref(), Some("1"));
        for owned in ["content-length", "Transfer-Encoding", "host", "authorization"] {
            assert!(http(ApiRequest::post("a").header(owned, "1")).is_err(), "{owned}");
        }
    }

    #[test]
    fn base_paths_queries_and_origins_assemble() {
        let base =
            Endpoint::parse("http://[::1]:8080/v1/", crate::InsecureLoopback::Allow).unwrap();
        let get =
            |r: ApiRequest| r.to_http(&base, &AccessToken::new("t")).unwrap().uri().to_string();
        assert_eq!(get(ApiRequest::get("news").query("a", "b")), "http://[::1]:8080/v1/news?a=b");
        assert_eq!(get(ApiRequest::get("")), "http://[::1]:8080/v1");
        let origin = Endpoint::parse("https://API.example", crate::InsecureLoopback::Deny).unwrap();
        let root = ApiRequest::get("").query("q", "1").to_http(&origin, &AccessToken::new("t"));
        assert_eq!(root.unwrap().uri(), "https://API.example/?q=1");
    }

    #[test]
    fn retry_safety_follows_method() {
        assert!(ApiRequest::get("a").is_retry_safe());
        assert!(ApiRequest::put("a").is_retry_safe());
        assert!(!ApiRequest::post("a").is_retry_safe());
        assert!(!ApiRequest::patch("a").is_retry_safe());
        assert!(ApiRequest::post("a").retry_safe(true).is_retry_safe());
    }
}
