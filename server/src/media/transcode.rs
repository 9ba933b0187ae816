//! Transcoding profiles: the live rendition ladder of a stream group.
//!
//! One thread per live group decodes the passthrough stream once (OpenH264); one thread per
//! profile scales each picture plane by plane in I420 (`pixels`, fast_image_resize) and encodes it
//! (OpenH264), then publishes the result on the profile stream's own bus, where that stream's
//! processes (live HLS, thumbnails, motion clips, recording, replay) take it like any ingest.
//!
//! Keyframes are aligned: a rendition encodes an IDR exactly where the source has a keyframe and
//! nowhere else, so every rendition cuts its segments at the same times and ABR players can
//! switch between them. Audio is passed through unchanged, released in step with the video so
//! each rendition's bus interleaves like an ingest's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use openh264::decoder::DecodedYUV;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::OpenH264API;

use super::bus::Subscription;
use super::frame::{avc_config, Event, Frame, Track, VideoParams, VIDEO_TIMESCALE};
use super::ladder::Rendition;
use super::picture::H264;
use pixels::I420Scaler;

/// Pictures a rendition thread may have waiting; beyond, the decoder waits for it (and the
/// decoder's bus subscription, not ingest, takes the loss).
const QUEUE: usize = 4;
/// Audio held back while the video catches up (about 3 s of AAC at 44.1 kHz).
const AUDIO_HOLD: usize = 128;

/// The output size of a profile of height `height` for a `source`-sized picture: the source's
/// aspect, even sides (4:2:0), never larger than the source.
pub fn rendition_size(source: (u32, u32), height: u32) -> (u32, u32) {
    let (sw, sh) = (u64::from(source.0.max(2)), u64::from(source.1.max(2)));
    let h = u64::from(height).min(sh) & !1;
    // The nearest even width, as `scale=-2:H` does.
    let w = (sw * h + sh) / (2 * sh) * 2;
    (w.max(2) as u32, h.max(2) as u32)
}

/// A rendition's encoder failed (the rendition stops with this on its status).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(String);

/// What the decoder hands each rendition thread, in bus order.
#[derive(Clone)]
pub(crate) enum Msg {
    Picture(Arc<Picture>),
    Event(Event),
}

/// A decoded picture, I420 with packed rows.
pub(crate) struct Picture {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    pts: i64,
    keyframe: bool,
    arrived: Instant,
    /// The source's frame rate as seen so far (the encoder's rate control needs one).
    fps: f32,
}

impl Picture {
    /// Copies the decoder's planes out (its buffers are reused by the next decode). Odd sides
    /// lose their last row or column: 4:2:0 encoders want even ones.
    fn copy(yuv: &DecodedYUV<'_>, pts: i64, keyframe: bool, arrived: Instant, fps: f32) -> Self {
        let (w, h) = yuv.dimensions();
        let (w, h) = (w & !1, h & !1);
        let (ys, us, vs) = yuv.strides();
        Picture {
            width: w as u32,
            height: h as u32,
            y: pixels::pack_plane(yuv.y(), ys, w, h),
            u: pixels::pack_plane(yuv.u(), us, w / 2, h / 2),
            v: pixels::pack_plane(yuv.v(), vs, w / 2, h / 2),
            pts,
            keyframe,
            arrived,
            fps,
        }
    }
}

/// CPU time this thread has run, nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    u64::try_from(super::workers::thread_cpu().as_nanos()).ok()
}

/// Runs the ladder of `source` (the passthrough stream's bus) until that bus ends, then ends
/// the renditions' sessions. Blocking: call on a thread of its own.
pub fn run(
    runtime: tokio::runtime::Handle,
    stream_id: String,
    mut source: Subscription,
    renditions: Vec<Rendition>,
    decode_cpu: Arc<AtomicU64>,
) {
    let mut outputs = Vec::new();
    let mut threads = Vec::new();
    for r in renditions {
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let runtime = runtime.clone();
        let name = format!("transcode-{}", r.status.profile);
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || encode_loop(runtime, rx, r))
        {
            Ok(t) => {
                outputs.push(tx);
                threads.push(t);
            }
            Err(e) => tracing::error!(error = %e, "could not start a rendition thread"),
        }
    }
    let mut decoder = Decoding::default();
    let send = |msg: Msg, outputs: &mut Vec<SyncSender<Msg>>| {
        // A rendition that ended (its encoder failed) is dropped from the fan-out.
        outputs.retain(|tx| tx.send(msg.clone()).is_ok());
    };
    let mut cpu_mark = 0u64;
    while let Some(event) = runtime.block_on(source.recv()) {
        if source.lost() != decoder.lost {
            decoder.lost = source.lost();
            tracing::warn!(stream = %stream_id, "transcoder fell behind; resuming at the next keyframe");
            decoder.resync();
        }
        for msg in decoder.event(&event) {
            send(msg, &mut outputs);
        }
        if outputs.is_empty() {
            break;
        }
        cpu_mark += 1;
        if cpu_mark.is_multiple_of(64) {
            if let Some(ns) = thread_cpu_ns() {
                decode_cpu.store(ns, Ordering::Relaxed);
            }
        }
    }
    for msg in decoder.finish() {
        send(msg, &mut outputs);
    }
    if let Some(ns) = thread_cpu_ns() {
        decode_cpu.store(ns, Ordering::Relaxed);
    }
    drop(outputs);
    for t in threads {
        let _ = t.join();
    }
}

