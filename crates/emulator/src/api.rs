//! The API resources from the vendor docs, with their documented errors.

use std::collections::HashMap;

use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::{Item, State, now};

/// ISO 639-1 two-letter language codes.
const ISO_639_1: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy \
da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io \
is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na \
nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss \
st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu";

const REALM: &str = "Bearer realm=\"helloflex\"";

fn unauthorized(cause: &str, description: Option<&str>) -> Response {
    let challenge = match description {
        None => REALM.to_owned(),
        Some(d) => format!("{REALM}, error=\"invalid_token\", error_description=\"{d}\""),
    };
    let body = json!({ "error": "unauthorized", "cause": cause, "message": description.unwrap_or("Missing Authorization header") });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Checks the bearer token, its scope and content negotiation, in that order. Returns the client.
fn guard(
    state: &State,
    headers: &HeaderMap,
    scope: &str,
    body: Option<&[u8]>,
) -> Result<String, Response> {
    let Some(header) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("missing_authorization_header", None));
    };
    let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).unwrap_or_default();
    let well_formed = token.starts_with("hfx_at_")
        && token.len() == 55
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(unauthorized("malformed_token", Some("The access token is malformed")));
    }
    let mut inner = state.lock();
    let refusal = match inner.access.get(token) {
        None => Some(("revoked_token", "The access token is unknown or was revoked")),
        Some(info) if info.revoked => Some(("revoked_token", "The access token was revoked")),
        Some(info) if now() >= info.expires_at => {
            Some(("expired_token", "The access token expired"))
        }
        Some(_) => None,
    };
    if let Some((cause, description)) = refusal {
        *inner.counters.rejected_tokens.entry(cause.into()).or_default() += 1;
        return Err(unauthorized(cause, Some(description)));
    }
    // Found above; looked up again because counting the refusal needed the lock mutably.
    let Some(info) = inner.access.get(token) else {
        return Err(unauthorized("revoked_token", Some("The access token is unknown")));
    };
    if !info.grant.scopes.iter().any(|s| s == scope) {
        let challenge = format!("{REALM}, error=\"insufficient_scope\", scope=\"{scope}\"");
        let mut response = error(StatusCode::FORBIDDEN, "insufficient_scope");
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        return Err(response);
    }
    let client = info.grant.client.clone();
    drop(inner);
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        let ok =
            accept.split(',').map(|m| m.split(';').next().unwrap_or_default().trim()).any(|m| {
                m.eq_ignore_ascii_case("application/json")
                    || m == "*/*"
                    || m.eq_ignore_ascii_case("application/*")
            });
        if !ok {
            return Err(error(
                StatusCode::NOT_ACCEPTABLE,
                "the response is only available as application/json",
            ));
        }
    }
    if body.is_some_and(|b| !b.is_empty()) {
        let json =
            headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be application/json",
            ));
        }
    }
    Ok(client)
}

macro_rules! guard {
    ($state:expr, $headers:expr, $scope:expr) => {
        guard!($state, $headers, $scope, None)
    };
    ($state:expr, $headers:expr, $scope:expr, $body:expr) => {
        match guard(&$state, &$headers, $scope, $body) {
            Ok(client) => client,
            Err(response) => return response,
        }
    };
}

/// `GET /news`: public news.
pub(crate) async fn news(AxumState(state): AxumState<State>, headers: HeaderMap) -> Response {
    guard!(state, headers, "news.read");
    axum::Json(json!([
        { "id": 1, "title": "HelloFlex sandbox is up", "published": "2026-11-01" },
        { "id": 2, "title": "New domain values for language codes", "published": "2026-11-15" },
    ]))
    .into_response()
}

/// `GET /customers/{id}/news`
pub(crate) async fn customer_news(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guard!(state, headers, "news.read");
    match id.parse::<u32>() {
        Ok(n @ 1..=3) => axum::Json(
            json!([{ "id": 100 + n, "customerId": n, "title": format!("News for customer {n}") }]),
        )
        .into_response(),
        _ => error(StatusCode::NOT_FOUND, "customer not found"),
    }
}

