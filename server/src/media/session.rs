//! A session: one publish of one stream, from its first frame to its end. The handle that
//! ingest publishes on and that every process takes: the bus, the running counters, the faults
//! shown on the stream, and (in [`Shared`]) what processes write through — the store, the asset
//! folder, the decode workers, the latency histograms. Processes never see the engine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::store::{SessionCodecs, Store};
use domain::Processing;

use super::assets::Assets;
use super::bus::Bus;
use super::frame::{Event, Track, VIDEO_TIMESCALE};
use super::workers::Workers;
use crate::metrics::{Latencies, Prometheus};

/// What every session's processes share.
pub struct Shared {
    pub store: Store,
    /// `DATA/assets`: where processes write files and `/assets/…` serves them from.
    pub assets: Assets,
    /// The bounded pools that decode for thumbnails and motion clips.
    pub workers: Workers,
    /// Arrival-to-output latencies, for `/metrics` and the benchmark.
    pub latency: Latencies,
    /// Session warnings so far, by kind.
    warnings: Mutex<BTreeMap<&'static str, u64>>,
}

impl Shared {
    pub fn new(store: Store, assets: std::path::PathBuf) -> Arc<Shared> {
        Arc::new(Shared {
            assets: Assets::new(assets, store.clone()),
            store,
            workers: Workers::default(),
            latency: Latencies::default(),
            warnings: Mutex::default(),
        })
    }

    /// Prometheus lines of the session warnings so far, by kind.
    pub fn render_warnings(&self, out: &mut Prometheus) {
        out.family(
            "liveproc_session_warnings_total",
            "Tracks dropped and publishers refused, by kind (the reasons are on the sessions).",
            "counter",
        );
        for (kind, n) in self.warnings.lock().expect("warning counts").iter() {
            out.sample(
                "liveproc_session_warnings_total",
                &[("kind", kind)],
                *n as f64,
            );
        }
    }

    /// Says on session `session_id` what it dropped or refused (`sessions[].warnings`), logs
    /// it and counts it by `kind` for /metrics.
    pub async fn warn(
        &self,
        stream_id: &str,
        session_id: Option<&str>,
        kind: &'static str,
        warning: String,
    ) {
        tracing::warn!(stream = %stream_id, session = ?session_id, kind, %warning, "session warning");
        *self
            .warnings
            .lock()
            .expect("warning counts")
            .entry(kind)
            .or_default() += 1;
        let Some(session_id) = session_id else {
            return;
        };
        if let Err(e) = self.store.add_session_warning(session_id, &warning).await {
            tracing::error!(error = %e.message, "session warning not stored");
        }
    }
}

/// Running counters of a session, for `/metrics` and the dashboard.
#[derive(Default)]
pub struct SessionStats {
    window: Mutex<Option<RateWindow>>,
    pub bytes: AtomicU64,
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    pub keyframes: AtomicU64,
    last_keyframe_dts: AtomicI64,
    /// The first and last video DTS (90 kHz), for the session's frame rate by media time.
    first_video_dts: std::sync::OnceLock<i64>,
    last_video_dts: AtomicI64,
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

impl SessionStats {
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

    /// The session's frame rate over its media time (what the publisher sent, not how fast it
    /// arrived): kept on the session when it ends. None before two video frames.
    pub fn media_fps(&self) -> Option<f64> {
        let frames = self.video_frames.load(Ordering::Relaxed);
        let first = *self.first_video_dts.get()?;
        let span = self.last_video_dts.load(Ordering::Relaxed) - first;
        (frames > 1 && span > 0).then(|| {
            ((frames - 1) as f64 * VIDEO_TIMESCALE as f64 / span as f64 * 100.0).round() / 100.0
        })
    }

