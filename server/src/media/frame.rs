//! The one internal shape of live media: timed frames plus codec parameters, whatever the ingest.
//!
//! Video timestamps are in [`VIDEO_TIMESCALE`] (90 kHz, as MPEG); audio timestamps are in samples
//! of the stream's own rate, so AAC's 1024-sample frames never accumulate rounding drift.

use bytes::Bytes;

pub const VIDEO_TIMESCALE: u32 = 90_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    Video,
    Audio,
}

/// One access unit. Video data is AVCC (4-byte length-prefixed NAL units, no parameter sets
/// needed in-band); audio data is one raw AAC frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub track: Track,
    /// Decode time in the track's timescale.
    pub dts: i64,
    /// Presentation time; differs from `dts` when the encoder uses B-frames.
    pub pts: i64,
    pub keyframe: bool,
    pub data: Bytes,
    /// When ingest received it: the start of every latency the server reports.
    pub arrived: std::time::Instant,
}

/// What a video track is coded as: named in the sample entry and the playlists' CODECS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    /// H.265 with its RFC 6381 string (e.g. `hvc1.1.6.L93.B0`): carried as it came into the
    /// recording, replay, live HLS and clips; no decoder here, so no pictures of it.
    H265(String),
}

/// An AVCDecoderConfigurationRecord (ISO 14496-15 §5.3.3.1) of one SPS and one PPS, with
/// 4-byte NAL lengths.
pub fn avc_config(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 || sps.len() > 0xFFFF || pps.is_empty() || pps.len() > 0xFFFF {
        return None;
    }
    let mut out = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
    out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    out.extend_from_slice(pps);
    Some(out)
}

/// Video parameters, from the decoder configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    pub kind: VideoCodec,
    /// The decoder configuration record as sent by the publisher: the AVCDecoderConfiguration-
    /// Record (goes into `avcC`), or for H.265 the HEVCDecoderConfigurationRecord (`hvcC`).
    pub avcc: Bytes,
    pub sps: Bytes,
    pub profile_idc: u8,
    pub constraints: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
}

impl VideoParams {
    /// From an AVCDecoderConfigurationRecord (ISO 14496-15 §5.3.3.1), reading the dimensions from
    /// its first SPS. The error names what was malformed.
    pub fn from_avcc(avcc: Bytes) -> Result<VideoParams, &'static str> {
        use scuffle_h264::{AVCDecoderConfigurationRecord, Sps};
        let record = AVCDecoderConfigurationRecord::parse(&mut std::io::Cursor::new(avcc.clone()))
            .map_err(|_| "AVCDecoderConfigurationRecord")?;
        let sps = record
            .sps
            .first()
            .cloned()
            .ok_or("AVCDecoderConfigurationRecord without SPS")?;
        let parsed = Sps::parse_with_emulation_prevention(std::io::Cursor::new(&sps[..]))
            .map_err(|_| "H.264 SPS")?;
        let (width, height) = dimensions(&parsed).ok_or("H.264 SPS dimensions")?;
        Ok(VideoParams {
            kind: VideoCodec::H264,
            avcc,
            sps,
            profile_idc: record.profile_indication,
            constraints: record.profile_compatibility,
            level_idc: record.level_indication,
            width,
            height,
        })
    }

    /// H.265 parameters as an RTSP source gives them (the record, its RFC 6381 string and the
    /// picture size from its SPS).
    pub fn from_hevc(hvcc: Bytes, codec: String, width: u32, height: u32) -> VideoParams {
        VideoParams {
            kind: VideoCodec::H265(codec),
            avcc: hvcc,
            sps: Bytes::new(),
            profile_idc: 0,
            constraints: 0,
            level_idc: 0,
            width,
            height,
        }
    }

    /// From an HEVCDecoderConfigurationRecord (ISO 14496-15 §8.3.3.1, as Enhanced RTMP sends
    /// it): the picture size from its SPS, the RFC 6381 string from its profile fields.
    pub fn from_hvcc(hvcc: Bytes) -> Result<VideoParams, &'static str> {
        use scuffle_h265::{HEVCDecoderConfigurationRecord, NALUnitType, SpsNALUnit};
        let record = HEVCDecoderConfigurationRecord::demux(std::io::Cursor::new(hvcc.clone()))
            .map_err(|_| "HEVCDecoderConfigurationRecord")?;
        if record.length_size_minus_one != 3 {
            return Err("HEVCDecoderConfigurationRecord with NAL lengths other than 4 bytes");
        }
        let sps = record
            .arrays
            .iter()
            .filter(|a| a.nal_unit_type == NALUnitType::SpsNut)
            .flat_map(|a| a.nalus.first())
            .next()
            .ok_or("HEVCDecoderConfigurationRecord without SPS")?;
        // A hostile SPS must end its own session only: a panic of the parser is an error.
        let sps = std::panic::catch_unwind(|| SpsNALUnit::parse(std::io::Cursor::new(&sps[..])))
            .map_err(|_| "H.265 SPS")?
            .map_err(|_| "H.265 SPS")?;
        let (width, height) = (sps.rbsp.cropped_width(), sps.rbsp.cropped_height());
        let coded = (
            sps.rbsp.pic_width_in_luma_samples.get(),
            sps.rbsp.pic_height_in_luma_samples.get(),
        );
        // The decoder for thumbnails allocates the coded size: both are bounded.
        let fits = |v: u64| (1..=8192).contains(&v);
        if ![width, height, coded.0, coded.1].into_iter().all(fits) {
            return Err("H.265 SPS dimensions");
        }
        // ISO 14496-15 Annex E.3: profile space and idc, the compatibility flags bit-reversed,
        // tier and level, then the constraint bytes without trailing zeros.
        let space = ["", "A", "B", "C"][usize::from(record.general_profile_space & 3)];
        let compat = record
            .general_profile_compatibility_flags
            .bits()
            .reverse_bits();
        let tier = if record.general_tier_flag { 'H' } else { 'L' };
        let mut codec = format!(
            "hvc1.{space}{}.{compat:X}.{tier}{}",
            record.general_profile_idc, record.general_level_idc
        );
        let constraints = record.general_constraint_indicator_flags.to_be_bytes();
        let used = constraints[2..]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &constraints[2..2 + used] {
            codec.push_str(&format!(".{b:X}"));
        }
        Ok(VideoParams::from_hevc(
            hvcc,
            codec,
            width as u32,
            height as u32,
        ))
    }

    /// High profile 3.1 parameters of the given size, for tests of writers that only copy them.
    #[cfg(test)]
    pub(crate) fn for_tests(width: u32, height: u32) -> VideoParams {
        VideoParams {
            kind: VideoCodec::H264,
            avcc: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
            sps: Bytes::new(),
            profile_idc: 0x64,
            constraints: 0,
            level_idc: 0x1f,
            width,
            height,
        }
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec(&self) -> String {
        match &self.kind {
            VideoCodec::H264 => format!(
                "avc1.{:02x}{:02x}{:02x}",
                self.profile_idc, self.constraints, self.level_idc
            ),
            VideoCodec::H265(codec) => codec.clone(),
        }
    }

    pub fn is_h265(&self) -> bool {
        matches!(self.kind, VideoCodec::H265(_))
    }
}

