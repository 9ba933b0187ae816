//! Server functions: the dashboard's data, from the same store as the REST API.

use domain::view::{ClipRequest, ClipView, CreateStream, Me, ReplayEntry, SharedClip, StreamView};
use domain::{ApiError, Processing};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{principal, services};

/// Signs in with an API key: sets the session cookie and goes to `next`.
#[server]
pub async fn login(api_key: String, next: Option<String>) -> Result<(), ApiError> {
    use crate::auth::{safe_next, SESSION_COOKIE};
    let s = services()?;
    let ip = leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .await
        .ok()
        .map(|c| c.0.ip());
    s.auth_failures.check(ip)?;
    let Some(token) = s.store.sign_in(api_key.trim()).await? else {
        s.auth_failures.failed(ip);
        return Err(ApiError::new(
            401,
            "unauthorized",
            "that API key is not valid",
        ));
    };
    let secure = if s.urls.public.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=604800{secure}");
    let response = expect_context::<leptos_axum::ResponseOptions>();
    response.append_header(
        http::header::SET_COOKIE,
        http::HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?,
    );
    leptos_axum::redirect(&safe_next(next.as_deref()));
    Ok(())
}

#[server]
pub async fn logout() -> Result<(), ApiError> {
    use crate::auth::{session_cookie, SESSION_COOKIE};
    let s = services()?;
    let headers: http::HeaderMap = leptos_axum::extract()
        .await
        .map_err(|_| ApiError::internal())?;
    if let Some(token) = session_cookie(&headers) {
        s.store.sign_out(&token).await?;
    }
    let response = expect_context::<leptos_axum::ResponseOptions>();
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    response.append_header(
        http::header::SET_COOKIE,
        http::HeaderValue::from_str(&expired).map_err(|_| ApiError::internal())?,
    );
    leptos_axum::redirect("/login");
    Ok(())
}

#[server]
pub async fn whoami() -> Result<Me, ApiError> {
    let (s, p) = principal().await?;
    s.store.me(&p).await
}

/// Every stream group of the organisation, each as its streams (passthrough first).
#[server]
pub async fn list_groups() -> Result<Vec<Vec<StreamView>>, ApiError> {
    let (s, p) = principal().await?;
    let streams = s.streams(&p, &Default::default(), 1).await?;
    let mut groups: Vec<Vec<StreamView>> = Vec::new();
    for v in streams {
        match groups.last_mut() {
            Some(g) if g[0].streamgroup == v.streamgroup => g.push(v),
            _ => groups.push(vec![v]),
        }
    }
    Ok(groups)
}

/// The group of stream `id`, with recent assets of each of its streams.
#[server]
pub async fn stream_group(id: String) -> Result<Vec<StreamView>, ApiError> {
    let (s, p) = principal().await?;
    s.group(&p, &id, 10).await
}

/// What "Load more" adds to one of the stream page's lists: a page of it, newest first, and
/// where the next page starts (`None` at the end). The first page is asked for without a
/// cursor and replaces the few entries the stream object carried.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct More<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// How many entries "Load more" adds at a time.
pub const MORE: i64 = 50;

#[cfg(feature = "ssr")]
async fn page_of<T>(
    id: &str,
    list: &str,
    cursor: Option<String>,
    pick: impl Fn(domain::view::PageItem) -> Option<T>,
) -> Result<More<T>, ApiError> {
    let (s, p) = principal().await?;
    let kind = domain::store::ListKind::parse(list).ok_or_else(|| ApiError::not_found("list"))?;
    let page = s.page(&p, id, kind, cursor.as_deref(), MORE).await?;
    Ok(More {
        items: page.items.into_iter().filter_map(pick).collect(),
        next: page.next,
    })
}

/// A page of stream `id`'s recordings.
#[server]
pub async fn more_recordings(
    id: String,
    cursor: Option<String>,
) -> Result<More<domain::view::VodEntry>, ApiError> {
    use domain::view::PageItem;
    page_of(&id, "recordings", cursor, |i| match i {
        PageItem::Recording(v) => Some(v),
        _ => None,
    })
    .await
}

/// A page of stream `id`'s replay sessions.
#[server]
pub async fn more_replays(
    id: String,
    cursor: Option<String>,
) -> Result<More<ReplayEntry>, ApiError> {
    use domain::view::PageItem;
    page_of(&id, "replays", cursor, |i| match i {
        PageItem::Replay(r) => Some(r),
        _ => None,
    })
    .await
}

/// A page of stream `id`'s thumbnails or motion clips (`list`): (created at, URL).
#[server]
pub async fn more_history(
    id: String,
    list: String,
    cursor: Option<String>,
) -> Result<More<(String, String)>, ApiError> {
    use domain::view::PageItem;
    if list != "thumbnails" && list != "motionclips" {
        return Err(ApiError::not_found("list"));
    }
    page_of(&id, &list, cursor, |i| match i {
        PageItem::Thumbnail(t) => Some((t.created_at, t.url)),
        PageItem::MotionClip(c) => Some((c.created_at, c.url)),
        _ => None,
    })
    .await
}

/// Creates a stream group; answers the passthrough stream's id.
#[server(input = Json)]
pub async fn create_stream_group(req: CreateStream) -> Result<String, ApiError> {
    let (s, p) = principal().await?;
    Ok(s.create_stream(&p, &req).await?.id)
}

/// Saves the settings of several streams of a group at once (the Edit dialog's Confirm).
#[server(input = Json)]
pub async fn save_processing(
    edits: Vec<(String, Processing)>,
) -> Result<Vec<StreamView>, ApiError> {
    let (s, p) = principal().await?;
    s.save_group_settings(&p, edits).await
}