/// The decoding side: the source's frames in, pictures (in presentation order, each with its
/// timestamp and keyframe mark) and audio out.
#[derive(Default)]
pub(crate) struct Decoding {
    h264: Option<H264>,
    /// Timestamps of frames given to the decoder whose pictures have not come out yet; pictures
    /// come out in presentation order, so each takes the smallest.
    pending: BinaryHeap<Reverse<(i64, bool, PtsArrival)>>,
    /// Until a keyframe, frames cannot be decoded (start, parameter change, loss, error).
    waiting: bool,
    audio: VecDeque<Frame>,
    audio_rate: u32,
    /// Presentation time of the last picture handed out (90 kHz).
    last_pts: Option<i64>,
    /// Distance of the last two pictures, for the frame rate.
    step: Option<i64>,
    lost: u64,
    errors: u64,
}

/// An arrival time that orders as equal, so the heap orders by timestamp alone.
#[derive(Clone, Copy)]
struct PtsArrival(Instant);
impl PartialEq for PtsArrival {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for PtsArrival {}
impl PartialOrd for PtsArrival {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PtsArrival {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Decoding {
    fn resync(&mut self) {
        self.waiting = true;
        self.pending.clear();
    }

    pub(crate) fn event(&mut self, event: &Event) -> Vec<Msg> {
        let mut out = Vec::new();
        match event {
            Event::Video(p) => {
                match H264::new(p) {
                    Ok(d) => self.h264 = Some(d),
                    Err(e) => {
                        tracing::warn!(error = %e, "transcoder: cannot decode these parameters");
                        self.h264 = None;
                    }
                }
                self.resync();
            }
            Event::Audio(p) => {
                self.audio_rate = p.sample_rate.max(1);
                out.push(Msg::Event(event.clone()));
            }
            Event::Frame(f) if f.track == Track::Audio => {
                if self.h264.is_none() {
                    out.push(Msg::Event(event.clone())); // no video to wait for
                } else {
                    self.audio.push_back(f.clone());
                    while self.audio.len() > AUDIO_HOLD {
                        let a = self.audio.pop_front().expect("non-empty");
                        out.push(Msg::Event(Event::Frame(a)));
                    }
                }
            }
            Event::Frame(f) => self.video(f, &mut out),
        }
        out
    }

    fn video(&mut self, f: &Frame, out: &mut Vec<Msg>) {
        let fps = self.fps();
        let Some(h264) = self.h264.as_mut() else {
            return;
        };
        if self.waiting && !f.keyframe {
            return;
        }
        self.waiting = false;
        self.pending
            .push(Reverse((f.pts, f.keyframe, PtsArrival(f.arrived))));
        let pending = &mut self.pending;
        let decoded = h264.decode_with(f, |yuv| {
            let Reverse((pts, keyframe, arrived)) = pending.pop()?;
            Some(Picture::copy(yuv, pts, keyframe, arrived.0, fps))
        });
        match decoded {
            Ok(Some(Some(p))) => self.picture(p, out),
            Ok(_) => {}
            Err(e) => {
                self.errors += 1;
                if self.errors.is_power_of_two() {
                    tracing::warn!(error = %e, errors = self.errors, "transcoder: decode failed; resuming at the next keyframe");
                }
                self.resync();
            }
        }
        // A decoder that swallowed frames (errors it recovered from) leaves their timestamps.
        while self.pending.len() > 32 {
            self.pending.pop(); // the min-heap's top: the oldest
        }
    }

    fn picture(&mut self, mut p: Picture, out: &mut Vec<Msg>) {
        // Renditions carry no B-frames: decode order is presentation order, so timestamps
        // must rise.
        if let Some(last) = self.last_pts {
            if p.pts <= last {
                p.pts = last + 1;
            } else {
                self.step = Some(p.pts - last);
            }
        }
        self.last_pts = Some(p.pts);
        let pts = p.pts;
        out.push(Msg::Picture(Arc::new(p)));
        // Audio up to the picture's time may go now.
        let rate = i64::from(self.audio_rate.max(1));
        while let Some(a) = self.audio.front() {
            if a.dts * i64::from(VIDEO_TIMESCALE) / rate > pts {
                break;
            }
            let a = self.audio.pop_front().expect("non-empty");
            out.push(Msg::Event(Event::Frame(a)));
        }
    }

