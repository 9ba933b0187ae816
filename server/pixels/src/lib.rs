//! Pixel kernels: scaling (RGB pictures and I420 planes), JPEG, animated GIF, and how much a
//! picture shows. A crate of its own because the libraries' generic code is compiled where it
//! is instantiated: here it is optimised in debug builds too (see the workspace's profile), where
//! in `server` the tests' transcoding and thumbnails ran tens of times slower than real time.
//! Everything here is blocking CPU work.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// An RGB picture, 3 bytes per pixel, rows packed.
#[derive(Clone)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

fn bilinear() -> ResizeOptions {
    ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
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
        .resize(&src, &mut dst, &bilinear())
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

/// Scales I420 pictures (three packed planes) to one output size, reusing its buffers.
pub struct I420Scaler {
    width: u32,
    height: u32,
    planes: [Image<'static>; 3],
    resizer: Resizer,
}

impl I420Scaler {
    /// A scaler to `width`×`height` (both even).
    pub fn new(width: u32, height: u32) -> Self {
        I420Scaler {
            width,
            height,
            planes: [
                Image::new(width, height, PixelType::U8),
                Image::new(width / 2, height / 2, PixelType::U8),
                Image::new(width / 2, height / 2, PixelType::U8),
            ],
            resizer: Resizer::new(),
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The Y, U and V planes of the `width`×`height` picture `planes`, scaled.
    pub fn scale(
        &mut self,
        planes: [&[u8]; 3],
        width: u32,
        height: u32,
    ) -> Result<[&[u8]; 3], String> {
        let sizes = [
            (width, height),
            (width / 2, height / 2),
            (width / 2, height / 2),
        ];
        let options = bilinear();
        for ((dst, src), (w, h)) in self.planes.iter_mut().zip(planes).zip(sizes) {
            let src = ImageRef::new(w, h, src, PixelType::U8).map_err(|e| format!("scale: {e}"))?;
            self.resizer
                .resize(&src, dst, &options)
                .map_err(|e| format!("scale: {e}"))?;
        }
        let [y, u, v] = &self.planes;
        Ok([y.buffer(), u.buffer(), v.buffer()])
    }
}

/// The first `height` rows of `width` bytes of a plane laid out `stride` bytes apart, packed;
/// missing bytes (a short last row) are mid-grey.
pub fn pack_plane(src: &[u8], stride: usize, width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    for row in src.chunks(stride.max(1)).take(height) {
        out.extend_from_slice(&row[..width.min(row.len())]);
    }
    out.resize(width * height, 128);
    out
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

    /// Planes come out at the scaler's size, chroma at half, and keep their level.
    #[test]
    fn i420_planes_scale_to_the_output_size() {
        let (w, h) = (64u32, 36u32);
        let y = vec![200u8; (w * h) as usize];
        let c = vec![90u8; (w * h / 4) as usize];
        let mut s = I420Scaler::new(32, 18);
        let [oy, ou, ov] = s.scale([&y, &c, &c], w, h).unwrap();
        assert_eq!((oy.len(), ou.len(), ov.len()), (32 * 18, 16 * 9, 16 * 9));
        assert!(oy.iter().all(|&p| p == 200) && ou.iter().all(|&p| p == 90));
        assert!(s.scale([&y[1..], &c, &c], w, h).is_err(), "a short plane");
    }

    #[test]
    fn packs_strided_rows_and_pads_a_short_plane() {
        let src = [1, 2, 9, 3, 4, 9, 5];
        assert_eq!(pack_plane(&src, 3, 2, 3), vec![1, 2, 3, 4, 5, 128]);
    }
}
