//! `liveproc bench`: what a stream costs with liveproc, side by side with the ffmpeg pipeline an
//! operator would build for the same processes, in one run on one machine. See BENCHMARKS.md.

pub mod events;
pub mod media;
pub mod pictures;
pub mod plot;
pub mod publisher;
pub mod renditions;
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
    /// Only the transcoding ladder's per-rendition cost (no pictures, no streams).
    #[arg(long)]
    pub renditions_only: bool,
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
    /// The published clip's size: 720p (3 Mbit/s) or 1080p (6 Mbit/s), both 30 fps.
    #[arg(long, default_value = "720p", value_parser = ["720p", "1080p"])]
    pub input: String,
    /// Measure liveproc only, without the ffmpeg pipeline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Ramp mode: also draw CPU against streams for liveproc and the ffmpeg pipeline (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Draw `--plot` again from a ramp's `--json` file, without measuring.
    #[arg(long, requires = "plot")]
    pub replot: Option<PathBuf>,
    /// Events only: webhook latency with `--streams` live streams and every process on, and the
    /// outbox's events per second on SQLite (and PostgreSQL with `--postgres`).
    #[arg(long)]
    pub events: bool,
    /// `--events`: a PostgreSQL URL whose server gets a scratch database for the outbox run.
    #[arg(long, requires = "events")]
    pub postgres: Option<String>,
    /// `--events`: the outbox only, without the webhook latency run.
    #[arg(long, requires = "events")]
    pub no_webhooks: bool,
}

