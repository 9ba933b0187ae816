//! Recording with a real publisher (ffmpeg): MP4 files of the session checked with ffprobe, split
//! files, a `kill -9` mid-recording, and a full disk that stops processes visibly.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::media::*;
use common::{free_port, until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};

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

/// An organisation whose package was switched off runs no process at its next ingest, whatever
/// its saved settings, and `/rec/` publishes live only; the session says why.
#[tokio::test]
async fn without_the_package_no_process_runs_and_rec_is_live_only() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    set_processing(
        &r,
        &id,
        json!({"thumbnail": {"enabled": true}, "replay": {"enabled": true}}),
    )
    .await;
    let off = r
        .app
        .put(
            "/api/v1/organisations/default/packages",
            OP,
            json!({"liveProcessing": false}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    publish_all(&r, "rec", &name, 3).await;
    let s = until(&r, &id, "the session ended", |s| {
        s["state"] == "idle" && s["sessions"].as_array().is_some_and(|v| !v.is_empty())
    })
    .await;
    let warnings = s["sessions"][0]["warnings"].to_string();
    assert!(warnings.contains("package"), "{warnings}");
    assert!(vods(&s).is_empty(), "no recording: {s}");
    assert_eq!(
        s["assetCounts"],
        json!({"thumbnail": 0, "motionclip": 0, "recording": 0, "replay": 0})
    );
    // The saved settings are kept for when the package is back.
    assert_eq!(s["processing"]["thumbnail"]["enabled"], true);
    let metrics = get(&r, "/metrics").await.1;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("liveproc_session_warnings_total{kind=\"processing_unavailable\"} 1"),
        "{metrics}"
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
    // Both turns were events (webhooks, the live dashboard): each stop of the recording
    // process followed by its recovery.
    let start = std::time::Instant::now();
    loop {
        let events = r.app.get("/api/v1/events?limit=1000", OP).await.body;
        let told = |kind: &str| {
            events["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == kind && e["data"]["process"] == "recording")
                .count()
        };
        let (stopped, resumed) = (told("process.error"), told("process.recovered"));
        if stopped >= 1 && stopped == resumed {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{events}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
