//! Per-rendition cost of the transcoding ladder: a 1080p30 source decoded once, then scaled and
//! encoded to each profile, in CPU on one thread; next to ffmpeg doing the same per rendition
//! with libx264 (veryfast, one thread), the encoder an operator would reach for.

use std::path::Path;

use serde::Serialize;

use super::ffmpeg_cpu;
use super::media::{read_flv, test_clip};
use crate::media::frame::{Event, Frame, Track, VideoParams, VIDEO_TIMESCALE};
use crate::media::ingest::flv::FlvDemuxer;
use crate::media::transcode::{Decoding, Msg, RenditionEncoder};

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
    let liveproc = measure(&params, &video, &rungs).map_err(anyhow::Error::msg)?;
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

/// What a ladder costs, for the benchmark: CPU on one thread per step.
#[derive(Debug, serde::Serialize)]
pub struct LadderCost {
    pub frames: usize,
    /// Decoding the source once, plus copying each picture out: milliseconds per frame.
    pub decode_ms_per_frame: f64,
    pub renditions: Vec<RenditionCost>,
}

#[derive(Debug, serde::Serialize)]
pub struct RenditionCost {
    pub height: u32,
    pub width: u32,
    pub target_kbps: u32,
    /// What the rendition came out at.
    pub kbps: f64,
    /// Scaling and encoding: milliseconds of CPU per frame.
    pub ms_per_frame: f64,
}

/// Runs `video` through the ladder code a live group uses (decode once; per rung scale and
/// encode), timing each step with this thread's CPU clock.
fn measure(
    params: &VideoParams,
    video: &[Frame],
    rungs: &[(u32, u32)],
) -> Result<LadderCost, String> {
    let cpu = crate::media::workers::thread_cpu;
    let mut decoding = Decoding::default();
    let mut encoders: Vec<_> = rungs
        .iter()
        .map(|&(h, k)| (RenditionEncoder::new(h, k), 0.0f64, 0u64))
        .collect();
    let mut decode_s = 0.0;
    let mut frames = 0usize;
    let mut encode = |msgs: Vec<Msg>, encoders: &mut Vec<(RenditionEncoder, f64, u64)>| {
        for m in msgs {
            let Msg::Picture(p) = m else { continue };
            frames += 1;
            for (enc, secs, bytes) in encoders.iter_mut() {
                let t = cpu();
                for e in enc.encode(&p).map_err(|e| e.to_string())? {
                    if let Event::Frame(f) = e {
                        *bytes += f.data.len() as u64;
                    }
                }
                *secs += (cpu() - t).as_secs_f64();
            }
        }
        Ok::<_, String>(())
    };
    decoding.event(&Event::Video(params.clone()));
    for f in video {
        let t = cpu();
        let msgs = decoding.event(&Event::Frame(f.clone()));
        decode_s += (cpu() - t).as_secs_f64();
        encode(msgs, &mut encoders)?;
    }
    let t = cpu();
    let msgs = decoding.finish();
    decode_s += (cpu() - t).as_secs_f64();
    encode(msgs, &mut encoders)?;
    let span = match (video.first(), video.last()) {
        (Some(a), Some(b)) => (b.pts - a.pts).max(1) as f64 / f64::from(VIDEO_TIMESCALE),
        _ => 1.0,
    };
    let n = frames.max(1) as f64;
    Ok(LadderCost {
        frames,
        decode_ms_per_frame: decode_s * 1000.0 / n,
        renditions: encoders
            .into_iter()
            .map(|(enc, secs, bytes)| RenditionCost {
                height: enc.size().1,
                width: enc.size().0,
                target_kbps: enc.kbps,
                kbps: bytes as f64 * 8.0 / 1000.0 / span,
                ms_per_frame: secs * 1000.0 / n,
            })
            .collect(),
    })
}
