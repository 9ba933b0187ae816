//! Events and webhooks in the REST API: the event log read with a cursor, and an
//! organisation's webhook endpoints with their delivery logs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use domain::view::{CreateWebhook, DeliveryView, EventPage, WebhookView};
use domain::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Auth, Body, Error, ErrorBody, Params};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventQuery {
    /// The `next` (a `seq`) of the previous page; 0 or none for the oldest.
    after: Option<String>,
    /// Events per page, 1–1000 (default 100).
    limit: Option<String>,
}

fn whole(raw: Option<&str>, name: &str, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    &format!("invalid_{name}"),
                    format!("{name} must be a whole number from 0 to {max}"),
                )
            }),
    }
}

/// The organisation's events after a cursor, oldest first: what webhooks deliver, for a client
/// that was away. Keep `next` and ask again.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn list_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Params(q): Params<EventQuery>,
) -> Result<Json<EventPage>, Error> {
    let after = whole(q.after.as_deref(), "after", 0, i64::MAX)?;
    let limit = whole(q.limit.as_deref(), "limit", 100, 1000)?.max(1);
    Ok(Json(s.services.store.events(&p, after, limit).await?))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(super) struct WebhookList {
    webhooks: Vec<WebhookView>,
}

/// Add a webhook endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "events", request_body = CreateWebhook,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn create_webhook(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), Error> {
    p.require_edit()?;
    crate::webhooks::check_url(&req.url, s.webhooks).await?;
    let hook = s.services.store.create_webhook(&p, &req).await?;
    Ok((StatusCode::CREATED, Json(hook)))
}

/// The organisation's webhook endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "events",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody)))]
pub(super) async fn list_webhooks(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<WebhookList>, Error> {
    Ok(Json(WebhookList {
        webhooks: s.services.store.webhooks(&p).await?,
    }))
}

/// Remove an endpoint; its pending deliveries go with it.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "events",
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn delete_webhook(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    s.services.store.delete_webhook(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(super) struct DeliveryList {
    deliveries: Vec<DeliveryView>,
}

/// An endpoint's delivery log, newest first: state, attempts, the last answer.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "events",
    params(("id" = String, Path)),
    responses((status = 200, body = DeliveryList), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn list_deliveries(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, Error> {
    Ok(Json(DeliveryList {
        deliveries: s.services.store.deliveries(&p, &id, 100).await?,
    }))
}

/// Send a `webhook.test` event to this endpoint.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "events",
    params(("id" = String, Path)),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn test_webhook(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    s.services.store.send_test(&p, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Send one delivery again (delivered, pending or failed).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/resend", tag = "events",
    params(("id" = String, Path), ("delivery" = String, Path)),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn resend_delivery(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    s.services.store.resend(&p, &id, &delivery).await?;
    Ok(StatusCode::ACCEPTED)
}
