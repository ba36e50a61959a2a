//! How a command fails: a message for a person (what happened, and the command to run next)
//! and an exit code by class (see `--help`).

use helloflex::{ApiErrorKind, Error, Reauthorization, TransportErrorKind};

/// Exit code: a bad flag, argument, profile, setting or input.
pub const USAGE: u8 = 2;
/// Exit code: not logged in, sign-in refused, credentials refused.
pub const AUTH: u8 = 3;
/// Exit code: the API refused the request (4xx other than 401).
pub const API: u8 = 4;
/// Exit code: the API, the network or the token store failed.
pub const SERVER: u8 = 5;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: USAGE, message: message.into() }
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self { code: AUTH, message: message.into() }
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self { code: SERVER, message: message.into() }
    }

    /// The same failure, its message prefixed with what was being read (`--env: ...`).
    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Appends a line: a hint, or the command to run next.
    pub fn hint(mut self, line: impl AsRef<str>) -> Self {
        self.message.push_str("\n  ");
        self.message.push_str(line.as_ref());
        self
    }

    /// The class of an SDK error and a message for a person (the SDK's errors name no secret;
    /// a response body is quoted only where nothing better is known).
    pub fn from_error(error: &Error) -> Self {
        let code = match error {
            Error::Usage(_) | Error::Config(_) => USAGE,
            Error::OAuth(_) | Error::ReauthorizationRequired(_) | Error::Callback(_) => AUTH,
            Error::Api(e) if e.status().as_u16() == 401 => AUTH,
            Error::Api(e) if e.status().is_client_error() => API,
            _ => SERVER,
        };
        let message = match error {
            Error::ReauthorizationRequired(why) => {
                let why = match why {
                    Reauthorization::NothingStored => "not signed in to Flextell".to_owned(),
                    Reauthorization::NoRefreshToken => {
                        "the Flextell sign-in has expired and cannot be renewed".to_owned()
                    }
                    Reauthorization::Refused(e) => {
                        format!("Flextell no longer accepts this sign-in (expired or revoked: {e})")
                    }
                    Reauthorization::RefusedElsewhere => {
                        "Flextell no longer accepts this sign-in (another helloflex command \
                         using it was refused: it expired, was revoked, or was used elsewhere)"
                            .to_owned()
                    }
                    other => other.to_string(),
                };
                format!("{why}\n  run `helloflex login` to sign in again")
            }
            Error::Api(e) => {
                let status = e.status();
                let reason = status.canonical_reason().unwrap_or("error");
                let head = format!("the API answered {} {reason}", status.as_u16());
                match e.kind() {
                    ApiErrorKind::BadRequest(fields) if !fields.is_empty() => {
                        let mut text = format!("{head}: the request has invalid fields");
                        for (field, messages) in fields.fields() {
                            text.push_str(&format!("\n  {field}: {}", messages.join(" ")));
                        }
                        text
                    }
                    ApiErrorKind::Forbidden { challenge: Some(c) } if c.is_insufficient_scope() => {
                        format!("{head}: the token lacks the scope {}", c.scope.join(" "))
                    }
                    ApiErrorKind::NotFound => format!("{head}: no such path on this API"),
                    _ if e.excerpt().is_empty() => head,
                    _ => format!("{head}; it said: {}", e.excerpt()),
                }
            }
            Error::Store(e) => {
                format!("{e}\n  `helloflex logout` deletes the stored tokens and starts over")
            }
            other => other.to_string(),
        };
        Self { code, message }
    }

    /// Whether `error` is a connection that was never made (nothing listening, no route).
    pub fn is_unreachable(error: &Error) -> bool {
        matches!(error, Error::Transport(e) if e.kind == TransportErrorKind::Connect)
    }

    /// Whether `error` says the token does not fit the call (a 401 or 403 from the API).
    pub fn is_wrong_token(error: &Error) -> bool {
        matches!(error, Error::Api(e) if matches!(e.status().as_u16(), 401 | 403))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::from_error(&error)
    }
}
