//! RTMP ingest with a real publisher (ffmpeg), sessions, and live HLS checked with ffprobe.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::{until, Running};
use serde_json::Value;
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
    // ffmpeg sent 25 fps: the ended session keeps that rate (media time, not arrival).
    let fps = idle["sessions"][0]["fps"]
        .as_f64()
        .expect("fps on the ended session");
    assert!((fps - 25.0).abs() < 0.5, "{fps}");
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
