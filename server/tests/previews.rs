//! Thumbnails and motion clips from real publishes (ffmpeg), checked with ffprobe.

mod common;

use std::time::Duration;

use common::media::*;
use common::{until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};

/// A running server with one stream that makes a thumbnail every `interval` seconds.
async fn with_thumbnails(interval: u32) -> (Running, String, String) {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    set_processing(
        &r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": interval}}),
    )
    .await;
    (r, id, name)
}

fn probe_first_stream(media: &[u8], count: bool) -> Value {
    let mut args = vec![
        "-show_entries",
        "stream=codec_name,width,height,nb_read_frames",
    ];
    if count {
        args.insert(0, "-count_frames");
    }
    ffprobe_json(media, &args)["streams"][0].clone()
}

fn ms(rfc3339: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        rfc3339.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test]
async fn thumbnails_and_motion_clips_of_a_26_s_publish() {
    let r = Running::start().await;
    let (id, name) = create(&r).await;
    set_processing(
        &r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": 10},
               "motionclip": {"enabled": true, "interval": 10, "duration": 3}}),
    )
    .await;
    // High profile with B-frames (the SMALL publish), 26 s.
    let p = Publish {
        seconds: 26,
        ..SMALL
    };
    let child = ffmpeg(r.rtmp, "live", &name, &p);
    // A preview exists within moments of going live.
    let s = until(&r, &id, "a first thumbnail", |s| {
        s["state"] == "live" && !entries(s, "thumbnails", "image").is_empty()
    })
    .await;
    let first = entries(&s, "thumbnails", "image")[0];
    let lead = ms(&first["createdAt"]) - ms(&s["sessions"][0]["startedAt"]);
    assert!(
        lead < 3000,
        "first thumbnail {lead} ms after the session started"
    );
    assert!(wait_exit(child, Duration::from_secs(40)).await.success());
    let s = until(&r, &id, "idle with previews", |s| {
        s["state"] == "idle" && entries(s, "motionclip", "clip").len() >= 2
    })
    .await;

    let images = entries(&s, "thumbnails", "image");
    assert!(
        images.len() >= 3,
        "first keyframe + every 10 s: {}",
        images.len()
    );
    for img in &images {
        assert_eq!(
            (img["width"].as_i64(), img["height"].as_i64()),
            (Some(640), Some(360))
        );
        let jpg = fetch_raw(&r, &asset_path(img["url"].as_str().unwrap())).await;
        let v = probe_first_stream(&jpg, false);
        assert_eq!(v["codec_name"], "mjpeg");
        assert_eq!(
            (v["width"].as_i64(), v["height"].as_i64()),
            (Some(640), Some(360))
        );
        let small = fetch_raw(&r, &asset_path(img["preview"].as_str().unwrap())).await;
        let v = probe_first_stream(&small, false);
        assert_eq!(
            (v["width"].as_i64(), v["height"].as_i64()),
            (Some(320), Some(180))
        );
    }
    // Spaced by the interval.
    let times: Vec<i64> = images.iter().map(|i| ms(&i["createdAt"])).collect();
    assert!(times[0] - times[1] >= 8000, "{times:?}");

    // The stable latest URL serves the newest, and lets browsers revalidate.
    let latest = entries(&s, "thumbnails", "latest")[0]["url"]
        .as_str()
        .unwrap();
    assert!(latest.ends_with(&format!("/assets/{id}/thumbnail/latest.jpg")));
    let req = axum::http::Request::get(asset_path(latest))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(r.app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert!(res.headers().contains_key("etag"));
    let newest = fetch_raw(&r, &asset_path(images[0]["url"].as_str().unwrap())).await;
    assert_eq!(fetch_raw(&r, &asset_path(latest)).await, newest);

    // Motion clips: GIFs of the stream's motion, and an MP4 of the same span.
    let clips = entries(&s, "motionclip", "clip");
    for c in &clips {
        let gif = fetch_raw(&r, &asset_path(c["url"].as_str().unwrap())).await;
        let v = probe_first_stream(&gif, true);
        assert_eq!(v["codec_name"], "gif");
        assert_eq!(v["width"].as_i64(), Some(320));
        let frames: i64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert!(frames >= 5, "a GIF with motion: {frames} frames");
        let d = c["duration"].as_f64().unwrap();
        assert!((d - 3.0).abs() <= 0.2, "clip duration {d}");
        let mp4 = fetch_raw(&r, &asset_path(c["mp4"].as_str().unwrap())).await;
        let probed = format_duration(&ffprobe_json(&mp4, &["-show_entries", "format=duration"]));
        assert!((probed - 3.0).abs() <= 0.3, "mp4 of the span: {probed}");
    }
    let latest_gif = entries(&s, "motionclip", "latest")[0]["url"]
        .as_str()
        .unwrap();
    let (status, body) = get(&r, &asset_path(latest_gif)).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..6], b"GIF89a");

    // The work is counted.
    let (_, metrics) = get(&r, "/metrics").await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    // Every thumbnail's latency is observed once, and every live segment's.
    let thumbnails = value("liveproc_thumbnails_total");
    assert!(thumbnails >= 3.0, "{metrics}");
    assert_eq!(
        value("liveproc_thumbnail_latency_seconds_count"),
        thumbnails
    );
    assert_eq!(
        value("liveproc_thumbnail_latency_seconds_bucket{le=\"+Inf\"}"),
        thumbnails
    );
    assert!(value("liveproc_live_segment_latency_seconds_count") >= 10.0);
    r.stop().await;
}

