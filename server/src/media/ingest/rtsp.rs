//! RTSP pull (retina): one named worker per stream created with an `rtsp://` source. Each worker
//! repeats connect → play → feed the bus, with capped exponential back-off between attempts, and
//! shows its state. The only file that touches retina (the fuzz target goes through it too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use retina::client::{Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio::sync::watch;
use tracing::Instrument;

use super::to_opus::{SourceAudio, ToOpus, TranscodeError};
use crate::media::frame::{hevc_irap, AudioParams, Event, Frame, Track, VideoParams};
use crate::media::{Engine, Refusal};

/// How often the supervisor looks for sources added or removed (API or dashboard).
const RECONCILE: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A camera that sends nothing for this long is treated as gone.
const STALL: Duration = Duration::from_secs(10);

/// Why one attempt of a pull ended: the source's `lastError`, and the reason its session ended.
/// Every kind is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("bad URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("no answer from the source in {} s", STALL.as_secs())]
    NoAnswer,
    #[error("no media for {} s", STALL.as_secs())]
    Stalled,
    /// What the RTSP client said, or its panic on what the source sent.
    #[error("{0}")]
    Client(String),
    #[error(
        "unsupported codec: the source offers {0}; liveproc takes H.264, H.265, AAC and G.711"
    )]
    Unsupported(String),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("{0}")]
    Audio(#[from] TranscodeError),
    #[error("the stream was deleted")]
    Deleted,
    #[error("{0}")]
    Refused(#[from] Refusal),
}

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
            match engine.shared.store.rtsp_sources().await {
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

/// `f`, with a panic in it turned into an error that ends this attempt only: the RTSP client
/// can panic on what a camera sends (sdp-types 0.1.8 asserts `m=` after a session-level SDP
/// line that is not key=value; found by fuzzing), and the worker must retry, not die with the source "connecting".
pub(crate) async fn contained<T>(f: impl std::future::Future<Output = T>) -> Result<T, PullError> {
    AssertUnwindSafe(f).catch_unwind().await.map_err(|panic| {
        PullError::Client(format!(
            "the RTSP client failed on what the source sent: {}",
            panic_message(panic.as_ref())
        ))
    })
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
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
            Err(e) => e.to_string(),
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

/// DESCRIBE, SETUP the first H.264 or H.265 and AAC or G.711 streams (interleaved over the RTSP connection),
/// PLAY: a session whose frames are ready to read, and a warning for each audio or video
/// stream of the source that is not carried. Shared with the fuzz target.
pub(crate) async fn connect(
    url: url::Url,
    options: SessionOptions,
) -> Result<(Demuxed, Vec<String>), PullError> {
    let client = |e: retina::Error| PullError::Client(e.to_string());
    let mut session = Session::describe(url, options.user_agent("liveproc".into()))
        .await
        .map_err(client)?;
    let mut video_i = None;
    let mut audio_i = None;
    for (i, s) in session.streams().iter().enumerate() {
        match (s.media(), s.encoding_name()) {
            ("video", "h264" | "h265") if video_i.is_none() => video_i = Some(i),
            ("audio", "mpeg4-generic" | "pcma" | "pcmu") if audio_i.is_none() => audio_i = Some(i),
            _ => {}
        }
    }
    if video_i.is_none() && audio_i.is_none() {
        let found: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(PullError::Unsupported(found.join(", ")));
    }
    let warnings = session
        .streams()
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != video_i && Some(*i) != audio_i)
        .filter_map(|(_, s)| dropped_track(s.media(), s.encoding_name(), video_i, audio_i))
        .collect();
    for i in [video_i, audio_i].into_iter().flatten() {
        session
            .setup(
                i,
                SetupOptions::default()
                    .transport(Transport::Tcp(Default::default()))
                    .frame_format(FrameFormat::MP4),
            )
            .await
            .map_err(client)?;
    }
    session
        .play(PlayOptions::default())
        .await
        .map_err(client)?
        .demuxed()
        .map(|d| (d, warnings))
        .map_err(client)
}

/// Why a source's stream is not carried, said on the session (metadata streams go unsaid).
fn dropped_track(
    media: &str,
    encoding: &str,
    video: Option<usize>,
    audio: Option<usize>,
) -> Option<String> {
    let (taken, carried, name) = match media {
        "video" => (video.is_some(), "H.264 or H.265", "video"),
        "audio" => (audio.is_some(), "AAC or G.711", "audio"),
        _ => return None,
    };
    let codec = match encoding {
        "h265" => "H.265".to_string(),
        "pcma" => "G.711 A-law (PCMA)".to_string(),
        "pcmu" => "G.711 µ-law (PCMU)".to_string(),
        other => format!("{media}/{other}"),
    };
    Some(if taken {
        format!(
            "the source's extra {name} track ({codec}) is not carried: one {name} track per stream"
        )
    } else {
        format!(
            "the source's {name} track ({codec}) is dropped: liveproc carries {carried} {name}, \
             so this session has no {name}; set the source to {carried}"
        )
    })
}

/// Turns retina's frames into bus events: a track's parameters first (again when they change),
/// its frames only once they are known. Shared with the fuzz target.
#[derive(Default)]
pub(crate) struct Tracks {
    video: Option<VideoParams>,
    audio: Option<AudioParams>,
    /// G.711 audio, transcoded to Opus.
    to_opus: Option<ToOpus>,
}

impl Tracks {
    /// The events of `item`; `parameters` are those of its stream as the session has them now,
    /// `encoding` its SDP encoding name.
    pub(crate) fn events(
        &mut self,
        item: CodecItem,
        parameters: Option<ParametersRef<'_>>,
        encoding: &str,
    ) -> Result<Vec<Event>, PullError> {
        let mut out = Vec::new();
        match item {
            CodecItem::VideoFrame(f) => {
                if self.video.is_none() || f.has_new_parameters() {
                    if let Some(ParametersRef::Video(p)) = parameters {
                        let record = Bytes::copy_from_slice(p.extra_data());
                        let codec = p.rfc6381_codec();
                        let p = if codec.starts_with("hvc1") || codec.starts_with("hev1") {
                            let (width, height) = p.pixel_dimensions();
                            // An hvc1 sample entry: parameter sets in the record.
                            let codec = codec.replacen("hev1", "hvc1", 1);
                            VideoParams::from_hevc(record, codec, width, height)
                        } else {
                            VideoParams::from_avcc(record).map_err(PullError::Malformed)?
                        };
                        out.push(Event::Video(p.clone()));
                        self.video = Some(p);
                    }
                }
                if self.video.is_some() {
                    // RTP carries presentation times; cameras rarely use B-frames, so decode
                    // order is taken to be presentation order.
                    let (t, keyframe) = (f.timestamp().elapsed(), f.is_random_access_point());
                    let data = Bytes::from(f.into_data());
                    // retina marks H.265 IDR pictures only; open-GOP encoders (x265's default)
                    // key on CRA pictures, where a stream can start just as well.
                    let h265 = self.video.as_ref().is_some_and(|v| v.is_h265());
                    let keyframe = keyframe || (h265 && hevc_irap(&data));
                    out.push(frame(Track::Video, t, keyframe, data));
                }
            }
            CodecItem::AudioFrame(f) if matches!(encoding, "pcma" | "pcmu") => {
                let Some(ParametersRef::Audio(p)) = parameters else {
                    return Ok(out);
                };
                let (rate, channels) = (p.clock_rate(), p.channels().get().min(2) as u8);
                let to_opus = match &mut self.to_opus {
                    Some(t) => t,
                    None => self.to_opus.insert(ToOpus::new(SourceAudio::G711 {
                        mu_law: encoding == "pcmu",
                        rate,
                        channels,
                    })?),
                };
                // G.711's RTP clock is its sample rate; Opus counts at 48 kHz.
                let time = f.timestamp().elapsed() * 48_000 / i64::from(rate.max(1));
                let frames = to_opus.push(time, f.data())?;
                if let Some(params) = to_opus.params() {
                    if self.audio.as_ref() != Some(params) {
                        self.audio = Some(params.clone());
                        out.push(Event::Audio(params.clone()));
                    }
                }
                out.extend(frames.into_iter().map(Event::Frame));
            }
            CodecItem::AudioFrame(f) => {
                if self.audio.is_none() {
                    if let Some(ParametersRef::Audio(p)) = parameters {
                        if let Some(p) =
                            AudioParams::from_asc(Bytes::copy_from_slice(p.extra_data()))
                        {
                            out.push(Event::Audio(p.clone()));
                            self.audio = Some(p);
                        }
                    }
                }
                if self.audio.is_some() {
                    // AAC's RTP clock is its sample rate, which is the audio timescale.
                    let data = Bytes::copy_from_slice(f.data());
                    out.push(frame(Track::Audio, f.timestamp().elapsed(), true, data));
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

/// A frame at RTP time `t` (decode time = presentation time), arriving now.
fn frame(track: Track, t: i64, keyframe: bool, data: Bytes) -> Event {
    Event::Frame(Frame {
        track,
        dts: t,
        pts: t,
        keyframe,
        data,
        arrived: std::time::Instant::now(),
    })
}

/// The stream id of a frame (other items carry none we use).
fn stream_of(item: &CodecItem) -> Option<usize> {
    match item {
        CodecItem::VideoFrame(f) => Some(f.stream_id()),
        CodecItem::AudioFrame(f) => Some(f.stream_id()),
        _ => None,
    }
}

/// The next item of a session, with the parameters of its stream.
pub(crate) async fn next_events(
    demuxed: &mut Demuxed,
    tracks: &mut Tracks,
) -> Option<Result<Vec<Event>, PullError>> {
    let item = match demuxed.next().await? {
        Ok(item) => item,
        Err(e) => return Some(Err(PullError::Client(e.to_string()))),
    };
    let stream = stream_of(&item).and_then(|i| demuxed.streams().get(i));
    let parameters = stream.and_then(|s| s.parameters());
    let encoding = stream.map_or("", |s| s.encoding_name());
    Some(tracks.events(item, parameters, encoding))
}

/// One connection: connect (an answer within [`STALL`]), then feed frames until the source
/// stops or fails.
async fn run_once(
    engine: &Arc<Engine>,
    stream_id: &str,
    url: &str,
    state: &Mutex<SourceState>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), PullError> {
    let parsed = url::Url::parse(url)?;
    // A camera that takes the connection and never answers must not hold the source in
    // "connecting" for ever.
    let connecting = contained(connect(parsed, SessionOptions::default()));
    let (mut demuxed, warnings) = tokio::time::timeout(STALL, connecting)
        .await
        .map_err(|_| PullError::NoAnswer)???;
    let target = engine
        .shared
        .store
        .ingest_target_by_id(stream_id)
        .await
        .map_err(|e| Refusal::Store(e.message))?
        .ok_or(PullError::Deleted)?;
    let live = engine.start(&target, "rtsp", None, false).await?;
    for warning in warnings {
        live.warn("track_dropped", warning).await;
    }
    set_state(state, |s| {
        s.state = "live";
        s.last_error = None;
    });
    let mut tracks = Tracks::default();
    let result = loop {
        let next = contained(next_events(&mut demuxed, &mut tracks));
        let next = tokio::select! {
            next = tokio::time::timeout(STALL, next) => next,
            _ = stopped.changed() => break Ok(()),
        };
        let events = match next {
            Err(_) => break Err(PullError::Stalled),
            Ok(Err(panic)) => break Err(panic),
            Ok(Ok(None)) => break Ok(()),
            Ok(Ok(Some(Err(e)))) => break Err(e),
            Ok(Ok(Some(Ok(events)))) => events,
        };
        for e in events {
            match e {
                Event::Frame(f) => live.publish_frame(Event::Frame(f)),
                params => live.publish(params).await,
            }
        }
    };
    let reason = match &result {
        Ok(()) => "source ended".to_string(),
        Err(e) => format!("source lost: {e}"),
    };
    engine.stop(&live, &reason).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_tracks_say_which_and_why() {
        let extra = dropped_track("audio", "pcmu", Some(0), Some(1)).unwrap();
        assert!(
            extra.contains("extra audio track (G.711 µ-law (PCMU))"),
            "{extra}"
        );
        let video = dropped_track("video", "jpeg", None, Some(1)).unwrap();
        assert!(
            video.contains("video track (video/jpeg) is dropped")
                && video.contains("H.264 or H.265"),
            "{video}"
        );
        assert_eq!(
            dropped_track("application", "vnd.onvif.metadata", None, None),
            None
        );
    }

    #[test]
    fn h265_random_access_includes_cra_pictures() {
        let frame = |types: &[u8]| -> Vec<u8> {
            types
                .iter()
                .flat_map(|t| {
                    let mut nal = 3u32.to_be_bytes().to_vec();
                    nal.extend_from_slice(&[t << 1, 1, 0xAA]);
                    nal
                })
                .collect()
        };
        assert!(hevc_irap(&frame(&[35, 39, 21]))); // AUD, SEI, CRA
        assert!(hevc_irap(&frame(&[19]))); // IDR_W_RADL
        assert!(!hevc_irap(&frame(&[35, 1]))); // AUD, TRAIL_R
        assert!(!hevc_irap(&[0, 0, 0, 9, 42])); // cut short
    }
}
