//! Source audio that browsers cannot play from MP4 — G.711 from IP cameras (RTSP, FLV) and MP3
//! from older encoders (FLV) — decoded, resampled to a rate Opus takes and encoded once per stream
//! to 20 ms Opus frames, which fMP4, every browser's MSE and WebRTC take. Every process then sees
//! one audio codec it can carry.

use bytes::Bytes;
use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_MP3};
use symphonia::core::formats::Packet;

use crate::media::frame::{AudioParams, Frame, Track};

/// Why source audio could not become Opus: the source's audio itself, or the codec work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranscodeError {
    /// Not what it says it is (a malformed MP3 frame, a rate that changes mid-stream).
    #[error("{0}")]
    Source(String),
    /// The decoder, resampler or Opus encoder failed.
    #[error("{0}")]
    Codec(String),
}

/// What the source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceAudio {
    /// G.711 A-law (PCMA) or µ-law (PCMU): one byte a sample.
    G711 {
        mu_law: bool,
        rate: u32,
        channels: u8,
    },
    /// MPEG-1/2 Layer III frames.
    Mp3,
}

impl SourceAudio {
    pub fn name(self) -> &'static str {
        match self {
            SourceAudio::G711 { mu_law: false, .. } => "G.711 A-law",
            SourceAudio::G711 { mu_law: true, .. } => "G.711 µ-law",
            SourceAudio::Mp3 => "MP3",
        }
    }
}

/// Opus's clock; frame times out of [`ToOpus`] are in it.
const OPUS_RATE: i64 = 48_000;
/// 20 ms at 48 kHz.
const FRAME: i64 = 960;
/// A source clock further than this from the samples counted is a gap (or a jump).
const RESYNC: i64 = OPUS_RATE / 10;

/// One stream's transcoder: decode → (resample) → encode, counting samples for the times.
pub struct ToOpus {
    source: SourceAudio,
    mp3: Option<Box<dyn Decoder>>,
    /// Set up by the first decoded frame: its rate and channels fix the encoder's.
    encoder: Option<Encoding>,
}

struct Encoding {
    in_rate: u32,
    channels: usize,
    /// Opus takes 8, 12, 16, 24 or 48 kHz; others are resampled to 48 kHz.
    rate: u32,
    resampler: Option<FftFixedIn<f32>>,
    /// Planar input waiting for a whole resampler chunk.
    resample_in: Vec<Vec<f32>>,
    /// Resampled frames still to drop: the resampler's delay.
    resample_skip: usize,
    opus: opus::Encoder,
    /// Interleaved samples at `rate` waiting for a whole 20 ms frame.
    pcm: Vec<f32>,
    /// Time (48 kHz) of `pcm`'s first sample.
    pcm_time: i64,
    /// Where the source clock should be (48 kHz) for the next input sample.
    next_in: f64,
    params: AudioParams,
}

impl ToOpus {
    pub fn new(source: SourceAudio) -> Result<ToOpus, TranscodeError> {
        let mp3 = match source {
            SourceAudio::Mp3 => {
                let mut params = CodecParameters::new();
                params.for_codec(CODEC_TYPE_MP3);
                Some(
                    symphonia::default::get_codecs()
                        .make(&params, &DecoderOptions::default())
                        .map_err(|e| TranscodeError::Codec(format!("MP3 decoder: {e}")))?,
                )
            }
            SourceAudio::G711 { .. } => None,
        };
        Ok(ToOpus {
            source,
            mp3,
            encoder: None,
        })
    }

    pub fn source(&self) -> SourceAudio {
        self.source
    }

    /// The Opus parameters, once the first frame told the source's rate and channels.
    pub fn params(&self) -> Option<&AudioParams> {
        self.encoder.as_ref().map(|e| &e.params)
    }

