//! N streams through a liveproc server process, then the same N inputs through the ffmpeg
//! pipeline; CPU seconds of each from the kernel's accounting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::media::{read_flv, test_clip};
use super::publisher;
use super::{clock_ticks, dir_size, peak_rss_mb, process_cpu, BenchArgs};

const KEY: &str = "bench-operator-key-0123456789abcdef";

#[derive(Debug, Serialize)]
pub struct StreamFigures {
    pub streams: usize,
    pub seconds: u32,
    pub processes: Vec<String>,
    pub input: String,
    pub liveproc_cpu_s: f64,
    pub liveproc_cpu_per_stream_s: f64,
    /// CPU in cores while all N streams were live (after the staggered starts, before the first
    /// publisher finished): the load a steady population puts on the machine.
    pub liveproc_steady_cores: f64,
    pub liveproc_peak_rss_mb: f64,
    pub dropped_frames: u64,
    pub publisher_max_late_ms: u64,
    pub thumbnails: u64,
    pub thumbnail_cpu_ms_avg: f64,
    pub motionclips: u64,
    pub motionclips_skipped_busy: u64,
    pub clip_seconds: Option<f64>,
    /// Median over up to five clips.
    pub clip_ready_ms: Option<f64>,
    pub clip_ready_ms_max: Option<f64>,
    /// (p50, p95) ms from the server's histograms: keyframe received → thumbnail listed.
    pub thumbnail_latency_ms: (Option<f64>, Option<f64>),
    /// Segment-ending keyframe received → segment in the live playlist.
    pub live_segment_latency_ms: (Option<f64>, Option<f64>),
    /// The same keyframe → segment on disk and in the replay playlist.
    pub replay_segment_latency_ms: (Option<f64>, Option<f64>),
    pub disk_write_kb_per_s_per_stream: f64,
    pub ffmpeg_cpu_s: f64,
    pub ffmpeg_cpu_per_stream_s: f64,
    pub ratio: f64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A tiny HTTP/1.1 client for the few API calls the benchmark makes.
pub(super) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("HTTP status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Sum of a Prometheus metric's samples.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn processing(processes: &[String]) -> Value {
    let on = |p: &str| processes.iter().any(|x| x == p);
    json!({
        "thumbnail": {"enabled": on("thumbnail"), "interval": 10},
        "motionclip": {"enabled": on("motionclip"), "interval": 30, "duration": 5},
        "recording": {"enabled": on("recording"), "duration": null},
        "replay": {"enabled": on("replay"), "duration": null},
    })
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<StreamFigures> {
    let mut figures = liveproc(args, args.streams, &args.processes).await?;
    if args.no_baseline {
        return Ok(figures);
    }
    let (ffmpeg_cpu, _) = ffmpeg_pipeline(args, args.streams, &args.processes)?;
    figures.ffmpeg_cpu_s = ffmpeg_cpu;
    figures.ffmpeg_cpu_per_stream_s = ffmpeg_cpu / args.streams as f64;
    figures.ratio = if ffmpeg_cpu > 0.0 {
        figures.liveproc_cpu_s / ffmpeg_cpu
    } else {
        0.0
    };
    Ok(figures)
}

/// The baseline: one ffmpeg per stream reading the same input at real-time speed. Answers its
/// CPU seconds and whether it kept up with real time.
fn ffmpeg_pipeline(
    args: &BenchArgs,
    streams: usize,
    processes: &[String],
) -> anyhow::Result<(f64, bool)> {
    eprintln!("bench: the ffmpeg pipeline on the same {streams} inputs");
    let clip = test_clip(&args.cache, args.size(), 60)?;
    let base = std::env::temp_dir().join(format!("liveproc-bench-ffmpeg-{}", std::process::id()));
    let run = BenchArgs {
        streams,
        processes: processes.to_vec(),
        ..args.clone()
    };
    let started = Instant::now();
    let cpu = baseline(&run, &clip, &base);
    let _ = std::fs::remove_dir_all(&base);
    // `-re` reads at real-time speed; a pipeline that needs much longer fell behind.
    let kept_up = started.elapsed().as_secs_f64() <= f64::from(args.seconds) * 1.1 + 3.0;
    Ok((cpu?, kept_up))
}

/// One liveproc server process with `streams` streams running `processes`.
pub async fn liveproc(
    args: &BenchArgs,
    streams: usize,
    processes: &[String],
) -> anyhow::Result<StreamFigures> {
    let tags = read_flv(&test_clip(&args.cache, args.size(), 60)?)?;
    let mut server = Server::start(&[])?;
    let run = BenchArgs {
        streams,
        processes: processes.to_vec(),
        ..args.clone()
    };
    let result = measure_liveproc(&run, &tags, &server).await;
    server.stop();
    result
}

/// A liveproc server process on free loopback ports with a fresh data folder.
pub(super) struct Server {
    child: std::process::Child,
    pub data: PathBuf,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
}

impl Server {
    pub(super) fn start(extra: &[&str]) -> anyhow::Result<Server> {
        let data = std::env::temp_dir().join(format!("liveproc-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let (http_port, rtmp_port) = (free_port()?, free_port()?);
        let http: SocketAddr = format!("127.0.0.1:{http_port}").parse()?;
        let rtmp: SocketAddr = format!("127.0.0.1:{rtmp_port}").parse()?;
        let log = std::fs::File::create(data.join("server.log"))?;
        let child = Command::new(std::env::current_exe()?)
            .args(["--http", &http.to_string(), "--rtmp", &rtmp.to_string()])
            .arg("--data")
            .arg(&data)
            .args(["--admin-key", KEY])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Server {
            child,
            data,
            http,
            rtmp,
        })
    }

    pub(super) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// One step of a ramp.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RampPoint {
    pub streams: usize,
    /// CPU used over the step, in cores (CPU seconds / seconds).
    pub liveproc_cores: Option<f64>,
    pub liveproc_held: bool,
    pub liveproc_peak_rss_mb: Option<f64>,
    pub ffmpeg_cores: Option<f64>,
    pub ffmpeg_held: Option<bool>,
}

/// A ramp over one set of processes.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RampCurve {
    pub processes: Vec<String>,
    pub cores: usize,
    /// The largest stream count that held.
    pub held: usize,
    pub points: Vec<RampPoint>,
}

/// Adds streams (doubling) until a step drops frames, falls behind real time, skips motion clips
/// or uses more than 90 % of the machine's CPU, then bisects between the last count that held and
/// the first that did not (to within a tenth). The ffmpeg pipeline runs the same steps while it
/// keeps up. Answers every step's figures and the largest count that held.
pub async fn ramp(args: &BenchArgs, processes: &[String]) -> anyhow::Result<RampCurve> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seconds = f64::from(args.seconds);
    let mut curve = RampCurve {
        processes: processes.to_vec(),
        cores,
        held: 0,
        points: Vec::new(),
    };
    let mut failed: Option<usize> = None;
    let mut ffmpeg_done = args.no_baseline;
    let mut n = 10;
    loop {
        let mut point = RampPoint {
            streams: n,
            liveproc_cores: None,
            liveproc_held: false,
            liveproc_peak_rss_mb: None,
            ffmpeg_cores: None,
            ffmpeg_held: None,
        };
        match liveproc(args, n, processes).await {
            Ok(f) => {
                let share = f.liveproc_steady_cores / cores as f64;
                point.liveproc_held = f.dropped_frames == 0
                    && f.publisher_max_late_ms <= 1000
                    && f.motionclips_skipped_busy == 0
                    && share <= 0.9;
                point.liveproc_cores = Some(f.liveproc_steady_cores);
                point.liveproc_peak_rss_mb = Some(f.liveproc_peak_rss_mb);
                println!(
                    "ramp: processes={} streams={n} cpu={:.0}% of {cores} cores dropped={} late_ms={} \
                     skipped_clips={} rss_mb={:.0} thumbnail_p95_ms={} held={}",
                    processes.join(","),
                    share * 100.0,
                    f.dropped_frames,
                    f.publisher_max_late_ms,
                    f.motionclips_skipped_busy,
                    f.liveproc_peak_rss_mb,
                    f.thumbnail_latency_ms
                        .1
                        .map_or("-".into(), |v| format!("{v:.0}")),
                    if point.liveproc_held { "yes" } else { "no" }
                );
            }
            // A server too loaded to take the publishers has not held either.
            Err(e) => println!(
                "ramp: processes={} streams={n} held=no ({e})",
                processes.join(",")
            ),
        }
        // The baseline at the same count, until the step where it no longer keeps up; bisecting
        // steps lie between counts it has measured already.
        if !ffmpeg_done && failed.is_none() {
            let (cpu, kept_up) = ffmpeg_pipeline(args, n, processes)?;
            let share = cpu / (seconds * cores as f64);
            let held = kept_up && share <= 0.9;
            println!(
                "ramp: ffmpeg pipeline streams={n} cpu={:.0}% of {cores} cores kept_up={kept_up} held={}",
                share * 100.0,
                if held { "yes" } else { "no" }
            );
            point.ffmpeg_cores = Some(cpu / seconds);
            point.ffmpeg_held = Some(held);
            ffmpeg_done = !held;
        }
        let held = point.liveproc_held;
        curve.points.push(point);
        if held {
            curve.held = curve.held.max(n);
        } else {
            failed = Some(failed.map_or(n, |f| f.min(n)));
        }
        // Next count: double until a failure, then halve the gap down to a tenth of what held.
        n = match failed {
            None if n * 2 <= args.max_streams => n * 2,
            None => break,
            Some(f) => {
                let gap = f.saturating_sub(curve.held);
                if curve.held == 0 || gap <= (curve.held / 10).max(10) {
                    break;
                }
                (curve.held + gap / 2) / 10 * 10
            }
        };
    }
    curve.points.sort_by_key(|p| p.streams);
    Ok(curve)
}

pub(super) async fn measure_liveproc(
    args: &BenchArgs,
    tags: &[super::media::Tag],
    server: &Server,
) -> anyhow::Result<StreamFigures> {
    let (data, http_addr, rtmp_addr, pid) =
        (&server.data, server.http, server.rtmp, server.child.id());
    let started = Instant::now();
    while http(http_addr, "GET", "/healthz", None).await.is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!(
                "the liveproc server did not start; see {}",
                data.join("server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "bench: liveproc is up on {http_addr}; creating {} streams",
        args.streams
    );
    let mut names = Vec::new();
    let mut ids = Vec::new();
    for i in 0..args.streams {
        let body = json!({"name": format!("bench-{i}"), "processing": processing(&args.processes)});
        let (status, text) = http(http_addr, "POST", "/api/v1/stream", Some(&body)).await?;
        if status != 201 {
            bail!("creating a stream: {status} {text}");
        }
        let v: Value = serde_json::from_str(&text)?;
        names.push(v["streamname"].as_str().context("streamname")?.to_string());
        ids.push(v["id"].as_str().context("id")?.to_string());
    }
    eprintln!(
        "bench: publishing {} streams for {} s",
        args.streams, args.seconds
    );
    let ticks = clock_ticks();
    let cpu0 = process_cpu(pid, ticks)?;
    let seconds = f64::from(args.seconds);
    let mut publishers = Vec::new();
    let first_start = Instant::now();
    for name in &names {
        let (tags, name) = (tags.to_vec(), name.clone());
        publishers.push(tokio::spawn(async move {
            publisher::publish(rtmp_addr, "live", &name, &tags, seconds).await
        }));
        // Spread the keyframes of the streams, as real encoders are not in step.
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    // Steady state: from the last publisher's start to just before the first one ends.
    let steady = {
        let from = (Instant::now(), process_cpu(pid, ticks)?);
        let until = first_start + Duration::from_secs_f64(seconds - 0.5);
        tokio::spawn(async move {
            tokio::time::sleep_until(until.into()).await;
            let to = (Instant::now(), process_cpu(pid, ticks).ok()?);
            let wall = to.0.checked_duration_since(from.0)?.as_secs_f64();
            (wall >= 2.0).then(|| (to.1 - from.1) / wall)
        })
    };
    // Dropped frames while everything is live.
    let metrics_at = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64((seconds - 2.0).max(1.0))).await;
        http(http_addr, "GET", "/metrics", None)
            .await
            .map(|(_, t)| t)
            .unwrap_or_default()
    });
    let mut max_late = 0;
    for p in publishers {
        let published = p.await??;
        max_late = max_late.max(published.max_late_ms);
    }
    let live_metrics = metrics_at.await.unwrap_or_default();
    let steady_cores = steady.await.ok().flatten();
    // Sessions end and processes finish their last files.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = http(
            http_addr,
            "GET",
            "/api/v1/streams?state=live&asset_limit=0",
            None,
        )
        .await?;
        let live: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if live["streams"].as_array().is_some_and(|a| a.is_empty()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = process_cpu(pid, ticks)? - cpu0;
    let rss = peak_rss_mb(pid);
    let (_, end_metrics) = http(http_addr, "GET", "/metrics", None).await?;
    let written = dir_size(&data.join("assets"));

    // Clips of (up to) 60 s from the first five streams' replays, each timed from request to
    // answer (the median is reported: the clip's fsync makes single figures vary).
    let (mut clip_seconds, mut clip_times) = (None, Vec::new());
    if args.processes.iter().any(|p| p == "replay") {
        for stream_id in ids.iter().take(5) {
            let (_, text) = http(
                http_addr,
                "GET",
                &format!("/api/v1/stream/{stream_id}"),
                None,
            )
            .await?;
            let v: Value = serde_json::from_str(&text)?;
            let Some(session) = v["playout"]["replay"][0]["sessionId"].as_str() else {
                continue;
            };
            let end = (seconds - 1.0).min(61.0);
            let body = json!({"start": 1.0, "end": end});
            let t = Instant::now();
            let (status, text) = http(
                http_addr,
                "POST",
                &format!("/api/v1/replay/{session}/clip"),
                Some(&body),
            )
            .await?;
            if status == 201 {
                clip_times.push(t.elapsed().as_secs_f64() * 1000.0);
                clip_seconds = Some(end - 1.0);
            } else {
                eprintln!("bench: clip request answered {status}: {text}");
            }
        }
    }
    clip_times.sort_by(f64::total_cmp);
    let clip_ms = (!clip_times.is_empty()).then(|| super::percentile(&clip_times, 0.5));
    let clip_ms_max = clip_times.last().copied();
    let thumbnails = metric(&end_metrics, "liveproc_thumbnails_total") as u64;
    let quantiles = |name: &str| {
        (
            super::histogram_quantile(&end_metrics, name, 0.5),
            super::histogram_quantile(&end_metrics, name, 0.95),
        )
    };
    let thumb_cpu_us = metric(&end_metrics, "liveproc_thumbnail_cpu_microseconds_total");
    Ok(StreamFigures {
        streams: args.streams,
        seconds: args.seconds,
        processes: args.processes.clone(),
        input: format!(
            "{} 30 fps H.264 High (B-frames, GOP 2 s) {} Mbit/s + AAC 128 kbit/s",
            args.size(),
            if args.input == "1080p" { 6 } else { 3 }
        ),
        liveproc_cpu_s: cpu,
        liveproc_cpu_per_stream_s: cpu / args.streams as f64,
        // Without a steady window (stagger longer than the run), the whole run's average.
        liveproc_steady_cores: steady_cores.unwrap_or(cpu / seconds),
        liveproc_peak_rss_mb: rss,
        dropped_frames: metric(&live_metrics, "liveproc_stream_dropped_frames_total") as u64,
        publisher_max_late_ms: max_late,
        thumbnails,
        thumbnail_cpu_ms_avg: if thumbnails > 0 {
            thumb_cpu_us / 1000.0 / thumbnails as f64
        } else {
            0.0
        },
        motionclips: metric(&end_metrics, "liveproc_motionclips_total") as u64,
        motionclips_skipped_busy: metric(&end_metrics, "liveproc_motionclips_skipped_busy_total")
            as u64,
        clip_seconds,
        clip_ready_ms: clip_ms,
        clip_ready_ms_max: clip_ms_max,
        thumbnail_latency_ms: quantiles("liveproc_thumbnail_latency_seconds"),
        live_segment_latency_ms: quantiles("liveproc_live_segment_latency_seconds"),
        replay_segment_latency_ms: quantiles("liveproc_replay_segment_latency_seconds"),
        disk_write_kb_per_s_per_stream: written as f64 / 1024.0 / seconds / args.streams as f64,
        ffmpeg_cpu_s: 0.0,
        ffmpeg_cpu_per_stream_s: 0.0,
        ratio: 0.0,
    })
}

