//! What the front ends (REST API, dashboard) see of the media side, through
//! [`domain::services::Services`]: the engine's live figures, the RTSP pulls' states, clips cut
//! from replay files, and files removed below the asset folder.

use std::sync::Arc;

use domain::services::{BoxFuture, ClipCut, ClipJob, LiveMedia};
use domain::view::{LiveStats, SourceState, TranscodeView};
use domain::ApiError;

use crate::media::ingest::rtsp::Supervisor;
use crate::media::{clip, Engine};

pub struct MediaSide {
    pub engine: Arc<Engine>,
    pub rtsp: Arc<Supervisor>,
}

impl LiveMedia for MediaSide {
    fn stats(&self, stream_id: &str) -> Option<LiveStats> {
        Some(self.engine.session(stream_id)?.live_stats())
    }

    fn transcode(&self, stream_id: &str) -> Option<TranscodeView> {
        self.engine.transcode(stream_id)
    }

    fn source_state(&self, stream_id: &str) -> Option<SourceState> {
        self.rtsp.state(stream_id).map(|s| SourceState {
            state: s.state.to_string(),
            last_error: s.last_error,
            attempts: s.attempts,
        })
    }

    fn cut_clip(&self, job: ClipJob) -> BoxFuture<Result<ClipCut, ApiError>> {
        let root = self.engine.shared.assets.root().to_path_buf();
        Box::pin(async move { Ok(clip::cut_job(root, job).await?) })
    }

    fn remove_files(&self, paths: Vec<String>) -> BoxFuture<()> {
        let shared = self.engine.shared.clone();
        Box::pin(async move { shared.assets.remove_files(paths).await })
    }

    fn remove_stream_files(&self, stream_id: String) -> BoxFuture<()> {
        let shared = self.engine.shared.clone();
        Box::pin(async move { shared.assets.remove_stream_files(&stream_id).await })
    }
}
