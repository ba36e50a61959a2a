//! The authorization server: `/oauth2/token` (client credentials, authorization code with PKCE
//! S256, refresh with rotation and reuse detection) and `/oauth2/authorize` (consent page or
//! auto-approve/deny). Written from RFC 6749, 7636 and 9207 independently of helloflex-core.

use std::collections::HashMap;

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use sha2::Digest as _;

use crate::config::Consent;
use crate::state::{CodeInfo, Grant, SingleUse, State, now, random_token};

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut response = (status, axum::Json(body)).into_response();
    no_store(response.headers_mut());
    response
}

/// A request malformed or missing a parameter (RFC 6749 section 5.2).
fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// A grant refused (RFC 6749 section 5.2): the code or refresh token is unknown, spent,
/// expired, or not this client's.
fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `application/x-www-form-urlencoded` value decoding: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses a form body, refusing repeated parameters (RFC 6749 section 3.2).
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8")?;
    let mut params = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(k).ok_or("a parameter is badly encoded")?;
        let value = form_decode(v).ok_or("a parameter is badly encoded")?;
        if params.insert(key, value).is_some() {
            return Err("a parameter is repeated");
        }
    }
    Ok(params)
}

/// Who the client says it is, and how.
struct ClientAuth {
    id: String,
    secret: Option<String>,
    basic: bool,
}

fn client_auth(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientAuth, Response> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let in_body = form.contains_key("client_secret");
    match basic {
        Some(_) if in_body => {
            Err(invalid_request("more than one client authentication method was used"))
        }
        Some(encoded) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(i, p)| (form_decode(i), form_decode(p))));
            match decoded {
                Some((Some(id), Some(secret))) => {
                    Ok(ClientAuth { id, secret: Some(secret), basic: true })
                }
                _ => Err(invalid_client(true)),
            }
        }
        None => match form.get("client_id") {
            Some(id) => Ok(ClientAuth {
                id: id.clone(),
                secret: form.get("client_secret").cloned(),
                basic: false,
            }),
            None => Err(invalid_client(false)),
        },
    }
}

fn invalid_client(basic: bool) -> Response {
    let mut response =
        oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    if basic {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"helloflex-emulator\""),
        );
    }
    response
}

fn granted_scopes(requested: Option<&String>, allowed: &[String]) -> Result<Vec<String>, Response> {
    match requested
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>())
    {
        None => Ok(allowed.to_vec()),
        Some(list) if list.is_empty() => Ok(allowed.to_vec()),
        Some(list) if list.iter().all(|s| allowed.contains(s)) => Ok(list),
        Some(_) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "a requested scope is not allowed for this client",
        )),
    }
}

/// `POST /oauth2/token`
pub(crate) async fn token(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return invalid_request("the body must be application/x-www-form-urlencoded");
    }
    let form = match parse_form(&body) {
        Ok(form) => form,
        Err(reason) => return invalid_request(reason),
    };
    let auth = match client_auth(&headers, &form) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let mut inner = state.lock();
    *inner.counters.token_requests.entry(format!("{}/{}", auth.id, grant)).or_default() += 1;
    let Some(client) = inner.clients.get(&auth.id).cloned() else {
        return invalid_client(auth.basic);
    };
    if auth.secret.as_deref() != Some(client.secret.as_str()) {
        return invalid_client(auth.basic);
    }
    if grant.is_empty() {
        return invalid_request("grant_type is missing");
    }
    if !["client_credentials", "authorization_code", "refresh_token"].contains(&grant.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this grant type is not supported",
        );
    }
    if !client.grants.contains(&grant) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this client may not use this grant type",
        );
    }
    let body = match grant.as_str() {
        "client_credentials" => match granted_scopes(form.get("scope"), &client.scopes) {
            Ok(scopes) => inner.issue(&Grant { client: client.id.clone(), scopes }, None),
            Err(response) => return response,
        },
        "authorization_code" => {
            let (Some(code), Some(verifier)) = (form.get("code"), form.get("code_verifier")) else {
                return invalid_request("code and code_verifier are required");
            };
            let Some(info) = inner.codes.get(code).cloned() else {
                return invalid_grant("unknown authorization code");
            };
            if !inner.first_use(SingleUse::Code, code) {
                return invalid_grant("the authorization code was already used");
            }
            if now() > info.expires_at {
                return invalid_grant("the authorization code expired");
            }
            if info.grant.client != client.id
                || form.get("redirect_uri") != Some(&info.redirect_uri)
            {
                return invalid_grant("client or redirect_uri does not match the code");
            }
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            // RFC 7636 section 4.1: 43-128 unreserved characters.
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !well_formed || computed != info.challenge {
                return invalid_grant("PKCE verification failed");
            }
            inner.issue(&info.grant, Some(info.family))
        }
        _ => {
            let Some(presented) = form.get("refresh_token") else {
                return invalid_request("refresh_token is required");
            };
            let Some(info) = inner.refresh.get(presented).cloned() else {
                return invalid_grant("unknown or revoked refresh token");
            };
            if info.grant.client != client.id {
                return invalid_grant("the refresh token belongs to another client");
            }
            if !inner.first_use(SingleUse::RefreshToken, presented) {
                return invalid_grant("refresh token reuse detected; the grant was revoked");
            }
            inner.issue(&info.grant, Some(info.family))
        }
    };
    drop(inner);
    let mut response = axum::Json(body).into_response();
    no_store(response.headers_mut());
    response
}