/// The NAL units of a frame of 4-byte length-prefixed NAL units, in order; an `Err` where a
/// length runs past the end (the bytes come from the publisher), and nothing after it.
pub fn nal_units(mut data: &[u8]) -> impl Iterator<Item = Result<&[u8], ()>> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let Some(nal) = data.get(4..4 + n) else {
            data = &[];
            return Some(Err(()));
        };
        data = &data[4 + n..];
        Some(Ok(nal))
    })
}

/// Whether a frame of 4-byte length-prefixed H.265 NAL units holds an IRAP picture (BLA, IDR
/// or CRA: NAL unit types 16 to 21), where a stream can start.
pub fn hevc_irap(data: &[u8]) -> bool {
    nal_units(data).map_while(Result::ok).any(|nal| {
        nal.first()
            .is_some_and(|b| (16..=21).contains(&((b >> 1) & 0x3F)))
    })
}

/// Width and height from an SPS, as `Sps::width`/`height` compute them but checked: that
/// arithmetic overflows on hostile values (crops larger than the picture, found by our fuzz
/// test), and pictures beyond 8192 pixels a side are refused.
fn dimensions(sps: &scuffle_h264::Sps) -> Option<(u32, u32)> {
    let rows = 2 - u64::from(sps.mb_adaptive_frame_field_flag.is_none());
    let width = sps
        .pic_width_in_mbs_minus1
        .checked_add(1)?
        .checked_mul(16)?;
    let height = sps
        .pic_height_in_map_units_minus1
        .checked_add(1)?
        .checked_mul(16 * rows)?;
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if let Some(c) = &sps.frame_crop_info {
        crop_x = c
            .frame_crop_left_offset
            .checked_add(c.frame_crop_right_offset)?
            .checked_mul(2)?;
        crop_y = c
            .frame_crop_top_offset
            .checked_add(c.frame_crop_bottom_offset)?
            .checked_mul(2)?;
    }
    let (width, height) = (width.checked_sub(crop_x)?, height.checked_sub(crop_y)?);
    let fits = |v: u64| (1..=8192).contains(&v);
    (fits(width) && fits(height)).then_some((width as u32, height as u32))
}

/// Audio parameters: AAC's from its AudioSpecificConfig (FLV's own header always claims
/// 44.1 kHz), or those of the Opus liveproc encodes from what browsers cannot play in MP4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioParams {
    /// The AudioSpecificConfig (AAC); empty for Opus.
    pub asc: Bytes,
    /// AAC's audio object type (2 = LC, 5 = HE-AAC); 0 for Opus.
    pub object_type: u8,
    /// The track's timescale: AAC's (core) rate, 48 kHz for Opus.
    pub sample_rate: u32,
    pub channels: u8,
    /// Opus: the samples (48 kHz) the decoder drops first, with the rate encoded from.
    pub opus: Option<OpusParams>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusParams {
    pub pre_skip: u16,
    pub input_rate: u32,
    /// What liveproc transcoded from ("MP3", "G.711 A-law"…), said on the session; `None`
    /// when the source sent Opus.
    pub from: Option<&'static str>,
}