    fn fps(&self) -> f32 {
        match self.step {
            Some(s) if s > 0 => (VIDEO_TIMESCALE as f32 / s as f32).clamp(1.0, 120.0),
            _ => 30.0,
        }
    }

    /// The end of the source: pictures the decoder still holds, then the held-back audio.
    pub(crate) fn finish(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        let fps = self.fps();
        let mut pictures = Vec::new();
        if let Some(h264) = self.h264.as_mut() {
            let pending = &mut self.pending;
            h264.flush_with(|yuv| {
                if let Some(Reverse((pts, keyframe, arrived))) = pending.pop() {
                    pictures.push(Picture::copy(yuv, pts, keyframe, arrived.0, fps));
                }
            });
        }
        for p in pictures {
            self.picture(p, &mut out);
        }
        out.extend(self.audio.drain(..).map(|a| Msg::Event(Event::Frame(a))));
        out
    }
}

/// One rendition: scale, encode, publish, until the decoder's side ends.
fn encode_loop(runtime: tokio::runtime::Handle, rx: Receiver<Msg>, r: Rendition) {
    let status = r.status.clone();
    let mut enc = RenditionEncoder::new(r.height, status.target_kbps);
    let mut count = 0u64;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Event(e) => runtime.block_on(r.session.publish(e)),
            Msg::Picture(p) => match enc.encode(&p) {
                Ok(events) => {
                    for e in events {
                        runtime.block_on(r.session.publish(e));
                    }
                    let (w, h) = enc.size();
                    status.width.store(w, Ordering::Relaxed);
                    status.height.store(h, Ordering::Relaxed);
                    status.frames.fetch_add(1, Ordering::Relaxed);
                    if !status.is_running() {
                        status.set("running", None);
                    }
                    count += 1;
                    if count % 30 == 1 {
                        if let Some(ns) = thread_cpu_ns() {
                            status.cpu_ns.store(ns, Ordering::Relaxed);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(stream = %status.stream_id, profile = %status.profile, error = %e, "rendition failed");
                    status.set("failed", Some(e.to_string()));
                    break;
                }
            },
        }
    }
    if let Some(ns) = thread_cpu_ns() {
        status.cpu_ns.store(ns, Ordering::Relaxed);
    }
    drop(r.slot);
}

/// Scaler and encoder of one rendition.
pub(crate) struct RenditionEncoder {
    height: u32,
    pub(crate) kbps: u32,
    encoder: Option<Encoder>,
    /// The scaler to the output size; the source's size it was made for.
    scaler: Option<I420Scaler>,
    for_source: (u32, u32),
    /// The avcC of the parameters last published.
    avcc: Option<Bytes>,
}

impl RenditionEncoder {
    pub(crate) fn new(height: u32, kbps: u32) -> Self {
        RenditionEncoder {
            height,
            kbps,
            encoder: None,
            scaler: None,
            for_source: (0, 0),
            avcc: None,
        }
    }

    /// The output size (0×0 before the first picture).
    pub(crate) fn size(&self) -> (u32, u32) {
        self.scaler.as_ref().map_or((0, 0), I420Scaler::size)
    }