/// Redirect URIs match exactly, as oidc-provider does for web clients (docs/interop.md).
fn redirect_registered(registered: &[String], uri: &str) -> bool {
    registered.iter().any(|r| r == uri || loopback_any_port(r, uri))
}

/// RFC 8252 section 7.3: a native app's loopback redirect is registered without a port and
/// matches any port, since the app listens on whichever port is free.
fn loopback_any_port(registered: &str, uri: &str) -> bool {
    ["http://127.0.0.1", "http://[::1]"].iter().any(|host| {
        let (Some(path), Some(rest)) = (registered.strip_prefix(host), uri.strip_prefix(host))
        else {
            return false;
        };
        let Some(rest) = rest.strip_prefix(':') else { return false };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        path.starts_with('/') && (1..=5).contains(&digits) && &rest[digits..] == path
    })
}

/// The pages' look: the example web app's, so a sign-in reads as one journey.
const STYLE: &str = "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5}.brand{color:#555;font-size:.9rem}li{margin:.3rem 0}\
button{font:inherit;padding:.4rem 1.2rem;margin-right:.5rem;border-radius:.3rem;\
border:1px solid #888;background:#f4f4f4;cursor:pointer}button[value=approve]{background:#0a5;\
color:#fff;border-color:#084}</style>";

fn error_page(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization error</title>{STYLE}</head><body><p class=\"brand\">Flextell emulator</p><h1>Authorization error</h1><p>{}</p></body></html>",
        html_escape(message)
    );
    (status, Html(html)).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn redirect_back(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let query: Vec<String> =
        params.iter().map(|(k, v)| format!("{k}={}", query_encode(v))).collect();
    format!("{redirect_uri}{separator}{}", query.join("&"))
}

