//! The REST API (`/api/v1`), shaped like nanoStream's bintu API. Routes and the OpenAPI document
//! come from the same annotations (utoipa-axum), so they cannot drift apart.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Json;
use domain::store::{ListFilter, ListKind, Role, DEFAULT_ASSET_LIMIT, PAGE_DEFAULT, PAGE_MAX};
use domain::view::{
    ClipList, ClipRequest, ClipView, CreateStream, OrganisationView, PageView, StreamView,
    Transcoding,
};
use domain::{ApiError, ProcessingPatch};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{events_api, AppState, Auth, Body, Error, ErrorBody, Params};
use crate::metrics::Metrics;

/// Request bodies are small JSON documents; anything larger is refused before parsing.
const BODY_LIMIT: usize = 64 * 1024;
const ASSET_LIMIT_MAX: i64 = 100;

#[derive(OpenApi)]
#[openapi(
    info(title = "liveproc API", description = "Streams, live processing, organisations and keys."),
    modifiers(&ApiKeyScheme),
    security(("api_key" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The API routes with the OpenAPI document they describe.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_stream))
        .routes(routes!(get_stream, delete_stream))
        .routes(routes!(list_streams))
        .routes(routes!(get_group))
        .routes(routes!(list_page))
        .routes(routes!(update_processing))
        .routes(routes!(update_group_processing))
        .routes(routes!(update_group_transcoding))
        .routes(routes!(get_organisation))
        .routes(routes!(set_retention))
        .routes(routes!(set_asset_access))
        .routes(routes!(create_organisation))
        .routes(routes!(set_packages))
        .routes(routes!(create_key))
        .routes(routes!(create_clip))
        .routes(routes!(list_clips))
        .routes(routes!(get_clip, delete_clip))
        .routes(routes!(events_api::list_events))
        .routes(routes!(
            events_api::create_webhook,
            events_api::list_webhooks
        ))
        .routes(routes!(events_api::delete_webhook))
        .routes(routes!(events_api::list_deliveries))
        .routes(routes!(events_api::test_webhook))
        .routes(routes!(events_api::resend_delivery))
        .split_for_parts()
}

pub fn router(metrics: Arc<Metrics>) -> axum::Router<AppState> {
    let (routes, doc) = api();
    let doc = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    routes
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { Json(doc) }),
        )
        .route(
            "/api/v1/events/stream",
            axum::routing::get(events_api::event_stream),
        )
        .route("/api/v1", axum::routing::any(not_found))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(metrics, count))
}

async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    metrics.api_request(res.status().as_u16());
    res
}

async fn not_found() -> Error {
    ApiError::new(404, "not_found", "no such API route").into()
}

async fn method_not_allowed() -> Error {
    ApiError::new(
        405,
        "method_not_allowed",
        "this API route does not take that method",
    )
    .into()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AssetLimit {
    /// At most this many assets of each kind (default 10, at most 100).
    asset_limit: Option<String>,
}

fn asset_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_ASSET_LIMIT),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=ASSET_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_asset_limit",
                    format!(
                        "asset_limit must be an integer from 0 to {ASSET_LIMIT_MAX} (got {s:?})"
                    ),
                )
            }),
    }
}

