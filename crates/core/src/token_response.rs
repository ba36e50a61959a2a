//! Token endpoint responses (RFC 6749 sections 5.1 and 5.2), read leniently where real servers
//! are sloppy and strictly where a value ends up in a header.

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use serde::de::{self, Visitor};

use crate::error::{Error, ProtocolError};
use crate::excerpt::Excerpt;
use serde_json::value::RawValue;

use crate::json::{self, ObjectError};
use crate::oauth_error::OAuthError;
use crate::secret::{AccessToken, RefreshToken};

/// Largest token response body read (64 KiB); anything larger is refused unread.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Longest access or refresh token accepted (16 KiB: room for large JWTs, not for abuse).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// `expires_in` is clamped to at least this: a zero or negative lifetime must not turn every
/// call into a token request.
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// `expires_in` is clamped to at most this (one year): larger values are meaningless and would
/// overflow instant arithmetic.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A successful token response.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::http::StatusCode;
///
/// let body = br#"{"access_token":"at","token_type":"bearer","expires_in":"0","refresh_token":"rt","scope":"news.read calls.read"}"#;
/// let response = helloflex::core::parse_token_response(StatusCode::OK, body)?;
/// assert_eq!(response.expires_in, Some(helloflex::core::MIN_LIFETIME)); // clamped: never 0
/// assert_eq!(response.refresh_token.map(|r| r.len()), Some(2));
/// assert_eq!(response.scope, Some(vec!["news.read".to_owned(), "calls.read".to_owned()]));
/// # Ok::<(), helloflex::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token (visible ASCII only: it is safe to put in a header).
    pub access_token: AccessToken,
    /// The lifetime the server gave, clamped to [`MIN_LIFETIME`]`..=`[`MAX_LIFETIME`]; `None`
    /// when the server did not say.
    pub expires_in: Option<Duration>,
    /// A refresh token, if one was sent (an empty one counts as none).
    pub refresh_token: Option<RefreshToken>,
    /// The granted scopes, if the server listed them (a string or, leniently, an array).
    pub scope: Option<Vec<String>>,
}