#[tokio::test]
async fn a_stream_that_starts_black_gets_a_real_picture_soon() {
    let (r, id, name) = with_thumbnails(60).await;
    // Four seconds of black, then the test picture.
    let p = Publish {
        seconds: 9,
        filter: Some("fade=in:st=4:d=0.2"),
        ..SMALL
    };
    assert!(
        wait_exit(ffmpeg(r.rtmp, "live", &name, &p), Duration::from_secs(30))
            .await
            .success()
    );
    let s = until(&r, &id, "two thumbnails", |s| {
        s["state"] == "idle" && entries(s, "thumbnails", "image").len() >= 2
    })
    .await;
    // Newest first: a picture, published long before the 60 s interval; the oldest is black.
    let images = entries(&s, "thumbnails", "image");
    let size = |i: &Value| {
        let url = asset_path(i["url"].as_str().unwrap());
        let r = &r;
        async move { fetch_raw(r, &url).await.len() }
    };
    let black = size(images[images.len() - 1]).await;
    let picture = size(images[0]).await;
    assert!(
        picture > 3 * black,
        "the later thumbnail shows the picture: {picture} bytes vs {black} black"
    );
    r.stop().await;
}

#[tokio::test]
async fn decodes_720p_and_1080p() {
    let (r, id, name) = with_thumbnails(10).await;
    for (size, w, h) in [("1280x720", 1280, 720), ("1920x1080", 1920, 1080)] {
        let p = Publish {
            size,
            seconds: 4,
            audio: false,
            filter: None,
        };
        assert!(
            wait_exit(ffmpeg(r.rtmp, "live", &name, &p), Duration::from_secs(30))
                .await
                .success()
        );
        let s = until(&r, &id, "a thumbnail of this size", |s| {
            s["state"] == "idle"
                && entries(s, "thumbnails", "image")
                    .first()
                    .is_some_and(|i| i["width"] == w)
        })
        .await;
        let img = entries(&s, "thumbnails", "image")[0];
        let jpg = fetch_raw(&r, &asset_path(img["url"].as_str().unwrap())).await;
        let v = probe_first_stream(&jpg, false);
        assert_eq!(
            (v["width"].as_i64(), v["height"].as_i64()),
            (Some(w), Some(h))
        );
    }
    r.stop().await;
}

