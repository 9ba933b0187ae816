//! Asset files (recordings, thumbnails, motion clips, clips) from `DATA/assets`, with `Range`
//! (206) and an `ETag` so players can seek and browsers can revalidate. `STREAM/thumbnail/latest.jpg`
//! (and `latest.320.jpg`) and `STREAM/motionclip/latest.gif` (and `latest.mp4`) are stable URLs of
//! the newest one; `Cache-Control: no-cache` makes browsers revalidate them on every use.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::ApiError;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::{AppState, Error};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/assets/{*path}", get(asset))
}

/// The file a stable `latest` URL stands for now, if `path` is one.
async fn latest(s: &AppState, path: &str) -> Option<Result<Option<String>, ApiError>> {
    let mut parts = path.split('/');
    let (stream, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let suffix = match (kind, name) {
        ("thumbnail", "latest.jpg") => ".jpg",
        ("thumbnail", "latest.320.jpg") => ".320.jpg",
        ("motionclip", "latest.gif") => ".gif",
        ("motionclip", "latest.mp4") => ".mp4",
        _ => return None,
    };
    Some(
        s.services
            .store
            .latest_asset(stream, kind)
            .await
            .map(|p| p.map(|p| domain::store::sibling(&p, suffix))),
    )
}

/// Whether the request may have `path`: always, unless the owning organisation signs its asset
/// URLs; then only with a valid, unexpired signature, or for a public clip's files.
async fn allowed(s: &AppState, path: &str, signature: Option<(i64, &str)>) -> Result<(), ApiError> {
    use domain::store::signing::{stream_of, Refused};
    let Some(stream) = stream_of(path) else {
        return Ok(());
    };
    let Some(signer) = s.services.store.asset_signer_of_stream(stream).await? else {
        return Ok(());
    };
    let refused = match signature {
        Some((expires, sig)) => {
            let now = domain::store::now_ms() / 1000;
            match signer.verify(path, expires, sig, now) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            }
        }
        None => Refused::Required,
    };
    if s.services.store.is_public_clip_file(path).await? {
        return Ok(());
    }
    Err(refused.error("assets"))
}

async fn asset(State(s): State<AppState>, Path(path): Path<String>, req: Request) -> Response {
    let missing = || Error(ApiError::not_found("asset")).into_response();
    let signed = domain::store::signing::split_signed(&path);
    let bare = signed.map_or(path.as_str(), |(_, _, rest)| rest);
    if let Err(e) = allowed(&s, bare, signed.map(|(expires, sig, _)| (expires, sig))).await {
        return Error(e).into_response();
    }
    let path = bare.to_string();
    let path = match latest(&s, &path).await {
        None => path,
        Some(Ok(Some(p))) => p,
        Some(Ok(None)) => return missing(),
        Some(Err(e)) => return Error(e).into_response(),
    };
    // Only plain relative paths below the assets folder.
    if path
        .split('/')
        .any(|c| c.is_empty() || c == ".." || c.starts_with('.') || c.contains('\\'))
    {
        return missing();
    }
    let full = s.engine.shared.assets.file(&path);
    let Ok(meta) = tokio::fs::metadata(&full).await else {
        return missing();
    };
    if !meta.is_file() {
        return missing();
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", meta.len(), modified);
    let etag_value = HeaderValue::from_str(&etag).expect("hex etag");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    let mut res = match ServeFile::new(&full).oneshot(req).await {
        Ok(r) => r.into_response(),
        Err(_) => return missing(),
    };
    res.headers_mut().insert(header::ETAG, etag_value);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