/// Reads a token endpoint response.
///
/// Accepts any 2xx; `token_type` must be `Bearer` in any case (missing counts as Bearer);
/// `expires_in` may be a number or a digit string. An `error` field makes it an OAuth error
/// whatever the status. Everything else (HTML, empty, plain text, truncated JSON, oversized
/// bodies) is a typed [`ProtocolError`] that keeps the status and a sanitised excerpt.
///
/// ```
/// use http::StatusCode;
/// use helloflex_core::parse_token_response;
///
/// let body = br#"{"access_token":"abc","token_type":"Bearer","expires_in":3599}"#;
/// let token = parse_token_response(StatusCode::OK, body).unwrap();
/// assert_eq!(token.access_token.expose_secret(), "abc");
/// assert_eq!(token.expires_in.unwrap().as_secs(), 3599);
/// ```
pub fn parse_token_response(status: StatusCode, body: &[u8]) -> Result<TokenResponse, Error> {
    if body.len() > MAX_TOKEN_RESPONSE_BYTES {
        return Err(ProtocolError::BodyTooLarge { status, limit: MAX_TOKEN_RESPONSE_BYTES }.into());
    }
    let fields = match read_fields(body) {
        Ok(fields) => fields,
        Err(e) if !status.is_success() => {
            // A proxy's HTML page or an empty 5xx: no OAuth error to read.
            return Err(match e {
                ObjectError::Duplicate(_) => e.into_protocol(status, body),
                _ => ProtocolError::UnexpectedResponse { status, excerpt: Excerpt::of_bytes(body) },
            }
            .into());
        }
        Err(e) => return Err(e.into_protocol(status, body).into()),
    };
    match fields.error {
        Text::Null => {}
        Text::Str(code) => {
            // Leniently: a description or URI that is not a string is left out.
            let description = fields.error_description.into_str();
            let uri = fields.error_uri.into_str();
            return Err(
                OAuthError::new(status, &code, description.as_deref(), uri.as_deref()).into()
            );
        }
        Text::Strings(_) | Text::Other => return Err(invalid(status, "error", "not a string")),
    }
    if !status.is_success() {
        return Err(
            ProtocolError::UnexpectedResponse { status, excerpt: Excerpt::of_bytes(body) }.into()
        );
    }

    let access_token = match fields.access_token {
        Text::Null => {
            return Err(ProtocolError::MissingField { status, field: "access_token" }.into());
        }
        Text::Strings(_) | Text::Other => {
            return Err(invalid(status, "access_token", "not a string"));
        }
        Text::Str(token) => token,
    };
    check_token(status, "access_token", &access_token)?;

    // Absent means Bearer; present but null does not.
    match &fields.token_type {
        None => {}
        Some(Text::Str(token_type)) if token_type.eq_ignore_ascii_case("bearer") => {}
        Some(Text::Str(token_type)) => {
            return Err(ProtocolError::UnsupportedTokenType {
                token_type: Excerpt::of_text(token_type, 32).as_str().to_owned(),
            }
            .into());
        }
        Some(Text::Null) => return Err(invalid(status, "token_type", "null")),
        Some(Text::Strings(_) | Text::Other) => {
            return Err(invalid(status, "token_type", "not a string"));
        }
    }

    let expires_in = match present(fields.expires_in) {
        None => None,
        Some(raw) => {
            let seconds = json::as_seconds(raw)
                .ok_or_else(|| invalid(status, "expires_in", "not a number of seconds"))?;
            Some(Duration::from_secs(seconds).clamp(MIN_LIFETIME, MAX_LIFETIME))
        }
    };

    let refresh_token = match fields.refresh_token {
        Text::Null => None,
        Text::Strings(_) | Text::Other => {
            return Err(invalid(status, "refresh_token", "not a string"));
        }
        Text::Str(token) if token.is_empty() => None,
        Text::Str(token) => {
            check_token(status, "refresh_token", &token)?;
            Some(RefreshToken::new(token.into_owned()))
        }
    };

    // Leniently: a list of strings too; any other value is ignored, as an absent scope.
    let scope = match fields.scope {
        Text::Str(text) => Some(text.split_ascii_whitespace().map(str::to_owned).collect()),
        Text::Strings(scopes) => Some(scopes),
        Text::Null | Text::Other => None,
    };

    Ok(TokenResponse {
        access_token: AccessToken::new(access_token.into_owned()),
        expires_in,
        refresh_token,
        scope,
    })
}

/// The fields RFC 6749 defines, borrowed from the body so each is read leniently on its own:
/// every field where a string belongs as text (a string is decoded once, by the parser), the
/// lifetime raw (a number or a digit string).
/// serde's derived visitor matches names without allocating and refuses a repeated field.
#[derive(serde::Deserialize)]
struct TokenFields<'a> {
    #[serde(borrow, default)]
    access_token: Text<'a>,
    /// `Some` whenever the field is in the body: a null token type is not an absent one.
    #[serde(borrow, default, deserialize_with = "keep_null")]
    token_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    expires_in: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refresh_token: Text<'a>,
    #[serde(borrow, default)]
    scope: Text<'a>,
    #[serde(borrow, default)]
    error: Text<'a>,
    #[serde(borrow, default)]
    error_description: Text<'a>,
    #[serde(borrow, default)]
    error_uri: Text<'a>,
}

/// A field where a string belongs (a token, its type, the scope, an error's fields): the
/// string (borrowed unless it had escapes), JSON `null` or absent, an array of strings (a
/// scope, leniently), or any other value. Whatever it holds is read to its end: one odd value
/// refuses or ignores its field, never the fields after it.
#[derive(Default)]
enum Text<'a> {
    #[default]
    Null,
    Str(Cow<'a, str>),
    Strings(Vec<String>),
    Other,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

impl<'a> Text<'a> {
    /// The string, if the field holds one.
    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Text::Str(text) => Some(text),
            Text::Null | Text::Strings(_) | Text::Other => None,
        }
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Some(Vec::new());
        while let Some(element) = seq.next_element::<Text<'de>>()? {
            match (element, &mut strings) {
                (Text::Str(string), Some(list)) => list.push(string.into_owned()),
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Text::Other, Text::Strings))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
        Ok(Text::Other)
    }
}

