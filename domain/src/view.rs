//! What the API answers and the dashboard shows: the bintu-shaped stream object and friends.
//! Field names are camelCase as in nanoStream's bintu API, so bintu clients port easily.

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::settings::{Processing, ProcessingPatch};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    pub id: String,
    pub streamgroup: String,
    pub name: String,
    pub streamname: String,
    pub profile: String,
    /// "idle" or "live".
    pub state: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub ingest: Ingest,
    pub processing: ProcessingView,
    pub playout: Playout,
    /// How many assets of each process this stream has in all (the lists above are limited).
    pub asset_counts: AssetCounts,
    /// The latest ingest sessions, newest first (the open one while live).
    pub sessions: Vec<SessionView>,
    /// Ingest figures while live (null when idle).
    pub live: Option<LiveStats>,
    /// A profile stream's rendition while its group is live (null otherwise).
    #[serde(default)]
    pub transcode: Option<TranscodeView>,
}

/// A transcoding profile's rendition, while its group is live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TranscodeView {
    /// "starting", "running", "capacity" (not running: the server's transcode cap is reached)
    /// or "failed".
    pub state: String,
    pub message: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The profile's video bitrate, kbit/s.
    pub target_kbps: u32,
    /// Pictures encoded this session.
    pub frames: u64,
    /// CPU of this rendition (scaling and encoding), percent of one core.
    pub cpu_percent: f64,
    /// CPU per encoded picture, milliseconds.
    pub ms_per_frame: Option<f64>,
    /// CPU of decoding the source once for the whole group, percent of one core.
    pub decode_cpu_percent: f64,
}

/// What ingest measures on a live stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LiveStats {
    pub session_id: String,
    pub uptime_seconds: f64,
    /// Over the last few seconds.
    pub bitrate_kbps: f64,
    pub fps: f64,
    /// Between the last two keyframes.
    pub keyframe_interval_ms: Option<i64>,
    /// Events consumers lost because they fell behind (ingest never waits for them).
    pub dropped_frames: u64,
    /// Events waiting on the stream's bus for its slowest consumer.
    pub bus_lag: u64,
    /// Processes that cannot write right now (e.g. the disk is full), by name (`thumbnail`,
    /// `motionclip`, `recording`, `replay`), with the error. They retry by themselves.
    pub process_errors: std::collections::BTreeMap<String, String>,
}

