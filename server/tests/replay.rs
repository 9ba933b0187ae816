//! Replay with a real publisher (ffmpeg): the session's segments on disk, the sliding window,
//! and clips cut from it without re-encoding.

mod common;

use std::process::Command;
use std::time::Duration;

use common::media::*;
use common::{until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};

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
    // The paged list of replays lists the same entry.
    let id = s["id"].as_str().unwrap();
    let page = r
        .app
        .get(&format!("/api/v1/stream/{id}/replays"), OP)
        .await
        .body;
    assert_eq!(page["items"], json!([replay.clone()]), "{page}");
    assert_eq!(page["next"], Value::Null);
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

/// A site path's HTML (a page, rendered on the server).
async fn page(r: &Running, url: &str) -> String {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let (status, body) = get(r, path).await;
    assert_eq!(status, 200, "{path}");
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn public_replay_pages_and_signed_page_links() {
    let r = Running::start().await;
    let s = ended_replay(&r, 3).await;
    let id = s["id"].as_str().unwrap();
    let replay = &s["playout"]["replay"][0];
    let session = replay["sessionId"].as_str().unwrap();
    let watch = replay["watch"].as_str().unwrap();
    assert!(
        watch.ends_with(&format!("/watch/replay/{session}")),
        "{watch}"
    );
    // A viewer without an account gets the player of the session's replay, and its embed.
    let hls = asset_path(replay["hls"].as_str().unwrap());
    let html = page(&r, watch).await;
    assert!(
        html.contains("data-hls-src=\"http") && html.contains(&hls),
        "{html}"
    );
    let html = page(&r, &format!("/embed/replay/{session}")).await;
    assert!(html.contains(&hls), "{html}");
    assert!(page(&r, "/watch/replay/nosuchsession")
        .await
        .contains("not found"));

    // An organisation that signs its URLs hands out signed page links, and only those work.
    let a = r
        .app
        .put(
            "/api/v1/organisation/asset-access",
            OP,
            json!({"signedUrls": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let s = stream(&r, id).await;
    let watch = s["playout"]["replay"][0]["watch"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        watch.contains(&format!("/watch/replay/{session}?expires=")),
        "{watch}"
    );
    let live = s["playout"]["web"][0]["url"].as_str().unwrap().to_string();
    assert!(live.contains(&format!("/watch/{id}?expires=")), "{live}");
    let refused = "need a signed URL";
    assert!(page(&r, &format!("/watch/replay/{session}"))
        .await
        .contains(refused));
    assert!(page(&r, &format!("/embed/replay/{session}"))
        .await
        .contains(refused));
    assert!(page(&r, &format!("/watch/{id}")).await.contains(refused));
    // A link for one session does not open another page.
    let query = watch.split_once('?').unwrap().1;
    assert!(page(&r, &format!("/watch/{id}?{query}"))
        .await
        .contains("does not match"));
    let tampered = format!(
        "{}0",
        watch.trim_end_matches(|c: char| c.is_ascii_hexdigit())
    );
    assert!(page(&r, &tampered).await.contains("does not match"));
    // The signed link plays: its page hands out a signed playlist URL that serves.
    let html = page(&r, &watch).await;
    assert!(!html.contains(refused), "{html}");
    let signed_hls = html
        .split("data-hls-src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a player")
        .to_string();
    assert!(signed_hls.contains("/assets/s/"), "{signed_hls}");
    assert_eq!(get(&r, &asset_path(&signed_hls)).await.0, 200);
    let html = page(&r, &live).await;
    assert!(
        !html.contains(refused) && html.contains("watch-title"),
        "{html}"
    );
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
    let deleted = r.app.events(OP, "asset.deleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["data"]["id"], clip_id);
    assert_eq!(deleted[0]["data"]["kind"], "clip");
    assert_eq!(deleted[0]["data"]["reason"], "deleted");
    assert_eq!(deleted[0]["sessionId"], session);
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
