//! Replay: the live HLS segments of a session, also written to disk with their own playlist,
//! kept for the replay `duration` behind the live edge (a sliding window) or for the whole
//! session (an EVENT playlist). At the session's end the playlist gets `#EXT-X-ENDLIST`.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use domain::asset_kind::REPLAY_PLAYLIST;
use domain::AssetKind;

use super::mux::cmaf::Segment;
use super::mux::playlist::{render_playlist, Entry};
use super::session::Session;

pub struct ReplaySink {
    session: Arc<Session>,
    asset_id: String,
    /// `DATA/assets/replay/STREAM/SESSION`.
    dir: PathBuf,
    /// Seconds kept behind the live edge; None = the whole session.
    window: Option<f64>,
    entries: VecDeque<Entry>,
    inits_written: HashSet<u32>,
    /// The newest init segment, kept until it is on disk.
    last_init: Option<Bytes>,
    /// Everything recorded this session, for the asset row.
    total_seconds: f64,
    /// The replay's own segment numbers (seg-N.m4s), consecutive even when writes failed.
    next_sequence: Option<u64>,
    /// Segments were lost (a write failed) since the last one written: the next one starts a
    /// discontinuity.
    gap: bool,
}

impl ReplaySink {
    /// Registers the session's replay asset and makes its folder.
    pub async fn open(session: Arc<Session>) -> Result<ReplaySink, String> {
        let rel = AssetKind::replay_folder(&session.stream_id, &session.session_id);
        let dir = session.shared.assets.file(&rel);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("replay folder: {e}"))?;
        let asset_id = session
            .shared
            .store
            .insert_asset(&domain::store::NewAsset {
                stream_id: session.stream_id.clone(),
                session_id: Some(session.session_id.clone()),
                kind: AssetKind::Replay,
                path: format!("{rel}/{REPLAY_PLAYLIST}"),
                index: 0,
                width: None,
                height: None,
            })
            .await
            .map_err(|e| e.message)?;
        Ok(ReplaySink {
            window: session.settings.replay.duration.map(|w| w as f64),
            session,
            asset_id,
            dir,
            entries: VecDeque::new(),
            inits_written: HashSet::new(),
            total_seconds: 0.0,
            last_init: None,
            next_sequence: None,
            gap: false,
        })
    }

    /// Writes a segment and the playlist; false when it could not (the segment is skipped, the
    /// error shown on the stream, and the next segment tries again).
    pub(crate) async fn segment(&mut self, init: Option<&Bytes>, segment: &Segment) -> bool {
        match self.write(init, segment).await {
            Ok(()) => {
                self.session.faults.clear("replay");
                true
            }
            Err(e) => {
                self.session.faults.set("replay", e);
                self.gap = true;
                false
            }
        }
    }

    async fn write(&mut self, init: Option<&Bytes>, segment: &Segment) -> std::io::Result<()> {
        if let Some(init) = init {
            self.last_init = Some(init.clone());
        }
        let mut entry = segment.entry();
        entry.sequence = *self.next_sequence.get_or_insert(entry.sequence);
        entry.gap = self.gap;
        if !self.inits_written.contains(&entry.init) {
            // The init segment comes once per format; the first segment write that needs it
            // (again, after a failure) writes it.
            if let Some(init) = &self.last_init {
                tokio::fs::write(self.dir.join(format!("init-{}.mp4", entry.init)), init).await?;
                self.inits_written.insert(entry.init);
            }
        }
        let path = self.dir.join(format!("seg-{}.m4s", entry.sequence));
        if let Err(e) = tokio::fs::write(&path, &segment.data).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        self.next_sequence = Some(entry.sequence + 1);
        self.gap = false;
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
        let playlist = self.dir.join(REPLAY_PLAYLIST);
        let tmp = playlist.with_extension("m3u8.tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, playlist).await
    }

    pub(crate) async fn end(self) {
        let ended = self.write_playlist(true).await;
        // What was written stays watchable; only a replay with nothing in it failed.
        let status = if ended.is_err() || self.entries.is_empty() {
            "failed"
        } else {
            "ready"
        };
        if let Err(e) = self
            .session
            .shared
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::hls::{self, HlsOutput};
    use crate::media::session::testing;

    #[tokio::test]
    async fn the_live_segments_are_kept_on_disk_with_an_ended_playlist() {
        let mut settings = domain::Processing::default();
        settings.replay.enabled = true;
        settings.replay.duration = None;
        let live = Arc::new(HlsOutput::default());
        let out = live.clone();
        let t = testing::run_alone(settings, 3, |sub, session| async move {
            let sink = ReplaySink::open(session.clone())
                .await
                .expect("replay opens");
            hls::run(sub, session, out, Some(sink)).await
        })
        .await;
        assert!(live.is_ended());
        let s = &t.session;
        let folder = AssetKind::replay_folder(&s.stream_id, &s.session_id);
        let dir = t.file(&folder);
        let list = std::fs::read_to_string(dir.join("index.m3u8")).expect("the playlist");
        assert!(list.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{list}");
        assert!(list.ends_with("#EXT-X-ENDLIST\n"), "{list}");
        let segments: Vec<&str> = list.lines().filter(|l| l.starts_with("seg-")).collect();
        assert!(segments.len() >= 2, "{list}");
        for seg in segments {
            assert!(dir.join(seg).exists(), "{seg}");
        }
        let total: f64 = list
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
            .sum();
        // Three rounds of the capture: 3.6 s.
        assert!((3.3..3.9).contains(&total), "{total} s of 3.6");
        let rows = t.rows(AssetKind::Replay).await;
        assert_eq!(
            rows,
            [(format!("{folder}/index.m3u8"), "ready".to_string())]
        );
    }
}
