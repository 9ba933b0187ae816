//! Pictures from H.264 (OpenH264, in-process) and H.265 keyframes (rust_h265, pure Rust): decode,
//! scale, JPEG and animated GIF.
//! Everything here is blocking CPU work; callers run it on the worker pool, never on the async
//! threads.

use openh264::decoder::{DecodeOptions, DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::frame::{nal_units, Frame, VideoParams};

pub use pixels::{detail, gif, jpeg, scale, Rgb, FLAT};

/// Why no picture came out: the source's format (a property of the stream: say it, do not
/// expect the next keyframe to do better), its data, or the writing of the picture.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Write(String),
}

/// Pixel work (scaling, JPEG, GIF) fails only on what it was handed or on memory.
impl From<String> for DecodeError {
    fn from(e: String) -> Self {
        DecodeError::Write(e)
    }
}

/// One H.264 decoder for one stream's session (SPS/PPS are sent with every keyframe, so it can
/// start at any of them).
pub struct H264 {
    decoder: Decoder,
    /// Annex-B SPS and PPS from the avcC record.
    parameter_sets: Vec<u8>,
    length_size: usize,
}

const START: [u8; 4] = [0, 0, 0, 1];

/// H.265 keyframes are decoded on their own (thumbnails); runs of frames are H.264's only.
fn h264_only(params: &VideoParams) -> Result<(), DecodeError> {
    if params.is_h265() {
        return Err(DecodeError::Unsupported(
            "H.265 not supported for motion clips and renditions: the recording, replay, \
             live HLS and clips carry it as it came, thumbnails decode its keyframes"
                .into(),
        ));
    }
    Ok(())
}

/// Decodes one H.265 keyframe (IDR or CRA, 4-byte length-prefixed NAL units) on its own, with
/// the parameter sets of the stream's HEVCDecoderConfigurationRecord (rust_h265, pure Rust).
/// 8-bit 4:2:0 only, as the JPEG path takes. A panic of the young decoder on hostile data is
/// this picture's error only.
pub fn h265_keyframe(params: &VideoParams, frame: &Frame) -> Result<Rgb, DecodeError> {
    // Only the record's parameter sets, whose picture size was checked: in-band ones from the
    // publisher could ask the decoder for any size.
    let mut annexb = hvcc_parameter_sets(&params.avcc)?;
    for nal in nal_units(&frame.data) {
        let nal = nal
            .ok()
            .filter(|nal| !nal.is_empty())
            .ok_or_else(|| DecodeError::Data("malformed NAL unit length".into()))?;
        if !matches!((nal[0] >> 1) & 0x3F, 32..=34) {
            annexb.extend_from_slice(&START);
            annexb.extend_from_slice(nal);
        }
    }
    let decoded = std::panic::catch_unwind(move || {
        let mut decoder = rust_h265::Decoder::new();
        let mut picture = None;
        for nal in rust_h265::parse_annex_b(&annexb) {
            if let Some(f) = decoder
                .decode_nal(&nal)
                .map_err(|e| DecodeError::Data(format!("H.265 keyframe: {e:?}")))?
            {
                picture.get_or_insert(f);
            }
        }
        picture
            .or_else(|| decoder.flush())
            .ok_or_else(|| DecodeError::Data("the H.265 keyframe gave no picture".into()))
    })
    .map_err(|_| DecodeError::Data("H.265 keyframe: the decoder failed".into()))??;
    let (w, h) = (decoded.width as usize, decoded.height as usize);
    let planes = (decoded.y.as_u8(), decoded.u.as_u8(), decoded.v.as_u8());
    let (Some(y), Some(u), Some(v)) = planes else {
        return Err(DecodeError::Unsupported(format!(
            "H.265 pictures of {} bits cannot be decoded for pictures: 8-bit 4:2:0 only",
            decoded.bit_depth
        )));
    };
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if y.len() != w * h || u.len() != cw * ch || v.len() != cw * ch {
        return Err(DecodeError::Unsupported(
            "H.265 pictures other than 4:2:0 cannot be decoded for pictures".into(),
        ));
    }
    i420_to_rgb(&[y, u, v].concat(), w, h)
}

/// Whether an H.264 frame (4-byte length-prefixed NAL units) holds an IDR slice (NAL type 5):
/// what decodes alone. Intra-refresh encoders flag recovery points as keyframes too.
pub fn h264_idr(data: &[u8]) -> bool {
    nal_units(data)
        .map_while(Result::ok)
        .any(|nal| nal.first().is_some_and(|b| b & 0x1F == 5))
}

