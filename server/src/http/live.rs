//! Live HLS playout: `/hls/{stream}/index.m3u8` and its init and media segments, from memory;
//! `/hls/{passthrough stream}/master.m3u8`, the ABR playlist of a group with renditions.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::ApiError;

use super::{AppState, Error};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/hls/{id}/{file}", get(hls_file))
}

async fn hls_file(
    State(s): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, Error> {
    let missing = || Error(ApiError::not_found("live playlist"));
    // Live playout is public, like the player page's HLS in other platforms; players on other
    // origins may fetch it.
    let cors = (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    if file == "index.m3u8" || file == "master.m3u8" {
        let body = if file == "master.m3u8" {
            s.engine.master_playlist(&id)
        } else {
            s.engine.hls(&id).and_then(|out| out.playlist())
        }
        .ok_or_else(missing)?;
        return Ok((
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                (header::CACHE_CONTROL, "no-cache"),
                cors,
            ],
            body,
        )
            .into_response());
    }
    let number = |prefix: &str, suffix: &str| {
        file.strip_prefix(prefix)
            .and_then(|f| f.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let out = s.engine.hls(&id).ok_or_else(missing)?;
    let (bytes, kind) = if let Some(v) = number("init-", ".mp4") {
        (out.init(v as u32), "video/mp4")
    } else if let Some(n) = number("seg-", ".m4s") {
        (out.segment(n), "video/iso.segment")
    } else {
        (None, "")
    };
    let bytes = bytes.ok_or_else(|| Error(ApiError::not_found("segment")))?;
    // Segments never change once written.
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600, immutable"),
            cors,
        ],
        bytes,
    )
        .into_response())
}
