//! Motion clips: every `interval` seconds, `duration` seconds of video from a keyframe are
//! decoded, sampled at [`GIF_FPS`], scaled to [`GIF_WIDTH`] and written as an animated GIF with
//! one palette per clip. The same span is also kept as an MP4 (remuxed, not re-encoded). Clips run
//! on the worker pool; one that finds no place within half its interval is skipped and counted.

use std::sync::Arc;

use super::bus::Subscription;
use super::frame::{AudioParams, Event, Frame, Track, VideoParams, VIDEO_TIMESCALE};
use super::mux::fmp4::{self, TrackRun, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use super::picture::{self, H264};
use super::workers::{thread_cpu, Workers};
use super::Engine;

pub const GIF_WIDTH: u32 = 320;
/// Frames per second in the GIF: smooth enough to show motion, small enough to stay cheap.
pub const GIF_FPS: f64 = 8.0;

pub struct MotionClips {
    pub stream_id: String,
    pub session_id: String,
    pub interval: i64,
    pub duration: i64,
    pub faults: Arc<super::Faults>,
}

/// A span of a stream: from a keyframe, `duration` seconds of frames.
pub struct Span {
    pub video: Vec<Frame>,
    pub audio: Vec<Frame>,
    pub params: VideoParams,
    pub audio_params: Option<AudioParams>,
}

pub struct Written {
    pub width: u32,
    pub height: u32,
    pub frames: usize,
    pub seconds: f64,
    pub size: u64,
}

/// Decodes the span, samples, scales, and writes the GIF and the MP4 next to it.
pub fn make(span: &Span, gif_path: &std::path::Path) -> Result<Written, String> {
    let first = span.video.first().ok_or("no video")?;
    let last = span.video.last().ok_or("no video")?;
    let frame_ticks = if span.video.len() > 1 {
        (last.dts - first.dts) / (span.video.len() as i64 - 1)
    } else {
        3600
    }
    .max(1);
    let seconds = (last.dts - first.dts + frame_ticks) as f64 / f64::from(VIDEO_TIMESCALE);
    // The pictures the GIF shows: one per 1/GIF_FPS s, by presentation time.
    let mut by_pts: Vec<i64> = span.video.iter().map(|f| f.pts).collect();
    by_pts.sort_unstable();
    let step_ticks = (f64::from(VIDEO_TIMESCALE) / GIF_FPS) as i64;
    let mut shown_pts = std::collections::HashSet::new();
    let mut t = by_pts[0];
    while let Some(&p) = by_pts.get(by_pts.partition_point(|p| *p < t)) {
        shown_pts.insert(p);
        t = p.max(t) + step_ticks;
    }
    // Frames no other frame refers to (non-reference B-frames) are not decoded at all unless
    // shown; the rest are decoded (P and B frames need their references) and converted only
    // when shown. The decoder puts pictures out in presentation order, so each output is the
    // earliest decoded frame not yet put out.
    let mut decoder = H264::new(&span.params)?;
    let mut pending = std::collections::BTreeSet::new();
    let mut pictures = Vec::new();
    for f in &span.video {
        if !shown_pts.contains(&f.pts) && decoder.is_disposable(f) {
            continue;
        }
        pending.insert(f.pts);
        let next = pending.first().copied();
        let keep = next.is_some_and(|p| shown_pts.contains(&p));
        if let Some(pic) = decoder.decode_if(f, || keep)? {
            pending.pop_first();
            if let Some(pic) = pic {
                pictures.push(picture::scale(&pic, GIF_WIDTH, true)?);
            }
        }
    }
    for pic in decoder.flush() {
        if pending.pop_first().is_some_and(|p| shown_pts.contains(&p)) {
            pictures.push(picture::scale(&pic, GIF_WIDTH, true)?);
        }
    }
    let (width, height) = pictures
        .first()
        .map(|(w, h, _)| (*w, *h))
        .ok_or("no picture decoded")?;
    let frames: Vec<Vec<u8>> = pictures
        .into_iter()
        .filter(|(w, h, _)| (*w, *h) == (width, height))
        .map(|(_, _, f)| f)
        .collect();
    let delay_ms = (seconds * 1000.0 / frames.len().max(1) as f64).round() as u32;
    let gif = picture::gif(width, height, &frames, delay_ms)?;

    // The MP4: one init segment and one fragment starting at 0.
    let mut mp4 = fmp4::init_segment(Some(&span.params), span.audio_params.as_ref()).to_vec();
    let rate = span.audio_params.as_ref().map_or(48_000, |a| a.sample_rate);
    let audio_origin = first.dts * i64::from(rate) / i64::from(VIDEO_TIMESCALE);
    let runs = [
        TrackRun {
            track_id: VIDEO_TRACK_ID,
            base_dts: 0,
            frames: &span.video,
            last_duration: frame_ticks as u32,
        },
        TrackRun {
            track_id: AUDIO_TRACK_ID,
            base_dts: span
                .audio
                .first()
                .map_or(0, |a| (a.dts - audio_origin).max(0)),
            frames: if span.audio_params.is_some() {
                &span.audio
            } else {
                &[]
            },
            last_duration: span
                .audio_params
                .as_ref()
                .map_or(1024, |a| a.frame_samples() as u32),
        },
    ];
    mp4.extend_from_slice(&fmp4::fragment(1, &runs));

    if let Some(dir) = gif_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("motion clip folder: {e}"))?;
    }
    std::fs::write(gif_path.with_extension("mp4"), &mp4)
        .map_err(|e| format!("motion clip: {e}"))?;
    std::fs::write(gif_path, &gif).map_err(|e| format!("motion clip: {e}"))?;
    Ok(Written {
        width,
        height,
        frames: frames.len(),
        seconds,
        size: gif.len() as u64,
    })
}