/// VPS, SPS and PPS of an HEVCDecoderConfigurationRecord (ISO 14496-15 §8.3.3.1) as Annex B.
fn hvcc_parameter_sets(hvcc: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let bad = || DecodeError::Data("malformed HEVCDecoderConfigurationRecord".into());
    let arrays = *hvcc.get(22).ok_or_else(bad)?;
    let (mut at, mut out) = (23, Vec::new());
    let be16 = |at: usize| -> Result<usize, DecodeError> {
        let b = hvcc.get(at..at + 2).ok_or_else(bad)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    for _ in 0..arrays {
        let count = be16(at + 1)?;
        at += 3;
        for _ in 0..count {
            let n = be16(at)?;
            at += 2;
            out.extend_from_slice(&START);
            out.extend_from_slice(hvcc.get(at..at + n).ok_or_else(bad)?);
            at += n;
        }
    }
    Ok(out)
}

/// Planar 8-bit 4:2:0 (limited range, BT.601 as encoders signal by default) to RGB.
fn i420_to_rgb(yuv: &[u8], w: usize, h: usize) -> Result<Rgb, DecodeError> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if yuv.len() < w * h + 2 * cw * ch {
        return Err(DecodeError::Data(
            "H.265 picture smaller than its size".into(),
        ));
    }
    let (y_plane, chroma) = yuv.split_at(w * h);
    let (u_plane, v_plane) = chroma.split_at(cw * ch);
    let mut data = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let y = (f32::from(y_plane[row * w + col]) - 16.0) * 1.164;
            let c = (row / 2) * cw + col / 2;
            let (u, v) = (f32::from(u_plane[c]) - 128.0, f32::from(v_plane[c]) - 128.0);
            let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
            data.push(clamp(y + 1.596 * v));
            data.push(clamp(y - 0.392 * u - 0.813 * v));
            data.push(clamp(y + 2.017 * u));
        }
    }
    Ok(Rgb {
        width: w as u32,
        height: h as u32,
        data,
    })
}

/// OpenH264 decodes 8-bit 4:2:0 only; the profiles beyond High would fail every keyframe with
/// a native error code, so they are named instead.
fn decodable(avcc: &[u8]) -> Result<(), DecodeError> {
    let name = match avcc.get(1) {
        Some(110) => "High 10",
        Some(122) => "High 4:2:2",
        Some(244) => "High 4:4:4 Predictive",
        Some(44) => "CAVLC 4:4:4 Intra",
        _ => return Ok(()),
    };
    Err(DecodeError::Unsupported(format!(
        "H.264 {name} profile cannot be decoded for pictures: the decoder takes 8-bit 4:2:0 \
         (publish with yuv420p / I420)"
    )))
}

impl H264 {
    pub fn new(params: &VideoParams) -> Result<H264, DecodeError> {
        h264_only(params)?;
        Self::from_avcc(&params.avcc)
    }

