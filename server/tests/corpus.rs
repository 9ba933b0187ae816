//! The conformance corpus (design/sources.md): sources other than the suite's usual x264 + AAC
//! 48 kHz, made here with ffmpeg (and, for what ffmpeg will not send, liveproc's own RTMP
//! publisher replaying ffmpeg's FLV tags), each through ingest and the processes. Every
//! recording file decodes clean (`ffmpeg -v error` silent), its DTS increase strictly per track,
//! its audio and video start and end together (within a frame of each), and the codecs are
//! those the matrix says.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::media::*;
use common::{until, Running};
use serde_json::{json, Value};

/// One ffmpeg source: lavfi's test picture and tone, encoded as a publisher would.
struct Source {
    what: &'static str,
    /// Size and frame rate, or no video.
    video: Option<(&'static str, u32)>,
    /// ffmpeg's audio options, or no audio.
    audio: Option<&'static [&'static str]>,
    seconds: u32,
}

fn ffmpeg_source(url: &str, s: &Source, realtime: bool) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if realtime {
        cmd.arg("-re");
    }
    if let Some((size, rate)) = s.video {
        cmd.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate={rate}"),
        ]);
    }
    if s.audio.is_some() {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &s.seconds.to_string()]);
    match s.video {
        // x264 High with B-pyramid (veryfast keeps B-frames) where two cores keep up;
        // ultrafast (no B-frames) for the big pictures.
        Some((size, rate)) => {
            let fast = size == "640x360" || size == "854x480";
            cmd.args([
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-preset", if fast { "veryfast" } else { "ultrafast" }])
            .args(["-x264-params", "bframes=3:b-adapt=0:b-pyramid=normal"])
            .args(["-g", &(rate * 2).to_string()]);
        }
        None => {
            cmd.arg("-vn");
        }
    }
    match s.audio {
        Some(args) => cmd.args(args),
        None => cmd.arg("-an"),
    };
    cmd.args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().expect("ffmpeg is installed")
}

/// A stream with recording, thumbnails and motion clips on.
async fn stream_with_processes(r: &Running) -> (String, String) {
    let (id, name) = create(r).await;
    set_processing(
        r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": 10},
               "motionclip": {"enabled": true, "interval": 10, "duration": 2},
               "recording": {"enabled": true}}),
    )
    .await;
    (id, name)
}

fn vods(s: &Value) -> Vec<&Value> {
    s["playout"]["web"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["type"] == "vod").collect())
        .unwrap_or_default()
}

/// Waits for the session to end with `files` ready recordings, and checks each (whether the
/// tracks start and end together too, when the source's clock says they do).
async fn check_recordings(r: &Running, id: &str, what: &str, files: usize) -> Vec<Value> {
    check_recordings_with(r, id, what, files, true).await
}

async fn check_recordings_with(
    r: &Running,
    id: &str,
    what: &str,
    files: usize,
    sync: bool,
) -> Vec<Value> {
    let s = until(r, id, &format!("{what}: recordings ready"), |s| {
        s["state"] == "idle"
            && vods(s).len() >= files
            && vods(s).iter().all(|v| v["status"] == "ready")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut probes = Vec::new();
    let mut list = vods(&s);
    list.sort_by_key(|v| v["url"].as_str().unwrap().to_string());
    assert_eq!(list.len(), files, "{what}: {s}");
    for (k, vod) in list.iter().enumerate() {
        let media = fetch_raw(r, &asset_path(vod["url"].as_str().unwrap())).await;
        let file = dir.path().join(format!("{k}.mp4"));
        std::fs::write(&file, &media).unwrap();
        let probe = ffprobe_json(
            &media,
            &["-show_entries", "format=duration:stream=codec_type,codec_name,width,height,sample_rate,start_time,duration"],
        );
        let tracks = probe["streams"].as_array().unwrap().len();
        assert_decodes_clean(&file, &format!("{what} {k}"), tracks);
        let checked = if sync { in_sync(&probe) } else { Ok(()) };
        if let Err(e) = checked {
            let kept = std::env::temp_dir().join(format!("sync-{what}-{k}.mp4").replace(' ', "-"));
            std::fs::copy(&file, &kept).unwrap();
            panic!("{what} {k}: {e} (file kept at {})", kept.display());
        }
        probes.push(probe);
    }
    probes
}

/// Audio and video start and end together: within one video frame plus one audio frame.
fn in_sync(probe: &Value) -> Result<(), String> {
    let (Some(v), Some(a)) = (probe_stream(probe, "video"), probe_stream(probe, "audio")) else {
        return Ok(());
    };
    let f = |s: &Value, k: &str| s[k].as_str().unwrap().parse::<f64>().unwrap();
    let (vs, as_) = (f(v, "start_time"), f(a, "start_time"));
    let (ve, ae) = (vs + f(v, "duration"), as_ + f(a, "duration"));
    let slack = 1.0 / 24.0 + 0.025;
    if (vs - as_).abs() <= slack && (ve - ae).abs() <= slack {
        Ok(())
    } else {
        Err(format!("video {vs:.3}–{ve:.3} s, audio {as_:.3}–{ae:.3} s"))
    }
}

fn codec<'a>(probe: &'a Value, kind: &str) -> Option<&'a str> {
    probe_stream(probe, kind).and_then(|s| s["codec_name"].as_str())
}

