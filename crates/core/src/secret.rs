//! Secret values: redacted in `Debug`, never `Display`ed, zeroed on drop, compared in constant time.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Compares two byte strings in time that depends only on their lengths, never on where they
/// differ: both are hashed with SHA-256 and the digests are compared in constant time.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let expected = hmac_sha256::Hash::hash(a);
    hmac_sha256::Hash::verify(b, &expected)
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Its `Debug` output is redacted, it has no `Display`, its memory is zeroed on drop and
        /// `==` compares in constant time. Read it only where it must leave the process with
        #[doc = concat!("[`", stringify!($name), "::expose_secret`].")]
        #[derive(Clone)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Zeroizing::new(value.into()))
            }

            /// The secret itself. Call this only to put it on the wire or into a store.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }

            /// Length of the secret in bytes (safe to log).
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Whether the secret is empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
            }
        }

        impl Eq for $name {}

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        // Serialisation exists for token stores and session storage of a pending authorization.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret_type!(
    /// An OAuth client secret.
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
    /// use helloflex::ClientSecret;
    ///
    /// let secret = ClientSecret::new("s3cret"); // from the environment or a vault, never from code
    /// assert_eq!(format!("{secret:?}"), "ClientSecret(<redacted>)");
    /// assert_eq!(secret, ClientSecret::from("s3cret")); // compared in constant time
    /// assert_eq!(secret.expose_secret(), "s3cret"); // only to put it on the wire
    /// ```
    ClientSecret
);
secret_type!(
    /// An OAuth access token (a bearer token).
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
    /// use helloflex::AccessToken;
    ///
    /// let token = AccessToken::new("eyJhbGciOiJIUzI1NiJ9.e30.c2ln");
    /// assert!(!format!("{token:?}").contains("eyJ"));
    /// // Serialised as the plain string, for token stores.
    /// assert_eq!(serde_json::to_string(&token)?, r#""eyJhbGciOiJIUzI1NiJ9.e30.c2ln""#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    AccessToken
);
secret_type!(
    /// An OAuth refresh token.
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
    /// use helloflex::RefreshToken;
    ///
    /// let stored: RefreshToken = serde_json::from_str(r#""r1-rotating""#)?;
    /// assert_eq!(format!("{stored:?}"), "RefreshToken(<redacted>)");
    /// assert_eq!(stored.len(), 11); // lengths are safe to log
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    RefreshToken
);
secret_type!(
    /// An authorization code received on the redirect URI.
    ///
    /// ```
    /// use helloflex_core::AuthorizationCode;
    ///
    /// let code = AuthorizationCode::new("SplxlOBeZQQYbYS6WxSbIA");
    /// assert_eq!(format!("{code:?}"), "AuthorizationCode(<redacted>)");
    /// ```
    AuthorizationCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636).
    ///
    /// ```
    /// use helloflex_core::PkceVerifier;
    /// use helloflex_core::machines::pkce_challenge;
    ///
    /// // `start_authorization` makes one from 32 random bytes; this is RFC 7636's example.
    /// let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    /// assert_eq!(verifier.len(), 43);
    /// assert_eq!(format!("{verifier:?}"), "PkceVerifier(<redacted>)");
    /// assert_eq!(pkce_challenge(&verifier).len(), 43); // what the authorization URL carries
    /// ```
    PkceVerifier
);
secret_type!(
    /// The `state` value that binds an authorization response to the browser session that asked.
    ///
    /// ```
    /// use helloflex_core::CsrfState;
    ///
    /// assert_eq!(CsrfState::new("abc"), CsrfState::new("abc")); // compared in constant time
    /// assert_ne!(CsrfState::new("abc"), CsrfState::new("abd"));
    /// ```
    CsrfState
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = ClientSecret::new("hunter2-super-secret");
        let shown = format!("{s:?} {:?}", AccessToken::new("tok"));
        assert_eq!(shown, "ClientSecret(<redacted>) AccessToken(<redacted>)");
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(CsrfState::new("abc"), CsrfState::new("abc"));
        assert_ne!(CsrfState::new("abc"), CsrfState::new("abd"));
        assert_ne!(CsrfState::new("abc"), CsrfState::new("abcd"));
        assert_ne!(CsrfState::new(""), CsrfState::new("a"));
        assert_eq!(CsrfState::new(""), CsrfState::new(""));
    }

    #[test]
    fn serde_round_trip_keeps_value() {
        let t = RefreshToken::new("r1");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"r1\"");
        let back: RefreshToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose_secret(), "r1");
    }
}