    /// One source access unit (a G.711 packet, or one or more MP3 frames) starting at `time`
    /// (48 kHz): the Opus frames it completes. A first call that sets up the encoder makes
    /// [`params`](Self::params) available.
    pub fn push(&mut self, time: i64, data: &[u8]) -> Result<Vec<Frame>, TranscodeError> {
        let mut out = Vec::new();
        match self.source {
            SourceAudio::G711 {
                mu_law,
                rate,
                channels,
            } => {
                let decode = if mu_law { ulaw } else { alaw };
                let pcm: Vec<f32> = data
                    .iter()
                    .map(|&b| f32::from(decode(b)) / 32768.0)
                    .collect();
                self.feed(time, rate, usize::from(channels.max(1)), &pcm, &mut out)?;
            }
            SourceAudio::Mp3 => {
                let mut time = time;
                for frame in mp3_frames(data)? {
                    let decoder = self.mp3.as_mut().expect("MP3 source has a decoder");
                    let decoded = decoder
                        .decode(&Packet::new_from_slice(0, 0, 0, frame))
                        .map_err(|e| TranscodeError::Source(format!("MP3 frame: {e}")))?;
                    let spec = *decoded.spec();
                    let frames = decoded.frames();
                    let mut samples = SampleBuffer::<f32>::new(frames as u64, spec);
                    samples.copy_interleaved_ref(decoded);
                    let (rate, channels) = (spec.rate, spec.channels.count());
                    self.feed(time, rate, channels, samples.samples(), &mut out)?;
                    time += frames as i64 * OPUS_RATE / i64::from(rate.max(1));
                }
            }
        }
        Ok(out)
    }

    fn feed(
        &mut self,
        time: i64,
        rate: u32,
        channels: usize,
        pcm: &[f32],
        out: &mut Vec<Frame>,
    ) -> Result<(), TranscodeError> {
        if channels == 0 || rate == 0 {
            return Err(TranscodeError::Source(format!(
                "{} without channels or rate",
                self.source.name()
            )));
        }
        let e = match &mut self.encoder {
            Some(e) if e.in_rate == rate && e.channels == channels.min(2) => e,
            Some(_) => {
                return Err(TranscodeError::Source(format!(
                    "{} changed its rate or channels mid-stream",
                    self.source.name()
                )))
            }
            None => self
                .encoder
                .insert(Encoding::new(self.source, rate, channels, time)?),
        };
        let n = pcm.len() / channels;
        let duration = n as f64 * OPUS_RATE as f64 / f64::from(rate);
        // Count samples; a source clock more than 100 ms ahead is a gap: restart the count
        // there (what is pending is dropped, < 20 ms). A clock behind is a jump back: ignored.
        if time as f64 - e.next_in > RESYNC as f64 {
            e.restart(time);
        }
        e.next_in += duration;
        // Down to mono or stereo, as channel mapping family 0 carries.
        let mut mixed = Vec::with_capacity(n * e.channels);
        for s in pcm.chunks_exact(channels) {
            match (channels, e.channels) {
                (1, _) => mixed.push(s[0]),
                (_, 1) => mixed.push(s.iter().sum::<f32>() / channels as f32),
                _ => mixed.extend_from_slice(&s[..2]),
            }
        }
        e.resample(&mixed)?;
        e.encode(out)
    }
}