/// Sets the transcoding profiles of stream `id`'s group (the Transcoding dialog's Confirm):
/// new profiles start with the passthrough stream's settings, dropped ones go with their assets.
#[server(input = Json)]
pub async fn save_profiles(id: String, profiles: Vec<String>) -> Result<Vec<StreamView>, ApiError> {
    let (s, p) = principal().await?;
    s.set_group_profiles(&p, &id, &profiles).await
}

/// A session's replay and its stream, for the rewatch page.
#[server]
pub async fn replay_session(session: String) -> Result<(StreamView, ReplayEntry), ApiError> {
    let (s, p) = principal().await?;
    s.store.replay(&p, &session, &s.urls).await
}

/// Cuts a clip from a session's replay (the rewatch page's "Create clip").
#[server(input = Json)]
pub async fn create_clip(session: String, req: ClipRequest) -> Result<ClipView, ApiError> {
    let (s, p) = principal().await?;
    s.create_clip(&p, &session, &req).await
}

/// A session's clips, newest first.
#[server]
pub async fn session_clips(session: String) -> Result<Vec<ClipView>, ApiError> {
    let (s, p) = principal().await?;
    s.store.clips(&p, &session, &s.urls).await
}

#[server]
pub async fn delete_clip(id: String) -> Result<(), ApiError> {
    let (s, p) = principal().await?;
    s.delete_clip(&p, &id).await
}

/// A stream for its public watch and embed pages: needs no sign-in; a signing organisation's
/// pages need their link's `expires` and `sig`.
#[server]
pub async fn stream_to_watch(
    id: String,
    expires: Option<i64>,
    sig: Option<String>,
) -> Result<domain::view::PublicStream, ApiError> {
    let s = services()?;
    let signature = expires.zip(sig.as_deref());
    s.store.public_stream(&id, signature, &s.urls).await
}

/// A session's replay for its public watch and embed pages, as [`stream_to_watch`].
#[server]
pub async fn replay_to_watch(
    session: String,
    expires: Option<i64>,
    sig: Option<String>,
) -> Result<domain::view::PublicReplay, ApiError> {
    let s = services()?;
    let signature = expires.zip(sig.as_deref());
    s.store.public_replay(&session, signature, &s.urls).await
}

/// A clip for its public share page: needs no sign-in.
#[server]
pub async fn clip_to_share(id: String) -> Result<SharedClip, ApiError> {
    let s = services()?;
    s.store.shared_clip(&id, &s.urls).await
}

/// Admin: days to keep recordings; an empty field keeps them for ever.
#[server]
pub async fn set_recording_retention(
    days: String,
) -> Result<domain::view::OrganisationView, ApiError> {
    let (s, p) = principal().await?;
    let days = optional_whole(&days, "recordingDays", "days")?;
    s.store.set_retention(&p, days, None).await
}

/// Admin: whether asset URLs must be signed (the form's checkbox is absent when unticked), and
/// for how many seconds a signed URL stays valid (empty keeps the current figure).
#[server]
pub async fn set_asset_access(
    signed: Option<String>,
    ttl_seconds: String,
) -> Result<domain::view::OrganisationView, ApiError> {
    let (s, p) = principal().await?;
    let ttl = optional_whole(&ttl_seconds, "ttlSeconds", "seconds")?;
    s.store.set_asset_access(&p, signed.is_some(), ttl).await
}

/// A form's number field: empty is `None`, anything but a whole number is an error on `field`.
#[cfg(feature = "ssr")]
fn optional_whole(value: &str, field: &str, unit: &str) -> Result<Option<i64>, ApiError> {
    match value.trim() {
        "" => Ok(None),
        v => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::from(domain::FieldError {
                field: field.into(),
                message: format!("{field} must be a whole number of {unit} (got {v:?})"),
            })
        }),
    }
}

/// A session's thumbnails for the replay timeline: (session seconds, preview URL).
#[server]
pub async fn session_thumbnails(session: String) -> Result<Vec<(f64, String)>, ApiError> {
    let (s, p) = principal().await?;
    s.store.session_thumbnails(&p, &session, &s.urls).await
}

/// The organisation's webhook endpoints, each with its newest deliveries.
#[server]
pub async fn webhooks_with_log(
) -> Result<Vec<(domain::view::WebhookView, Vec<domain::view::DeliveryView>)>, ApiError> {
    let (s, p) = principal().await?;
    let mut out = Vec::new();
    for hook in s.store.webhooks(&p).await? {
        let log = s.store.deliveries(&p, &hook.id, 20).await?;
        out.push((hook, log));
    }
    Ok(out)
}

/// Adds an endpoint (the form's event types: comma-separated, empty or "*" for all); answers
/// it with its signing secret, shown this once.
#[server]
pub async fn add_webhook(
    url: String,
    secret: String,
    events: String,
) -> Result<domain::view::WebhookView, ApiError> {
    let (s, p) = principal().await?;
    let req = domain::view::CreateWebhook {
        url: url.trim().to_string(),
        secret: Some(secret.trim().to_string()).filter(|s| !s.is_empty()),
        events: events
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
    };
    s.create_webhook(&p, &req).await
}

#[server]
pub async fn remove_webhook(id: String) -> Result<(), ApiError> {
    let (s, p) = principal().await?;
    s.store.delete_webhook(&p, &id).await
}

#[server]
pub async fn send_test_event(id: String) -> Result<(), ApiError> {
    let (s, p) = principal().await?;
    s.store.send_test(&p, &id).await
}

#[server]
pub async fn resend_delivery(hook: String, delivery: String) -> Result<(), ApiError> {
    let (s, p) = principal().await?;
    s.store.resend(&p, &hook, &delivery).await
}
