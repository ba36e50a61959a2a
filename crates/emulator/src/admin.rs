//! The admin API under `/_admin`: health, counters, faults, revocation, consent mode, token
//! lifetimes, reset. JSON everywhere is snake_case (the older kebab-case spellings of fault
//! kinds and consent modes are still accepted); the Content-Type is not checked.
//!
//! Every body that is not JSON, not the shape an endpoint takes, or holds a value that cannot
//! work gets one answer: HTTP 400 and the JSON of [`refused`], naming each field (with its list
//! entry) and what is allowed. An unknown `/_admin` path gets the same JSON with 404, a method an
//! endpoint does not take with 405. Nothing is changed by a refused request. The crate docs
//! (`lib.rs`) list what each endpoint takes.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::extract::rejection::BytesRejection;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::{Consent, TOKEN_LIFETIME_SECONDS};
use crate::faults::Fault;
use crate::refusal::{Fields, Refusal, got, got_str, one_line, parse_json};
use crate::state::State;

/// The admin endpoints and the methods each takes, for the refusals of a wrong path or method.
pub(crate) const ENDPOINTS: &[(&str, &str)] = &[
    ("/_admin/health", "GET"),
    ("/_admin/counters", "GET"),
    ("/_admin/counters/reset", "POST"),
    ("/_admin/faults", "GET, POST, DELETE"),
    ("/_admin/revoke", "POST"),
    ("/_admin/consent", "POST"),
    ("/_admin/token-lifetime", "POST"),
    ("/_admin/reset", "POST"),
];

/// A body as the handlers take it: a failure to read it is refused like any bad body.
type Body = Result<Bytes, BytesRejection>;

/// The one error answer of the admin API:
///
/// ```json
/// {"error": "invalid_request",
///  "message": "faults[2].path: must start with \"/\" (got \"news\")",
///  "refusals": [{"field": "faults[2].path", "problem": "must start with \"/\" (got \"news\")"}],
///  "example": {"path": "/news", "kind": "status", "status": 503, "times": 2}}
/// ```
///
/// `message` is every refusal as `field: problem`, joined by `; `; `example` (a correct body)
/// only where the endpoint takes one.
pub(crate) fn refused(
    status: StatusCode,
    error: &str,
    refusals: &[Refusal],
    example: Option<Value>,
) -> Response {
    let mut body = json!({
        "error": error,
        "message": one_line(refusals),
        "refusals": refusals
            .iter()
            .map(|r| json!({"field": r.field, "problem": r.problem}))
            .collect::<Vec<_>>(),
    });
    if let Some(example) = example {
        body["example"] = example;
    }
    (status, axum::Json(body)).into_response()
}

/// A 400 for a body that cannot work.
fn invalid(refusals: &[Refusal], example: Option<Value>) -> Response {
    refused(StatusCode::BAD_REQUEST, "invalid_request", refusals, example)
}

/// The body as JSON; `None` when it is empty. A key given twice in one object is refused
/// (serde_json would keep the last silently), named within `root` of the value (`faults[0]`).
fn read_json_at(
    body: Body,
    root: impl FnOnce(&Value) -> &'static str,
) -> Result<Option<Value>, Vec<Refusal>> {
    let bytes = body.map_err(|e| vec![Refusal::new("body", format!("could not be read: {e}"))])?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let (value, repeated) =
        parse_json(&bytes).map_err(|e| vec![Refusal::new("body", format!("must be JSON: {e}"))])?;
    if repeated.is_empty() {
        Ok(Some(value))
    } else {
        let root = root(&value);
        Err(repeated.into_iter().map(|r| r.within(root)).collect())
    }
}

/// The body as JSON; `None` when it is empty. (See [`read_json_at`].)
fn read_json(body: Body) -> Result<Option<Value>, Vec<Refusal>> {
    read_json_at(body, |_| "")
}

/// The fields of a body that must be a JSON object like `example`.
fn object<'a>(value: &'a Value, example: &Value) -> Result<Fields<'a>, Refusal> {
    Fields::of(value, "", &format!("a JSON object like {example}"))
        .map_err(|r| Refusal::new("body", r.problem))
}

/// Refuses any body but none, `null` or `{}` (for the endpoints that take no value: a field
/// sent to them would be silently ignored).
fn no_body(body: Body) -> Result<(), Response> {
    let refusals = match read_json(body) {
        Ok(None | Some(Value::Null)) => return Ok(()),
        Ok(Some(value @ Value::Object(_))) => match Fields::of(&value, "", "") {
            Ok(fields) => fields.finish(),
            Err(refusal) => vec![refusal],
        },
        Ok(Some(other)) => vec![Refusal::new(
            "body",
            format!("must be empty or {{}}: this takes no value (got {})", got(&other)),
        )],
        Err(refusals) => refusals,
    };
    if refusals.is_empty() { Ok(()) } else { Err(invalid(&refusals, None)) }
}