async fn job(engine: Arc<Engine>, m: Arc<MotionClips>, span: Span, index: i64) {
    let rel = format!("motionclips/{}/{}/{index}.gif", m.stream_id, m.session_id);
    let out = engine.assets.join(&rel);
    let work = move || {
        let cpu = thread_cpu();
        let r = make(&span, &out);
        (r, thread_cpu().saturating_sub(cpu))
    };
    let wait = std::time::Duration::from_secs((m.interval.max(2) / 2) as u64);
    let Some((result, cpu)) = engine.workers.run_within(wait, work).await else {
        Workers::count(&engine.workers.motionclips_skipped_busy, 1);
        tracing::info!(stream = %m.stream_id, "motion clip skipped: the worker pool is busy");
        return;
    };
    Workers::count(&engine.workers.motionclip_cpu_us, cpu.as_micros() as u64);
    let w = match result {
        Ok(w) => w,
        Err(e) => {
            Workers::count(&engine.workers.failures, 1);
            m.faults.set("motionclip", e);
            return;
        }
    };
    let asset = domain::store::NewAsset {
        stream_id: m.stream_id.clone(),
        session_id: Some(m.session_id.clone()),
        kind: "motionclip",
        path: rel,
        index,
        width: Some(i64::from(w.width)),
        height: Some(i64::from(w.height)),
    };
    let duration_ms = Some((w.seconds * 1000.0).round() as i64);
    match engine
        .register_history(&asset, duration_ms, w.size as i64, ".mp4")
        .await
    {
        Ok(()) => {
            m.faults.clear("motionclip");
            Workers::count(&engine.workers.motionclips, 1);
            tracing::debug!(stream = %m.stream_id, frames = w.frames, "motion clip written");
        }
        Err(e) => m
            .faults
            .set("motionclip", format!("could not register the file: {e}")),
    }
}

/// Consumes a session's bus until it ends.
pub async fn run(mut sub: Subscription, engine: Arc<Engine>, m: MotionClips) {
    let m = Arc::new(m);
    let interval = m.interval.max(1) * i64::from(VIDEO_TIMESCALE);
    let length = m.duration.max(1) * i64::from(VIDEO_TIMESCALE);
    let mut video: Option<VideoParams> = None;
    let mut audio: Option<AudioParams> = None;
    let mut next_due: Option<i64> = None;
    let mut span: Option<Span> = None;
    let mut index = 0i64;
    let mut jobs = Vec::new();
    while let Some(event) = sub.recv().await {
        match &*event {
            Event::Video(p) => {
                // A parameter change ends the span: one clip has one set of parameters.
                span = None;
                video = Some(p.clone());
            }
            Event::Audio(p) => {
                audio = Some(p.clone());
                // Audio known only after the span began (transcoded audio is, once its first
                // frame is decoded) joins it.
                if let Some(s) = span.as_mut().filter(|s| s.audio.is_empty()) {
                    s.audio_params = audio.clone();
                }
            }
            Event::Frame(f) => match f.track {
                Track::Video => {
                    if let Some(s) = span.as_mut() {
                        let start = s.video[0].dts;
                        if f.dts - start >= length {
                            index += 1;
                            let done = span.take().expect("open span");
                            jobs.push(tokio::spawn(job(engine.clone(), m.clone(), done, index)));
                        } else {
                            s.video.push(f.clone());
                            continue;
                        }
                    }
                    if f.keyframe && next_due.is_none_or(|d| f.dts >= d) {
                        if let Some(p) = video.clone() {
                            next_due = Some(f.dts + interval);
                            span = Some(Span {
                                video: vec![f.clone()],
                                audio: Vec::new(),
                                params: p,
                                audio_params: audio.clone(),
                            });
                        }
                    }
                }
                Track::Audio => {
                    if let Some(s) = span.as_mut() {
                        if s.audio_params.is_some() {
                            s.audio.push(f.clone());
                        }
                    }
                }
            },
        }
        jobs.retain(|j| !j.is_finished());
    }
    // The stream ended during a span: keep it if it holds at least a second.
    if let Some(s) = span.take() {
        let held = s.video.last().map_or(0, |l| l.dts - s.video[0].dts);
        if held >= i64::from(VIDEO_TIMESCALE) {
            index += 1;
            jobs.push(tokio::spawn(job(engine.clone(), m.clone(), s, index)));
        }
    }
    for j in jobs {
        let _ = j.await;
    }
}