/// Create a stream group; answers its passthrough stream.
#[utoipa::path(post, path = "/api/v1/stream", tag = "streams",
    request_body = CreateStream,
    responses(
        (status = 201, body = StreamView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_stream(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<CreateStream>,
) -> Result<(StatusCode, Json<StreamView>), Error> {
    let v = s.services.create_stream(&p, &req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// A stream with its ingest, processing settings and playouts (live, VOD, replay, thumbnails,
/// motion clips).
#[utoipa::path(get, path = "/api/v1/stream/{id}", tag = "streams",
    params(("id" = String, Path), AssetLimit),
    responses((status = 200, body = StreamView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_stream(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Params(q): Params<AssetLimit>,
) -> Result<Json<StreamView>, Error> {
    let limit = asset_limit(q.asset_limit.as_deref())?;
    Ok(Json(s.services.stream(&p, &id, limit).await?))
}

/// Delete a stream and its assets. Deleting the passthrough stream deletes the whole group.
#[utoipa::path(delete, path = "/api/v1/stream/{id}", tag = "streams",
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_stream(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    s.services.delete_stream(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// "live" or "idle".
    state: Option<String>,
    /// Only streams with this tag.
    tag: Option<String>,
    /// At most this many assets of each kind per stream (default 10).
    asset_limit: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next` of the previous page; none for the first.
    cursor: Option<String>,
    /// Items per page, 1–200 (default 50).
    limit: Option<String>,
}

/// Every recording, session, thumbnail, motion clip or clip of a stream, newest first, a page
/// at a time (the stream object holds only the newest `asset_limit`).
#[utoipa::path(get, path = "/api/v1/stream/{id}/{kind}", tag = "streams",
    params(("id" = String, Path),
        ("kind" = String, Path, description = "recordings, replays, sessions, thumbnails, motionclips or clips"),
        PageQuery),
    responses((status = 200, body = PageView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_page(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path((id, kind)): Path<(String, String)>,
    Params(q): Params<PageQuery>,
) -> Result<Json<PageView>, Error> {
    let kind = ListKind::parse(&kind).ok_or_else(|| ApiError::not_found("list"))?;
    let limit = match q.limit.as_deref() {
        None => PAGE_DEFAULT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {PAGE_MAX}"),
                )
            })?,
    };
    let page = s
        .services
        .page(&p, &id, kind, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(page))
}

/// A stream group: its passthrough stream first, then its transcoding profiles' streams.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StreamGroup {
    pub id: String,
    pub streams: Vec<StreamView>,
}

/// A stream group with its streams (passthrough and profiles), each with its ingest,
/// processing and playouts. `id` may also be any stream of the group.
#[utoipa::path(get, path = "/api/v1/streamgroup/{id}", tag = "streams",
    params(("id" = String, Path), AssetLimit),
    responses((status = 200, body = StreamGroup), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_group(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Params(q): Params<AssetLimit>,
) -> Result<Json<StreamGroup>, Error> {
    let limit = asset_limit(q.asset_limit.as_deref())?;
    let streams = s.services.group(&p, &id, limit).await?;
    let id = streams
        .first()
        .map_or(id, |passthrough| passthrough.streamgroup.clone());
    Ok(Json(StreamGroup { id, streams }))
}

/// The organisation's streams, newest group first.
#[utoipa::path(get, path = "/api/v1/streams", tag = "streams",
    params(ListQuery),
    responses((status = 200, body = StreamList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_streams(
    State(s): State<AppState>,
    Auth(p): Auth,
    Params(q): Params<ListQuery>,
) -> Result<Json<StreamList>, Error> {
    let limit = asset_limit(q.asset_limit.as_deref())?;
    let filter = ListFilter {
        state: q.state,
        tag: q.tag,
    };
    let streams = s.services.streams(&p, &filter, limit).await?;
    Ok(Json(StreamList { streams }))
}

/// Change a stream's processing; processes and fields left out keep their settings. A live
/// stream gets the new settings at its next ingest (`processing.pending` until then).
#[utoipa::path(put, path = "/api/v1/stream/{id}/processing", tag = "processing",
    params(("id" = String, Path)),
    request_body = ProcessingPatch,
    responses((status = 200, body = StreamView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn update_processing(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(patch): Body<ProcessingPatch>,
) -> Result<Json<StreamView>, Error> {
    let v = s.services.update_processing(&p, &id, &patch).await?;
    Ok(Json(v))
}

/// "Sync settings across profiles": the same settings on every stream of the group.
#[utoipa::path(put, path = "/api/v1/streamgroup/{id}/processing", tag = "processing",
    params(("id" = String, Path)),
    request_body = ProcessingPatch,
    responses((status = 200, body = StreamList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn update_group_processing(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(patch): Body<ProcessingPatch>,
) -> Result<Json<StreamList>, Error> {
    let streams = s.services.update_group_processing(&p, &id, &patch).await?;
    Ok(Json(StreamList { streams }))
}

/// Sets the group's transcoding profiles (the passthrough stream always stays). New profiles
/// start with the passthrough stream's settings; dropped ones are deleted with their assets.
/// A live group takes the new ladder at its next ingest.
#[utoipa::path(put, path = "/api/v1/streamgroup/{id}/transcoding", tag = "streams",
    params(("id" = String, Path)),
    request_body = Transcoding,
    responses((status = 200, body = StreamList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn update_group_transcoding(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(t): Body<Transcoding>,
) -> Result<Json<StreamList>, Error> {
    let streams = s.services.set_group_profiles(&p, &id, &t.profiles).await?;
    Ok(Json(StreamList { streams }))
}

/// The caller's organisation and its packages.
#[utoipa::path(get, path = "/api/v1/organisation", tag = "organisations",
    responses((status = 200, body = OrganisationView), (status = 401, body = ErrorBody)))]
async fn get_organisation(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<OrganisationView>, Error> {
    Ok(Json(
        s.services.store.organisation(&p.organisation_id).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetentionUpdate {
    /// Days to keep recordings (1–36500), or null to keep them.
    recording_days: Option<i64>,
    /// Thumbnails and motion clips kept per session (1–10000); left out = unchanged.
    #[serde(default)]
    history_per_session: Option<i64>,
}

/// Admin: how long the organisation keeps recordings (a sweep deletes older ones every hour) and
/// how many thumbnails and motion clips it keeps per session.
#[utoipa::path(put, path = "/api/v1/organisation/retention", tag = "organisations",
    request_body = RetentionUpdate,
    responses((status = 200, body = OrganisationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn set_retention(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<RetentionUpdate>,
) -> Result<Json<OrganisationView>, Error> {
    Ok(Json(
        s.services
            .store
            .set_retention(&p, req.recording_days, req.history_per_session)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AssetAccessUpdate {
    /// true: asset URLs are signed and expire (a new key each time this is set, so URLs handed
    /// out before stop working); false: asset URLs are public.
    signed_urls: bool,
    /// How long a signed URL stays valid (60–604800 s, default 21600); left out = unchanged.
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

/// Admin: whether the organisation's asset files (recordings, replays, thumbnails, motion clips)
/// need signed, expiring URLs. Public clips' share links keep working either way.
#[utoipa::path(put, path = "/api/v1/organisation/asset-access", tag = "organisations",
    request_body = AssetAccessUpdate,
    responses((status = 200, body = OrganisationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn set_asset_access(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<AssetAccessUpdate>,
) -> Result<Json<OrganisationView>, Error> {
    Ok(Json(
        s.services
            .store
            .set_asset_access(&p, req.signed_urls, req.ttl_seconds)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrganisation {
    name: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrganisation {
    pub id: String,
    pub name: String,
    /// The organisation's first admin key; shown only in this answer.
    pub api_key: String,
}

/// Operator only: create an organisation (live processing "upgrade_needed") and its first key.
#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations",
    request_body = NewOrganisation,
    responses((status = 201, body = CreatedOrganisation), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_organisation(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<NewOrganisation>,
) -> Result<(StatusCode, Json<CreatedOrganisation>), Error> {
    p.require_operator()?;
    let (org, key) = s.services.store.create_organisation(&req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrganisation {
            id: org.id,
            name: org.name,
            api_key: key,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PackagesUpdate {
    live_processing: bool,
}

/// Operator only: switch an organisation's live-processing package.
#[utoipa::path(put, path = "/api/v1/organisations/{id}/packages", tag = "organisations",
    params(("id" = String, Path)),
    request_body = PackagesUpdate,
    responses((status = 200, body = OrganisationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn set_packages(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Body(req): Body<PackagesUpdate>,
) -> Result<Json<OrganisationView>, Error> {
    p.require_operator()?;
    Ok(Json(
        s.services
            .store
            .set_live_processing(&id, req.live_processing)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// "admin", "editor" or "viewer".
    role: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    /// Shown only in this answer.
    pub api_key: String,
    pub role: String,
}

/// Admin only: a new key of the caller's organisation.
#[utoipa::path(post, path = "/api/v1/keys", tag = "organisations",
    request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(req): Body<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), Error> {
    p.require_admin()?;
    let role: Role = req.role.parse()?;
    let key = s
        .services
        .store
        .create_key(&p.organisation_id, role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            api_key: key,
            role: role.as_str().into(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_limit_parses_and_bounds() {
        assert_eq!(asset_limit(None).unwrap(), 10);
        assert_eq!(asset_limit(Some("0")).unwrap(), 0);
        assert_eq!(asset_limit(Some("100")).unwrap(), 100);
        assert_eq!(
            asset_limit(Some("101")).unwrap_err().code,
            "invalid_asset_limit"
        );
        assert!(asset_limit(Some("x")).is_err());
    }
}

/// Cut a clip from a session's replay, without re-encoding: an MP4 (moov first) that starts at
/// the in-point through an edit list. `start`/`end` are seconds from the session's start.
#[utoipa::path(post, path = "/api/v1/replay/{session}/clip", tag = "clips",
    params(("session" = String, Path)),
    request_body = ClipRequest,
    responses((status = 201, body = ClipView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_clip(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(session): Path<String>,
    Body(req): Body<ClipRequest>,
) -> Result<(StatusCode, Json<ClipView>), Error> {
    let clip = s.services.create_clip(&p, &session, &req).await?;
    s.metrics.clip_cut();
    Ok((StatusCode::CREATED, Json(clip)))
}

/// A session's clips, newest first.
#[utoipa::path(get, path = "/api/v1/replay/{session}/clips", tag = "clips",
    params(("session" = String, Path)),
    responses((status = 200, body = ClipList), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_clips(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(session): Path<String>,
) -> Result<Json<ClipList>, Error> {
    let clips = s
        .services
        .store
        .clips(&p, &session, &s.services.urls)
        .await?;
    Ok(Json(ClipList { clips }))
}

#[utoipa::path(get, path = "/api/v1/clip/{id}", tag = "clips",
    params(("id" = String, Path)),
    responses((status = 200, body = ClipView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_clip(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ClipView>, Error> {
    Ok(Json(
        s.services.store.clip(&p, &id, &s.services.urls).await?,
    ))
}

/// Delete a clip and its files; its share link stops working.
#[utoipa::path(delete, path = "/api/v1/clip/{id}", tag = "clips",
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_clip(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    s.services.delete_clip(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
