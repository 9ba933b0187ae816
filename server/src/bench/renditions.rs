//! Per-rendition cost of the transcoding ladder: a 1080p30 source decoded once, then scaled and
//! encoded to each profile, in CPU on one thread; next to ffmpeg doing the same per rendition
//! with libx264 (veryfast, one thread), the encoder an operator would reach for.

use std::path::Path;

use serde::Serialize;

use super::ffmpeg_cpu;
use super::media::{read_flv, test_clip};
use crate::media::frame::{Event, Frame, Track};
use crate::media::ingest::flv::FlvDemuxer;
use crate::media::transcode::{self, LadderCost};

const SECONDS: u32 = 20;
const PROFILES: [&str; 4] = ["720p", "480p", "360p", "240p"];

#[derive(Debug, Serialize)]
pub struct RenditionFigures {
    pub source: String,
    pub liveproc: LadderCost,
    /// ffmpeg decoding the source alone (what every rendition run below includes once).
    pub ffmpeg_decode_ms_per_frame: f64,
    /// ffmpeg per rendition, its decode subtracted: (profile, CPU ms per frame).
    pub ffmpeg_ms_per_frame: Vec<(String, f64)>,
}

pub fn run(cache: &Path) -> anyhow::Result<RenditionFigures> {
    let size = "1920x1080";
    let clip = test_clip(cache, size, SECONDS)?;
    let mut demux = FlvDemuxer::default();
    let mut video = Vec::<Frame>::new();
    for tag in read_flv(&clip)? {
        if tag.kind == 9 {
            if let Some(Event::Frame(f)) = demux.video(tag.timestamp, tag.data)? {
                if f.track == Track::Video {
                    video.push(f);
                }
            }
        }
    }
    let params = demux
        .video
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no video"))?;
    let rungs: Vec<(u32, u32)> = PROFILES
        .iter()
        .filter_map(|p| domain::settings::profile_rung(p))
        .collect();
    let liveproc = transcode::measure(&params, &video, &rungs).map_err(anyhow::Error::msg)?;
    let frames = video.len().max(1) as f64;
    let input = clip.to_string_lossy().to_string();
    let decode = ffmpeg_cpu(&["-threads", "1", "-i", &input, "-an", "-f", "null", "-"])?;
    let mut per = Vec::new();
    for (profile, (height, kbps)) in PROFILES.iter().zip(&rungs) {
        let total = ffmpeg_cpu(&[
            "-threads",
            "1",
            "-i",
            &input,
            "-an",
            "-vf",
            &format!("scale=-2:{height}"),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-threads",
            "1",
            "-b:v",
            &format!("{kbps}k"),
            "-f",
            "null",
            "-",
        ])?;
        per.push((
            profile.to_string(),
            ((total - decode) * 1000.0 / frames).max(0.0),
        ));
    }
    Ok(RenditionFigures {
        source: format!("{size}p30"),
        liveproc,
        ffmpeg_decode_ms_per_frame: decode * 1000.0 / frames,
        ffmpeg_ms_per_frame: per,
    })
}