/// The ffmpeg pipeline for the same processes: live HLS (always, as liveproc serves it),
/// recording and replay as `-c copy` remuxes, thumbnails with `fps=1/10`, motion clips as a GIF
/// of 5 s every 30 s. Answers the CPU seconds summed over the processes.
fn baseline(args: &BenchArgs, clip: &Path, dir: &Path) -> anyhow::Result<f64> {
    let on = |p: &str| args.processes.iter().any(|x| x == p);
    let mut children = Vec::new();
    for i in 0..args.streams {
        let d: PathBuf = dir.join(i.to_string());
        std::fs::create_dir_all(&d)?;
        let p = |name: &str| d.join(name).to_string_lossy().to_string();
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "info",
            "-benchmark",
            "-re",
        ])
        // An input option, so every output stops after the run's length.
        .args(["-stream_loop", "-1", "-t", &args.seconds.to_string(), "-i"])
        .arg(clip);
        cmd.args(["-map", "0", "-c", "copy", "-f", "hls", "-hls_time", "1"])
            .args(["-hls_segment_type", "fmp4", "-hls_list_size", "10"])
            .args(["-hls_flags", "delete_segments"])
            .args(["-hls_fmp4_init_filename", "live-init.mp4"])
            .arg(p("live.m3u8"));
        if on("replay") {
            cmd.args(["-map", "0", "-c", "copy", "-f", "hls", "-hls_time", "1"])
                .args(["-hls_segment_type", "fmp4", "-hls_list_size", "0"])
                .args(["-hls_playlist_type", "event"])
                .args(["-hls_fmp4_init_filename", "replay-init.mp4"])
                .args(["-hls_segment_filename", &p("replay-%05d.m4s")])
                .arg(p("replay.m3u8"));
        }
        if on("recording") {
            cmd.args(["-map", "0", "-c", "copy", "-f", "mp4"])
                .args(["-movflags", "+frag_keyframe+empty_moov"])
                .arg(p("recording.mp4"));
        }
        if on("thumbnail") {
            cmd.args(["-map", "0:v", "-vf", "fps=1/10", "-q:v", "3"])
                .arg(p("thumb-%04d.jpg"));
        }
        if on("motionclip") {
            cmd.args(["-map", "0:v", "-vf"])
                .arg("select='lt(mod(t\\,30)\\,5)',fps=8,scale=320:-2")
                .args([
                    "-f",
                    "segment",
                    "-segment_time",
                    "30",
                    "-reset_timestamps",
                    "1",
                ])
                .arg(p("motion-%03d.gif"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        children.push(cmd.spawn().context("ffmpeg")?);
    }
    let mut total = 0.0;
    for c in children {
        let out = c.wait_with_output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        total += super::parse_ffmpeg_bench(&err)
            .with_context(|| format!("ffmpeg baseline printed no bench line: {err}"))?;
    }
    Ok(total)
}
