//! Reads a JSON object's top-level fields as raw text, refusing duplicate keys, so each field can
//! be interpreted leniently (a number or a digit string, a float past `f64`) without the whole
//! document failing on one odd value.

use std::fmt;

use http::StatusCode;
use serde::Deserializer as _;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::excerpt::Excerpt;
use crate::protocol_error::ProtocolError;

/// The top-level fields of a JSON object, in document order.
pub(crate) struct Fields<'a> {
    entries: Vec<(Key<'a>, &'a RawValue)>,
}

enum Key<'a> {
    Borrowed(&'a str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'a> Fields<'a> {
    /// The raw value of `name`, if present (JSON `null` counts as absent).
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, value)| *value)
            .filter(|value| value.get() != "null")
    }

    /// Field names and raw values in document order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.entries.iter().map(|(key, value)| (key.as_str(), *value))
    }
}

/// Why a body could not be read as a JSON object.
pub(crate) enum ObjectError {
    NotJson(String),
    NotAnObject,
    Duplicate(String),
}

impl ObjectError {
    pub(crate) fn into_protocol(self, status: StatusCode, body: &[u8]) -> ProtocolError {
        match self {
            ObjectError::NotJson(reason) => {
                ProtocolError::NotJson { status, reason, excerpt: Excerpt::of_bytes(body) }
            }
            ObjectError::NotAnObject => ProtocolError::NotAnObject { status },
            ObjectError::Duplicate(field) => ProtocolError::DuplicateField { status, field },
        }
    }
}

/// Strips a UTF-8 byte-order mark and surrounding whitespace.
pub(crate) fn trim_body(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    body.trim_ascii()
}

/// Reads `body` as a JSON object of raw fields.
pub(crate) fn parse_object(body: &[u8]) -> Result<Fields<'_>, ObjectError> {
    let body = trim_body(body);
    if body.first() != Some(&b'{') {
        return Err(not_an_object(body));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result = deserializer.deserialize_map(FieldsVisitor);
    match result {
        Ok(fields) => match deserializer.end() {
            Ok(()) => Ok(fields),
            Err(e) => Err(ObjectError::NotJson(reason(&e))),
        },
        Err(e) => Err(object_error(&e)),
    }
}

/// The error for a body that does not start with `{`: valid JSON of the wrong shape, or not
/// JSON at all.
pub(crate) fn not_an_object(body: &[u8]) -> ObjectError {
    match serde_json::from_slice::<de::IgnoredAny>(body) {
        Ok(_) => ObjectError::NotAnObject,
        Err(e) => ObjectError::NotJson(reason(&e)),
    }
}

/// The error for a body starting with `{` that serde_json refused: a repeated field (named
/// by serde as "duplicate field `name`", from our visitor and from derived ones alike), or
/// not JSON. The one place serde's message text is read.
pub(crate) fn object_error(e: &serde_json::Error) -> ObjectError {
    let text = e.to_string();
    match text.strip_prefix(DUPLICATE) {
        Some(rest) => {
            let name = rest.split(" at line").next().unwrap_or(rest);
            ObjectError::Duplicate(name.trim_matches('`').to_owned())
        }
        None => ObjectError::NotJson(reason(e)),
    }
}

/// serde_json's messages name positions and expectations, never the input's content; the
/// category keeps it short.
fn reason(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Eof => "truncated",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

const DUPLICATE: &str = "duplicate field ";

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Key<'de>, &'de RawValue)> = Vec::with_capacity(8);
        while let Some(key) = map.next_key::<KeySeed<'de>>()? {
            let key = key.0;
            if entries.iter().any(|(k, _)| k.as_str() == key.as_str()) {
                let shown = Excerpt::of_text(key.as_str(), 40);
                return Err(de::Error::custom(format_args!("{DUPLICATE}{shown}")));
            }
            let value: &'de RawValue = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Fields { entries })
    }
}

struct KeySeed<'a>(Key<'a>);