/// Publishes `s` with ffmpeg and checks the one recording; gives its probe.
async fn run(s: &Source, realtime: bool) -> (Running, String, Value) {
    let r = Running::start().await;
    let (id, name) = stream_with_processes(&r).await;
    let client = ffmpeg_source(&format!("rtmp://{}/live/{name}", r.rtmp), s, realtime);
    let out = tokio::task::spawn_blocking(move || client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: ffmpeg: {}",
        s.what,
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = check_recordings(&r, &id, s.what, 1).await.remove(0);
    let duration = format_duration(&probe);
    assert!(
        (duration - f64::from(s.seconds)).abs() <= 0.5,
        "{}: {duration} s recorded of {} s",
        s.what,
        s.seconds
    );
    (r, id, probe)
}

const AAC_44K_MONO: &[&str] = &["-c:a", "aac", "-ar", "44100", "-ac", "1", "-b:a", "64k"];
const AAC_48K_STEREO: &[&str] = &["-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "128k"];

/// Publishes `size` at `rate` fps with `audio` and checks the recording's picture size.
async fn sized(
    size: &'static str,
    rate: u32,
    audio: &'static [&'static str],
    seconds: u32,
    realtime: bool,
) -> (Running, String, Value) {
    let s = Source {
        what: Box::leak(format!("{size}p{rate}").into_boxed_str()),
        video: Some((size, rate)),
        audio: Some(audio),
        seconds,
    };
    let (r, id, probe) = run(&s, realtime).await;
    let v = probe_stream(&probe, "video").unwrap();
    assert_eq!(format!("{}x{}", v["width"], v["height"]), size);
    (r, id, probe)
}

#[tokio::test]
async fn odd_sizes_and_aac_rates() {
    for (size, rate, audio) in [
        ("854x480", 30, AAC_44K_MONO),
        ("1366x768", 60, AAC_48K_STEREO),
    ] {
        let (r, id, probe) = sized(size, rate, audio, 6, true).await;
        assert_eq!(codec(&probe, "audio"), Some("aac"));
        let stream = stream(&r, &id).await;
        let thumbnails = stream["playout"]["thumbnails"].as_array().unwrap();
        assert!(
            thumbnails.iter().any(|t| t["type"] == "image"
                && t["width"] == size.split('x').next().unwrap().parse::<u32>().unwrap()),
            "{size}: a thumbnail of that size: {stream}"
        );
        r.stop().await;
    }
}

/// 4K30 and 1080p60, as fast as ffmpeg encodes them (ingest does not need real time).
#[tokio::test]
async fn big_pictures() {
    for (size, rate) in [("3840x2160", 30), ("1920x1080", 60)] {
        let (r, _, _) = sized(size, rate, AAC_48K_STEREO, 3, false).await;
        r.stop().await;
    }
}

/// MP3 (older encoders) and G.711 (cameras' audio, which ffmpeg also sends in FLV): transcoded
/// once to Opus, which the recording carries, and said on the session.
#[tokio::test]
async fn mp3_and_g711_become_opus() {
    const MP3: &[&str] = &[
        "-c:a",
        "libmp3lame",
        "-ar",
        "44100",
        "-ac",
        "2",
        "-b:a",
        "128k",
    ];
    const ALAW: &[&str] = &["-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"];
    const MULAW: &[&str] = &["-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"];
    for (what, audio, from) in [
        ("mp3", MP3, "MP3"),
        ("pcma", ALAW, "G.711 A-law"),
        ("pcmu", MULAW, "G.711 µ-law"),
    ] {
        let s = Source {
            what,
            video: Some(("640x360", 25)),
            audio: Some(audio),
            seconds: 6,
        };
        let (r, id, probe) = run(&s, true).await;
        assert_eq!(codec(&probe, "audio"), Some("opus"), "{what}: {probe}");
        assert_eq!(
            probe_stream(&probe, "audio").unwrap()["sample_rate"],
            "48000"
        );
        let stream = stream(&r, &id).await;
        let session = &stream["sessions"][0];
        assert_eq!(session["audioCodec"], "opus", "{what}: {session}");
        let warnings = session["warnings"].to_string();
        assert!(
            warnings.contains(from) && warnings.contains("transcoded to Opus"),
            "{what}: {warnings}"
        );
        // The motion clip's MP4 carries the Opus track too, and decodes clean.
        let clip = stream["playout"]["motionclip"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "clip")
            .unwrap_or_else(|| panic!("{what}: a motion clip: {stream}"));
        let media = fetch_raw(&r, &asset_path(clip["mp4"].as_str().unwrap())).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clip.mp4");
        std::fs::write(&file, &media).unwrap();
        assert_decodes_clean(&file, &format!("{what} motion clip"), 2);
        let probe = ffprobe_json(&media, &["-show_entries", "stream=codec_type,codec_name"]);
        assert_eq!(
            codec(&probe, "audio"),
            Some("opus"),
            "{what} motion clip: {probe}"
        );
        let metrics = r.app.get("/metrics", common::OPERATOR_KEY).await.text;
        assert!(
            metrics.contains("liveproc_session_warnings_total{kind=\"audio_transcoded\"} 1"),
            "{metrics}"
        );
        r.stop().await;
    }
}

#[tokio::test]
async fn audio_only_and_video_only() {
    let audio_only = Source {
        what: "audio only",
        video: None,
        audio: Some(AAC_44K_MONO),
        seconds: 6,
    };
    let (r, _, probe) = run(&audio_only, true).await;
    assert_eq!(codec(&probe, "video"), None);
    assert_eq!(codec(&probe, "audio"), Some("aac"));
    r.stop().await;
    let video_only = Source {
        what: "video only",
        video: Some(("854x480", 30)),
        audio: None,
        seconds: 6,
    };
    let (r, _, probe) = run(&video_only, true).await;
    assert_eq!(codec(&probe, "audio"), None);
    assert_eq!(codec(&probe, "video"), Some("h264"));
    r.stop().await;
}

/// ffmpeg's FLV tags of a clip, for liveproc's own publisher to replay as no encoder here would.
fn tags(
    dir: &std::path::Path,
    size: &'static str,
    seconds: u32,
) -> Vec<liveproc::bench::media::Tag> {
    let file = dir.join(format!("{size}.flv"));
    let s = Source {
        what: "clip",
        video: Some((size, 30)),
        audio: Some(AAC_48K_STEREO),
        seconds,
    };
    let out = ffmpeg_source(file.to_str().unwrap(), &s, false)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    liveproc::bench::media::read_flv(&file)
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == 8 || t.kind == 9)
        .collect()
}

