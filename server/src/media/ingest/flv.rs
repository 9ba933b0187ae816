//! FLV audio/video tag bodies (as RTMP carries them) to bus events.
//!
//! Legacy FLV (video_file_format_spec_v10_1, Annex E.4.3): H.264 is codec id 7, AAC sound format
//! 10. Enhanced RTMP (HEVC, AV1, VP9, Opus…) sets the high bit of the first byte; liveproc refuses
//! those with a clear reason rather than writing files no process can read.

use bytes::Bytes;

use super::rtmp_session::Media;
use crate::media::frame::{AudioParams, Event, Frame, Track, VideoParams};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemuxError {
    #[error("unsupported codec: {0}")]
    Codec(String),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Per-publisher demuxing state: the current parameters and the audio sample clock.
#[derive(Default)]
pub struct FlvDemuxer {
    pub video: Option<VideoParams>,
    pub audio: Option<AudioParams>,
    /// The decode time the next AAC frame should have, in samples.
    audio_next: Option<i64>,
    video_clock: VideoClock,
}

/// RTMP gives milliseconds, so a 30 fps source arrives as 0, 33, 67, 100 (or, truncated, 0, 33,
/// 66, 100), and a busy publisher's clock adds jitter of its own: 90 kHz times taken from them
/// as they are put two frames in one frame slot for players and ffmpeg, which guess the frame
/// rate from them. The clock puts frames on the grid of the common frame rate the stream's
/// intervals match, each within 0.45 of a frame of its millisecond time; a frame that fits no
/// slot (a variable frame rate, a gap, a jump) starts a new grid. A grid's rate is the one the
/// last 16 frames' mean interval matches, or, once 100 frames have been on grids, the long-run
/// interval, so that 29.97 and 30 fps settle apart.
#[derive(Default)]
struct VideoClock {
    /// The grid's origin: decode time (90 kHz) and source time (ms).
    anchor: Option<(i64, i64)>,
    /// The last frame: its index on the grid, decode time and source time.
    last: Option<(i64, i64, i64)>,
    /// The grid's frame duration (90 kHz), once chosen.
    duration: Option<f64>,
    /// Source milliseconds and frame slots of the grids before this one.
    history: (i64, i64),
    /// The source times of the last frames.
    recent: std::collections::VecDeque<i64>,
}

impl VideoClock {
    /// Frame durations (90 kHz) of the rates encoders use: 10 12.5 15 20 23.976 24 25 29.97 30
    /// 50 59.94 60 120 fps.
    const GRID: [f64; 13] = [
        9000.0, 7200.0, 6000.0, 4500.0, 3753.75, 3750.0, 3600.0, 3003.0, 3000.0, 1800.0, 1501.5,
        1500.0, 750.0,
    ];

    /// The common frame duration nearest `interval` (90 kHz), if within a quarter of it.
    fn nearest(interval: f64) -> Option<f64> {
        Self::GRID
            .iter()
            .copied()
            .min_by(|a, b| (a - interval).abs().total_cmp(&(b - interval).abs()))
            .filter(|d| (d - interval).abs() <= d * 0.25)
    }

    /// The decode time (90 kHz) of a frame at `ms`, and the grid's frame duration.
    fn dts(&mut self, ms: i64) -> (i64, Option<f64>) {
        let raw = ms * 90;
        if self.recent.len() == 16 {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        let mut chosen = None;
        if let (Some((origin, anchor_ms)), Some((last_index, _, last_ms))) =
            (self.anchor, self.last)
        {
            let d = self.duration.or_else(|| {
                let (history_ms, slots) = self.history;
                let (first, n) = (self.recent[0], self.recent.len() as i64);
                let interval = if slots >= 100 {
                    history_ms as f64 * 90.0 / slots as f64
                } else {
                    (ms - first) as f64 * 90.0 / (n - 1) as f64
                };
                Self::nearest(interval)
            });
            chosen = d;
            if let Some(d) = d {
                let index = ((raw - origin) as f64 / d).round() as i64;
                let on_grid = origin + (index as f64 * d).round() as i64;
                if index > last_index && ((on_grid - raw) as f64).abs() <= d * 0.45 {
                    self.duration = Some(d);
                    self.last = Some((index, on_grid, ms));
                    return (on_grid, Some(d));
                }
            }
            self.history.0 += last_ms - anchor_ms;
            self.history.1 += last_index;
        }
        // A new grid from this frame, at least a frame after the last one when the rate is
        // known: two frames in one slot of the guessed rate is what players stumble on.
        let dts = match (self.last, chosen) {
            (Some((_, last, _)), Some(d)) => raw.max(last + d.round() as i64),
            (Some((_, last, _)), None) => raw.max(last + 1),
            (None, _) => raw,
        };
        self.anchor = Some((dts, ms));
        self.last = Some((0, dts, ms));
        self.duration = None;
        (dts, None)
    }
}

impl FlvDemuxer {
    /// One RTMP audio or video message.
    pub fn message(
        &mut self,
        kind: Media,
        timestamp: u32,
        data: Bytes,
    ) -> Result<Option<Event>, DemuxError> {
        match kind {
            Media::Video => self.video(timestamp, data),
            Media::Audio => self.audio(timestamp, data),
        }
    }

    /// One video message; `timestamp` is RTMP's, in milliseconds.
    pub fn video(&mut self, timestamp: u32, data: Bytes) -> Result<Option<Event>, DemuxError> {
        let Some(&b0) = data.first() else {
            return Ok(None);
        };
        if b0 & 0x80 != 0 {
            let fourcc = data
                .get(1..5)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return Err(DemuxError::Codec(format!(
                "enhanced RTMP video {fourcc:?}; liveproc takes H.264"
            )));
        }
        let (frame_type, codec_id) = (b0 >> 4, b0 & 0x0F);
        if codec_id != 7 {
            return Err(DemuxError::Codec(format!(
                "FLV video codec id {codec_id}; liveproc takes H.264 (id 7)"
            )));
        }
        if frame_type == 5 {
            return Ok(None); // video info / command frame
        }
        if data.len() < 5 {
            return Err(DemuxError::Malformed("AVC video tag header"));
        }
        // Composition time is a signed 24-bit number (SI24).
        let raw = u32::from_be_bytes([0, data[2], data[3], data[4]]);
        let cts = ((raw << 8) as i32) >> 8;
        let body = data.slice(5..);
        match data[1] {
            0 => {
                let params = VideoParams::from_avcc(body).map_err(DemuxError::Malformed)?;
                if self.video.as_ref() == Some(&params) {
                    return Ok(None);
                }
                self.video = Some(params.clone());
                Ok(Some(Event::Video(params)))
            }
            1 if self.video.is_some() && !body.is_empty() => {
                let (dts, duration) = self.video_clock.dts(i64::from(timestamp));
                // The composition offset is whole frames too, when there is a grid.
                let offset = f64::from(cts) * 90.0;
                let offset = match duration {
                    Some(d) => ((offset / d).round() * d).round() as i64,
                    None => offset as i64,
                };
                Ok(Some(Event::Frame(Frame {
                    track: Track::Video,
                    dts,
                    pts: dts + offset,
                    keyframe: frame_type == 1,
                    data: body,
                    arrived: std::time::Instant::now(),
                })))
            }
            _ => Ok(None), // frames before the sequence header, end of sequence
        }
    }

    /// One audio message; `timestamp` is RTMP's, in milliseconds.
    pub fn audio(&mut self, timestamp: u32, data: Bytes) -> Result<Option<Event>, DemuxError> {
        let Some(&b0) = data.first() else {
            return Ok(None);
        };
        match b0 >> 4 {
            10 => {}
            9 => {
                return Err(DemuxError::Codec(
                    "enhanced RTMP audio; liveproc takes AAC".into(),
                ))
            }
            other => {
                return Err(DemuxError::Codec(format!(
                    "FLV sound format {other}; liveproc takes AAC (format 10)"
                )))
            }
        }
        if data.len() < 2 {
            return Err(DemuxError::Malformed("AAC audio tag header"));
        }
        let body = data.slice(2..);
        match data[1] {
            0 => {
                let params = AudioParams::from_asc(body)
                    .ok_or(DemuxError::Malformed("AudioSpecificConfig"))?;
                if self.audio.as_ref() == Some(&params) {
                    return Ok(None);
                }
                self.audio = Some(params.clone());
                self.audio_next = None;
                Ok(Some(Event::Audio(params)))
            }
            1 if !body.is_empty() => {
                let Some(rate) = self.audio.as_ref().map(|a| i64::from(a.sample_rate)) else {
                    return Ok(None);
                };
                // Count samples (1024 per AAC frame) instead of trusting millisecond stamps;
                // resync only when they disagree by more than 100 ms (a gap in the source).
                let from_clock = i64::from(timestamp) * rate / 1000;
                let dts = match self.audio_next {
                    Some(next) if (next - from_clock).abs() <= rate / 10 => next,
                    _ => from_clock,
                };
                self.audio_next = Some(dts + 1024);
                Ok(Some(Event::Frame(Frame {
                    track: Track::Audio,
                    dts,
                    pts: dts,
                    keyframe: true,
                    data: body,
                    arrived: std::time::Instant::now(),
                })))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_codecs_with_reasons() {
        let mut d = FlvDemuxer::default();
        let hevc = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1']);
        assert!(matches!(d.video(0, hevc), Err(DemuxError::Codec(m)) if m.contains("hvc1")));
        let vp6 = Bytes::from_static(&[0x14, 0]);
        assert!(matches!(d.video(0, vp6), Err(DemuxError::Codec(m)) if m.contains("id 4")));
        let mp3 = Bytes::from_static(&[0x2f, 0]);
        assert!(matches!(d.audio(0, mp3), Err(DemuxError::Codec(m)) if m.contains("format 2")));
    }

    #[test]
    fn frames_before_headers_are_skipped_and_garbage_is_an_error() {
        let mut d = FlvDemuxer::default();
        assert!(matches!(
            d.video(0, Bytes::from_static(&[0x17, 1, 0, 0, 0, 1, 2])),
            Ok(None)
        ));
        assert!(matches!(
            d.audio(0, Bytes::from_static(&[0xaf, 1, 1, 2])),
            Ok(None)
        ));
        assert!(d
            .video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]))
            .is_err());
        assert!(d.video(0, Bytes::from_static(&[0x17, 0])).is_err());
        assert!(d.audio(0, Bytes::from_static(&[0xaf, 0, 0xff])).is_err());
    }

    #[test]
    fn audio_clock_counts_samples_and_composition_time_is_signed() {
        let mut d = FlvDemuxer::default();
        // AAC-LC 48 kHz stereo.
        assert!(d
            .audio(0, Bytes::from_static(&[0xaf, 0, 0x11, 0x90]))
            .unwrap()
            .is_some());
        let mut dts = Vec::new();
        for ts in [1000u32, 1021, 1043, 1064] {
            match d.audio(ts, Bytes::from_static(&[0xaf, 1, 9])).unwrap() {
                Some(Event::Frame(f)) => dts.push(f.dts),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(dts, [48000, 49024, 50048, 51072]);
        // A real gap resyncs to the clock.
        match d.audio(5000, Bytes::from_static(&[0xaf, 1, 9])).unwrap() {
            Some(Event::Frame(f)) => assert_eq!(f.dts, 240000),
            other => panic!("{other:?}"),
        }
        d.video = Some(VideoParams {
            kind: crate::media::frame::VideoCodec::H264,
            avcc: Bytes::new(),
            sps: Bytes::new(),
            profile_idc: 100,
            constraints: 0,
            level_idc: 31,
            width: 2,
            height: 2,
        });
        // cts = -40 ms as SI24.
        match d
            .video(
                1000,
                Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41]),
            )
            .unwrap()
        {
            Some(Event::Frame(f)) => {
                assert_eq!((f.dts, f.pts, f.keyframe), (90000, 90000 - 3600, false))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn millisecond_times_land_on_the_frame_grid() {
        // 30 fps as GStreamer stamps it (truncated, from 15 ms), two frames dropped at 10.
        let mut clock = VideoClock::default();
        let frames: Vec<i64> = (0..60).filter(|k| !(10..12).contains(k)).collect();
        for k in frames {
            let t = 15 + k * 1000 / 30;
            assert_eq!(clock.dts(t).0, 1350 + k * 3000, "frame {k} at {t} ms");
        }
        // 29.97 fps rounded to ms settles on 3003 (once the long-run interval tells).
        let mut clock = VideoClock::default();
        let last = (0..1200)
            .map(|k| clock.dts((k as f64 * 1001.0 / 30.0).round() as i64).0)
            .collect::<Vec<_>>();
        assert_eq!(last[1199] - last[1198], 3003);
        assert!(last.windows(2).all(|w| w[1] > w[0]));
        // A busy publisher's clock, ±6 ms around 30 fps, stays on the 30 fps grid.
        let mut clock = VideoClock::default();
        let jitter = [0, 6, -5, 3, -6, 0, 4];
        let dts: Vec<i64> = (0..90)
            .map(|k| clock.dts(1000 + k * 1000 / 30 + jitter[k as usize % 7]).0)
            .collect();
        // 16 jittery frames cannot tell 30 from 29.97 fps: either cadence, but one.
        let step = dts[31] - dts[30];
        assert!(step == 3000 || step == 3003, "{dts:?}");
        assert!(dts[30..].windows(2).all(|w| w[1] - w[0] == step), "{dts:?}");
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
        // A clock that jumps 10 s forward and back stays strictly increasing.
        let mut clock = VideoClock::default();
        let jumpy = [0, 40, 80, 10_080, 10_120, 120, 160, 200];
        let dts: Vec<i64> = jumpy.iter().map(|&t| clock.dts(t).0).collect();
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
    }
}
