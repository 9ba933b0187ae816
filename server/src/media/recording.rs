//! Recording (live-to-VOD): a bus consumer that writes the session as fragmented MP4, one
//! fragment per GOP (at least a second), each written and fsync'ed before the next is cut, so a
//! crash or `kill -9` loses at most the fragment being written. With a recording `duration`, a
//! new file starts every `duration` seconds, at the next keyframe.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use domain::store::NewAsset;
use tokio::io::AsyncWriteExt;

use super::bus::Subscription;
use super::hls::{Segment, Segmenter};
use super::Engine;

pub struct Recording {
    pub stream_id: String,
    pub session_id: String,
    /// Seconds per file; None = one file for the whole session.
    pub split: Option<i64>,
    /// Where asset paths start (`DATA/assets`).
    pub assets: PathBuf,
}

struct OpenFile {
    asset_id: String,
    file: tokio::fs::File,
    bytes: u64,
    seconds: f64,
}

struct Writer {
    engine: Arc<Engine>,
    rec: Recording,
    init: Option<Bytes>,
    open: Option<OpenFile>,
    index: i64,
}

/// Records until the session ends.
pub async fn run(mut sub: Subscription, engine: Arc<Engine>, rec: Recording) {
    let mut w = Writer {
        engine,
        rec,
        init: None,
        open: None,
        index: 0,
    };
    let mut seg = Segmenter::default();
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
            tracing::error!(stream = %self.rec.stream_id, error = %e, "recording: write failed");
            self.close("failed").await;
            return;
        }
        let full = match (&self.open, self.rec.split) {
            (Some(f), Some(split)) => f.seconds + 0.001 >= split as f64,
            _ => false,
        };
        if full {
            self.close("ready").await;
        }
    }

    async fn write(&mut self, segment: &Segment) -> std::io::Result<()> {
        if self.open.is_none() {
            self.open = Some(self.create().await?);
        }
        let f = self.open.as_mut().expect("file just opened");
        f.file.write_all(&segment.data).await?;
        // The fragment is durable before the next one is cut: what a crash can lose is bounded.
        f.file.sync_data().await?;
        f.bytes += segment.data.len() as u64;
        f.seconds += segment.duration;
        Ok(())
    }

    async fn create(&mut self) -> std::io::Result<OpenFile> {
        let init = self
            .init
            .clone()
            .ok_or_else(|| std::io::Error::other("no init segment yet"))?;
        self.index += 1;
        let rel = format!(
            "recordings/{}/{}-{}.mp4",
            self.rec.stream_id, self.rec.session_id, self.index
        );
        let path = self.rec.assets.join(&rel);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::File::create(&path).await?;
        file.write_all(&init).await?;
        file.sync_all().await?;
        let asset_id = self
            .engine
            .store
            .insert_asset(&NewAsset {
                stream_id: self.rec.stream_id.clone(),
                session_id: Some(self.rec.session_id.clone()),
                kind: "recording",
                path: rel,
                index: self.index,
                width: None,
                height: None,
            })
            .await
            .map_err(|e| std::io::Error::other(e.message))?;
        Ok(OpenFile {
            asset_id,
            file,
            bytes: init.len() as u64,
            seconds: 0.0,
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
            .engine
            .store
            .finish_asset(&f.asset_id, Some(duration_ms), f.bytes as i64, status)
            .await
        {
            tracing::error!(error = %e, "recording: could not finish the asset row");
        }
    }
}
