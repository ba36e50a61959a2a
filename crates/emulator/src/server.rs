//! The accept loop: hyper serving the axum router behind a wrapper that applies faults and
//! counts requests. A wrapper returning an error makes hyper close the connection unanswered,
//! which `axum::serve` cannot do.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::faults::{Fault, FaultKind};
use crate::state::State;

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    state: State,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let app = app.clone();
        let state = state.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let state = state.clone();
                    async move { handle(app, state, request.map(Body::new)).await }
                });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// The client a request belongs to: by bearer token, or by HTTP Basic credentials.
fn client_of(state: &State, request: &Request<Body>) -> Option<String> {
    let header = request.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = header.strip_prefix("Bearer ") {
        return state.lock().access.get(token.trim()).map(|t| t.grant.client.clone());
    }
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split(':').next()?.to_owned())
}

fn take_fault(state: &State, path: &str, client: Option<&str>) -> Option<FaultKind> {
    let mut inner = state.lock();
    let fault: &mut Fault = inner.faults.iter_mut().find(|f| f.matches(path, client))?;
    if let Some(times) = &mut fault.times {
        *times -= 1;
    }
    Some(fault.kind.clone())
}

async fn handle(
    app: Router,
    state: State,
    request: Request<Body>,
) -> Result<Response<Body>, Dropped> {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/_admin") {
        let route = format!("{} {}", request.method(), path);
        *state.lock().counters.requests.entry(route).or_default() += 1;
    }
    let fault = if path.starts_with("/_admin") {
        None
    } else {
        let client = client_of(&state, &request);
        take_fault(&state, &path, client.as_deref())
    };
    let respond = |app: Router, request| async move {
        match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    let response: Response<Body> = match fault {
        None => respond(app, request).await,
        Some(FaultKind::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            respond(app, request).await
        }
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = Response::new(Body::from(format!(
                "{{\"error\":\"injected\",\"status\":{}}}",
                status.as_u16()
            )));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Some(FaultKind::RateLimit { retry_after }) => {
            let mut response = Response::new(Body::from("{\"error\":\"rate_limited\"}"));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Ok(value) = HeaderValue::from_str(&retry_after) {
                response.headers_mut().insert(http::header::RETRY_AFTER, value);
            }
            response
        }
        Some(FaultKind::Redirect { status, location }) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(http::header::LOCATION, value);
            }
            response
        }
        Some(FaultKind::Drop) => return Err(Dropped),
        Some(FaultKind::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Err(Dropped);
        }
        Some(FaultKind::SlowDrip { ms_per_byte }) => {
            let response = respond(app, request).await;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let delay = Duration::from_millis(ms_per_byte);
            let stream = futures_util::stream::iter(bytes.into_iter().map(Ok::<_, Infallible>))
                .then(move |byte| async move {
                    tokio::time::sleep(delay).await;
                    byte.map(|b| axum::body::Bytes::copy_from_slice(&[b]))
                });
            Response::from_parts(parts, Body::from_stream(stream))
        }
        Some(FaultKind::Truncate) => {
            let response = respond(app, request).await;
            let (mut parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len().max(2)));
            let half = bytes.slice(..bytes.len() / 2);
            let stream = futures_util::stream::iter([
                Ok(half),
                Err(std::io::Error::other("truncated by fault injection")),
            ]);
            Response::from_parts(parts, Body::from_stream(stream))
        }
    };
    Ok(response)
}
