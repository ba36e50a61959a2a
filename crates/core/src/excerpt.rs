//! Short, printable, secret-free excerpts of untrusted text for error messages.

use std::fmt;

/// Most characters of a body kept in an error.
pub const EXCERPT_CHARS: usize = 200;

/// A run of token-like characters at least this long is taken for a secret and masked. Tokens,
/// secrets and codes are long and unbroken; prose, status lines and HTML tags are not.
const SECRET_RUN: usize = 20;

/// A sanitised, truncated piece of a response body or server-chosen text: control characters and
/// escape sequences removed, long token-like runs masked, at most [`EXCERPT_CHARS`] characters.
///
/// ```
/// use helloflex_core::machines::Excerpt;
///
/// let body = "<html>\u{1b}[31mBad gateway: token eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiIxMjM0NTY3ODkwIn0</html>";
/// let excerpt = Excerpt::of_bytes(body.as_bytes());
/// assert!(excerpt.as_str().contains("Bad gateway")); // what a person needs to read
/// assert!(!excerpt.as_str().contains('\u{1b}')); // no escape sequence reaches a terminal
/// assert!(!excerpt.as_str().contains("eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiIxMjM0NTY3ODkwIn0")); // masked
/// ```
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

    /// A printable, truncated copy of a value that is not secret by nature (an error code, a
    /// URI): control characters removed, nothing masked. Secrets the SDK sent are scrubbed from
    /// server text before it gets here.
    pub(crate) fn plain(text: &str, max_chars: usize) -> Self {
        Self(clean(text, max_chars, false))
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

/// Characters a token, secret or code is made of; `\` too, so a JSON body that escapes `/` as
/// `\/` (PHP's default) does not split a token into short, unmasked runs.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=' | '%' | '\\')
}

/// Keeps printable characters (whitespace folded to one space), masks long token-like runs and
/// truncates to `max_chars`, marking the cut with `…`.
pub(crate) fn sanitize(text: &str, max_chars: usize) -> String {
    clean(text, max_chars, true)
}

fn clean(text: &str, max_chars: usize, mask: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 8));
    let mut run = String::new();
    let mut kept = 0usize;
    let mut truncated = false;
    // `beyond`: how many more token characters the run has past the cut (it is judged whole).
    let flush = |run: &mut String, out: &mut String, beyond: usize| {
        if mask && run.chars().count() + beyond >= SECRET_RUN {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if kept >= max_chars {
            truncated = true;
            // A run cut here is judged by its whole length; a secret's head is dropped rather
            // than marked, so the excerpt keeps its length bound.
            if is_token_char(c) && !run.is_empty() {
                let beyond = 1 + chars.take_while(|c| is_token_char(*c)).count();
                if mask && run.chars().count() + beyond >= SECRET_RUN {
                    run.clear();
                }
            }
            break;
        }
        if is_token_char(c) {
            run.push(c);
            kept += 1;
            continue;
        }
        flush(&mut run, &mut out, 0);
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
    flush(&mut run, &mut out, 0);
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

    #[test]
    fn json_escaped_slashes_do_not_split_a_token_into_unmasked_runs() {
        let token = "abcdefghij\\/klmnopqrs\\/tuvwxyz0123";
        let shown = sanitize(&format!(r#"{{"access_token":"{token}"}}"#), 200);
        assert!(!shown.contains("klmnop"), "{shown}");
    }

    #[test]
    fn a_token_cut_by_the_excerpt_is_judged_whole() {
        let text = format!("{} {}", "word ".repeat(38), "T".repeat(40));
        let shown = sanitize(&text, 200);
        assert!(shown.ends_with('…'), "{shown}");
        assert!(!shown.contains("TTT"), "{shown}");
        // A short word cut at the same place is kept.
        let shown = sanitize(&format!("{} abcdefgh", "word ".repeat(38)), 193);
        assert!(shown.contains("abc"), "{shown}");
    }

    #[test]
    fn codes_and_uris_stay_readable() {
        assert_eq!(Excerpt::plain("bad_verification_code", 64).as_str(), "bad_verification_code");
        let uri = "http://127.0.0.1:8080/docs/errors/bad_verification_code";
        assert_eq!(Excerpt::plain(uri, 200).as_str(), uri);
    }
}
