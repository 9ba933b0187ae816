//! Per-asset cost: keyframe → thumbnail JPEGs, and a 5 s span → motion clip, in CPU time on one
//! thread, at 720p and 1080p; next to the ffmpeg commands an operator would run for the same.

use std::path::Path;

use serde::Serialize;

use super::media::{read_flv, test_clip};
use super::{ffmpeg_cpu, percentile};
use crate::media::frame::{Event, Frame, Track};
use crate::media::ingest::flv::FlvDemuxer;
use crate::media::motion_clip::{self, Span};
use crate::media::picture::H264;
use crate::media::thumbnail;
use crate::media::workers::thread_cpu;

#[derive(Debug, Serialize)]
pub struct PictureFigures {
    pub size: String,
    pub thumbnails: usize,
    pub thumbnail_cpu_ms_p50: f64,
    pub thumbnail_cpu_ms_p95: f64,
    /// ffmpeg decoding the stream to make one JPEG every 10 s: its CPU per thumbnail.
    pub ffmpeg_thumbnail_cpu_ms: f64,
    pub motionclip_seconds: f64,
    pub motionclip_cpu_ms: f64,
    /// ffmpeg making the same 5 s GIF (fps=8, 320 px, palettegen + paletteuse).
    pub ffmpeg_motionclip_cpu_ms: f64,
}

const CLIP_SECONDS: u32 = 30;

pub fn run(cache: &Path, size: &str) -> anyhow::Result<PictureFigures> {
    let clip = test_clip(cache, size, CLIP_SECONDS)?;
    let mut demux = FlvDemuxer::default();
    let (mut video, mut audio) = (Vec::<Frame>::new(), Vec::<Frame>::new());
    for tag in read_flv(&clip)? {
        let events = match tag.kind {
            9 => demux.video(tag.timestamp, tag.data)?.into_iter().collect(),
            8 => demux.audio(tag.timestamp, tag.data)?,
            _ => Vec::new(),
        };
        for event in events {
            let Event::Frame(f) = event else { continue };
            match f.track {
                Track::Video => video.push(f),
                Track::Audio => audio.push(f),
            }
        }
    }
    let params = demux
        .video
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no video"))?;

    // Thumbnails: every keyframe of the clip, three rounds, one decoder as in a session.
    let mut decoder = H264::new(&params).map_err(anyhow::Error::msg)?;
    let mut cpu_ms = Vec::new();
    for _ in 0..3 {
        for f in video.iter().filter(|f| f.keyframe) {
            let t = thread_cpu();
            let r = thumbnail::render(&mut decoder, f, true).map_err(anyhow::Error::msg)?;
            cpu_ms.push((thread_cpu() - t).as_secs_f64() * 1000.0);
            anyhow::ensure!(r.is_some(), "a thumbnail");
        }
    }
    cpu_ms.sort_by(f64::total_cmp);

    // A 5 s motion clip from the first keyframe, three times.
    let five = i64::from(crate::media::frame::VIDEO_TIMESCALE) * 5;
    let span = Span {
        video: video.iter().take_while(|f| f.dts < five).cloned().collect(),
        audio: audio
            .iter()
            .take_while(|f| {
                f.dts < 5 * i64::from(demux.audio.as_ref().map_or(48_000, |a| a.sample_rate))
            })
            .cloned()
            .collect(),
        params: params.clone(),
        audio_params: demux.audio.clone(),
    };
    let dir = tempfile_dir()?;
    let mut clip_ms = Vec::new();
    let mut seconds = 0.0;
    for _ in 0..3 {
        let t = thread_cpu();
        let w = motion_clip::make(&span, &dir.join("clip.gif")).map_err(anyhow::Error::msg)?;
        clip_ms.push((thread_cpu() - t).as_secs_f64() * 1000.0);
        seconds = w.seconds;
    }
    clip_ms.sort_by(f64::total_cmp);

    // ffmpeg, the same work: one JPEG per 10 s of the clip; one 5 s GIF.
    let jpegs = (CLIP_SECONDS / 10) as f64;
    let clip_arg = clip.to_string_lossy().to_string();
    let out_jpg = dir.join("t%03d.jpg").to_string_lossy().to_string();
    let ffmpeg_thumb = ffmpeg_cpu(&[
        "-i", &clip_arg, "-an", "-vf", "fps=1/10", "-q:v", "3", "-y", &out_jpg,
    ])?;
    let out_gif = dir.join("f.gif").to_string_lossy().to_string();
    let ffmpeg_gif = ffmpeg_cpu(&[
        "-t",
        "5",
        "-i",
        &clip_arg,
        "-an",
        "-vf",
        "fps=8,scale=320:-2,split[a][b];[a]palettegen[p];[b][p]paletteuse",
        "-y",
        &out_gif,
    ])?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(PictureFigures {
        size: size.to_string(),
        thumbnails: cpu_ms.len(),
        thumbnail_cpu_ms_p50: percentile(&cpu_ms, 0.5),
        thumbnail_cpu_ms_p95: percentile(&cpu_ms, 0.95),
        ffmpeg_thumbnail_cpu_ms: ffmpeg_thumb * 1000.0 / jpegs,
        motionclip_seconds: seconds,
        motionclip_cpu_ms: percentile(&clip_ms, 0.5),
        ffmpeg_motionclip_cpu_ms: ffmpeg_gif * 1000.0,
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("liveproc-bench-pictures-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
