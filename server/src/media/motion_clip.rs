//! Motion clips: every `interval` seconds, `duration` seconds of video from a keyframe are
//! decoded, sampled at [`GIF_FPS`], scaled to [`GIF_WIDTH`] and written as an animated GIF with
//! one palette per clip. The same span is also kept as an MP4 (remuxed, not re-encoded). Clips run
//! on the worker pool; one that finds no place within half its interval is skipped and counted.

use std::sync::Arc;

use domain::AssetKind;

use super::assets::HistoryFile;
use super::bus::Subscription;
use super::frame::{AudioParams, Event, Frame, Track, VideoParams, VIDEO_TIMESCALE};
use super::mux::fmp4::{self, TrackRun, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use super::picture::{self, DecodeError, H264};
use super::session::Session;
use super::workers::{Place, Workers};

pub const GIF_WIDTH: u32 = 320;
/// Frames per second in the GIF: smooth enough to show motion, small enough to stay cheap.
pub const GIF_FPS: f64 = 8.0;

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
pub fn make(span: &Span, gif_path: &std::path::Path) -> Result<Written, DecodeError> {
    let no_video = || DecodeError::Data("no video".into());
    let first = span.video.first().ok_or_else(no_video)?;
    let last = span.video.last().ok_or_else(no_video)?;
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
        .ok_or_else(|| DecodeError::Data("no picture decoded".into()))?;
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
        std::fs::create_dir_all(dir)
            .map_err(|e| DecodeError::Write(format!("motion clip folder: {e}")))?;
    }
    std::fs::write(gif_path.with_extension("mp4"), &mp4)
        .map_err(|e| DecodeError::Write(format!("motion clip: {e}")))?;
    std::fs::write(gif_path, &gif).map_err(|e| DecodeError::Write(format!("motion clip: {e}")))?;
    Ok(Written {
        width,
        height,
        frames: frames.len(),
        seconds,
        size: gif.len() as u64,
    })
}

/// Runs one clip on the pool (or skips it when the pool stays full for half the interval),
/// then registers the file and trims the history.
async fn job(session: Arc<Session>, span: Span, index: i64) {
    let rel = AssetKind::MotionClip.history_file(&session.stream_id, &session.session_id, index);
    let out = session.shared.assets.file(&rel);
    let interval = session.settings.motionclip.interval;
    let wait = std::time::Duration::from_secs((interval.max(2) / 2) as u64);
    let workers = &session.shared.workers;
    let work = move || make(&span, &out);
    let place = Place::MotionClip { wait };
    let Some(result) = workers.timed(place, &workers.motionclip_cpu_us, work).await else {
        Workers::count(&workers.motionclips_skipped_busy, 1);
        tracing::info!(stream = %session.stream_id, "motion clip skipped: the worker pool is busy");
        return;
    };
    let w = match result {
        Ok(w) => w,
        Err(e) => {
            Workers::count(&workers.failures, 1);
            session.faults.set("motionclip", e);
            return;
        }
    };
    let file = HistoryFile {
        kind: AssetKind::MotionClip,
        stream_id: session.stream_id.clone(),
        session_id: session.session_id.clone(),
        path: rel,
        index,
        width: w.width,
        height: w.height,
        duration_ms: Some((w.seconds * 1000.0).round() as i64),
        size: w.size,
    };
    match session.shared.assets.register_history(file).await {
        Ok(()) => {
            session.faults.clear("motionclip");
            Workers::count(&workers.motionclips, 1);
            tracing::debug!(stream = %session.stream_id, frames = w.frames, "motion clip written");
        }
        Err(e) => session
            .faults
            .set("motionclip", format!("could not register the file: {e}")),
    }
}

