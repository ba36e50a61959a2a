//! Errors, split by who is to blame: the caller, the configuration, the server saying no, the
//! server breaking the protocol, the network, the token store, or another event in this
//! process cutting a call short.
//!
//! No error type here is generic, every enum is `#[non_exhaustive]`, every error is `Clone` (a
//! failed token fetch is reported to every caller that waited for it) and none holds a secret.

use http::StatusCode;

use crate::api_error::ApiError;
use crate::excerpt::Excerpt;
use crate::interruption::Interruption;
use crate::oauth_error::OAuthError;
use crate::oauth_error::OAuthErrorCode;
pub use crate::protocol_error::ProtocolError;
use crate::store_error::StoreError;

/// Who is to blame for an [`Error`], which decides what a caller can do about it.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Blame, ConfigError, Error};
///
/// let error: Error = ConfigError::Missing("credentials (client id and secret)").into();
/// match error.blame() {
///     Blame::Caller | Blame::Configuration => { /* a bug or a setting to fix: not worth a retry */ }
///     Blame::Network | Blame::Storage => { /* retried already: try again later */ }
///     Blame::Interruption => { /* cut short by another event here: call again */ }
///     Blame::Server | Blame::Protocol => { /* the server said no, or broke the protocol */ }
///     _ => {}
/// }
/// assert_eq!(error.blame(), Blame::Configuration);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Blame {
    /// The program used the SDK wrongly (a bug to fix in the calling code).
    Caller,
    /// The configuration is wrong (URLs, credentials, redirect URI).
    Configuration,
    /// The server understood and said no (an OAuth error, a 4xx/5xx API answer).
    Server,
    /// The server broke the protocol (a body that is not what RFC 6749 or the API promise).
    Protocol,
    /// The network or the transport failed.
    Network,
    /// The token store failed (a file, a database, a cache).
    Storage,
    /// Another event in this process cut the call short (a newer sign-in replaced its token
    /// request, the async runtime running it shut down): the call was not wrong and nothing
    /// outside failed; call again.
    Interruption,
}

/// Every error the SDK reports. Match on the class you can act on; every variant's `Display`
/// reads well on its own and names no secret.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Error, http};
///
/// // A 400 with HelloFlex's validation map, as the API answers a bad query (classified here
/// // by hand; `client.get(..).send()` answers it as `Err(error)`).
/// let body = br#"{"errors":{"Lang":["Should be valid ISO 639-1 language code."]}}"#;
/// let headers = http::HeaderMap::new();
/// let status = http::StatusCode::BAD_REQUEST;
/// let error: Error = helloflex::core::classify_response(status, &headers, body).unwrap_err().into();
/// match &error {
///     Error::Api(e) if e.validation().is_some() => {
///         for (field, messages) in e.validation().into_iter().flat_map(|v| v.fields()) {
///             assert_eq!((field, messages[0].as_str()), ("Lang", "Should be valid ISO 639-1 language code."));
///         }
///     }
///     Error::ReauthorizationRequired(_) => { /* send the user through sign-in again */ }
///     Error::Transport(_) => { /* the network: retried already, try later */ }
///     other => panic!("unexpected: {other}"),
/// }
/// assert_eq!(error.status(), Some(http::StatusCode::BAD_REQUEST));
/// assert!(!error.requires_reauthorization());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SDK was used wrongly.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The token endpoint answered with an OAuth error (RFC 6749 section 5.2).
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The user must go through the authorization-code flow again, for the reason given.
    #[error("re-authorization required: {0}")]
    ReauthorizationRequired(Reauthorization),
    /// The API answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The transport failed and retrying did not help (or was not safe).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The authorization callback was refused.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The token store failed (reading, writing or claiming user tokens).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another event in this process cut the call short (see [`Interruption`]).
    #[error("the call was cut short: {0}")]
    Interrupted(#[from] Interruption),
}