/// A publisher that changes resolution mid-session (a new sequence header): the recording
/// starts a new file at the change (an MP4 describes each track once), both decode clean, and
/// live HLS marks the change with a discontinuity and a new init segment.
#[tokio::test]
async fn a_resolution_change_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = tags(dir.path(), "640x360", 4);
    let second = tags(dir.path(), "320x180", 4);
    let shift = first.iter().map(|t| t.timestamp).max().unwrap() + 33;
    let mut all = first;
    all.extend(second.into_iter().map(|mut t| {
        t.timestamp += shift;
        t
    }));
    let r = Running::start().await;
    let (id, name) = stream_with_processes(&r).await;
    let seconds = f64::from(shift) / 1000.0 + 4.0;
    let publish = liveproc::bench::publisher::publish(r.rtmp, "live", &name, &all, seconds);
    let hls = async {
        // Live HLS, once the second size is on: a discontinuity and a second init segment.
        tokio::time::sleep(Duration::from_secs_f64(seconds - 1.0)).await;
        get(&r, &format!("/hls/{id}/index.m3u8")).await
    };
    let (published, (status, playlist)) = tokio::join!(publish, hls);
    published.unwrap();
    let playlist = String::from_utf8_lossy(&playlist).to_string();
    assert_eq!(status, 200);
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY") && playlist.contains("init-1.mp4"),
        "{playlist}"
    );
    let probes = check_recordings(&r, &id, "resolution change", 2).await;
    let size = |p: &Value| {
        let v = probe_stream(p, "video").unwrap();
        format!("{}x{}", v["width"], v["height"])
    };
    assert_eq!(size(&probes[0]), "640x360");
    assert_eq!(size(&probes[1]), "320x180");
    r.stop().await;
}