/// One ingest from start to stop, with what ingest learnt about its media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The ingest protocol: "rtmp", "rtsp" or "srt".
    pub source: String,
    /// RTMP application: "live" or "rec".
    pub app: Option<String>,
    /// RFC 6381 codec string, e.g. "avc1.64001f".
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub audio_sample_rate: Option<i64>,
    /// Video frames per second over the session's media time; set when the session ends.
    pub fps: Option<f64>,
    pub end_reason: Option<String>,
    /// What the session dropped or refused, and why (a track the server cannot carry, a
    /// second publisher turned away).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl StreamView {
    pub fn is_live(&self) -> bool {
        self.state == "live"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct Ingest {
    pub rtmp: RtmpIngest,
    /// The same over TLS, when the server's RTMPS listener is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmps: Option<RtmpIngest>,
    /// SRT caller URLs (MPEG-TS with H.264 + AAC), when the server's SRT listener is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtIngest>,
    /// The rtsp:// URL pulled for this stream, or null for RTMP push.
    pub source: Option<String>,
    /// The pull worker's state, for streams with a source.
    #[serde(rename = "sourceState")]
    pub source_state: Option<SourceState>,
}

/// An RTSP pull worker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    /// "connecting", "live" or "retrying".
    pub state: String,
    pub last_error: Option<String>,
    /// Connection attempts so far.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct SrtIngest {
    /// `srt://host:port?streamid=STREAMNAME`: processed as the stream's settings say.
    pub url: String,
    /// The same with recording forced on (`streamid=rec/STREAMNAME`).
    #[serde(rename = "recUrl")]
    pub rec_url: String,
    /// The stream id alone, for encoders that ask for it apart from the URL (OBS: "Stream ID").
    pub streamid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct RtmpIngest {
    /// The `live` application: processed as the stream's settings say.
    pub url: String,
    /// The `rec` application: the same, with recording forced on.
    #[serde(rename = "recUrl")]
    pub rec_url: String,
    pub streamname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct ProcessingView {
    #[serde(flatten)]
    pub settings: Processing,
    /// True while saved settings wait for the stream's next ingest.
    pub pending: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct AssetCounts {
    pub thumbnail: i64,
    pub motionclip: i64,
    pub recording: i64,
    pub replay: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct Playout {
    pub hls: Vec<Link>,
    pub web: Vec<WebEntry>,
    pub replay: Vec<ReplayEntry>,
    pub thumbnails: Vec<ThumbnailEntry>,
    pub motionclip: Vec<MotionClipEntry>,
    /// On a passthrough stream: its group's renditions, one per transcoding profile, so a
    /// player can be set up from one call (empty without profiles, and on profile streams).
    #[serde(default)]
    pub renditions: Vec<RenditionEntry>,
}

/// A rendition of a group: its profile stream's live HLS, its picture size (of its last
/// session; null before one) and its target bitrate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RenditionEntry {
    pub profile: String,
    pub stream_id: String,
    pub hls: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub bitrate_kbps: u32,
}

/// The live player page of a stream, as the documents' `playout.web` live entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LiveWebEntry {
    pub url: String,
    /// Always "live".
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub stream_id: String,
    pub created_at: String,
    /// The processes enabled on the stream.
    pub processing: Vec<String>,
    pub tags: Vec<String>,
}

/// A plain link: live HLS, or a stable `latest` asset URL. Nothing but its two fields, so that
/// the richer entries beside it in a list are never also valid as a link (the OpenAPI `oneOf`
/// of those lists stays unambiguous).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub url: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum WebEntry {
    Vod(VodEntry),
    Live(LiveWebEntry),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VodEntry {
    pub url: String,
    /// Always "vod".
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub stream_id: String,
    pub session_id: Option<String>,
    pub index: i64,
    /// Seconds.
    pub duration: Option<f64>,
    pub size: Option<i64>,
    /// "ready", "writing" or "failed".
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReplayEntry {
    /// The rewatch page (signed-in operators: rewatch, clip & share).
    pub url: String,
    /// The public replay page for viewers without an account (`/watch/replay/SESSION`; its
    /// embeddable twin is `/embed/replay/SESSION` with the same query), signed when the
    /// organisation signs its URLs.
    pub watch: String,
    /// The session's HLS playlist.
    pub hls: String,
    /// Always "session".
    #[serde(rename = "type")]
    pub kind: String,
    pub index: i64,
    pub stream_id: String,
    pub streamname: String,
    pub session_id: String,
    pub started_at: String,
    pub ended_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ThumbnailEntry {
    Image(ImageEntry),
    Link(Link),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    pub url: String,
    /// Always "image".
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// The same picture 320 px wide.
    pub preview: String,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum MotionClipEntry {
    Clip(ClipEntry),
    Link(Link),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClipEntry {
    pub url: String,
    /// Always "clip".
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    /// Seconds.
    pub duration: Option<f64>,
    /// The same span as MP4 (remuxed, not re-encoded), for players.
    pub mp4: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrganisationView {
    pub id: String,
    pub name: String,
    pub packages: Packages,
    pub retention: Retention,
    pub asset_access: AssetAccess,
}

/// Who may fetch the organisation's asset files (recordings, replays, thumbnails, motion clips).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AssetAccess {
    /// false: anyone with a URL; true: only through URLs the API hands out, signed with the
    /// organisation's key, until they expire. Public clips stay public either way.
    pub signed_urls: bool,
    /// How long a signed URL stays valid.
    pub ttl_seconds: i64,
}

/// How long the organisation keeps what the processes write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Recordings older than this many days are deleted; null keeps them.
    pub recording_days: Option<i64>,
    /// Thumbnails and motion clips kept per session (the newest); older ones are deleted.
    pub history_per_session: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Packages {
    /// "enabled" or "upgrade_needed".
    pub live_processing: String,
}

impl OrganisationView {
    pub fn live_processing_enabled(&self) -> bool {
        self.packages.live_processing == "enabled"
    }
}

/// Who is signed in to the dashboard (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub organisation: OrganisationView,
    /// "admin", "editor" or "viewer".
    pub role: String,
    pub operator: bool,
}

impl Me {
    pub fn can_edit(&self) -> bool {
        self.role != "viewer"
    }
}

/// The body of a create request; every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateStream {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub transcoding: Option<Transcoding>,
    /// rtsp:// URL to pull; left out for RTMP push.
    #[serde(default)]
    pub source: Option<String>,
    /// Settings for every stream of the group.
    #[serde(default)]
    pub processing: Option<ProcessingPatch>,
    /// Per-profile settings applied on top of `processing` (key: profile name).
    #[serde(default)]
    pub profile_processing: HashMap<String, ProcessingPatch>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Transcoding {
    pub profiles: Vec<String>,
}

/// A clip cut from a session's replay (`POST /api/v1/replay/{session}/clip`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClipView {
    pub id: String,
    /// The MP4 (moov first, starts at 0).
    pub url: String,
    /// The public share page `/clip/ID`.
    pub share_url: String,
    /// Seconds from the session's start.
    pub start: f64,
    pub end: f64,
    pub duration: f64,
    pub title: Option<String>,
    pub created_at: String,
    pub session_id: String,
    pub stream_id: String,
    pub size: Option<i64>,
    /// A JPEG of the clip's first frame, when one could be made.
    pub poster: Option<String>,
}

/// What `/clip/ID` shows without signing in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedClip {
    pub clip: ClipView,
    /// The stream's name (or its stream name when it has none).
    pub stream_name: String,
    /// When the clip's first frame was live (UTC).
    pub recorded_at: String,
}

/// Body of `POST /api/v1/replay/{session}/clip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct ClipRequest {
    /// In-point, seconds from the session's start.
    pub start: f64,
    /// Out-point, seconds from the session's start.
    pub end: f64,
    #[serde(default)]
    pub title: Option<String>,
}

/// `GET /api/v1/replay/{session}/clips`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct ClipList {
    pub clips: Vec<ClipView>,
}

/// A page of a stream's list (`GET /api/v1/stream/{id}/{kind}`), newest first; `next` is the
/// cursor of the following page, null on the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct PageView {
    pub items: Vec<PageItem>,
    pub next: Option<String>,
}

