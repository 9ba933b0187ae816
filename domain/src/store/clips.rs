//! Clips cut from a session's replay: plan and register (the media engine cuts in between, see
//! `Services::create_clip`), list, share, delete.

use crate::services::{ClipCut, ClipJob};
use crate::AssetKind;

use super::*;

/// Shortest and longest clip a request may ask for, in seconds.
pub const MIN_CLIP_SECONDS: f64 = 0.1;
pub const MAX_CLIP_SECONDS: f64 = 3600.0;
const MAX_TITLE: usize = 200;

#[derive(sqlx::FromRow)]
pub(super) struct ClipRow {
    pub(super) id: String,
    pub(super) session_id: String,
    pub(super) stream_id: String,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    pub(super) path: String,
    pub(super) title: Option<String>,
    pub(super) created_at: i64,
    pub(super) size_bytes: Option<i64>,
    pub(super) poster: Option<String>,
}

pub(super) const CLIP_SELECT: &str =
    "SELECT c.id, c.session_id, c.stream_id, c.start_ms, c.end_ms, c.path, \
     c.title, c.created_at, c.size_bytes, c.poster FROM clips c";

impl ClipRow {
    pub(super) fn view(self, urls: &Urls) -> ClipView {
        let base = &urls.public;
        ClipView {
            url: format!("{base}/assets/{}", self.path),
            share_url: format!("{base}/clip/{}", self.id),
            start: self.start_ms as f64 / 1000.0,
            end: self.end_ms as f64 / 1000.0,
            duration: (self.end_ms - self.start_ms) as f64 / 1000.0,
            title: self.title,
            created_at: rfc3339(self.created_at),
            session_id: self.session_id,
            stream_id: self.stream_id,
            size: self.size_bytes,
            poster: self.poster.map(|p| format!("{base}/assets/{p}")),
            id: self.id,
        }
    }
}

/// The range rules of a clip request, with messages that say what to change.
pub fn check_clip_request(req: &ClipRequest) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request("invalid_range", m));
    if !req.start.is_finite() || !req.end.is_finite() {
        return bad("start and end must be numbers of seconds from the session's start".into());
    }
    if req.start < 0.0 {
        return bad(format!(
            "start must be 0 s or later (seconds from the session's start); got {} s",
            req.start
        ));
    }
    if req.end <= req.start {
        return bad(format!(
            "end ({} s) must be after start ({} s)",
            req.end, req.start
        ));
    }
    let length = req.end - req.start;
    if length < MIN_CLIP_SECONDS {
        return bad(format!(
            "a clip must last at least {MIN_CLIP_SECONDS} s; this one lasts {length:.3} s"
        ));
    }
    if length > MAX_CLIP_SECONDS {
        return bad(format!(
            "a clip may last at most {MAX_CLIP_SECONDS} s; this one lasts {length:.3} s"
        ));
    }
    if req
        .title
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE)
    {
        return Err(ApiError::bad_request(
            "invalid_title",
            format!("a clip title has at most {MAX_TITLE} characters"),
        ));
    }
    Ok(())
}

/// A checked clip request: what to cut, and the row it becomes once cut.
#[derive(Debug, Clone)]
pub struct ClipPlan {
    id: String,
    session_id: String,
    stream_id: String,
    title: Option<String>,
    pub job: ClipJob,
}

impl Store {
    /// Checks a clip request and says what to cut and where it goes.
    pub async fn plan_clip(
        &self,
        p: &Principal,
        session_id: &str,
        req: &ClipRequest,
    ) -> Result<ClipPlan, ApiError> {
        p.require_edit()?;
        check_clip_request(req)?;
        let (stream_id, started_at) = self.own_session(p, session_id).await?;
        let replay: Option<(String,)> = sqlx::query_as(
            "SELECT path FROM assets WHERE session_id = $1 AND kind = 'replay' ORDER BY created_at LIMIT 1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((playlist,)) = replay else {
            return Err(ApiError::new(
                422,
                "range_not_available",
                "this session has no replay (replay was off when it started), so there is nothing to cut",
            ));
        };
        let id = new_id();
        let job = ClipJob {
            replay_dir: playlist
                .strip_suffix(&format!("/{}", crate::asset_kind::REPLAY_PLAYLIST))
                .unwrap_or(&playlist)
                .to_string(),
            started_at_ms: started_at,
            start: req.start,
            end: req.end,
            out: AssetKind::clip_file(&stream_id, &id),
            poster: sibling(&AssetKind::clip_file(&stream_id, &id), ".jpg"),
        };
        Ok(ClipPlan {
            id,
            session_id: session_id.to_string(),
            stream_id,
            title: req
                .title
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            job,
        })
    }

