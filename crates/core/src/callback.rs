//! The authorization-code flow (Flextell) as a typestate chain:
//! [`start_authorization`] -> [`PendingAuthorization`] (serialisable, kept in the web session) ->
//! [`PendingAuthorization::check_callback`] -> [`AuthorizedCode`] -> the code-exchange request.
//! Checking `state` is part of the chain, never left to the caller.

use serde::{Deserialize, Serialize};

use crate::config::AuthorizationCodeConfig;
use crate::encoding::{form_encode, parse_query};
use crate::identity::validate_scopes;

use crate::error::{CallbackError, ConfigError, Error};
use crate::excerpt::Excerpt;
use crate::oauth_error::OAuthErrorCode;
use crate::pkce::{VERIFIER_ENTROPY_BYTES, pkce_challenge, verifier_from_entropy};
use crate::secret::{AuthorizationCode, CsrfState, PkceVerifier, constant_time_eq};

/// Random bytes needed to start one authorization: 32 for `state`, 32 for the PKCE verifier.
pub const AUTHORIZATION_ENTROPY_BYTES: usize = 64;

/// Longest callback query read.
const MAX_CALLBACK_BYTES: usize = 8 * 1024;

/// An authorization in progress: what the callback must match. Serialise it into the server-side
/// session of the browser that started it; it holds secrets, so never into a cookie in clear.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::PendingAuthorization;
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
/// // `pending`: the second half of `client.start_authorization()`. Keep it in the server-side
/// // session of the browser that was sent to the URL (it serialises; it holds secrets):
/// let saved = serde_json::to_string(&pending)?;
/// let pending: PendingAuthorization = serde_json::from_str(&saved)?;
/// assert_eq!(pending.redirect_uri(), "https://my-app.example/callback");
/// // ... and hand it with the callback to `client.complete_authorization(&pending, callback)`.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    state: CsrfState,
    verifier: PkceVerifier,
    redirect_uri: String,
    issuer: Option<String>,
}

/// Starts an authorization: the URL to send the user to, and the pending authorization to keep.
///
/// ```
/// use helloflex_core::*;
/// use helloflex_core::machines::*;
/// let config = AuthorizationCodeConfig::new(
///     ClientIdentity::confidential("app", ClientSecret::new("s")),
///     Endpoint::parse("https://auth.flextell.example/authorize", InsecureLoopback::Deny)?,
///     Endpoint::parse("https://auth.flextell.example/token", InsecureLoopback::Deny)?,
///     Endpoint::parse("https://app.example/callback", InsecureLoopback::Deny)?,
/// )
/// .with_scopes(["calls.read"]);
/// let entropy: [u8; 64] = std::array::from_fn(|i| (i * 37 + 11) as u8); // from the OS RNG in real use
/// let (url, pending) = start_authorization(&config, &entropy)?;
/// assert!(url.starts_with("https://auth.flextell.example/authorize?response_type=code&client_id=app"));
/// assert!(url.contains("code_challenge_method=S256"));
/// # Ok::<(), Error>(())
/// ```
pub fn start_authorization(
    config: &AuthorizationCodeConfig,
    entropy: &[u8; AUTHORIZATION_ENTROPY_BYTES],
) -> Result<(String, PendingAuthorization), Error> {
    config.client.validate()?;
    validate_scopes(&config.scopes)?;
    let (state_bytes, verifier_bytes) = entropy.split_at(VERIFIER_ENTROPY_BYTES);
    let mut verifier_entropy = [0u8; VERIFIER_ENTROPY_BYTES];
    verifier_entropy.copy_from_slice(verifier_bytes);
    let verifier = verifier_from_entropy(&verifier_entropy);
    let mut state_entropy = [0u8; VERIFIER_ENTROPY_BYTES];
    state_entropy.copy_from_slice(state_bytes);
    let state = CsrfState::new(verifier_from_entropy(&state_entropy).expose_secret());
    // A zeroed, constant or repeated buffer means the caller's RNG was never (fully) filled in:
    // `state` would be guessable or equal to the verifier.
    let constant = |bytes: &[u8]| bytes.windows(2).all(|w| w.first() == w.get(1));
    if constant(state_bytes) || constant(verifier_bytes) || state_bytes == verifier_bytes {
        return Err(ConfigError::Invalid {
            name: "entropy",
            reason: "the random bytes are constant, or the two halves are equal",
        }
        .into());
    }
    let challenge = pkce_challenge(&verifier);
    let scope = config.scopes.join(" ");
    let redirect_uri = config.redirect_uri.as_str().to_owned();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", config.client.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    if !scope.is_empty() {
        params.push(("scope", scope.as_str()));
    }
    params.push(("state", state.expose_secret()));
    params.push(("code_challenge", challenge.as_str()));
    params.push(("code_challenge_method", "S256"));
    let base = config.authorize_url.as_str();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}{}", form_encode(params));
    Ok((url, PendingAuthorization { state, verifier, redirect_uri, issuer: config.issuer.clone() }))
}