/// `GET /_admin/counters`
pub(crate) async fn counters(AxumState(state): AxumState<State>) -> Response {
    axum::Json(state.lock().counters.clone()).into_response()
}

/// `POST /_admin/counters/reset`: no body (or `{}`).
pub(crate) async fn reset_counters(AxumState(state): AxumState<State>, body: Body) -> Response {
    if let Err(response) = no_body(body) {
        return response;
    }
    state.lock().reset_counters();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_admin/health`: the emulator is up; its version, base URL and registered clients.
pub(crate) async fn health(AxumState(state): AxumState<State>) -> Response {
    let inner = state.lock();
    let mut clients: Vec<&String> = inner.clients.keys().collect();
    clients.sort();
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "base_url": inner.base_url,
        "clients": clients,
    }))
    .into_response()
}

/// `POST /_admin/reset`: everything back to how it started (tokens, codes, items, faults,
/// counters, consent, lifetimes). No body (or `{}`).
pub(crate) async fn reset(AxumState(state): AxumState<State>, body: Body) -> Response {
    if let Err(response) = no_body(body) {
        return response;
    }
    state.reset();
    StatusCode::NO_CONTENT.into_response()
}

fn fault_example() -> Value {
    json!({"path": "/news", "kind": "status", "status": 503, "times": 2})
}

/// `POST /_admin/faults`: one fault or a list; all are added, or none (and a 400 naming each
/// field that cannot work, as `faults[i].field`; a single fault is `faults[0]`).
pub(crate) async fn add_faults(AxumState(state): AxumState<State>, body: Body) -> Response {
    let example = fault_example();
    // A fault posted alone is `faults[0]`.
    let root = |value: &Value| if value.is_array() { "faults" } else { "faults[0]" };
    let value = match read_json_at(body, root) {
        Ok(Some(value)) => value,
        Ok(None) => {
            let problem = format!("required: a fault or a list of faults, e.g. {example}");
            return invalid(&[Refusal::new("faults", problem)], Some(example));
        }
        Err(refusals) => return invalid(&refusals, Some(example)),
    };
    let items: Vec<&Value> = match &value {
        // An empty list would answer 204 and do nothing.
        Value::Array(items) if items.is_empty() => {
            let problem = format!("must hold at least one fault, e.g. [{example}] (got [])");
            return invalid(&[Refusal::new("faults", problem)], Some(example));
        }
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&value],
        other => {
            let problem = format!(
                "must be a fault (a JSON object) or a list of them, e.g. {example} (got {})",
                got(other)
            );
            return invalid(&[Refusal::new("faults", problem)], Some(example));
        }
    };
    let mut inner = state.lock();
    let mut faults = Vec::with_capacity(items.len());
    let mut refusals = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("faults[{i}]");
        match Fault::from_value(item) {
            Ok(fault) => faults.push(fault),
            Err(problems) => refusals.extend(problems.into_iter().map(|r| r.within(&at))),
        }
        if let Some(problem) =
            item.get("client").and_then(Value::as_str).and_then(|c| inner.unregistered(c))
        {
            refusals.push(Refusal::new(format!("{at}.client"), problem));
        }
    }
    if !refusals.is_empty() {
        return invalid(&refusals, Some(example));
    }
    inner.faults.extend(faults);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_admin/faults`: the faults in force, as JSON.
pub(crate) async fn list_faults(AxumState(state): AxumState<State>) -> Response {
    axum::Json(state.lock().faults.clone()).into_response()
}

/// `DELETE /_admin/faults`: no body (or `{}`).
pub(crate) async fn clear_faults(AxumState(state): AxumState<State>, body: Body) -> Response {
    if let Err(response) = no_body(body) {
        return response;
    }
    state.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_admin/revoke` `{"client": "id"}` (a registered client; every client's tokens if the
/// body is empty, `{}` or `client` is `null`): revokes tokens now.
pub(crate) async fn revoke(AxumState(state): AxumState<State>, body: Body) -> Response {
    let example = json!({"client": "demo-client"});
    let value = match read_json(body) {
        Ok(value) => value,
        Err(refusals) => return invalid(&refusals, Some(example)),
    };
    let mut inner = state.lock();
    let mut client = None;
    if let Some(value) = &value {
        let mut fields = match object(value, &example) {
            Ok(fields) => fields,
            Err(refusal) => return invalid(&[refusal], Some(example)),
        };
        client = fields.string("client", "a registered client id");
        if let Some(problem) = client.and_then(|c| inner.unregistered(c)) {
            fields.refuse("client", problem);
        }
        let refusals = fields.finish();
        if !refusals.is_empty() {
            return invalid(&refusals, Some(example));
        }
    }
    inner.revoke_all(client);
    StatusCode::NO_CONTENT.into_response()
}

/// The consent modes as the admin API names them (kebab-case is accepted too).
const CONSENT_MODES: &str = "prompt, auto_approve, auto_deny";

/// `POST /_admin/consent` `{"mode": "prompt" | "auto_approve" | "auto_deny"}`
pub(crate) async fn consent(AxumState(state): AxumState<State>, body: Body) -> Response {
    let example = json!({"mode": "prompt"});
    let refusal = |r: Refusal| invalid(&[r], Some(json!({"mode": "prompt"})));
    let value = match read_json(body) {
        Ok(Some(value)) => value,
        Ok(None) => {
            return refusal(Refusal::new("mode", format!("required: one of {CONSENT_MODES}")));
        }
        Err(refusals) => return invalid(&refusals, Some(example)),
    };
    let mut fields = match object(&value, &example) {
        Ok(fields) => fields,
        Err(r) => return refusal(r),
    };
    let allowed = format!("one of {CONSENT_MODES}");
    let name = fields.string("mode", &allowed);
    let mode = match fields.require("mode", name, &allowed) {
        Some("prompt") => Some(Consent::Prompt),
        Some("auto_approve" | "auto-approve") => Some(Consent::AutoApprove),
        Some("auto_deny" | "auto-deny") => Some(Consent::AutoDeny),
        Some(other) => {
            fields.refuse("mode", format!("must be {allowed} (got {})", got_str(other)));
            None
        }
        None => None,
    };
    let refusals = fields.finish();
    match mode {
        Some(mode) if refusals.is_empty() => {
            state.lock().consent = mode;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => invalid(&refusals, Some(example)),
    }
}

/// `POST /_admin/token-lifetime` `{"seconds": 1..=31536000, "client": "id"}` (`client`: a
/// registered client, or every client if left out): for tokens issued from now.
pub(crate) async fn token_lifetime(AxumState(state): AxumState<State>, body: Body) -> Response {
    let example = json!({"seconds": 60, "client": "demo-client"});
    let range = format!("{}..={}", TOKEN_LIFETIME_SECONDS.start(), TOKEN_LIFETIME_SECONDS.end());
    let value = match read_json(body) {
        Ok(Some(value)) => value,
        Ok(None) => {
            let problem = format!("required: {range}");
            return invalid(&[Refusal::new("seconds", problem)], Some(example));
        }
        Err(refusals) => return invalid(&refusals, Some(example)),
    };
    let mut fields = match object(&value, &example) {
        Ok(fields) => fields,
        Err(refusal) => return invalid(&[refusal], Some(example)),
    };
    let mut inner = state.lock();
    let seconds = fields.int::<u64>("seconds", &TOKEN_LIFETIME_SECONDS);
    let seconds = fields.require("seconds", seconds, &range);
    let client = fields.string("client", "a registered client id");
    if let Some(problem) = client.and_then(|c| inner.unregistered(c)) {
        fields.refuse("client", problem);
    }
    let refusals = fields.finish();
    let Some(seconds) = seconds.filter(|_| refusals.is_empty()) else {
        return invalid(&refusals, Some(example));
    };
    let lifetime = Duration::from_secs(seconds);
    match client {
        Some(client) => {
            inner.client_lifetimes.insert(client.to_owned(), lifetime);
        }
        None => inner.token_lifetime = lifetime,
    }
    StatusCode::NO_CONTENT.into_response()
}

/// A method an admin endpoint does not take: 405 (axum adds `Allow`).
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> Response {
    let takes = ENDPOINTS.iter().find(|(path, _)| *path == uri.path()).map_or("", |(_, m)| m);
    let one_of = if takes.contains(',') { "one of " } else { "" };
    let problem = format!("must be {one_of}{takes} for {} (got {method})", uri.path());
    let refusals = [Refusal::new("method", problem)];
    refused(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &refusals, None)
}

/// A path under `/_admin` that is no endpoint: 404, listing those there are.
pub(crate) fn no_such_endpoint(uri: &Uri) -> Response {
    let endpoints: Vec<String> =
        ENDPOINTS.iter().map(|(path, methods)| format!("{methods} {path}")).collect();
    let problem = format!(
        "must be an admin endpoint: {} (got {})",
        endpoints.join("; "),
        got_str(uri.path())
    );
    refused(StatusCode::NOT_FOUND, "not_found", &[Refusal::new("path", problem)], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_example_shown_in_messages_is_the_one_in_the_json() {
        let shown: Value = serde_json::from_str(crate::faults::EXAMPLE).unwrap();
        assert_eq!(shown, fault_example());
        assert!(Fault::from_value(&shown).is_ok());
    }
}