    /// Registers a clip the engine cut as `plan` says.
    pub async fn register_clip(
        &self,
        p: &Principal,
        plan: ClipPlan,
        cut: &ClipCut,
        urls: &Urls,
    ) -> Result<ClipView, ApiError> {
        let ClipPlan {
            id,
            session_id,
            stream_id,
            title,
            job,
        } = plan;
        let start_ms = (job.start * 1000.0).round() as i64;
        let row = ClipRow {
            id,
            session_id,
            stream_id,
            start_ms,
            end_ms: start_ms + (cut.duration * 1000.0).round() as i64,
            path: job.out,
            title,
            created_at: now_ms(),
            size_bytes: Some(cut.size),
            poster: cut.poster.then_some(job.poster),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO clips (id, session_id, stream_id, organisation_id, start_ms, end_ms, path, title, \
             public, created_at, size_bytes, poster) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11)",
        )
        .bind(&row.id)
        .bind(&row.session_id)
        .bind(&row.stream_id)
        .bind(&p.organisation_id)
        .bind(row.start_ms)
        .bind(row.end_ms)
        .bind(&row.path)
        .bind(row.title.clone())
        .bind(row.created_at)
        .bind(row.size_bytes)
        .bind(row.poster.clone())
        .execute(&mut *tx)
        .await?;
        let (stream_id, session_id) = (row.stream_id.clone(), row.session_id.clone());
        let view = row.view(urls);
        events::record(
            &mut tx,
            events::NewEvent {
                kind: "clip.created",
                organisation_id: &p.organisation_id,
                stream_id: Some(&stream_id),
                session_id: Some(&session_id),
                data: serde_json::to_value(&view).unwrap_or_default(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    /// A session's clips, newest first.
    pub async fn clips(
        &self,
        p: &Principal,
        session_id: &str,
        urls: &Urls,
    ) -> Result<Vec<ClipView>, ApiError> {
        self.own_session(p, session_id).await?;
        let rows: Vec<ClipRow> = sqlx::query_as(&format!(
            "{CLIP_SELECT} WHERE c.session_id = $1 ORDER BY c.created_at DESC, c.id"
        ))
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.view(urls)).collect())
    }

    pub async fn clip(&self, p: &Principal, id: &str, urls: &Urls) -> Result<ClipView, ApiError> {
        let row: ClipRow = sqlx::query_as(&format!(
            "{CLIP_SELECT} WHERE c.id = $1 AND c.organisation_id = $2"
        ))
        .bind(id)
        .bind(&p.organisation_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("clip"))?;
        Ok(row.view(urls))
    }

    /// A public clip for its share page: no principal, only clips marked public.
    pub async fn shared_clip(&self, id: &str, urls: &Urls) -> Result<SharedClip, ApiError> {
        let row: ClipRow =
            sqlx::query_as(&format!("{CLIP_SELECT} WHERE c.id = $1 AND c.public = 1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| ApiError::not_found("clip"))?;
        let (name, streamname, started_at): (String, String, i64) = sqlx::query_as(
            "SELECT g.name, s.streamname, ss.started_at FROM sessions ss \
             JOIN streams s ON s.id = ss.stream_id JOIN stream_groups g ON g.id = s.group_id \
             WHERE ss.id = $1",
        )
        .bind(&row.session_id)
        .fetch_one(&self.pool)
        .await?;
        let recorded_at = rfc3339(started_at + row.start_ms);
        Ok(SharedClip {
            clip: row.view(urls),
            stream_name: if name.is_empty() { streamname } else { name },
            recorded_at,
        })
    }

    /// Deletes a clip's row; answers its files, which are to go.
    pub async fn delete_clip(&self, p: &Principal, id: &str) -> Result<Vec<String>, ApiError> {
        p.require_edit()?;
        let _: (String,) =
            sqlx::query_as("SELECT id FROM clips WHERE id = $1 AND organisation_id = $2")
                .bind(id)
                .bind(&p.organisation_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| ApiError::not_found("clip"))?;
        let (path, poster) = self
            .remove_clip(id, "deleted")
            .await?
            .ok_or_else(|| ApiError::not_found("clip"))?;
        Ok(std::iter::once(path).chain(poster).collect())
    }
}
