//! The media engine: ingest turns every live stream into one bus of timed frames; processes
//! (live HLS now; thumbnails, motion clips, recording, replay later) consume it.

pub mod bus;
pub mod clip;
pub mod frame;
pub mod hls;
pub mod ingest;
pub mod motionclip;
pub mod mux;
pub mod picture;
pub mod recording;
pub mod replay;
pub mod thumbnail;
pub mod transcode;
pub mod workers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::store::{IngestTarget, SessionCodecs, Store};
use domain::Processing;

use self::bus::Bus;
use self::frame::{Event, Track};
use self::hls::HlsOutput;

/// Why an ingest was not taken; said in the log line that refuses the peer.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("unknown stream name {0:?}")]
    UnknownStream(String),
    #[error("stream {0} is already live: a second publisher is refused")]
    AlreadyLive(String),
    #[error("stream {0} is a transcoding profile; publish to its group's passthrough stream name")]
    ProfileStream(String),
    #[error("unknown RTMP application {0:?}: use /live or /rec")]
    UnknownApp(String),
    #[error("unsupported codec: {0}")]
    Codec(String),
    #[error("database: {0}")]
    Store(String),
}

/// Running counters of a live stream, for `/metrics` and the dashboard.
#[derive(Default)]
pub struct StreamStats {
    window: Mutex<Option<RateWindow>>,
    pub bytes: AtomicU64,
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    pub keyframes: AtomicU64,
    last_keyframe_dts: AtomicI64,
    /// Milliseconds between the last two keyframes.
    pub keyframe_interval_ms: AtomicI64,
    pub started: std::sync::OnceLock<std::time::Instant>,
}

/// The last rate measurement.
#[derive(Clone, Copy)]
struct RateWindow {
    at: std::time::Instant,
    bytes: u64,
    frames: u64,
    kbps: f64,
    fps: f64,
}

impl StreamStats {
    /// Rates over the time since the previous call (at least a second apart), else the last
    /// rates; the first call measures from the session's start.
    fn rates(&self) -> (f64, f64) {
        let now = std::time::Instant::now();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let frames = self.video_frames.load(Ordering::Relaxed);
        let mut w = self.window.lock().expect("stats window");
        let last = w.unwrap_or(RateWindow {
            at: *self.started.get_or_init(|| now),
            bytes: 0,
            frames: 0,
            kbps: 0.0,
            fps: 0.0,
        });
        let secs = now.duration_since(last.at).as_secs_f64();
        if secs < 1.0 && w.is_some() {
            return (last.kbps, last.fps);
        }
        let secs = secs.max(0.001);
        let next = RateWindow {
            at: now,
            bytes,
            frames,
            kbps: (bytes - last.bytes) as f64 * 8.0 / 1000.0 / secs,
            fps: (frames - last.frames) as f64 / secs,
        };
        *w = Some(next);
        (next.kbps, next.fps)
    }
}

/// A stream that is ingesting now.
pub struct LiveStream {
    pub stream_id: String,
    pub session_id: String,
    pub settings: Processing,
    /// Processes that cannot write right now, and why.
    pub faults: Arc<Faults>,
    /// The consumer tasks; the session's end waits for them (files finalised, playlists ended).
    consumers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub bus: Bus,
    pub stats: StreamStats,
    codecs: Mutex<SessionCodecs>,
}

/// Why a stream's processes are not writing, while they are not (a full disk, an unwritable
/// folder): shown on the stream (`live.processErrors`) and in `/metrics`. A process records
/// its error on failure and clears it on its next success; it keeps trying meanwhile, so it
/// resumes by itself when the cause goes away.
#[derive(Default)]
pub struct Faults {
    stream_id: String,
    now: Mutex<std::collections::BTreeMap<&'static str, String>>,
}

impl Faults {
    pub fn new(stream_id: &str) -> Faults {
        Faults {
            stream_id: stream_id.to_string(),
            now: Mutex::default(),
        }
    }