/// A code received on the redirect URI, bound to its PKCE verifier.
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
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
/// let code = pending.check_callback(&format!("https://my-app.example/callback?code=c0de&state={state}"))?;
/// let exchange = code.into_token_request(&config)?; // the code and its PKCE verifier, sent once
/// assert_eq!(exchange.request().uri(), "https://login.flextell.example/oauth2/token");
/// assert_eq!(format!("{exchange:?}").contains("c0de"), false); // its Debug shows no body
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AuthorizedCode {
    code: AuthorizationCode,
    verifier: PkceVerifier,
    redirect_uri: String,
}

impl AuthorizedCode {
    /// The code-exchange request (`grant_type=authorization_code` with `code_verifier`). The
    /// code is consumed: it is single-use, and a server that sees it twice revokes what it
    /// issued. The chain runs by value to a token set: `start_authorization` ->
    /// `PendingAuthorization::check_callback` -> this -> `TokenExchange::new` -> `Fetched` ->
    /// `Fetched::into_token_set`.
    pub fn into_token_request(
        self,
        config: &AuthorizationCodeConfig,
    ) -> Result<crate::token_request::TokenRequest, Error> {
        crate::token_request::authorization_code(
            &config.token_url,
            &config.client,
            &self.code,
            &self.verifier,
            &self.redirect_uri,
        )
    }
}

struct Params {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

impl PendingAuthorization {
    /// The redirect URI the authorization was started with.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Identifies this authorization without revealing its `state`: a SHA-256 digest of it.
    /// Remember the ids of completed authorizations to refuse a callback delivered twice.
    pub fn id(&self) -> AuthorizationId {
        AuthorizationId(hmac_sha256::Hash::hash(self.state.expose_secret().as_bytes()))
    }

    /// Checks a callback: the full redirect URL or just its query. A refusal that
    /// [`CallbackError::is_stray`] did not belong to this authorization (unreadable, a wrong or
    /// missing `state`): the genuine callback may still arrive, and the pending authorization
    /// stays usable. Any other outcome uses it up (the server does not accept its code twice):
    /// remember its [`id`](Self::id) to refuse a callback delivered again.
    ///
    /// ```
    /// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
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
    /// let forged = pending.check_callback("https://my-app.example/callback?code=c0de&state=forged").unwrap_err();
    /// assert!(forged.is_stray()); // not this authorization's: the real callback may still come
    /// let code = pending.check_callback(&format!("?code=c0de&state={state}"))?;
    /// # drop(code);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_callback(&self, callback: &str) -> Result<AuthorizedCode, CallbackError> {
        let unattributed = |error: CallbackError| {
            debug_assert!(error.is_stray(), "one rule for what a sign-in ignores");
            error
        };
        let params = read_params(callback).map_err(unattributed)?;
        let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
            return Err(unattributed(CallbackError::MissingState));
        };
        if !constant_time_eq(state.as_bytes(), self.state.expose_secret().as_bytes()) {
            return Err(unattributed(CallbackError::StateMismatch));
        }
        // From here on the callback belongs to this authorization, which is now used up.
        let consumed = |error: CallbackError| {
            debug_assert!(!error.is_stray(), "one rule for what a sign-in ignores");
            error
        };
        if let Some(issuer) = &self.issuer {
            match &params.iss {
                None => return Err(consumed(CallbackError::MissingIssuer)),
                Some(iss) if iss != issuer => return Err(consumed(CallbackError::IssuerMismatch)),
                Some(_) => {}
            }
        }
        let present = |v: Option<String>| v.filter(|v| !v.is_empty());
        match (present(params.code), present(params.error)) {
            (Some(_), Some(_)) => Err(consumed(CallbackError::CodeAndError)),
            (None, Some(error)) => Err(consumed(CallbackError::Denied {
                code: OAuthErrorCode::parse(&error),
                description: params
                    .error_description
                    .map(|d| Excerpt::of_text(&d, 300).as_str().to_owned()),
            })),
            (None, None) => Err(consumed(CallbackError::MissingCode)),
            (Some(code), None) => Ok(AuthorizedCode {
                code: AuthorizationCode::new(code),
                verifier: self.verifier.clone(),
                redirect_uri: self.redirect_uri.clone(),
            }),
        }
    }
}