impl Encoding {
    fn new(
        source: SourceAudio,
        in_rate: u32,
        channels: usize,
        time: i64,
    ) -> Result<Encoding, TranscodeError> {
        let channels = channels.min(2);
        let rate = if [8000, 12000, 16000, 24000, 48000].contains(&in_rate) {
            in_rate
        } else {
            48_000
        };
        let resampler = if rate == in_rate {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(in_rate as usize, rate as usize, 1024, 2, channels)
                    .map_err(|e| TranscodeError::Codec(format!("resampler {in_rate} Hz: {e}")))?,
            )
        };
        let layout = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut opus = opus::Encoder::new(rate, layout, opus::Application::Audio)
            .map_err(|e| TranscodeError::Codec(format!("Opus encoder: {e}")))?;
        let bitrate = if channels == 1 { 48_000 } else { 96_000 };
        opus.set_bitrate(opus::Bitrate::Bits(bitrate))
            .map_err(|e| TranscodeError::Codec(format!("Opus bitrate: {e}")))?;
        // Lookahead is in the encoder's rate; pre-skip is always 48 kHz.
        let lookahead = opus
            .get_lookahead()
            .map_err(|e| TranscodeError::Codec(format!("Opus: {e}")))?;
        let pre_skip = (i64::from(lookahead) * OPUS_RATE / i64::from(rate)) as u16;
        let resample_skip = resampler.as_ref().map_or(0, |r| r.output_delay());
        Ok(Encoding {
            in_rate,
            channels,
            rate,
            resampler,
            resample_in: vec![Vec::new(); channels],
            resample_skip,
            opus,
            pcm: Vec::new(),
            pcm_time: time,
            next_in: time as f64,
            params: AudioParams::opus(channels as u8, pre_skip, in_rate, Some(source.name())),
        })
    }

    fn restart(&mut self, time: i64) {
        self.pcm.clear();
        self.resample_in.iter_mut().for_each(Vec::clear);
        self.pcm_time = time;
        self.next_in = time as f64;
    }

    /// Appends interleaved samples at the input rate to `pcm`, at the encoder's rate.
    fn resample(&mut self, interleaved: &[f32]) -> Result<(), TranscodeError> {
        let Some(resampler) = &mut self.resampler else {
            self.pcm.extend_from_slice(interleaved);
            return Ok(());
        };
        for s in interleaved.chunks_exact(self.channels) {
            for (c, v) in s.iter().enumerate() {
                self.resample_in[c].push(*v);
            }
        }
        while self.resample_in[0].len() >= resampler.input_frames_next() {
            let need = resampler.input_frames_next();
            let chunk: Vec<Vec<f32>> = self
                .resample_in
                .iter_mut()
                .map(|c| c.drain(..need).collect())
                .collect();
            let planar = resampler
                .process(&chunk, None)
                .map_err(|e| TranscodeError::Codec(format!("resampling: {e}")))?;
            let frames = planar[0].len();
            let skip = self.resample_skip.min(frames);
            self.resample_skip -= skip;
            for i in skip..frames {
                for c in &planar {
                    self.pcm.push(c[i]);
                }
            }
        }
        Ok(())
    }

    /// Encodes every whole 20 ms frame waiting.
    fn encode(&mut self, out: &mut Vec<Frame>) -> Result<(), TranscodeError> {
        let frame = self.rate as usize / 50 * self.channels;
        let mut packet = [0u8; 1500];
        while self.pcm.len() >= frame {
            let len = self
                .opus
                .encode_float(&self.pcm[..frame], &mut packet)
                .map_err(|e| TranscodeError::Codec(format!("Opus encoding: {e}")))?;
            self.pcm.drain(..frame);
            out.push(Frame {
                track: Track::Audio,
                dts: self.pcm_time,
                pts: self.pcm_time,
                keyframe: true,
                data: Bytes::copy_from_slice(&packet[..len]),
                arrived: std::time::Instant::now(),
            });
            self.pcm_time += FRAME;
        }
        Ok(())
    }
}

