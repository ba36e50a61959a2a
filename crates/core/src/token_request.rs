//! Token endpoint requests: client credentials, code exchange and refresh.

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};

use crate::encoding::{form_encode, form_encode_value};
use crate::endpoint::Endpoint;
use crate::error::{Error, UsageError};
use crate::identity::{ClientAuthMethod, ClientIdentity, validate_scopes};
use crate::secret::{AuthorizationCode, PkceVerifier, RefreshToken};

/// The grant a token request is for. It decides how the request may be replayed (see
/// `docs/behaviour.md`, "Replaying a token request"), so it travels with the request.
///
/// ```
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment};
/// use helloflex_core::machines::TokenGrant;
///
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox);
/// assert_eq!(config.token_request()?.grant(), TokenGrant::ClientCredentials);
/// # Ok::<(), helloflex_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenGrant {
    /// Client credentials: retried on transient failures.
    ClientCredentials,
    /// A code exchange: the code is single-use; sent again only if it never left.
    AuthorizationCode,
    /// A refresh: retried on transient failures; `invalid_grant` means re-authorization.
    RefreshToken,
}

/// A token request and the grant it is for: what to send, and how it may be sent again.
/// Its `Debug` shows the grant and the endpoint, never the body (it carries secrets).
///
/// ```
/// use helloflex_core::{ClientCredentialsConfig, ClientSecret, Environment};
///
/// let config = ClientCredentialsConfig::new("my-client", ClientSecret::new("s3cret"), &Environment::Sandbox)
///     .with_scopes(["news.read"]);
/// let request = config.token_request()?;
/// assert_eq!(request.request().method(), "POST");
/// assert_eq!(request.request().uri(), "https://api.uat-helloflex.com/oauth2/token");
/// // The body carries the secret: never log it; `Debug` leaves it out.
/// assert!(String::from_utf8_lossy(request.request().body()).contains("client_secret=s3cret"));
/// assert!(!format!("{request:?}").contains("s3cret"));
/// // What a transport is handed to send:
/// let http_request: http::Request<Vec<u8>> = request.into_request();
/// assert_eq!(http_request.method(), "POST");
/// # Ok::<(), helloflex_core::Error>(())
/// ```
pub struct TokenRequest {
    grant: TokenGrant,
    request: Request<Vec<u8>>,
    /// The refresh token a refresh spends: a response without a new one keeps it.
    spends: Option<RefreshToken>,
}

impl TokenRequest {
    /// `request`, labelled as a request of `grant` (the configs build these for you).
    pub fn new(grant: TokenGrant, request: Request<Vec<u8>>) -> Self {
        Self { grant, request, spends: None }
    }
    /// The grant.
    pub fn grant(&self) -> TokenGrant {
        self.grant
    }
    /// The HTTP request.
    pub fn request(&self) -> &Request<Vec<u8>> {
        &self.request
    }
    /// The HTTP request, owned.
    pub fn into_request(self) -> Request<Vec<u8>> {
        self.request
    }

    /// The request and the refresh token it spends (a refresh's only).
    pub(crate) fn into_parts(self) -> (TokenGrant, Request<Vec<u8>>, Option<RefreshToken>) {
        (self.grant, self.request, self.spends)
    }
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant", &self.grant)
            .field("uri", self.request.uri())
            .finish_non_exhaustive()
    }
}

pub(crate) fn client_credentials(
    token_url: &Endpoint,
    client: &ClientIdentity,
    scopes: &[String],
) -> Result<TokenRequest, Error> {
    validate_scopes(scopes)?;
    let scope = scopes.join(" ");
    let mut params = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        params.push(("scope", scope.as_str()));
    }
    build(token_url, client, params).map(|r| TokenRequest::new(TokenGrant::ClientCredentials, r))
}

pub(crate) fn authorization_code(
    token_url: &Endpoint,
    client: &ClientIdentity,
    code: &AuthorizationCode,
    verifier: &PkceVerifier,
    redirect_uri: &str,
) -> Result<TokenRequest, Error> {
    let params = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose_secret()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier.expose_secret()),
    ];
    build(token_url, client, params).map(|r| TokenRequest::new(TokenGrant::AuthorizationCode, r))
}

pub(crate) fn refresh(
    token_url: &Endpoint,
    client: &ClientIdentity,
    refresh_token: &RefreshToken,
) -> Result<TokenRequest, Error> {
    let params =
        vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
    build(token_url, client, params).map(|request| TokenRequest {
        grant: TokenGrant::RefreshToken,
        request,
        spends: Some(refresh_token.clone()),
    })
}

fn build<'a>(
    url: &Endpoint,
    client: &'a ClientIdentity,
    mut params: Vec<(&'static str, &'a str)>,
) -> Result<Request<Vec<u8>>, Error> {
    client.validate()?;
    let mut basic = None;
    match (client.method, &client.client_secret) {
        (ClientAuthMethod::BasicAuth, Some(secret)) => {
            // RFC 6749 section 2.3.1: form-urlencode each part, then base64 "id:secret".
            let pair = format!(
                "{}:{}",
                form_encode_value(&client.client_id),
                form_encode_value(secret.expose_secret())
            );
            basic =
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)));
        }
        (_, secret) => {
            params.push(("client_id", client.client_id.as_str()));
            if let Some(secret) = secret {
                params.push(("client_secret", secret.expose_secret()));
            }
        }
    }
    let mut request = Request::new(form_encode(params).into_bytes());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.uri();
    let headers = request.headers_mut();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    if let Some(basic) = basic {
        let mut value = HeaderValue::try_from(basic).map_err(|_| UsageError::Header {
            name: "authorization".into(),
            reason: "not a valid header value",
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientCredentialsConfig, ClientSecret, Environment};

    #[test]
    fn client_credentials_in_body_as_documented() {
        let config =
            ClientCredentialsConfig::new("id", ClientSecret::new("se cr&t"), &Environment::Sandbox);
        let req = config.token_request().unwrap();
        assert_eq!(req.request().method(), Method::POST);
        assert_eq!(req.request().uri(), "https://api.uat-helloflex.com/oauth2/token");
        assert_eq!(req.request().headers()[ACCEPT], "application/json");
        assert_eq!(req.request().headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
        assert!(req.request().headers().get(AUTHORIZATION).is_none());
        assert_eq!(
            std::str::from_utf8(req.request().body()).unwrap(),
            "grant_type=client_credentials&client_id=id&client_secret=se%20cr%26t"
        );
    }

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        let config =
            ClientCredentialsConfig::new("id:1", ClientSecret::new("a+b/c"), &Environment::Live)
                .with_auth_method(ClientAuthMethod::BasicAuth)
                .with_scopes(["news.read", "domain"]);
        let req = config.token_request().unwrap();
        let auth = req.request().headers()[AUTHORIZATION].clone();
        assert!(auth.is_sensitive());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.to_str().unwrap().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"id%3A1:a%2Bb%2Fc");
        assert_eq!(
            std::str::from_utf8(req.request().body()).unwrap(),
            "grant_type=client_credentials&scope=news.read%20domain"
        );
    }

    #[test]
    fn bad_scope_refused() {
        let config = ClientCredentialsConfig::new("id", ClientSecret::new("s"), &Environment::Live)
            .with_scopes(["a b"]);
        assert!(matches!(config.token_request(), Err(Error::Config(_))));
    }
}