/// A publisher whose clock jumps 10 s forward and, 2 s later, back (and a clock that wraps
/// past 2^32 ms): times stay strictly increasing in every output, audio and video together.
#[tokio::test]
async fn clock_jumps_keep_times_increasing_and_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let clip = tags(dir.path(), "640x360", 8);
    for (what, stamp) in [
        (
            "jump forward and back",
            (|at: u64| {
                if (2000..4000).contains(&at) {
                    at + 10_000
                } else {
                    at
                }
            }) as fn(u64) -> u64,
        ),
        ("32-bit wrap", |at: u64| {
            (at + u64::from(u32::MAX) - 3000) % (1 << 32)
        }),
    ] {
        let r = Running::start().await;
        let (id, name) = stream_with_processes(&r).await;
        liveproc::bench::publisher::publish_stamped(r.rtmp, "live", &name, &clip, 8.0, stamp)
            .await
            .unwrap();
        let probe = check_recordings(&r, &id, what, 1).await.remove(0);
        assert_eq!(codec(&probe, "audio"), Some("aac"), "{what}");
        r.stop().await;
    }
    // An audio clock 3 % slow (the samples run ahead of it): frames are dropped to stay with
    // the video, and the session says how many.
    let slow: Vec<_> = clip
        .iter()
        .cloned()
        .map(|mut t| {
            if t.kind == 8 {
                t.timestamp = t.timestamp * 97 / 100;
            }
            t
        })
        .collect();
    let r = Running::start().await;
    let (id, name) = stream_with_processes(&r).await;
    liveproc::bench::publisher::publish(r.rtmp, "live", &name, &slow, 8.0)
        .await
        .unwrap();
    // The publisher's clock ends the audio early: only its start is with the video.
    check_recordings_with(&r, &id, "slow audio clock", 1, false).await;
    let s = stream(&r, &id).await;
    let warnings = s["sessions"][0]["warnings"].to_string();
    assert!(warnings.contains("AAC frames dropped"), "{warnings}");
    r.stop().await;
}

