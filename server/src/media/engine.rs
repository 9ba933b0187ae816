//! The engine: the registry of live sessions. It starts a session when ingest asks (refusing a
//! second publisher), spawns the session's processes with the session handle, starts the
//! rendition ladder of a group with transcoding profiles, and ends sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use domain::store::IngestTarget;

use super::hls::{self, HlsOutput};
use super::ladder::{Capacity, Rendition, Status};
use super::mux::playlist::{multivariant, Variant};
use super::session::{Session, Shared};
use super::{motion_clip, recording, replay, thumbnail, transcode};
use crate::metrics::Prometheus;

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

/// The registry of live sessions and their live HLS outputs.
pub struct Engine {
    pub shared: Arc<Shared>,
    /// The cap on renditions encoded at once.
    pub transcode_capacity: Capacity,
    live: Mutex<HashMap<String, Arc<Session>>>,
    hls: Mutex<HashMap<String, Arc<HlsOutput>>>,
    /// The renditions of each live passthrough stream that has transcoding profiles.
    ladders: Mutex<HashMap<String, Vec<Arc<Status>>>>,
}

impl Engine {
    pub fn new(shared: Arc<Shared>) -> Arc<Engine> {
        Arc::new(Engine {
            shared,
            transcode_capacity: Capacity::default(),
            live: Mutex::default(),
            hls: Mutex::default(),
            ladders: Mutex::default(),
        })
    }

    /// Starts a session on `target`, refusing a second publisher, and the sessions of its
    /// group's transcoding profiles. Spawns the sessions' processes.
    pub async fn start(
        self: &Arc<Self>,
        target: &IngestTarget,
        source: &str,
        app: Option<&str>,
        forced_recording: bool,
    ) -> Result<Arc<Session>, Refusal> {
        if target.profile != "passthrough" {
            return Err(Refusal::ProfileStream(target.stream_id.clone()));
        }
        let session = self.open(target, source, app, forced_recording).await?;
        self.start_ladder(&session, source, forced_recording).await;
        Ok(session)
    }

