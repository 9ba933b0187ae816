//! Events and webhooks in the REST API: the event log read with a cursor, the same events
//! pushed as server-sent events (what makes the dashboard live), and an organisation's webhook
//! endpoints with their delivery logs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use domain::store::{Principal, Store};
use domain::view::{CreateWebhook, DeliveryView, EventPage, WebhookView};
use domain::ApiError;
use futures::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, Auth, Body, Error, ErrorBody, Params};

/// How often a server-sent event stream looks for new events.
const SSE_POLL: Duration = Duration::from_millis(400);

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
    let hook = s.services.create_webhook(&p, &req).await?;
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

/// The caller of a route a browser opens by itself (`EventSource` sends no headers): the
/// dashboard's session cookie, else an API key as for every API route.
pub(super) struct Caller(Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(token) = app::auth::session_cookie(&parts.headers) {
            if let Some(p) = state.services.store.web_principal(&token).await? {
                return Ok(Caller(p));
            }
        }
        Auth::from_request_parts(parts, state)
            .await
            .map(|Auth(p)| Caller(p))
    }
}

#[derive(Deserialize)]
pub(super) struct StreamQuery {
    after: Option<String>,
}

/// `GET /api/v1/events/stream`: the caller's organisation's events as server-sent events
/// (`event: TYPE`, `id: SEQ`, `data: EVENT` as the events API shows it), from now on, or after
/// `?after=SEQ` / the `Last-Event-ID` a reconnecting `EventSource` sends. Not in the OpenAPI
/// document: it never ends, which request/response tools cannot take.
pub(super) async fn event_stream(
    State(s): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Error> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after);
    let after = match resume {
        Some(a) => whole(Some(&a), "after", 0, i64::MAX)?,
        None => s.services.store.last_event_seq(&p).await?,
    };
    let store = s.services.store.clone();
    Ok(Sse::new(events_after(store, p, after)).keep_alive(KeepAlive::default()))
}

fn events_after(
    store: Store,
    p: Principal,
    after: i64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(
        (store, p, after, VecDeque::new()),
        |(store, p, mut after, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    return Some((Ok(e), (store, p, after, queue)));
                }
                match store.events(&p, after, 100).await {
                    Ok(page) if !page.events.is_empty() => {
                        after = page.next;
                        for e in page.events {
                            let event = SseEvent::default()
                                .id(e.seq.to_string())
                                .event(e.kind.clone())
                                .json_data(&e)
                                .unwrap_or_default();
                            queue.push_back(event);
                        }
                    }
                    // Nothing new (or the store is busy): look again shortly.
                    _ => tokio::time::sleep(SSE_POLL).await,
                }
            }
        },
    )
}
