//! Short, printable, secret-free excerpts of untrusted text for error messages.

use std::fmt;

/// Most characters of a body kept in an error.
pub const EXCERPT_CHARS: usize = 200;

/// A run of token-like characters at least this long is taken for a secret and masked. Tokens,
/// secrets and codes are long and unbroken; prose, status lines and HTML tags are not.
const SECRET_RUN: usize = 20;

/// A sanitised, truncated piece of a response body or server-chosen text: control characters and
/// escape sequences removed, long token-like runs masked, at most [`EXCERPT_CHARS`] characters.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Excerpt(String);

impl Excerpt {
    /// An excerpt of `bytes` (decoded lossily) of at most [`EXCERPT_CHARS`] characters.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        // Decoding more than we keep wastes time on huge bodies; 4 bytes per char is the UTF-8 max.
        let head = bytes.get(..EXCERPT_CHARS * 4).unwrap_or(bytes);
        Self(sanitize(&String::from_utf8_lossy(head), EXCERPT_CHARS))
    }

    /// An excerpt of `text` of at most `max_chars` characters.
    pub fn of_text(text: &str, max_chars: usize) -> Self {
        Self(sanitize(text, max_chars))
    }

    /// The sanitised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether nothing printable was left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=' | '%')
}

/// Keeps printable characters (whitespace folded to one space), masks long token-like runs and
/// truncates to `max_chars`, marking the cut with `…`.
pub(crate) fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 8));
    let mut run = String::new();
    let mut kept = 0usize;
    let mut truncated = false;
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= SECRET_RUN {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if kept >= max_chars {
            truncated = true;
            break;
        }
        if is_token_char(c) {
            run.push(c);
            kept += 1;
            continue;
        }
        flush(&mut run, &mut out);
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
                kept += 1;
            }
        } else if !c.is_control() && !is_bidi_control(c) {
            out.push(c);
            kept += 1;
        }
    }
    flush(&mut run, &mut out);
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    if truncated {
        out.push('…');
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_control_and_escape_sequences() {
        let e = Excerpt::of_text("bad\u{1b}[31m red\r\n\tline\u{0}", 100);
        assert_eq!(e.as_str(), "bad[31m red line");
    }

    #[test]
    fn masks_secret_like_runs() {
        let e = Excerpt::of_text("token eyJhbGciOiJIUzI1NiJ9.payload.sig leaked", 100);
        assert_eq!(e.as_str(), "token [redacted] leaked");
    }

    #[test]
    fn truncates_long_text() {
        let long = "word ".repeat(1000);
        let e = Excerpt::of_bytes(long.as_bytes());
        assert!(e.as_str().chars().count() <= EXCERPT_CHARS + 1);
        assert!(e.as_str().ends_with('…'));
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        let e = Excerpt::of_bytes(b"<html>\xff\xfe bad gateway</html>");
        assert!(e.as_str().contains("bad gateway"));
    }
}