    /// Starts the renditions of `session`'s transcoding profiles, as many as the cap allows;
    /// the others show "capacity". The ladder ends with the session's bus.
    /// A rendition's session keeps its source's ingest protocol, with the app `transcode`.
    async fn start_ladder(
        self: &Arc<Self>,
        session: &Arc<Session>,
        source: &str,
        forced_recording: bool,
    ) {
        let targets = match self.shared.store.profile_targets(&session.stream_id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(stream = %session.stream_id, error = %e, "could not read the transcoding profiles");
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
            let status = Arc::new(Status::new(
                &t.profile,
                &t.stream_id,
                kbps,
                decode_cpu.clone(),
                session.faults.sink(),
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
                Ok(rendition) => renditions.push(Rendition {
                    session: rendition,
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
            .insert(session.stream_id.clone(), statuses);
        if renditions.is_empty() {
            return;
        }
        let source = session.bus.subscribe();
        let sessions: Vec<_> = renditions.iter().map(|r| r.session.clone()).collect();
        let (engine, runtime, id) = (
            self.clone(),
            tokio::runtime::Handle::current(),
            session.stream_id.clone(),
        );
        let task = tokio::spawn(async move {
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            // Decoding and encoding are long CPU work: threads of their own, never the async
            // workers. (If the thread cannot start, `done` is dropped and we go on at once.)
            let spawned = std::thread::Builder::new()
                .name("transcode".into())
                .spawn(move || {
                    transcode::run(runtime, id, source, renditions, decode_cpu);
                    let _ = done.send(());
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start the transcoder");
            }
            let _ = finished.await;
            for s in sessions {
                engine.stop(&s, "source ended").await;
            }
        });
        session.consumers.lock().expect("consumers").push(task);
    }

    /// The multivariant (ABR) playlist of a live passthrough stream with renditions: the source
    /// first, then each running rendition, as players expect.
    pub fn master_playlist(&self, stream_id: &str) -> Option<String> {
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
        let mut sources = vec![(self.session(stream_id)?, None, "source".to_string())];
        for s in statuses
            .iter()
            .filter(|s| s.is_running() && has_playlist(&s.stream_id))
        {
            if let Some(l) = self.session(&s.stream_id) {
                sources.push((l, Some(s.target_kbps), s.profile.clone()));
            }
        }
        let variants: Vec<Variant> = sources
            .into_iter()
            .filter_map(|(session, target_kbps, name)| variant(&session, target_kbps, name))
            .collect();
        Some(multivariant(&variants))
    }

    /// Like [`Session::warn`], on whatever session of `stream_id` is live now.
    pub async fn warn_stream(&self, stream_id: &str, kind: &'static str, warning: String) {
        match self.session(stream_id) {
            Some(session) => session.warn(kind, warning).await,
            None => self.shared.warn(stream_id, None, kind, warning).await,
        }
    }

    /// Prometheus lines of the transcode cap and each rendition's CPU.
    pub fn render_transcodes(&self, out: &mut Prometheus) {
        let cap = &self.transcode_capacity;
        out.single(
            "liveproc_transcodes",
            "Renditions encoding now.",
            "gauge",
            cap.used(),
        );
        out.single(
            "liveproc_transcodes_max",
            "The cap on renditions encoding at once.",
            "gauge",
            cap.max(),
        );
        out.family(
            "liveproc_rendition_cpu_percent",
            "CPU of a rendition (scale and encode), percent of one core.",
            "gauge",
        );
        for s in self.ladders.lock().expect("ladders").values().flatten() {
            let v = s.view();
            out.sample(
                "liveproc_rendition_cpu_percent",
                &[
                    ("stream", &s.stream_id),
                    ("profile", &s.profile),
                    ("state", &v.state),
                ],
                v.cpu_percent,
            );
        }
    }

    /// Opens a session on `target` (a passthrough stream for ingest, or a profile stream for
    /// its rendition) and spawns its processes.
    async fn open(
        self: &Arc<Self>,
        target: &IngestTarget,
        source: &str,
        app: Option<&str>,
        forced_recording: bool,
    ) -> Result<Arc<Session>, Refusal> {
        // Reserve the stream before the database round trip, so two racing publishers cannot
        // both pass.
        {
            let mut live = self.live.lock().expect("live map");
            if live.contains_key(&target.stream_id) {
                return Err(Refusal::AlreadyLive(target.stream_id.clone()));
            }
            live.insert(
                target.stream_id.clone(),
                Arc::new(Session::placeholder(&target.stream_id, self.shared.clone())),
            );
        }
        let started = self
            .shared
            .store
            .start_session(&target.stream_id, source, app, forced_recording)
            .await;
        let (session_id, saved, package) = match started {
            Ok(s) => s,
            Err(e) => {
                self.live
                    .lock()
                    .expect("live map")
                    .remove(&target.stream_id);
                return Err(Refusal::Store(e.message));
            }
        };
        // Without the package no process runs, whatever the settings say (they were saved
        // while it was on) and whatever the app (`/rec/` publishes as live).
        let refused = !package && (saved.any_enabled() || forced_recording);
        let settings = if package { saved } else { saved.all_off() };
        let session = Arc::new(Session::new(
            &target.stream_id,
            &session_id,
            settings,
            self.shared.clone(),
        ));
        session.faults.report_to(
            self.shared.store.clone(),
            &target.organisation_id,
            &session_id,
        );
        let _ = session.stats.started.set(std::time::Instant::now());
        if refused {
            let warning = "live processing is not in this organisation's package (upgrade \
                           needed): no thumbnails, motion clips, recording or replay on this \
                           session; it plays live only"
                .to_string();
            session.warn("processing_unavailable", warning).await;
        }
        let hls = Arc::new(HlsOutput::default());
        *session.consumers.lock().expect("consumers") =
            spawn_processes(&session, hls.clone(), forced_recording && package).await;
        self.hls
            .lock()
            .expect("hls map")
            .insert(target.stream_id.clone(), hls);
        self.live
            .lock()
            .expect("live map")
            .insert(target.stream_id.clone(), session.clone());
        tracing::info!(stream = %session.stream_id, session = %session.session_id, source, "session started");
        Ok(session)
    }

    /// Ends `session`; its processes drain and finish.
    pub async fn stop(&self, session: &Arc<Session>, reason: &str) {
        let removed = {
            let mut live = self.live.lock().expect("live map");
            match live.get(&session.stream_id) {
                Some(s) if Arc::ptr_eq(s, session) => live.remove(&session.stream_id),
                _ => None,
            }
        };
        if removed.is_none() {
            return;
        }
        // Closing the bus lets processes drain and finish; wait for them, within reason.
        session.bus.close();
        let consumers = std::mem::take(&mut *session.consumers.lock().expect("consumers"));
        for c in consumers {
            if tokio::time::timeout(std::time::Duration::from_secs(10), c)
                .await
                .is_err()
            {
                tracing::warn!(stream = %session.stream_id, "a process did not finish in 10 s");
            }
        }
        self.ladders
            .lock()
            .expect("ladders")
            .remove(&session.stream_id);
        if let Err(e) = self
            .shared
            .store
            .end_session(&session.session_id, reason, session.stats.media_fps())
            .await
        {
            tracing::error!(error = %e, session = %session.session_id, "could not end session");
        }
        tracing::info!(stream = %session.stream_id, session = %session.session_id, reason, "session ended");
    }

    /// Ends every live session (graceful shutdown).
    pub async fn stop_all(&self, reason: &str) {
        for session in self.live() {
            self.stop(&session, reason).await;
        }
    }

    pub fn hls(&self, stream_id: &str) -> Option<Arc<HlsOutput>> {
        self.hls.lock().expect("hls map").get(stream_id).cloned()
    }

    /// The session of `stream_id` that is live now.
    pub fn session(&self, stream_id: &str) -> Option<Arc<Session>> {
        let s = self
            .live
            .lock()
            .expect("live map")
            .get(stream_id)
            .cloned()?;
        (!s.is_placeholder()).then_some(s)
    }

    pub fn live(&self) -> Vec<Arc<Session>> {
        self.live
            .lock()
            .expect("live map")
            .values()
            .filter(|s| !s.is_placeholder())
            .cloned()
            .collect()
    }

    /// A profile stream's rendition while its group is live.
    pub fn transcode(&self, stream_id: &str) -> Option<domain::view::TranscodeView> {
        let ladders = self.ladders.lock().expect("ladders");
        ladders
            .values()
            .flatten()
            .find(|s| s.stream_id == stream_id)
            .map(|s| s.view())
    }
}

/// Spawns the processes `session`'s settings ask for (live HLS always, with replay when on).
async fn spawn_processes(
    session: &Arc<Session>,
    hls: Arc<HlsOutput>,
    forced_recording: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    let settings = session.settings;
    let replay = if settings.replay.enabled {
        match replay::ReplaySink::open(session.clone()).await {
            Ok(r) => Some(r),
            Err(e) => {
                session.faults.set("replay", format!("not started: {e}"));
                None
            }
        }
    } else {
        None
    };
    let sub = || session.bus.subscribe();
    let mut processes = vec![tokio::spawn(hls::run(sub(), session.clone(), hls, replay))];
    if settings.recording.enabled || forced_recording {
        processes.push(tokio::spawn(recording::run(sub(), session.clone())));
    }
    if settings.thumbnail.enabled {
        processes.push(tokio::spawn(thumbnail::run(sub(), session.clone())));
    }
    if settings.motionclip.enabled {
        processes.push(tokio::spawn(motion_clip::run(sub(), session.clone())));
    }
    processes
}

/// What the multivariant playlist says of `session`: its measured bitrate, or the rendition's
/// target (whichever is higher), its picture size and codecs. None before its video is known.
fn variant(session: &Session, target_kbps: Option<u32>, name: String) -> Option<Variant> {
    let (Some(video), audio) = session.bus.params() else {
        return None;
    };
    let codecs = match &audio {
        Some(a) => format!("{},{}", video.codec(), a.codec()),
        None => video.codec(),
    };
    let secs = session
        .stats
        .started
        .get()
        .map_or(1.0, |t| t.elapsed().as_secs_f64().max(1.0));
    let measured = session.stats.bytes.load(Ordering::Relaxed) as f64 * 8.0 / secs;
    let audio_bps = if audio.is_some() { 128_000.0 } else { 0.0 };
    let average = match target_kbps {
        Some(k) => f64::from(k) * 1000.0 + audio_bps,
        None => measured,
    }
    .max(measured)
    .max(64_000.0);
    Some(Variant {
        bandwidth: (average * 1.2) as u64,
        average: average as u64,
        width: video.width,
        height: video.height,
        codecs,
        name,
        stream_id: session.stream_id.clone(),
    })
}
