//! The authorization server and API of the simulation: refresh tokens rotated on every use,
//! reuse of a rotated one revokes its whole family (RFC 9700 section 4.14, as Flextell-style
//! servers do), codes single-use. Written from the RFCs, sharing no parsing with the core.
//!
//! It keeps the history the invariants need: which refresh token each rotation produced, and
//! every reuse, with the time it happened.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use percent_encoding::percent_decode_str;

use crate::executor::later;

/// A refresh token's life at the server.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub(crate) user: usize,
    pub(crate) family: u32,
    /// The token it was rotated into, once presented.
    pub(crate) child: Option<String>,
    pub(crate) revoked: bool,
}

#[derive(Debug, Clone)]
struct Access {
    user: usize,
    family: u32,
    expires: Instant,
}

/// A rotated refresh token presented again.
#[derive(Debug, Clone)]
pub(crate) struct Reuse {
    pub(crate) token: String,
}

/// The server's state.
#[derive(Debug, Default)]
pub(crate) struct Server {
    pub(crate) refresh: BTreeMap<String, Refresh>,
    access: BTreeMap<String, Access>,
    /// code -> user (and whether it was used, and the family it issued).
    codes: BTreeMap<String, (usize, Option<u32>)>,
    revoked_families: Vec<u32>,
    pub(crate) reuses: Vec<Reuse>,
    /// API calls answered with a token of another user than the one asked for.
    pub(crate) cross_user: Vec<String>,
    /// Code exchanges of a code already exchanged.
    pub(crate) code_reuses: u32,
    pub(crate) token_requests: u32,
    next: u32,
    lifetime: Duration,
}

/// A form-encoded body's fields.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode =
                |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

fn json(status: u16, body: String) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body.into_bytes());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn invalid_grant(why: &str) -> http::Response<Vec<u8>> {
    json(400, format!(r#"{{"error":"invalid_grant","error_description":"{why}"}}"#))
}

impl Server {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self { lifetime, ..Self::default() }
    }

    fn token(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:06}", self.next)
    }

    /// Issues a token set of `family` for `user` (a refresh token with it).
    fn issue(&mut self, user: usize, family: u32, now: Instant) -> (String, String) {
        let access = self.token("at");
        let refresh = self.token("rt");
        let expires = later(now, self.lifetime);
        self.access.insert(access.clone(), Access { user, family, expires });
        self.refresh.insert(refresh.clone(), Refresh { user, family, child: None, revoked: false });
        (access, refresh)
    }

    fn answer(&self, access: &str, refresh: &str) -> http::Response<Vec<u8>> {
        json(
            200,
            format!(
                r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{},"refresh_token":"{refresh}"}}"#,
                self.lifetime.as_secs()
            ),
        )
    }

    /// A new grant for `user` (a sign-in done outside the fleet): its access and refresh token.
    pub(crate) fn sign_in(&mut self, user: usize, now: Instant) -> (String, String) {
        self.next += 1;
        let family = self.next;
        self.issue(user, family, now)
    }

    /// A code for `user`, as the consent page hands it to the redirect.
    pub(crate) fn code(&mut self, user: usize) -> String {
        let code = self.token("code");
        self.codes.insert(code.clone(), (user, None));
        code
    }

    fn revoke_family(&mut self, family: u32) {
        self.revoked_families.push(family);
        for r in self.refresh.values_mut().filter(|r| r.family == family) {
            r.revoked = true;
        }
    }

    /// The token endpoint.
    pub(crate) fn handle_token(&mut self, body: &[u8], now: Instant) -> http::Response<Vec<u8>> {
        self.token_requests += 1;
        let fields = form(body);
        match fields.get("grant_type").map(String::as_str) {
            Some("refresh_token") => {
                let Some(presented) = fields.get("refresh_token") else {
                    return json(400, r#"{"error":"invalid_request"}"#.into());
                };
                let Some(info) = self.refresh.get(presented).cloned() else {
                    return invalid_grant("unknown refresh token");
                };
                if info.child.is_some() {
                    self.reuses.push(Reuse { token: presented.clone() });
                    self.revoke_family(info.family);
                    return invalid_grant("refresh token reuse");
                }
                if info.revoked {
                    return invalid_grant("revoked");
                }
                let (access, refresh) = self.issue(info.user, info.family, now);
                if let Some(r) = self.refresh.get_mut(presented) {
                    r.child = Some(refresh.clone());
                }
                self.answer(&access, &refresh)
            }
            Some("authorization_code") => {
                let Some(code) = fields.get("code") else {
                    return json(400, r#"{"error":"invalid_request"}"#.into());
                };
                match self.codes.get(code).copied() {
                    None => invalid_grant("unknown code"),
                    Some((_, Some(family))) => {
                        // RFC 6749 4.1.2: a code used twice revokes what it issued.
                        self.code_reuses += 1;
                        self.revoke_family(family);
                        invalid_grant("code reuse")
                    }
                    Some((user, None)) => {
                        self.next += 1;
                        let family = self.next;
                        self.codes.insert(code.clone(), (user, Some(family)));
                        let (access, refresh) = self.issue(user, family, now);
                        self.answer(&access, &refresh)
                    }
                }
            }
            _ => json(400, r#"{"error":"unsupported_grant_type"}"#.into()),
        }
    }

    /// The API: `GET /api/users/<n>/news` with a bearer token of user `n`.
    pub(crate) fn handle_api(
        &mut self,
        request: &http::Request<Vec<u8>>,
        now: Instant,
    ) -> http::Response<Vec<u8>> {
        let unauthorized = || {
            let mut response = json(401, r#"{"message":"unauthorized"}"#.into());
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            response
        };
        let asked: Option<usize> = request
            .uri()
            .path()
            .strip_prefix("/api/users/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse().ok());
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(info) = bearer.and_then(|b| self.access.get(b)) else { return unauthorized() };
        if Some(info.user) != asked {
            self.cross_user
                .push(format!("user {:?} called with user {}'s token", asked, info.user));
            return json(403, r#"{"message":"forbidden"}"#.into());
        }
        if now >= info.expires || self.revoked_families.contains(&info.family) {
            return unauthorized();
        }
        json(200, "[]".into())
    }

    /// Whether `token` or a token it was rotated into, at any depth, is `candidate`.
    pub(crate) fn descends(&self, token: &str, candidate: &str) -> bool {
        let mut at = Some(token.to_owned());
        while let Some(t) = at {
            if t == candidate {
                return true;
            }
            at = self.refresh.get(&t).and_then(|r| r.child.clone());
        }
        false
    }
}
