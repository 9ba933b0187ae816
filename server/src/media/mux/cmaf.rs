//! CMAF fragments from bus events: the segmenter that live HLS, replay and recording share.
//! It cuts at the first keyframe a second or more after the open segment's start (audio alone:
//! after a second of samples), writes a new init segment when the codec parameters change, and
//! stamps each segment with the wall-clock time its media began.

use bytes::Bytes;

use super::fmp4::{self, TrackRun, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use super::playlist::Entry;
use crate::media::frame::{AudioParams, Event, Frame, Track, VideoParams, VIDEO_TIMESCALE};

/// Cut at the first keyframe at least this long after the segment's start.
const TARGET_SECONDS: f64 = 1.0;

#[derive(Clone)]
pub(crate) struct Segment {
    pub(crate) sequence: u64,
    pub(crate) duration: f64,
    /// EXT-X-PROGRAM-DATE-TIME of its first frame: when the session's first frame reached the
    /// server plus media time since then. Tied to media time (not each segment's arrival) so a
    /// player's date maps exactly onto the session timeline that clips are cut on, and players
    /// can still tell how far behind real time they play.
    pub(crate) wall_ms: i64,
    pub(crate) init: u32,
    pub(crate) data: Bytes,
}

impl Segment {
    pub(crate) fn entry(&self) -> Entry {
        Entry {
            sequence: self.sequence,
            duration: self.duration,
            wall_ms: self.wall_ms,
            init: self.init,
            gap: false,
        }
    }
}

/// Cuts bus events into CMAF fragments; shared by live HLS and recording.
#[derive(Default)]
pub(crate) struct Segmenter {
    video: Option<VideoParams>,
    audio: Option<AudioParams>,
    /// The params changed since the last init segment was written.
    params_changed: bool,
    /// New video params that wait for the open segment (of the old ones) to be cut at the
    /// next keyframe: the old frames must not go out under the new init segment.
    next_video: Option<VideoParams>,
    /// Set by a writer that starts a new file for each init segment (the recording).
    pub(crate) rebase_on_init: bool,
    init_version: Option<u32>,
    video_frames: Vec<Frame>,
    audio_frames: Vec<Frame>,
    /// Arrival time of the open segment's first frame.
    open_wall_ms: Option<i64>,
    /// (arrival ms, first presentation time in 90 kHz) of the first segment: the clock that
    /// every segment's program date follows.
    anchor: Option<(i64, i64)>,
    /// Set by a writer that starts a new file: the next fragment's first frames become time 0.
    pub(crate) rebase_next: bool,
    /// Subtracted from decode times (video, audio), so each recording file starts at 0.
    origin: (i64, i64),
    sequence: u64,
}

impl Segmenter {
    fn audio_frame_samples(&self) -> i64 {
        self.audio.as_ref().map_or(1024, AudioParams::frame_samples)
    }

    pub(crate) fn push(&mut self, event: &Event, inits: u32) -> Option<(Option<Bytes>, Segment)> {
        match event {
            // Before the first init segment, parameters simply arrive; after it, a change needs
            // a new init segment and so a cut.
            Event::Video(p) => {
                if self.video.as_ref() == Some(p) {
                    self.next_video = None;
                } else if self.video_frames.is_empty() {
                    self.params_changed |= self.init_version.is_some();
                    self.video = Some(p.clone());
                } else {
                    self.next_video = Some(p.clone());
                }
                None
            }
            Event::Audio(p) => {
                self.params_changed |=
                    self.init_version.is_some() && self.audio.as_ref() != Some(p);
                self.audio = Some(p.clone());
                None
            }
            Event::Frame(f) => self.frame(f, inits),
        }
    }

    fn frame(&mut self, f: &Frame, inits: u32) -> Option<(Option<Bytes>, Segment)> {
        let out = self.frame_inner(f, inits);
        if self.open_wall_ms.is_none()
            && !(self.video_frames.is_empty() && self.audio_frames.is_empty())
        {
            self.open_wall_ms = Some(domain::store::now_ms());
        }
        out
    }

    fn frame_inner(&mut self, f: &Frame, inits: u32) -> Option<(Option<Bytes>, Segment)> {
        let has_video = self.video.is_some();
        let mut out = None;
        match f.track {
            Track::Video if has_video => {
                if (self.video_frames.is_empty() || self.next_video.is_some()) && !f.keyframe {
                    return None; // a segment starts with a keyframe
                }
                if f.keyframe {
                    if let Some(first) = self.video_frames.first() {
                        let elapsed = (f.dts - first.dts) as f64 / f64::from(VIDEO_TIMESCALE);
                        if elapsed >= TARGET_SECONDS
                            || self.params_changed
                            || self.next_video.is_some()
                        {
                            out = self.cut(f.dts, inits);
                        }
                    }
                    if let Some(p) = self.next_video.take() {
                        self.params_changed |= self.init_version.is_some();
                        self.video = Some(p);
                    }
                }
                self.video_frames.push(f.clone());
            }
            Track::Audio if self.audio.is_some() => {
                // With video, audio waits for the first keyframe so segments start together.
                if has_video && self.video_frames.is_empty() {
                    return None;
                }
                self.audio_frames.push(f.clone());
                if !has_video {
                    let rate = self.audio.as_ref().map_or(48000, |a| a.sample_rate) as f64;
                    let first = self.audio_frames[0].dts;
                    let end = f.dts + self.audio_frame_samples();
                    if (end - first) as f64 / rate >= TARGET_SECONDS {
                        out = self.cut(end, inits);
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// Ends the open segment at `end` (video timescale with video, else audio samples).
    fn cut(&mut self, end: i64, inits: u32) -> Option<(Option<Bytes>, Segment)> {
        let rate = self.audio.as_ref().map(|a| i64::from(a.sample_rate));
        let (video, audio_end) = if self.video.is_some() {
            let frames = std::mem::take(&mut self.video_frames);
            (frames, rate.map(|r| end * r / i64::from(VIDEO_TIMESCALE)))
        } else {
            (Vec::new(), Some(end))
        };
        let split = match audio_end {
            Some(e) => self.audio_frames.partition_point(|a| a.dts < e),
            None => 0,
        };
        let audio: Vec<Frame> = self.audio_frames.drain(..split).collect();
        if video.is_empty() && audio.is_empty() {
            return None;
        }
        let mut new_init = None;
        if self.params_changed || self.init_version.is_none() {
            new_init = Some(fmp4::init_segment(self.video.as_ref(), self.audio.as_ref()));
            self.init_version = Some(inits);
            self.params_changed = false;
        }
        let duration = match (video.first(), audio.first(), rate) {
            (Some(v), _, _) => (end - v.dts) as f64 / f64::from(VIDEO_TIMESCALE),
            (None, Some(a), Some(r)) => (end - a.dts) as f64 / r as f64,
            _ => 0.0,
        };
        if self.rebase_next || (new_init.is_some() && self.rebase_on_init) {
            // One instant for both tracks (the earlier first frame), so that rebasing keeps
            // audio where it was against the video.
            let r = i128::from(rate.unwrap_or(48_000).max(1));
            let v = i128::from(VIDEO_TIMESCALE);
            // In units of 1 / (90 kHz × audio rate), exact in both timescales.
            let start = match (video.first(), audio.first()) {
                (Some(v0), Some(a0)) => (i128::from(v0.dts) * r).min(i128::from(a0.dts) * v),
                (Some(v0), None) => i128::from(v0.dts) * r,
                (None, Some(a0)) => i128::from(a0.dts) * v,
                (None, None) => 0,
            };
            self.origin = (start.div_euclid(r) as i64, start.div_euclid(v) as i64);
            self.rebase_next = false;
        }
        let runs = [
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_dts: video.first().map_or(0, |f| f.dts - self.origin.0),
                last_duration: video.last().map_or(0, |f| (end - f.dts).max(1) as u32),
                frames: &video,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_dts: audio.first().map_or(0, |f| f.dts - self.origin.1),
                last_duration: self.audio_frame_samples() as u32,
                frames: &audio,
            },
        ];
        self.sequence += 1;
        let data = fmp4::fragment(self.sequence as u32, &runs);
        let arrived = self
            .open_wall_ms
            .take()
            .unwrap_or_else(domain::store::now_ms);
        // First presentation time of the segment in 90 kHz (video's first frame, else audio's).
        let start_90k = match (video.first(), audio.first(), rate) {
            (Some(v), _, _) => v.pts,
            (None, Some(a), Some(r)) => a.dts * i64::from(VIDEO_TIMESCALE) / r,
            _ => 0,
        };
        let (anchor_ms, anchor_90k) = *self.anchor.get_or_insert((arrived, start_90k));
        let wall_ms = anchor_ms + (start_90k - anchor_90k) / 90;
        Some((
            new_init,
            Segment {
                sequence: self.sequence,
                duration,
                wall_ms,
                init: self.init_version.unwrap_or(0),
                data,
            },
        ))
    }

    /// The last, partial segment when the stream ends.
    pub(crate) fn flush(&mut self, inits: u32) -> Option<(Option<Bytes>, Segment)> {
        let end = if self.video.is_some() {
            let last = self.video_frames.last()?;
            let prev = self
                .video_frames
                .iter()
                .rev()
                .nth(1)
                .map_or(3000, |p| last.dts - p.dts);
            last.dts + prev.max(1)
        } else {
            self.audio_frames.last()?.dts + self.audio_frame_samples()
        };
        self.cut(end, inits)
    }
}
