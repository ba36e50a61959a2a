//! `WWW-Authenticate` challenges (RFC 7235 syntax, RFC 6750 Bearer parameters), parsed leniently:
//! a malformed header yields what could be read, never an error.

use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

use crate::excerpt::Excerpt;

/// Longest header value read; the rest is ignored.
const MAX_HEADER_BYTES: usize = 4096;

/// A Bearer challenge (RFC 6750 section 3).
///
/// ```
/// use helloflex_core::BearerChallenge;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("www-authenticate", r#"Bearer realm="api", error="insufficient_scope", scope="items.write""#.parse()?);
/// let challenge = BearerChallenge::from_headers(&headers).ok_or("no Bearer challenge")?;
/// assert!(challenge.is_insufficient_scope());
/// assert_eq!(challenge.scope, ["items.write"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BearerChallenge {
    /// `realm`
    pub realm: Option<String>,
    /// `error`: `invalid_request`, `invalid_token`, `insufficient_scope` or another code.
    pub error: Option<String>,
    /// `error_description`, sanitised.
    pub error_description: Option<String>,
    /// `error_uri`, sanitised.
    pub error_uri: Option<String>,
    /// `scope`: the scopes the resource needs, split on spaces.
    pub scope: Vec<String>,
}

/// Why the API refused a token, as far as the server said (Flextell documents four causes).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ApiErrorKind, UnauthorizedCause, http};
///
/// // A 401 as `Error::Api(e)` carries it (classified here from a response by hand).
/// let mut headers = http::HeaderMap::new();
/// headers.insert("www-authenticate", r#"Bearer error="invalid_token", error_description="The access token expired""#.parse()?);
/// let e = helloflex::core::classify_response(http::StatusCode::UNAUTHORIZED, &headers, b"").unwrap_err();
/// assert!(matches!(e.kind(), ApiErrorKind::Unauthorized { cause: UnauthorizedCause::Expired, .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnauthorizedCause {
    /// No credentials were sent (a challenge without an `error`, RFC 6750 section 3.1).
    MissingCredentials,
    /// The token expired: refreshing fixes it.
    Expired,
    /// The token or request was malformed.
    Malformed,
    /// The token was revoked: for user tokens, the user must authorize again.
    Revoked,
    /// The token is invalid for a reason the server did not name.
    InvalidToken,
    /// The server did not say.
    Unknown,
}

impl BearerChallenge {
    /// Reads the first Bearer challenge among all `WWW-Authenticate` headers.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(Self::parse)
    }

    /// Reads the first Bearer challenge in one header value.
    ///
    /// ```
    /// use helloflex_core::{BearerChallenge, UnauthorizedCause};
    /// let c = BearerChallenge::parse(r#"Bearer realm="api", error="invalid_token", error_description="The access token expired""#).unwrap();
    /// assert_eq!(c.error.as_deref(), Some("invalid_token"));
    /// assert_eq!(c.cause(), UnauthorizedCause::Expired);
    /// ```
    pub fn parse(header: &str) -> Option<Self> {
        let header = truncate(header, MAX_HEADER_BYTES);
        let challenges = parse_challenges(header);
        let (_, params) =
            challenges.into_iter().find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?;
        let mut challenge = BearerChallenge::default();
        for (name, value) in params {
            let clean = || Excerpt::of_text(&value, 300).as_str().to_owned();
            match name.to_ascii_lowercase().as_str() {
                "realm" if challenge.realm.is_none() => challenge.realm = Some(clean()),
                "error" if challenge.error.is_none() => {
                    challenge.error = Some(Excerpt::of_text(&value, 64).as_str().to_owned())
                }
                "error_description" if challenge.error_description.is_none() => {
                    challenge.error_description = Some(clean())
                }
                "error_uri" if challenge.error_uri.is_none() => challenge.error_uri = Some(clean()),
                "scope" if challenge.scope.is_empty() => {
                    challenge.scope = value.split_ascii_whitespace().map(str::to_owned).collect();
                }
                _ => {}
            }
        }
        Some(challenge)
    }

    /// The cause, from `error` and keywords in `error_description`.
    pub fn cause(&self) -> UnauthorizedCause {
        match self.error.as_deref() {
            None => UnauthorizedCause::MissingCredentials,
            Some("invalid_request") => UnauthorizedCause::Malformed,
            Some(_) => cause_from_text(self.error_description.as_deref().unwrap_or_default())
                .unwrap_or(UnauthorizedCause::InvalidToken),
        }
    }

    /// Whether the server said the token lacks a scope (403 `insufficient_scope`).
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// Reads a cause from prose such as an `error_description` or an API error body.
pub(crate) fn cause_from_text(text: &str) -> Option<UnauthorizedCause> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("expired") {
        Some(UnauthorizedCause::Expired)
    } else if lower.contains("revoked") {
        Some(UnauthorizedCause::Revoked)
    } else if lower.contains("malformed") {
        Some(UnauthorizedCause::Malformed)
    } else if lower.contains("missing") {
        Some(UnauthorizedCause::MissingCredentials)
    } else {
        None
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

type Challenge = (String, Vec<(String, String)>);

/// A read position over the header; every access is checked.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_while(&mut self, keep: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        self.skip_while(keep);
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// A quoted string after its opening quote; `\` escapes; an unterminated one takes the rest.
    fn quoted(&mut self) -> String {
        let mut value = String::new();
        let rest = self.text.get(self.pos..).unwrap_or_default();
        let mut chars = rest.char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += offset + 1;
                    return value;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c => value.push(c),
            }
        }
        self.pos = self.text.len();
        value
    }
}

