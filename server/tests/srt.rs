//! SRT ingest with a real caller (Debian's ffmpeg, built with libsrt): MPEG-TS with H.264 and
//! AAC through every process; callers naming no known stream refused in the handshake; a
//! publisher killed mid-stream ends its session cleanly.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::{until, Running, OPERATOR_KEY as OP};
use serde_json::json;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn with_srt() -> (Running, u16) {
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let r = Running::start_with(&["--srt", &addr]).await;
    // The listener binds on its own task.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (r, port)
}

fn srt_url(port: u16, stream_id: &str) -> String {
    format!("srt://127.0.0.1:{port}?streamid={stream_id}")
}

#[tokio::test]
async fn an_srt_publish_runs_every_process() {
    let (r, port) = with_srt().await;
    let (id, name) = create(&r).await;
    let s = stream(&r, &id).await;
    assert_eq!(
        s["ingest"]["srt"]["url"],
        format!("srt://127.0.0.1:{port}?streamid={name}"),
        "{}",
        s["ingest"]
    );
    assert_eq!(s["ingest"]["srt"]["streamid"], name.as_str());
    set_processing(
        &r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": 10},
               "motionclip": {"enabled": true, "interval": 10, "duration": 2},
               "recording": {"enabled": true}, "replay": {"enabled": true}}),
    )
    .await;
    let p = Publish {
        seconds: 20,
        ..SMALL
    };
    let url = srt_url(port, &format!("#!::r={name},m=publish"));
    let ffmpeg = ffmpeg_as("mpegts", &url, &p, &[]);
    let live = until(&r, &id, "live over SRT", |s| {
        s["state"] == "live" && s["sessions"][0]["audioCodec"].is_string()
    })
    .await;
    let session = &live["sessions"][0];
    assert_eq!(session["source"], "srt");
    assert_eq!(
        (session["width"].as_i64(), session["height"].as_i64()),
        (Some(640), Some(360))
    );
    assert!(wait_exit(ffmpeg, Duration::from_secs(60)).await.success());
    let s = until(&r, &id, "every asset of the session", |s| {
        s["state"] == "idle"
            && s["playout"]["web"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["type"] == "vod" && w["status"] == "ready")
            && s["playout"]["replay"][0]["endedAt"].is_string()
            && !entries(s, "motionclip", "clip").is_empty()
            && entries(s, "thumbnails", "image").len() >= 2
    })
    .await;
    // The recording: 20 s within half a second, both tracks, decodes clean.
    let vod = s["playout"]["web"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["type"] == "vod")
        .unwrap()
        .clone();
    let media = fetch_raw(&r, &asset_path(vod["url"].as_str().unwrap())).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("srt.mp4");
    std::fs::write(&file, &media).unwrap();
    assert_decodes_clean(&file, "SRT recording", 2);
    let probe = ffprobe_json(
        &media,
        &["-show_entries", "format=duration:stream=codec_name"],
    );
    let duration = format_duration(&probe);
    assert!(
        (duration - 20.0).abs() <= 0.5,
        "recording lasts {duration} s"
    );
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["h264", "aac"]);
    // A thumbnail and a motion clip serve; the replay takes a clip.
    let thumb = entries(&s, "thumbnails", "image")[0]["url"]
        .as_str()
        .unwrap();
    assert_eq!(get(&r, &asset_path(thumb)).await.0, 200);
    let clip = entries(&s, "motionclip", "clip")[0]["url"]
        .as_str()
        .unwrap();
    assert_eq!(get(&r, &asset_path(clip)).await.0, 200);
    let replay_session = s["playout"]["replay"][0]["sessionId"].as_str().unwrap();
    let a = r
        .app
        .post(
            &format!("/api/v1/replay/{replay_session}/clip"),
            OP,
            json!({"start": 2.0, "end": 6.0}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    r.stop().await;
}

#[tokio::test]
async fn unknown_streams_are_refused_and_a_killed_publisher_ends_its_session() {
    let (r, port) = with_srt().await;
    let (id, name) = create(&r).await;
    // A stream id naming no stream: refused in the handshake, no session anywhere.
    let p = Publish {
        seconds: 5,
        ..SMALL
    };
    let wrong = ffmpeg_as("mpegts", &srt_url(port, "#!::r=nope,m=publish"), &p, &[]);
    let status = wait_exit(wrong, Duration::from_secs(30)).await;
    assert!(!status.success(), "an unknown stream is refused");
    let reader = ffmpeg_as(
        "mpegts",
        &srt_url(port, &format!("#!::r={name},m=request")),
        &p,
        &[],
    );
    assert!(
        !wait_exit(reader, Duration::from_secs(30)).await.success(),
        "m=request is refused"
    );
    let s = stream(&r, &id).await;
    assert_eq!(s["sessions"], json!([]), "no session for refused callers");

    // Killed mid-stream: the session ends by itself (SRT's idle timeout), clean.
    let p = Publish {
        seconds: 60,
        ..SMALL
    };
    let mut ffmpeg = ffmpeg_as("mpegts", &srt_url(port, &name), &p, &[]);
    until(&r, &id, "live", |s| s["state"] == "live").await;
    // A second publisher is refused and said on the live session.
    let second = ffmpeg_as("mpegts", &srt_url(port, &name), &p, &[]);
    assert!(!wait_exit(second, Duration::from_secs(30)).await.success());
    let s = stream(&r, &id).await;
    assert!(
        s["sessions"][0]["warnings"]
            .to_string()
            .contains("second publisher (SRT"),
        "{}",
        s["sessions"][0]
    );
    // A caller that encrypts for a stream without a passphrase is refused, and the live
    // session goes on (srt-protocol 0.4.4 panicked there, taking the listener and every
    // session down: vendor/srt-protocol/VENDORED.md).
    let (_, other) = create(&r).await;
    let url = format!("{}&passphrase=hostile-passphrase", srt_url(port, &other));
    let hostile = ffmpeg_as("mpegts", &url, &p, &[]);
    assert!(!wait_exit(hostile, Duration::from_secs(30)).await.success());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = stream(&r, &id).await;
    assert_eq!(after["state"], "live", "{after}");
    let kbps = after["live"]["bitrateKbps"].as_f64().unwrap_or(0.0);
    assert!(kbps > 50.0, "media still flows: {}", after["live"]);
    ffmpeg.kill().unwrap();
    let _ = ffmpeg.wait();
    let start = Instant::now();
    let s = until(&r, &id, "idle after the kill", |s| s["state"] == "idle").await;
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "ended in {:?}",
        start.elapsed()
    );
    assert!(
        s["sessions"][0]["endedAt"].is_string(),
        "{}",
        s["sessions"][0]
    );
    r.stop().await;
}
