//! Percent-encoding for URL path segments, query strings and `x-www-form-urlencoded` bodies.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters is encoded: valid in a path segment, a query
/// and a form body alike, and a `/`, `?`, `#`, `&`, `=` or `%` in a value can never change the
/// structure around it.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Appends `value` percent-encoded to `out`.
pub(crate) fn push_encoded(out: &mut String, value: &str) {
    out.extend(utf8_percent_encode(value, COMPONENT));
}

/// Encodes `pairs` as an `application/x-www-form-urlencoded` body or query string.
pub(crate) fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        push_encoded(&mut out, key);
        out.push('=');
        push_encoded(&mut out, value);
    }
    out
}

/// Encodes one value as `application/x-www-form-urlencoded` would (used for HTTP Basic
/// credentials, RFC 6749 section 2.3.1).
pub(crate) fn form_encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_encoded(&mut out, value);
    out
}

/// Whether every `%` in `text` starts a `%XX` escape.
pub(crate) fn percent_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().filter(|(_, b)| **b == b'%').all(|(i, _)| {
        bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// A query parameter decoded to bytes; not yet checked to be UTF-8.
pub(crate) struct RawParam {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// Splits a query string into decoded pairs (`+` is a space). Never fails: a lone `%` stays as
/// it is, so the caller decides what is acceptable.
pub(crate) fn parse_query(query: &str) -> Vec<RawParam> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            RawParam { key: decode_component(key), value: decode_component(value) }
        })
        .collect()
}

fn decode_component(text: &str) -> Vec<u8> {
    let spaced = text.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_structure() {
        let body =
            form_encode([("grant_type", "client_credentials"), ("client_secret", "a b&c=d%/+")]);
        assert_eq!(body, "grant_type=client_credentials&client_secret=a%20b%26c%3Dd%25%2F%2B");
    }

    #[test]
    fn percent_escapes_checked() {
        assert!(percent_well_formed("a%20b%2F"));
        assert!(!percent_well_formed("a%"));
        assert!(!percent_well_formed("a%2"));
        assert!(!percent_well_formed("a%zz"));
    }

    #[test]
    fn query_parsing_decodes_and_keeps_oddities() {
        let params = parse_query("code=a%2Bb+c&state=%&x=%00&&flag");
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = params.into_iter().map(|p| (p.key, p.value)).collect();
        assert_eq!(
            pairs,
            vec![
                (b"code".to_vec(), b"a+b c".to_vec()),
                (b"state".to_vec(), b"%".to_vec()),
                (b"x".to_vec(), vec![0]),
                (b"flag".to_vec(), vec![]),
            ]
        );
    }
}
