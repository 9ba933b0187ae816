//! Ingest sessions: where a publisher lands, what it sent, how it ended.

use super::*;

impl Store {
    /// The stream an encoder may publish to with this stream name (only passthrough streams take
    /// ingest; profile streams are fed by transcoding).
    pub async fn ingest_target(&self, streamname: &str) -> Result<Option<IngestTarget>, ApiError> {
        Ok(
            sqlx::query_as::<_, IngestTarget>(&format!("{INGEST_SELECT} WHERE s.streamname = $1"))
                .bind(streamname)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The same, by stream id (RTSP workers know their stream, not a name).
    pub async fn ingest_target_by_id(
        &self,
        stream_id: &str,
    ) -> Result<Option<IngestTarget>, ApiError> {
        Ok(
            sqlx::query_as::<_, IngestTarget>(&format!("{INGEST_SELECT} WHERE s.id = $1"))
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The profile streams of the group whose passthrough stream is `stream_id`, in ladder
    /// order: the renditions its ingest feeds.
    pub async fn profile_targets(&self, stream_id: &str) -> Result<Vec<IngestTarget>, ApiError> {
        Ok(sqlx::query_as::<_, IngestTarget>(&format!(
            "{INGEST_SELECT} WHERE s.group_id = (SELECT group_id FROM streams WHERE id = $1) \
             AND s.profile <> 'passthrough' ORDER BY s.position"
        ))
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every stream to pull: (passthrough stream id, rtsp URL).
    pub async fn rtsp_sources(&self) -> Result<Vec<(String, String)>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT s.id, g.source FROM streams s JOIN stream_groups g ON g.id = s.group_id \
             WHERE g.source IS NOT NULL AND s.profile = 'passthrough'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Opens a session: copies the saved settings, which the session keeps until it ends.
    /// Opens a session row on `stream_id` with a copy of its saved settings; answers its id,
    /// those settings, and whether the stream's organisation has the live-processing package
    /// (without it, ingest runs no process).
    pub async fn start_session(
        &self,
        stream_id: &str,
        source: &str,
        app: Option<&str>,
        forced_recording: bool,
    ) -> Result<(String, Processing, bool), ApiError> {
        let settings = self.settings(stream_id).await?;
        let package: Option<(i64, String)> = sqlx::query_as(
            "SELECT o.live_processing, o.id FROM streams s JOIN organisations o \
             ON o.id = s.organisation_id WHERE s.id = $1",
        )
        .bind(stream_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((package, organisation)) = package else {
            return Err(ApiError::not_found("stream"));
        };
        let id = new_id();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, stream_id, started_at, source, protocol, app, processing, \
             forced_recording) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(stream_id)
        .bind(now_ms())
        // Within the column's CHECK; the protocol itself in `protocol` (migration 0009).
        .bind(if source == "rtsp" { "rtsp" } else { "rtmp" })
        .bind(source)
        .bind(app)
        .bind(serde_json::to_string(&settings).unwrap_or_default())
        .bind(forced_recording as i64)
        .execute(&mut *tx)
        .await?;
        events::record(
            &mut tx,
            events::NewEvent {
                kind: "stream.live",
                organisation_id: &organisation,
                stream_id: Some(stream_id),
                session_id: Some(&id),
                data: serde_json::json!({
                    "id": stream_id, "sessionId": id, "source": source, "app": app,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((id, settings, package == 1))
    }

    pub async fn set_session_codecs(&self, id: &str, c: &SessionCodecs) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE sessions SET video_codec = $1, width = $2, height = $3, audio_codec = $4, \
             audio_sample_rate = $5 WHERE id = $6",
        )
        .bind(c.video_codec.clone())
        .bind(c.width)
        .bind(c.height)
        .bind(c.audio_codec.clone())
        .bind(c.audio_sample_rate)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a session with why, and its frame rate over its media time when it had video.
    pub async fn end_session(
        &self,
        id: &str,
        reason: &str,
        fps: Option<f64>,
    ) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2, fps = $3 \
             WHERE id = $4 AND ended_at IS NULL",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(fps)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if ended.rows_affected() > 0 {
            let row: SessionRow = sqlx::query_as(&format!("{SESSION_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let (stream_id, organisation): (String, String) = sqlx::query_as(
                "SELECT s.id, s.organisation_id FROM sessions ss JOIN streams s \
                 ON s.id = ss.stream_id WHERE ss.id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let session = serde_json::to_value(row.view()).unwrap_or_default();
            for (kind, data) in [
                ("session.ended", session),
                (
                    "stream.idle",
                    serde_json::json!({ "id": stream_id, "sessionId": id, "reason": reason }),
                ),
            ] {
                events::record(
                    &mut tx,
                    events::NewEvent {
                        kind,
                        organisation_id: &organisation,
                        stream_id: Some(&stream_id),
                        session_id: Some(id),
                        data,
                    },
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a warning to a session: something dropped or refused, said on the stream.
    pub async fn add_session_warning(&self, id: &str, warning: &str) -> Result<(), ApiError> {
        let line = warning.replace('\n', " ");
        sqlx::query(
            "UPDATE sessions SET warnings = CASE WHEN warnings IS NULL THEN $1 \
             ELSE warnings || $2 END WHERE id = $3",
        )
        .bind(&line)
        .bind(format!("\n{line}"))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// At start-up: sessions a crash left open end now. Answers how many.
    pub async fn close_open_sessions(&self) -> Result<u64, ApiError> {
        // Each one ends as a live session does, with its events (session.ended, stream.idle).
        let open: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions WHERE ended_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        for (id,) in &open {
            self.end_session(id, "server restarted", None).await?;
        }
        Ok(open.len() as u64)
    }

    pub(super) async fn sessions(
        &self,
        stream_id: &str,
        limit: i64,
    ) -> Result<Vec<SessionView>, ApiError> {
        let rows = sqlx::query_as::<_, SessionRow>(&format!(
            "{SESSION_SELECT} WHERE stream_id = $1 ORDER BY started_at DESC LIMIT $2"
        ))
        .bind(stream_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(SessionRow::view).collect())
    }

    /// A session of the caller's organisation: (stream id, started at ms); 404 otherwise.
    pub(super) async fn own_session(
        &self,
        p: &Principal,
        session_id: &str,
    ) -> Result<(String, i64), ApiError> {
        sqlx::query_as(
            "SELECT ss.stream_id, ss.started_at FROM sessions ss JOIN streams s ON s.id = ss.stream_id \
             WHERE ss.id = $1 AND s.organisation_id = $2",
        )
        .bind(session_id)
        .bind(&p.organisation_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
    }
}

pub(super) const INGEST_SELECT: &str =
    "SELECT s.id AS stream_id, s.organisation_id, s.profile, g.source \
     FROM streams s JOIN stream_groups g ON g.id = s.group_id";

/// Where an ingest lands.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IngestTarget {
    pub stream_id: String,
    pub organisation_id: String,
    pub profile: String,
    pub source: Option<String>,
}

/// What ingest learnt about a session's media.
#[derive(Debug, Clone, Default)]
pub struct SessionCodecs {
    pub video_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub audio_codec: Option<String>,
    pub audio_sample_rate: Option<i64>,
}

pub(super) const SESSION_SELECT: &str =
    "SELECT id, started_at, ended_at, COALESCE(protocol, source) AS source, app, video_codec, audio_codec, width, height, \
     audio_sample_rate, fps, end_reason, warnings FROM sessions";

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) id: String,
    pub(super) started_at: i64,
    pub(super) ended_at: Option<i64>,
    pub(super) source: String,
    pub(super) app: Option<String>,
    pub(super) video_codec: Option<String>,
    pub(super) audio_codec: Option<String>,
    pub(super) width: Option<i64>,
    pub(super) height: Option<i64>,
    pub(super) audio_sample_rate: Option<i64>,
    pub(super) fps: Option<f64>,
    pub(super) end_reason: Option<String>,
    pub(super) warnings: Option<String>,
}

impl SessionRow {
    pub(super) fn view(self) -> SessionView {
        SessionView {
            id: self.id,
            started_at: rfc3339(self.started_at),
            ended_at: self.ended_at.map(rfc3339),
            source: self.source,
            app: self.app,
            video_codec: self.video_codec,
            audio_codec: self.audio_codec,
            width: self.width,
            height: self.height,
            audio_sample_rate: self.audio_sample_rate,
            fps: self.fps,
            end_reason: self.end_reason,
            warnings: self
                .warnings
                .map(|w| w.lines().map(String::from).collect())
                .unwrap_or_default(),
        }
    }
}