/// An item of a page: what the stream object shows for its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum PageItem {
    Recording(VodEntry),
    Replay(ReplayEntry),
    Session(SessionView),
    Thumbnail(ImageEntry),
    MotionClip(ClipEntry),
    Clip(ClipView),
}

/// What a public replay page needs of a session (`/watch/replay/SESSION`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicReplay {
    pub session_id: String,
    pub stream_id: String,
    pub title: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The session's replay playlist (signed when the organisation signs).
    pub hls: String,
}

/// What a public watch or embed page needs of a stream (`/watch/ID`, `/embed/ID`): no sign-in,
/// nothing but its title, whether it is live, and what to play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicStream {
    pub id: String,
    pub title: String,
    /// "live" or "idle".
    pub state: String,
    /// The group's ABR playlist when it has renditions, else the stream's own.
    pub hls: String,
}

/// Every event type: what a webhook endpoint may ask for ("*" is every one) and what the
/// dashboard listens to.
pub const EVENT_TYPES: &[&str] = &[
    "stream.created",
    "stream.updated",
    "stream.deleted",
    "stream.live",
    "stream.idle",
    "session.ended",
    "recording.ready",
    "replay.ready",
    "thumbnail.created",
    "motionclip.created",
    "clip.created",
    "asset.deleted",
    "process.error",
    "process.recovered",
    "transcode.state",
    "webhook.test",
];

/// Something that happened to an organisation's streams, as webhooks and the events API send
/// it: `data` is the object concerned as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Unique: receivers de-duplicate by it (deliveries are at least once).
    pub id: String,
    /// The order events committed in; the cursor of `GET /api/v1/events?after=`.
    pub seq: i64,
    /// e.g. "recording.ready".
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub organisation_id: String,
    pub stream_id: Option<String>,
    pub session_id: Option<String>,
    #[cfg_attr(feature = "db", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// A page of events; `next` is the `after` of the next page (the last `seq`, or the one asked
/// for when there were none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<EventView>,
    pub next: i64,
}

/// A webhook endpoint to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    /// http(s) URL; link-local and cloud-metadata addresses are refused (loopback and private
    /// ranges too unless the server allows them).
    pub url: String,
    /// At least 32 bytes; generated when left out.
    #[serde(default)]
    pub secret: Option<String>,
    /// Event types, or ["*"] (the default) for all.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    /// Only in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One event's delivery to one endpoint: the delivery log's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// "pending", "delivered" or "failed" (retried for 24 h first).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    /// The endpoint's last HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}
