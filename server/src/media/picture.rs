//! Pictures from H.264: decode (OpenH264, in-process), scale, JPEG and animated GIF.
//! Everything here is blocking CPU work; callers run it on the worker pool, never on the async
//! threads.

use openh264::decoder::{DecodeOptions, DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::frame::{Frame, VideoParams};

pub use pixels::{detail, gif, jpeg, scale, Rgb, FLAT};

/// One H.264 decoder for one stream's session (SPS/PPS are sent with every keyframe, so it can
/// start at any of them).
pub struct H264 {
    decoder: Decoder,
    /// Annex-B SPS and PPS from the avcC record.
    parameter_sets: Vec<u8>,
    length_size: usize,
}

const START: [u8; 4] = [0, 0, 0, 1];

/// H.265 is carried, not decoded: no permissively licensed H.265 decoder builds here.
fn h264_only(params: &VideoParams) -> Result<(), String> {
    if params.is_h265() {
        return Err(
            "H.265 not supported for thumbnails, motion clips and renditions: \
                    the recording, replay, live HLS and clips carry it as it came"
                .into(),
        );
    }
    Ok(())
}

/// OpenH264 decodes 8-bit 4:2:0 only; the profiles beyond High would fail every keyframe with
/// a native error code, so they are named instead.
fn decodable(avcc: &[u8]) -> Result<(), String> {
    let name = match avcc.get(1) {
        Some(110) => "High 10",
        Some(122) => "High 4:2:2",
        Some(244) => "High 4:4:4 Predictive",
        Some(44) => "CAVLC 4:4:4 Intra",
        _ => return Ok(()),
    };
    Err(format!(
        "H.264 {name} profile cannot be decoded for pictures: the decoder takes 8-bit 4:2:0 \
         (publish with yuv420p / I420)"
    ))
}

impl H264 {
    pub fn new(params: &VideoParams) -> Result<H264, String> {
        h264_only(params)?;
        Self::from_avcc(&params.avcc)
    }

    /// From an AVCDecoderConfigurationRecord alone (e.g. a file's `avcC`).
    pub fn from_avcc(avcc: &[u8]) -> Result<H264, String> {
        decodable(avcc)?;
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| format!("H.264 decoder: {e}"))?;
        let (parameter_sets, length_size) = parameter_sets(avcc)?;
        Ok(H264 {
            decoder,
            parameter_sets,
            length_size,
        })
    }

    /// Switches to another stream's parameters (the decoder itself is kept): a keyframe decodes
    /// from its own parameter sets, so one decoder serves keyframes of any stream.
    pub fn set_params(&mut self, params: &VideoParams) -> Result<(), String> {
        h264_only(params)?;
        decodable(&params.avcc)?;
        (self.parameter_sets, self.length_size) = parameter_sets(&params.avcc)?;
        Ok(())
    }

    /// Decodes one access unit; a keyframe gets the parameter sets in front. Answers the picture
    /// the decoder put out for it, if any (decoders hold pictures back while B-frames reorder).
    pub fn decode(&mut self, frame: &Frame) -> Result<Option<Rgb>, String> {
        Ok(self.decode_if(frame, || true)?.flatten())
    }

    /// Like [`decode`](Self::decode), converting the picture to RGB only when `want` says so:
    /// `Some(None)` is a picture put out and skipped. Colour conversion costs about as much as
    /// decoding, so pictures a motion clip drops are never converted.
    pub fn decode_if(
        &mut self,
        frame: &Frame,
        want: impl FnOnce() -> bool,
    ) -> Result<Option<Option<Rgb>>, String> {
        self.decode_with(frame, |yuv| want().then(|| to_rgb(yuv)))
    }

    /// Decodes one access unit and hands the picture the decoder put out for it, if any, to
    /// `picture` while the decoder still holds it (no copy).
    pub fn decode_with<R>(
        &mut self,
        frame: &Frame,
        picture: impl FnOnce(&DecodedYUV<'_>) -> R,
    ) -> Result<Option<R>, String> {
        let mut annexb = Vec::with_capacity(frame.data.len() + 64);
        if frame.keyframe {
            annexb.extend_from_slice(&self.parameter_sets);
        }
        to_annexb(&frame.data, self.length_size, &mut annexb)?;
        // No flush per call: with B-frames the decoder holds pictures back to reorder them, and
        // flushing early breaks that; `flush` at the end of a run hands out the rest.
        let options = DecodeOptions::new().flush_after_decode(Flush::NoFlush);
        match self.decoder.decode_with_options(&annexb, options) {
            Ok(Some(yuv)) => Ok(Some(picture(&yuv))),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("H.264 decode: {e}")),
        }
    }

    /// The pictures still held back at the end of a run, each handed to `picture`.
    pub fn flush_with(&mut self, mut picture: impl FnMut(&DecodedYUV<'_>)) {
        if let Ok(rest) = self.decoder.flush_remaining() {
            rest.iter().for_each(&mut picture);
        }
    }

    /// Whether no other frame refers to `frame`: every slice has nal_ref_idc 0 (typically the
    /// non-reference B-frames), so skipping it leaves the rest decodable.
    pub fn is_disposable(&self, frame: &Frame) -> bool {
        let mut rest = &frame.data[..];
        let mut slices = 0;
        while rest.len() > self.length_size {
            let n = rest[..self.length_size]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            rest = &rest[self.length_size..];
            let Some(&header) = rest.first().filter(|_| n > 0 && n <= rest.len()) else {
                return false;
            };
            if matches!(header & 0x1F, 1 | 5) {
                if header & 0x60 != 0 {
                    return false;
                }
                slices += 1;
            }
            rest = &rest[n..];
        }
        slices > 0 && !frame.keyframe
    }

    /// The pictures still held back at the end of a run.
    pub fn flush(&mut self) -> Vec<Rgb> {
        let mut out = Vec::new();
        self.flush_with(|yuv| out.push(to_rgb(yuv)));
        out
    }

    /// Decodes a keyframe on its own: its picture (flushed out if the decoder held it).
    pub fn keyframe(&mut self, frame: &Frame) -> Result<Rgb, String> {
        if let Some(p) = self.decode(frame)? {
            return Ok(p);
        }
        self.flush()
            .into_iter()
            .next()
            .ok_or_else(|| "the keyframe gave no picture".to_string())
    }
}

/// Decoders for keyframe-only work (thumbnails), shared by every stream. A decoder holds its
/// picture buffers (about 19 MB at 720p), so one per stream would cost more memory than the
/// rest of a stream's pipeline; jobs are bounded by the worker pool, and so is this.
#[derive(Default)]
pub struct KeyframeDecoders {
    idle: std::sync::Mutex<Vec<H264>>,
}

impl KeyframeDecoders {
    /// An idle decoder set to `params`, or a new one.
    pub fn take(&self, params: &VideoParams) -> Result<H264, String> {
        let idle = self.idle.lock().map_err(|_| "decoder pool lock")?.pop();
        match idle {
            Some(mut d) => {
                d.set_params(params)?;
                Ok(d)
            }
            None => H264::new(params),
        }
    }

    /// Returns a decoder that worked; one that failed is dropped, not reused.
    pub fn put(&self, decoder: H264) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(decoder);
        }
    }
}

