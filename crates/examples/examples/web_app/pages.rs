//! The HTML: every page, the headers every response carries, and what a person sees when
//! something did not work (plain words and a way on; the details go to the server's log).

use std::fmt::Display;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use helloflex::{CallbackError, Error};
use helloflex::{CsrfState, OAuthErrorCode};

use super::sessions::{Refused, Session};

/// Headers on every response: pages hold a CSRF token and a user's data, so no cache keeps
/// them; no other site may frame them (clickjacking the Sign out button); nothing is loaded
/// but the inline style, and forms post only here. The referrer goes to this origin only:
/// `no-referrer` would make the browser send `Origin: null` on our own form posts.
pub async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    response
}

/// Who is looking at a page: it decides the navigation bar.
pub enum Viewer {
    /// Not signed in.
    Anonymous,
    /// Signed in: their forms carry this session's CSRF token.
    SignedIn(CsrfState),
}

impl Viewer {
    /// Who is looking, from their session (if they have one).
    pub fn of(session: Option<&Session>) -> Self {
        match session.and_then(|s| s.user.as_ref()) {
            Some(user) => Viewer::SignedIn(user.csrf.clone()),
            None => Viewer::Anonymous,
        }
    }
}

/// Text from a server or a user, made safe to put in HTML (text or a quoted attribute).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The sign-out button: a POST form carrying the session's CSRF token.
pub fn sign_out_form(csrf: &CsrfState) -> String {
    format!(
        r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form>"#,
        escape(csrf.expose_secret())
    )
}

/// A page: a title, a little CSS, a navigation bar, and `body` (already HTML).
pub fn page(title: &str, viewer: &Viewer, body: &str) -> Html<String> {
    let nav = match viewer {
        Viewer::SignedIn(csrf) => {
            format!(r#"<a href="/">Home</a> · <a href="/news">News</a> · {}"#, sign_out_form(csrf))
        }
        Viewer::Anonymous => {
            r#"<a href="/">Home</a> · <a href="/login">Sign in with Flextell</a>"#.to_owned()
        }
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · HelloFlex demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
nav{{margin-bottom:1.5rem}} nav form{{display:inline}} .error{{color:#a00}} li{{margin:.3rem 0}}</style></head>
<body><nav>{nav}</nav><h1>{title}</h1>{body}</body></html>"#,
        title = escape(title)
    ))
}

/// A failure page, with a link to `again` (where retrying starts) if given. `detail` goes to
/// the server's log only: users get `message` in plain words, attackers nothing about the
/// internals.
pub fn error_page(
    status: StatusCode,
    viewer: &Viewer,
    message: &str,
    again: Option<&str>,
    detail: &dyn Display,
) -> Response {
    eprintln!("web_app: {status}: {message} ({detail})");
    let again = again.map(|href| format!(r#"<a href="{}">Try again</a> · "#, escape(href)));
    let body = format!(
        r#"<p class="error">{}</p><p>{}<a href="/">Back to the start</a></p>"#,
        escape(message),
        again.unwrap_or_default()
    );
    (status, page("Something went wrong", viewer, &body)).into_response()
}

/// The page for a session that could not be made, or read.
pub fn refused_page(refused: Refused) -> Response {
    match refused {
        Refused::NoRandomness => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Viewer::Anonymous,
            "The server could not start a session safely. Please try again later.",
            None,
            &"the OS random number generator failed",
        ),
        Refused::Full => {
            let mut response = error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &Viewer::Anonymous,
                "Too many people are signed in right now. Please try again in a minute.",
                Some("/login"),
                &"the session table is full of signed-in sessions",
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            response
        }
        Refused::Storage(detail) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Viewer::Anonymous,
            "The server could not read or keep your session. Please try again later.",
            None,
            &detail,
        ),
    }
}

/// The callback of a sign-in this browser no longer has (it expired, or made room for others).
pub fn expired_sign_in(viewer: &Viewer) -> Response {
    let body = r#"<p>This sign-in has expired or was already used, so you are not signed in.</p>
<p><a href="/login">Sign in again</a> · <a href="/">Back to the start</a></p>"#;
    (StatusCode::BAD_REQUEST, page("Sign-in expired", viewer, body)).into_response()
}

/// Flextell did not sign the user in. The user refusing consent (Deny) is not an error: it is
/// their answer, so it gets a plain explanation and a way to change their mind, with `200`
/// (nothing for the logs or the alerts to count as a failure).
pub fn sign_in_failed(viewer: &Viewer, e: &Error) -> Response {
    match e {
        Error::Callback(CallbackError::Denied { code: OAuthErrorCode::AccessDenied, .. }) => {
            let body = "<p>You chose not to let this app use your Flextell account, so it has \
                        not been given access. Nothing was shared with it.</p>\
                        <p><a href=\"/login\">Try again</a> · <a href=\"/\">Back to the start</a></p>";
            page("Sign-in cancelled", viewer, body).into_response()
        }
        // A malformed or mixed-up callback (the browser brought something wrong).
        Error::Callback(_) => {
            let message = "Flextell's answer could not be accepted, so you are not signed in.";
            error_page(StatusCode::BAD_REQUEST, viewer, message, Some("/login"), e)
        }
        // The code exchange failed (Flextell down, refused, or unreachable).
        _ => {
            let message = "Flextell could not complete the sign-in.";
            error_page(StatusCode::BAD_GATEWAY, viewer, message, Some("/login"), e)
        }
    }
}
