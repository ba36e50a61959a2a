//! OAuth 2.0 error responses (RFC 6749 sections 4.1.2.1 and 5.2).

use std::fmt;

use http::StatusCode;

use crate::excerpt::Excerpt;

/// Most characters kept of a server's `error_description`.
const DESCRIPTION_CHARS: usize = 300;

/// An OAuth error code, known ones named, unknown ones kept (sanitised).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::OAuthErrorCode;
///
/// assert_eq!(OAuthErrorCode::parse("invalid_grant"), OAuthErrorCode::InvalidGrant);
/// assert_eq!(OAuthErrorCode::InvalidGrant.to_string(), "invalid_grant");
/// // A code the SDK does not know is kept, sanitised.
/// assert_eq!(OAuthErrorCode::parse("slow_down"), OAuthErrorCode::Other("slow_down".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`: the client id or secret was not accepted.
    InvalidClient,
    /// `invalid_grant`: the code, refresh token or credentials are invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `access_denied` (authorization response)
    AccessDenied,
    /// `unsupported_response_type` (authorization response)
    UnsupportedResponseType,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// A code this SDK does not know.
    Other(String),
}

impl OAuthErrorCode {
    /// Reads a code as sent by a server.
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Other(Excerpt::plain(other, 64).as_str().to_owned()),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error answered by the server.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Blame, Error, OAuthErrorCode, http::StatusCode};
///
/// // A token endpoint's refusal, as `Error::OAuth` carries it (read here from a body by hand).
/// let body = br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#;
/// let Err(error) = helloflex::core::parse_token_response(StatusCode::UNAUTHORIZED, body) else {
///     panic!("not a token");
/// };
/// let Error::OAuth(e) = &error else { panic!("not an OAuth error") };
/// assert_eq!(e.code(), &OAuthErrorCode::InvalidClient);
/// assert_eq!(e.description(), Some("Client authentication failed"));
/// assert!(e.is_client_misconfigured() && !e.is_transient());
/// assert_eq!(error.blame(), Blame::Configuration); // check the client id and secret
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct OAuthError {
    status: StatusCode,
    code: OAuthErrorCode,
    description: Option<Excerpt>,
    uri: Option<Excerpt>,
}

impl OAuthError {
    /// An error as read from a response (description and URI sanitised and truncated).
    pub fn new(
        status: StatusCode,
        code: &str,
        description: Option<&str>,
        uri: Option<&str>,
    ) -> Self {
        Self {
            status,
            code: OAuthErrorCode::parse(code),
            description: description.map(|d| Excerpt::of_text(d, DESCRIPTION_CHARS)),
            uri: uri.map(|u| Excerpt::plain(u, DESCRIPTION_CHARS)),
        }
    }

    /// The HTTP status (200 when a server put an `error` in a success response).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &OAuthErrorCode {
        &self.code
    }

    /// The server's `error_description`, sanitised.
    pub fn description(&self) -> Option<&str> {
        self.description.as_ref().map(Excerpt::as_str)
    }

    /// The server's `error_uri`, sanitised.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_ref().map(Excerpt::as_str)
    }

    /// Whether retrying later may succeed (`server_error`, `temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        matches!(self.code, OAuthErrorCode::ServerError | OAuthErrorCode::TemporarilyUnavailable)
            || self.status.is_server_error()
    }

    /// Whether the client's own registration is at fault (`invalid_client`, `unauthorized_client`).
    pub fn is_client_misconfigured(&self) -> bool {
        matches!(self.code, OAuthErrorCode::InvalidClient | OAuthErrorCode::UnauthorizedClient)
    }

    fn render(&self) -> String {
        let mut out = format!("OAuth error {} ({})", self.code, self.status.as_u16());
        if let Some(d) = &self.description {
            out.push_str(": ");
            out.push_str(d.as_str());
        }
        out
    }
}
