//! FLV audio/video tag bodies (as RTMP carries them) to bus events.
//!
//! Legacy FLV (video_file_format_spec_v10_1, Annex E.4.3): H.264 is codec id 7, AAC sound format
//! 10, carried as they come; MP3 (2, 14) and G.711 (7, 8) are transcoded to Opus
//! ([`super::to_opus`]). Enhanced RTMP sets the high bit of the first byte: H.265 (`hvc1`) is
//! carried; AV1, VP9 and the rest are refused with a clear reason rather than written to files
//! no process can read. Enhanced RTMP audio (sound format 9, a FourCC): Opus and AAC (`mp4a`)
//! are carried as they come; the rest is refused the same way.

use bytes::Bytes;

use super::rtmp_session::Media;
use super::to_opus::{SourceAudio, ToOpus, TranscodeError};
use crate::media::frame::{hevc_irap, AudioParams, Event, Frame, Track, VideoParams};

/// A signed 24-bit big-endian number (FLV's composition time).
fn si24(b: &[u8]) -> i32 {
    ((u32::from_be_bytes([0, b[0], b[1], b[2]]) << 8) as i32) >> 8
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DemuxError {
    #[error("unsupported codec: {0}")]
    Codec(String),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("{0}")]
    Transcode(#[from] TranscodeError),
}

/// Per-publisher demuxing state: the current parameters and the audio sample clock.
#[derive(Default)]
pub struct FlvDemuxer {
    pub video: Option<VideoParams>,
    pub audio: Option<AudioParams>,
    /// The decode time the next AAC frame should have, in samples.
    audio_next: Option<i64>,
    /// Added to the publisher's clock (in samples) once it jumped back, so that audio times
    /// never do.
    audio_offset: i64,
    /// AAC frames dropped to keep audio with the publisher's clock.
    pub audio_dropped: u64,
    /// MP3 or G.711 audio, transcoded to Opus.
    to_opus: Option<ToOpus>,
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
    /// The last frame duration chosen on any grid (90 kHz).
    step: Option<i64>,
    /// Source milliseconds and frame slots of the grids before this one.
    history: (i64, i64),
    /// The source times (90 kHz, offset) of the last frames.
    recent: std::collections::VecDeque<i64>,
    /// Added to source times (90 kHz) once the publisher's clock jumped back (or wrapped),
    /// so that decode times never do.
    offset: i64,
}

impl VideoClock {
    /// Frame durations (90 kHz) of the rates encoders use: 10 12.5 15 20 23.976 24 25 29.97 30
    /// 50 59.94 60 120 fps.
    const GRID: [f64; 13] = [
        9000.0, 7200.0, 6000.0, 4500.0, 3753.75, 3750.0, 3600.0, 3003.0, 3000.0, 1800.0, 1501.5,
        1500.0, 750.0,
    ];
    /// A source time this far (90 kHz) behind the last frame is a jump back, not jitter.
    const JUMP_BACK: i64 = 9000;
    /// A gap this long (90 kHz) is a jump forward: kept, as audio keeps it.
    const JUMP_FORWARD: i64 = 90_000;

    /// The common frame duration nearest `interval` (90 kHz), if within a quarter of it. An
    /// interval measured over `n` frames of millisecond times is only good to 180 / n: when the
    /// NTSC rate (1001/1000 longer) and its whole sibling both fit, the whole one is taken (the
    /// long-run interval tells them apart later), or 30 fps stamped 0, 34, 67… starts on 29.97.
    fn nearest(interval: f64, n: i64) -> Option<f64> {
        let d = Self::GRID
            .iter()
            .copied()
            .min_by(|a, b| (a - interval).abs().total_cmp(&(b - interval).abs()))
            .filter(|d| (d - interval).abs() <= d * 0.25)?;
        let whole = d * 1000.0 / 1001.0;
        let error = 180.0 / n.max(1) as f64;
        let ntsc = Self::GRID.iter().any(|g| (g - whole).abs() < 0.01);
        Some(if ntsc && (whole - interval).abs() <= error {
            whole.round()
        } else {
            d
        })
    }

    /// The decode time (90 kHz) of a frame at `ms`, and the grid's frame duration.
    fn dts(&mut self, ms: i64) -> (i64, Option<f64>) {
        let raw = ms * 90 + self.offset;
        let mut chosen = None;
        if let (Some((origin, anchor_ms)), Some((last_index, _, last_ms))) =
            (self.anchor, self.last)
        {
            let d = self.duration.or_else(|| {
                let (history_ms, slots) = self.history;
                let (interval, n) = if slots >= 100 {
                    (history_ms as f64 * 90.0 / slots as f64, slots)
                } else {
                    let first = *self.recent.front()?;
                    let n = self.recent.len() as i64;
                    ((raw - first) as f64 / n as f64, n)
                };
                Self::nearest(interval, n)
            });
            chosen = d;
            if let Some(d) = d {
                let index = ((raw - origin) as f64 / d).round() as i64;
                let on_grid = origin + (index as f64 * d).round() as i64;
                if index > last_index && ((on_grid - raw) as f64).abs() <= d * 0.45 {
                    self.duration = Some(d);
                    self.step = Some(d.round() as i64);
                    self.last = Some((index, on_grid, ms));
                    self.remember(raw);
                    return (on_grid, Some(d));
                }
            }
            self.history.0 += last_ms - anchor_ms;
            self.history.1 += last_index;
        }
        // A new grid from this frame, at least a frame after the last one (two frames in one
        // slot of the guessed rate is what players stumble on). A clock that went back further
        // than jitter goes on from the last frame, and the times after it with it.
        let mut jumped = false;
        let dts = match self.last {
            Some((_, last, _)) => {
                let next = last + chosen.map_or(self.step.unwrap_or(1), |d| d.round() as i64);
                if raw < last - Self::JUMP_BACK {
                    self.offset += next - raw;
                    jumped = true;
                }
                jumped |= raw > last + Self::JUMP_FORWARD;
                raw.max(next)
            }
            None => raw,
        };
        self.anchor = Some((dts, ms));
        self.last = Some((0, dts, ms));
        // A jump moves the clock, not the frame rate: the new grid keeps the last one's, so
        // that pictures around the jump keep their order and spacing.
        self.duration = if jumped { chosen } else { None };
        if jumped {
            self.recent.clear();
        }
        self.remember(dts);
        (dts, None)
    }

    fn remember(&mut self, t: i64) {
        if self.recent.len() == 16 {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
    }
}

impl FlvDemuxer {
    /// One RTMP audio or video message.
    pub fn message(
        &mut self,
        kind: Media,
        timestamp: u32,
        data: Bytes,
    ) -> Result<Vec<Event>, DemuxError> {
        match kind {
            Media::Video => Ok(self.video(timestamp, data)?.into_iter().collect()),
            Media::Audio => self.audio(timestamp, data),
        }
    }

    /// One video message; `timestamp` is RTMP's, in milliseconds.
    pub fn video(&mut self, timestamp: u32, data: Bytes) -> Result<Option<Event>, DemuxError> {
        let Some(&b0) = data.first() else {
            return Ok(None);
        };
        if b0 & 0x80 != 0 {
            return self.enhanced_video(timestamp, data);
        }
        let (frame_type, codec_id) = (b0 >> 4, b0 & 0x0F);
        if codec_id != 7 {
            return Err(DemuxError::Codec(format!(
                "FLV video codec id {codec_id}; liveproc takes H.264 (id 7) and H.265 (enhanced RTMP)"
            )));
        }
        if frame_type == 5 {
            return Ok(None); // video info / command frame
        }
        if data.len() < 5 {
            return Err(DemuxError::Malformed("AVC video tag header"));
        }
        let cts = si24(&data[2..5]);
        let body = data.slice(5..);
        match data[1] {
            0 => self.video_params(VideoParams::from_avcc(body).map_err(DemuxError::Malformed)?),
            1 => Ok(self.video_frame(timestamp, cts, frame_type == 1, body)),
            _ => Ok(None), // end of sequence
        }
    }

    /// Enhanced RTMP video (veovera enhanced-rtmp v1: a FourCC after the first byte, whose low
    /// nibble is the packet type): H.265 (`hvc1`) as OBS and ffmpeg ≥ 6.1 send it.
    fn enhanced_video(&mut self, timestamp: u32, data: Bytes) -> Result<Option<Event>, DemuxError> {
        if data.len() < 5 {
            return Err(DemuxError::Malformed("enhanced RTMP video tag header"));
        }
        let (frame_type, packet_type) = ((data[0] >> 4) & 0x07, data[0] & 0x0F);
        if &data[1..5] != b"hvc1" {
            let fourcc = String::from_utf8_lossy(&data[1..5]);
            return Err(DemuxError::Codec(format!(
                "enhanced RTMP video {fourcc:?}; liveproc takes H.264 and H.265 (\"hvc1\")"
            )));
        }
        if frame_type == 5 {
            return Ok(None); // command frame
        }
        match packet_type {
            // SequenceStart: the HEVCDecoderConfigurationRecord.
            0 => self.video_params(
                VideoParams::from_hvcc(data.slice(5..)).map_err(DemuxError::Malformed)?,
            ),
            // CodedFrames (with a composition time) and CodedFramesX (without).
            1 if data.len() >= 8 => {
                let keyframe = frame_type == 1 || hevc_irap(&data[8..]);
                Ok(self.video_frame(timestamp, si24(&data[5..8]), keyframe, data.slice(8..)))
            }
            3 => {
                let keyframe = frame_type == 1 || hevc_irap(&data[5..]);
                Ok(self.video_frame(timestamp, 0, keyframe, data.slice(5..)))
            }
            1 => Err(DemuxError::Malformed("enhanced RTMP coded frames header")),
            6 => Err(DemuxError::Codec(
                "enhanced RTMP multitrack video; liveproc takes one video track".into(),
            )),
            _ => Ok(None), // SequenceEnd, Metadata (HDR), MPEG-2 TS sequence start
        }
    }

    fn video_params(&mut self, params: VideoParams) -> Result<Option<Event>, DemuxError> {
        if self.video.as_ref() == Some(&params) {
            return Ok(None);
        }
        self.video = Some(params.clone());
        Ok(Some(Event::Video(params)))
    }

    /// One coded frame at `timestamp` (ms) with composition offset `cts` (ms); frames before
    /// the parameters are skipped.
    fn video_frame(
        &mut self,
        timestamp: u32,
        cts: i32,
        keyframe: bool,
        body: Bytes,
    ) -> Option<Event> {
        if self.video.is_none() || body.is_empty() {
            return None;
        }
        let (dts, duration) = self.video_clock.dts(i64::from(timestamp));
        // The composition offset is whole frames too, when there is a grid.
        let offset = f64::from(cts) * 90.0;
        let offset = match duration {
            Some(d) => ((offset / d).round() * d).round() as i64,
            None => offset as i64,
        };
        Some(Event::Frame(Frame {
            track: Track::Video,
            dts,
            pts: dts + offset,
            keyframe,
            data: body,
            arrived: std::time::Instant::now(),
        }))
    }

    /// One audio message; `timestamp` is RTMP's, in milliseconds. An MP3 or G.711 message gives
    /// the Opus frames it completes (and the Opus parameters before the first).
    pub fn audio(&mut self, timestamp: u32, data: Bytes) -> Result<Vec<Event>, DemuxError> {
        let Some(&b0) = data.first() else {
            return Ok(Vec::new());
        };
        let channels = 1 + (b0 & 1);
        let source = match b0 >> 4 {
            10 => None,
            2 | 14 => Some(SourceAudio::Mp3),
            7 | 8 => Some(SourceAudio::G711 {
                mu_law: b0 >> 4 == 8,
                rate: 8000,
                channels,
            }),
            9 => return self.enhanced_audio(timestamp, data),
            other => {
                return Err(DemuxError::Codec(format!(
                    "FLV sound format {other}; liveproc takes AAC (10), MP3 (2) and G.711 (7, 8)"
                )))
            }
        };
        if let Some(source) = source {
            return self.transcoded(source, timestamp, data.slice(1..));
        }
        if data.len() < 2 {
            return Err(DemuxError::Malformed("AAC audio tag header"));
        }
        let body = data.slice(2..);
        match data[1] {
            0 => {
                let params = AudioParams::from_asc(body)
                    .ok_or(DemuxError::Malformed("AudioSpecificConfig"))?;
                Ok(self.audio_params(params))
            }
            1 if !body.is_empty() => Ok(self
                .timed_audio(timestamp, body, 1024)
                .into_iter()
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// A coded audio frame of `samples` samples at the track's rate, timed by counting samples
    /// rather than trusting millisecond stamps, within a frame and a half of the publisher's
    /// clock (ms rounding and jitter). Beyond: a clock ahead is a gap in the source, kept; a
    /// clock a little behind (audio drifting ahead of the video) drops the frame; a clock more
    /// than 100 ms behind jumped back (or wrapped) and is offset. Never back, never drifting.
    fn timed_audio(&mut self, timestamp: u32, body: Bytes, samples: i64) -> Option<Event> {
        let rate = i64::from(self.audio.as_ref()?.sample_rate);
        let from_clock = i64::from(timestamp) * rate / 1000 + self.audio_offset;
        let dts = match self.audio_next {
            None => from_clock,
            Some(next) if (next - from_clock).abs() <= samples * 3 / 2 => next,
            Some(next) if from_clock > next => from_clock,
            Some(next) if next - from_clock <= rate / 10 => {
                self.audio_dropped += 1;
                return None;
            }
            Some(next) => {
                self.audio_offset += next - from_clock;
                next
            }
        };
        self.audio_next = Some(dts + samples);
        Some(Event::Frame(Frame {
            track: Track::Audio,
            dts,
            pts: dts,
            keyframe: true,
            data: body,
            arrived: std::time::Instant::now(),
        }))
    }

    /// New audio parameters: an event when they changed.
    fn audio_params(&mut self, params: AudioParams) -> Vec<Event> {
        if self.audio.as_ref() == Some(&params) {
            return Vec::new();
        }
        self.audio = Some(params.clone());
        self.audio_next = None;
        self.audio_offset = 0;
        vec![Event::Audio(params)]
    }

    /// Enhanced RTMP audio (E-RTMP v2): the packet type in the low nibble, then a FourCC.
    /// Opus (its `OpusHead` first, then one packet per message) and AAC (`mp4a`: the
    /// AudioSpecificConfig, then raw frames) are carried as they come.
    fn enhanced_audio(&mut self, timestamp: u32, data: Bytes) -> Result<Vec<Event>, DemuxError> {
        let packet_type = data[0] & 0x0f;
        if packet_type == 5 || packet_type == 7 {
            return Err(DemuxError::Codec(
                "enhanced RTMP multitrack or ModEx audio; liveproc takes one audio track".into(),
            ));
        }
        if data.len() < 5 {
            return Err(DemuxError::Malformed("enhanced RTMP audio header"));
        }
        let body = data.slice(5..);
        match (&data[1..5], packet_type) {
            (b"Opus", 0) => {
                let params =
                    AudioParams::from_opus_head(&body).ok_or(DemuxError::Malformed("OpusHead"))?;
                if params.channels > 2 {
                    return Err(DemuxError::Codec(format!(
                        "Opus with {} channels; liveproc takes mono and stereo Opus",
                        params.channels
                    )));
                }
                Ok(self.audio_params(params))
            }
            (b"Opus", 1) if !body.is_empty() => {
                let samples = crate::media::frame::opus_samples(&body)
                    .ok_or(DemuxError::Malformed("Opus packet"))?;
                Ok(self
                    .timed_audio(timestamp, body, samples)
                    .into_iter()
                    .collect())
            }
            (b"mp4a", 0) => {
                let params = AudioParams::from_asc(body)
                    .ok_or(DemuxError::Malformed("AudioSpecificConfig"))?;
                Ok(self.audio_params(params))
            }
            (b"mp4a", 1) if !body.is_empty() => Ok(self
                .timed_audio(timestamp, body, 1024)
                .into_iter()
                .collect()),
            (b"Opus" | b"mp4a", _) => Ok(Vec::new()),
            (fourcc, _) => Err(DemuxError::Codec(format!(
                "enhanced RTMP audio {:?}; liveproc takes AAC, Opus, MP3 and G.711",
                String::from_utf8_lossy(fourcc)
            ))),
        }
    }

    /// MP3 or G.711, through the stream's Opus encoder.
    fn transcoded(
        &mut self,
        source: SourceAudio,
        timestamp: u32,
        body: Bytes,
    ) -> Result<Vec<Event>, DemuxError> {
        if body.is_empty() {
            return Ok(Vec::new());
        }
        let to_opus = match &mut self.to_opus {
            Some(t) if t.source() == source => t,
            _ => self.to_opus.insert(ToOpus::new(source)?),
        };
        let frames = to_opus.push(i64::from(timestamp) * 48, &body)?;
        let mut out = Vec::with_capacity(frames.len() + 1);
        if let Some(params) = to_opus.params() {
            if self.audio.as_ref() != Some(params) {
                self.audio = Some(params.clone());
                out.push(Event::Audio(params.clone()));
            }
        }
        out.extend(frames.into_iter().map(Event::Frame));
        Ok(out)
    }
}

/// x265's HEVCDecoderConfigurationRecord for 640×360 Main (its VPS, SPS and PPS arrays).
#[cfg(test)]
pub(crate) const X265_HVCC: [u8; 111] = [
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0xf0, 0x00, 0xfc,
    0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01,
    0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00,
    0x3f, 0x95, 0x98, 0x09, 0xa1, 0x00, 0x01, 0x00, 0x2a, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69,
    0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00,
    0x03, 0x03, 0x21, 0xa2, 0x00, 0x01, 0x00, 0x07, 0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_codecs_with_reasons() {
        let mut d = FlvDemuxer::default();
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1']);
        assert!(matches!(d.video(0, av1), Err(DemuxError::Codec(m)) if m.contains("av01")));
        let multitrack = Bytes::from_static(&[0x96, b'h', b'v', b'c', b'1']);
        assert!(
            matches!(d.video(0, multitrack), Err(DemuxError::Codec(m)) if m.contains("multitrack"))
        );
        let empty_record = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1']);
        assert!(matches!(
            d.video(0, empty_record),
            Err(DemuxError::Malformed(_))
        ));
        let vp6 = Bytes::from_static(&[0x14, 0]);
        assert!(matches!(d.video(0, vp6), Err(DemuxError::Codec(m)) if m.contains("id 4")));
        let speex = Bytes::from_static(&[0xb6, 0]);
        assert!(matches!(d.audio(0, speex), Err(DemuxError::Codec(m)) if m.contains("format 11")));
        let mp3_garbage = Bytes::from_static(&[0x2f, 1, 2, 3, 4]);
        assert!(matches!(
            d.audio(0, mp3_garbage),
            Err(DemuxError::Transcode(_))
        ));
        let flac = Bytes::from_static(&[0x90, b'f', b'L', b'a', b'C', 0]);
        assert!(matches!(d.audio(0, flac), Err(DemuxError::Codec(m)) if m.contains("fLaC")));
        let multitrack = Bytes::from_static(&[0x95, 0, b'O', b'p', b'u', b's']);
        assert!(
            matches!(d.audio(0, multitrack), Err(DemuxError::Codec(m)) if m.contains("multitrack"))
        );
    }

    /// An OpusHead: stereo, 312 samples of pre-skip, from 44.1 kHz, mapping family 0.
    fn opus_head(channels: u8) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.extend([1, channels]);
        h.extend(312u16.to_le_bytes());
        h.extend(44_100u32.to_le_bytes());
        h.extend([0, 0, 0]);
        h
    }

    #[test]
    fn enhanced_rtmp_opus_is_carried_with_sample_times() {
        let mut d = FlvDemuxer::default();
        let start = [&[0x90, b'O', b'p', b'u', b's'][..], &opus_head(2)].concat();
        let params = match d.audio(0, Bytes::from(start)).unwrap().as_slice() {
            [Event::Audio(p)] => p.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(params.codec(), "opus");
        assert_eq!((params.sample_rate, params.channels), (48_000, 2));
        let o = params.opus.unwrap();
        assert_eq!((o.pre_skip, o.input_rate, o.from), (312, 44_100, None));
        // 20 ms CELT frames (TOC config 31, code 0), stamped with RTMP's rounded milliseconds.
        let mut times = Vec::new();
        for (i, ms) in [0u32, 20, 41, 60, 80, 99].into_iter().enumerate() {
            let frame = Bytes::from(vec![
                0x91, b'O', b'p', b'u', b's', 0xf8, 0xff, 0xfe, i as u8,
            ]);
            match d.audio(ms, frame).unwrap().as_slice() {
                [Event::Frame(f)] => times.push(f.dts),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(times, [0, 960, 1920, 2880, 3840, 4800]);
        let surround = [&[0x90, b'O', b'p', b'u', b's'][..], &opus_head(6)].concat();
        assert!(
            matches!(d.audio(0, Bytes::from(surround)), Err(DemuxError::Codec(m)) if m.contains("6 channels"))
        );
        let bad = Bytes::from_static(&[0x90, b'O', b'p', b'u', b's', b'x']);
        assert!(matches!(
            d.audio(0, bad),
            Err(DemuxError::Malformed("OpusHead"))
        ));
    }

    #[test]
    fn opus_packet_durations() {
        use crate::media::frame::opus_samples;
        assert_eq!(opus_samples(&[0xf8]), Some(960)); // CELT 20 ms, one frame
        assert_eq!(opus_samples(&[0x08 | 1]), Some(1920)); // SILK 20 ms, two frames
        assert_eq!(opus_samples(&[0x18 | 3, 3]), None); // 3 × 60 ms: over 120 ms
        assert_eq!(opus_samples(&[0xe3, 6]), Some(720)); // CELT 2.5 ms × 6
        assert_eq!(opus_samples(&[0xe3]), None);
        assert_eq!(opus_samples(&[]), None);
    }

    #[test]
    fn enhanced_rtmp_carries_h265() {
        let mut d = FlvDemuxer::default();
        let tag = |head: &[u8], body: &[u8]| Bytes::from([head, body].concat());
        // SequenceStart (key frame, packet type 0) with x265's record.
        match d.video(0, tag(&[0x90, b'h', b'v', b'c', b'1'], &X265_HVCC)) {
            Ok(Some(Event::Video(p))) => {
                assert_eq!(
                    (p.codec(), p.width, p.height),
                    ("hvc1.1.6.L63.90".into(), 640, 360)
                );
                assert!(p.is_h265());
            }
            other => panic!("{other:?}"),
        }
        // CodedFrames (packet type 1, CTS 40 ms) holding an IDR_W_RADL picture: a keyframe.
        let idr = [0, 0, 0, 3, 19 << 1, 1, 0xAF];
        match d.video(0, tag(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 40], &idr)) {
            Ok(Some(Event::Frame(f))) => assert_eq!((f.keyframe, f.pts - f.dts), (true, 3600)),
            other => panic!("{other:?}"),
        }
        // CodedFramesX (packet type 3, no CTS) holding a TRAIL_R picture.
        let trail = [0, 0, 0, 3, 1 << 1, 1, 0xAF];
        match d.video(40, tag(&[0xA3, b'h', b'v', b'c', b'1'], &trail)) {
            Ok(Some(Event::Frame(f))) => {
                assert_eq!((f.keyframe, f.pts, f.data.len()), (false, f.dts, 7))
            }
            other => panic!("{other:?}"),
        }
        // SequenceEnd and metadata are nothing to carry.
        assert!(matches!(
            d.video(80, tag(&[0x92, b'h', b'v', b'c', b'1'], &[])),
            Ok(None)
        ));
    }

    #[test]
    fn frames_before_headers_are_skipped_and_garbage_is_an_error() {
        let mut d = FlvDemuxer::default();
        assert!(matches!(
            d.video(0, Bytes::from_static(&[0x17, 1, 0, 0, 0, 1, 2])),
            Ok(None)
        ));
        assert!(d
            .audio(0, Bytes::from_static(&[0xaf, 1, 1, 2]))
            .unwrap()
            .is_empty());
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
        assert_eq!(
            d.audio(0, Bytes::from_static(&[0xaf, 0, 0x11, 0x90]))
                .unwrap()
                .len(),
            1
        );
        let audio_dts = |d: &mut FlvDemuxer, ts: u32| -> i64 {
            match &d.audio(ts, Bytes::from_static(&[0xaf, 1, 9])).unwrap()[..] {
                [Event::Frame(f)] => f.dts,
                other => panic!("{other:?}"),
            }
        };
        let dts: Vec<i64> = [1000u32, 1021, 1043, 1064]
            .iter()
            .map(|&ts| audio_dts(&mut d, ts))
            .collect();
        assert_eq!(dts, [48000, 49024, 50048, 51072]);
        // A real gap resyncs to the clock.
        assert_eq!(audio_dts(&mut d, 5000), 240000);
        // Audio running ahead of its clock by more than a frame and a half loses a frame.
        for ts in [5021, 5043, 5064] {
            assert_eq!(
                audio_dts(&mut d, ts),
                240000 + (i64::from(ts) - 5000) / 21 * 1024
            );
        }
        assert!(d
            .audio(5050, Bytes::from_static(&[0xaf, 1, 9]))
            .unwrap()
            .is_empty());
        assert_eq!(d.audio_dropped, 1);
        assert_eq!(audio_dts(&mut d, 5085), 244096);
        // The audio DTS defect: a clock behind the samples counted by more than the 100 ms
        // window went back with it (ffprobe saw 476160 then 473136). Now it never goes back, and
        // later times follow on from where the jump left them.
        assert_eq!(audio_dts(&mut d, 4800), 245120);
        assert_eq!(audio_dts(&mut d, 4821), 246144);
        assert_eq!(audio_dts(&mut d, 4843), 247168);
        // A 32-bit wrap of the publisher's clock is a jump back too.
        assert_eq!(audio_dts(&mut d, 0), 248192);
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
        // 30 fps as ffmpeg stamps it (0, 34, 67, 100, 134…) stays on 3000 for an hour: the
        // first interval (34 ms) is nearer 29.97 fps, which had video drift 3.6 s an hour
        // behind its audio and re-grid every 15 s (scripts/drift.py found it).
        let mut clock = VideoClock::default();
        let hour: Vec<i64> = (0..108_000)
            .map(|k: i64| clock.dts((k * 1000 + 29) / 30).0)
            .collect();
        assert!(hour.windows(2).all(|w| w[1] - w[0] == 3000));
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
        // A 25 fps clock that jumps 10 s forward and back stays strictly increasing, and on
        // its grid: the jump forward is a gap, the jump back goes on a frame after the last.
        let mut clock = VideoClock::default();
        let jumpy: Vec<i64> = (0..40)
            .map(|k| k * 40 + if (20..30).contains(&k) { 10_000 } else { 0 })
            .collect();
        let dts: Vec<i64> = jumpy.iter().map(|&t| clock.dts(t).0).collect();
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
        let steps: Vec<i64> = dts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(steps[19], 3600 + 900_000, "{steps:?}");
        assert!(
            steps.iter().enumerate().all(|(k, &s)| k == 19 || s == 3600),
            "{steps:?}"
        );
    }
}
