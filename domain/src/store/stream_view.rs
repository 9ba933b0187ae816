//! The stream object that the API and the dashboard show: settings, sessions, counts and
//! the playouts (live, VOD, replay, thumbnails, motion clips) together.

use super::*;

pub const DEFAULT_ASSET_LIMIT: i64 = 10;

impl Store {
    /// A stream for its public watch and embed pages (no principal: stream ids are not
    /// guessable). An organisation that signs its asset URLs signs these page links too:
    /// `signature` is the link's `(expires, sig)`.
    pub async fn public_stream(
        &self,
        id: &str,
        signature: Option<(i64, &str)>,
        urls: &Urls,
    ) -> Result<PublicStream, ApiError> {
        let row = sqlx::query_as::<_, StreamRow>(&format!("{STREAM_SELECT} WHERE s.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("stream"))?;
        self.check_page(id, &format!("stream/{id}"), signature)
            .await?;
        let live = sqlx::query("SELECT id FROM sessions WHERE stream_id = $1 AND ended_at IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        let playlist = if row.profile == "passthrough" && row.profile_streams > 0 {
            "master.m3u8"
        } else {
            "index.m3u8"
        };
        Ok(PublicStream {
            hls: format!("{}/hls/{id}/{playlist}", urls.public),
            title: row.title(),
            state: if live { "live" } else { "idle" }.into(),
            id: row.id,
        })
    }

    /// A session's replay for its public watch and embed pages: like [`Store::public_stream`],
    /// with the replay's HLS URL signed when the organisation signs its assets.
    pub async fn public_replay(
        &self,
        session_id: &str,
        signature: Option<(i64, &str)>,
        urls: &Urls,
    ) -> Result<PublicReplay, ApiError> {
        let asset: Option<AssetRow> = sqlx::query_as(
            "SELECT a.id, a.session_id, a.path, a.status, a.created_at, a.duration_ms, \
             a.width, a.height, a.size_bytes, a.idx, ss.started_at, ss.ended_at FROM assets a \
             JOIN sessions ss ON ss.id = a.session_id \
             WHERE a.session_id = $1 AND a.kind = 'replay'",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        let stream: Option<(String,)> =
            sqlx::query_as("SELECT stream_id FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
        let (Some(a), Some((stream_id,))) = (asset, stream) else {
            return Err(ApiError::not_found("replay of this session"));
        };
        let signer = self
            .check_page(&stream_id, &format!("replay/{session_id}"), signature)
            .await?;
        let row = sqlx::query_as::<_, StreamRow>(&format!("{STREAM_SELECT} WHERE s.id = $1"))
            .bind(&stream_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(PublicReplay {
            session_id: session_id.to_string(),
            title: row.title(),
            started_at: rfc3339(a.started_at.unwrap_or(a.created_at)),
            ended_at: a.ended_at.map(rfc3339),
            hls: asset_url(&urls.public, signer.as_ref(), &a.path),
            stream_id,
        })
    }

    /// Whether a public page of `stream_id`'s may be shown: always, unless its organisation
    /// signs; then only through a valid link for `subject`. Answers the signer, for the page's
    /// own asset URLs.
    async fn check_page(
        &self,
        stream_id: &str,
        subject: &str,
        signature: Option<(i64, &str)>,
    ) -> Result<Option<signing::AssetSigner>, ApiError> {
        let signer = self.asset_signer_of_stream(stream_id).await?;
        if let Some(s) = &signer {
            s.verify_page(subject, signature, now_ms() / 1000)
                .map_err(|r| r.error("pages"))?;
        }
        Ok(signer)
    }

    pub(super) async fn views(
        &self,
        rows: Vec<StreamRow>,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.view(row, asset_limit, urls).await?);
        }
        Ok(out)
    }

    pub(super) async fn view(
        &self,
        row: StreamRow,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        let settings = self.settings(&row.id).await?;
        let open = sqlx::query(
            "SELECT processing FROM sessions WHERE stream_id = $1 AND ended_at IS NULL \
             ORDER BY started_at DESC LIMIT 1",
        )
        .bind(&row.id)
        .fetch_optional(&self.pool)
        .await?;
        let live = open.is_some();
        // Pending: the open session runs with other settings than those saved.
        let pending = match open {
            Some(r) => {
                let snapshot: String = r.try_get("processing")?;
                serde_json::from_str::<Processing>(&snapshot).ok() != Some(settings)
            }
            None => false,
        };
        let tags = sqlx::query("SELECT tag FROM stream_tags WHERE group_id = $1 ORDER BY tag")
            .bind(&row.group_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("tag"))
            .collect::<Result<Vec<_>, _>>()?;
        let counts = self.asset_counts(&row.id).await?;
        let sessions = self.sessions(&row.id, asset_limit.clamp(1, 10)).await?;
        let playout = self
            .playout(&row, &settings, &tags, asset_limit, urls)
            .await?;
        Ok(StreamView {
            ingest: Ingest {
                rtmp: RtmpIngest {
                    url: format!("{}/live", urls.rtmp),
                    rec_url: format!("{}/rec", urls.rtmp),
                    streamname: row.streamname.clone(),
                },
                rtmps: urls.rtmps.as_ref().map(|base| RtmpIngest {
                    url: format!("{base}/live"),
                    rec_url: format!("{base}/rec"),
                    streamname: row.streamname.clone(),
                }),
                srt: urls.srt.as_ref().map(|base| SrtIngest {
                    url: format!("{base}?streamid={}", row.streamname),
                    rec_url: format!("{base}?streamid=rec/{}", row.streamname),
                    streamid: row.streamname.clone(),
                }),
                source: row.source.clone(),
                // Live figures and states come from the engine (`Services`).
                source_state: None,
            },
            id: row.id,
            streamgroup: row.group_id,
            name: row.name,
            streamname: row.streamname,
            profile: row.profile,
            state: if live { "live" } else { "idle" }.into(),
            tags,
            created_at: rfc3339(row.created_at),
            processing: ProcessingView { settings, pending },
            playout,
            asset_counts: counts,
            sessions,
            live: None,
            transcode: None,
        })
    }

    pub(super) async fn asset_counts(&self, stream_id: &str) -> Result<AssetCounts, ApiError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM assets WHERE stream_id = $1 GROUP BY kind",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let mut c = AssetCounts::default();
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let n: i64 = r.try_get("n")?;
            match kind.as_str() {
                "thumbnail" => c.thumbnail = n,
                "motionclip" => c.motionclip = n,
                "recording" => c.recording = n,
                "replay" => c.replay = n,
                _ => {}
            }
        }
        Ok(c)
    }

    /// A passthrough stream's renditions: its group's profile streams in ladder order.
    async fn renditions(
        &self,
        row: &StreamRow,
        urls: &Urls,
    ) -> Result<Vec<RenditionEntry>, ApiError> {
        if row.profile != "passthrough" || row.profile_streams == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT s.id, s.profile, \
             (SELECT ss.width FROM sessions ss WHERE ss.stream_id = s.id AND ss.width IS NOT NULL \
              ORDER BY ss.started_at DESC LIMIT 1), \
             (SELECT ss.height FROM sessions ss WHERE ss.stream_id = s.id AND ss.height IS NOT NULL \
              ORDER BY ss.started_at DESC LIMIT 1) \
             FROM streams s WHERE s.group_id = $1 AND s.profile <> 'passthrough' ORDER BY s.position",
        )
        .bind(&row.group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(stream_id, profile, width, height)| RenditionEntry {
                hls: format!("{}/hls/{stream_id}/index.m3u8", urls.public),
                bitrate_kbps: crate::settings::profile_rung(&profile).map_or(0, |(_, k)| k),
                profile,
                stream_id,
                width,
                height,
            })
            .collect())
    }

    pub(super) async fn playout(
        &self,
        row: &StreamRow,
        settings: &Processing,
        tags: &[String],
        limit: i64,
        urls: &Urls,
    ) -> Result<Playout, ApiError> {
        let base = &urls.public;
        let id = &row.id;
        let signer = self.asset_signer_of_stream(id).await?;
        let e = Entries {
            base,
            signer,
            stream_id: id,
            streamname: &row.streamname,
        };
        let link = |url: String, kind: &str| Link {
            url,
            kind: kind.into(),
        };
        let mut hls = vec![link(format!("{base}/hls/{id}/index.m3u8"), "live")];
        if row.profile == "passthrough" && row.profile_streams > 0 {
            // The group's ABR playlist: the source plus every running rendition.
            hls.push(link(format!("{base}/hls/{id}/master.m3u8"), "abr"));
        }
        // The public watch page: what a viewer without an account opens (`/playout/ID` is the
        // signed-in operator's overview).
        let live = LiveWebEntry {
            url: e.page(&format!("/watch/{id}"), &format!("stream/{id}")),
            kind: "live".into(),
            id: id.clone(),
            stream_id: id.clone(),
            created_at: rfc3339(row.created_at),
            processing: settings
                .enabled_names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            tags: tags.to_vec(),
        };
        let mut out = Playout {
            hls,
            web: vec![WebEntry::Live(live)],
            renditions: self.renditions(row, urls).await?,
            ..Playout::default()
        };
        for a in self.assets(id, "recording", limit).await? {
            out.web.push(WebEntry::Vod(e.vod(&a)));
        }
        for a in self.assets(id, "replay", limit).await? {
            out.replay.extend(e.replay(&a));
        }
        let thumbs = self.assets(id, "thumbnail", limit).await?;
        if settings.thumbnail.enabled || !thumbs.is_empty() {
            out.thumbnails.push(ThumbnailEntry::Link(link(
                e.url(&format!("{id}/thumbnail/latest.jpg")),
                "latest",
            )));
        }
        for a in thumbs {
            out.thumbnails.push(ThumbnailEntry::Image(e.image(&a)));
        }
        let clips = self.assets(id, "motionclip", limit).await?;
        if settings.motionclip.enabled || !clips.is_empty() {
            out.motionclip.push(MotionClipEntry::Link(link(
                e.url(&format!("{id}/motionclip/latest.gif")),
                "latest",
            )));
        }
        for a in clips {
            out.motionclip
                .push(MotionClipEntry::Clip(e.motion_clip(&a)));
        }
        Ok(out)
    }
}