impl AudioParams {
    pub fn codec(&self) -> String {
        match self.opus {
            Some(_) => "opus".into(),
            None => format!("mp4a.40.{}", self.object_type),
        }
    }

    /// Opus at 48 kHz (its only timescale) with `channels`, as liveproc encodes it.
    pub fn opus(
        channels: u8,
        pre_skip: u16,
        input_rate: u32,
        from: Option<&'static str>,
    ) -> AudioParams {
        AudioParams {
            asc: Bytes::new(),
            object_type: 0,
            sample_rate: 48_000,
            channels,
            opus: Some(OpusParams {
                pre_skip,
                input_rate,
                from,
            }),
        }
    }

    /// Samples per frame in the track's timescale: AAC's 1024, liveproc's 20 ms Opus frames.
    pub fn frame_samples(&self) -> i64 {
        match self.opus {
            Some(_) => 960,
            None => 1024,
        }
    }

    /// Parses the first bytes of an AudioSpecificConfig (ISO 14496-3 §1.6.2.1).
    /// From an Opus identification header (RFC 7845 §5.1: "OpusHead", version, channels,
    /// pre-skip and input rate little-endian, gain, mapping family).
    pub fn from_opus_head(head: &[u8]) -> Option<AudioParams> {
        if head.len() < 19 || &head[..8] != b"OpusHead" || head[8] >> 4 != 0 || head[9] == 0 {
            return None;
        }
        let pre_skip = u16::from_le_bytes([head[10], head[11]]);
        let input_rate = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        Some(AudioParams::opus(head[9], pre_skip, input_rate, None))
    }

    pub fn from_asc(asc: Bytes) -> Option<AudioParams> {
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        if asc.len() < 2 {
            return None;
        }
        let object_type = asc[0] >> 3;
        let index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
        let (sample_rate, rest_bit) = if index == 15 {
            if asc.len() < 5 {
                return None;
            }
            let v = u32::from_be_bytes([asc[1], asc[2], asc[3], asc[4]]);
            ((v >> 7) & 0x00FF_FFFF, 0)
        } else {
            (*RATES.get(index as usize)?, 1)
        };
        let channels = if rest_bit == 1 {
            (asc[1] >> 3) & 0x0F
        } else {
            (asc[4] >> 3) & 0x0F
        };
        (object_type > 0 && sample_rate > 0).then_some(AudioParams {
            asc,
            object_type,
            sample_rate,
            channels,
            opus: None,
        })
    }
}

/// What flows on a stream's bus. Parameter changes travel in-band, before the frames they govern.
#[derive(Debug, Clone)]
pub enum Event {
    Video(VideoParams),
    Audio(AudioParams),
    Frame(Frame),
}

/// The samples (48 kHz) an Opus packet holds, from its TOC byte (RFC 6716 §3.1); `None` for a
/// packet that is not one (empty, a code 3 packet without its count, over 120 ms).
pub fn opus_samples(packet: &[u8]) -> Option<i64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in 48 kHz samples: SILK 10/20/40/60 ms, hybrid 10/20, CELT 2.5/5/10/20.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => i64::from(*packet.get(1)? & 0x3f),
    };
    let samples = frame * frames;
    (frames > 0 && samples <= 5760).then_some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_gives_real_rate_and_channels() {
        // AAC-LC, 48 kHz (index 3), stereo.
        let p = AudioParams::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!((p.object_type, p.sample_rate, p.channels), (2, 48000, 2));
        assert_eq!(p.codec(), "mp4a.40.2");
        // AAC-LC, 44.1 kHz (index 4), mono.
        let p = AudioParams::from_asc(Bytes::from_static(&[0x12, 0x08])).unwrap();
        assert_eq!((p.sample_rate, p.channels), (44100, 1));
        // HE-AAC, explicit signalling: SBR (type 5) over a 24 kHz core, 48 kHz out, stereo.
        // The track's timescale is the core rate, where a frame is 1024 samples.
        let p = AudioParams::from_asc(Bytes::from_static(&[0x2B, 0x11, 0x88, 0x00])).unwrap();
        assert_eq!(
            (p.codec(), p.sample_rate, p.channels),
            ("mp4a.40.5".into(), 24000, 2)
        );
        assert_eq!(p.frame_samples(), 1024);
        // Opus as liveproc encodes it.
        let p = AudioParams::opus(1, 312, 8000, Some("G.711 A-law"));
        assert_eq!(
            (p.codec(), p.sample_rate, p.frame_samples()),
            ("opus".into(), 48000, 960)
        );
        assert!(AudioParams::from_asc(Bytes::from_static(&[0x12])).is_none());
        assert!(AudioParams::from_asc(Bytes::from_static(&[0x17, 0x88])).is_none());
    }
}
