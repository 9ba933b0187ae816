//! Paged lists of a stream's recordings, replays, sessions, thumbnails, motion clips and clips: every
//! one of them, newest first, a page at a time. The stream object keeps its `asset_limit`
//! newest of each; these go further. The cursor is opaque to clients: the last item's time and
//! id, so pages neither repeat nor skip items while new ones arrive.

use super::clips::{ClipRow, CLIP_SELECT};
use super::stream_view::Entries;
use super::*;
use crate::AssetKind;

pub const PAGE_DEFAULT: i64 = 50;
pub const PAGE_MAX: i64 = 200;

/// What a paged list lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Recordings,
    Replays,
    Sessions,
    Thumbnails,
    MotionClips,
    Clips,
}

impl ListKind {
    /// From the path segment (`/api/v1/stream/{id}/{kind}`).
    pub fn parse(segment: &str) -> Option<ListKind> {
        Some(match segment {
            "recordings" => ListKind::Recordings,
            "replays" => ListKind::Replays,
            "sessions" => ListKind::Sessions,
            "thumbnails" => ListKind::Thumbnails,
            "motionclips" => ListKind::MotionClips,
            "clips" => ListKind::Clips,
            _ => return None,
        })
    }

    fn asset(self) -> Option<AssetKind> {
        match self {
            ListKind::Recordings => Some(AssetKind::Recording),
            ListKind::Replays => Some(AssetKind::Replay),
            ListKind::Thumbnails => Some(AssetKind::Thumbnail),
            ListKind::MotionClips => Some(AssetKind::MotionClip),
            ListKind::Sessions | ListKind::Clips => None,
        }
    }
}

/// Where the previous page ended: its last item's time (ms) and id.
fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor must be a `next` value of an earlier page",
        )
    };
    let (at, id) = cursor.split_once('_').ok_or_else(bad)?;
    let at = at.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((at, id.to_string()))
}

impl Store {
    /// A page of `kind` of stream `id` (the caller's organisation's), after `cursor`.
    pub async fn page(
        &self,
        p: &Principal,
        id: &str,
        kind: ListKind,
        cursor: Option<&str>,
        limit: i64,
        urls: &Urls,
    ) -> Result<PageView, ApiError> {
        let row = self.stream_row(p, id).await?;
        let limit = limit.clamp(1, PAGE_MAX);
        let (at, last) = match cursor {
            Some(c) => parse_cursor(c)?,
            None => (i64::MAX, String::new()),
        };
        let mut keys = Vec::new();
        let mut items = Vec::new();
        let page = (id, at, last.as_str(), limit + 1);
        if let Some(asset) = kind.asset() {
            // The kind is ours (a fixed word), not the client's: written into the query.
            let inner = format!(
                "SELECT a.id, a.session_id, a.path, a.status, a.created_at, a.duration_ms, \
                 a.width, a.height, a.size_bytes, a.idx, ss.started_at, ss.ended_at FROM assets a \
                 LEFT JOIN sessions ss ON ss.id = a.session_id \
                 WHERE a.stream_id = $1 AND a.kind = '{}'",
                asset.as_str()
            );
            let rows: Vec<AssetRow> = self.keyset(&inner, "created_at", page).await?;
            let e = Entries {
                base: &urls.public,
                signer: self.asset_signer_of_stream(id).await?,
                stream_id: id,
                streamname: &row.streamname,
            };
            for a in rows {
                let item = match kind {
                    ListKind::Recordings => PageItem::Recording(e.vod(&a)),
                    // The replay writer always names the session; a row without one is not a
                    // replay anyone can watch.
                    ListKind::Replays => match e.replay(&a) {
                        Some(r) => PageItem::Replay(r),
                        None => continue,
                    },
                    ListKind::Thumbnails => PageItem::Thumbnail(e.image(&a)),
                    _ => PageItem::MotionClip(e.motion_clip(&a)),
                };
                keys.push((a.created_at, a.id.clone()));
                items.push(item);
            }
        } else if kind == ListKind::Sessions {
            let inner = format!("{SESSION_SELECT} WHERE stream_id = $1");
            let rows: Vec<SessionRow> = self.keyset(&inner, "started_at", page).await?;
            for r in rows {
                keys.push((r.started_at, r.id.clone()));
                items.push(PageItem::Session(r.view()));
            }
        } else {
            let inner = format!("{CLIP_SELECT} WHERE c.stream_id = $1");
            let rows: Vec<ClipRow> = self.keyset(&inner, "created_at", page).await?;
            for r in rows {
                keys.push((r.created_at, r.id.clone()));
                items.push(PageItem::Clip(r.view(urls)));
            }
        }
        // One more than a page was read: there is a next page, starting after the last shown.
        let next = (items.len() as i64 > limit).then(|| {
            items.truncate(limit as usize);
            let (at, id) = &keys[limit as usize - 1];
            format!("{at}_{id}")
        });
        Ok(PageView { items, next })
    }

    /// The rows of `inner` (a select whose `$1` is the stream id) after the cursor `(at, last)`
    /// by `time` then id, newest first, at most `limit`.
    async fn keyset<R>(
        &self,
        inner: &str,
        time: &str,
        (stream, at, last, limit): (&str, i64, &str, i64),
    ) -> Result<Vec<R>, ApiError>
    where
        R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(&format!(
            "SELECT * FROM ({inner}) x WHERE ({time} < $2 OR ({time} = $2 AND id < $3)) \
             ORDER BY {time} DESC, id DESC LIMIT $4"
        ))
        .bind(stream)
        .bind(at)
        .bind(last)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
