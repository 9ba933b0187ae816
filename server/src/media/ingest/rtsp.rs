//! RTSP pull (retina): one named worker per stream created with an `rtsp://` source. Each worker
//! repeats connect → play → feed the bus, with capped exponential back-off between attempts, and
//! shows its state. The only file that touches retina.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio::sync::watch;
use tracing::Instrument;

use crate::media::frame::{AudioParams, Event, Frame, Track, VideoParams};
use crate::media::Engine;

/// How often the supervisor looks for sources added or removed (API or dashboard).
const RECONCILE: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A camera that sends nothing for this long is treated as gone.
const STALL: Duration = Duration::from_secs(10);

/// What the dashboard and the API show of a source.
#[derive(Debug, Clone, Default)]
pub struct SourceState {
    /// "connecting", "live" or "retrying".
    pub state: &'static str,
    pub last_error: Option<String>,
    pub attempts: u32,
}

struct Worker {
    url: String,
    state: Arc<Mutex<SourceState>>,
    stop: watch::Sender<bool>,
}

/// Keeps one worker per RTSP source in the store.
#[derive(Default)]
pub struct Supervisor {
    workers: Mutex<HashMap<String, Worker>>,
}

impl Supervisor {
    pub fn state(&self, stream_id: &str) -> Option<SourceState> {
        let w = self.workers.lock().expect("rtsp workers");
        w.get(stream_id)
            .map(|w| w.state.lock().expect("source state").clone())
    }

    pub async fn run(self: Arc<Self>, engine: Arc<Engine>) {
        loop {
            match engine.store.rtsp_sources().await {
                Ok(sources) => self.reconcile(&engine, sources),
                Err(e) => tracing::warn!(error = %e, "rtsp: could not list sources"),
            }
            tokio::time::sleep(RECONCILE).await;
        }
    }

    fn reconcile(&self, engine: &Arc<Engine>, sources: Vec<(String, String)>) {
        let mut workers = self.workers.lock().expect("rtsp workers");
        let wanted: HashMap<String, String> = sources.into_iter().collect();
        workers.retain(|id, w| {
            let keep = wanted.get(id) == Some(&w.url);
            if !keep {
                let _ = w.stop.send(true);
                tracing::info!(stream = %id, "rtsp: worker stopped (source removed)");
            }
            keep
        });
        for (id, url) in wanted {
            if workers.contains_key(&id) {
                continue;
            }
            let state = Arc::new(Mutex::new(SourceState {
                state: "connecting",
                ..Default::default()
            }));
            let (stop, stopped) = watch::channel(false);
            let span = tracing::info_span!("rtsp", stream = %id);
            tokio::spawn(
                worker(
                    engine.clone(),
                    id.clone(),
                    url.clone(),
                    state.clone(),
                    stopped,
                )
                .instrument(span),
            );
            workers.insert(id, Worker { url, state, stop });
        }
    }
}

fn set_state(state: &Mutex<SourceState>, f: impl FnOnce(&mut SourceState)) {
    f(&mut state.lock().expect("source state"));
}

