//! RTMP ingest with a real publisher (ffmpeg), sessions, and live HLS checked with ffprobe.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::media::*;
use common::{free_port, until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn publish_goes_live_with_session_and_hls_then_idle() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    assert_eq!(stream(&r, &id).await["state"], "idle");
    let child = ffmpeg(r.rtmp, "live", &name, &SMALL);
    let live = until(&r, &id, "live with codecs", |s| {
        s["state"] == "live" && s["sessions"][0]["audioSampleRate"].is_number()
    })
    .await;
    let session = &live["sessions"][0];
    assert!(
        session["videoCodec"]
            .as_str()
            .unwrap()
            .starts_with("avc1.64"),
        "{session}"
    );
    assert_eq!(session["width"], 640);
    assert_eq!(session["height"], 360);
    assert_eq!(session["audioCodec"], "mp4a.40.2");
    assert_eq!(session["audioSampleRate"], 48000);
    assert_eq!(session["source"], "rtmp");
    assert_eq!(session["app"], "live");
    assert_eq!(session["endedAt"], Value::Null);

    // Wait for a few segments, then decode the newest one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let figures = &stream(&r, &id).await["live"];
    assert_eq!(figures["sessionId"], session["id"]);
    let fps = figures["fps"].as_f64().unwrap();
    assert!((15.0..=35.0).contains(&fps), "25 fps published: {figures}");
    assert!(figures["bitrateKbps"].as_f64().unwrap() > 50.0, "{figures}");
    let gop = figures["keyframeIntervalMs"].as_i64().unwrap();
    assert!((800..=1200).contains(&gop), "-g 25 at 25 fps: {figures}");
    assert_eq!(figures["droppedFrames"], 0);
    let (_, metrics) = get(&r, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(&format!("liveproc_stream_fps{{stream=\"{id}\"}}")),
        "{metrics}"
    );
    assert!(metrics.contains("liveproc_live_sessions 1"), "{metrics}");
    let probe = probe_live_hls(&r, &id).await;
    let video = probe_stream(&probe, "video").expect("video in the live segment");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["width"], 640);
    assert!(
        video["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 20,
        "{video}"
    );
    let audio = probe_stream(&probe, "audio").expect("audio in the live segment");
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");

    let status = wait_exit(child, Duration::from_secs(20)).await;
    assert!(status.success(), "ffmpeg published cleanly");
    let idle = until(&r, &id, "idle", |s| s["state"] == "idle").await;
    assert!(idle["sessions"][0]["endedAt"].is_string());
    assert_eq!(idle["live"], Value::Null);
    let (_, playlist) = get(&r, &format!("/hls/{id}/index.m3u8")).await;
    assert!(String::from_utf8_lossy(&playlist).ends_with("#EXT-X-ENDLIST\n"));
    r.stop().await;
}

#[tokio::test]
async fn video_only_and_1080p() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    let p = Publish {
        size: "1920x1080",
        seconds: 5,
        audio: false,
        filter: None,
    };
    let child = ffmpeg(r.rtmp, "rec", &name, &p);
    let live = until(&r, &id, "live 1080p", |s| {
        s["sessions"][0]["width"].is_number()
    })
    .await;
    assert_eq!(live["sessions"][0]["width"], 1920);
    assert_eq!(live["sessions"][0]["height"], 1080);
    assert_eq!(live["sessions"][0]["app"], "rec");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probe = probe_live_hls(&r, &id).await;
    assert_eq!(probe_stream(&probe, "video").unwrap()["height"], 1080);
    assert!(probe_stream(&probe, "audio").is_none());
    assert!(wait_exit(child, Duration::from_secs(30)).await.success());
    assert_eq!(
        stream(&r, &id).await["sessions"][0]["audioCodec"],
        Value::Null
    );
    r.stop().await;
}