    /// Counts a frame on its way to the bus.
    fn count(&self, event: &Event) {
        let Event::Frame(f) = event else { return };
        self.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
        match f.track {
            Track::Video => {
                self.video_frames.fetch_add(1, Ordering::Relaxed);
                self.first_video_dts.get_or_init(|| f.dts);
                self.last_video_dts.store(f.dts, Ordering::Relaxed);
                if f.keyframe {
                    let prev = self.last_keyframe_dts.swap(f.dts, Ordering::Relaxed);
                    if self.keyframes.fetch_add(1, Ordering::Relaxed) > 0 {
                        self.keyframe_interval_ms
                            .store((f.dts - prev) / 90, Ordering::Relaxed);
                    }
                }
            }
            Track::Audio => {
                self.audio_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Why a session's processes are not writing, while they are not (a full disk, an unwritable
/// folder): shown on the stream (`live.processErrors`) and in `/metrics`. A process records
/// its error on failure and clears it on its next success; it keeps trying meanwhile, so it
/// resumes by itself when the cause goes away.
#[derive(Default)]
pub struct Faults {
    stream_id: String,
    now: Mutex<BTreeMap<&'static str, String>>,
    /// Where a process stopping and resuming is told as an event, once the session row exists.
    events: std::sync::OnceLock<EventSink>,
}

/// Where a session's runtime happenings (a process stopping, a rendition's state) become
/// events: the store, the ids, and the runtime to write from (processes run on threads of
/// their own too).
#[derive(Clone)]
pub struct EventSink {
    store: Store,
    organisation: String,
    session: String,
    runtime: tokio::runtime::Handle,
}

impl EventSink {
    /// Records `kind` about `stream` in this session; a failure is logged, never blocks.
    pub fn tell(&self, kind: &'static str, stream: &str, data: serde_json::Value) {
        let (store, organisation, session, stream) = (
            self.store.clone(),
            self.organisation.clone(),
            self.session.clone(),
            stream.to_string(),
        );
        self.runtime.spawn(async move {
            let event = domain::store::events::NewEvent {
                kind,
                organisation_id: &organisation,
                stream_id: Some(&stream),
                session_id: Some(&session),
                data,
            };
            if let Err(err) = store.add_event(event).await {
                tracing::warn!(error = %err.message, kind, "could not record a runtime event");
            }
        });
    }

    pub fn session(&self) -> &str {
        &self.session
    }
}

impl Faults {
    pub fn new(stream_id: &str) -> Faults {
        Faults {
            stream_id: stream_id.to_string(),
            ..Faults::default()
        }
    }

    /// From now on a process stopping (`process.error`) and resuming (`process.recovered`)
    /// is an event of `organisation`'s, for webhooks and the dashboard.
    pub fn report_to(&self, store: Store, organisation: &str, session: &str) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _ = self.events.set(EventSink {
                store,
                organisation: organisation.to_string(),
                session: session.to_string(),
                runtime,
            });
        }
    }

    /// Where this session's events go, once its row exists.
    pub fn sink(&self) -> Option<EventSink> {
        self.events.get().cloned()
    }

    fn tell(&self, kind: &'static str, process: &str, error: Option<&str>) {
        if let Some(e) = self.events.get() {
            let data = serde_json::json!({
                "streamId": self.stream_id, "sessionId": e.session, "process": process, "error": error,
            });
            e.tell(kind, &self.stream_id, data);
        }
    }

    pub fn set(&self, process: &'static str, error: impl std::fmt::Display) {
        let error = error.to_string();
        let mut now = self.now.lock().expect("faults");
        if now.get(process) != Some(&error) {
            tracing::error!(stream = %self.stream_id, process, error = %error, "process stopped; retrying");
        }
        if !now.contains_key(process) {
            self.tell("process.error", process, Some(&error));
        }
        now.insert(process, error);
    }

    pub fn clear(&self, process: &'static str) {
        if self.now.lock().expect("faults").remove(process).is_some() {
            tracing::info!(stream = %self.stream_id, process, "process writing again");
            self.tell("process.recovered", process, None);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let now = self.now.lock().expect("faults");
        now.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

/// A stream that is ingesting now.
pub struct Session {
    pub stream_id: String,
    pub session_id: String,
    /// The settings the session started with (edits wait for the next ingest).
    pub settings: Processing,
    /// Processes that cannot write right now, and why.
    pub faults: Faults,
    /// The consumer tasks; the session's end waits for them (files finalised, playlists ended).
    pub(super) consumers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub bus: Bus,
    pub stats: SessionStats,
    codecs: Mutex<SessionCodecs>,
    pub shared: Arc<Shared>,
}

impl Session {
    pub fn new(
        stream_id: &str,
        session_id: &str,
        settings: Processing,
        shared: Arc<Shared>,
    ) -> Session {
        Session {
            stream_id: stream_id.to_string(),
            session_id: session_id.to_string(),
            settings,
            faults: Faults::new(stream_id),
            consumers: Mutex::default(),
            bus: Bus::default(),
            stats: SessionStats::default(),
            codecs: Mutex::default(),
            shared,
        }
    }

    /// Holds a stream's place in the live map while its session row is written.
    pub(super) fn placeholder(stream_id: &str, shared: Arc<Shared>) -> Session {
        Session::new(stream_id, "", Processing::default(), shared)
    }

    pub fn is_placeholder(&self) -> bool {
        self.session_id.is_empty()
    }

    /// Puts an event on the bus and counts it; parameter events are also written to the
    /// session row.
    pub async fn publish(&self, event: Event) {
        match &event {
            Event::Video(p) => {
                let p = p.clone();
                self.set_codecs(|c| {
                    c.video_codec = Some(p.codec());
                    c.width = Some(i64::from(p.width));
                    c.height = Some(i64::from(p.height));
                })
                .await
            }
            Event::Audio(p) => {
                let p = p.clone();
                let first = self.codecs.lock().expect("codecs").audio_codec.is_none();
                if let (Some(from), true) = (p.opus.and_then(|o| o.from), first) {
                    let warning = format!(
                        "the source's {from} audio ({} Hz) is transcoded to Opus: browsers \
                         cannot play it from MP4",
                        p.opus.map_or(0, |o| o.input_rate)
                    );
                    self.warn("audio_transcoded", warning).await;
                }
                self.set_codecs(|c| {
                    c.audio_codec = Some(p.codec());
                    c.audio_sample_rate = Some(i64::from(p.sample_rate));
                })
                .await
            }
            Event::Frame(_) => {}
        }
        self.publish_frame(event);
    }

    /// Puts a frame on the bus and counts it (no await: the hot path of ingest).
    pub fn publish_frame(&self, event: Event) {
        self.stats.count(&event);
        self.bus.publish(event);
    }

    /// Says on this session what it dropped or refused (see [`Shared::warn`]).
    pub async fn warn(&self, kind: &'static str, warning: String) {
        self.shared
            .warn(&self.stream_id, Some(&self.session_id), kind, warning)
            .await
    }

    /// Records what ingest learnt about the media.
    async fn set_codecs(&self, update: impl FnOnce(&mut SessionCodecs)) {
        let codecs = {
            let mut c = self.codecs.lock().expect("codecs");
            update(&mut c);
            c.clone()
        };
        if let Err(e) = self
            .shared
            .store
            .set_session_codecs(&self.session_id, &codecs)
            .await
        {
            tracing::warn!(error = %e, "could not record session codecs");
        }
    }

    /// The live figures the stream object shows.
    pub fn live_stats(&self) -> domain::view::LiveStats {
        let (bitrate_kbps, fps) = self.stats.rates();
        let interval = self.stats.keyframe_interval_ms.load(Ordering::Relaxed);
        domain::view::LiveStats {
            session_id: self.session_id.clone(),
            uptime_seconds: self
                .stats
                .started
                .get()
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            bitrate_kbps: (bitrate_kbps * 10.0).round() / 10.0,
            fps: (fps * 10.0).round() / 10.0,
            keyframe_interval_ms: (interval > 0).then_some(interval),
            dropped_frames: self.bus.dropped(),
            bus_lag: self.bus.lag() as u64,
            process_errors: self.faults.snapshot(),
        }
    }
}

/// A session with its own store and asset folder, for the processes' unit tests: no engine,
/// no ingest, a real SQLite database in a temporary folder.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) struct TestSession {
        pub session: Arc<Session>,
        /// Holds the database and asset folder until the test ends.
        _dir: tempfile::TempDir,
    }

    /// A session of a fresh stream with `settings`.
    pub(crate) async fn session(settings: Processing) -> TestSession {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/db.sqlite", dir.path().display());
        let store = Store::connect(&url).await.expect("store");
        let key = "lp_test_operator";
        store.ensure_operator(key).await.expect("operator");
        let p = store
            .authenticate(key)
            .await
            .expect("authenticate")
            .expect("operator key");
        let urls = domain::store::Urls {
            public: "http://localhost".into(),
            rtmp: "rtmp://localhost".into(),
            rtmps: None,
            srt: None,
        };
        let req: domain::view::CreateStream =
            serde_json::from_value(serde_json::json!({"name": "test"})).expect("request");
        let stream = store.create_stream(&p, &req, &urls).await.expect("stream");
        // The row keeps its saved settings; the session runs with `settings`, as a session
        // runs with the settings it started with.
        let (session_id, _, _) = store
            .start_session(&stream.id, "rtmp", Some("live"), false)
            .await
            .expect("session");
        let shared = Shared::new(store, dir.path().join("assets"));
        let session = Arc::new(Session::new(&stream.id, &session_id, settings, shared));
        TestSession { session, _dir: dir }
    }

    /// The fuzz corpus's capture of ffmpeg publishing 64×48 H.264 (10 fps, B-frames) and AAC: RTMP media
    /// messages as (kind, timestamp, length, body), kind even for video.
    pub(crate) const CAPTURE: &[u8] =
        include_bytes!("../../../fuzz/seeds/flv_tags/ffmpeg-64x48-1s");

    /// The capture's messages: (video?, timestamp ms, body).
    fn messages() -> Vec<(bool, u32, bytes::Bytes)> {
        let mut out = Vec::new();
        let mut rest = CAPTURE;
        while rest.len() >= 7 {
            let timestamp = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
            let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
            let body = bytes::Bytes::copy_from_slice(&rest[7..7 + len]);
            out.push((rest[0].is_multiple_of(2), timestamp, body));
            rest = &rest[7 + len..];
        }
        out
    }

    /// Publishes the capture `times` times back to back, as one publisher's clock would go on,
    /// then closes the bus: the session ends. Each round is the capture's frames (12 at 10 fps)
    /// and the audio within them; its end-of-sequence tag and the audio past the last frame
    /// are left out, so rounds join without overlap.
    pub(crate) async fn feed(session: &Session, times: u32) {
        const AAC_FRAME_MS: u32 = 24;
        let messages: Vec<_> = messages()
            .into_iter()
            .filter(|(video, _, body)| !(*video && body.get(1) == Some(&2)))
            .collect();
        let mut video: Vec<u32> = messages.iter().filter(|m| m.0).map(|m| m.1).collect();
        video.dedup();
        let step = video.windows(2).last().map_or(33, |w| w[1] - w[0]);
        let length = video.last().copied().unwrap_or(0) + step;
        let mut demuxer = crate::media::ingest::flv::FlvDemuxer::default();
        for round in 0..times {
            for (is_video, timestamp, body) in &messages {
                if !is_video && timestamp + AAC_FRAME_MS > length {
                    continue;
                }
                let at = timestamp + round * length;
                let events = if *is_video {
                    demuxer.video(at, body.clone()).map(Vec::from_iter)
                } else {
                    demuxer.audio(at, body.clone())
                };
                for event in events.expect("the capture demuxes") {
                    session.publish(event).await;
                }
                // Let processes keep up, as a live source's pace would let them.
                tokio::task::yield_now().await;
            }
        }
        session.bus.close();
    }

    /// Runs `process` alone on a fresh session with `settings` over `rounds` of the capture,
    /// until it has finished with the session's end.
    pub(crate) async fn run_alone<F, Fut>(
        settings: Processing,
        rounds: u32,
        process: F,
    ) -> TestSession
    where
        F: FnOnce(crate::media::bus::Subscription, Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let t = session(settings).await;
        let task = tokio::spawn(process(t.session.bus.subscribe(), t.session.clone()));
        feed(&t.session, rounds).await;
        task.await.expect("the process ends with the session");
        t
    }

    impl TestSession {
        /// A file the process wrote, by its asset path.
        pub(crate) fn file(&self, path: &str) -> std::path::PathBuf {
            self.session.shared.assets.file(path)
        }

        /// The asset rows of `kind`: (path, status).
        pub(crate) async fn rows(&self, kind: domain::AssetKind) -> Vec<(String, String)> {
            let rows = self.session.shared.store.known_files().await.expect("rows");
            rows.into_iter()
                .filter(|r| r.kind == kind.as_str())
                .map(|r| (r.path, r.status))
                .collect()
        }
    }

    /// Asserts that ffmpeg decodes `path` without a word, and answers its duration in seconds
    /// (ffprobe's reading of the container).
    pub(crate) async fn decodes_clean(path: std::path::PathBuf) -> f64 {
        tokio::task::spawn_blocking(move || {
            let run = |cmd: &str, args: &[&str]| {
                std::process::Command::new(cmd)
                    .args(args)
                    .arg(&path)
                    .args(if cmd == "ffmpeg" {
                        &["-f", "null", "-"][..]
                    } else {
                        &[]
                    })
                    .output()
                    .expect("ffmpeg and ffprobe run")
            };
            let decoded = run("ffmpeg", &["-v", "error", "-i"]);
            let errors = String::from_utf8_lossy(&decoded.stderr);
            assert_eq!(errors, "", "ffmpeg on {}", path.display());
            let probe = run(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "csv=p=0",
                ],
            );
            String::from_utf8_lossy(&probe.stdout)
                .trim()
                .parse()
                .expect("a duration")
        })
        .await
        .expect("the check runs")
    }
}