    pub fn set(&self, process: &'static str, error: impl std::fmt::Display) {
        let error = error.to_string();
        let mut now = self.now.lock().expect("faults");
        if now.get(process) != Some(&error) {
            tracing::error!(stream = %self.stream_id, process, error = %error, "process stopped; retrying");
        }
        now.insert(process, error);
    }

    pub fn clear(&self, process: &'static str) {
        if self.now.lock().expect("faults").remove(process).is_some() {
            tracing::info!(stream = %self.stream_id, process, "process writing again");
        }
    }

    pub fn snapshot(&self) -> std::collections::BTreeMap<String, String> {
        let now = self.now.lock().expect("faults");
        now.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl LiveStream {
    /// Puts an event on the bus and counts it.
    pub fn publish(&self, event: Event) {
        if let Event::Frame(f) = &event {
            let s = &self.stats;
            s.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
            match f.track {
                Track::Video => {
                    s.video_frames.fetch_add(1, Ordering::Relaxed);
                    if f.keyframe {
                        let prev = s.last_keyframe_dts.swap(f.dts, Ordering::Relaxed);
                        if s.keyframes.fetch_add(1, Ordering::Relaxed) > 0 {
                            s.keyframe_interval_ms
                                .store((f.dts - prev) / 90, Ordering::Relaxed);
                        }
                    }
                }
                Track::Audio => {
                    s.audio_frames.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.bus.publish(event);
    }
}

/// The registry of live streams and their live HLS outputs.
pub struct Engine {
    pub store: Store,
    /// `DATA/assets`: where processes write files and `/assets/…` serves them from.
    pub assets: std::path::PathBuf,
    pub rtsp: Arc<ingest::rtsp::Supervisor>,
    /// The bounded pool that decodes for thumbnails and motion clips.
    pub workers: workers::Workers,
    /// Arrival-to-output latencies, for `/metrics` and the benchmark.
    pub latency: Arc<crate::metrics::Latencies>,
    /// The cap on renditions encoded at once.
    pub transcode_capacity: transcode::Capacity,
    live: Mutex<HashMap<String, Arc<LiveStream>>>,
    hls: Mutex<HashMap<String, Arc<HlsOutput>>>,
    /// The renditions of each live passthrough stream that has transcoding profiles.
    ladders: Mutex<HashMap<String, Vec<Arc<transcode::Status>>>>,
    /// Session warnings so far, by kind.
    warnings: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Engine {
    pub fn new(store: Store, assets: std::path::PathBuf) -> Arc<Engine> {
        let engine = Arc::new(Engine {
            store,
            assets,
            rtsp: Arc::default(),
            workers: workers::Workers::default(),
            latency: Arc::default(),
            transcode_capacity: transcode::Capacity::default(),
            live: Mutex::default(),
            hls: Mutex::default(),
            ladders: Mutex::default(),
            warnings: Mutex::default(),
        });
        let weak: std::sync::Weak<dyn domain::store::MediaEngine> = Arc::downgrade(&engine) as _;
        engine.store.set_media_engine(weak);
        engine
    }

    /// Starts a session on `target`, refusing a second publisher, and the sessions of its
    /// group's transcoding profiles. Spawns the streams' consumers.
    pub async fn start(
        self: &Arc<Self>,
        target: &IngestTarget,
        source: &str,
        app: Option<&str>,
        forced_recording: bool,
    ) -> Result<Arc<LiveStream>, Refusal> {
        if target.profile != "passthrough" {
            return Err(Refusal::ProfileStream(target.stream_id.clone()));
        }
        let stream = self.open(target, source, app, forced_recording).await?;
        self.start_ladder(&stream, source, forced_recording).await;
        Ok(stream)
    }

    /// Starts the renditions of `stream`'s transcoding profiles, as many as the cap allows;
    /// the others show "capacity". The ladder ends with the stream's bus.
    /// A rendition's session keeps its source's ingest protocol, with the app `transcode`.
    async fn start_ladder(
        self: &Arc<Self>,
        stream: &Arc<LiveStream>,
        source: &str,
        forced_recording: bool,
    ) {
        let targets = match self.store.profile_targets(&stream.stream_id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(stream = %stream.stream_id, error = %e, "could not read the transcoding profiles");
                return;
            }
        };
        if targets.is_empty() {
            return;
        }
        let decode_cpu = Arc::new(AtomicU64::default());
        let mut statuses = Vec::new();
        let mut renditions = Vec::new();
        for t in targets {
            let Some((height, kbps)) = domain::settings::profile_rung(&t.profile) else {
                continue;
            };
            let status = Arc::new(transcode::Status::new(
                &t.profile,
                &t.stream_id,
                kbps,
                decode_cpu.clone(),
            ));
            statuses.push(status.clone());
            let Some(slot) = self.transcode_capacity.reserve() else {
                let max = self.transcode_capacity.max();
                tracing::warn!(stream = %t.stream_id, profile = %t.profile, max, "rendition not started: transcode capacity reached");
                status.set(
                    "capacity",
                    Some(format!(
                        "not running (capacity): this server encodes at most {max} renditions at once"
                    )),
                );
                continue;
            };
            match self
                .open(&t, source, Some("transcode"), forced_recording)
                .await
            {
                Ok(live) => renditions.push(transcode::Rendition {
                    live,
                    height,
                    status,
                    slot,
                }),
                Err(e) => status.set("failed", Some(e.to_string())),
            }
        }
        self.ladders
            .lock()
            .expect("ladders")
            .insert(stream.stream_id.clone(), statuses);
        if renditions.is_empty() {
            return;
        }
        let source = stream.bus.subscribe();
        let lives: Vec<_> = renditions.iter().map(|r| r.live.clone()).collect();
        let (engine, runtime, id) = (
            self.clone(),
            tokio::runtime::Handle::current(),
            stream.stream_id.clone(),
        );
        let task = tokio::spawn(async move {
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            let e = engine.clone();
            // Decoding and encoding are long CPU work: threads of their own, never the async
            // workers. (If the thread cannot start, `done` is dropped and we go on at once.)
            let spawned = std::thread::Builder::new()
                .name("transcode".into())
                .spawn(move || {
                    transcode::run(e, runtime, id, source, renditions, decode_cpu);
                    let _ = done.send(());
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start the transcoder");
            }
            let _ = finished.await;
            for live in lives {
                engine.stop(&live, "source ended").await;
            }
        });
        stream.consumers.lock().expect("consumers").push(task);
    }

    /// The multivariant (ABR) playlist of a live passthrough stream with renditions: the source
    /// first, then each running rendition, as players expect.
    pub fn master_playlist(&self, stream_id: &str) -> Option<String> {
        use std::fmt::Write;
        let statuses = self
            .ladders
            .lock()
            .expect("ladders")
            .get(stream_id)
            .cloned()?;
        self.hls(stream_id)?.playlist()?;
        // Players read the variants once: wait (404, players retry) until every rendition that
        // is starting has its first segment, unless one takes unreasonably long.
        let has_playlist = |id: &str| self.hls(id).and_then(|h| h.playlist()).is_some();
        let waiting = statuses.iter().any(|s| {
            matches!(s.state().0, "starting" | "running")
                && !has_playlist(&s.stream_id)
                && s.age() < std::time::Duration::from_secs(10)
        });
        if waiting {
            return None;
        }
        let live = |id: &str| self.live.lock().expect("live map").get(id).cloned();
        let mut variants = vec![(live(stream_id)?, None, "source".to_string())];
        for s in statuses
            .iter()
            .filter(|s| s.is_running() && has_playlist(&s.stream_id))
        {
            if let Some(l) = live(&s.stream_id) {
                variants.push((l, Some(s.target_kbps), s.profile.clone()));
            }
        }
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        for (live, target_kbps, name) in variants {
            let (Some(video), audio) = live.bus.params() else {
                continue;
            };
            let codecs = match &audio {
                Some(a) => format!("{},{}", video.codec(), a.codec()),
                None => video.codec(),
            };
            let secs = live
                .stats
                .started
                .get()
                .map_or(1.0, |t| t.elapsed().as_secs_f64().max(1.0));
            let measured = live.stats.bytes.load(Ordering::Relaxed) as f64 * 8.0 / secs;
            let audio_bps = if audio.is_some() { 128_000.0 } else { 0.0 };
            let average = match target_kbps {
                Some(k) => f64::from(k) * 1000.0 + audio_bps,
                None => measured,
            }
            .max(measured)
            .max(64_000.0);
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{codecs}\",NAME=\"{name}\"\n../{}/index.m3u8\n",
                (average * 1.2) as u64,
                average as u64,
                video.width,
                video.height,
                live.stream_id,
            );
        }
        Some(out)
    }

    /// Says on `live`'s session what it dropped or refused (`sessions[].warnings`), logs it
    /// and counts it by `kind` for /metrics.
    pub async fn warn(&self, live: &LiveStream, kind: &'static str, warning: String) {
        tracing::warn!(stream = %live.stream_id, session = %live.session_id, kind, %warning, "session warning");
        *self
            .warnings
            .lock()
            .expect("warning counts")
            .entry(kind)
            .or_default() += 1;
        if let Err(e) = self
            .store
            .add_session_warning(&live.session_id, &warning)
            .await
        {
            tracing::error!(error = %e.message, "session warning not stored");
        }
    }

    /// Like [`warn`](Self::warn), on whatever session of `stream_id` is live now.
    pub async fn warn_stream(&self, stream_id: &str, kind: &'static str, warning: String) {
        let live = self.live.lock().expect("live map").get(stream_id).cloned();
        match live.filter(|l| !l.session_id.is_empty()) {
            Some(live) => self.warn(&live, kind, warning).await,
            None => {
                tracing::warn!(stream = %stream_id, kind, %warning, "warning without a live session")
            }
        }
    }

    /// Prometheus lines of the session warnings so far, by kind.
    pub fn render_warnings(&self) -> String {
        let mut out = String::from(
            "# HELP liveproc_session_warnings_total Tracks dropped and publishers refused, by kind (the reasons are on the sessions).\n# TYPE liveproc_session_warnings_total counter\n",
        );
        for (kind, n) in self.warnings.lock().expect("warning counts").iter() {
            out += &format!("liveproc_session_warnings_total{{kind=\"{kind}\"}} {n}\n");
        }
        out
    }

    /// Prometheus lines of the transcode cap and each rendition's CPU.
    pub fn render_transcodes(&self) -> String {
        use std::fmt::Write;
        let cap = &self.transcode_capacity;
        let mut out = format!(
            "# HELP liveproc_transcodes Renditions encoding now.\n# TYPE liveproc_transcodes gauge\nliveproc_transcodes {}\n\
             # HELP liveproc_transcodes_max The cap on renditions encoding at once.\n# TYPE liveproc_transcodes_max gauge\nliveproc_transcodes_max {}\n\
             # HELP liveproc_rendition_cpu_percent CPU of a rendition (scale and encode), percent of one core.\n# TYPE liveproc_rendition_cpu_percent gauge\n",
            cap.used(),
            cap.max()
        );
        for s in self.ladders.lock().expect("ladders").values().flatten() {
            let v = s.view();
            let _ = writeln!(
                out,
                "liveproc_rendition_cpu_percent{{stream=\"{}\",profile=\"{}\",state=\"{}\"}} {}",
                s.stream_id, s.profile, v.state, v.cpu_percent
            );
        }
        out
    }

    /// Opens a session on `target` (a passthrough stream for ingest, or a profile stream for
    /// its rendition) and spawns its consumers.
    async fn open(
        self: &Arc<Self>,
        target: &IngestTarget,
        source: &str,
        app: Option<&str>,
        forced_recording: bool,
    ) -> Result<Arc<LiveStream>, Refusal> {
        // Reserve the stream before the database round trip, so two racing publishers cannot
        // both pass.
        {
            let mut live = self.live.lock().expect("live map");
            if live.contains_key(&target.stream_id) {
                return Err(Refusal::AlreadyLive(target.stream_id.clone()));
            }
            live.insert(
                target.stream_id.clone(),
                Arc::new(placeholder(&target.stream_id)),
            );
        }
        let started = self
            .store
            .start_session(&target.stream_id, source, app, forced_recording)
            .await;
        let (session_id, settings) = match started {
            Ok(s) => s,
            Err(e) => {
                self.live
                    .lock()
                    .expect("live map")
                    .remove(&target.stream_id);
                return Err(Refusal::Store(e.message));
            }
        };
        let stream = Arc::new(LiveStream {
            stream_id: target.stream_id.clone(),
            session_id,
            settings,
            faults: Arc::new(Faults::new(&target.stream_id)),
            consumers: Mutex::default(),
            bus: Bus::default(),
            stats: StreamStats::default(),
            codecs: Mutex::default(),
        });
        let _ = stream.stats.started.set(std::time::Instant::now());
        let hls = Arc::new(HlsOutput::default());
        let replay = if settings.replay.enabled {
            match replay::ReplaySink::open(
                self.clone(),
                &stream.stream_id,
                &stream.session_id,
                settings.replay.duration,
                stream.faults.clone(),
            )
            .await
            {
                Ok(r) => Some(r),
                Err(e) => {
                    stream.faults.set("replay", format!("not started: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let mut consumers = vec![tokio::spawn(hls::run(
            stream.bus.subscribe(),
            hls.clone(),
            replay,
            self.latency.clone(),
        ))];
        if settings.recording.enabled || forced_recording {
            let rec = recording::Recording {
                stream_id: stream.stream_id.clone(),
                session_id: stream.session_id.clone(),
                split: settings.recording.duration,
                assets: self.assets.clone(),
                faults: stream.faults.clone(),
            };
            consumers.push(tokio::spawn(recording::run(
                stream.bus.subscribe(),
                self.clone(),
                rec,
            )));
        }
        if settings.thumbnail.enabled {
            consumers.push(tokio::spawn(thumbnail::run(
                stream.bus.subscribe(),
                self.clone(),
                thumbnail::Thumbnails {
                    stream_id: stream.stream_id.clone(),
                    session_id: stream.session_id.clone(),
                    interval: settings.thumbnail.interval,
                    faults: stream.faults.clone(),
                },
            )));
        }
        if settings.motionclip.enabled {
            consumers.push(tokio::spawn(motionclip::run(
                stream.bus.subscribe(),
                self.clone(),
                motionclip::MotionClips {
                    stream_id: stream.stream_id.clone(),
                    session_id: stream.session_id.clone(),
                    interval: settings.motionclip.interval,
                    duration: settings.motionclip.duration,
                    faults: stream.faults.clone(),
                },
            )));
        }
        *stream.consumers.lock().expect("consumers") = consumers;
        self.hls
            .lock()
            .expect("hls map")
            .insert(target.stream_id.clone(), hls);
        self.live
            .lock()
            .expect("live map")
            .insert(target.stream_id.clone(), stream.clone());
        tracing::info!(stream = %stream.stream_id, session = %stream.session_id, source, "session started");
        Ok(stream)
    }

    /// Puts an event on `stream`'s bus; parameter events are also written to the session row.
    pub async fn publish(&self, stream: &LiveStream, event: Event) {
        match &event {
            Event::Video(p) => {
                let p = p.clone();
                self.set_codecs(stream, |c| {
                    c.video_codec = Some(p.codec());
                    c.width = Some(i64::from(p.width));
                    c.height = Some(i64::from(p.height));
                })
                .await
            }
            Event::Audio(p) => {
                let p = p.clone();
                let first = stream.codecs.lock().expect("codecs").audio_codec.is_none();
                if let (Some(opus), true) = (p.opus, first) {
                    let warning = format!(
                        "the source's {} audio ({} Hz) is transcoded to Opus: browsers cannot \
                         play it from MP4",
                        opus.from, opus.input_rate
                    );
                    self.warn(stream, "audio_transcoded", warning).await;
                }
                self.set_codecs(stream, |c| {
                    c.audio_codec = Some(p.codec());
                    c.audio_sample_rate = Some(i64::from(p.sample_rate));
                })
                .await
            }
            Event::Frame(_) => {}
        }
        stream.publish(event);
    }

    /// Records what ingest learnt about the media.
    async fn set_codecs(&self, stream: &LiveStream, update: impl FnOnce(&mut SessionCodecs)) {
        let codecs = {
            let mut c = stream.codecs.lock().expect("codecs");
            update(&mut c);
            c.clone()
        };
        if let Err(e) = self
            .store
            .set_session_codecs(&stream.session_id, &codecs)
            .await
        {
            tracing::warn!(error = %e, "could not record session codecs");
        }
    }

    /// Ends the session of `stream`; its consumers drain and finish.
    pub async fn stop(&self, stream: &Arc<LiveStream>, reason: &str) {
        let removed = {
            let mut live = self.live.lock().expect("live map");
            match live.get(&stream.stream_id) {
                Some(s) if Arc::ptr_eq(s, stream) => live.remove(&stream.stream_id),
                _ => None,
            }
        };
        if removed.is_some() {
            // Closing the bus lets consumers drain and finish; wait for them, within reason.
            stream.bus.close();
            let consumers = std::mem::take(&mut *stream.consumers.lock().expect("consumers"));
            for c in consumers {
                if tokio::time::timeout(std::time::Duration::from_secs(10), c)
                    .await
                    .is_err()
                {
                    tracing::warn!(stream = %stream.stream_id, "a consumer did not finish in 10 s");
                }
            }
            self.ladders
                .lock()
                .expect("ladders")
                .remove(&stream.stream_id);
            if let Err(e) = self.store.end_session(&stream.session_id, reason).await {
                tracing::error!(error = %e, session = %stream.session_id, "could not end session");
            }
            tracing::info!(stream = %stream.stream_id, session = %stream.session_id, reason, "session ended");
        }
    }

    /// Registers a finished history file (a thumbnail or motion clip of a session), then trims
    /// the session's history to what its organisation keeps, removing the dropped files and the
    /// file next to each (`sibling`: ".320.jpg" previews, ".mp4" remuxes).
    pub(crate) async fn register_history(
        &self,
        asset: &domain::store::NewAsset,
        duration_ms: Option<i64>,
        size: i64,
        sibling: &str,
    ) -> Result<(), domain::ApiError> {
        let id = self.store.insert_asset(asset).await?;
        self.store
            .finish_asset(&id, duration_ms, size, "ready")
            .await?;
        let session = asset.session_id.as_deref().unwrap_or_default();
        let old = self.store.prune_history(session, asset.kind).await?;
        let files = old
            .iter()
            .flat_map(|p| [p.clone(), domain::store::sibling(p, sibling)])
            .collect();
        self.remove_asset_files(files).await;
        Ok(())
    }

    /// Removes files below the assets folder (a missing file is fine).
    pub async fn remove_asset_files(&self, paths: Vec<String>) {
        remove_files(self.assets.clone(), paths).await
    }

    /// Ends every live session (graceful shutdown).
    pub async fn stop_all(&self, reason: &str) {
        for stream in self.live() {
            self.stop(&stream, reason).await;
        }
    }

    pub fn hls(&self, stream_id: &str) -> Option<Arc<HlsOutput>> {
        self.hls.lock().expect("hls map").get(stream_id).cloned()
    }

    pub fn live(&self) -> Vec<Arc<LiveStream>> {
        self.live
            .lock()
            .expect("live map")
            .values()
            .filter(|s| !s.session_id.is_empty())
            .cloned()
            .collect()
    }
}

impl domain::store::MediaEngine for Engine {
    fn stats(&self, stream_id: &str) -> Option<domain::view::LiveStats> {
        let s = self
            .live
            .lock()
            .expect("live map")
            .get(stream_id)
            .cloned()?;
        if s.session_id.is_empty() {
            return None;
        }
        let (bitrate_kbps, fps) = s.stats.rates();
        let interval = s.stats.keyframe_interval_ms.load(Ordering::Relaxed);
        Some(domain::view::LiveStats {
            session_id: s.session_id.clone(),
            uptime_seconds: s
                .stats
                .started
                .get()
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            bitrate_kbps: (bitrate_kbps * 10.0).round() / 10.0,
            fps: (fps * 10.0).round() / 10.0,
            keyframe_interval_ms: (interval > 0).then_some(interval),
            dropped_frames: s.bus.dropped(),
            bus_lag: s.bus.lag() as u64,
            process_errors: s.faults.snapshot(),
        })
    }

    fn transcode(&self, stream_id: &str) -> Option<domain::view::TranscodeView> {
        let ladders = self.ladders.lock().expect("ladders");
        ladders
            .values()
            .flatten()
            .find(|s| s.stream_id == stream_id)
            .map(|s| s.view())
    }

    fn source_state(&self, stream_id: &str) -> Option<domain::view::SourceState> {
        self.rtsp
            .state(stream_id)
            .map(|s| domain::view::SourceState {
                state: s.state.to_string(),
                last_error: s.last_error,
                attempts: s.attempts,
            })
    }

    fn cut_clip(
        &self,
        job: domain::store::ClipJob,
    ) -> domain::store::BoxFuture<Result<domain::store::ClipCut, domain::ApiError>> {
        let assets = self.assets.clone();
        Box::pin(async move {
            let began = std::time::Instant::now();
            let out = assets.join(&job.out);
            let poster = assets.join(&job.poster);
            let cut = tokio::task::spawn_blocking(move || {
                if let Some(dir) = out.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| clip::ClipError::Io(format!("clip folder: {e}")))?;
                }
                let cut = clip::cut(
                    &assets.join(&job.replay_dir),
                    job.started_at_ms,
                    job.start,
                    job.end,
                    &out,
                )?;
                // The share page's poster: the clip's first shown frame (fine without).
                let has_poster = match &cut.first_frame {
                    Some(f) => picture::poster(&f.avcc, &f.frames, f.rank, &poster)
                        .map_err(|e| tracing::warn!(error = %e, "clip poster failed"))
                        .is_ok(),
                    None => false,
                };
                Ok::<_, clip::ClipError>((cut, has_poster))
            })
            .await
            .map_err(|e| domain::ApiError::new(500, "clip_failed", e.to_string()))??;
            let (cut, has_poster) = cut;
            tracing::info!(
                seconds = cut.duration,
                bytes = cut.size,
                took_ms = began.elapsed().as_millis() as u64,
                "clip cut"
            );
            Ok(domain::store::ClipCut {
                duration: cut.duration,
                size: cut.size as i64,
                poster: has_poster,
            })
        })
    }

    fn remove_files(&self, paths: Vec<String>) -> domain::store::BoxFuture<()> {
        Box::pin(remove_files(self.assets.clone(), paths))
    }

    fn remove_stream_files(&self, stream_id: String) -> domain::store::BoxFuture<()> {
        Box::pin(remove_stream_files(self.assets.clone(), stream_id))
    }
}

/// Holds a stream's place in the live map while its session row is written.
fn placeholder(stream_id: &str) -> LiveStream {
    LiveStream {
        stream_id: stream_id.to_string(),
        session_id: String::new(),
        settings: Processing::default(),
        faults: Arc::default(),
        consumers: Mutex::default(),
        bus: Bus::default(),
        stats: StreamStats::default(),
        codecs: Mutex::default(),
    }
}

/// Removes the files of a deleted stream (its rows are gone with it).
async fn remove_stream_files(assets: std::path::PathBuf, stream_id: String) {
    for kind in ["recordings", "replay", "clips", "thumbnails", "motionclips"] {
        let dir = assets.join(kind).join(&stream_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "could not delete files"),
        }
    }
}

async fn remove_files(assets: std::path::PathBuf, paths: Vec<String>) {
    for p in paths {
        match tokio::fs::remove_file(assets.join(&p)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %p, error = %e, "could not delete a file"),
        }
    }
}