#[tokio::test]
async fn unknown_key_and_second_publisher_are_refused_first_continues() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    let unknown = ffmpeg(r.rtmp, "live", "no-such-stream", &SMALL);
    assert!(!wait_exit(unknown, Duration::from_secs(15)).await.success());

    let long = Publish {
        seconds: 8,
        ..SMALL
    };
    let first = ffmpeg(r.rtmp, "live", &name, &long);
    until(&r, &id, "live", |s| s["state"] == "live").await;
    let second = ffmpeg(r.rtmp, "live", &name, &SMALL);
    assert!(
        !wait_exit(second, Duration::from_secs(15)).await.success(),
        "second publisher refused"
    );
    let s = stream(&r, &id).await;
    assert_eq!(s["state"], "live", "the first publisher continues");
    let session = s["sessions"][0]["id"].clone();
    let warnings = s["sessions"][0]["warnings"].to_string();
    assert!(
        warnings.contains("second publisher") && warnings.contains("127.0.0.1"),
        "the refusal is said on the live session: {warnings}"
    );
    assert!(wait_exit(first, Duration::from_secs(30)).await.success());
    let s = until(&r, &id, "idle", |s| s["state"] == "idle").await;
    assert_eq!(
        s["sessions"][0]["id"], session,
        "one session: the refused peer made none"
    );
    assert_eq!(s["sessions"].as_array().unwrap().len(), 1);
    r.stop().await;
}

#[tokio::test]
async fn garbage_and_half_open_connections_harm_no_one() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    // A peer that connects and says nothing, and one that sends noise.
    let idle_peer = tokio::net::TcpStream::connect(r.rtmp).await.unwrap();
    let mut noisy = tokio::net::TcpStream::connect(r.rtmp).await.unwrap();
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let _ = noisy.write_all(&noise).await;
    // A handshake that stops half way.
    let mut half = tokio::net::TcpStream::connect(r.rtmp).await.unwrap();
    half.write_all(&[3u8; 700]).await.unwrap();

    let child = ffmpeg(r.rtmp, "live", &name, &SMALL);
    until(&r, &id, "live despite bad peers", |s| s["state"] == "live").await;
    let (health, _) = get(&r, "/healthz").await;
    assert_eq!(health, 200);
    assert!(wait_exit(child, Duration::from_secs(20)).await.success());
    drop((idle_peer, noisy, half));
    r.stop().await;
}

/// A connection from `from` (any 127/8 address) to the RTMP listener.
async fn connect_from(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// RTMP's simple handshake (C0 C1, read S0 S1 S2, C2 = S1).
async fn rtmp_handshake(s: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| if i < 8 { 0 } else { (i * 7) as u8 }));
    s.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s0s1s2).await.unwrap();
    s.write_all(&s0s1s2[1..1537]).await.unwrap();
}

/// Whether the server closed `s` within `wait` (reads, skipping what it sends, reach the end).
async fn closed_within(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let drained = async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(wait, drained).await.is_ok()
}