impl Error {
    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Usage(_) => Blame::Caller,
            Error::Config(_) => Blame::Configuration,
            Error::OAuth(e) if e.is_client_misconfigured() => Blame::Configuration,
            Error::ReauthorizationRequired(Reauthorization::Refused(_)) => Blame::Server,
            // Calling for user tokens before the user authorized (or after signing out).
            Error::ReauthorizationRequired(_) => Blame::Caller,
            Error::OAuth(_) | Error::Api(_) => Blame::Server,
            Error::Protocol(_) => Blame::Protocol,
            Error::Transport(_) => Blame::Network,
            Error::Callback(e) => e.blame(),
            Error::Store(_) => Blame::Storage,
            Error::Interrupted(_) => Blame::Interruption,
        }
    }

    /// Whether the user must authorize again (Flextell authorization-code flow).
    pub fn requires_reauthorization(&self) -> bool {
        matches!(self, Error::ReauthorizationRequired(_))
    }

    /// The HTTP status the server answered with, where there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::OAuth(e) | Error::ReauthorizationRequired(Reauthorization::Refused(e)) => {
                Some(e.status())
            }
            Error::Api(e) => Some(e.status()),
            Error::Protocol(e) => e.status(),
            _ => None,
        }
    }
}

/// Why the user must authorize again.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Error, Reauthorization};
///
/// // What a Flextell call answers before the user signed in (or after the grant was revoked).
/// let error = Error::ReauthorizationRequired(Reauthorization::NothingStored);
/// if error.requires_reauthorization() {
///     // Send the user through `start_authorization` again.
/// }
/// assert_eq!(error.to_string(), "re-authorization required: no tokens are stored");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reauthorization {
    /// The token endpoint refused the refresh token (`invalid_grant`: expired, revoked, or
    /// reused), and no newer set was found in the store.
    #[error("the server refused the refresh token: {0}")]
    Refused(OAuthError),
    /// No refresh token is held (the server issued none, or the last one was refused).
    #[error("no refresh token is held")]
    NoRefreshToken,
    /// The token store holds no tokens: the user never authorized, or signed out.
    #[error("no tokens are stored")]
    NothingStored,
    /// Another holder sharing the token store was refused this grant's refresh token and
    /// marked the stored set as refused; it is not sent again from here.
    #[error("another holder sharing the token store was refused the refresh token")]
    RefusedElsewhere,
}

/// The SDK was used in a way it does not support.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ApiResponse, Error, UsageError, http};
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Item {
///     #[allow(dead_code)]
///     name: String,
/// }
/// // A body that is not the shape asked for (`response.json::<T>()`): where, never a value.
/// let response = ApiResponse::new(http::Response::new(br#"[{"name": "first"}, {"name": 7}]"#.to_vec()));
/// let Err(Error::Usage(UsageError::Decode { path, reason })) = response.json::<Vec<Item>>() else {
///     panic!("decoded");
/// };
/// assert_eq!(path, "[1].name");
/// assert!(reason.starts_with("invalid type") && !reason.contains('7'));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// A path segment was `.` or `..` (it would escape the resource).
    #[error("path segment {0:?} is not allowed")]
    DotSegment(String),
    /// A header the SDK owns (`Authorization`, `Host`) was set by hand, or a header was invalid.
    #[error("header {name:?} cannot be set: {reason}")]
    Header {
        /// The header name as given (names are not secret).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The JSON body could not be serialised.
    #[error("request body could not be serialised to JSON: {0}")]
    Serialize(String),
    /// A call was made in a state that does not allow it.
    #[error("{0}")]
    WrongState(&'static str),
    /// A response body was not the JSON shape the caller asked for.
    #[error("response body does not match the expected type at {path}: {reason}")]
    Decode {
        /// Where in the document (for example `items[3].name`).
        path: String,
        /// What was wrong, without quoting any value.
        reason: String,
    },
}

/// The configuration is wrong.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{ConfigError, Endpoint, InsecureLoopback};
///
/// let refused = Endpoint::parse("http://api.example.com", InsecureLoopback::Allow).unwrap_err();
/// assert_eq!(refused, ConfigError::InsecureUrl { host: "api.example.com".into() });
/// assert_eq!(
///     refused.to_string(),
///     "refusing plain http:// to api.example.com: only https is allowed for remote hosts"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL could not be accepted.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// Why.
        reason: &'static str,
    },
    /// Plain `http://` to a host that is not loopback.
    #[error("refusing plain http:// to {host}: only https is allowed for remote hosts")]
    InsecureUrl {
        /// The host that was named.
        host: String,
    },
    /// Plain `http://` to loopback without opting in.
    #[error(
        "plain http:// to loopback needs InsecureLoopback::Allow (meant for the emulator and tests)"
    )]
    InsecureLoopbackNotAllowed,
    /// A required setting was missing.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// A setting had a value that cannot work.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An async client was built with no async runtime to run its token requests on (built
    /// outside one, and none handed to it): a token request run inside its caller's future
    /// would be abandoned, already sent, when that caller is dropped.
    #[error("no async runtime to run token requests on: {fix}")]
    NoRuntime {
        /// How to give it one, in the transport's terms.
        fix: &'static str,
    },
}