fn to_rgb(yuv: &DecodedYUV) -> Rgb {
    let (w, h) = yuv.dimensions();
    let mut data = vec![0u8; w * h * 3];
    yuv.write_rgb8(&mut data);
    Rgb {
        width: w as u32,
        height: h as u32,
        data,
    }
}

/// Appends the length-prefixed NAL units of `avcc` to `out` with start codes. A zero or
/// overlong length is an error: the bytes come from the publisher.
pub(crate) fn to_annexb(avcc: &[u8], length_size: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut rest = avcc;
    while rest.len() >= length_size {
        let n = rest[..length_size]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        rest = &rest[length_size..];
        if n == 0 || n > rest.len() {
            return Err("malformed NAL unit length".into());
        }
        out.extend_from_slice(&START);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    Ok(())
}

/// SPS and PPS of an AVCDecoderConfigurationRecord as Annex-B, and its NAL length size.
pub(crate) fn parameter_sets(avcc: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let bad = || "malformed AVCDecoderConfigurationRecord".to_string();
    let length_size = usize::from(*avcc.get(4).ok_or_else(bad)? & 0x3) + 1;
    let mut out = Vec::new();
    let mut at = 5;
    for mask in [0x1Fu8, 0xFF] {
        let count = *avcc.get(at).ok_or_else(bad)? & mask;
        at += 1;
        for _ in 0..count {
            let n = usize::from(u16::from_be_bytes(
                avcc.get(at..at + 2)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ));
            at += 2;
            out.extend_from_slice(&START);
            out.extend_from_slice(avcc.get(at..at + n).ok_or_else(bad)?);
            at += n;
        }
    }
    Ok((out, length_size))
}

/// A poster JPEG of the picture at presentation `rank` among `frames` (decode order, starting at
/// a keyframe), e.g. a clip's first shown frame.
pub fn poster(
    avcc: &[u8],
    frames: &[Frame],
    rank: usize,
    out: &std::path::Path,
) -> Result<(), String> {
    let mut decoder = H264::from_avcc(avcc)?;
    let mut shown = 0usize;
    let mut found = None;
    for f in frames {
        let want = shown == rank;
        if let Some(pic) = decoder.decode_if(f, || want)? {
            shown += 1;
            if pic.is_some() {
                found = pic;
                break;
            }
        }
    }
    let pic = match found {
        Some(p) => p,
        None => decoder
            .flush()
            .into_iter()
            .nth(rank.saturating_sub(shown))
            .ok_or("the poster frame gave no picture")?,
    };
    let jpg = jpeg(pic.width, pic.height, &pic.data, 85)?;
    std::fs::write(out, jpg).map_err(|e| format!("poster: {e}"))
}
