//! FLV audio/video tag bodies (as RTMP carries them) to bus events.
//!
//! Legacy FLV (video_file_format_spec_v10_1, Annex E.4.3): H.264 is codec id 7, AAC sound format
//! 10. Enhanced RTMP (HEVC, AV1, VP9, Opus…) sets the high bit of the first byte; liveproc refuses
//! those with a clear reason rather than writing files no process can read.

use bytes::Bytes;

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
}

impl FlvDemuxer {
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
                let dts = i64::from(timestamp) * 90;
                Ok(Some(Event::Frame(Frame {
                    track: Track::Video,
                    dts,
                    pts: dts + i64::from(cts) * 90,
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
}
