//! What the SDK sent, scrubbed from what a server answers. A server that echoes the client
//! secret, a code, a PKCE verifier, a refresh token or an access token back in an error (in
//! `error_description`, a body, a challenge) must not get it into an error message or a log
//! line. The masking of long token-like runs (see `excerpt`) misses a secret with punctuation
//! (`@`, a space, `:`), which splits it into short runs; the SDK knows every secret it sent, so
//! it removes each of them, in every form a server could echo it in, before reading the text.

use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

/// Form fields of a token request whose values are secrets.
const SECRET_FIELDS: [&str; 6] =
    ["client_secret", "refresh_token", "code", "code_verifier", "client_assertion", "password"];

/// Values shorter than this are not scrubbed: they would shred ordinary text, and a secret that
/// short protects nothing.
const MIN_SCRUBBED: usize = 4;

const REDACTED: &[u8] = b"[redacted]";

/// The secrets of one request, each in the forms a server could echo it in.
#[derive(Default)]
pub(crate) struct Sent(Vec<Vec<u8>>);

impl Sent {
    /// The secrets in a token request: secret form fields and the Basic credentials.
    pub(crate) fn of_token_request(request: &http::Request<Vec<u8>>) -> Self {
        let mut sent = Self::default();
        for pair in request.body().split(|b| *b == b'&') {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else { continue };
            if SECRET_FIELDS.iter().any(|field| field.as_bytes() == key) {
                sent.add_form_encoded(value);
            }
        }
        let basic = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "));
        if let Some(encoded) = basic {
            sent.add(encoded.trim().as_bytes().to_vec());
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim());
            // `id:secret`, each form-encoded (RFC 6749 section 2.3.1): the secret is after `:`.
            if let Ok(decoded) = decoded
                && let Some(colon) = decoded.iter().position(|b| *b == b':')
            {
                let (_, secret) = decoded.split_at(colon);
                sent.add_form_encoded(secret.get(1..).unwrap_or_default());
            }
        }
        sent
    }

    /// An access token sent as a bearer credential.
    pub(crate) fn of_bearer(token: &str) -> Self {
        let mut sent = Self::default();
        sent.add_decoded(token.as_bytes());
        sent
    }

    /// A value as it was written in a form body, and every other form of it.
    fn add_form_encoded(&mut self, encoded: &[u8]) {
        self.add(encoded.to_vec());
        let plus_as_space: Vec<u8> =
            encoded.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
        let decoded: Vec<u8> = percent_decode(&plus_as_space).collect();
        self.add_decoded(&decoded);
    }

    /// A raw value, percent-encoded (upper and lower hex; spaces as `%20` or, as forms write
    /// them, `+`), and as JSON writes it (`\"` and `\\`, and `\/` for `/` as PHP does).
    fn add_decoded(&mut self, raw: &[u8]) {
        self.add(raw.to_vec());
        if let Ok(text) = std::str::from_utf8(raw) {
            let encoded = utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
            let form = encoded.replace("%20", "+");
            self.add(form.to_ascii_lowercase().into_bytes());
            self.add(form.into_bytes());
            self.add(encoded.to_ascii_lowercase().into_bytes());
            self.add(encoded.into_bytes());
        }
        // JSON as most encoders write it (`\"`, `\\`), and as PHP does (also `\/`).
        for escape_slash in [false, true] {
            let mut json = Vec::with_capacity(raw.len() + 4);
            for b in raw {
                if matches!(b, b'"' | b'\\') || (escape_slash && *b == b'/') {
                    json.push(b'\\');
                }
                json.push(*b);
            }
            self.add(json);
        }
    }

    fn add(&mut self, form: Vec<u8>) {
        if form.len() >= MIN_SCRUBBED && !self.0.contains(&form) {
            self.0.push(form);
        }
    }

    /// `text` with every sent secret replaced by `[redacted]`, or `None` if none occurs.
    /// Repeated until nothing is found: a replacement can complete a new occurrence with its
    /// neighbours (a secret starting with `]`).
    pub(crate) fn scrub(&self, text: &[u8]) -> Option<Vec<u8>> {
        let mut forms: Vec<&Vec<u8>> = self.0.iter().collect();
        // Longest first: a form that contains another is replaced whole.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let mut out: Option<Vec<u8>> = None;
        // Each pass that finds something shortens no secret-free text, and stops the moment a
        // pass finds nothing; the bound only guards against a pathological body.
        for _ in 0..8 {
            let mut changed = false;
            for form in &forms {
                let current = out.as_deref().unwrap_or(text);
                if let Some(replaced) = replace_all(current, form) {
                    out = Some(replaced);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        out
    }

    /// A header map with every sent secret scrubbed from its values, or `None` if none occurs.
    pub(crate) fn scrub_headers(&self, headers: &http::HeaderMap) -> Option<http::HeaderMap> {
        let mut scrubbed = None::<http::HeaderMap>;
        for (name, value) in headers {
            if let Some(clean) = self.scrub(value.as_bytes()) {
                let map = scrubbed.get_or_insert_with(|| headers.clone());
                if let Ok(clean) = http::HeaderValue::from_bytes(&clean) {
                    map.insert(name, clean);
                } else {
                    map.remove(name);
                }
            }
        }
        scrubbed
    }
}

/// `text` with each occurrence of `needle` replaced, or `None` if there is none.
fn replace_all(text: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    if needle.is_empty() || text.len() < needle.len() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    let mut found = false;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        let (before, after) = rest.split_at(at);
        out.extend_from_slice(before);
        out.extend_from_slice(REDACTED);
        rest = after.get(needle.len()..).unwrap_or_default();
        found = true;
    }
    out.extend_from_slice(rest);
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_sent_secret_is_scrubbed() {
        let secret = "s3cr@t with space:colon/slash";
        let form = format!(
            "grant_type=client_credentials&client_id=id&client_secret={}",
            utf8_percent_encode(secret, NON_ALPHANUMERIC)
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("id:{}", "bAs1c-secret"));
        let request = http::Request::post("https://x.test/token")
            .header("authorization", format!("Basic {basic}"))
            .body(form.into_bytes())
            .unwrap();
        let sent = Sent::of_token_request(&request);
        for echo in [
            secret.to_owned(),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string().to_lowercase(),
            secret.replace('/', "\\/"),
            basic.clone(),
            "bAs1c-secret".to_owned(),
        ] {
            let body = format!(r#"{{"error":"invalid_client","error_description":"bad: {echo}"}}"#);
            let clean = sent.scrub(body.as_bytes()).unwrap_or_else(|| panic!("{echo} not found"));
            let clean = String::from_utf8(clean).unwrap();
            assert!(!clean.contains(&echo), "{clean}");
            assert!(clean.contains("[redacted]"), "{clean}");
        }
        assert!(sent.scrub(b"nothing sent here").is_none());
    }

    #[test]
    fn a_secret_with_a_backslash_and_a_slash_is_found_as_any_json_encoder_writes_it() {
        // Found by the `echoed_secret` fuzz target: serde_json escapes `\` but not `/`.
        let sent = Sent::of_bearer("Niiii|i\\2]E%i/");
        let standard = serde_json::to_string("Niiii|i\\2]E%i/").unwrap();
        assert!(sent.scrub(standard.as_bytes()).is_some(), "{standard}");
        assert!(sent.scrub(br#""Niiii|i\\2]E%i\/""#).is_some(), "PHP-style");
    }
}