impl<'de> de::Deserialize<'de> for KeySeed<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeySeed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeySeed(Key::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeySeed(Key::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeySeed(Key::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A raw value read as a string (`None` if it is not a JSON string).
pub(crate) fn as_string(raw: &RawValue) -> Option<String> {
    match as_plain_str(raw) {
        Some(plain) => Some(plain.to_owned()),
        None if raw.get().starts_with('"') => serde_json::from_str::<String>(raw.get()).ok(),
        None => None,
    }
}

/// The contents of a JSON string without escapes, borrowed (the common case: no allocation and
/// no second parse). `None` for other values and for strings with escapes.
pub(crate) fn as_plain_str(raw: &RawValue) -> Option<&str> {
    let inner = raw.get().strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// A raw value read as a whole number of seconds: a JSON number (fractions dropped, negative or
/// out of range clamped to `0..=u64::MAX`) or a string of digits.
pub(crate) fn as_seconds(raw: &RawValue) -> Option<u64> {
    let text = raw.get();
    let unquoted;
    let number_text = if text.starts_with('"') {
        unquoted = as_string(raw)?;
        let s = unquoted.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s
    } else {
        text
    };
    if let Ok(n) = number_text.parse::<u64>() {
        return Some(n);
    }
    if number_text
        .strip_prefix('-')
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(0);
    }
    // Floats, exponents and values past u64 (1e400 parses as infinity): `as` saturates.
    let float: f64 = number_text.parse().ok()?;
    // `1e400` parses as infinity: not a number of seconds any server meant.
    if !float.is_finite() {
        return None;
    }
    Some(float.max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_duplicates() {
        let f = parse_object(br#" {"a": 1, "b": "x", "c": null} "#).ok().unwrap();
        assert_eq!(f.get("a").unwrap().get(), "1");
        assert!(f.get("c").is_none());
        assert!(
            matches!(parse_object(br#"{"a":1,"a":2}"#), Err(ObjectError::Duplicate(k)) if k == "a")
        );
        assert!(matches!(parse_object(br#"{"\u0061":1,"a":2}"#), Err(ObjectError::Duplicate(_))));
    }

    #[test]
    fn shapes_and_garbage() {
        assert!(matches!(parse_object(b"[1]"), Err(ObjectError::NotAnObject)));
        assert!(matches!(parse_object(b"\"s\""), Err(ObjectError::NotAnObject)));
        assert!(matches!(parse_object(b""), Err(ObjectError::NotJson(_))));
        assert!(matches!(parse_object(b"{\"a\":1} x"), Err(ObjectError::NotJson(_))));
        assert!(matches!(parse_object(b"{\"a\":"), Err(ObjectError::NotJson(_))));
        assert!(parse_object(b"\xef\xbb\xbf{\"a\":1}").is_ok());
        // Deep nesting inside a field is skipped without recursion: no stack overflow, and the
        // field stays opaque until something reads it (which hits serde_json's depth limit).
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let fields = parse_object(deep.as_bytes()).ok().unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(fields.get("a").unwrap().get()).is_err());
        let deep_top = "[".repeat(100_000);
        assert!(matches!(parse_object(deep_top.as_bytes()), Err(ObjectError::NotJson(_))));
    }

    #[test]
    fn seconds_are_lenient_and_clamped() {
        let seconds = |json: &str| {
            let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
            as_seconds(&raw)
        };
        assert_eq!(seconds("3599"), Some(3599));
        assert_eq!(seconds("\"3599\""), Some(3599));
        assert_eq!(seconds("3599.9"), Some(3599));
        assert_eq!(seconds("-5"), Some(0));
        assert_eq!(seconds("-5.5"), Some(0));
        assert_eq!(seconds("9223372036854775808"), Some(9223372036854775808));
        assert_eq!(seconds("1e400"), None);
        assert_eq!(seconds("-1e400"), None);
        assert_eq!(seconds("\"abc\""), None);
        assert_eq!(seconds("\"-1\""), None);
        assert_eq!(seconds("true"), None);
    }
}
