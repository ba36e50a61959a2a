//! The admin API under `/_admin`: health, counters, faults, revocation, consent mode, token
//! lifetimes, reset. JSON everywhere is snake_case (the older kebab-case spellings of fault
//! kinds and consent modes are still accepted); a malformed request gets a 400 that lists the
//! valid values and shows an example, never an internal type name.

use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::config::Consent;
use crate::faults::Fault;
use crate::state::State;

/// `GET /_admin/counters`
pub(crate) async fn counters(AxumState(state): AxumState<State>) -> Response {
    axum::Json(state.lock().counters.clone()).into_response()
}

/// `POST /_admin/counters/reset`
pub(crate) async fn reset_counters(AxumState(state): AxumState<State>) -> Response {
    state.lock().reset_counters();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_admin/health`: the emulator is up; its version, base URL and registered clients.
pub(crate) async fn health(AxumState(state): AxumState<State>) -> Response {
    let inner = state.lock();
    let mut clients: Vec<&String> = inner.clients.keys().collect();
    clients.sort();
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "base_url": inner.base_url,
        "clients": clients,
    }))
    .into_response()
}

/// `POST /_admin/reset`: everything back to how it started (tokens, codes, items, faults,
/// counters, consent, lifetimes).
pub(crate) async fn reset(AxumState(state): AxumState<State>) -> Response {
    state.reset();
    StatusCode::NO_CONTENT.into_response()
}

const FAULT_KINDS: [&str; 8] =
    ["latency", "status", "rate_limit", "drop", "hang", "slow_drip", "truncate", "redirect"];

/// A 400 that says what was wrong, the valid fault kinds and a correct example.
fn bad_fault(problem: String) -> Response {
    let body = serde_json::json!({
        "error": format!("not a fault: {problem}"),
        "fault_kinds": FAULT_KINDS,
        "example": {"path": "/news", "kind": "status", "status": 503, "times": 2},
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `POST /_admin/faults` (one fault or a list); `DELETE /_admin/faults` clears them.
pub(crate) async fn add_faults(
    AxumState(state): AxumState<State>,
    body: axum::body::Bytes,
) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return bad_fault(format!("the body is not JSON ({e})")),
    };
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    let mut faults = Vec::with_capacity(items.len());
    for item in items {
        match serde_json::from_value::<Fault>(item) {
            Ok(fault) => faults.push(fault),
            Err(e) => return bad_fault(e.to_string()),
        }
    }
    state.lock().faults.extend(faults);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_admin/faults`: the faults in force, as JSON.
pub(crate) async fn list_faults(AxumState(state): AxumState<State>) -> Response {
    axum::Json(state.lock().faults.clone()).into_response()
}

/// `DELETE /_admin/faults`
pub(crate) async fn clear_faults(AxumState(state): AxumState<State>) -> Response {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize, Default)]
pub(crate) struct ClientFilter {
    #[serde(default)]
    client: Option<String>,
}

/// `POST /_admin/revoke` `{"client": "id"}` (all clients if absent): revokes tokens now.
pub(crate) async fn revoke(
    AxumState(state): AxumState<State>,
    body: Option<axum::Json<ClientFilter>>,
) -> Response {
    let filter = body.map(|b| b.0).unwrap_or_default();
    state.lock().revoke_all(filter.client.as_deref());
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(crate) struct ConsentMode {
    mode: Consent,
}

/// `POST /_admin/consent` `{"mode": "prompt" | "auto-approve" | "auto-deny"}`
pub(crate) async fn consent(
    AxumState(state): AxumState<State>,
    axum::Json(mode): axum::Json<ConsentMode>,
) -> Response {
    state.lock().consent = mode.mode;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(crate) struct Lifetime {
    seconds: u64,
    #[serde(default)]
    client: Option<String>,
}

/// `POST /_admin/token-lifetime` `{"seconds": 1, "client": "id"}`: for tokens issued from now.
pub(crate) async fn token_lifetime(
    AxumState(state): AxumState<State>,
    axum::Json(l): axum::Json<Lifetime>,
) -> Response {
    let mut inner = state.lock();
    let lifetime = Duration::from_secs(l.seconds);
    match l.client {
        Some(client) => {
            inner.client_lifetimes.insert(client, lifetime);
        }
        None => inner.token_lifetime = lifetime,
    }
    StatusCode::NO_CONTENT.into_response()
}