/// The callback was refused.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::CallbackError;
/// # let url = |u: &str| helloflex::Endpoint::parse(u, helloflex::InsecureLoopback::Deny);
/// # let app = helloflex::ClientIdentity::confidential("my-app", helloflex::ClientSecret::new("s3cret"));
/// # let config = helloflex::AuthorizationCodeConfig::builder(app)
/// #     .authorize_url(url("https://login.flextell.example/oauth2/authorize")?)
/// #     .token_url(url("https://login.flextell.example/oauth2/token")?)
/// #     .redirect_uri(url("https://my-app.example/callback")?)
/// #     .build()?;
/// # let entropy: [u8; 64] = std::array::from_fn(|i| (i * 37 + 11) as u8);
/// # let (authorize, pending) = helloflex::core::machines::start_authorization(&config, &entropy)?;
/// # let state = authorize.split("state=").nth(1).and_then(|s| s.split('&').next()).unwrap_or_default().to_owned();
///
/// // `pending` is from `client.start_authorization()`; `client.complete_authorization(&pending,
/// // callback)` answers a refused callback as `Err(Error::Callback(..))`. Checked here directly:
/// // a callback with another session's state is refused, and `pending` stays usable.
/// let forged = pending.check_callback("https://my-app.example/callback?code=c0de&state=forged");
/// assert_eq!(forged.unwrap_err(), CallbackError::StateMismatch);
/// // The user clicked Deny.
/// let denied = pending.check_callback(&format!("https://my-app.example/callback?error=access_denied&state={state}"));
/// assert!(matches!(denied.unwrap_err(), CallbackError::Denied { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The query could not be read (too long, not UTF-8, control characters).
    #[error("malformed callback: {0}")]
    Malformed(&'static str),
    /// A parameter appeared twice.
    #[error("callback repeats the parameter {0:?}")]
    DuplicateParameter(String),
    /// No `state`.
    #[error("callback has no state")]
    MissingState,
    /// `state` does not match this session's (a forged or stale callback).
    #[error("callback state does not match this session")]
    StateMismatch,
    /// The configured issuer was required and `iss` was missing.
    #[error("callback has no iss (RFC 9207) though an issuer is configured")]
    MissingIssuer,
    /// `iss` differs from the configured issuer (a mix-up attack, RFC 9207).
    #[error("callback iss does not match the configured issuer")]
    IssuerMismatch,
    /// The authorization server answered with an error (for example `access_denied`).
    #[error("authorization refused: {code}{}", description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        /// The error code.
        code: OAuthErrorCode,
        /// `error_description`, sanitised.
        description: Option<String>,
    },
    /// Both `code` and `error`.
    #[error("callback has both a code and an error")]
    CodeAndError,
    /// Neither `code` nor `error`.
    #[error("callback has no code")]
    MissingCode,
    /// This authorization's callback was already accepted once (a reload, a double submit, a
    /// replay): its code is never exchanged twice.
    #[error("this authorization was already completed")]
    AlreadyCompleted,
}

