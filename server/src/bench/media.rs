//! The benchmark's input: a realistic test clip encoded once with ffmpeg (cached), as FLV tags
//! that the built-in publisher replays and the picture benchmark demuxes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use bytes::Bytes;

/// One FLV tag: 8 audio, 9 video, 18 script data.
#[derive(Clone)]
pub struct Tag {
    pub kind: u8,
    /// Milliseconds.
    pub timestamp: u32,
    pub data: Bytes,
}

/// `WIDTHxHEIGHT` at 30 fps, H.264 High with B-frames, a keyframe every 2 s, AAC 48 kHz stereo:
/// what OBS sends by default (3 Mbit/s at 720p, 6 Mbit/s at 1080p). Encoded once into `cache`.
pub fn test_clip(cache: &Path, size: &str, seconds: u32) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(cache)?;
    // What encoders are set to for live streams of that size.
    let kbps = if size == "1920x1080" { 6000 } else { 3000 };
    let path = cache.join(format!("clip-{size}p30-{kbps}k-{seconds}s.flv"));
    if path.exists() {
        return Ok(path);
    }
    let tmp = path.with_extension("part.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
        ])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "2",
            "-g",
            "60",
            "-b:v",
            &format!("{kbps}k"),
        ])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv"])
        .arg(&tmp)
        .status()
        .context("ffmpeg is needed to encode the test clip")?;
    if !status.success() {
        bail!("ffmpeg could not encode the test clip");
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The tags of an FLV file (E.4.1: header, then tag + previous-tag-size pairs).
pub fn read_flv(path: &Path) -> anyhow::Result<Vec<Tag>> {
    let data = Bytes::from(std::fs::read(path)?);
    if data.len() < 13 || &data[..3] != b"FLV" {
        bail!("{} is not an FLV file", path.display());
    }
    let mut at = u32::from_be_bytes(data[5..9].try_into()?) as usize + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let kind = data[at] & 0x1F;
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let timestamp =
            u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let body = at + 11;
        if body + size > data.len() {
            break;
        }
        tags.push(Tag {
            kind,
            timestamp,
            data: data.slice(body..body + size),
        });
        at = body + size + 4;
    }
    Ok(tags)
}