/// Messages fuzzing found harmful, each on its own connection: a handshake half-closed by the
/// peer (spun a loop until the publish deadline), AMF0 arrays that declare 4 billion elements
/// (a strict array asked the allocator for 240 GB and the process aborted; an ECMA array wrote
/// gigabytes of hash table) and a chunk longer than its message. Each connection ends at once;
/// the server and a real publisher go on.
#[tokio::test]
async fn hostile_rtmp_messages_end_only_their_connection() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    let mut half_closed = tokio::net::TcpStream::connect(r.rtmp).await.unwrap();
    half_closed.write_all(&[3u8; 10]).await.unwrap();
    half_closed.shutdown().await.unwrap();
    assert!(
        closed_within(&mut half_closed, Duration::from_secs(2)).await,
        "a half-closed handshake is closed at once, not at the publish deadline"
    );

    // chunk basic header (fmt 0, csid 3), timestamp, length, type 20 (AMF0 command), stream 0.
    let message = |payload: &[u8], declared_len: usize| {
        let mut m = vec![0x03, 0, 0, 0];
        m.extend_from_slice(&(declared_len as u32).to_be_bytes()[1..]);
        m.push(20);
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(payload);
        m
    };
    // A command scuffle-rtmp does not know, whose arguments it decodes as they come.
    let mut command = vec![0x02, 0, 3];
    command.extend_from_slice(b"foo");
    command.push(0x00);
    command.extend_from_slice(&1f64.to_be_bytes());
    let mut huge_array = command.clone();
    huge_array.extend_from_slice(&[0x0A, 0xFF, 0xFF, 0xFF, 0xF0]);
    let mut huge_ecma = command.clone();
    huge_ecma.extend_from_slice(&[0x08, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 9]);
    let mut too_long = message(&command[..8], 4);
    too_long.extend_from_slice(&[0xC3; 200]);
    for (what, bytes) in [
        (
            "strict array of 4 billion",
            message(&huge_array, huge_array.len()),
        ),
        ("chunk longer than its message", too_long),
    ] {
        let mut s = tokio::net::TcpStream::connect(r.rtmp).await.unwrap();
        rtmp_handshake(&mut s).await;
        let _ = s.write_all(&bytes).await;
        assert!(
            closed_within(&mut s, Duration::from_secs(12)).await,
            "{what}: the connection ends"
        );
        let (health, _) = get(&r, "/healthz").await;
        assert_eq!(health, 200, "{what}: the server goes on");
    }

    let child = ffmpeg(r.rtmp, "live", &name, &SMALL);
    until(&r, &id, "live after hostile peers", |s| {
        s["state"] == "live"
    })
    .await;
    assert!(wait_exit(child, Duration::from_secs(20)).await.success());
    r.stop().await;
}

#[tokio::test]
async fn idle_connections_are_capped_per_address_and_in_total_and_time_out() {
    let r = Running::start_with(&[
        "--rtmp-max-waiting-per-ip",
        "4",
        "--rtmp-max-connections",
        "6",
    ])
    .await;
    let (id, name) = create(&r).await;
    // Four idle peers from one address are let in; the fifth is closed at once.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_from("127.0.0.2", r.rtmp).await);
    }
    let mut fifth = connect_from("127.0.0.2", r.rtmp).await;
    assert!(closed_within(&mut fifth, Duration::from_secs(2)).await);
    for s in &mut idle {
        assert!(!closed_within(s, Duration::from_millis(100)).await);
    }
    // Two more from another address fill the total of six; a seventh is closed.
    let others = [
        connect_from("127.0.0.3", r.rtmp).await,
        connect_from("127.0.0.3", r.rtmp).await,
    ];
    let mut seventh = connect_from("127.0.0.4", r.rtmp).await;
    assert!(closed_within(&mut seventh, Duration::from_secs(2)).await);
    // Idle sockets are closed when their handshake times out (3 s); so are those
    // that left. Their places are free again: a real publisher gets in and goes live.
    drop(others);
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(4)).await);
    }
    let child = ffmpeg(r.rtmp, "live", &name, &SMALL);
    until(&r, &id, "live after idle peers", |s| s["state"] == "live").await;
    // A peer that shakes hands and keeps talking without ever publishing is closed when its
    // time to publish (10 s) is up.
    let since = Instant::now();
    let mut loris = connect_from("127.0.0.5", r.rtmp).await;
    rtmp_handshake(&mut loris).await;
    let closed = loop {
        // Set Chunk Size (protocol control message 1) on chunk stream 2: harmless chatter.
        let chatter = [2u8, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0];
        if loris.write_all(&chatter).await.is_err()
            || closed_within(&mut loris, Duration::from_secs(2)).await
        {
            break since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(14), "never closed");
    };
    assert!(closed >= Duration::from_secs(9), "closed after {closed:?}");
    assert!(wait_exit(child, Duration::from_secs(20)).await.success());
    let s = stream(&r, &id).await;
    assert_eq!(s["sessions"].as_array().unwrap().len(), 1);
    r.stop().await;
}

