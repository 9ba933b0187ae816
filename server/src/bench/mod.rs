//! `liveproc bench`: what a stream costs with liveproc, side by side with the ffmpeg pipeline an
//! operator would build for the same processes, in one run on one machine. See BENCHMARKS.md.

pub mod media;
pub mod pictures;
pub mod publisher;
pub mod streams;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use serde::Serialize;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Streams published at once.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Seconds each stream is published.
    #[arg(long, default_value_t = 60)]
    pub seconds: u32,
    /// Processes on every stream: thumbnail, motionclip, recording, replay (comma-separated).
    #[arg(
        long,
        default_value = "thumbnail,recording,replay",
        value_delimiter = ','
    )]
    pub processes: Vec<String>,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Skip the per-picture benchmark (keyframe → JPEG, span → GIF at 720p and 1080p).
    #[arg(long)]
    pub no_pictures: bool,
    /// Where the encoded test clips are cached.
    #[arg(long, default_value = "target/bench-cache")]
    pub cache: PathBuf,
    /// Scale mode: add streams (10, 20, 40, …) until frames drop or CPU saturates, with the
    /// given processes and again with motion clips added; reports the largest count that held.
    #[arg(long)]
    pub ramp: bool,
    /// Upper bound of the ramp.
    #[arg(long, default_value_t = 640)]
    pub max_streams: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    pictures: Vec<pictures::PictureFigures>,
    streams: streams::StreamFigures,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    for p in &args.processes {
        if !["thumbnail", "motionclip", "recording", "replay"].contains(&p.as_str()) {
            bail!("unknown process {p:?}: use thumbnail, motionclip, recording, replay");
        }
    }
    if args.ramp {
        let mut with_clips = args.processes.clone();
        if !with_clips.iter().any(|p| p == "motionclip") {
            with_clips.push("motionclip".into());
        }
        let mut sets = vec![args.processes.clone()];
        if with_clips != args.processes {
            sets.push(with_clips);
        }
        for processes in sets {
            let held = streams::ramp(&args, &processes).await?;
            println!(
                "ramp: processes={} largest streams held={held}",
                processes.join(",")
            );
        }
        return Ok(());
    }
    let mut pics = Vec::new();
    if !args.no_pictures {
        for size in ["1280x720", "1920x1080"] {
            let cache = args.cache.clone();
            let f = tokio::task::spawn_blocking(move || pictures::run(&cache, size)).await??;
            println!(
                "pictures {size}: thumbnail cpu p50 {:.1} ms p95 {:.1} ms (ffmpeg {:.1} ms per thumbnail); \
                 motion clip {:.1} s: cpu {:.0} ms (ffmpeg {:.0} ms)",
                f.thumbnail_cpu_ms_p50,
                f.thumbnail_cpu_ms_p95,
                f.ffmpeg_thumbnail_cpu_ms,
                f.motionclip_seconds,
                f.motionclip_cpu_ms,
                f.ffmpeg_motionclip_cpu_ms
            );
            pics.push(f);
        }
    }
    let s = streams::run(&args).await?;
    let report = Report {
        pictures: pics,
        streams: s,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    let s = &report.streams;
    println!(
        "bench: streams={} seconds={} liveproc_cpu_s={:.2} ffmpeg_cpu_s={:.2} ratio={:.3}",
        s.streams, s.seconds, s.liveproc_cpu_s, s.ffmpeg_cpu_s, s.ratio
    );
    Ok(())
}

/// CPU seconds (user + system) ffmpeg reports for one run with `args` (its `-benchmark` line).
pub fn ffmpeg_cpu(args: &[&str]) -> anyhow::Result<f64> {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "info",
            "-benchmark",
        ])
        .args(args)
        .output()
        .context("ffmpeg")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_ffmpeg_bench(&String::from_utf8_lossy(&out.stderr))
        .context("ffmpeg printed no bench line")
}

/// `bench: utime=1.234s stime=0.100s rtime=5.000s` → 1.334.
pub fn parse_ffmpeg_bench(stderr: &str) -> Option<f64> {
    let line = stderr.lines().rev().find(|l| l.contains("bench: utime="))?;
    let field = |name: &str| -> Option<f64> {
        let rest = line.split(name).nth(1)?;
        rest.split('s').next()?.parse().ok()
    };
    Some(field("utime=")? + field("stime=")?)
}

/// The `q` quantile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ffmpeg_bench_lines() {
        let err = "frame=  10\nbench: utime=1.250s stime=0.125s rtime=3.000s\n";
        assert_eq!(parse_ffmpeg_bench(err), Some(1.375));
        assert_eq!(parse_ffmpeg_bench("nothing"), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), 4.0);
    }
}