/// H.265 over Enhanced RTMP (as OBS and ffmpeg ≥ 6.1 send it; Debian's ffmpeg 5.1 cannot, so
/// liveproc's own publisher sends x265's frames as `hvc1` tags with ffmpeg's AAC): carried into
/// the recording as `hvc1`, which decodes clean with audio in sync; thumbnails decode its
/// keyframes.
#[tokio::test]
async fn enhanced_rtmp_h265_is_carried() {
    use bytes::Bytes;
    use liveproc::bench::media::{read_flv, Tag};
    let dir = tempfile::tempdir().unwrap();
    let x265 = "log-level=error:bframes=0:aud=1:keyint=25:min-keyint=25:repeat-headers=1";
    let encode = |out: &std::path::Path, seconds: &str| {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .args(["-i", "testsrc2=size=640x360:rate=25", "-t", seconds])
            .args([
                "-c:v",
                "libx265",
                "-x265-params",
                x265,
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-tag:v", "hvc1"])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    };
    // The record from an MP4 of the same settings; the frames from the raw stream.
    let mp4 = dir.path().join("one.mp4");
    encode(&mp4, "0.04");
    let data = std::fs::read(&mp4).unwrap();
    let at = data.windows(4).position(|w| w == b"hvcC").unwrap();
    let size = u32::from_be_bytes(data[at - 4..at].try_into().unwrap()) as usize;
    let record = data[at + 4..at - 4 + size].to_vec();
    let raw = dir.path().join("six.hevc");
    encode(&raw, "6");
    let bytes = std::fs::read(&raw).unwrap();
    // Annex B NAL units, grouped into access units at each access unit delimiter (type 35).
    let mut nals = Vec::new();
    let mut i = 0;
    let starts: Vec<usize> = (0..bytes.len().saturating_sub(3))
        .filter(|&k| bytes[k..k + 3] == [0, 0, 1])
        .collect();
    for (n, &s) in starts.iter().enumerate() {
        let end = starts
            .get(n + 1)
            .map_or(bytes.len(), |&e| if bytes[e - 1] == 0 { e - 1 } else { e });
        nals.push(&bytes[s + 3..end]);
        i += 1;
    }
    assert!(i > 100, "x265 wrote NAL units");
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    for nal in nals {
        if (nal[0] >> 1) & 0x3F == 35 || units.is_empty() {
            units.push(Vec::new());
        }
        units.last_mut().unwrap().push(nal);
    }
    let mut tags = vec![Tag {
        kind: 9,
        timestamp: 0,
        data: Bytes::from([&[0x90, b'h', b'v', b'c', b'1'][..], &record].concat()),
    }];
    for (k, unit) in units.iter().enumerate() {
        let irap = unit
            .iter()
            .any(|n| (16..=21).contains(&((n[0] >> 1) & 0x3F)));
        let mut body = vec![if irap { 0x93 } else { 0xA3 }, b'h', b'v', b'c', b'1'];
        for nal in unit.iter().filter(|n| (n[0] >> 1) & 0x3F != 35) {
            body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            body.extend_from_slice(nal);
        }
        tags.push(Tag {
            kind: 9,
            timestamp: (k * 40) as u32,
            data: Bytes::from(body),
        });
    }
    let flv = dir.path().join("audio.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=48000", "-t", "6"])
        .args(AAC_48K_STEREO)
        .args(["-f", "flv"])
        .arg(&flv)
        .status()
        .unwrap();
    assert!(status.success());
    tags.extend(read_flv(&flv).unwrap().into_iter().filter(|t| t.kind == 8));
    tags.sort_by_key(|t| t.timestamp);

    let r = Running::start().await;
    let (id, name) = stream_with_processes(&r).await;
    liveproc::bench::publisher::publish(r.rtmp, "live", &name, &tags, 6.0)
        .await
        .unwrap();
    let probe = check_recordings(&r, &id, "enhanced RTMP H.265", 1)
        .await
        .remove(0);
    assert_eq!(codec(&probe, "video"), Some("hevc"), "{probe}");
    assert_eq!(codec(&probe, "audio"), Some("aac"), "{probe}");
    let s = stream(&r, &id).await;
    assert!(
        s["sessions"][0]["videoCodec"]
            .as_str()
            .is_some_and(|c| c.starts_with("hvc1.1.6.")),
        "{s}"
    );
    // Thumbnails decode H.265 keyframes (rust_h265).
    let thumbnail = s["playout"]["thumbnails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "image")
        .unwrap_or_else(|| panic!("an H.265 thumbnail: {s}"))
        .clone();
    let jpeg = fetch_raw(&r, &asset_path(thumbnail["url"].as_str().unwrap())).await;
    let probe = ffprobe_json(&jpeg, &["-show_entries", "stream=width,height"]);
    assert_eq!(probe["streams"][0]["width"], 640, "{probe}");
    r.stop().await;
}

/// The packets of an Ogg stream (RFC 3533): segments of 255 bytes continue a packet, a shorter
/// one ends it, across pages.
fn ogg_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let (mut packets, mut packet, mut at) = (Vec::new(), Vec::new(), 0);
    while at + 27 <= data.len() && &data[at..at + 4] == b"OggS" {
        let segments = data[at + 26] as usize;
        let table = &data[at + 27..at + 27 + segments];
        let mut body = at + 27 + segments;
        for &len in table {
            packet.extend_from_slice(&data[body..body + len as usize]);
            body += len as usize;
            if len < 255 {
                packets.push(std::mem::take(&mut packet));
            }
        }
        at = body;
    }
    packets
}

/// Enhanced RTMP Opus (E-RTMP v2 audio FourCC `Opus`, as OBS and ffmpeg 7 send it) with H.264:
/// carried as Opus, no transcoding, recording clean and in sync. Debian's ffmpeg 5.1 cannot send
/// it: liveproc's publisher sends what ffmpeg encoded (Opus from an Ogg file, H.264 from FLV).
#[tokio::test]
async fn enhanced_rtmp_opus_is_carried() {
    use bytes::Bytes;
    use liveproc::bench::media::{read_flv, Tag};
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = (dir.path().join("video.flv"), dir.path().join("audio.ogg"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=25", "-t", "6"])
        // No B-frames: the FLV would show its first picture 80 ms after the audio starts.
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-bf", "0",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .args(["-an", "-f", "flv"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args([
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "6",
            "-ac",
            "2",
        ])
        .args(["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"])
        .arg(&audio)
        .status()
        .unwrap();
    assert!(status.success());
    let mut tags: Vec<Tag> = read_flv(&video)
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == 9)
        .collect();
    let packets = ogg_packets(&std::fs::read(&audio).unwrap());
    assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    tags.push(Tag {
        kind: 8,
        timestamp: 0,
        data: Bytes::from([&[0x90, b'O', b'p', b'u', b's'][..], &packets[0]].concat()),
    });
    let mut samples = 0i64;
    for packet in &packets[2..] {
        tags.push(Tag {
            kind: 8,
            timestamp: (samples / 48) as u32,
            data: Bytes::from([&[0x91, b'O', b'p', b'u', b's'][..], packet].concat()),
        });
        samples += liveproc::media::frame::opus_samples(packet).expect("an Opus packet");
    }
    assert!(samples >= 5 * 48_000, "ffmpeg encoded 6 s: {samples}");
    tags.sort_by_key(|t| (t.timestamp, t.kind));

    let r = Running::start().await;
    let (id, name) = stream_with_processes(&r).await;
    liveproc::bench::publisher::publish(r.rtmp, "live", &name, &tags, 6.0)
        .await
        .unwrap();
    let probe = check_recordings(&r, &id, "enhanced RTMP Opus", 1)
        .await
        .remove(0);
    assert_eq!(codec(&probe, "video"), Some("h264"), "{probe}");
    assert_eq!(codec(&probe, "audio"), Some("opus"), "{probe}");
    let s = stream(&r, &id).await;
    let session = &s["sessions"][0];
    assert_eq!(session["audioCodec"], "opus", "{session}");
    assert_eq!(session["audioSampleRate"], 48_000, "{session}");
    // Opus came as Opus: nothing was transcoded, so nothing is said.
    assert_eq!(session["warnings"], json!([]), "{session}");
    r.stop().await;
}

/// An intra-refresh source (x264 `intra-refresh`: one IDR, then recovery points that ffmpeg
/// flags as keyframes): the recording decodes clean; the first thumbnail (the IDR) is made, and
/// then the process says why the recovery points cannot be decoded alone, instead of writing
/// grey pictures or nothing at all.
#[tokio::test]
async fn intra_refresh_source() {
    let r = Running::start().await;
    let (id, name) = stream_with_processes(&r).await;
    let client = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=25", "-t", "14"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args([
            "-x264-params",
            "intra-refresh=1:keyint=50",
            "-an",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://{}/live/{name}", r.rtmp))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let s = until(&r, &id, "the thumbnail's reason", |s| {
        s["live"]["processErrors"]["thumbnail"].is_string()
    })
    .await;
    let why = s["live"]["processErrors"]["thumbnail"].as_str().unwrap();
    assert!(why.contains("recovery points (intra refresh)"), "{why}");
    let out = tokio::task::spawn_blocking(move || client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_recordings(&r, &id, "intra refresh", 1).await;
    let s = stream(&r, &id).await;
    let images = s["playout"]["thumbnails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "image")
        .count();
    assert_eq!(images, 1, "the IDR's thumbnail: {s}");
    r.stop().await;
}
