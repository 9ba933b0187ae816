//! RTSP pull from a real RTSP server (GStreamer's, via Python gi): live, reconnect, stop.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, until, Running, OPERATOR_KEY as OP};
use serde_json::json;

struct Camera(Child);

impl Camera {
    fn start(port: u16) -> Camera {
        Self::of_kind(port, "h264-aac")
    }

    /// A camera sending `kind` (see tests/support/rtsp_server.py).
    fn of_kind(port: u16, kind: &str) -> Camera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(kind)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with GStreamer (scripts/test.sh installs it)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready", "the RTSP server started");
        Camera(child)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn pulls_a_camera_reconnects_and_stops_with_the_stream() {
    let port = free_port();
    let camera = Camera::start(port);
    let r = Running::start().await;
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let a = r
        .app
        .post("/api/v1/stream", OP, json!({"name": "cam", "source": url}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();

    let live = until(&r, &id, "live from RTSP", |s| {
        s["state"] == "live"
            && s["sessions"][0]["width"].is_number()
            && s["sessions"][0]["audioCodec"].is_string()
    })
    .await;
    assert_eq!(live["ingest"]["sourceState"]["state"], "live");
    let session = &live["sessions"][0];
    assert_eq!(session["source"], "rtsp");
    assert_eq!(
        (session["width"].as_i64(), session["height"].as_i64()),
        (Some(640), Some(360))
    );
    assert_eq!(session["audioSampleRate"], 48000);
    // Live HLS from the camera.
    let start = Instant::now();
    loop {
        let req = axum::http::Request::get(format!("/hls/{id}/index.m3u8"))
            .body(axum::body::Body::empty())
            .unwrap();
        let a = r.app.send(req).await;
        if a.status == 200 && a.text.matches(".m4s").count() >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no HLS from RTSP: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The camera goes away: the worker says so and retries.
    drop(camera);
    let lost = until(&r, &id, "retrying", |s| {
        s["state"] == "idle" && s["ingest"]["sourceState"]["state"] == "retrying"
    })
    .await;
    assert!(
        lost["ingest"]["sourceState"]["lastError"].is_string(),
        "{lost}"
    );
    assert!(lost["sessions"][0]["endedAt"].is_string());

    // It comes back: a new session starts by itself.
    let camera = Camera::start(port);
    let back = until(&r, &id, "live again", |s| s["state"] == "live").await;
    assert_ne!(back["sessions"][0]["id"], session["id"]);
    assert!(back["ingest"]["sourceState"]["attempts"].as_u64().unwrap() >= 2);

    // Deleting the stream stops its worker (the camera sees the session go).
    assert_eq!(
        r.app
            .delete(&format!("/api/v1/stream/{id}"), OP)
            .await
            .status,
        204
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(camera);
    r.stop().await;
}

#[tokio::test]
async fn an_unreachable_source_retries_with_its_error_shown() {
    let r = Running::start().await;
    let port = free_port();
    let a = r
        .app
        .post(
            "/api/v1/stream",
            OP,
            json!({"source": format!("rtsp://127.0.0.1:{port}/none")}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_string();
    let s = until(&r, &id, "retrying", |s| {
        s["ingest"]["sourceState"]["state"] == "retrying"
    })
    .await;
    assert_eq!(s["state"], "idle");
    let error = s["ingest"]["sourceState"]["lastError"].as_str().unwrap();
    assert!(!error.is_empty());
    r.stop().await;
}

/// A fake camera on loopback: answers every connection with `answer` (nothing if empty), then
/// keeps the connection open until the client hangs up.
async fn fake_camera(answer: &'static [u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                if matches!(socket.read(&mut request).await, Ok(n) if n > 0) && !answer.is_empty() {
                    let _ = socket.write_all(answer).await;
                }
                while matches!(socket.read(&mut request).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// A camera that never answers and one whose SDP makes the RTSP client panic (a session-level
/// line not in key=value form followed by one that is not `m=`; found by fuzzing) each end their own attempt: the source shows why and
/// keeps being retried, and the server goes on.
#[tokio::test]
async fn hostile_cameras_end_their_own_attempts() {
    const BAD_SDP: &[u8] = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n\
Content-Length: 96\r\n\r\nv=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nyy1\r\nt=0 0\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    let r = Running::start().await;
    let silent = fake_camera(b"").await;
    let panicking = fake_camera(BAD_SDP).await;
    let mut ids = Vec::new();
    for port in [silent, panicking] {
        let a = r
            .app
            .post(
                "/api/v1/stream",
                OP,
                json!({"source": format!("rtsp://127.0.0.1:{port}/cam")}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        ids.push(a.body["id"].as_str().unwrap().to_string());
    }
    let s = until(&r, &ids[1], "the panicking camera's retry", |s| {
        s["ingest"]["sourceState"]["attempts"].as_u64() >= Some(2)
    })
    .await;
    let error = s["ingest"]["sourceState"]["lastError"].as_str().unwrap();
    assert!(
        error.starts_with("the RTSP client failed on what the source sent"),
        "{error}"
    );
    let s = until(&r, &ids[0], "the silent camera's timeout", |s| {
        s["ingest"]["sourceState"]["state"] == "retrying"
    })
    .await;
    let error = s["ingest"]["sourceState"]["lastError"].as_str().unwrap();
    assert_eq!(error, "no answer from the source in 10 s");
    assert_eq!(r.app.get("/api/v1/streams", OP).await.status, 200);
    r.stop().await;
}

/// A camera sending `kind`, a server, and a stream that pulls it (with `fields` added to the
/// create request).
async fn pulled(kind: &str, mut fields: serde_json::Value) -> (Camera, Running, String) {
    let port = free_port();
    let camera = Camera::of_kind(port, kind);
    let r = Running::start().await;
    fields["name"] = json!(kind);
    fields["source"] = json!(format!("rtsp://127.0.0.1:{port}/cam"));
    let a = r.app.post("/api/v1/stream", OP, fields).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    (camera, r, id)
}

/// Stops `camera` and waits for the session's recording: the stream then, and the file.
async fn recording_after(
    camera: Camera,
    r: &Running,
    id: &str,
) -> (serde_json::Value, bytes::Bytes) {
    drop(camera);
    let s = until(r, id, "a ready recording", |s| {
        s["state"] == "idle"
            && s["playout"]["web"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|v| v["type"] == "vod" && v["status"] == "ready")
            })
    })
    .await;
    let vod = s["playout"]["web"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "vod")
        .unwrap()
        .clone();
    let url = common::media::asset_path(vod["url"].as_str().unwrap());
    let media = common::media::fetch_raw(r, &url).await;
    (s, media)
}

/// G.711 cameras (the usual IP-camera default), A-law and µ-law: their audio, which browsers
/// cannot play from MP4, is transcoded once to Opus; the session says so, the stream page shows
/// it, /metrics counts it, and the recording carries the Opus track and decodes clean.
#[tokio::test]
async fn a_g711_camera_is_transcoded_to_opus_and_said() {
    for (kind, law) in [("h264-pcma", "G.711 A-law"), ("h264-pcmu", "G.711 µ-law")] {
        let processing = json!({"recording": {"enabled": true}});
        let (camera, r, id) = pulled(kind, json!({"processing": processing})).await;
        let s = until(&r, &id, "live with Opus audio", |s| {
            let session = &s["sessions"][0];
            s["state"] == "live"
                && session["audioCodec"] == "opus"
                && session["warnings"]
                    .as_array()
                    .is_some_and(|w| !w.is_empty())
        })
        .await;
        let warnings = s["sessions"][0]["warnings"].to_string();
        assert!(
            warnings.contains(law) && warnings.contains("transcoded to Opus"),
            "{kind}: {warnings}"
        );
        // The stream page, signed in, says it too.
        let token = r
            .app
            .state
            .services
            .store
            .sign_in(OP)
            .await
            .unwrap()
            .unwrap();
        let req = axum::http::Request::get(format!("/stream/{id}"))
            .header("cookie", format!("liveproc_session={token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let page = r.app.send(req).await;
        assert!(
            page.text.contains("session-warnings") && page.text.contains(law),
            "the stream page says it: {}",
            page.text
        );
        let metrics = r.app.get("/metrics", OP).await.text;
        assert!(
            metrics.contains("liveproc_session_warnings_total{kind=\"audio_transcoded\"} 1"),
            "{metrics}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, media) = recording_after(camera, &r, &id).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recording.mp4");
        std::fs::write(&file, &media).unwrap();
        let probe =
            common::media::ffprobe_json(&media, &["-show_entries", "stream=codec_type,codec_name"]);
        let audio = common::media::probe_stream(&probe, "audio");
        assert_eq!(
            audio.map(|a| &a["codec_name"]),
            Some(&json!("opus")),
            "{probe}"
        );
        common::media::assert_decodes_clean(&file, kind, 2);
        r.stop().await;
    }
}

/// An H.265 camera (what most cameras sold today default to): the video is carried as it came
/// (`hvc1`) into live HLS and the recording, which decode clean; thumbnails decode its
/// keyframes (rust_h265); motion clips, which need runs of frames decoded, say why not.
#[tokio::test]
async fn an_h265_camera_is_recorded_with_thumbnails_and_motion_clips_say_why_not() {
    let processing = json!({"recording": {"enabled": true},
                            "thumbnail": {"enabled": true, "interval": 10},
                            "motionclip": {"enabled": true, "interval": 10, "duration": 2}});
    let (camera, r, id) = pulled("h265-aac", json!({"processing": processing})).await;
    let s = until(
        &r,
        &id,
        "live in H.265 with the motion clip's reason",
        |s| {
            s["state"] == "live"
                && s["sessions"][0]["videoCodec"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("hvc1"))
                && s["live"]["processErrors"]["motionclip"].is_string()
        },
    )
    .await;
    let why = s["live"]["processErrors"]["motionclip"].as_str().unwrap();
    assert!(
        why.contains("H.265 not supported for motion clips"),
        "{why}"
    );
    assert!(
        s["live"]["processErrors"]["thumbnail"].is_null(),
        "thumbnails work: {s}"
    );
    assert_eq!(s["sessions"][0]["width"], 640, "{s}");
    let start = Instant::now();
    loop {
        let (status, playlist) = common::media::get(&r, &format!("/hls/{id}/index.m3u8")).await;
        if status == 200 && String::from_utf8_lossy(&playlist).contains(".m4s") {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let s = common::media::stream(&r, &id).await;
            panic!("no live HLS ({status}): {s}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let probe = common::media::probe_live_hls(&r, &id).await;
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"hevc") && codecs.contains(&"aac"),
        "{codecs:?}"
    );

    // The camera goes: the recording is finished, in H.265, and decodes clean.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (s, media) = recording_after(camera, &r, &id).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recording.mp4");
    std::fs::write(&file, &media).unwrap();
    let probe = common::media::ffprobe_json(
        &media,
        &["-show_entries", "stream=codec_name,codec_tag_string"],
    );
    assert_eq!(probe["streams"][0]["codec_name"], "hevc", "{probe}");
    assert_eq!(probe["streams"][0]["codec_tag_string"], "hvc1", "{probe}");
    let thumbnails = s["playout"]["thumbnails"].as_array().unwrap();
    assert!(
        thumbnails.iter().any(|t| t["type"] == "image"),
        "an H.265 thumbnail: {s}"
    );
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.stop().await;
}
