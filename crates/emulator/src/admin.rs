//! The admin API under `/_admin`: counters, faults, revocation, consent mode, token lifetimes.

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
    state.lock().counters = Default::default();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

/// `POST /_admin/faults` (one fault or a list); `DELETE /_admin/faults` clears them.
pub(crate) async fn add_faults(
    AxumState(state): AxumState<State>,
    axum::Json(faults): axum::Json<OneOrMany>,
) -> Response {
    let mut inner = state.lock();
    match faults {
        OneOrMany::One(f) => inner.faults.push(f),
        OneOrMany::Many(list) => inner.faults.extend(list),
    }
    StatusCode::NO_CONTENT.into_response()
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