impl CallbackError {
    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            CallbackError::Denied { .. } => Blame::Server,
            CallbackError::AlreadyCompleted => Blame::Caller,
            _ => Blame::Protocol,
        }
    }

    /// Whether the callback could not be attributed to the sign-in it was checked against
    /// (unreadable, or without that sign-in's `state`): a stray or forged request, to answer
    /// and ignore. The sign-in stays open for its genuine callback; any other refusal uses it
    /// up (the one rule `PendingAuthorization::check_callback` follows).
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; }
    /// use helloflex::CallbackError;
    ///
    /// assert!(CallbackError::StateMismatch.is_stray());
    /// assert!(CallbackError::DuplicateParameter("state".into()).is_stray());
    /// assert!(!CallbackError::AlreadyCompleted.is_stray()); // this sign-in's, used up
    /// ```
    pub fn is_stray(&self) -> bool {
        matches!(
            self,
            CallbackError::Malformed(_)
                | CallbackError::DuplicateParameter(_)
                | CallbackError::MissingState
                | CallbackError::StateMismatch
        )
    }
}

/// What kind of transport failure happened; decides whether a retry is safe.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{TransportError, TransportErrorKind};
///
/// let refused = TransportError::new(TransportErrorKind::Connect, "connection refused");
/// assert!(refused.kind.request_not_sent()); // replaying it is always safe
/// assert!(!TransportErrorKind::Timeout.request_not_sent()); // it may have reached the server
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No connection was made (refused, DNS): the request was never sent, so replaying it is
    /// always safe.
    Connect,
    /// TLS failed (an untrusted or wrong certificate, a server that speaks no TLS): the request
    /// was never sent, and sending it again would meet the same server, so it is never retried.
    Tls,
    /// The deadline passed (the request may have been sent).
    Timeout,
    /// The connection failed after the request may have been sent (reset, truncated body).
    Io,
    /// The response body exceeded the transport's size cap.
    BodyTooLarge,
    /// The server redirected a request that must not follow redirects.
    Redirect,
    /// Anything else.
    Other,
}

impl TransportErrorKind {
    /// Whether the request certainly did not reach the server.
    pub fn request_not_sent(self) -> bool {
        matches!(self, TransportErrorKind::Connect | TransportErrorKind::Tls)
    }
}

/// A transport failure, as reported by a transport to the core. Its `source()` is the HTTP
/// library's own error, when the transport kept it (both shipped transports do; they strip URLs
/// from it first).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Blame, Error, TransportError, TransportErrorKind};
///
/// // What a transport reports (a transport of your own builds one too).
/// let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
/// let failure = TransportError::new(TransportErrorKind::Io, "connection reset").with_source(reset);
/// assert!(std::error::Error::source(&failure).is_some());
/// let error = Error::from(failure);
/// assert_eq!(error.blame(), Blame::Network);
/// assert_eq!(error.to_string(), "transport failed (Io) after 1 attempt(s): connection reset");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("transport failed ({kind:?}) after {attempts} attempt(s): {message}")]
pub struct TransportError {
    /// The kind.
    pub kind: TransportErrorKind,
    /// A description from the transport (it must not contain secrets; URLs never do).
    pub message: String,
    /// How many attempts were made in the exchange that gave up.
    pub attempts: u32,
    #[source]
    cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

/// Equal when kind, message and attempts are: causes are not comparable.
impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message && self.attempts == other.attempts
    }
}

impl Eq for TransportError {}

impl TransportError {
    /// A transport error of `kind` with the transport's description.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: Excerpt::of_text(&message.into(), 300).as_str().to_owned(),
            attempts: 1,
            cause: None,
        }
    }

    /// The same error, keeping `cause` as its `source()`. It must carry no secret (no URL
    /// with a caller's query, no request body).
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(std::sync::Arc::new(cause));
        self
    }
}