#[tokio::test]
async fn shutdown_ends_live_sessions() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    let long = Publish {
        seconds: 20,
        ..SMALL
    };
    let mut child = ffmpeg(r.rtmp, "live", &name, &long);
    until(&r, &id, "live", |s| s["state"] == "live").await;
    let app = r.stop().await;
    let _ = child.kill();
    let _ = child.wait();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "graceful shutdown closes sessions");
}

/// Downloads an asset URL through the router and asks ffprobe for its duration and streams.
async fn probe_asset(r: &Running, url: &str) -> (f64, Vec<String>) {
    let media = fetch_raw(r, &asset_path(url)).await;
    let v = ffprobe_json(
        &media,
        &["-show_entries", "format=duration:stream=codec_type"],
    );
    let kinds = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap().to_string())
        .collect();
    (format_duration(&v), kinds)
}

fn vods(s: &Value) -> Vec<Value> {
    s["playout"]["web"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "vod")
        .cloned()
        .collect()
}

#[tokio::test]
async fn recording_is_an_mp4_of_the_session() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    set_processing(&r, &id, json!({"recording": {"enabled": true}})).await;
    publish_all(&r, "live", &name, 8).await;
    let s = until(&r, &id, "a ready recording", |s| {
        s["state"] == "idle" && vods(s).first().is_some_and(|v| v["status"] == "ready")
    })
    .await;
    let v = &vods(&s)[0];
    assert_eq!(v["sessionId"], s["sessions"][0]["id"]);
    assert_eq!(v["index"], 1);
    let listed = v["duration"].as_f64().unwrap();
    assert!((listed - 8.0).abs() <= 1.0, "listed duration {listed}");
    assert!(v["size"].as_i64().unwrap() > 10_000);
    let (probed, kinds) = probe_asset(&r, v["url"].as_str().unwrap()).await;
    assert!((probed - 8.0).abs() <= 1.0, "ffprobe duration {probed}");
    assert!(
        kinds.contains(&"video".into()) && kinds.contains(&"audio".into()),
        "{kinds:?}"
    );
    assert_eq!(s["assetCounts"]["recording"], 1);

    // Range and ETag, for players that seek and browsers that revalidate.
    let path = format!(
        "/assets/{}",
        v["url"].as_str().unwrap().split_once("/assets/").unwrap().1
    );
    let req = axum::http::Request::get(&path)
        .header("range", "bytes=0-99")
        .body(axum::body::Body::empty())
        .unwrap();
    let a = r.app.send(req).await;
    assert_eq!(a.status, 206);
    assert!(a.headers["content-range"]
        .to_str()
        .unwrap()
        .starts_with("bytes 0-99/"));
    let etag = a.headers["etag"].to_str().unwrap().to_string();
    let req = axum::http::Request::get(&path)
        .header("if-none-match", &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(r.app.send(req).await.status, 304);
    let (status, _) = get(&r, "/assets/../liveproc.db").await;
    assert_eq!(status, 404);

    // Deleting the stream deletes its files.
    assert_eq!(
        r.app
            .delete(&format!("/api/v1/stream/{id}"), OP)
            .await
            .status,
        204
    );
    let (status, _) = get(&r, &path).await;
    assert_eq!(status, 404, "the recording went with its stream");
    r.stop().await;
}