/// Builds the entries of a stream's assets as the stream object and the paged lists show them.
pub(super) struct Entries<'a> {
    pub(super) base: &'a str,
    pub(super) signer: Option<signing::AssetSigner>,
    pub(super) stream_id: &'a str,
    pub(super) streamname: &'a str,
}

impl Entries<'_> {
    /// An asset's URL, signed when the organisation signs them.
    pub(super) fn url(&self, path: &str) -> String {
        asset_url(self.base, self.signer.as_ref(), path)
    }

    /// A public page's link (`/watch/...`), signed for `subject` when the organisation signs.
    pub(super) fn page(&self, path: &str, subject: &str) -> String {
        match &self.signer {
            Some(s) => format!(
                "{}{path}{}",
                self.base,
                s.sign_page(subject, now_ms() / 1000)
            ),
            None => format!("{}{path}", self.base),
        }
    }

    pub(super) fn vod(&self, a: &AssetRow) -> VodEntry {
        VodEntry {
            url: self.url(&a.path),
            kind: "vod".into(),
            created_at: rfc3339(a.created_at),
            stream_id: self.stream_id.to_string(),
            session_id: a.session_id.clone(),
            index: a.idx,
            duration: a.duration_ms.map(|d| d as f64 / 1000.0),
            size: a.size_bytes,
            status: a.status.clone(),
        }
    }

    /// A session's replay (none for a row without its session).
    pub(super) fn replay(&self, a: &AssetRow) -> Option<ReplayEntry> {
        let session = a.session_id.clone()?;
        Some(ReplayEntry {
            url: format!("{}/replay/{session}", self.base),
            watch: self.page(
                &format!("/watch/replay/{session}"),
                &format!("replay/{session}"),
            ),
            hls: self.url(&a.path),
            kind: "session".into(),
            index: a.idx,
            stream_id: self.stream_id.to_string(),
            streamname: self.streamname.to_string(),
            session_id: session,
            started_at: rfc3339(a.started_at.unwrap_or(a.created_at)),
            ended_at: a.ended_at.map(rfc3339),
        })
    }

    pub(super) fn image(&self, a: &AssetRow) -> ImageEntry {
        ImageEntry {
            url: self.url(&a.path),
            kind: "image".into(),
            created_at: rfc3339(a.created_at),
            width: a.width,
            height: a.height,
            preview: self.url(&sibling(&a.path, crate::asset_kind::PREVIEW_SUFFIX)),
            session_id: a.session_id.clone(),
        }
    }

    pub(super) fn motion_clip(&self, a: &AssetRow) -> ClipEntry {
        ClipEntry {
            url: self.url(&a.path),
            kind: "clip".into(),
            created_at: rfc3339(a.created_at),
            duration: a.duration_ms.map(|d| d as f64 / 1000.0),
            mp4: self.url(&sibling(&a.path, ".mp4")),
            width: a.width,
            height: a.height,
            session_id: a.session_id.clone(),
        }
    }
}
