//! The server broke the protocol: the one error for answers that are not what RFC 6749 or the
//! API promise. Its own module, beneath `error` and the parsers, so the parsers need not know
//! the SDK's whole `Error`.

use http::StatusCode;

use crate::excerpt::Excerpt;

/// The server broke the protocol: its answer is not what RFC 6749 or the API promise.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Blame, Error, ProtocolError, http::StatusCode};
///
/// // A proxy's HTML page where a token was due.
/// let answer = helloflex::core::parse_token_response(StatusCode::BAD_GATEWAY, b"<html>Bad gateway</html>");
/// let Err(error) = answer else { panic!("not a token") };
/// assert!(matches!(error, Error::Protocol(ProtocolError::UnexpectedResponse { .. })));
/// assert_eq!(error.status(), Some(StatusCode::BAD_GATEWAY));
/// assert_eq!(error.blame(), Blame::Protocol);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The body is larger than the SDK accepts.
    #[error("response body ({status}) exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The status line's code.
        status: StatusCode,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON (HTML, plain text, empty, truncated, invalid UTF-8, too deep).
    #[error("response ({status}) is not valid JSON: {reason}; body starts: {excerpt:?}")]
    NotJson {
        /// The status.
        status: StatusCode,
        /// The parser's reason, without quoting the body.
        reason: String,
        /// A short sanitised excerpt.
        excerpt: Excerpt,
    },
    /// The body is JSON but not an object.
    #[error("response ({status}) is JSON but not an object")]
    NotAnObject {
        /// The status.
        status: StatusCode,
    },
    /// The same field appears twice.
    #[error("response ({status}) has the field {field:?} more than once")]
    DuplicateField {
        /// The status.
        status: StatusCode,
        /// The field name (sanitised).
        field: String,
    },
    /// A required field is missing.
    #[error("response ({status}) lacks the required field {field:?}")]
    MissingField {
        /// The status.
        status: StatusCode,
        /// The field.
        field: &'static str,
    },
    /// A field has a value of the wrong kind.
    #[error("response ({status}) has an invalid {field:?}: {reason}")]
    InvalidField {
        /// The status.
        status: StatusCode,
        /// The field.
        field: &'static str,
        /// Why, without quoting the value.
        reason: &'static str,
    },
    /// The body came in a `Content-Encoding` the transport did not decode (the SDK asks for
    /// none), so it cannot be read.
    #[error("response ({status}) body is in the encoding {encoding:?}, which was not asked for")]
    UnsupportedEncoding {
        /// The status.
        status: StatusCode,
        /// The encoding named (sanitised).
        encoding: String,
    },
    /// `token_type` is not `Bearer`.
    #[error("token type {token_type:?} is not supported (only Bearer)")]
    UnsupportedTokenType {
        /// The type the server named (sanitised).
        token_type: String,
    },
    /// The token endpoint answered with a status and body that are neither a token nor an OAuth
    /// error (an HTML 502 from a proxy, an empty 500, a redirect).
    #[error(
        "token endpoint answered {status} without an OAuth error body; body starts: {excerpt:?}"
    )]
    UnexpectedResponse {
        /// The status.
        status: StatusCode,
        /// A short sanitised excerpt.
        excerpt: Excerpt,
    },
}

impl ProtocolError {
    /// The status of the response that broke the protocol.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ProtocolError::BodyTooLarge { status, .. }
            | ProtocolError::NotJson { status, .. }
            | ProtocolError::NotAnObject { status }
            | ProtocolError::DuplicateField { status, .. }
            | ProtocolError::MissingField { status, .. }
            | ProtocolError::InvalidField { status, .. }
            | ProtocolError::UnexpectedResponse { status, .. }
            | ProtocolError::UnsupportedEncoding { status, .. } => Some(*status),
            ProtocolError::UnsupportedTokenType { .. } => None,
        }
    }
}
