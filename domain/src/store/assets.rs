//! Asset rows: the files processes write (recordings, replay, thumbnails, motion clips),
//! their history limits and what the retention sweep and the orphan check read.

pub use crate::asset_kind::sibling;
use crate::AssetKind;

use super::*;

/// The public URL of an asset file, signed when its organisation signs asset URLs.
pub fn asset_url(base: &str, signer: Option<&signing::AssetSigner>, path: &str) -> String {
    match signer {
        Some(s) => format!("{base}/assets/{}", s.sign(path, now_ms() / 1000)),
        None => format!("{base}/assets/{path}"),
    }
}

impl Store {
    /// Finished recordings past their organisation's retention at `now_ms`: (asset id, path).
    pub async fn expired_recordings(&self, now_ms: i64) -> Result<Vec<(String, String)>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.path FROM assets a JOIN streams s ON s.id = a.stream_id \
             JOIN organisations o ON o.id = s.organisation_id \
             WHERE a.kind = 'recording' AND a.status <> 'writing' AND o.retention_days IS NOT NULL \
             AND a.created_at < $1 - o.retention_days * 86400000",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest ready asset of a kind for a stream: its path.
    pub async fn latest_asset(
        &self,
        stream_id: &str,
        kind: &str,
    ) -> Result<Option<String>, ApiError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT path FROM assets WHERE stream_id = $1 AND kind = $2 AND status = 'ready' \
             ORDER BY created_at DESC, idx DESC LIMIT 1",
        )
        .bind(stream_id)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Keeps the newest assets of a kind of a session, as many as its organisation keeps;
    /// deletes the older rows and answers their files, siblings too (the caller removes them).
    pub async fn prune_history(
        &self,
        session_id: &str,
        kind: AssetKind,
    ) -> Result<Vec<String>, ApiError> {
        let keep: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT o.history_per_session FROM sessions ss JOIN streams s ON s.id = ss.stream_id \
             JOIN organisations o ON o.id = s.organisation_id WHERE ss.id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        let keep = keep
            .and_then(|k| k.0)
            .unwrap_or(DEFAULT_HISTORY_PER_SESSION);
        let old: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, path FROM assets WHERE session_id = $1 AND kind = $2 \
             ORDER BY created_at DESC, idx DESC LIMIT 1000000 OFFSET $3",
        )
        .bind(session_id)
        .bind(kind.as_str())
        .bind(keep)
        .fetch_all(&self.pool)
        .await?;
        for (id, _) in &old {
            self.delete_asset(id, "history").await?;
        }
        Ok(old.iter().flat_map(|(_, p)| kind.files(p)).collect())
    }

    /// Deletes an asset's row with its `asset.deleted` event; `reason` says why ("history":
    /// past the per-session limit, "retention", "missing": its file was gone).
    pub async fn delete_asset(&self, id: &str, reason: &str) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Option<String>, String, String, String)> = sqlx::query_as(
            "SELECT a.stream_id, a.session_id, a.kind, a.path, s.organisation_id FROM assets a \
             JOIN streams s ON s.id = a.stream_id WHERE a.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some((stream, session, kind, path, organisation)) = row {
            let data = serde_json::json!({
                "id": id, "kind": kind, "path": path, "streamId": stream,
                "sessionId": session, "reason": reason,
            });
            asset_deleted(&mut tx, &organisation, &stream, session.as_deref(), data).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Registers a file a process has started writing (status `writing`); answers its id.
    pub async fn insert_asset(&self, a: &NewAsset) -> Result<String, ApiError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO assets (id, stream_id, session_id, kind, path, status, created_at, width, height, idx) \
             VALUES ($1, $2, $3, $4, $5, 'writing', $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&a.stream_id)
        .bind(a.session_id.clone())
        .bind(a.kind.as_str())
        .bind(&a.path)
        .bind(now_ms())
        .bind(a.width)
        .bind(a.height)
        .bind(a.index)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Marks a file done (`ready`) or broken (`failed`, kept for inspection).
    pub async fn finish_asset(
        &self,
        id: &str,
        duration_ms: Option<i64>,
        size_bytes: i64,
        status: &str,
    ) -> Result<(), ApiError> {
        // A ready asset is an event (recording.ready…) with its entry as the API lists it,
        // written with the status; its URLs are signed as the organisation wants.
        let owner: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT a.kind, s.id, s.organisation_id, s.streamname FROM assets a \
             JOIN streams s ON s.id = a.stream_id WHERE a.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let signer = match &owner {
            Some((_, stream, _, _)) if status == "ready" => {
                self.asset_signer_of_stream(stream).await?
            }
            _ => None,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE assets SET status = $1, duration_ms = COALESCE($2, duration_ms), size_bytes = $3 WHERE id = $4",
        )
        .bind(status)
        .bind(duration_ms)
        .bind(size_bytes)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let (Some((kind, stream, organisation, streamname)), "ready") = (owner, status) {
            let a: AssetRow = sqlx::query_as(
                "SELECT a.id, a.session_id, a.path, a.status, a.created_at, a.duration_ms, \
                 a.width, a.height, a.size_bytes, a.idx, ss.started_at, ss.ended_at FROM assets a \
                 LEFT JOIN sessions ss ON ss.id = a.session_id WHERE a.id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let base = self.public_url();
            let e = super::stream_view::Entries {
                base: &base,
                signer,
                stream_id: &stream,
                streamname: &streamname,
            };
            let (event, data) = match kind.as_str() {
                "recording" => ("recording.ready", serde_json::to_value(e.vod(&a))),
                "replay" => ("replay.ready", serde_json::to_value(e.replay(&a))),
                "thumbnail" => ("thumbnail.created", serde_json::to_value(e.image(&a))),
                _ => (
                    "motionclip.created",
                    serde_json::to_value(e.motion_clip(&a)),
                ),
            };
            events::record(
                &mut tx,
                events::NewEvent {
                    kind: event,
                    organisation_id: &organisation,
                    stream_id: Some(&stream),
                    session_id: a.session_id.as_deref(),
                    data: data.unwrap_or_default(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Files a crash left in `writing`: (id, path below the assets folder).
    pub async fn writing_assets(&self) -> Result<Vec<(String, String)>, ApiError> {
        Ok(
            sqlx::query_as("SELECT id, path FROM assets WHERE status = 'writing'")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Every file the database knows of, for the consistency check: asset rows and clip rows
    /// (kind "clip", with their poster).
    pub async fn known_files(&self) -> Result<Vec<KnownFile>, ApiError> {
        let assets: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT id, kind, path, status FROM assets")
                .fetch_all(&self.pool)
                .await?;
        let clips: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT id, path, poster FROM clips")
                .fetch_all(&self.pool)
                .await?;
        Ok(assets
            .into_iter()
            .map(|(id, kind, path, status)| KnownFile {
                id,
                kind,
                path,
                status,
                poster: None,
            })
            .chain(clips.into_iter().map(|(id, path, poster)| KnownFile {
                id,
                kind: "clip".into(),
                path,
                status: "ready".into(),
                poster,
            }))
            .collect())
    }

    /// Removes a clip row whose file is gone (the consistency check's fix).
    pub async fn forget_clip(&self, id: &str) -> Result<(), ApiError> {
        self.remove_clip(id, "missing").await?;
        Ok(())
    }

    /// Deletes a clip's row with its `asset.deleted` event; answers its files (path, poster).
    pub(super) async fn remove_clip(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Option<(String, Option<String>)>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Option<String>, String, String, String)> = sqlx::query_as(
            "SELECT path, poster, organisation_id, stream_id, session_id FROM clips WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM clips WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let Some((path, poster, organisation, stream, session)) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let data = serde_json::json!({
            "id": id, "kind": "clip", "path": path, "streamId": stream,
            "sessionId": session, "reason": reason,
        });
        asset_deleted(&mut tx, &organisation, &stream, Some(&session), data).await?;
        tx.commit().await?;
        Ok(Some((path, poster)))
    }

    /// A session's replay, for its rewatch page: the stream object and the replay entry.
    pub async fn replay(
        &self,
        p: &Principal,
        session_id: &str,
        urls: &Urls,
    ) -> Result<(StreamView, ReplayEntry), ApiError> {
        let (stream_id, _) = self.own_session(p, session_id).await?;
        let view = self.stream(p, &stream_id, 100, urls).await?;
        let entry = view
            .playout
            .replay
            .iter()
            .find(|r| r.session_id == session_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("replay of this session"))?;
        Ok((view, entry))
    }

    /// A session's thumbnails for its replay timeline: (seconds from the session's start,
    /// 320 px preview URL), oldest first.
    pub async fn session_thumbnails(
        &self,
        p: &Principal,
        session_id: &str,
        urls: &Urls,
    ) -> Result<Vec<(f64, String)>, ApiError> {
        let signer = self.asset_signer(&p.organisation_id).await?;
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT a.created_at, a.path, ss.started_at FROM assets a \
             JOIN sessions ss ON ss.id = a.session_id JOIN streams s ON s.id = ss.stream_id \
             WHERE a.session_id = $1 AND a.kind = 'thumbnail' AND a.status = 'ready' \
             AND s.organisation_id = $2 ORDER BY a.created_at",
        )
        .bind(session_id)
        .bind(&p.organisation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, path, started)| {
                (
                    (at - started) as f64 / 1000.0,
                    asset_url(
                        &urls.public,
                        signer.as_ref(),
                        &sibling(&path, crate::asset_kind::PREVIEW_SUFFIX),
                    ),
                )
            })
            .collect())
    }

    pub(super) async fn assets(
        &self,
        stream_id: &str,
        kind: &str,
        limit: i64,
    ) -> Result<Vec<AssetRow>, ApiError> {
        Ok(sqlx::query_as::<_, AssetRow>(
            "SELECT a.id, a.session_id, a.path, a.status, a.created_at, a.duration_ms, a.width, \
             a.height, a.size_bytes, a.idx, ss.started_at, ss.ended_at FROM assets a \
             LEFT JOIN sessions ss ON ss.id = a.session_id \
             WHERE a.stream_id = $1 AND a.kind = $2 ORDER BY a.created_at DESC, a.idx DESC LIMIT $3",
        )
        .bind(stream_id)
        .bind(kind)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A file the database refers to (see [`Store::known_files`]).
#[derive(Debug, Clone)]
pub struct KnownFile {
    pub id: String,
    /// recording, thumbnail, motionclip, replay or clip.
    pub kind: String,
    /// Below the assets folder.
    pub path: String,
    pub status: String,
    /// A clip's poster image.
    pub poster: Option<String>,
}

/// A file a process is about to write.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub stream_id: String,
    pub session_id: Option<String>,
    pub kind: AssetKind,
    /// Relative to the assets folder, `/`-separated.
    pub path: String,
    pub index: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct AssetRow {
    pub(super) id: String,
    pub(super) session_id: Option<String>,
    pub(super) path: String,
    pub(super) status: String,
    pub(super) created_at: i64,
    pub(super) duration_ms: Option<i64>,
    pub(super) width: Option<i64>,
    pub(super) height: Option<i64>,
    pub(super) size_bytes: Option<i64>,
    pub(super) idx: i64,
    pub(super) started_at: Option<i64>,
    pub(super) ended_at: Option<i64>,
}

async fn asset_deleted(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organisation: &str,
    stream: &str,
    session: Option<&str>,
    data: serde_json::Value,
) -> Result<(), ApiError> {
    events::record(
        tx,
        events::NewEvent {
            kind: "asset.deleted",
            organisation_id: organisation,
            stream_id: Some(stream),
            session_id: session,
            data,
        },
    )
    .await?;
    Ok(())
}
