//! Where the store and the media engine meet, for the REST API and the dashboard's server
//! functions alike: a stream view gets its live figures here, a clip is cut here, and the files
//! of deleted streams and clips are removed here. The store never calls the engine; both front
//! ends call this, so a stream view and a clip request each go one way.

use std::sync::Arc;

use crate::error::ApiError;
use crate::settings::{Processing, ProcessingPatch};
use crate::store::{ListFilter, ListKind, Principal, Store, Urls, DEFAULT_ASSET_LIMIT};
use crate::view::*;

pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What the front ends need of the media engine: live figures, clips cut from replay files,
/// and file removal below the assets folder.
pub trait LiveMedia: Send + Sync {
    fn stats(&self, stream_id: &str) -> Option<LiveStats>;
    fn source_state(&self, stream_id: &str) -> Option<SourceState>;
    /// A profile stream's rendition while its group is live.
    fn transcode(&self, stream_id: &str) -> Option<TranscodeView>;
    fn cut_clip(&self, job: ClipJob) -> BoxFuture<Result<ClipCut, ApiError>>;
    /// Removes files below the assets folder (a missing file is fine).
    fn remove_files(&self, paths: Vec<String>) -> BoxFuture<()>;
    /// Removes every file of a deleted stream.
    fn remove_stream_files(&self, stream_id: String) -> BoxFuture<()>;
}

/// A clip to cut: paths are below the assets folder.
#[derive(Debug, Clone)]
pub struct ClipJob {
    /// The session's replay folder (holding `index.m3u8`).
    pub replay_dir: String,
    pub started_at_ms: i64,
    pub start: f64,
    pub end: f64,
    /// Where the MP4 goes.
    pub out: String,
    /// Where a poster JPEG of the first frame goes, if the engine can make one.
    pub poster: String,
}

/// What a cut wrote.
#[derive(Debug, Clone)]
pub struct ClipCut {
    pub duration: f64,
    pub size: i64,
    pub poster: bool,
}

/// What server code hands to request handlers and server functions.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub media: Arc<dyn LiveMedia>,
    pub urls: Urls,
    /// Wrong API keys per client address (REST API and dashboard sign-in).
    pub auth_failures: Arc<crate::auth_failures::AuthFailures>,
    /// What webhook endpoints may be, and how their deliveries are retried.
    pub webhooks: crate::webhook_policy::Policy,
}

impl Services {
    /// Adds what only the engine knows to a view the store built: live figures, the
    /// rendition's state, the RTSP source's state.
    fn live(&self, mut v: StreamView) -> StreamView {
        if v.state == "live" {
            v.live = self.media.stats(&v.id);
        }
        v.transcode = self.media.transcode(&v.id);
        if v.ingest.source.is_some() {
            v.ingest.source_state = self.media.source_state(&v.id);
        }
        v
    }

    fn all_live(&self, views: Vec<StreamView>) -> Vec<StreamView> {
        views.into_iter().map(|v| self.live(v)).collect()
    }

    pub async fn create_stream(
        &self,
        p: &Principal,
        req: &CreateStream,
    ) -> Result<StreamView, ApiError> {
        let v = self.store.create_stream(p, req, &self.urls).await?;
        Ok(self.live(v))
    }

    pub async fn stream(
        &self,
        p: &Principal,
        id: &str,
        asset_limit: i64,
    ) -> Result<StreamView, ApiError> {
        let v = self.store.stream(p, id, asset_limit, &self.urls).await?;
        Ok(self.live(v))
    }

    pub async fn streams(
        &self,
        p: &Principal,
        filter: &ListFilter,
        asset_limit: i64,
    ) -> Result<Vec<StreamView>, ApiError> {
        let v = self
            .store
            .streams(p, filter, asset_limit, &self.urls)
            .await?;
        Ok(self.all_live(v))
    }

    pub async fn group(
        &self,
        p: &Principal,
        id: &str,
        asset_limit: i64,
    ) -> Result<Vec<StreamView>, ApiError> {
        let v = self.store.group(p, id, asset_limit, &self.urls).await?;
        Ok(self.all_live(v))
    }

    pub async fn update_processing(
        &self,
        p: &Principal,
        id: &str,
        patch: &ProcessingPatch,
    ) -> Result<StreamView, ApiError> {
        let v = self
            .store
            .update_processing(p, id, patch, &self.urls)
            .await?;
        Ok(self.live(v))
    }

    pub async fn update_group_processing(
        &self,
        p: &Principal,
        id: &str,
        patch: &ProcessingPatch,
    ) -> Result<Vec<StreamView>, ApiError> {
        let v = self
            .store
            .update_group_processing(p, id, patch, &self.urls)
            .await?;
        Ok(self.all_live(v))
    }

    pub async fn save_group_settings(
        &self,
        p: &Principal,
        edits: Vec<(String, Processing)>,
    ) -> Result<Vec<StreamView>, ApiError> {
        let v = self.store.save_group_settings(p, edits, &self.urls).await?;
        Ok(self.all_live(v))
    }

    /// Sets a group's profiles; the streams of dropped profiles lose their files too.
    pub async fn set_group_profiles(
        &self,
        p: &Principal,
        id: &str,
        requested: &[String],
    ) -> Result<Vec<StreamView>, ApiError> {
        let (passthrough, deleted) = self
            .store
            .set_group_profiles(p, id, requested, &self.urls)
            .await?;
        self.remove_stream_files(deleted).await;
        self.group(p, &passthrough, DEFAULT_ASSET_LIMIT).await
    }

    /// Adds a webhook endpoint once its URL passed the checks (scheme, addresses).
    pub async fn create_webhook(
        &self,
        p: &Principal,
        req: &crate::view::CreateWebhook,
    ) -> Result<crate::view::WebhookView, ApiError> {
        p.require_edit()?;
        crate::webhook_policy::check_url(&req.url, self.webhooks).await?;
        self.store.create_webhook(p, req).await
    }

    /// A page of a stream's recordings, replays, sessions, thumbnails, motion clips or clips.
    pub async fn page(
        &self,
        p: &Principal,
        id: &str,
        kind: ListKind,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<PageView, ApiError> {
        self.store
            .page(p, id, kind, cursor, limit, &self.urls)
            .await
    }

    /// Deletes a stream (a passthrough stream: its whole group) and its files.
    pub async fn delete_stream(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        let deleted = self.store.delete_stream(p, id).await?;
        self.remove_stream_files(deleted).await;
        Ok(())
    }

    async fn remove_stream_files(&self, streams: Vec<String>) {
        for s in streams {
            self.media.remove_stream_files(s).await;
        }
    }

    /// Cuts `req` from the session's replay and registers the clip.
    pub async fn create_clip(
        &self,
        p: &Principal,
        session_id: &str,
        req: &ClipRequest,
    ) -> Result<ClipView, ApiError> {
        let plan = self.store.plan_clip(p, session_id, req).await?;
        let cut = self.media.cut_clip(plan.job.clone()).await?;
        self.store.register_clip(p, plan, &cut, &self.urls).await
    }

    /// Deletes a clip's row, then its files.
    pub async fn delete_clip(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        let files = self.store.delete_clip(p, id).await?;
        self.media.remove_files(files).await;
        Ok(())
    }
}
