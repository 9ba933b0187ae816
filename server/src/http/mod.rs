//! Everything HTTP: the REST API, operations endpoints and the dashboard, on one axum router.

pub mod api;
pub mod assets;
mod events_api;
pub mod live;
pub mod ops;
pub mod pages;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::services::Services;
use domain::store::Principal;
use domain::ApiError;
use leptos::config::LeptosOptions;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::media::Engine;
use crate::metrics::Metrics;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Services,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub rtsp: Arc<crate::media::ingest::rtsp::Supervisor>,
}

/// Builds the whole site: API, operations, dashboard pages, server functions and static files.
pub fn router(state: AppState) -> axum::Router {
    let pages = pages::router(&state);
    axum::Router::new()
        .merge(api::router(state.metrics.clone()))
        .merge(ops::router())
        .merge(live::router())
        .merge(assets::router())
        .merge(pages)
        .with_state(state)
}

/// The HTTP face of [`ApiError`]: `{"error": {"code", "message"}}` with its status.
#[derive(Debug)]
pub struct Error(pub ApiError);

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// snake_case, stable.
    pub code: String,
    /// A human sentence.
    pub message: String,
    /// The setting a range error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: e.message,
                field: e.field,
            },
        };
        let mut res = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            res.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("60"),
            );
        }
        res
    }
}

/// The caller of an API route, from `X-API-Key` (or bintu's `X-BINTU-APIKEY`).
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let key = ["x-api-key", "x-bintu-apikey"]
            .iter()
            .find_map(|h| parts.headers.get(*h))
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let ip = client_ip(parts);
        let failures = &state.services.auth_failures;
        failures.check(ip)?;
        // Keys are looked up by their SHA-256, so lookup time says nothing about the key.
        let found = if key.len() <= 256 {
            state.services.store.authenticate(key).await?
        } else {
            None
        };
        match found {
            Some(p) => Ok(Auth(p)),
            None => {
                state.metrics.auth_failure();
                failures.failed(ip);
                Err(ApiError::unauthorized().into())
            }
        }
    }
}

/// The peer's address, when the router runs behind a listener.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// A JSON body whose problems answer as API errors. An empty body is `{}`, because every field of
/// a create request is optional.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status().as_u16(), "invalid_body", r.body_text()))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(Body).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("the JSON body is not valid: {e}")).into()
        })
    }
}

/// Query parameters whose problems answer as API errors.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()).into())
    }
}
