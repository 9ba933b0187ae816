//! Pictures from H.264: decode (OpenH264, in-process), scale, JPEG and animated GIF.
//! Everything here is blocking CPU work; callers run it on the worker pool, never on the async
//! threads.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use openh264::decoder::{DecodeOptions, DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::frame::{Frame, VideoParams};

/// An RGB picture, 3 bytes per pixel, rows packed.
#[derive(Clone)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
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

impl H264 {
    pub fn new(params: &VideoParams) -> Result<H264, String> {
        Self::from_avcc(&params.avcc)
    }

    /// From an AVCDecoderConfigurationRecord alone (e.g. a file's `avcC`).
    pub fn from_avcc(avcc: &[u8]) -> Result<H264, String> {
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

/// `pic` scaled to `width` (keeping its aspect; never up), as RGB or RGBA.
pub fn scale(pic: &Rgb, width: u32, alpha: bool) -> Result<(u32, u32, Vec<u8>), String> {
    let width = width.min(pic.width).max(2);
    let height = ((u64::from(pic.height) * u64::from(width) + u64::from(pic.width) / 2)
        / u64::from(pic.width))
    .max(2) as u32;
    let src = ImageRef::new(pic.width, pic.height, &pic.data, PixelType::U8x3)
        .map_err(|e| format!("scale: {e}"))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .map_err(|e| format!("scale: {e}"))?;
    let rgb = dst.into_vec();
    if !alpha {
        return Ok((width, height, rgb));
    }
    let rgba = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    Ok((width, height, rgba))
}

pub fn jpeg(width: u32, height: u32, rgb: &[u8], quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(rgb.len() / 10);
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(
            rgb,
            u16::try_from(width).map_err(|_| "too wide for JPEG")?,
            u16::try_from(height).map_err(|_| "too tall for JPEG")?,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| format!("JPEG: {e}"))?;
    Ok(out)
}

/// How much a picture shows: the spread (standard deviation) of its luma on a coarse grid, 0–255.
/// Black frames, fades and flat slates are near 0; real scenes are well above 10.
pub fn detail(pic: &Rgb) -> f64 {
    let (w, h) = (pic.width as usize, pic.height as usize);
    let step_x = (w / 64).max(1);
    let step_y = (h / 36).max(1);
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for y in (0..h).step_by(step_y) {
        for x in (0..w).step_by(step_x) {
            let i = (y * w + x) * 3;
            let l = 0.299 * f64::from(pic.data[i])
                + 0.587 * f64::from(pic.data[i + 1])
                + 0.114 * f64::from(pic.data[i + 2]);
            n += 1.0;
            sum += l;
            sq += l * l;
        }
    }
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    (sq / n - mean * mean).max(0.0).sqrt()
}

/// Below this [`detail`] a picture counts as black or flat.
pub const FLAT: f64 = 6.0;

/// An animated GIF of equally sized RGBA frames with one palette for the whole clip (no
/// flicker between frames), looping for ever; `delay_ms` per frame.
pub fn gif(width: u32, height: u32, frames: &[Vec<u8>], delay_ms: u32) -> Result<Vec<u8>, String> {
    let images = frames
        .iter()
        .map(|f| quantizr::Image::new(f, width as usize, height as usize))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("GIF: {e}"))?;
    let mut histogram = quantizr::Histogram::new();
    for i in &images {
        histogram.add_image(i);
    }
    let mut result =
        quantizr::QuantizeResult::quantize_histogram(&histogram, &quantizr::Options::default());
    result
        .set_dithering_level(0.5)
        .map_err(|e| format!("GIF: {e}"))?;
    let palette = result.get_palette();
    let rgb: Vec<u8> = palette.entries[..palette.count as usize]
        .iter()
        .flat_map(|c| [c.r, c.g, c.b])
        .collect();
    let (w16, h16) = (
        u16::try_from(width).map_err(|_| "too wide for GIF")?,
        u16::try_from(height).map_err(|_| "too tall for GIF")?,
    );
    let mut out = Vec::new();
    {
        let mut enc =
            gif::Encoder::new(&mut out, w16, h16, &rgb).map_err(|e| format!("GIF: {e}"))?;
        enc.set_repeat(gif::Repeat::Infinite)
            .map_err(|e| format!("GIF: {e}"))?;
        let mut indexed = vec![0u8; width as usize * height as usize];
        for image in &images {
            result
                .remap_image(image, &mut indexed)
                .map_err(|e| format!("GIF: {e}"))?;
            let mut frame = gif::Frame::from_indexed_pixels(w16, h16, indexed.clone(), None);
            // GIF delays are in 10 ms; browsers treat under 20 ms as 100 ms.
            frame.delay = (delay_ms / 10).max(2) as u16;
            enc.write_frame(&frame).map_err(|e| format!("GIF: {e}"))?;
        }
        enc.into_inner().map_err(|e| format!("GIF: {e}"))?;
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_tells_flat_from_busy() {
        let flat = Rgb {
            width: 64,
            height: 36,
            data: vec![8; 64 * 36 * 3],
        };
        assert!(detail(&flat) < FLAT);
        let busy = Rgb {
            width: 64,
            height: 36,
            data: (0..64 * 36 * 3).map(|i| ((i / 3) % 64 * 4) as u8).collect(),
        };
        assert!(detail(&busy) > 30.0, "{}", detail(&busy));
    }

    #[test]
    fn scale_keeps_aspect_and_never_enlarges() {
        let pic = Rgb {
            width: 1280,
            height: 720,
            data: vec![100; 1280 * 720 * 3],
        };
        let (w, h, rgb) = scale(&pic, 320, false).unwrap();
        assert_eq!((w, h, rgb.len()), (320, 180, 320 * 180 * 3));
        let (w, h, rgba) = scale(&pic, 4000, true).unwrap();
        assert_eq!((w, h, rgba.len()), (1280, 720, 1280 * 720 * 4));
        let jpg = jpeg(320, 180, &rgb, 80).unwrap();
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
        let g = gif(4, 2, &[vec![10; 32], vec![200; 32]], 125).unwrap();
        assert_eq!(&g[..6], b"GIF89a");
    }
}