    /// From an AVCDecoderConfigurationRecord alone (e.g. a file's `avcC`).
    pub fn from_avcc(avcc: &[u8]) -> Result<H264, DecodeError> {
        decodable(avcc)?;
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| DecodeError::Data(format!("H.264 decoder: {e}")))?;
        let (parameter_sets, length_size) = parameter_sets(avcc)?;
        Ok(H264 {
            decoder,
            parameter_sets,
            length_size,
        })
    }

    /// Switches to another stream's parameters (the decoder itself is kept): a keyframe decodes
    /// from its own parameter sets, so one decoder serves keyframes of any stream.
    pub fn set_params(&mut self, params: &VideoParams) -> Result<(), DecodeError> {
        h264_only(params)?;
        decodable(&params.avcc)?;
        (self.parameter_sets, self.length_size) = parameter_sets(&params.avcc)?;
        Ok(())
    }

    /// Decodes one access unit; a keyframe gets the parameter sets in front. Answers the picture
    /// the decoder put out for it, if any (decoders hold pictures back while B-frames reorder).
    pub fn decode(&mut self, frame: &Frame) -> Result<Option<Rgb>, DecodeError> {
        Ok(self.decode_if(frame, || true)?.flatten())
    }

    /// Like [`decode`](Self::decode), converting the picture to RGB only when `want` says so:
    /// `Some(None)` is a picture put out and skipped. Colour conversion costs about as much as
    /// decoding, so pictures a motion clip drops are never converted.
    pub fn decode_if(
        &mut self,
        frame: &Frame,
        want: impl FnOnce() -> bool,
    ) -> Result<Option<Option<Rgb>>, DecodeError> {
        self.decode_with(frame, |yuv| want().then(|| to_rgb(yuv)))
    }

    /// Decodes one access unit and hands the picture the decoder put out for it, if any, to
    /// `picture` while the decoder still holds it (no copy).
    pub fn decode_with<R>(
        &mut self,
        frame: &Frame,
        picture: impl FnOnce(&DecodedYUV<'_>) -> R,
    ) -> Result<Option<R>, DecodeError> {
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
            Err(e) => Err(DecodeError::Data(format!("H.264 decode: {e}"))),
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
    pub fn keyframe(&mut self, frame: &Frame) -> Result<Rgb, DecodeError> {
        if let Some(p) = self.decode(frame)? {
            return Ok(p);
        }
        self.flush()
            .into_iter()
            .next()
            .ok_or_else(|| DecodeError::Data("the keyframe gave no picture".into()))
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
    pub fn take(&self, params: &VideoParams) -> Result<H264, DecodeError> {
        let idle = self
            .idle
            .lock()
            .map_err(|_| DecodeError::Data("decoder pool lock".into()))?
            .pop();
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
pub(crate) fn to_annexb(
    avcc: &[u8],
    length_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let mut rest = avcc;
    while rest.len() >= length_size {
        let n = rest[..length_size]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        rest = &rest[length_size..];
        if n == 0 || n > rest.len() {
            return Err(DecodeError::Data("malformed NAL unit length".into()));
        }
        out.extend_from_slice(&START);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    Ok(())
}

/// SPS and PPS of an AVCDecoderConfigurationRecord as Annex-B, and its NAL length size.
pub(crate) fn parameter_sets(avcc: &[u8]) -> Result<(Vec<u8>, usize), DecodeError> {
    let bad = || DecodeError::Data("malformed AVCDecoderConfigurationRecord".into());
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
) -> Result<(), DecodeError> {
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
            .ok_or_else(|| DecodeError::Data("the poster frame gave no picture".into()))?,
    };
    let jpg = jpeg(pic.width, pic.height, &pic.data, 85)?;
    std::fs::write(out, jpg).map_err(|e| DecodeError::Write(format!("poster: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ingest::flv::X265_HVCC;

    #[test]
    fn h265_parameter_sets_and_colours() {
        let sets = hvcc_parameter_sets(&X265_HVCC).unwrap();
        // VPS, SPS and PPS, each after a start code.
        let types: Vec<u8> = sets
            .windows(5)
            .filter(|w| w[..4] == START)
            .map(|w| (w[4] >> 1) & 0x3F)
            .collect();
        assert_eq!(types, [32, 33, 34]);
        assert!(hvcc_parameter_sets(&X265_HVCC[..40]).is_err());
        // Limited-range black, white and a 2×2 red picture.
        let rgb = i420_to_rgb(&[16, 235, 16, 235, 128, 128], 2, 2).unwrap();
        assert_eq!(&rgb.data[..6], &[0, 0, 0, 255, 255, 255]);
        let red = i420_to_rgb(&[81, 81, 81, 81, 90, 240], 2, 2).unwrap();
        assert!(
            red.data[0] > 240 && red.data[1] < 10 && red.data[2] < 10,
            "{:?}",
            red.data
        );
    }

    #[test]
    fn a_broken_h265_keyframe_is_an_error() {
        let params = VideoParams::from_hvcc(bytes::Bytes::from_static(&X265_HVCC)).unwrap();
        let frame = |data: &'static [u8]| Frame {
            track: crate::media::frame::Track::Video,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: bytes::Bytes::from_static(data),
            arrived: std::time::Instant::now(),
        };
        assert!(h265_keyframe(&params, &frame(&[0, 0, 0, 9, 0x26, 1, 0xAF])).is_err());
        assert!(h265_keyframe(&params, &frame(&[0, 0, 0, 3, 0x26, 1, 0xAF, 0xFF, 0x00])).is_err());
        assert!(h265_keyframe(&params, &frame(&[0, 0, 0, 3, 0x26, 1, 0xAF])).is_err());
    }
}
