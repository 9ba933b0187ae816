//! The RTMP interop matrix (design/rtmp-interop.md): each client publishes 10 s of H.264 + AAC
//! with every process on; the stream goes live, the recording lasts the publish (± 0.5 s) and
//! decodes clean with strictly increasing DTS per track, and each process made its output.
//! Clients: ffmpeg, GStreamer's own RTMP stack (`rtmp2sink`), librtmp (`rtmpsink`, the library
//! OBS's RTMP output descends from) and ffmpeg over RTMPS trusting a certificate made here.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::media::*;
use common::{until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};

const SECONDS: u32 = 10;

/// GStreamer publishing 640×360 30 fps x264 + 48 kHz stereo AAC for SECONDS through `sink`.
fn gstreamer(sink: &str, location: &str) -> Child {
    let frames = (SECONDS * 30).to_string();
    // 1024 samples per AAC frame at 48 kHz, a little past the video's end.
    let audio = (SECONDS * 48_000 / 1024 + 1).to_string();
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={frames} \
         ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=veryfast bitrate=1500 key-int-max=60 \
         ! h264parse ! flvmux name=m streamable=true ! {sink} location=\"{location}\" \
         audiotestsrc is-live=true num-buffers={audio} samplesperbuffer=1024 \
         ! audio/x-raw,rate=48000,channels=2 ! voaacenc ! aacparse ! m."
    );
    Command::new("gst-launch-1.0")
        .arg("-q")
        .args(shell_words(&pipeline))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 is installed (scripts/test.sh installs it)")
}

/// gst-launch takes the pipeline as words; a quoted location stays one word.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted) = (String::new(), false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// ffmpeg (x264 High with B-frames + AAC, 640×360) for SECONDS.
const FFMPEG: Publish = Publish {
    seconds: SECONDS,
    ..SMALL
};

/// A stream with every process on.
async fn all_processes(r: &Running) -> (String, String) {
    let (id, name) = create(r).await;
    set_processing(
        r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": 10},
               "motionclip": {"enabled": true, "interval": 10, "duration": 2},
               "recording": {"enabled": true},
               "replay": {"enabled": true}}),
    )
    .await;
    (id, name)
}

fn entries<'a>(s: &'a Value, list: &str, kind: &str) -> Vec<&'a Value> {
    s["playout"][list]
        .as_array()
        .map(|a| a.iter().filter(|e| e["type"] == kind).collect())
        .unwrap_or_default()
}

/// Checks a publish by `client` end to end: live while it runs, then every process's output.
async fn check(r: &Running, id: &str, client: Child, what: &str) {
    until(r, id, &format!("{what}: live"), |s| s["state"] == "live").await;
    let out = tokio::task::spawn_blocking(move || client.wait_with_output())
        .await
        .unwrap()
        .expect("client runs");
    assert!(
        out.status.success(),
        "{what} published cleanly: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = until(r, id, &format!("{what}: every output ready"), |s| {
        s["state"] == "idle"
            && entries(s, "web", "vod")
                .first()
                .is_some_and(|v| v["status"] == "ready")
            && s["playout"]["replay"][0]["endedAt"].is_string()
    })
    .await;
    assert_eq!(
        s["sessions"][0]["endReason"], "publisher stopped",
        "{what}: ended as a publisher that stopped: {s}"
    );
    let vod = entries(&s, "web", "vod")[0];
    let media = fetch_raw(r, &asset_path(vod["url"].as_str().unwrap())).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recording.mp4");
    std::fs::write(&file, &media).unwrap();
    let probe = ffprobe_json(
        &media,
        &["-show_entries", "format=duration:stream=codec_type"],
    );
    let duration = format_duration(&probe);
    assert!(
        (duration - f64::from(SECONDS)).abs() <= 0.5,
        "{what}: recording of {duration} s for a {SECONDS} s publish"
    );
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{what}: video and audio: {kinds:?}");
    assert_decodes_clean(&file, what, 2);
    assert!(
        !entries(&s, "thumbnails", "image").is_empty(),
        "{what}: a thumbnail: {s}"
    );
    assert!(
        !entries(&s, "motionclip", "clip").is_empty(),
        "{what}: a motion clip: {s}"
    );
}