/// Consumes a session's bus until it ends. A clip starts at the first keyframe every
/// `interval` seconds and covers `duration` seconds from it: with a duration of at least the
/// interval, clips overlap and several spans are open at once, so the schedule never drifts.
pub async fn run(mut sub: Subscription, session: Arc<Session>) {
    let settings = session.settings.motionclip;
    let interval = settings.interval.max(1) * i64::from(VIDEO_TIMESCALE);
    let length = settings.duration.max(1) * i64::from(VIDEO_TIMESCALE);
    let mut video: Option<VideoParams> = None;
    let mut audio: Option<AudioParams> = None;
    let mut next_due: Option<i64> = None;
    // Open spans, oldest first.
    let mut spans: Vec<Span> = Vec::new();
    let mut index = 0i64;
    let mut jobs = Vec::new();
    while let Some(event) = sub.recv().await {
        match &*event {
            Event::Video(p) => {
                // A parameter change ends the spans: one clip has one set of parameters.
                spans.clear();
                video = Some(p.clone());
            }
            Event::Audio(p) => {
                audio = Some(p.clone());
                // Audio known only after a span began (transcoded audio is, once its first
                // frame is decoded) joins it.
                for s in spans.iter_mut().filter(|s| s.audio.is_empty()) {
                    s.audio_params = audio.clone();
                }
            }
            Event::Frame(f) => match f.track {
                Track::Video => {
                    // Spans that are full end at this frame, oldest first; the rest take it.
                    while spans
                        .first()
                        .is_some_and(|s| f.dts - s.video[0].dts >= length)
                    {
                        index += 1;
                        let done = spans.remove(0);
                        jobs.push(tokio::spawn(job(session.clone(), done, index)));
                    }
                    for s in &mut spans {
                        s.video.push(f.clone());
                    }
                    if f.keyframe && next_due.is_none_or(|d| f.dts >= d) {
                        if let Some(p) = video.clone() {
                            next_due = Some(f.dts + interval);
                            spans.push(Span {
                                video: vec![f.clone()],
                                audio: Vec::new(),
                                params: p,
                                audio_params: audio.clone(),
                            });
                        }
                    }
                }
                Track::Audio => {
                    for s in spans.iter_mut().filter(|s| s.audio_params.is_some()) {
                        s.audio.push(f.clone());
                    }
                }
            },
        }
        jobs.retain(|j| !j.is_finished());
    }
    // The stream ended during spans: keep each that holds at least a second.
    for s in spans {
        let held = s.video.last().map_or(0, |l| l.dts - s.video[0].dts);
        if held >= i64::from(VIDEO_TIMESCALE) {
            index += 1;
            jobs.push(tokio::spawn(job(session.clone(), s, index)));
        }
    }
    for j in jobs {
        let _ = j.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::testing;

    #[tokio::test]
    async fn a_span_becomes_a_gif_and_its_mp4() {
        let mut settings = domain::Processing::default();
        settings.motionclip.enabled = true;
        settings.motionclip.duration = 2;
        settings.motionclip.interval = 10;
        let t = testing::run_alone(settings, 4, run).await;
        let s = &t.session;
        let rel = AssetKind::MotionClip.history_file(&s.stream_id, &s.session_id, 1);
        let gif = std::fs::read(t.file(&rel)).expect("the GIF");
        assert_eq!(&gif[..6], b"GIF89a");
        let mp4 = t.file(&AssetKind::MotionClip.files(&rel)[1]);
        let seconds = testing::decodes_clean(mp4).await;
        assert!((1.5..2.5).contains(&seconds), "{seconds} s of a 2 s clip");
        assert_eq!(
            t.rows(AssetKind::MotionClip).await,
            [(rel, "ready".to_string())]
        );
    }

    /// Clips of 15 s every 10 s overlap on schedule (before: one every 15 s, drifting).
    #[tokio::test]
    async fn clips_longer_than_their_interval_overlap_on_schedule() {
        let mut settings = domain::Processing::default();
        settings.motionclip.enabled = true;
        settings.motionclip.duration = 15;
        settings.motionclip.interval = 10;
        // 30 rounds of 1.2 s: 36 s, clips from about 0, 10, 20 and 30 s (the last one shorter).
        let t = testing::run_alone(settings, 30, run).await;
        let rows = t.rows(AssetKind::MotionClip).await;
        assert_eq!(rows.len(), 4, "{rows:?}");
        let mut seconds = Vec::new();
        for (path, status) in &rows {
            assert_eq!(status, "ready");
            let mp4 = t.file(&AssetKind::MotionClip.files(path)[1]);
            seconds.push(testing::decodes_clean(mp4).await);
        }
        seconds.sort_by(f64::total_cmp);
        assert!((4.5..6.6).contains(&seconds[0]), "{seconds:?}");
        assert!(
            seconds[1..].iter().all(|s| (14.5..15.5).contains(s)),
            "{seconds:?}"
        );
    }
}
