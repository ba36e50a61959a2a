//! How a command fails: a message for a person and an exit code by class (see `--help`).

use helloflex::Error;

/// Exit code: a bad flag, argument, profile or input.
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

    /// The class of an SDK error, and its message (the SDK's errors name no secret). A
    /// validation error is shown field by field.
    pub fn from_error(error: &Error) -> Self {
        let code = match error {
            Error::Usage(_) | Error::Config(_) => USAGE,
            Error::OAuth(_) | Error::ReauthorizationRequired(_) | Error::Callback(_) => AUTH,
            Error::Api(e) if e.status().as_u16() == 401 => AUTH,
            Error::Api(e) if e.status().is_client_error() => API,
            _ => SERVER,
        };
        let mut message = error.to_string();
        if let Error::Api(e) = error
            && let Some(validation) = e.validation()
        {
            for (field, messages) in validation.fields() {
                message.push_str(&format!("\n  {field}: {}", messages.join(" ")));
            }
        }
        if error.requires_reauthorization() {
            message.push_str("\n  run `helloflex login` to sign in again");
        }
        Self { code, message }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::from_error(&error)
    }
}