/// `GET /domainTypes/{id}/domainValues?Lang=xx`: validates like the documented sample.
pub(crate) async fn domain_values(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    guard!(state, headers, "domain.read");
    let mut errors = serde_json::Map::new();
    let parsed = id.parse::<i64>().ok().filter(|n| *n > 0);
    if parsed.is_none() {
        errors.insert("Id".into(), json!([format!("Value {id} is invalid.")]));
    }
    let lang = query.get("Lang").or_else(|| query.get("lang")).map(String::as_str).unwrap_or("en");
    if !ISO_639_1.split(' ').any(|code| code == lang) {
        errors.insert("Lang".into(), json!(["Should be valid ISO 639-1 language code."]));
    }
    if !errors.is_empty() {
        return (StatusCode::BAD_REQUEST, axum::Json(Value::Object(errors))).into_response();
    }
    let id = parsed.unwrap_or_default();
    if id > 100 {
        return error(StatusCode::NOT_FOUND, "domain type not found");
    }
    axum::Json(json!([
        { "domainTypeId": id, "value": "A", "label": format!("Alpha ({lang})") },
        { "domainTypeId": id, "value": "B", "label": format!("Bravo ({lang})") },
    ]))
    .into_response()
}

fn validate_item(body: &[u8]) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "Body": ["The body is not valid JSON."] })))
            .into_response()
    })?;
    let name_ok = value.get("name").and_then(Value::as_str).is_some_and(|n| !n.trim().is_empty());
    if !name_ok {
        return Err((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "Name": ["The Name field is required."] })),
        )
            .into_response());
    }
    Ok(value)
}

fn item_json(item: &Item) -> Value {
    let mut value = item.body.clone();
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), json!(item.id));
    }
    value
}

/// Item `id` after `change` (none for a read), answered as JSON; 404 when there is none.
fn with_item(state: &State, id: u64, change: impl FnOnce(&mut Item)) -> Response {
    match state.lock().items.get_mut(&id) {
        Some(item) => {
            change(item);
            axum::Json(item_json(item)).into_response()
        }
        None => item_not_found(),
    }
}

fn item_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "item not found")
}

/// `POST /items`: 201 the first time, 200 with the same item when the same request is repeated.
pub(crate) async fn create_item(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guard!(state, headers, "items.write", Some(&body));
    let value = match validate_item(&body) {
        Ok(v) => v,
        Err(response) => return response,
    };
    let key = value.to_string();
    let mut inner = state.lock();
    if let Some(item) = inner.item_bodies.get(&key).and_then(|id| inner.items.get(id)) {
        return (StatusCode::OK, axum::Json(item_json(item))).into_response();
    }
    let id = inner.next_item;
    inner.next_item += 1;
    let item = Item { id, body: value };
    let json = item_json(&item);
    inner.items.insert(id, item);
    inner.item_bodies.insert(key, id);
    let mut response = (StatusCode::CREATED, axum::Json(json)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/items/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /items`
pub(crate) async fn list_items(AxumState(state): AxumState<State>, headers: HeaderMap) -> Response {
    guard!(state, headers, "items.read");
    let inner = state.lock();
    axum::Json(Value::Array(inner.items.values().map(item_json).collect())).into_response()
}

/// `GET /items/{id}`
pub(crate) async fn get_item(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    guard!(state, headers, "items.read");
    with_item(&state, id, |_| {})
}

/// `PUT /items/{id}` replaces the item's body (checked as a new item's is); `PATCH` merges the
/// fields of a JSON object into it.
pub(crate) async fn write_item(
    method: axum::http::Method,
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Response {
    guard!(state, headers, "items.write", Some(&body));
    if method == axum::http::Method::PATCH {
        let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "Body": ["The body must be a JSON object."] })),
            )
                .into_response();
        };
        return with_item(&state, id, |item| {
            if let Some(map) = item.body.as_object_mut() {
                map.extend(patch);
            }
        });
    }
    let value = match validate_item(&body) {
        Ok(v) => v,
        Err(response) => return response,
    };
    with_item(&state, id, |item| item.body = value)
}

/// `DELETE /items/{id}`: 204.
pub(crate) async fn delete_item(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    guard!(state, headers, "items.write");
    let mut inner = state.lock();
    match inner.items.remove(&id) {
        Some(item) => {
            inner.item_bodies.retain(|_, v| *v != item.id);
            StatusCode::NO_CONTENT.into_response()
        }
        None => item_not_found(),
    }
}

/// `GET /boom`: a 500, as a server fault would give.
pub(crate) async fn boom(AxumState(state): AxumState<State>, headers: HeaderMap) -> Response {
    guard!(state, headers, "news.read");
    error(StatusCode::INTERNAL_SERVER_ERROR, "an unexpected error occurred")
}

/// Anything else: 404.
pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such resource")
}
