//! Replay: the live HLS segments of a session, also written to disk with their own playlist,
//! kept for the replay `duration` behind the live edge (a sliding window) or for the whole
//! session (an EVENT playlist). At the session's end the playlist gets `#EXT-X-ENDLIST`.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::hls::{render_playlist, Entry, Segment};
use super::Engine;

pub struct ReplaySink {
    engine: Arc<Engine>,
    asset_id: String,
    /// `DATA/assets/replay/STREAM/SESSION`.
    dir: PathBuf,
    /// Seconds kept behind the live edge; None = the whole session.
    window: Option<f64>,
    entries: VecDeque<Entry>,
    inits_written: HashSet<u32>,
    /// Everything recorded this session, for the asset row.
    total_seconds: f64,
    failed: bool,
}

impl ReplaySink {
    /// Registers the session's replay asset and makes its folder.
    pub async fn open(
        engine: Arc<Engine>,
        stream_id: &str,
        session_id: &str,
        window: Option<i64>,
    ) -> Result<ReplaySink, String> {
        let rel = format!("replay/{stream_id}/{session_id}");
        let dir = engine.assets.join(&rel);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("replay folder: {e}"))?;
        let asset_id = engine
            .store
            .insert_asset(&domain::store::NewAsset {
                stream_id: stream_id.to_string(),
                session_id: Some(session_id.to_string()),
                kind: "replay",
                path: format!("{rel}/index.m3u8"),
                index: 0,
                width: None,
                height: None,
            })
            .await
            .map_err(|e| e.message)?;
        Ok(ReplaySink {
            engine,
            asset_id,
            dir,
            window: window.map(|w| w as f64),
            entries: VecDeque::new(),
            inits_written: HashSet::new(),
            total_seconds: 0.0,
            failed: false,
        })
    }

    /// Writes a segment and the playlist; false when nothing was written (a failed replay).
    pub(crate) async fn segment(&mut self, init: Option<&Bytes>, segment: &Segment) -> bool {
        if self.failed {
            return false;
        }
        if let Err(e) = self.write(init, segment).await {
            tracing::error!(error = %e, dir = %self.dir.display(), "replay: write failed");
            self.failed = true;
            return false;
        }
        true
    }

    async fn write(&mut self, init: Option<&Bytes>, segment: &Segment) -> std::io::Result<()> {
        let entry = segment.entry();
        if let Some(init) = init {
            if self.inits_written.insert(entry.init) {
                tokio::fs::write(self.dir.join(format!("init-{}.mp4", entry.init)), init).await?;
            }
        }
        tokio::fs::write(
            self.dir.join(format!("seg-{}.m4s", entry.sequence)),
            &segment.data,
        )
        .await?;
        self.entries.push_back(entry);
        self.total_seconds += entry.duration;
        // Slide: drop the oldest segments while the rest still cover the window.
        if let Some(window) = self.window {
            while self.entries.len() > 1 {
                let kept: f64 = self.entries.iter().skip(1).map(|e| e.duration).sum();
                if kept < window {
                    break;
                }
                if let Some(old) = self.entries.pop_front() {
                    let _ =
                        tokio::fs::remove_file(self.dir.join(format!("seg-{}.m4s", old.sequence)))
                            .await;
                }
            }
        }
        self.write_playlist(false).await
    }

    /// Replaces the playlist in one step (write, then rename), so players never read half of it.
    async fn write_playlist(&self, ended: bool) -> std::io::Result<()> {
        let kind = if self.window.is_none() {
            Some("EVENT")
        } else {
            None
        };
        let text = render_playlist(self.entries.iter().copied(), kind, ended);
        let tmp = self.dir.join("index.m3u8.tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, self.dir.join("index.m3u8")).await
    }

    pub(crate) async fn end(self) {
        let ended = self.write_playlist(true).await;
        let status = if self.failed || ended.is_err() {
            "failed"
        } else {
            "ready"
        };
        if let Err(e) = self
            .engine
            .store
            .finish_asset(
                &self.asset_id,
                Some((self.total_seconds * 1000.0).round() as i64),
                0,
                status,
            )
            .await
        {
            tracing::error!(error = %e, "replay: could not finish the asset row");
        }
    }
}
