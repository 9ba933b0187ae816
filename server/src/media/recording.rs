//! Recording (live-to-VOD): a bus consumer that writes the session as fragmented MP4, one
//! fragment per GOP (at least a second), each written and fsync'ed before the next is cut, so a
//! crash or `kill -9` loses at most the fragment being written. With a recording `duration`, a
//! new file starts every `duration` seconds, at the next keyframe.

use std::sync::Arc;

use bytes::Bytes;
use domain::store::NewAsset;
use domain::AssetKind;
use tokio::io::AsyncWriteExt;

use super::bus::Subscription;
use super::mux::cmaf::{Segment, Segmenter};
use super::session::Session;

struct OpenFile {
    asset_id: String,
    file: tokio::fs::File,
    bytes: u64,
    seconds: f64,
}

struct Writer {
    session: Arc<Session>,
    /// Seconds per file; None = one file for the whole session.
    split: Option<i64>,
    init: Option<Bytes>,
    open: Option<OpenFile>,
    index: i64,
}

/// Records until the session ends.
pub async fn run(mut sub: Subscription, session: Arc<Session>) {
    let mut w = Writer {
        split: session.settings.recording.duration,
        session,
        init: None,
        open: None,
        index: 0,
    };
    let mut seg = Segmenter::default();
    seg.rebase_on_init = true;
    while let Some(event) = sub.recv().await {
        // Each file starts at time 0, so players show its own length (a track's first frames
        // become 0; audio and video stay within one AAC frame of each other).
        seg.rebase_next |= w.open.is_none();
        if let Some(cut) = seg.push(&event, 0) {
            w.fragment(cut).await;
        }
    }
    seg.rebase_next |= w.open.is_none();
    if let Some(cut) = seg.flush(0) {
        w.fragment(cut).await;
    }
    w.close("ready").await;
}

impl Writer {
    async fn fragment(&mut self, (new_init, segment): (Option<Bytes>, Segment)) {
        if let Some(init) = new_init {
            // New codec parameters start a new file: an MP4 describes each track once.
            self.close("ready").await;
            self.init = Some(init);
        }
        if let Err(e) = self.write(&segment).await {
            // Keep what is written (the file ends at its last whole fragment); the next
            // fragment tries a new file, so recording resumes when the disk has room again.
            self.session.faults.set("recording", e);
            self.close("ready").await;
            return;
        }
        self.session.faults.clear("recording");
        let full = match (&self.open, self.split) {
            (Some(f), Some(split)) => f.seconds + 0.001 >= split as f64,
            _ => false,
        };
        if full {
            self.close("ready").await;
        }
    }

    async fn write(&mut self, segment: &Segment) -> std::io::Result<()> {
        let Some(f) = self.open.as_mut() else {
            self.open = Some(self.create(segment).await?);
            return Ok(());
        };
        let written = async {
            f.file.write_all(&segment.data).await?;
            // tokio writes in the background: its error (a full disk) comes out of `flush`,
            // not `sync_data`.
            f.file.flush().await?;
            // The fragment is durable before the next one is cut: what a crash can lose is
            // bounded.
            f.file.sync_data().await
        };
        if let Err(e) = written.await {
            // A fragment cut short (a full disk) is cut off: the file stays playable.
            let _ = f.file.set_len(f.bytes).await;
            return Err(e);
        }
        f.bytes += segment.data.len() as u64;
        f.seconds += segment.duration;
        Ok(())
    }

    /// A new file holding the init segment and its first fragment, durable, and then its asset
    /// row: a recording is listed once it has something to watch. Whatever fails on the way
    /// leaves no file behind.
    async fn create(&mut self, first: &Segment) -> std::io::Result<OpenFile> {
        let init = self
            .init
            .clone()
            .ok_or_else(|| std::io::Error::other("no init segment yet"))?;
        let s = &self.session;
        let rel = AssetKind::recording_file(&s.stream_id, &s.session_id, self.index + 1);
        let path = s.shared.assets.file(&rel);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::File::create(&path).await?;
        let started = async {
            file.write_all(&init).await?;
            file.write_all(&first.data).await?;
            file.flush().await?;
            file.sync_all().await?;
            s.shared
                .store
                .insert_asset(&NewAsset {
                    stream_id: s.stream_id.clone(),
                    session_id: Some(s.session_id.clone()),
                    kind: AssetKind::Recording,
                    path: rel,
                    index: self.index + 1,
                    width: None,
                    height: None,
                })
                .await
                .map_err(|e| std::io::Error::other(e.message))
        };
        let asset_id = match started.await {
            Ok(id) => id,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        self.index += 1;
        Ok(OpenFile {
            asset_id,
            file,
            bytes: (init.len() + first.data.len()) as u64,
            seconds: first.duration,
        })
    }

    async fn close(&mut self, status: &str) {
        let Some(mut f) = self.open.take() else {
            return;
        };
        let _ = f.file.flush().await;
        let _ = f.file.sync_all().await;
        let duration_ms = (f.seconds * 1000.0).round() as i64;
        if let Err(e) = self
            .session
            .shared
            .store
            .finish_asset(&f.asset_id, Some(duration_ms), f.bytes as i64, status)
            .await
        {
            tracing::error!(error = %e, "recording: could not finish the asset row");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::testing;

    #[tokio::test]
    async fn records_a_capture_into_one_file_that_decodes_clean() {
        let mut settings = domain::Processing::default();
        settings.recording.enabled = true;
        let t = testing::run_alone(settings, 3, run).await;
        let s = &t.session;
        let rel = AssetKind::recording_file(&s.stream_id, &s.session_id, 1);
        let seconds = testing::decodes_clean(t.file(&rel)).await;
        // Three rounds of the capture: 3.6 s, in one file.
        assert!((3.3..3.9).contains(&seconds), "{seconds} s recorded of 3.6");
        let rows = t.rows(AssetKind::Recording).await;
        assert_eq!(rows, [(rel, "ready".to_string())]);
    }
}