/// `liveproc check` as an operator runs it against a running server's data folder.
fn check(data: &std::path::Path, fix: bool) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_liveproc"));
    cmd.arg("--data").arg(data).args(["check", "--grace", "0"]);
    if fix {
        cmd.arg("--fix");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn files_below(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            files_below(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[tokio::test]
async fn check_finds_and_fixes_what_disk_and_database_disagree_on() {
    let (r, id, name) = with_thumbnails(10).await;
    publish_all(&r, "live", &name, 4).await;
    let s = until(&r, &id, "a thumbnail", |s| {
        s["state"] == "idle" && !entries(s, "thumbnails", "image").is_empty()
    })
    .await;
    let before = entries(&s, "thumbnails", "image").len();
    let data = r.app.data().to_path_buf();
    let (clean, out) = check(&data, false);
    assert!(clean, "a fresh session is consistent: {out}");

    // A thumbnail's file is lost, and a stray file appears.
    let assets = data.join("assets");
    let mut files = Vec::new();
    files_below(&assets.join("thumbnails"), &mut files);
    let lost = files
        .iter()
        .find(|p| {
            p.to_string_lossy().ends_with(".jpg") && !p.to_string_lossy().ends_with(".320.jpg")
        })
        .unwrap()
        .clone();
    std::fs::remove_file(&lost).unwrap();
    std::fs::write(assets.join("thumbnails/stray.jpg"), b"not ours").unwrap();
    let (clean, out) = check(&data, false);
    assert!(!clean, "{out}");
    assert!(out.contains("missing thumbnail "), "{out}");
    assert!(out.contains("orphan thumbnails/stray.jpg"), "{out}");

    // Fixed: the row is forgotten, the stray file and the lost picture's preview are kept aside.
    let (fixed, out) = check(&data, true);
    assert!(fixed, "{out}");
    let found = data.join("lost+found");
    assert_eq!(
        std::fs::read(found.join("thumbnails/stray.jpg")).unwrap(),
        b"not ours"
    );
    let preview = lost.with_extension("320.jpg");
    assert!(found.join(preview.strip_prefix(&assets).unwrap()).exists());
    let (clean, out) = check(&data, false);
    assert!(clean, "consistent again: {out}");
    let s = stream(&r, &id).await;
    assert_eq!(entries(&s, "thumbnails", "image").len(), before - 1);
    r.stop().await;
}

/// Signed asset URLs: with them on, the API's asset URLs carry an expiring HMAC; the files
/// answer 403 without one, with a forged one or with one for another folder; a new key
/// (turning them on again) retires the old URLs; off makes plain URLs work again.
#[tokio::test]
async fn signed_asset_urls_are_required_when_the_organisation_asks() {
    let (r, id, name) = with_thumbnails(10).await;
    publish_all(&r, "live", &name, 3).await;
    let s = until(&r, &id, "a thumbnail", |s| {
        s["state"] == "idle" && s["playout"]["thumbnails"].as_array().unwrap().len() >= 2
    })
    .await;
    let plain = s["playout"]["thumbnails"][1]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&r, &asset_path(&plain)).await.0, 200);

    let a = r
        .app
        .put(
            "/api/v1/organisation/asset-access",
            OP,
            json!({"signedUrls": true, "ttlSeconds": 3600}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["assetAccess"],
        json!({"signedUrls": true, "ttlSeconds": 3600})
    );
    let s = stream(&r, &id).await;
    let signed = s["playout"]["thumbnails"][1]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let latest = s["playout"]["thumbnails"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(signed.contains("/assets/s/"), "{signed}");
    assert_eq!(get(&r, &asset_path(&signed)).await.0, 200);
    assert_eq!(get(&r, &asset_path(&latest)).await.0, 200, "{latest}");

    let refused = |path: String, code: &'static str| {
        let r = &r;
        async move {
            let req = axum::http::Request::get(&path)
                .body(axum::body::Body::empty())
                .unwrap();
            r.app.send(req).await.error(403, code);
        }
    };
    refused(asset_path(&plain), "signature_required").await;
    // The signature is over (expiry, folder): change either and it fails.
    let (head, file) = signed.rsplit_once('/').unwrap();
    let head = asset_path(head);
    let (prefix, sig_and_rest) = head.split_at("/assets/s/".len());
    let mut parts = sig_and_rest.splitn(3, '/');
    let (expires, sig, folder) = (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    // Change the last hex digit to one it is not (a fixed '0' was the same digit in 1 of 16 runs).
    let last = if sig.ends_with('0') { '1' } else { '0' };
    let forged = format!(
        "{prefix}{expires}/{}{last}/{folder}/{file}",
        &sig[..sig.len() - 1]
    );
    refused(forged, "signature_invalid").await;
    let later = format!(
        "{prefix}{}/{sig}/{folder}/{file}",
        expires.parse::<i64>().unwrap() + 600
    );
    refused(later, "signature_invalid").await;
    let elsewhere = format!("{prefix}{expires}/{sig}/recordings/{id}/x.mp4");
    refused(elsewhere, "signature_invalid").await;

    // A new key retires the URLs handed out before it.
    r.app
        .put(
            "/api/v1/organisation/asset-access",
            OP,
            json!({"signedUrls": true}),
        )
        .await;
    refused(asset_path(&signed), "signature_invalid").await;
    // Off: plain URLs again.
    let a = r
        .app
        .put(
            "/api/v1/organisation/asset-access",
            OP,
            json!({"signedUrls": false}),
        )
        .await;
    assert_eq!(a.body["assetAccess"]["signedUrls"], false);
    assert_eq!(get(&r, &asset_path(&plain)).await.0, 200);
    r.app
        .put(
            "/api/v1/organisation/asset-access",
            OP,
            json!({"ttlSeconds": 5}),
        )
        .await
        .error(400, "invalid_body");
    r.app
        .put(
            "/api/v1/organisation/asset-access",
            OP,
            json!({"signedUrls": true, "ttlSeconds": 5}),
        )
        .await
        .error(400, "out_of_range");
    r.stop().await;
}
