//! Streams, their groups (a passthrough stream and its transcoding profiles) and their
//! live-processing settings.

use super::*;

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<String>,
    pub tag: Option<String>,
}

/// A stream name as RTMP encoders show it: two groups of five lowercase letters and digits.
pub(super) fn new_streamname() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut b = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut b);
    let s: String = b
        .iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &s[..5], &s[5..])
}

impl Store {
    /// Creates a stream group: the passthrough stream plus one stream per transcoding profile.
    /// Answers the passthrough stream.
    pub async fn create_stream(
        &self,
        p: &Principal,
        req: &CreateStream,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        p.require_edit()?;
        let name = req.name.as_deref().unwrap_or("").trim().to_string();
        if name.chars().count() > 200 {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must be at most 200 characters",
            ));
        }
        let tags = clean_tags(&req.tags)?;
        if let Some(src) = &req.source {
            if !(src.starts_with("rtsp://") || src.starts_with("rtsps://")) || src.len() > 2048 {
                return Err(ApiError::bad_request(
                    "invalid_source",
                    "source must be an rtsp:// or rtsps:// URL",
                ));
            }
        }
        let profiles = group_profiles(req.transcoding.as_ref().map(|t| &t.profiles[..]))?;
        for key in req.profile_processing.keys() {
            if !profiles.contains(key) {
                return Err(ApiError::bad_request(
                    "unknown_profile",
                    format!(
                        "profileProcessing names {key:?}, which is not a profile of this stream"
                    ),
                ));
            }
        }
        let mut settings = Vec::new();
        for profile in &profiles {
            let mut s = Processing::default();
            if let Some(patch) = &req.processing {
                s.apply(patch);
            }
            if let Some(patch) = req.profile_processing.get(profile) {
                s.apply(patch);
            }
            s.validate()?;
            settings.push(s);
        }
        if settings.iter().any(Processing::any_enabled) {
            self.require_live_processing(&p.organisation_id).await?;
        }

        let group_id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO stream_groups (id, organisation_id, name, source, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&group_id)
        .bind(&p.organisation_id)
        .bind(&name)
        .bind(req.source.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for tag in &tags {
            sqlx::query("INSERT INTO stream_tags (group_id, tag) VALUES ($1, $2)")
                .bind(&group_id)
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        let mut first = None;
        for (position, (profile, s)) in profiles.iter().zip(&settings).enumerate() {
            let id = insert_stream(
                &mut tx,
                &group_id,
                &p.organisation_id,
                profile,
                position,
                s,
                now,
            )
            .await?;
            first.get_or_insert(id);
        }
        let id = first.clone().expect("passthrough always exists");
        let data = serde_json::json!({
            "id": id, "name": name, "streamgroup": group_id, "profiles": profiles, "tags": tags,
        });
        stream_event(&mut tx, "stream.created", &p.organisation_id, &id, data).await?;
        tx.commit().await?;
        self.stream(p, &id, DEFAULT_ASSET_LIMIT, urls).await
    }

    /// One stream of the caller's organisation; another organisation's stream is "not found".
    pub async fn stream(
        &self,
        p: &Principal,
        id: &str,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        let row = self.stream_row(p, id).await?;
        self.view(row, asset_limit, urls).await
    }

    pub async fn streams(
        &self,
        p: &Principal,
        filter: &ListFilter,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        let live = match filter.state.as_deref() {
            None | Some("") => None,
            Some("live") => Some(true),
            Some("idle") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_state",
                    format!("state must be live or idle (got {other:?})"),
                ))
            }
        };
        let rows = sqlx::query_as::<_, StreamRow>(&format!(
            "{STREAM_SELECT} WHERE s.organisation_id = $1 \
             AND ($2 = '' OR EXISTS (SELECT 1 FROM stream_tags t WHERE t.group_id = s.group_id AND t.tag = $2)) \
             ORDER BY g.created_at DESC, s.group_id, s.position"
        ))
        .bind(&p.organisation_id)
        .bind(filter.tag.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        let mut views = self.views(rows, asset_limit, urls).await?;
        views.retain(|v| live.is_none_or(|l| l == v.is_live()));
        Ok(views)
    }

    /// Every stream of the group `id` belongs to (found by group or by any member stream).
    pub async fn group(
        &self,
        p: &Principal,
        id: &str,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        let rows = sqlx::query_as::<_, StreamRow>(&format!(
            "{STREAM_SELECT} WHERE s.organisation_id = $1 AND s.group_id = \
             COALESCE((SELECT group_id FROM streams WHERE id = $2), $2) ORDER BY s.position"
        ))
        .bind(&p.organisation_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(ApiError::not_found("stream group"));
        }
        self.views(rows, asset_limit, urls).await
    }

    /// Saves new settings for one stream; a live stream gets them at its next ingest.
    pub async fn update_processing(
        &self,
        p: &Principal,
        id: &str,
        patch: &ProcessingPatch,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        p.require_edit()?;
        let row = self.stream_row(p, id).await?;
        self.save_many(p, vec![(row.id.clone(), patch.clone())])
            .await?;
        self.stream(p, id, DEFAULT_ASSET_LIMIT, urls).await
    }

    /// "Sync settings across profiles": the passthrough stream's settings with `patch` applied
    /// become the settings of every stream of the group.
    pub async fn update_group_processing(
        &self,
        p: &Principal,
        group_id: &str,
        patch: &ProcessingPatch,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        p.require_edit()?;
        let streams = self.group(p, group_id, 0, urls).await?;
        let mut base = streams[0].processing.settings;
        base.apply(patch);
        let full = ProcessingPatch::from(base);
        let edits = streams
            .iter()
            .map(|s| (s.id.clone(), full.clone()))
            .collect();
        self.save_many(p, edits).await?;
        self.group(p, group_id, DEFAULT_ASSET_LIMIT, urls).await
    }

    /// Saves several streams' settings at once (the dashboard's Edit dialog): all are checked
    /// before any is written, so a range error leaves every stream as it was.
    pub async fn save_group_settings(
        &self,
        p: &Principal,
        edits: Vec<(String, Processing)>,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        p.require_edit()?;
        let first = edits
            .first()
            .map(|e| e.0.clone())
            .ok_or_else(|| ApiError::bad_request("empty", "no settings to save"))?;
        let edits = edits
            .into_iter()
            .map(|(id, s)| (id, ProcessingPatch::from(s)))
            .collect();
        self.save_many(p, edits).await?;
        self.group(p, &first, DEFAULT_ASSET_LIMIT, urls).await
    }

    pub(super) async fn save_many(
        &self,
        p: &Principal,
        edits: Vec<(String, ProcessingPatch)>,
    ) -> Result<(), ApiError> {
        let mut next = Vec::new();
        let mut enables = false;
        for (id, patch) in &edits {
            let row = self.stream_row(p, id).await?;
            let before = self.settings(&row.id).await?;
            let mut after = before;
            after.apply(patch);
            after.validate()?;
            enables |= after.enables_more_than(&before);
            next.push((row, after));
        }
        if enables {
            self.require_live_processing(&p.organisation_id).await?;
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (row, s) in &next {
            write_settings(&mut tx, &row.id, s, now).await?;
            // The settings a live stream takes at its next ingest.
            let data = serde_json::json!({
                "id": row.id, "streamgroup": row.group_id, "profile": row.profile,
                "processing": s,
            });
            stream_updated(&mut tx, &p.organisation_id, &row.id, data).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets a group's transcoding profiles: new profiles get streams with the passthrough
    /// stream's settings, dropped ones are deleted. Answers the passthrough stream's id and the
    /// deleted streams' ids (their files are to go). A live group takes the new ladder at its
    /// next ingest, like settings.
    pub async fn set_group_profiles(
        &self,
        p: &Principal,
        id: &str,
        requested: &[String],
        urls: &Urls,
    ) -> Result<(String, Vec<String>), ApiError> {
        p.require_edit()?;
        let wanted = group_profiles(Some(requested))?;
        let streams = self.group(p, id, 0, urls).await?;
        let passthrough = &streams[0];
        let base = self.settings(&passthrough.id).await?;
        if base.any_enabled() && wanted.len() > streams.len() {
            self.require_live_processing(&p.organisation_id).await?;
        }
        let now = now_ms();
        let mut deleted = Vec::new();
        let mut tx = self.pool.begin().await?;
        for s in &streams {
            if !wanted.contains(&s.profile) {
                sqlx::query("DELETE FROM streams WHERE id = $1")
                    .bind(&s.id)
                    .execute(&mut *tx)
                    .await?;
                deleted.push(s.id.clone());
                let data = serde_json::json!({ "id": s.id, "streamgroup": s.streamgroup });
                stream_event(&mut tx, "stream.deleted", &p.organisation_id, &s.id, data).await?;
            }
        }
        for (position, profile) in wanted.iter().enumerate() {
            if let Some(s) = streams.iter().find(|s| &s.profile == profile) {
                sqlx::query("UPDATE streams SET position = $1 WHERE id = $2")
                    .bind(position as i64)
                    .bind(&s.id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            let id = insert_stream(
                &mut tx,
                &passthrough.streamgroup,
                &p.organisation_id,
                profile,
                position,
                &base,
                now,
            )
            .await?;
            let data = serde_json::json!({
                "id": id, "streamgroup": passthrough.streamgroup, "profile": profile,
            });
            stream_event(&mut tx, "stream.created", &p.organisation_id, &id, data).await?;
        }
        let data = serde_json::json!({
            "id": passthrough.id, "streamgroup": passthrough.streamgroup, "profiles": wanted,
        });
        stream_updated(&mut tx, &p.organisation_id, &passthrough.id, data).await?;
        tx.commit().await?;
        Ok((passthrough.id.clone(), deleted))
    }

    /// Deletes a stream: the passthrough stream takes its whole group with it; a profile stream
    /// leaves the rest of its group. Answers the ids of the streams deleted, whose files are to go.
    pub async fn delete_stream(&self, p: &Principal, id: &str) -> Result<Vec<String>, ApiError> {
        p.require_edit()?;
        let row = self.stream_row(p, id).await?;
        let deleted: Vec<String> = if row.profile == "passthrough" {
            sqlx::query("SELECT id FROM streams WHERE group_id = $1")
                .bind(&row.group_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<_, _>>()?
        } else {
            vec![row.id.clone()]
        };
        let mut tx = self.pool.begin().await?;
        if row.profile == "passthrough" {
            sqlx::query("DELETE FROM stream_groups WHERE id = $1")
                .bind(&row.group_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("DELETE FROM streams WHERE id = $1")
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
        }
        for stream in &deleted {
            let data = serde_json::json!({ "id": stream, "streamgroup": row.group_id });
            stream_event(&mut tx, "stream.deleted", &p.organisation_id, stream, data).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    pub(super) async fn stream_row(&self, p: &Principal, id: &str) -> Result<StreamRow, ApiError> {
        sqlx::query_as::<_, StreamRow>(&format!(
            "{STREAM_SELECT} WHERE s.id = $1 AND s.organisation_id = $2"
        ))
        .bind(id)
        .bind(&p.organisation_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("stream"))
    }

    pub async fn settings(&self, stream_id: &str) -> Result<Processing, ApiError> {
        let rows = sqlx::query(
            "SELECT process, enabled, interval_s, duration_s FROM processing_settings WHERE stream_id = $1",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let mut s = Processing::default();
        for r in rows {
            let process: String = r.try_get("process")?;
            let enabled = r.try_get::<i64, _>("enabled")? == 1;
            let interval: Option<i64> = r.try_get("interval_s")?;
            let duration: Option<i64> = r.try_get("duration_s")?;
            match process.as_str() {
                "thumbnail" => {
                    s.thumbnail.enabled = enabled;
                    s.thumbnail.interval = interval.unwrap_or(s.thumbnail.interval);
                }
                "motionclip" => {
                    s.motionclip.enabled = enabled;
                    s.motionclip.interval = interval.unwrap_or(s.motionclip.interval);
                    s.motionclip.duration = duration.unwrap_or(s.motionclip.duration);
                }
                "recording" => {
                    s.recording.enabled = enabled;
                    s.recording.duration = duration;
                }
                "replay" => {
                    s.replay.enabled = enabled;
                    s.replay.duration = duration;
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// Profiles of a new group: passthrough first, then the requested ones in order.
pub(super) fn group_profiles(requested: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let mut out = vec!["passthrough".to_string()];
    for p in requested.unwrap_or_default() {
        if !PROFILES.contains(&p.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_profile",
                format!(
                    "unknown transcoding profile {p:?}; known profiles: {}",
                    PROFILES[1..].join(", ")
                ),
            ));
        }
        if out.contains(p) {
            if p == "passthrough" {
                continue;
            }
            return Err(ApiError::bad_request(
                "duplicate_profile",
                format!("transcoding profile {p:?} is listed twice"),
            ));
        }
        out.push(p.clone());
    }
    Ok(out)
}

pub(super) fn clean_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    if tags.len() > 20 {
        return Err(ApiError::bad_request(
            "invalid_tags",
            "at most 20 tags per stream",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() || t.chars().count() > 64 {
            return Err(ApiError::bad_request(
                "invalid_tags",
                "each tag must be 1 to 64 characters",
            ));
        }
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// A new stream of a group (its profile at `position` in the ladder) with its settings;
/// answers its id.
pub(super) async fn insert_stream(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
    organisation_id: &str,
    profile: &str,
    position: usize,
    settings: &Processing,
    now: i64,
) -> Result<String, ApiError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO streams (id, group_id, organisation_id, profile, streamname, position, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(group_id)
    .bind(organisation_id)
    .bind(profile)
    .bind(new_streamname())
    .bind(position as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    write_settings(tx, &id, settings, now).await?;
    Ok(id)
}

pub(super) async fn write_settings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    stream_id: &str,
    s: &Processing,
    now: i64,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM processing_settings WHERE stream_id = $1")
        .bind(stream_id)
        .execute(&mut **tx)
        .await?;
    let rows: [(&str, bool, Option<i64>, Option<i64>); 4] = [
        (
            "thumbnail",
            s.thumbnail.enabled,
            Some(s.thumbnail.interval),
            None,
        ),
        (
            "motionclip",
            s.motionclip.enabled,
            Some(s.motionclip.interval),
            Some(s.motionclip.duration),
        ),
        ("recording", s.recording.enabled, None, s.recording.duration),
        ("replay", s.replay.enabled, None, s.replay.duration),
    ];
    for (process, enabled, interval, duration) in rows {
        sqlx::query(
            "INSERT INTO processing_settings (stream_id, process, enabled, interval_s, duration_s, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(stream_id)
        .bind(process)
        .bind(enabled as i64)
        .bind(interval)
        .bind(duration)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A stream's row with its group's name and source, and how many profile streams its group has
/// (a passthrough stream lists the group's ABR playlist when there are any).
pub(super) const STREAM_SELECT: &str =
    "SELECT s.id, s.group_id, s.profile, s.streamname, s.created_at, \
     g.name, g.source, (SELECT COUNT(*) FROM streams p WHERE p.group_id = s.group_id \
     AND p.profile <> 'passthrough') AS profile_streams \
     FROM streams s JOIN stream_groups g ON g.id = s.group_id";

#[derive(sqlx::FromRow)]
pub(super) struct StreamRow {
    pub(super) id: String,
    pub(super) group_id: String,
    pub(super) profile: String,
    pub(super) streamname: String,
    pub(super) created_at: i64,
    pub(super) name: String,
    pub(super) source: Option<String>,
    pub(super) profile_streams: i64,
}

impl StreamRow {
    /// What a page calls the stream: its name, else its stream name.
    pub(super) fn title(&self) -> String {
        if self.name.is_empty() {
            self.streamname.clone()
        } else {
            self.name.clone()
        }
    }
}

async fn stream_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: &'static str,
    organisation: &str,
    stream: &str,
    data: serde_json::Value,
) -> Result<(), ApiError> {
    events::record(
        tx,
        events::NewEvent {
            kind,
            organisation_id: organisation,
            stream_id: Some(stream),
            session_id: None,
            data,
        },
    )
    .await?;
    Ok(())
}

async fn stream_updated(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organisation: &str,
    stream: &str,
    data: serde_json::Value,
) -> Result<(), ApiError> {
    stream_event(tx, "stream.updated", organisation, stream, data).await
}