/// What the authorize endpoint does with a request: its one decision, used by the HTTP
/// endpoint and by `Emulator::approve` / `deny`.
pub(crate) enum Authorize {
    /// Send the browser back to the client (with a code, or an `error`).
    Redirect(String),
    /// Ask the person (consent mode `prompt`, no decision yet).
    AskConsent { client: String, scopes: Vec<String> },
    /// Refuse without redirecting (an unknown client, an unregistered redirect URI).
    Refuse(&'static str),
}

/// Decides an authorization request; `decision` (`approve` / `deny`) overrides the consent
/// mode when given.
pub(crate) fn decide(
    state: &State,
    params: &HashMap<String, String>,
    decision: Option<&str>,
) -> Authorize {
    let get = |k: &str| params.get(k).map(String::as_str);
    let inner = state.lock();
    let Some(client) = get("client_id").and_then(|id| inner.clients.get(id)).cloned() else {
        return Authorize::Refuse("Unknown client.");
    };
    let Some(redirect_uri) =
        get("redirect_uri").filter(|u| redirect_registered(&client.redirect_uris, u))
    else {
        return Authorize::Refuse("The redirect URI is not registered for this client.");
    };
    let issuer = inner.base_url.clone();
    let consent = inner.consent;
    drop(inner);
    let state_param = get("state").unwrap_or_default().to_owned();
    let fail = |code: &str| {
        let mut p = vec![("error", code), ("iss", issuer.as_str())];
        if !state_param.is_empty() {
            p.push(("state", state_param.as_str()));
        }
        Authorize::Redirect(redirect_back(redirect_uri, &p))
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type");
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => c.to_owned(),
        _ => return fail("invalid_request"),
    };
    let scopes = match granted_scopes(params.get("scope"), &client.scopes) {
        Ok(scopes) => scopes,
        Err(_) => return fail("invalid_scope"),
    };
    match (consent, decision.or(get("decision"))) {
        (_, Some("deny")) | (Consent::AutoDeny, None) => fail("access_denied"),
        (_, Some("approve")) | (Consent::AutoApprove, None) => {
            let mut inner = state.lock();
            let family = inner.next_family;
            inner.next_family += 1;
            let code = random_token("hfx_code_");
            let expires_at = now() + inner.config.code_lifetime;
            inner.codes.insert(
                code.clone(),
                CodeInfo {
                    grant: Grant { client: client.id.clone(), scopes },
                    redirect_uri: redirect_uri.to_owned(),
                    challenge,
                    expires_at,
                    used: false,
                    family,
                },
            );
            drop(inner);
            let mut p = vec![("code", code.as_str()), ("iss", issuer.as_str())];
            if !state_param.is_empty() {
                p.push(("state", state_param.as_str()));
            }
            Authorize::Redirect(redirect_back(redirect_uri, &p))
        }
        (_, _) => Authorize::AskConsent { client: client.id, scopes },
    }
}

/// `GET /oauth2/authorize` (and the consent form's `POST`).
pub(crate) async fn authorize(
    AxumState(state): AxumState<State>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match decide(&state, &params, None) {
        Authorize::Redirect(location) => Redirect::to(&location).into_response(),
        Authorize::AskConsent { client, scopes } => consent_page(&client, &scopes, &params),
        Authorize::Refuse(message) => error_page(StatusCode::BAD_REQUEST, message),
    }
}

fn consent_page(client: &str, scopes: &[String], params: &HashMap<String, String>) -> Response {
    let hidden: String = params
        .iter()
        .filter(|(k, _)| k.as_str() != "decision")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let items: String =
        scopes.iter().map(|s| format!("<li><code>{}</code></li>", html_escape(s))).collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorize {client}</title>{STYLE}</head><body>\
         <p class=\"brand\">Flextell emulator</p>\
         <h1>{client} asks for access</h1><p>It will be able to:</p><ul>{items}</ul>\
         <form method=\"get\" action=\"/oauth2/authorize\">{hidden}\
         <button name=\"decision\" value=\"approve\">Approve</button> \
         <button name=\"decision\" value=\"deny\">Deny</button></form></body></html>",
        client = html_escape(client)
    ))
    .into_response()
}

#[cfg(test)]
mod loopback_tests {
    use super::loopback_any_port;

    #[test]
    fn a_portless_loopback_registration_matches_any_port_and_nothing_else() {
        let registered = "http://127.0.0.1/callback";
        assert!(loopback_any_port(registered, "http://127.0.0.1:53682/callback"));
        assert!(loopback_any_port("http://[::1]/cb", "http://[::1]:1/cb"));
        for uri in [
            "http://127.0.0.1/callback", // exact match is the caller's business
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:123456/callback",
            "http://127.0.0.1:8080/callback/x",
            "http://127.0.0.1:8080/other",
            "http://127.0.0.1.evil.example:80/callback",
            "http://localhost:8080/callback",
            "https://127.0.0.1:8080/callback",
        ] {
            assert!(!loopback_any_port(registered, uri), "{uri}");
        }
        assert!(!loopback_any_port(
            "http://127.0.0.1:3000/callback",
            "http://127.0.0.1:4000/callback"
        ));
    }
}