async fn worker(
    engine: Arc<Engine>,
    stream_id: String,
    url: String,
    state: Arc<Mutex<SourceState>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        set_state(&state, |s| {
            s.state = "connecting";
            s.attempts += 1;
        });
        // Connecting is abandoned outright on stop; once live, run_once ends its own session.
        let result = tokio::select! {
            r = run_once(&engine, &stream_id, &url, &state, stopped.clone()) => r,
            _ = stopped.changed() => return,
        };
        if *stopped.borrow() {
            return;
        }
        let error = match result {
            Ok(()) => "the source ended the stream".to_string(),
            Err(e) => e,
        };
        tracing::warn!(error = %error, retry_in = ?backoff, "rtsp: source lost");
        set_state(&state, |s| {
            s.state = "retrying";
            s.last_error = Some(error);
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: DESCRIBE, SETUP the H.264 and AAC streams, PLAY, feed frames until the
/// source stops or fails.
async fn run_once(
    engine: &Arc<Engine>,
    stream_id: &str,
    url: &str,
    state: &Mutex<SourceState>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let mut session = Session::describe(
        parsed,
        SessionOptions::default().user_agent("liveproc".into()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut video_i = None;
    let mut audio_i = None;
    for (i, s) in session.streams().iter().enumerate() {
        match (s.media(), s.encoding_name()) {
            ("video", "h264") if video_i.is_none() => video_i = Some(i),
            ("audio", "mpeg4-generic") if audio_i.is_none() => audio_i = Some(i),
            _ => {}
        }
    }
    if video_i.is_none() && audio_i.is_none() {
        let found: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(format!(
            "unsupported codec: the source offers {}; liveproc takes H.264 and AAC",
            found.join(", ")
        ));
    }
    for i in [video_i, audio_i].into_iter().flatten() {
        session
            .setup(
                i,
                SetupOptions::default()
                    .transport(Transport::Tcp(Default::default()))
                    .frame_format(FrameFormat::MP4),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut demuxed = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .demuxed()
        .map_err(|e| e.to_string())?;

    let target = engine
        .store
        .ingest_target_by_id(stream_id)
        .await
        .map_err(|e| e.message)?
        .ok_or("the stream was deleted")?;
    let live = engine
        .start(&target, "rtsp", None, false)
        .await
        .map_err(|e| e.to_string())?;
    set_state(state, |s| {
        s.state = "live";
        s.last_error = None;
    });
    let mut video: Option<VideoParams> = None;
    let mut audio: Option<AudioParams> = None;
    let result = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(STALL, demuxed.next()) => next,
            _ = stopped.changed() => break Ok(()),
        };
        let item = match next {
            Err(_) => break Err(format!("no media for {} s", STALL.as_secs())),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(e.to_string()),
            Ok(Some(Ok(item))) => item,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                let i = f.stream_id();
                if video.is_none() || f.has_new_parameters() {
                    if let Some(ParametersRef::Video(p)) = demuxed.streams()[i].parameters() {
                        match VideoParams::from_avcc(Bytes::copy_from_slice(p.extra_data())) {
                            Ok(p) => {
                                engine.publish(&live, Event::Video(p.clone())).await;
                                video = Some(p);
                            }
                            Err(what) => break Err(format!("malformed {what}")),
                        }
                    }
                }
                if video.is_none() {
                    continue;
                }
                // RTP carries presentation times; cameras rarely use B-frames, so decode
                // order is taken to be presentation order.
                let t = f.timestamp().elapsed();
                live.publish(Event::Frame(Frame {
                    track: Track::Video,
                    dts: t,
                    pts: t,
                    keyframe: f.is_random_access_point(),
                    data: Bytes::from(f.into_data()),
                    arrived: std::time::Instant::now(),
                }));
            }
            CodecItem::AudioFrame(f) => {
                if audio.is_none() {
                    if let Some(ParametersRef::Audio(p)) =
                        demuxed.streams()[f.stream_id()].parameters()
                    {
                        if let Some(p) =
                            AudioParams::from_asc(Bytes::copy_from_slice(p.extra_data()))
                        {
                            engine.publish(&live, Event::Audio(p.clone())).await;
                            audio = Some(p);
                        }
                    }
                }
                if audio.is_none() {
                    continue;
                }
                // AAC's RTP clock is its sample rate, which is the audio timescale.
                let t = f.timestamp().elapsed();
                live.publish(Event::Frame(Frame {
                    track: Track::Audio,
                    dts: t,
                    pts: t,
                    keyframe: true,
                    data: Bytes::copy_from_slice(f.data()),
                    arrived: std::time::Instant::now(),
                }));
            }
            _ => {}
        }
    };
    let reason = match &result {
        Ok(()) => "source ended".to_string(),
        Err(e) => format!("source lost: {e}"),
    };
    engine.stop(&live, &reason).await;
    result
}