#[tokio::test]
async fn ffmpeg_publishes() {
    let r = Running::start().await;
    let (id, name) = all_processes(&r).await;
    let client = ffmpeg(r.rtmp, "live", &name, &FFMPEG);
    check(&r, &id, client, "ffmpeg").await;
    r.stop().await;
}

#[tokio::test]
async fn gstreamer_rtmp2sink_publishes() {
    let r = Running::start().await;
    let (id, name) = all_processes(&r).await;
    let client = gstreamer("rtmp2sink", &format!("rtmp://{}/live/{name}", r.rtmp));
    check(&r, &id, client, "rtmp2sink").await;
    r.stop().await;
}

#[tokio::test]
async fn librtmp_rtmpsink_publishes() {
    let r = Running::start().await;
    let (id, name) = all_processes(&r).await;
    // librtmp's `live=1` option, as its users write it; an instance name and a query too.
    let url = format!("rtmp://{}/live/_definst_/{name}?key=abc live=1", r.rtmp);
    let client = gstreamer("rtmpsink", &url);
    check(&r, &id, client, "rtmpsink").await;
    r.stop().await;
}

#[tokio::test]
async fn ffmpeg_publishes_over_rtmps() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let r = Running::start_with(&[
        "--rtmps",
        &listen,
        "--rtmps-cert",
        cert_file.to_str().unwrap(),
        "--rtmps-key",
        key_file.to_str().unwrap(),
        "--public-url",
        "http://localhost:8080",
    ])
    .await;
    let (id, name) = all_processes(&r).await;
    let s = stream(&r, &id).await;
    assert_eq!(
        s["ingest"]["rtmps"]["url"],
        format!("rtmps://localhost:{port}/live"),
        "the stream object lists the RTMPS URL: {s}"
    );
    assert_eq!(
        s["ingest"]["rtmps"]["recUrl"],
        format!("rtmps://localhost:{port}/rec")
    );
    // ffmpeg checks the certificate against the one made here.
    let url = format!("rtmps://localhost:{port}/live/{name}");
    let ca = cert_file.to_str().unwrap();
    let client = ffmpeg_to(&url, &FFMPEG, &["-tls_verify", "1", "-ca_file", ca]);
    check(&r, &id, client, "ffmpeg over RTMPS").await;

    // A plain RTMP client on the TLS port gets nowhere, and the server goes on.
    let mut plain = tokio::net::TcpStream::connect(&listen).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, &[3u8; 1537])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut plain, &mut buf),
    )
    .await
    .expect("the TLS port answers or closes")
    .unwrap_or(0);
    assert!(n == 0 || buf[0] != 3, "no RTMP handshake in the clear");
    let (health, _) = get(&r, "/healthz").await;
    assert_eq!(health, 200);
    r.stop().await;
}

/// The stream object lists the `live` and `rec` URLs; without RTMPS, no `rtmps` entry.
#[tokio::test]
async fn without_rtmps_the_stream_lists_rtmp_only() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    let s = r.app.get(&format!("/api/v1/stream/{id}"), OP).await.body;
    let rtmp = &s["ingest"]["rtmp"];
    let url = rtmp["url"].as_str().unwrap();
    assert!(url.starts_with("rtmp://") && url.ends_with("/live"), "{s}");
    assert_eq!(rtmp["recUrl"], url.replace("/live", "/rec"), "{s}");
    assert_eq!(rtmp["streamname"], name);
    assert!(s["ingest"].get("rtmps").is_none(), "{s}");
    r.stop().await;
}

/// A refused publisher is told why in the protocol (an error `onStatus`), not only closed.
#[tokio::test]
async fn a_refused_publisher_is_told_why() {
    let r = Running::start().await;
    let client = ffmpeg(r.rtmp, "live", "no-such-stream", &FFMPEG);
    let out = tokio::task::spawn_blocking(move || client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("unknown stream name") && said.contains("no-such-stream"),
        "ffmpeg was told: {said}"
    );
    r.stop().await;
}