    pub(crate) fn encode(&mut self, p: &Picture) -> Result<Vec<Event>, EncodeError> {
        if self.for_source != (p.width, p.height) || self.encoder.is_none() {
            self.for_source = (p.width, p.height);
            let (w, h) = rendition_size(self.for_source, self.height);
            self.scaler = Some(I420Scaler::new(w, h));
            let config = EncoderConfig::new()
                .bitrate(BitRate::from_bps(self.kbps * 1000))
                .max_frame_rate(FrameRate::from_hz(p.fps))
                .rate_control_mode(RateControlMode::Bitrate)
                // Every source frame becomes a rendition frame, and IDRs come only where the
                // source has keyframes: no skipping, no scene-cut or periodic IDRs.
                .skip_frames(false)
                .scene_change_detect(false)
                .intra_frame_period(IntraFramePeriod::from_num_frames(0))
                .usage_type(UsageType::CameraVideoRealTime)
                .sps_pps_strategy(SpsPpsStrategy::ConstantId)
                .vui(VuiConfig::bt709())
                // Renditions run on threads of their own; one encoder, one core.
                .num_threads(1);
            self.encoder = Some(
                Encoder::with_api_config(OpenH264API::from_source(), config)
                    .map_err(|e| EncodeError(format!("H.264 encoder: {e}")))?,
            );
        }
        let scaler = self.scaler.as_mut().expect("made with the encoder");
        let (w, h) = scaler.size();
        let source = [&p.y[..], &p.u[..], &p.v[..]];
        let [yp, up, vp] = if (w, h) == (p.width, p.height) {
            source
        } else {
            scaler
                .scale(source, p.width, p.height)
                .map_err(EncodeError)?
        };
        let (wu, hu) = (w as usize, h as usize);
        let yuv = YUVSlices::new((yp, up, vp), (wu, hu), (wu, wu / 2, wu / 2));
        let encoder = self.encoder.as_mut().expect("made above");
        if p.keyframe {
            encoder.force_intra_frame();
        }
        let ms = (p.pts.max(0) as u64) * 1000 / u64::from(VIDEO_TIMESCALE);
        let bs = encoder
            .encode_at(&yuv, openh264::Timestamp::from_millis(ms))
            .map_err(|e| EncodeError(format!("H.264 encode: {e}")))?;
        let mut sps = None;
        let mut pps = None;
        let mut data = Vec::new();
        for l in 0..bs.num_layers() {
            let Some(layer) = bs.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n).map(strip_start_code) else {
                    continue;
                };
                match nal.first().map(|b| b & 0x1F) {
                    Some(7) => sps = Some(nal.to_vec()),
                    Some(8) => pps = Some(nal.to_vec()),
                    Some(9) | None => {}
                    Some(_) => {
                        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        data.extend_from_slice(nal);
                    }
                }
            }
        }
        let keyframe = bs.frame_type() == FrameType::IDR;
        let mut events = Vec::new();
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let avcc = avc_config(&sps, &pps)
                .ok_or_else(|| EncodeError("encoder made an unusable SPS/PPS".into()))?;
            let avcc = Bytes::from(avcc);
            if self.avcc.as_ref() != Some(&avcc) {
                let params = VideoParams::from_avcc(avcc.clone())
                    .map_err(|e| EncodeError(format!("encoder parameters: {e}")))?;
                self.avcc = Some(avcc);
                events.push(Event::Video(params));
            }
        }
        if !data.is_empty() && self.avcc.is_some() {
            events.push(Event::Frame(Frame {
                track: Track::Video,
                dts: p.pts,
                pts: p.pts,
                keyframe,
                data: Bytes::from(data),
                arrived: p.arrived,
            }));
        }
        Ok(events)
    }
}

/// A NAL unit without its Annex-B start code.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take_while(|b| **b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) {
        &nal[zeros + 1..]
    } else {
        nal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renditions_keep_the_aspect_and_never_grow() {
        assert_eq!(rendition_size((1280, 720), 480), (854, 480));
        assert_eq!(rendition_size((1280, 720), 360), (640, 360));
        assert_eq!(rendition_size((1920, 1080), 240), (426, 240));
        assert_eq!(rendition_size((640, 360), 720), (640, 360), "no upscaling");
        assert_eq!(rendition_size((720, 1280), 360), (202, 360), "portrait");
    }

    /// A picture encoded and decoded again: the rendition's parameters say its size, the
    /// forced keyframe is an IDR and the next frame is not.
    #[test]
    fn encodes_scaled_pictures_with_keyframes_where_asked() {
        let (w, h) = (320u32, 180u32);
        let gradient = |x: usize, y: usize| ((x + 2 * y) % 256) as u8;
        let mut y = vec![0u8; (w * h) as usize];
        for (i, v) in y.iter_mut().enumerate() {
            *v = gradient(i % w as usize, i / w as usize);
        }
        let picture = |pts: i64, keyframe: bool| Picture {
            width: w,
            height: h,
            y: y.clone(),
            u: vec![128; (w * h / 4) as usize],
            v: vec![128; (w * h / 4) as usize],
            pts,
            keyframe,
            arrived: Instant::now(),
            fps: 30.0,
        };
        let mut enc = RenditionEncoder::new(90, 200);
        let first = enc.encode(&picture(0, true)).unwrap();
        let Event::Video(params) = &first[0] else {
            panic!("parameters first")
        };
        assert_eq!((params.width, params.height), (160, 90));
        let Event::Frame(f) = &first[1] else {
            panic!("then the frame")
        };
        assert!(f.keyframe);
        let second = enc.encode(&picture(3000, false)).unwrap();
        let Event::Frame(f2) = second.last().unwrap() else {
            panic!("a frame")
        };
        assert!(!f2.keyframe && f2.pts == 3000);
        let third = enc.encode(&picture(6000, true)).unwrap();
        let Event::Frame(f3) = third.last().unwrap() else {
            panic!("a frame")
        };
        assert!(f3.keyframe, "a source keyframe forces an IDR");
        // The rendition decodes.
        let mut dec = H264::new(params).unwrap();
        assert!(dec.keyframe(f).is_ok());
    }
}
