//! Media helpers for tests: ffmpeg as an RTMP publisher, API shortcuts, and ffprobe.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Running, OPERATOR_KEY as OP};

pub struct Publish {
    pub size: &'static str,
    pub seconds: u32,
    pub audio: bool,
    /// A video filter on the test picture (e.g. a fade in from black).
    pub filter: Option<&'static str>,
}

pub const SMALL: Publish = Publish {
    size: "640x360",
    seconds: 6,
    audio: true,
    filter: None,
};

/// ffmpeg as OBS would be: x264 High with B-frames, AAC, a keyframe every second.
pub fn ffmpeg(rtmp: std::net::SocketAddr, app: &str, name: &str, p: &Publish) -> Child {
    ffmpeg_to(&format!("rtmp://{rtmp}/{app}/{name}"), p, &[])
}

/// [`ffmpeg`] publishing to any URL (`rtmps://…` too), with `extra` options before it.
pub fn ffmpeg_to(url: &str, p: &Publish, extra: &[&str]) -> Child {
    ffmpeg_as("flv", url, p, extra)
}

/// [`ffmpeg_to`] in container `format` (`mpegts` for SRT).
pub fn ffmpeg_as(format: &str, url: &str, p: &Publish, extra: &[&str]) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!(
                "testsrc2=size={}:rate=25{}",
                p.size,
                p.filter.map(|f| format!(",{f}")).unwrap_or_default()
            ),
        ]);
    if p.audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &p.seconds.to_string()])
        // ultrafast turns B-frames off; veryfast keeps them (High profile) and still runs in
        // real time at 360p. The 1080p case trades B-frames for speed on two cores.
        .args([
            "-c:v",
            "libx264",
            "-preset",
            if p.size == "640x360" {
                "veryfast"
            } else {
                "ultrafast"
            },
        ])
        .args(["-profile:v", "high"])
        .args(["-pix_fmt", "yuv420p", "-bf", "2", "-g", "25"]);
    if p.audio {
        cmd.args(["-c:a", "aac", "-b:a", "64k"]);
    } else {
        cmd.arg("-an");
    }
    cmd.args(["-rw_timeout", "5000000", "-f", format])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn()
        .expect("ffmpeg is installed (scripts/test.sh installs it)")
}

pub async fn wait_exit(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("ffmpeg status") {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "ffmpeg did not finish in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves processing settings through the API (they apply at the next ingest).
pub async fn set_processing(r: &Running, id: &str, body: Value) -> Value {
    let a = r
        .app
        .put(&format!("/api/v1/stream/{id}/processing"), OP, body)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// Publishes `seconds` of SMALL to `app/name` and waits for ffmpeg to finish cleanly.
pub async fn publish_all(r: &Running, app: &str, name: &str, seconds: u32) {
    let p = Publish { seconds, ..SMALL };
    let status = wait_exit(ffmpeg(r.rtmp, app, name, &p), Duration::from_secs(30)).await;
    assert!(status.success(), "ffmpeg published cleanly");
}

pub async fn create(r: &Running) -> (String, String) {
    let a = r
        .app
        .post("/api/v1/stream", OP, json!({"name": "ingest"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    (
        a.body["id"].as_str().unwrap().to_string(),
        a.body["streamname"].as_str().unwrap().to_string(),
    )
}

/// The entries of a stream's `playout[list]` of type `kind` (the list must be there).
pub fn entries<'a>(s: &'a Value, list: &str, kind: &str) -> Vec<&'a Value> {
    s["playout"][list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

pub async fn stream(r: &Running, id: &str) -> Value {
    r.app.get(&format!("/api/v1/stream/{id}"), OP).await.body
}

pub async fn get(r: &Running, path: &str) -> (u16, bytes::Bytes) {
    let req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let a = r.app.send(req).await;
    (a.status.as_u16(), bytes::Bytes::from(a.text.into_bytes()))
}

/// A site path's body, raw (segments are binary).
pub async fn fetch_raw(r: &Running, path: &str) -> bytes::Bytes {
    let req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(r.app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    axum::body::to_bytes(res.into_body(), 256 << 20)
        .await
        .unwrap()
}

/// What ffprobe says (as JSON) of `media` written to a file.
pub fn ffprobe_json(media: &[u8], args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media.mp4");
    std::fs::write(&path, media).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(&path)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn format_duration(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The init segment and media segments a playlist lists, in order (`newest_only` keeps the last).
pub fn playlist_files(text: &str, newest_only: bool) -> Vec<String> {
    let init = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .map(|l| l.trim_end_matches('"').to_string())
        .expect("EXT-X-MAP");
    let mut segments: Vec<String> = text
        .lines()
        .filter(|l| l.ends_with(".m4s"))
        .map(String::from)
        .collect();
    assert!(!segments.is_empty(), "a segment: {text}");
    if newest_only {
        segments = segments.split_off(segments.len() - 1);
    }
    std::iter::once(init).chain(segments).collect()
}

/// Fetches the live playlist's init segment and newest media segment and asks ffprobe what it
/// sees in them.
pub async fn probe_live_hls(r: &Running, id: &str) -> Value {
    let (status, playlist) = get(r, &format!("/hls/{id}/index.m3u8")).await;
    assert_eq!(status, 200);
    let playlist = String::from_utf8(playlist.to_vec()).unwrap();
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    let mut file = Vec::new();
    for name in playlist_files(&playlist, true) {
        file.extend_from_slice(&fetch_raw(r, &format!("/hls/{id}/{name}")).await);
    }
    ffprobe_json(&file, &["-count_frames", "-show_streams"])
}

pub fn probe_stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

/// The site path of an absolute asset URL.
pub fn asset_path(url: &str) -> String {
    format!("/assets/{}", url.split_once("/assets/").unwrap().1)
}

/// `ffmpeg -v error` prints nothing decoding `file`, and DTS increase strictly in each of its
/// `tracks` tracks. A file that fails is kept in the temporary directory for diagnosis.
pub fn assert_decodes_clean(file: &std::path::Path, what: &str, tracks: usize) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let errors = String::from_utf8_lossy(&out.stderr);
    if !(out.status.success() && errors.trim().is_empty()) {
        let kept = std::env::temp_dir().join(format!("decode-{what}.mp4").replace(' ', "-"));
        let _ = std::fs::copy(file, &kept);
        panic!(
            "{what}: decoding printed {errors} (file kept at {})",
            kept.display()
        );
    }
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,dts"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    let mut last: Vec<Option<i64>> = vec![None; tracks];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split(',');
        let (Some(track), Some(dts)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(track), Ok(dts)) = (track.parse::<usize>(), dts.parse::<i64>()) else {
            continue;
        };
        assert!(track < tracks, "{what}: a track {track} beyond {tracks}");
        if let Some(before) = last[track] {
            assert!(
                dts > before,
                "{what}: track {track} DTS {before} then {dts}"
            );
        }
        last[track] = Some(dts);
    }
    assert!(
        last.iter().all(Option::is_some),
        "{what}: packets of all {tracks} tracks"
    );
}
