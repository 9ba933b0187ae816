//! Transcoding profiles: a real publish (ffmpeg, 1280×720 High with B-frames) through the
//! rendition ladder, checked with ffprobe: sizes, bitrates, aligned keyframes, the ABR playlist,
//! per-profile processing, and the transcode cap.

mod common;

use std::time::Duration;

use common::media::*;
use common::{until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};

/// 1280×720 at 25 fps with grain, so the encoders have to spend their bitrate (a clean test
/// picture compresses far below any target).
const HD: Publish = Publish {
    size: "1280x720",
    seconds: 12,
    audio: true,
    filter: Some("noise=alls=12:allf=t"),
};

async fn group(r: &Running, body: Value) -> Vec<Value> {
    let a = r.app.post("/api/v1/stream", OP, body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap();
    let g = r.app.get(&format!("/api/v1/stream/{id}"), OP).await.body;
    let group = g["streamgroup"].as_str().unwrap().to_string();
    let streams = r.app.get("/api/v1/streams", OP).await.body["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["streamgroup"] == group.as_str())
        .cloned()
        .collect();
    streams
}

fn by_profile<'a>(streams: &'a [Value], profile: &str) -> &'a Value {
    streams.iter().find(|s| s["profile"] == profile).unwrap()
}

fn id(s: &Value) -> String {
    s["id"].as_str().unwrap().to_string()
}