#[tokio::test]
async fn split_recordings_add_up_and_rec_forces_recording() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    // Recording is off in the settings, but the `rec` application forces it; 3 s per file.
    let set = set_processing(&r, &id, json!({"recording": {"duration": 3}})).await;
    assert_eq!(set["processing"]["recording"]["enabled"], false);
    publish_all(&r, "rec", &name, 9).await;
    let s = until(&r, &id, "ready recordings", |s| {
        s["state"] == "idle"
            && !vods(s).is_empty()
            && vods(s).iter().all(|v| v["status"] == "ready")
    })
    .await;
    let files = vods(&s);
    assert!(files.len() >= 3, "9 s in 3 s files: {files:?}");
    let mut total = 0.0;
    for v in &files {
        let (d, _) = probe_asset(&r, v["url"].as_str().unwrap()).await;
        assert!(d <= 4.1, "each file about 3 s: {d}");
        total += d;
    }
    assert!(
        (total - 9.0).abs() <= 1.0,
        "files add up to the session: {total}"
    );
    r.stop().await;
}

/// The real binary, as an operator runs it.
fn liveproc(data: &std::path::Path, http: u16, rtmp: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_liveproc"))
        .arg("--data")
        .arg(data)
        .args([
            "--http",
            &format!("127.0.0.1:{http}"),
            "--rtmp",
            &format!("127.0.0.1:{rtmp}"),
        ])
        .args(["--admin-key", OP])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_port(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_recording_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let (http, rtmp) = (free_port(), free_port());
    let mut server = liveproc(data.path(), http, rtmp);
    wait_port(http).await;
    sqlx::any::install_default_drivers();
    let db = format!("sqlite://{}/liveproc.db", data.path().display());
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    // A stream with recording on, made through the store the server uses.
    let stream_id = "kill9-stream";
    for sql in [
        "INSERT INTO stream_groups (id, organisation_id, name, created_at) VALUES ('g', 'default', 'k', 1)".to_string(),
        format!("INSERT INTO streams (id, group_id, organisation_id, profile, streamname, position, created_at) VALUES ('{stream_id}', 'g', 'default', 'passthrough', 'kill-nine', 0, 1)"),
        format!("INSERT INTO processing_settings (stream_id, process, enabled, updated_at) VALUES ('{stream_id}', 'recording', 1, 1)"),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{rtmp}").parse().unwrap();
    let p = Publish {
        seconds: 30,
        ..SMALL
    };
    let mut ffmpeg = ffmpeg(addr, "live", "kill-nine", &p);
    tokio::time::sleep(Duration::from_secs(8)).await;
    // SIGKILL: no chance to finish anything.
    server.kill().unwrap();
    server.wait().unwrap();
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();

    let mut server = liveproc(data.path(), http, rtmp);
    wait_port(http).await;
    let row = sqlx::query("SELECT path, status, duration_ms FROM assets WHERE kind = 'recording'")
        .fetch_one(&pool)
        .await
        .unwrap();
    use sqlx::Row;
    let path: String = row.get("path");
    let status: String = row.get("status");
    let listed: Option<i64> = row.get("duration_ms");
    assert_eq!(status, "ready", "recovered, not lost");
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "the killed session was closed at start-up");
    let file = data.path().join("assets").join(&path);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let probed: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // About 8 s were published before the kill; at most the fragment being written is lost.
    assert!(probed >= 5.0, "plays up to the last fragment: {probed} s");
    let listed = listed.expect("duration recovered from the fragments") as f64 / 1000.0;
    assert!(
        (listed - probed).abs() <= 0.5,
        "listed {listed} vs probed {probed}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

fn playlist_seconds(text: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.trim_end_matches(',').parse::<f64>().ok())
        .sum()
}

async fn fetch_text(r: &Running, url: &str) -> String {
    String::from_utf8(fetch_raw(r, &asset_path(url)).await.to_vec()).unwrap()
}

/// A stream that kept a whole-session replay of `seconds` of publishing; its object once ended.
async fn ended_replay(r: &Running, seconds: u32) -> Value {
    let (id, name) = create(r).await;
    set_processing(
        r,
        &id,
        json!({"replay": {"enabled": true, "duration": null}}),
    )
    .await;
    publish_all(r, "live", &name, seconds).await;
    until(r, &id, "an ended replay", |s| {
        s["state"] == "idle" && s["playout"]["replay"][0]["endedAt"].is_string()
    })
    .await
}

#[tokio::test]
async fn replay_keeps_the_session_and_ends_its_playlist() {
    let r = Running::start().await;
    let s = ended_replay(&r, 7).await;
    let replay = &s["playout"]["replay"][0];
    assert_eq!(replay["type"], "session");
    assert_eq!(replay["sessionId"], s["sessions"][0]["id"]);
    assert!(replay["url"].as_str().unwrap().ends_with(&format!(
        "/replay/{}",
        replay["sessionId"].as_str().unwrap()
    )));
    let text = fetch_text(&r, replay["hls"].as_str().unwrap()).await;
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let seconds = playlist_seconds(&text);
    assert!(
        (seconds - 7.0).abs() <= 1.0,
        "playlist holds the session: {seconds}"
    );
    // The segments it lists decode as one MP4 of the session's length.
    let base = asset_path(replay["hls"].as_str().unwrap());
    let base = base.rsplit_once('/').unwrap().0;
    let mut file = Vec::new();
    for name in playlist_files(&text, false) {
        file.extend_from_slice(&fetch_raw(&r, &format!("{base}/{name}")).await);
    }
    let probed = format_duration(&ffprobe_json(&file, &["-show_entries", "format=duration"]));
    assert!((probed - 7.0).abs() <= 1.0, "replay decodes: {probed}");
    r.stop().await;
}

/// PSNR (dB, average) between a picture and the first frame a player shows of an MP4.
fn first_frame_psnr(picture: &[u8], mp4: &[u8]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("p.jpg"), dir.path().join("c.mp4"));
    std::fs::write(&a, picture).unwrap();
    std::fs::write(&b, mp4).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(&a)
        .arg("-i")
        .arg(&b)
        .args([
            "-lavfi",
            "[1:v]select=eq(n\\,0)[c];[0:v]format=rgb24[a];[c]format=rgb24[b];[a][b]psnr",
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    text.split("average:")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| {
            if v == "inf" {
                Some(99.0)
            } else {
                v.parse().ok()
            }
        })
        .unwrap_or_else(|| panic!("no PSNR in: {text}"))
}

/// Where a box of this type first starts in `file`, if it is a top-level box.
fn top_box(file: &[u8], kind: &[u8; 4]) -> Option<usize> {
    let mut at = 0usize;
    while at + 16 <= file.len() {
        let mut size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as u64;
        if &file[at + 4..at + 8] == kind {
            return Some(at);
        }
        if size == 1 {
            size = u64::from_be_bytes(file[at + 8..at + 16].try_into().unwrap());
        }
        if size < 8 {
            return None;
        }
        at += size as usize;
    }
    None
}

#[tokio::test]
async fn clips_cut_the_replay_without_reencoding() {
    let r = Running::start().await;
    let s = ended_replay(&r, 10).await;
    let session = s["playout"]["replay"][0]["sessionId"].as_str().unwrap();
    let clip_path = format!("/api/v1/replay/{session}/clip");

    // An in-point between keyframes (they come every second): the edit list starts it there.
    let a = r
        .app
        .post(
            &clip_path,
            OP,
            json!({"start": 2.3, "end": 6.5, "title": "goal"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let clip = a.body;
    assert_eq!(clip["duration"], 4.2);
    assert_eq!(clip["start"], 2.3);
    assert_eq!(clip["title"], "goal");
    let clip_id = clip["id"].as_str().unwrap();
    assert!(clip["shareUrl"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/clip/{clip_id}")));
    // A poster of the first frame for the share page.
    let poster = fetch_raw(&r, &asset_path(clip["poster"].as_str().expect("poster"))).await;
    let v = ffprobe_json(
        &poster,
        &["-show_entries", "stream=codec_name,width,height"],
    );
    assert_eq!(v["streams"][0]["codec_name"], "mjpeg");
    assert_eq!(v["streams"][0]["width"], 640);
    let media = fetch_raw(&r, &asset_path(clip["url"].as_str().unwrap())).await;
    // The poster is the clip's first shown frame (the in-point, not the keyframe before it):
    // ffmpeg, which honours the edit list, decodes the same picture (the next frame scores
    // under 20 dB against it).
    let psnr = first_frame_psnr(&poster, &media);
    assert!(
        psnr > 30.0,
        "poster matches the clip's first frame: PSNR {psnr} dB"
    );
    let (moov, mdat) = (top_box(&media, b"moov"), top_box(&media, b"mdat"));
    assert!(
        moov.is_some() && moov < mdat,
        "moov first (fast start): {moov:?} {mdat:?}"
    );
    let probe = ffprobe_json(
        &media,
        &[
            "-count_frames",
            "-show_entries",
            "format=duration,start_time:stream=codec_type,nb_read_frames,start_time",
        ],
    );
    let duration = format_duration(&probe);
    assert!(
        (duration - 4.2).abs() <= 0.04,
        "one frame or better: {duration}"
    );
    let start: f64 = probe["format"]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start.abs() < 0.001, "starts at 0: {probe}");
    let video = probe_stream(&probe, "video").expect("video");
    assert!(probe_stream(&probe, "audio").is_some(), "audio: {probe}");
    let frames: f64 = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        (frames - 4.2 * 25.0).abs() <= 2.0,
        "the edit list shows 4.2 s of 25 fps: {frames}"
    );

    // Ranges that cannot be cut answer 4xx and say why.
    for (body, status) in [
        (json!({"start": 5, "end": 3}), 400),
        (json!({"start": -1, "end": 3}), 400),
        (json!({"start": 1, "end": 1.05}), 400),
        (json!({"start": 5, "end": 60}), 422),
        (json!({"start": "a", "end": 2}), 400),
    ] {
        let a = r.app.post(&clip_path, OP, body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.text);
        assert!(
            a.body["error"]["message"].as_str().unwrap().len() > 10,
            "{}",
            a.text
        );
    }
    let a = r
        .app
        .post(
            "/api/v1/replay/no-such-session/clip",
            OP,
            json!({"start": 1, "end": 2}),
        )
        .await;
    assert_eq!(a.status, 404);

    // Listed per session; deleting removes the file and the listing.
    let list = r
        .app
        .get(&format!("/api/v1/replay/{session}/clips"), OP)
        .await;
    assert_eq!(list.body["clips"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["clips"][0]["id"], clip_id);
    let a = r.app.delete(&format!("/api/v1/clip/{clip_id}"), OP).await;
    assert_eq!(a.status, 204, "{}", a.text);
    let (status, _) = get(&r, &asset_path(clip["url"].as_str().unwrap())).await;
    assert_eq!(status, 404);
    let list = r
        .app
        .get(&format!("/api/v1/replay/{session}/clips"), OP)
        .await;
    assert_eq!(list.body["clips"], json!([]));
    r.stop().await;
}

#[tokio::test]
async fn replay_window_slides_while_live() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    set_processing(
        &r,
        &id,
        json!({"replay": {"enabled": true, "duration": 10}}),
    )
    .await;
    let p = Publish {
        seconds: 26,
        ..SMALL
    };
    let child = ffmpeg(r.rtmp, "live", &name, &p);
    let s = until(&r, &id, "live replay", |s| {
        s["playout"]["replay"][0]["hls"].is_string()
    })
    .await;
    let url = s["playout"]["replay"][0]["hls"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let text = fetch_text(&r, &url).await;
    let held = playlist_seconds(&text);
    assert!(
        (9.0..=12.5).contains(&held),
        "about 10 s behind the live edge: {held}\n{text}"
    );
    assert!(
        !text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"),
        "old segments left: {text}"
    );
    assert!(!text.contains("ENDLIST"));
    // What slid out of the window can no longer be cut.
    let session = s["playout"]["replay"][0]["sessionId"].as_str().unwrap();
    let a = r
        .app
        .post(
            &format!("/api/v1/replay/{session}/clip"),
            OP,
            json!({"start": 0.5, "end": 2}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("holds"), "{}", a.text);
    assert!(wait_exit(child, Duration::from_secs(30)).await.success());
    let text = fetch_text(&r, &url).await;
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    r.stop().await;
}

/// A tmpfs mounted over a folder for the length of a test (needs root, as CI runs).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The number of a live playlist's newest segment (`seg-N.m4s`).
fn newest_segment(playlist: &[u8]) -> u64 {
    String::from_utf8_lossy(playlist)
        .lines()
        .filter_map(|l| l.strip_prefix("seg-")?.strip_suffix(".m4s")?.parse().ok())
        .max()
        .expect("a segment")
}

/// A full disk (DATA/assets on a small tmpfs, filled up while live): recording, replay and
/// thumbnails stop with their error on the stream and in /metrics, live playout goes on, what
/// was written stays playable, and all resume by themselves once there is room again.
#[tokio::test]
async fn a_full_disk_stops_processes_visibly_and_they_resume() {
    let r = Running::start().await;
    let assets = r.app.data().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    let Some(mount) = Tmpfs::mount(&assets, "32m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let (id, name) = create(&r).await;
    set_processing(
        &r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": 10},
               "recording": {"enabled": true}, "replay": {"enabled": true}}),
    )
    .await;
    let child = ffmpeg(
        r.rtmp,
        "live",
        &name,
        &Publish {
            seconds: 40,
            ..SMALL
        },
    );
    until(&r, &id, "live", |s| s["state"] == "live").await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Fill the disk to the last byte.
    let filler = assets.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 256 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&block[..1]);
    }
    let s = until(&r, &id, "recording and replay errors", |s| {
        let e = &s["live"]["processErrors"];
        e["recording"].is_string() && e["replay"].is_string()
    })
    .await;
    let errors = &s["live"]["processErrors"];
    assert!(
        errors["recording"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("space"),
        "{errors}"
    );
    let metrics = r.app.get("/metrics", OP).await.text;
    assert!(
        metrics.contains(&format!(
            "liveproc_stream_process_error{{stream=\"{id}\",process=\"recording\"}} 1"
        )),
        "{metrics}"
    );
    // Live playout goes on meanwhile.
    let playlist = format!("/hls/{id}/index.m3u8");
    let before = newest_segment(&get(&r, &playlist).await.1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = get(&r, &playlist).await;
    assert_eq!(status, 200);
    assert!(newest_segment(&body) > before, "live segments keep coming");

    // Room again: every process resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    until(&r, &id, "processes writing again", |s| {
        s["live"]["processErrors"] == json!({})
    })
    .await;
    assert!(wait_exit(child, Duration::from_secs(60)).await.success());
    let s = until(&r, &id, "recordings and replay finished", |s| {
        s["state"] == "idle"
            && vods(s).len() >= 2
            && vods(s).iter().all(|v| v["status"] == "ready")
            && s["playout"]["replay"][0]["endedAt"].is_string()
    })
    .await;
    // The file from before the disk filled and the one after both play.
    for v in vods(&s) {
        let (duration, kinds) = probe_asset(&r, v["url"].as_str().unwrap()).await;
        assert!(duration >= 2.0, "{v}: {duration} s");
        assert!(kinds.contains(&"video".to_string()), "{v}: {kinds:?}");
    }
    // The replay says where segments are missing, and ends.
    let replay = fetch_raw(
        &r,
        &asset_path(s["playout"]["replay"][0]["hls"].as_str().unwrap()),
    )
    .await;
    let text = String::from_utf8_lossy(&replay);
    assert!(text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    r.stop().await;
    drop(mount);
}