/// Splits MPEG audio Layer III data into whole frames, by their headers (ISO 11172-3 §2.4.2.3,
/// 13818-3 for 2 and 2.5). Free-format and other layers are refused by name.
fn mp3_frames(mut data: &[u8]) -> Result<Vec<&[u8]>, TranscodeError> {
    const KBPS_V1: [u32; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const KBPS_V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const RATES: [u32; 3] = [44100, 48000, 32000];
    let mut frames = Vec::new();
    while data.len() >= 4 {
        let h = &data[..4];
        if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
            return Err(TranscodeError::Source(
                "MP3 data without a frame header".into(),
            ));
        }
        let version = (h[1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
        if (h[1] >> 1) & 3 != 1 {
            return Err(TranscodeError::Source(
                "MPEG audio other than Layer III".into(),
            ));
        }
        let (bitrate_index, rate_index) = (usize::from(h[2] >> 4), usize::from((h[2] >> 2) & 3));
        if version == 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
            return Err(TranscodeError::Source(
                "MP3 frame header with a reserved or free-format value".into(),
            ));
        }
        let padding = u32::from((h[2] >> 1) & 1);
        let (kbps, rate, per_kbps) = match version {
            3 => (KBPS_V1[bitrate_index], RATES[rate_index], 144),
            2 => (KBPS_V2[bitrate_index], RATES[rate_index] / 2, 72),
            _ => (KBPS_V2[bitrate_index], RATES[rate_index] / 4, 72),
        };
        let len = (per_kbps * kbps * 1000 / rate + padding) as usize;
        if len < 4 || len > data.len() {
            return Err(TranscodeError::Source("MP3 frame cut short".into()));
        }
        frames.push(&data[..len]);
        data = &data[len..];
    }
    Ok(frames)
}

/// G.711 A-law to linear 16-bit (ITU-T G.711 Table 1a; segment + mantissa, even bits inverted).
fn alaw(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mantissa = i16::from(a & 0x0F) << 4;
    let segment = (a >> 4) & 0x07;
    let magnitude = match segment {
        0 => mantissa + 8,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// G.711 µ-law to linear 16-bit (ITU-T G.711 Table 2a; bias 0x84, all bits inverted).
fn ulaw(u: u8) -> i16 {
    let u = !u;
    let magnitude = ((i16::from(u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07);
    if u & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_tables() {
        // Silence and the extremes of both laws.
        assert_eq!((alaw(0xD5), alaw(0x55)), (8, -8));
        assert_eq!((alaw(0xAA), alaw(0x2A)), (32256, -32256));
        assert_eq!((ulaw(0xFF), ulaw(0x7F)), (0, 0));
        assert_eq!((ulaw(0x80), ulaw(0x00)), (32124, -32124));
    }

    #[test]
    fn g711_becomes_20ms_opus_frames_counted_in_samples() {
        let mut t = ToOpus::new(SourceAudio::G711 {
            mu_law: false,
            rate: 8000,
            channels: 1,
        })
        .unwrap();
        let mut frames = Vec::new();
        // 40 ms packets from 1 s; a clock 30 ms late at the fourth is jitter, not a gap.
        for (k, late) in [(0i64, 0i64), (1, 0), (2, 0), (3, 30 * 48), (4, 0)] {
            let time = 48_000 + k * 1920 + late;
            frames.extend(t.push(time, &[0xD5; 320]).unwrap());
        }
        let p = t.params().unwrap();
        assert_eq!(
            (p.codec(), p.sample_rate, p.channels),
            ("opus".into(), 48_000, 1)
        );
        let dts: Vec<i64> = frames.iter().map(|f| f.dts).collect();
        assert_eq!(dts, (0..10).map(|k| 48_000 + k * 960).collect::<Vec<_>>());
        // A gap of a second restarts the count at the source clock; a jump back is ignored.
        let after_gap = t.push(48_000 + 5 * 1920 + 48_000, &[0xD5; 320]).unwrap();
        assert_eq!(after_gap[0].dts, 48_000 + 5 * 1920 + 48_000);
        let back = t.push(0, &[0xD5; 320]).unwrap();
        assert_eq!(back[0].dts, after_gap[1].dts + 960);
    }

    #[test]
    fn mp3_headers_split_frames_and_refuse_garbage() {
        // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes.
        let mut data = vec![0xFF, 0xFB, 0x90, 0x64];
        data.resize(417, 0);
        let two = [data.clone(), data].concat();
        assert_eq!(mp3_frames(&two).unwrap().len(), 2);
        assert!(mp3_frames(&two[..500]).is_err());
        assert!(mp3_frames(&[0x12, 0x34, 0x56, 0x78]).is_err());
        // Layer II is not Layer III.
        assert!(mp3_frames(&[0xFF, 0xFD, 0x90, 0x64]).is_err());
    }
}