/// Video packets of a file: (presentation time in seconds, keyframe, size).
fn video_packets(media: &[u8]) -> Vec<(f64, bool, u64)> {
    let p = ffprobe_json(
        media,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,flags,size",
        ],
    );
    p["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["pts_time"].as_str().unwrap().parse().unwrap(),
                k["flags"].as_str().unwrap().starts_with('K'),
                k["size"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn video_size(media: &[u8]) -> (u64, u64) {
    let s = ffprobe_json(
        media,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "stream=width,height",
        ],
    )["streams"][0]
        .clone();
    (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap())
}

/// Keyframe times relative to the first keyframe.
fn keyframes(packets: &[(f64, bool, u64)]) -> Vec<f64> {
    let times: Vec<f64> = packets.iter().filter(|p| p.1).map(|p| p.0).collect();
    times.iter().map(|t| t - times[0]).collect()
}

/// Video kbit/s over the packets' span.
fn kbps(packets: &[(f64, bool, u64)]) -> f64 {
    let bytes: u64 = packets.iter().map(|p| p.2).sum();
    let first = packets.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    let last = packets.iter().map(|p| p.0).fold(f64::MIN, f64::max);
    bytes as f64 * 8.0 / 1000.0 / (last - first + 0.04)
}

async fn recording(r: &Running, s: &Value) -> bytes::Bytes {
    let vod = s["playout"]["web"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["type"] == "vod")
        .unwrap_or_else(|| panic!("a recording: {s}"));
    fetch_raw(r, &asset_path(vod["url"].as_str().unwrap())).await
}

#[tokio::test]
async fn a_group_streams_its_renditions_with_aligned_keyframes_and_its_own_processing() {
    let r = Running::start().await;
    // Recording on the source and 360p, thumbnails only on 480p.
    let streams = group(
        &r,
        json!({"name": "ladder", "transcoding": {"profiles": ["480p", "360p"]},
               "processing": {"recording": {"enabled": true}},
               "profileProcessing": {
                   "480p": {"recording": {"enabled": false}, "thumbnail": {"enabled": true, "interval": 10}}}}),
    )
    .await;
    let (src, p480, p360) = (
        id(by_profile(&streams, "passthrough")),
        id(by_profile(&streams, "480p")),
        id(by_profile(&streams, "360p")),
    );
    let name = by_profile(&streams, "passthrough")["streamname"]
        .as_str()
        .unwrap()
        .to_string();
    let ffmpeg = ffmpeg(r.rtmp, "live", &name, &HD);

    // Live: both renditions run and say their size; the ABR playlist lists all three.
    for p in [&p480, &p360] {
        until(&r, p, "the rendition running", |s| {
            s["state"] == "live" && s["transcode"]["state"] == "running"
        })
        .await;
    }
    let s480 = until(&r, &p480, "its size", |s| s["transcode"]["width"] == 854).await;
    assert_eq!(s480["transcode"]["height"], 480, "{s480}");
    assert_eq!(s480["transcode"]["targetKbps"], 1200);
    let s = until(&r, &src, "the ABR link", |s| {
        s["playout"]["hls"].as_array().unwrap().len() == 2
    })
    .await;
    let abr = s["playout"]["hls"][1].clone();
    assert_eq!(abr["type"], "abr");
    let master_path = format!("/hls/{src}/master.m3u8");
    assert!(abr["url"].as_str().unwrap().ends_with(&master_path));
    let mut master = String::new();
    for _ in 0..50 {
        let (status, body) = get(&r, &master_path).await;
        master = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && master.matches("#EXT-X-STREAM-INF").count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (size, path) in [
        ("1280x720", format!("../{src}/index.m3u8")),
        ("854x480", format!("../{p480}/index.m3u8")),
        ("640x360", format!("../{p360}/index.m3u8")),
    ] {
        let at = master
            .find(&format!("RESOLUTION={size}"))
            .unwrap_or_else(|| panic!("{size} in {master}"));
        let rest = &master[at..];
        let uri = rest.lines().nth(1).unwrap();
        assert_eq!(uri, path, "{master}");
        assert!(
            rest.lines().next().unwrap().contains("mp4a.40.2"),
            "{master}"
        );
    }
    // Each rendition's own live HLS plays at its size (ffprobe on init + newest segment).
    let probe = probe_live_hls(&r, &p480).await;
    let v = probe_stream(&probe, "video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(854), Some(480))
    );
    assert!(
        probe_stream(&probe, "audio").is_some(),
        "audio passed through"
    );

    assert!(wait_exit(ffmpeg, Duration::from_secs(60)).await.success());
    for p in [&src, &p480, &p360] {
        until(&r, p, "the session to end", |s| s["state"] == "idle").await;
    }
    let (src_s, s480, s360) = (
        until(&r, &src, "the recording", |s| {
            s["assetCounts"]["recording"] == 1
        })
        .await,
        until(&r, &p480, "a thumbnail", |s| {
            s["assetCounts"]["thumbnail"].as_i64() >= Some(1)
        })
        .await,
        until(&r, &p360, "the recording", |s| {
            s["assetCounts"]["recording"] == 1
        })
        .await,
    );
    // Per-profile processing: assets only where enabled.
    assert_eq!(src_s["assetCounts"]["thumbnail"], 0, "{src_s}");
    assert_eq!(s480["assetCounts"]["recording"], 0, "{s480}");
    assert_eq!(s360["assetCounts"]["thumbnail"], 0, "{s360}");
    let thumb = s480["playout"]["thumbnails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "image")
        .unwrap()
        .clone();
    assert_eq!(
        (thumb["width"].as_i64(), thumb["height"].as_i64()),
        (Some(854), Some(480))
    );

    // The 360p recording: its size, its bitrate near the profile's 700 kbit/s, and keyframes
    // exactly where the source has them.
    let (source, low) = (recording(&r, &src_s).await, recording(&r, &s360).await);
    assert_eq!(video_size(&source), (1280, 720));
    assert_eq!(video_size(&low), (640, 360));
    let (sp, lp) = (video_packets(&source), video_packets(&low));
    let rate = kbps(&lp);
    println!(
        "360p: {rate:.0} kbit/s (profile 700), {} of {} frames, keyframes {:?} vs source {:?}",
        lp.len(),
        sp.len(),
        keyframes(&lp),
        keyframes(&sp)
    );
    assert!(
        (450.0..=950.0).contains(&rate),
        "360p at {rate:.0} kbit/s, profile 700"
    );
    let (sk, lk) = (keyframes(&sp), keyframes(&lp));
    assert!(lk.len() >= 8, "a keyframe a second: {lk:?}");
    assert!(
        sk.len().abs_diff(lk.len()) <= 1,
        "as many keyframes as the source: {sk:?} vs {lk:?}"
    );
    for (a, b) in sk.iter().zip(&lk) {
        assert!((a - b).abs() < 0.002, "aligned keyframes: {sk:?} vs {lk:?}");
    }
    assert!(
        lp.len() + 3 >= sp.len(),
        "every source frame encoded: {} of {}",
        lp.len(),
        sp.len()
    );
    r.stop().await;
}

#[tokio::test]
async fn renditions_beyond_the_cap_show_capacity() {
    let r = Running::start_with(&["--max-transcodes", "1"]).await;
    let streams = group(
        &r,
        json!({"name": "capped", "transcoding": {"profiles": ["360p", "240p"]}}),
    )
    .await;
    let src = by_profile(&streams, "passthrough");
    let (src_id, p360, p240) = (
        id(src),
        id(by_profile(&streams, "360p")),
        id(by_profile(&streams, "240p")),
    );
    let p = Publish {
        size: "640x360",
        seconds: 8,
        audio: true,
        filter: None,
    };
    let ffmpeg = ffmpeg(r.rtmp, "live", src["streamname"].as_str().unwrap(), &p);
    let running = until(&r, &p360, "the first rendition", |s| {
        s["transcode"]["state"] == "running"
    })
    .await;
    assert_eq!(
        running["transcode"]["width"], 640,
        "never upscaled: {running}"
    );
    let capped = until(&r, &p240, "the second rendition's state", |s| {
        s["transcode"]["state"] == "capacity"
    })
    .await;
    assert_eq!(capped["state"], "idle", "{capped}");
    let message = capped["transcode"]["message"].as_str().unwrap();
    assert!(message.contains("not running (capacity)"), "{message}");
    let metrics = String::from_utf8(get(&r, "/metrics").await.1.to_vec()).unwrap();
    assert!(metrics.contains("liveproc_transcodes 1\n"), "{metrics}");
    assert!(metrics.contains("liveproc_transcodes_max 1\n"), "{metrics}");
    // Only running renditions are offered to players.
    let mut master = String::new();
    for _ in 0..50 {
        master = String::from_utf8_lossy(&get(&r, &format!("/hls/{src_id}/master.m3u8")).await.1)
            .into_owned();
        if master.matches("#EXT-X-STREAM-INF").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 2, "{master}");
    assert!(!master.contains(&p240), "{master}");
    // Each rendition's state is an event: one running, one refused for capacity.
    let states = r.app.events(OP, "transcode.state").await;
    let state_of = |stream: &str| -> Vec<Value> {
        states
            .iter()
            .filter(|e| e["streamId"] == stream)
            .map(|e| e["data"]["transcode"]["state"].clone())
            .collect()
    };
    assert_eq!(state_of(&p360), [json!("running")], "{states:?}");
    assert_eq!(state_of(&p240), [json!("capacity")], "{states:?}");
    assert!(states.iter().all(|e| e["data"]["profile"].is_string()));
    assert!(wait_exit(ffmpeg, Duration::from_secs(60)).await.success());
    until(&r, &p360, "the rendition to end", |s| {
        s["state"] == "idle" && s["transcode"].is_null()
    })
    .await;
    let metrics = String::from_utf8(get(&r, "/metrics").await.1.to_vec()).unwrap();
    assert!(
        metrics.contains("liveproc_transcodes 0\n"),
        "slot given back: {metrics}"
    );
    r.stop().await;
}