/// A field that is present stays `Some`, even when it is `null` (serde's `Option` maps null to
/// `None`).
fn keep_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Text<'de>>, D::Error> {
    <Text<'de> as serde::Deserialize>::deserialize(d).map(Some)
}

/// A field's raw value; JSON `null` counts as absent.
fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

fn read_fields(body: &[u8]) -> Result<TokenFields<'_>, ObjectError> {
    let trimmed = json::trim_body(body);
    if trimmed.first() != Some(&b'{') {
        return Err(json::not_an_object(trimmed));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(trimmed);
    let fields = serde::Deserialize::deserialize(&mut deserializer)
        .and_then(|f| deserializer.end().map(|()| f));
    fields.map_err(|e| json::object_error(&e))
}

fn invalid(status: StatusCode, field: &'static str, reason: &'static str) -> Error {
    ProtocolError::InvalidField { status, field, reason }.into()
}

/// A token goes into an `Authorization` header or a form body: it must be non-empty visible
/// ASCII (no space, CR or LF) and of sane size.
fn check_token(status: StatusCode, field: &'static str, token: &str) -> Result<(), Error> {
    if token.is_empty() {
        return Err(invalid(status, field, "empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid(status, field, "longer than the size cap"));
    }
    // Branchless so it vectorises: every byte in 0x21..=0x7E (visible ASCII, no space, CR or LF).
    if !token.bytes().fold(true, |ok, b| ok & (b.wrapping_sub(0x21) < 0x5E)) {
        return Err(invalid(status, field, "contains characters not allowed in a header"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth_error::OAuthErrorCode;

    fn ok(body: &str) -> Result<TokenResponse, Error> {
        parse_token_response(StatusCode::OK, body.as_bytes())
    }

    #[test]
    fn seed_sample_parses() {
        let t = ok(r#"{"access_token":"<Access-Token>","token_type":"Bearer","expires_in":3599}"#)
            .unwrap();
        assert_eq!(t.access_token.expose_secret(), "<Access-Token>");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3599)));
        assert!(t.refresh_token.is_none());
    }

    #[test]
    fn lenient_token_type_and_expiry() {
        assert!(ok(r#"{"access_token":"a","token_type":"bEaReR","expires_in":"60"}"#).is_ok());
        assert!(ok(r#"{"access_token":"a"}"#).unwrap().expires_in.is_none());
        assert_eq!(
            ok(r#"{"access_token":"a","expires_in":0}"#).unwrap().expires_in,
            Some(MIN_LIFETIME)
        );
        // Past what a float holds: an invalid field, not a year.
        assert!(matches!(
            ok(r#"{"access_token":"a","expires_in":1e400}"#),
            Err(Error::Protocol(ProtocolError::InvalidField { field: "expires_in", .. }))
        ));
        // A present-but-null token type is not Bearer (an absent one is).
        assert!(matches!(
            ok(r#"{"access_token":"a","token_type":null}"#),
            Err(Error::Protocol(ProtocolError::InvalidField { field: "token_type", .. }))
        ));
        assert!(matches!(
            ok(r#"{"access_token":"a","token_type":"mac"}"#),
            Err(Error::Protocol(ProtocolError::UnsupportedTokenType { .. }))
        ));
    }

    #[test]
    fn error_in_200_is_oauth_error() {
        let e = ok(r#"{"error":"invalid_client","error_description":"bad"}"#).unwrap_err();
        let Error::OAuth(e) = e else { panic!("{e:?}") };
        assert_eq!(e.code(), &OAuthErrorCode::InvalidClient);
        assert_eq!(e.description(), Some("bad"));
    }

    #[test]
    fn html_502_is_unexpected_response_with_excerpt() {
        let e =
            parse_token_response(StatusCode::BAD_GATEWAY, b"<html><body>Bad Gateway</body></html>")
                .unwrap_err();
        let Error::Protocol(ProtocolError::UnexpectedResponse { status, excerpt }) = e else {
            panic!("{e:?}")
        };
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(excerpt.as_str().contains("Bad Gateway"));
    }

    /// Every kind of JSON value where a string belongs: a string is read (escapes decoded), a
    /// null or absent field is as RFC 6749 has it, and anything else is "not a string" (read
    /// to its end: the fields after it still count, a duplicate after it is still refused).
    #[test]
    fn each_kind_of_value_where_a_string_belongs() {
        let invalid = |field, result: Result<TokenResponse, Error>| matches!(result, Err(Error::Protocol(ProtocolError::InvalidField { field: f, reason: "not a string", .. })) if f == field);
        for other in ["5", "1.5", "true", "[\"a\"]", "{\"a\":[1,{}]}"] {
            assert!(invalid("access_token", ok(&format!(r#"{{"access_token":{other}}}"#))));
            let typed = ok(&format!(r#"{{"access_token":"a","token_type":{other}}}"#));
            assert!(invalid("token_type", typed), "{other}");
            let refresh = ok(&format!(r#"{{"access_token":"a","refresh_token":{other}}}"#));
            assert!(invalid("refresh_token", refresh), "{other}");
            let scope = ok(&format!(r#"{{"access_token":"a","scope":{other},"expires_in":9}}"#));
            let scope = scope.unwrap();
            // An array of strings is a scope (leniently); any other value, none.
            let listed = (other == "[\"a\"]").then(|| vec!["a".to_owned()]);
            assert_eq!((scope.scope, scope.expires_in), (listed, Some(Duration::from_secs(9))));
            let error = ok(&format!(r#"{{"error":{other},"error_description":"d"}}"#));
            assert!(invalid("error", error), "{other}");
            // An error's description or URI that is not a string is left out, the error kept.
            let body = format!(
                r#"{{"error":"invalid_grant","error_description":{other},"error_uri":{other}}}"#
            );
            let Err(Error::OAuth(e)) = ok(&body) else { panic!("{other}") };
            assert_eq!(
                (e.code(), e.description(), e.uri()),
                (&OAuthErrorCode::InvalidGrant, None, None)
            );
            let twice = format!(r#"{{"access_token":{other},"access_token":"a"}}"#);
            assert!(matches!(
                ok(&twice),
                Err(Error::Protocol(ProtocolError::DuplicateField { .. }))
            ));
        }
        let t =
            ok(r#"{"access_token":"a\u0062c","token_type":"B\u0065arer","refresh_token":"r\/1"}"#)
                .unwrap();
        assert_eq!(t.access_token.expose_secret(), "abc");
        assert_eq!(t.refresh_token.map(|r| r.expose_secret().to_owned()), Some("r/1".to_owned()));
        // A null error is no error; an escaped one is decoded like any string.
        assert!(ok(r#"{"access_token":"a","error":null}"#).is_ok());
        let e = ok(r#"{"error":"invalid\u005fgrant","error_description":"a\/b"}"#).unwrap_err();
        let Error::OAuth(e) = e else { panic!("{e:?}") };
        assert_eq!((e.code(), e.description()), (&OAuthErrorCode::InvalidGrant, Some("a/b")));
        for absent in [r#"{"access_token":null}"#, r#"{"token_type":"Bearer"}"#] {
            assert!(matches!(
                ok(absent),
                Err(Error::Protocol(ProtocolError::MissingField { field: "access_token", .. }))
            ));
        }
        for none in [r#""refresh_token":null"#, r#""refresh_token":"""#, r#""scope":null"#] {
            let t = ok(&format!(r#"{{"access_token":"a",{none}}}"#)).unwrap();
            assert!(t.refresh_token.is_none() && t.scope.is_none(), "{none}");
        }
        let scopes =
            |field: &str| ok(&format!(r#"{{"access_token":"a","scope":{field}}}"#)).unwrap().scope;
        let two = Some(vec!["a".to_owned(), "b/c".to_owned()]);
        assert_eq!(scopes(r#"" a  b\/c ""#), two);
        assert_eq!(scopes(r#"["a","b\/c"]"#), two);
        assert_eq!(scopes(r#"["a",null,"b"]"#), None);
        assert_eq!(scopes(r#"["a",["b"]]"#), None);
        assert_eq!(scopes(r#""""#), Some(Vec::new()));
    }

    #[test]
    fn header_breaking_tokens_refused() {
        assert!(ok("{\"access_token\":\"a\\r\\nX-Evil: 1\"}").is_err());
        assert!(ok(r#"{"access_token":""}"#).is_err());
        assert!(ok(r#"{"access_token":5}"#).is_err());
        let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(ok(&huge).is_err());
    }
}