/// Identifies one authorization (a digest of its `state`, not the state itself).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
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
/// let id = pending.id();
/// assert_eq!(id.fingerprint().len(), 32); // hex: what a store remembers of a completed sign-in
/// assert!(!id.fingerprint().contains(&state)); // it does not reveal the state
/// assert_eq!(format!("{id:?}"), "AuthorizationId(..)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorizationId([u8; 32]);

impl AuthorizationId {
    /// A printable name for this authorization (hex of the first half of its digest): what a
    /// shared store remembers of a completed one. It names the authorization without
    /// revealing its `state`.
    pub fn fingerprint(&self) -> String {
        self.0[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for AuthorizationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorizationId(..)")
    }
}

fn read_params(callback: &str) -> Result<Params, CallbackError> {
    if callback.len() > MAX_CALLBACK_BYTES {
        return Err(CallbackError::Malformed("longer than 8 KiB"));
    }
    let without_fragment = callback.split('#').next().unwrap_or_default();
    let query = match without_fragment.split_once('?') {
        Some((_, query)) => query,
        None => without_fragment,
    };
    if !crate::encoding::percent_well_formed(query) {
        return Err(CallbackError::Malformed("a parameter has a broken percent-encoding"));
    }
    let mut params =
        Params { code: None, state: None, error: None, error_description: None, iss: None };
    for raw in parse_query(query) {
        let Ok(key) = String::from_utf8(raw.key) else { continue };
        let slot = match key.as_str() {
            "code" => &mut params.code,
            "state" => &mut params.state,
            "error" => &mut params.error,
            "error_description" => &mut params.error_description,
            "iss" => &mut params.iss,
            _ => continue,
        };
        if slot.is_some() {
            return Err(CallbackError::DuplicateParameter(key));
        }
        let value = String::from_utf8(raw.value)
            .map_err(|_| CallbackError::Malformed("a parameter is not UTF-8"))?;
        // Codes and states are visible ASCII (RFC 6749 appendix A); descriptions may have spaces.
        let allowed = |c: char| {
            if key == "error_description" { !c.is_control() } else { c.is_ascii_graphic() }
        };
        if !value.chars().all(allowed) {
            return Err(CallbackError::Malformed(
                "a parameter has characters RFC 6749 does not allow",
            ));
        }
        *slot = Some(value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientIdentity, ClientSecret, Endpoint, InsecureLoopback};

    fn config() -> AuthorizationCodeConfig {
        let e = |u| Endpoint::parse(u, InsecureLoopback::Allow).unwrap();
        AuthorizationCodeConfig::new(
            ClientIdentity::confidential("app", ClientSecret::new("s")),
            e("https://auth.example/authorize"),
            e("https://auth.example/token"),
            e("http://127.0.0.1:3000/callback"),
        )
        .with_scopes(["calls.read", "calls.write"])
    }

    fn entropy() -> [u8; 64] {
        let mut e = [0u8; 64];
        for (i, b) in e.iter_mut().enumerate() {
            *b = i as u8;
        }
        e
    }

    #[test]
    fn entropy_that_would_make_state_guessable_is_refused() {
        let refused = |e: [u8; 64]| {
            matches!(
                start_authorization(&config(), &e),
                Err(Error::Config(ConfigError::Invalid { name: "entropy", .. }))
            )
        };
        assert!(refused([0; 64]));
        assert!(refused([9; 64]));
        let mut zero_state = entropy();
        zero_state[..32].fill(0);
        assert!(refused(zero_state), "state half all zeros");
        let mut zero_verifier = entropy();
        zero_verifier[32..].fill(0);
        assert!(refused(zero_verifier), "verifier half all zeros");
        let mut halves = entropy();
        let (a, b) = halves.split_at_mut(32);
        b.copy_from_slice(a);
        assert!(refused(halves), "state would equal the verifier");
        assert!(start_authorization(&config(), &entropy()).is_ok());
    }

    fn state_of(url: &str) -> String {
        url.split('&').find_map(|p| p.strip_prefix("state=")).unwrap().to_owned()
    }

    #[test]
    fn url_has_every_parameter() {
        let (url, _) = start_authorization(&config(), &entropy()).unwrap();
        assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback"));
        assert!(url.contains("scope=calls.read%20calls.write"));
        assert!(url.contains("code_challenge="));
        assert_eq!(state_of(&url).len(), 43);
    }

    #[test]
    fn good_callback_gives_code_and_exchange_request() {
        let (url, pending) = start_authorization(&config(), &entropy()).unwrap();
        let state = state_of(&url);
        let code = pending
            .check_callback(&format!("http://127.0.0.1:3000/callback?code=abc&state={state}"))
            .unwrap();
        let req = code.into_token_request(&config()).unwrap();
        let body = std::str::from_utf8(req.request().body()).unwrap();
        assert!(body.starts_with("grant_type=authorization_code&code=abc&redirect_uri="));
        assert!(body.contains("code_verifier="));
    }

    #[test]
    fn wrong_state_does_not_consume() {
        let (url, pending) = start_authorization(&config(), &entropy()).unwrap();
        let state = state_of(&url);
        let rejected = pending.check_callback("code=abc&state=forged").unwrap_err();
        assert_eq!(rejected, CallbackError::StateMismatch);
        assert!(rejected.is_stray(), "the pending authorization stays usable");
        assert!(pending.check_callback(&format!("code=abc&state={state}")).is_ok());
    }

    #[test]
    fn refusals() {
        let (url, pending) = start_authorization(&config(), &entropy()).unwrap();
        let state = state_of(&url);
        let check = |query: String, expected: CallbackError| {
            let e = pending.clone().check_callback(&query).unwrap_err();
            assert_eq!(e, expected, "{query}");
        };
        check("code=a".into(), CallbackError::MissingState);
        check(format!("code=a&state={}", state.to_uppercase()), CallbackError::StateMismatch);
        check(format!("state={state}"), CallbackError::MissingCode);
        check(format!("code=a&error=access_denied&state={state}"), CallbackError::CodeAndError);
        check(
            format!("code=a&code=b&state={state}"),
            CallbackError::DuplicateParameter("code".into()),
        );
        check(
            format!("code=a%00&state={state}"),
            CallbackError::Malformed("a parameter has characters RFC 6749 does not allow"),
        );
        check(
            format!("code=%ff&state={state}"),
            CallbackError::Malformed("a parameter is not UTF-8"),
        );
        check(
            format!("code=a%&state={state}"),
            CallbackError::Malformed("a parameter has a broken percent-encoding"),
        );
        check("code=a&state=".into(), CallbackError::MissingState);
        check(format!("state={state}&error=&code="), CallbackError::MissingCode);
        check(
            format!("error=access_denied&error_description=User+said+no&state={state}"),
            CallbackError::Denied {
                code: OAuthErrorCode::AccessDenied,
                description: Some("User said no".into()),
            },
        );
    }

    #[test]
    fn issuer_is_compared_exactly() {
        let config = config().with_issuer("https://auth.example");
        let (url, pending) = start_authorization(&config, &entropy()).unwrap();
        let state = state_of(&url);
        for (iss, ok) in [
            ("https%3A%2F%2Fauth.example", true),
            ("https%3A%2F%2Fauth.example%2F", false),
            ("https%3A%2F%2FAUTH.example", false),
        ] {
            let result = pending.clone().check_callback(&format!("code=a&state={state}&iss={iss}"));
            assert_eq!(result.is_ok(), ok, "{iss}");
        }
        let e = pending.check_callback(&format!("code=a&state={state}")).unwrap_err();
        assert_eq!(e, CallbackError::MissingIssuer);
    }

    #[test]
    fn pending_survives_serialisation() {
        let (url, pending) = start_authorization(&config(), &entropy()).unwrap();
        let json = serde_json::to_string(&pending).unwrap();
        let back: PendingAuthorization = serde_json::from_str(&json).unwrap();
        assert!(back.check_callback(&format!("code=a&state={}", state_of(&url))).is_ok());
    }
}