impl BenchArgs {
    /// `WIDTHxHEIGHT` of `--input`.
    pub fn size(&self) -> &'static str {
        if self.input == "1080p" {
            "1920x1080"
        } else {
            "1280x720"
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    pictures: Vec<pictures::PictureFigures>,
    renditions: Option<renditions::RenditionFigures>,
    streams: streams::StreamFigures,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    for p in &args.processes {
        if !["thumbnail", "motionclip", "recording", "replay"].contains(&p.as_str()) {
            bail!("unknown process {p:?}: use thumbnail, motionclip, recording, replay");
        }
    }
    if args.ramp || args.replot.is_some() {
        let curves = match &args.replot {
            Some(json) => serde_json::from_slice(&std::fs::read(json)?)?,
            None => ramp(&args).await?,
        };
        if let Some(path) = &args.plot {
            plot::cpu_vs_streams(
                path,
                &curves,
                &format!("{}30, {} s steps", args.input, args.seconds),
            )?;
            println!("ramp: plot written to {}", path.display());
        }
        return Ok(());
    }
    if args.events {
        return run_events(&args).await;
    }
    let mut pics = Vec::new();
    if !args.no_pictures && !args.renditions_only {
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
    let mut ladder = None;
    if !args.no_pictures {
        let cache = args.cache.clone();
        let f = tokio::task::spawn_blocking(move || renditions::run(&cache)).await??;
        println!(
            "renditions of {} (one thread, CPU ms per frame): decode once {:.1} (ffmpeg {:.1})",
            f.source, f.liveproc.decode_ms_per_frame, f.ffmpeg_decode_ms_per_frame
        );
        for (r, (profile, ff)) in f.liveproc.renditions.iter().zip(&f.ffmpeg_ms_per_frame) {
            println!(
                "  {profile} {}x{}: scale+encode {:.1} ms at {:.0} kbit/s (target {}); ffmpeg libx264 veryfast {:.1} ms; ratio {:.2}",
                r.width, r.height, r.ms_per_frame, r.kbps, r.target_kbps, ff, r.ms_per_frame / ff.max(0.001)
            );
        }
        if args.renditions_only {
            if let Some(path) = &args.json {
                std::fs::write(path, serde_json::to_vec_pretty(&f)?)?;
            }
            return Ok(());
        }
        ladder = Some(f);
    }
    let s = streams::run(&args).await?;
    let report = Report {
        pictures: pics,
        renditions: ladder,
        streams: s,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    let s = &report.streams;
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "latency ms (p50/p95): keyframe→thumbnail {}/{}, segment→live playlist {}/{}, \
         segment→replay playlist {}/{}; clip of {} s ready in {} ms (max {}); peak RSS {:.0} MB",
        ms(s.thumbnail_latency_ms.0),
        ms(s.thumbnail_latency_ms.1),
        ms(s.live_segment_latency_ms.0),
        ms(s.live_segment_latency_ms.1),
        ms(s.replay_segment_latency_ms.0),
        ms(s.replay_segment_latency_ms.1),
        ms(s.clip_seconds),
        ms(s.clip_ready_ms),
        ms(s.clip_ready_ms_max),
        s.liveproc_peak_rss_mb
    );
    println!(
        "bench: streams={} seconds={} liveproc_cpu_s={:.2} ffmpeg_cpu_s={:.2} ratio={:.3}",
        s.streams, s.seconds, s.liveproc_cpu_s, s.ffmpeg_cpu_s, s.ratio
    );
    Ok(())
}

async fn run_events(args: &BenchArgs) -> anyhow::Result<()> {
    let f = events::run(args).await?;
    if let Some(w) = &f.webhooks {
        println!(
            "webhooks: {} streams × {} s, every process: {} events, written → received p50 {:.0} ms \
             p95 {:.0} ms max {:.0} ms (server CPU {:.1} s, motion clips skipped {})",
            w.streams,
            w.seconds,
            w.events,
            w.p50_ms,
            w.p95_ms,
            w.max_ms,
            w.server.liveproc_cpu_s,
            w.server.motionclips_skipped_busy
        );
        for (kind, n, p50, p95) in &w.by_type {
            println!("  {kind}: {n} events, p50 {p50:.0} ms p95 {p95:.0} ms");
        }
    }
    for o in &f.outbox {
        println!(
            "outbox {}: {} writers, {} endpoints: {:.0} events/s written, {:.0} deliveries/s sent",
            o.backend, o.writers, o.endpoints, o.events_per_s, o.delivered_per_s
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&f)?)?;
    }
    Ok(())
}

/// The ramp over the given processes, then again with motion clips added; `--json` gets the
/// curves.
async fn ramp(args: &BenchArgs) -> anyhow::Result<Vec<streams::RampCurve>> {
    let mut with_clips = args.processes.clone();
    if !with_clips.iter().any(|p| p == "motionclip") {
        with_clips.push("motionclip".into());
    }
    let mut sets = vec![args.processes.clone()];
    if with_clips != args.processes {
        sets.push(with_clips);
    }
    let mut curves = Vec::new();
    for processes in sets {
        let curve = streams::ramp(args, &processes).await?;
        println!(
            "ramp: processes={} largest streams held={}",
            processes.join(","),
            curve.held
        );
        curves.push(curve);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&curves)?)?;
    }
    Ok(curves)
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

/// The `q` quantile (ms) of a Prometheus histogram `name` in `text`, interpolated inside its
/// bucket as PromQL's `histogram_quantile` does; None without observations.
pub fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le * 1000.0, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            let frac = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * frac);
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

/// The `q` quantile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The kernel's clock ticks per second, for /proc CPU figures.
pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15).
pub(crate) fn process_cpu(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
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

    #[test]
    fn reads_histogram_quantiles() {
        let text =
            "h_bucket{le=\"0.01\"} 50\nh_bucket{le=\"0.02\"} 90\nh_bucket{le=\"0.05\"} 100\n\
                    h_bucket{le=\"+Inf\"} 100\nh_sum 1\nh_count 100\n";
        // Half of the observations are ≤ 10 ms: the median sits at that bucket's top.
        assert_eq!(histogram_quantile(text, "h", 0.5), Some(10.0));
        // 95th of 100 lies half-way into the 20–50 ms bucket (90 → 100).
        assert!((histogram_quantile(text, "h", 0.95).unwrap() - 35.0).abs() < 1e-9);
        assert_eq!(histogram_quantile("", "h", 0.5), None);
    }
}