/// Splits `scheme param=value, param="quoted", scheme2 ...` into challenges. Tolerates missing
/// commas, unterminated quotes and stray characters.
fn parse_challenges(input: &str) -> Vec<Challenge> {
    let mut cursor = Cursor { text: input, pos: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    while cursor.peek().is_some() {
        cursor.skip_while(|b| b.is_ascii_whitespace() || b == b',');
        let word = cursor.take_while(is_tchar).to_owned();
        if word.is_empty() {
            cursor.pos += 1; // a stray character: step over it
            continue;
        }
        let after_word = cursor.pos;
        cursor.skip_while(|b| b.is_ascii_whitespace());
        if cursor.peek() == Some(b'=') {
            cursor.pos += 1;
            cursor.skip_while(|b| b.is_ascii_whitespace());
            let value = if cursor.peek() == Some(b'"') {
                cursor.pos += 1;
                cursor.quoted()
            } else {
                cursor.take_while(|b| b != b',' && !b.is_ascii_whitespace()).to_owned()
            };
            match out.last_mut() {
                Some((_, params)) => params.push((word, value)),
                None => out.push((String::new(), vec![(word, value)])),
            }
        } else {
            cursor.pos = after_word;
            out.push((word, Vec::new()));
        }
    }
    out
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6750_examples() {
        let c = BearerChallenge::parse(r#"Bearer realm="example""#).unwrap();
        assert_eq!(c.realm.as_deref(), Some("example"));
        assert_eq!(c.cause(), UnauthorizedCause::MissingCredentials);

        let c = BearerChallenge::parse(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        )
        .unwrap();
        assert_eq!(c.cause(), UnauthorizedCause::Expired);
    }

    #[test]
    fn several_schemes_and_sloppy_syntax() {
        let c = BearerChallenge::parse(r#"Basic realm="x", Bearer error=invalid_token error_description="token revoked"  scope="a b""#).unwrap();
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(c.cause(), UnauthorizedCause::Revoked);
        assert_eq!(c.scope, vec!["a", "b"]);
        assert!(BearerChallenge::parse("Basic realm=x").is_none());
        let c = BearerChallenge::parse(
            r#"bearer error="invalid_token", error_description="unterminated"#,
        )
        .unwrap();
        assert_eq!(c.error_description.as_deref(), Some("unterminated"));
        assert!(BearerChallenge::parse("Bearer ,,, =\"\\").is_some());
        let c = BearerChallenge::parse(r#"Bearer error="insufficient_scope", scope="news.write""#)
            .unwrap();
        assert!(c.is_insufficient_scope());
    }
}
