//! The REST API contract of DESIGN.md, through `Router::oneshot`, on SQLite and PostgreSQL.

mod common;

use axum::http::Method;
use common::{Backend, TestApp, OPERATOR_KEY as OP};
use serde_json::{json, Value};

on_both_backends!(
    auth_is_required,
    auth_failures_are_limited_per_address,
    create_answers_the_contract_shape,
    profiles_and_per_profile_settings,
    a_group_and_its_renditions_in_one_call,
    every_asset_a_page_at_a_time,
    every_range_is_enforced,
    update_keeps_what_is_left_out,
    pending_while_live,
    group_update_syncs_profiles,
    profiles_are_added_and_removed_later,
    list_filters,
    asset_limit_applies,
    delete_stream_and_group,
    organisations_and_packages,
    roles_are_enforced,
    organisations_are_isolated,
    bad_bodies_and_routes,
    health_metrics_and_openapi,
    dashboard_requires_sign_in,
    recording_retention,
    events_and_webhooks_are_per_organisation,
    webhook_endpoints_are_checked,
    event_stream_is_live_and_per_organisation,
);

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let a = app.post("/api/v1/stream", key, body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

async fn auth_is_required(b: Backend) {
    let app = TestApp::new(b).await;
    let a = app.call(Method::GET, "/api/v1/streams", None, None).await;
    a.error(401, "unauthorized");
    app.get("/api/v1/streams", "wrong-key")
        .await
        .error(401, "unauthorized");
    // bintu's header is accepted too.
    let req = axum::http::Request::get("/api/v1/streams")
        .header("X-BINTU-APIKEY", OP)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, 200);
}

/// Guessing keys: after 20 wrong keys in a minute, an address gets 429 (even for a right key)
/// while other addresses go on.
async fn auth_failures_are_limited_per_address(b: Backend) {
    let app = TestApp::new(b).await;
    let from = |ip: &str, key: &str| {
        let mut req = axum::http::Request::get("/api/v1/streams")
            .header("X-API-Key", key)
            .body(axum::body::Body::empty())
            .unwrap();
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        req
    };
    for i in 0..20 {
        let a = app.send(from("10.0.0.1", &format!("guess-{i}"))).await;
        a.error(401, "unauthorized");
    }
    let a = app.send(from("10.0.0.1", "guess-20")).await;
    a.error(429, "too_many_auth_failures");
    assert_eq!(a.headers["retry-after"], "60");
    app.send(from("10.0.0.1", OP))
        .await
        .error(429, "too_many_auth_failures");
    assert_eq!(app.send(from("10.0.0.2", OP)).await.status, 200);
    let metrics = app.get("/metrics", OP).await.text;
    assert!(
        metrics.contains("liveproc_auth_failures_total 20"),
        "refused requests are not failures: {metrics}"
    );
}

async fn create_answers_the_contract_shape(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({"name": "auction-1", "tags": ["eu"]})).await;
    let id = s["id"].as_str().unwrap();
    assert_eq!(s["name"], "auction-1");
    assert_eq!(s["profile"], "passthrough");
    assert_eq!(s["state"], "idle");
    assert_eq!(s["tags"], json!(["eu"]));
    assert!(s["streamgroup"].as_str().unwrap().len() > 10);
    assert!(time_ok(&s["createdAt"]));
    assert_eq!(s["ingest"]["rtmp"]["url"], "rtmp://media.test:1935/live");
    assert_eq!(s["ingest"]["rtmp"]["streamname"], s["streamname"]);
    assert_eq!(s["ingest"]["source"], Value::Null);
    let p = &s["processing"];
    assert_eq!(p["thumbnail"], json!({"enabled": false, "interval": 10}));
    assert_eq!(
        p["motionclip"],
        json!({"enabled": false, "interval": 30, "duration": 5})
    );
    assert_eq!(p["recording"], json!({"enabled": false, "duration": null}));
    assert_eq!(p["pending"], false);
    assert_eq!(
        s["playout"]["hls"],
        json!([{"url": format!("http://media.test:8080/hls/{id}/index.m3u8"), "type": "live"}])
    );
    // The live entry as the documents show it: its stream, creation time, processes and tags.
    let enabled: Vec<&str> = ["thumbnail", "motionclip", "recording", "replay"]
        .into_iter()
        .filter(|k| p[*k]["enabled"] == true)
        .collect();
    assert_eq!(
        s["playout"]["web"][0],
        json!({"url": format!("http://media.test:8080/watch/{id}"), "type": "live",
            "id": id, "streamId": id, "createdAt": s["createdAt"], "processing": enabled,
            "tags": s["tags"]})
    );
    assert_eq!(s["playout"]["renditions"], json!([]));
    for k in ["replay", "thumbnails", "motionclip"] {
        assert!(s["playout"][k].is_array(), "{k}");
    }
    // An empty body is a stream with defaults; GET answers the same object.
    let empty = app
        .call(Method::POST, "/api/v1/stream", Some(OP), None)
        .await;
    assert_eq!(empty.status, 201, "{}", empty.text);
    let got = app.get(&format!("/api/v1/stream/{id}"), OP).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, s);
    // RTSP sources must be rtsp URLs.
    let bad = app
        .post("/api/v1/stream", OP, json!({"source": "http://cam"}))
        .await;
    bad.error(400, "invalid_source");
    let cam = create(&app, OP, json!({"source": "rtsp://camera.local/stream1"})).await;
    assert_eq!(cam["ingest"]["source"], "rtsp://camera.local/stream1");
}

fn time_ok(v: &Value) -> bool {
    v.as_str().is_some_and(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

/// The API key of a new organisation.
async fn other_organisation(app: &TestApp) -> String {
    let made = app
        .post("/api/v1/organisations", OP, json!({"name": "Other"}))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    made.body["apiKey"].as_str().unwrap().to_string()
}

/// `GET /api/v1/streamgroup/{id}` answers the group with its streams (by the group's id or any
/// of its streams'), and the passthrough stream lists the renditions a player can use.
async fn a_group_and_its_renditions_in_one_call(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({"name": "ladder", "transcoding": {"profiles": ["720p", "360p"]}}),
    )
    .await;
    let group = s["streamgroup"].as_str().unwrap();
    let by_group = app.get(&format!("/api/v1/streamgroup/{group}"), OP).await;
    assert_eq!(by_group.status, 200, "{}", by_group.text);
    assert_eq!(by_group.body["id"], group);
    let streams = by_group.body["streams"].as_array().unwrap();
    let profiles: Vec<&str> = streams
        .iter()
        .map(|x| x["profile"].as_str().unwrap())
        .collect();
    assert_eq!(profiles, ["passthrough", "720p", "360p"]);
    let profile_id = streams[2]["id"].as_str().unwrap();
    let by_member = app
        .get(&format!("/api/v1/streamgroup/{profile_id}"), OP)
        .await;
    assert_eq!(by_member.body, by_group.body);
    let renditions = &streams[0]["playout"]["renditions"];
    assert_eq!(
        renditions,
        &json!([
            {"profile": "720p", "streamId": streams[1]["id"],
             "hls": format!("http://media.test:8080/hls/{}/index.m3u8", streams[1]["id"].as_str().unwrap()),
             "width": null, "height": null, "bitrateKbps": 2500},
            {"profile": "360p", "streamId": streams[2]["id"],
             "hls": format!("http://media.test:8080/hls/{profile_id}/index.m3u8"),
             "width": null, "height": null, "bitrateKbps": 700},
        ])
    );
    assert_eq!(streams[1]["playout"]["renditions"], json!([]));
    app.get("/api/v1/streamgroup/nope", OP)
        .await
        .error(404, "not_found");
    // Another organisation's key does not see the group.
    let other = other_organisation(&app).await;
    app.get(&format!("/api/v1/streamgroup/{group}"), &other)
        .await
        .error(404, "not_found");
}

/// The paged lists reach every asset (250 thumbnails here), newest first, without repeats.
async fn every_asset_a_page_at_a_time(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({"name": "many"})).await;
    let id = s["id"].as_str().unwrap();
    let store = &app.state.services.store;
    for i in 0..250 {
        let asset = store
            .insert_asset(&domain::store::NewAsset {
                stream_id: id.to_string(),
                session_id: None,
                kind: domain::AssetKind::Thumbnail,
                path: format!("thumbnails/{id}/s/{i}.jpg"),
                index: i,
                width: Some(64),
                height: Some(48),
            })
            .await
            .unwrap();
        store.finish_asset(&asset, None, 10, "ready").await.unwrap();
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/stream/{id}/thumbnails?limit=100");
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let a = app.get(&path, OP).await;
        assert_eq!(a.status, 200, "{}", a.text);
        seen.extend(a.body["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        match a.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let urls: std::collections::HashSet<&str> =
        seen.iter().map(|x| x["url"].as_str().unwrap()).collect();
    assert_eq!(urls.len(), 250, "every thumbnail once");
    // RFC 3339 fractions vary in length: pad them so the text sorts as the time does.
    let times: Vec<String> = seen
        .iter()
        .map(|x| {
            let t = x["createdAt"].as_str().unwrap().trim_end_matches('Z');
            let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
            format!("{whole}.{fraction:0<9}")
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(seen[0]["type"], "image");
    assert!(seen[0]["preview"].as_str().unwrap().ends_with(".320.jpg"));
    // The default page is 50; the stream object keeps its ten.
    let first = app
        .get(&format!("/api/v1/stream/{id}/thumbnails"), OP)
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 50);
    let object = app.get(&format!("/api/v1/stream/{id}"), OP).await;
    assert_eq!(
        object.body["playout"]["thumbnails"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    for kind in ["recordings", "sessions", "motionclips", "clips"] {
        let a = app.get(&format!("/api/v1/stream/{id}/{kind}"), OP).await;
        assert_eq!(a.body, json!({"items": [], "next": null}), "{kind}");
    }
    app.get(&format!("/api/v1/stream/{id}/thumbnails?cursor=nope"), OP)
        .await
        .error(400, "invalid_cursor");
    app.get(&format!("/api/v1/stream/{id}/thumbnails?limit=0"), OP)
        .await
        .error(400, "invalid_limit");
    app.get(&format!("/api/v1/stream/{id}/pictures"), OP)
        .await
        .error(404, "not_found");
    let other = other_organisation(&app).await;
    app.get(&format!("/api/v1/stream/{id}/thumbnails"), &other)
        .await
        .error(404, "not_found");
}

async fn profiles_and_per_profile_settings(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({
            "name": "ladder",
            "transcoding": {"profiles": ["720p", "360p"]},
            "processing": {"thumbnail": {"enabled": true, "interval": 20}},
            "profileProcessing": {"360p": {"thumbnail": {"interval": 60}, "replay": {"enabled": true, "duration": null}}}
        }),
    )
    .await;
    let group = s["streamgroup"].as_str().unwrap();
    let list = app.get("/api/v1/streams", OP).await;
    let streams: Vec<&Value> = list.body["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["streamgroup"] == group)
        .collect();
    let profiles: Vec<&str> = streams
        .iter()
        .map(|x| x["profile"].as_str().unwrap())
        .collect();
    assert_eq!(profiles, ["passthrough", "720p", "360p"]);
    let names: std::collections::HashSet<&str> = streams
        .iter()
        .map(|x| x["streamname"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "each profile has its own stream name");
    assert_eq!(streams[1]["processing"]["thumbnail"]["interval"], 20);
    assert_eq!(streams[2]["processing"]["thumbnail"]["interval"], 60);
    assert_eq!(streams[2]["processing"]["replay"]["enabled"], true);
    assert_eq!(streams[1]["processing"]["replay"]["enabled"], false);

    let a = app
        .post(
            "/api/v1/stream",
            OP,
            json!({"transcoding": {"profiles": ["4k"]}}),
        )
        .await;
    let m = a.error(400, "unknown_profile");
    assert!(m.contains("720p") && m.contains("360p"), "{m}");
    app.post(
        "/api/v1/stream",
        OP,
        json!({"profileProcessing": {"720p": {}}}),
    )
    .await
    .error(400, "unknown_profile");
}

async fn every_range_is_enforced(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({})).await;
    let path = format!("/api/v1/stream/{}/processing", s["id"].as_str().unwrap());
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"thumbnail": {"interval": 9}}),
            "thumbnail.interval",
            "10 and 3600",
        ),
        (
            json!({"thumbnail": {"interval": 3601}}),
            "thumbnail.interval",
            "10 and 3600",
        ),
        (
            json!({"motionclip": {"interval": 9}}),
            "motionclip.interval",
            "10 and 3600",
        ),
        (
            json!({"motionclip": {"interval": 3601}}),
            "motionclip.interval",
            "10 and 3600",
        ),
        (
            json!({"motionclip": {"duration": 0}}),
            "motionclip.duration",
            "1 and 60",
        ),
        (
            json!({"motionclip": {"duration": 61}}),
            "motionclip.duration",
            "1 and 60",
        ),
        (
            json!({"recording": {"duration": 0}}),
            "recording.duration",
            "at least 1",
        ),
        (
            json!({"replay": {"duration": -1}}),
            "replay.duration",
            "at least 1",
        ),
    ];
    for (body, field, range) in cases {
        for a in [
            app.put(&path, OP, body.clone()).await,
            app.post("/api/v1/stream", OP, json!({ "processing": body }))
                .await,
        ] {
            let m = a.error(400, "out_of_range");
            assert!(m.contains(field) && m.contains(range), "{body}: {m}");
            assert_eq!(a.body["error"]["field"], *field);
        }
    }
    // The bounds themselves are allowed.
    let ok = app
        .put(
            &path,
            OP,
            json!({"thumbnail": {"interval": 10}, "motionclip": {"interval": 3600, "duration": 60},
                   "recording": {"duration": 1}, "replay": {"duration": null}}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let ok = app
        .put(
            &path,
            OP,
            json!({"thumbnail": {"interval": 3600}, "motionclip": {"interval": 10, "duration": 1}}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A rejected edit changed nothing.
    let now = app
        .get(&format!("/api/v1/stream/{}", s["id"].as_str().unwrap()), OP)
        .await;
    assert_eq!(now.body["processing"]["thumbnail"]["interval"], 3600);
    assert_eq!(now.body["processing"]["recording"]["duration"], 1);
}

async fn update_keeps_what_is_left_out(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({"processing": {"recording": {"enabled": true, "duration": 600}, "motionclip": {"duration": 8}}}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let a = app
        .put(
            &format!("/api/v1/stream/{id}/processing"),
            OP,
            json!({"thumbnail": {"enabled": true, "interval": 30}, "motionclip": {"enabled": true}}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let p = &a.body["processing"];
    assert_eq!(p["thumbnail"], json!({"enabled": true, "interval": 30}));
    assert_eq!(
        p["motionclip"],
        json!({"enabled": true, "interval": 30, "duration": 8})
    );
    assert_eq!(p["recording"], json!({"enabled": true, "duration": 600}));
    assert_eq!(p["pending"], false, "an idle stream has nothing pending");
    let a = app
        .put(
            &format!("/api/v1/stream/{id}/processing"),
            OP,
            json!({"recording": {"duration": null}}),
        )
        .await;
    assert_eq!(
        a.body["processing"]["recording"],
        json!({"enabled": true, "duration": null})
    );
    // The thumbnail latest link appears once thumbnails are on.
    assert_eq!(a.body["playout"]["thumbnails"][0]["type"], "latest");
    // Each edit is a `stream.updated` event with the settings saved.
    let updated = app.events(OP, "stream.updated").await;
    assert_eq!(updated.len(), 2, "{updated:?}");
    assert_eq!(updated[0]["streamId"], id);
    assert_eq!(
        updated[0]["data"]["processing"]["thumbnail"],
        json!({"enabled": true, "interval": 30})
    );
    assert_eq!(
        updated[1]["data"]["processing"]["recording"],
        json!({"enabled": true, "duration": null})
    );
    app.put("/api/v1/stream/nope/processing", OP, json!({}))
        .await
        .error(404, "not_found");
}

async fn pending_while_live(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({})).await;
    let id = s["id"].as_str().unwrap();
    let snapshot = serde_json::to_string(&domain::Processing::default()).unwrap();
    app.sql(&format!(
        "INSERT INTO sessions (id, stream_id, started_at, source, processing) \
         VALUES ('sess-1', '{id}', 1, 'rtmp', '{snapshot}')"
    ))
    .await;
    let live = app.get(&format!("/api/v1/stream/{id}"), OP).await;
    assert_eq!(live.body["state"], "live");
    assert_eq!(live.body["processing"]["pending"], false);
    let a = app
        .put(
            &format!("/api/v1/stream/{id}/processing"),
            OP,
            json!({"thumbnail": {"interval": 60}}),
        )
        .await;
    assert_eq!(a.body["processing"]["pending"], true, "{}", a.text);
    assert_eq!(a.body["processing"]["thumbnail"]["interval"], 60);
    // When the session ends, the saved settings simply wait for the next ingest.
    app.sql("UPDATE sessions SET ended_at = 2 WHERE id = 'sess-1'")
        .await;
    let idle = app.get(&format!("/api/v1/stream/{id}"), OP).await;
    assert_eq!(idle.body["state"], "idle");
    assert_eq!(idle.body["processing"]["pending"], false);
}

async fn group_update_syncs_profiles(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({"transcoding": {"profiles": ["480p"]},
               "profileProcessing": {"480p": {"thumbnail": {"enabled": true, "interval": 99}}}}),
    )
    .await;
    let group = s["streamgroup"].as_str().unwrap();
    let a = app
        .put(
            &format!("/api/v1/streamgroup/{group}/processing"),
            OP,
            json!({"replay": {"enabled": true, "duration": 120}}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let streams = a.body["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0]["processing"], streams[1]["processing"]);
    assert_eq!(
        streams[1]["processing"]["replay"],
        json!({"enabled": true, "duration": 120})
    );
    assert_eq!(
        streams[1]["processing"]["thumbnail"]["interval"], 10,
        "synced to passthrough"
    );
    app.put("/api/v1/streamgroup/missing/processing", OP, json!({}))
        .await
        .error(404, "not_found");
    app.put(
        &format!("/api/v1/streamgroup/{group}/processing"),
        OP,
        json!({"replay": {"duration": 0}}),
    )
    .await
    .error(400, "out_of_range");
}

async fn profiles_are_added_and_removed_later(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({"transcoding": {"profiles": ["720p", "360p"]},
               "processing": {"recording": {"enabled": true}}}),
    )
    .await;
    let group = s["streamgroup"].as_str().unwrap();
    let path = format!("/api/v1/streamgroup/{group}/transcoding");
    let all = app.get("/api/v1/streams", OP).await.body;
    let p720 = all["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["streamgroup"] == group && x["profile"] == "720p")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let thumbs = app
        .state
        .engine
        .shared
        .assets
        .root()
        .join("thumbnails")
        .join(&p720);
    std::fs::create_dir_all(&thumbs).unwrap();
    std::fs::write(thumbs.join("1.000.jpg"), b"jpeg").unwrap();
    // 720p goes, 480p comes (with the passthrough stream's settings), 360p stays; ladder order.
    let a = app
        .put(&path, OP, json!({"profiles": ["360p", "480p"]}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!thumbs.exists(), "a dropped profile's files go with it");
    let streams = a.body["streams"].as_array().unwrap();
    let profiles: Vec<_> = streams
        .iter()
        .map(|s| s["profile"].as_str().unwrap())
        .collect();
    assert_eq!(profiles, ["passthrough", "360p", "480p"]);
    assert_eq!(streams[2]["processing"]["recording"]["enabled"], true);
    assert_eq!(streams[2]["processing"]["pending"], false);
    assert_eq!(streams[0]["id"], s["id"], "the passthrough stream stays");
    // Events: the dropped stream deleted, the new one created, the group's profiles updated.
    let deleted = app.events(OP, "stream.deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["streamId"], p720.as_str());
    let created = app.events(OP, "stream.created").await;
    assert_eq!(created.last().unwrap()["streamId"], streams[2]["id"]);
    assert_eq!(created.last().unwrap()["data"]["profile"], "480p");
    let updated = app.events(OP, "stream.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["streamId"], s["id"]);
    assert_eq!(
        updated[0]["data"]["profiles"],
        json!(["passthrough", "360p", "480p"])
    );
    // The passthrough stream offers the group's ABR playlist; profile streams their own only.
    assert_eq!(streams[0]["playout"]["hls"][1]["type"], "abr");
    assert_eq!(streams[1]["playout"]["hls"].as_array().unwrap().len(), 1);
    // Unknown profiles are refused with the known ones named, and nothing changes.
    let m = app
        .put(&path, OP, json!({"profiles": ["4k"]}))
        .await
        .error(400, "unknown_profile");
    assert!(m.contains("1080p") && m.contains("240p"), "{m}");
    app.put(&path, OP, json!({"profiles": ["360p", "360p"]}))
        .await
        .error(400, "duplicate_profile");
    app.put(&path, OP, json!({"profile": []}))
        .await
        .error(400, "invalid_body");
    // No profiles: the group is its passthrough stream alone (no ABR playlist).
    let a = app.put(&path, OP, json!({"profiles": []})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let streams = a.body["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["playout"]["hls"].as_array().unwrap().len(), 1);
    app.put(
        "/api/v1/streamgroup/missing/transcoding",
        OP,
        json!({"profiles": []}),
    )
    .await
    .error(404, "not_found");
    let viewer = app
        .post("/api/v1/keys", OP, json!({"role": "viewer"}))
        .await
        .body["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    app.put(&path, &viewer, json!({"profiles": ["240p"]}))
        .await
        .error(403, "forbidden");
}

async fn list_filters(b: Backend) {
    let app = TestApp::new(b).await;
    let a = create(&app, OP, json!({"name": "a", "tags": ["eu", "auction"]})).await;
    create(&app, OP, json!({"name": "b", "tags": ["us"]})).await;
    let id = a["id"].as_str().unwrap();
    let eu = app.get("/api/v1/streams?tag=eu", OP).await;
    let names: Vec<&str> = eu.body["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    let all = app.get("/api/v1/streams", OP).await;
    assert_eq!(all.body["streams"].as_array().unwrap().len(), 2);
    assert_eq!(all.body["streams"][0]["name"], "b", "newest first");
    app.sql(&format!(
        "INSERT INTO sessions (id, stream_id, started_at, source, processing) VALUES ('s1', '{id}', 1, 'rtmp', '{{}}')"
    ))
    .await;
    let live = app.get("/api/v1/streams?state=live", OP).await;
    assert_eq!(live.body["streams"].as_array().unwrap().len(), 1);
    assert_eq!(live.body["streams"][0]["id"], id);
    let idle = app.get("/api/v1/streams?state=idle", OP).await;
    assert_eq!(idle.body["streams"][0]["name"], "b");
    app.get("/api/v1/streams?state=sleeping", OP)
        .await
        .error(400, "invalid_state");
}

async fn asset_limit_applies(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({"processing": {"thumbnail": {"enabled": true}}}),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    app.sql(&format!(
        "INSERT INTO sessions (id, stream_id, started_at, ended_at, source, processing) VALUES ('s1', '{id}', 1000, 5000, 'rtmp', '{{}}')"
    ))
    .await;
    for i in 0..3 {
        app.sql(&format!(
            "INSERT INTO assets (id, stream_id, session_id, kind, path, created_at, width, height) \
             VALUES ('t{i}', '{id}', 's1', 'thumbnail', '{id}/thumbnail/t{i}.jpg', {}, 1280, 720)",
            2000 + i
        ))
        .await;
    }
    app.sql(&format!(
        "INSERT INTO assets (id, stream_id, session_id, kind, path, created_at, duration_ms, size_bytes, idx) \
         VALUES ('r1', '{id}', 's1', 'recording', '{id}/recording/r1.mp4', 5000, 20000, 1234, 1)"
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO assets (id, stream_id, session_id, kind, path, created_at) \
         VALUES ('p1', '{id}', 's1', 'replay', '{id}/replay/s1/index.m3u8', 1000)"
    ))
    .await;
    let a = app
        .get(&format!("/api/v1/stream/{id}?asset_limit=2"), OP)
        .await;
    let thumbs = a.body["playout"]["thumbnails"].as_array().unwrap();
    assert_eq!(thumbs.len(), 3, "latest + 2 images: {}", a.text);
    assert_eq!(thumbs[0]["type"], "latest");
    assert_eq!(thumbs[1]["type"], "image");
    assert_eq!(
        thumbs[1]["url"],
        format!("http://media.test:8080/assets/{id}/thumbnail/t2.jpg")
    );
    assert_eq!(thumbs[1]["width"], 1280);
    let vod = &a.body["playout"]["web"][1];
    assert_eq!(vod["type"], "vod");
    assert_eq!(vod["duration"], 20.0);
    assert_eq!(vod["sessionId"], "s1");
    assert_eq!(vod["index"], 1);
    let replay = &a.body["playout"]["replay"][0];
    assert_eq!(replay["type"], "session");
    assert_eq!(replay["url"], "http://media.test:8080/replay/s1");
    assert!(time_ok(&replay["startedAt"]) && time_ok(&replay["endedAt"]));
    assert_eq!(a.body["assetCounts"]["thumbnail"], 3);
    let none = app
        .get(&format!("/api/v1/stream/{id}?asset_limit=0"), OP)
        .await;
    assert_eq!(
        none.body["playout"]["thumbnails"].as_array().unwrap().len(),
        1
    );
    app.get(&format!("/api/v1/stream/{id}?asset_limit=-1"), OP)
        .await
        .error(400, "invalid_asset_limit");
    app.get(&format!("/api/v1/stream/{id}?asset_limit=abc"), OP)
        .await
        .error(400, "invalid_asset_limit");
}

async fn delete_stream_and_group(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(
        &app,
        OP,
        json!({"transcoding": {"profiles": ["720p", "360p"]}}),
    )
    .await;
    let group = s["streamgroup"].as_str().unwrap();
    let list = app.get("/api/v1/streams", OP).await;
    let p360 = list.body["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["profile"] == "360p")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = app.delete(&format!("/api/v1/stream/{p360}"), OP).await;
    assert_eq!(a.status, 204);
    app.get(&format!("/api/v1/stream/{p360}"), OP)
        .await
        .error(404, "not_found");
    let g = app
        .put(
            &format!("/api/v1/streamgroup/{group}/processing"),
            OP,
            json!({}),
        )
        .await;
    assert_eq!(g.body["streams"].as_array().unwrap().len(), 2);
    let id = s["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/stream/{id}"), OP).await.status,
        204
    );
    app.get(&format!("/api/v1/stream/{id}"), OP)
        .await
        .error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/streams", OP).await.body["streams"],
        json!([])
    );
    app.delete(&format!("/api/v1/stream/{id}"), OP)
        .await
        .error(404, "not_found");
}

async fn organisations_and_packages(b: Backend) {
    let app = TestApp::new(b).await;
    let org = app.get("/api/v1/organisation", OP).await;
    assert_eq!(
        org.body,
        json!({"id": "default", "name": "default", "packages": {"liveProcessing": "enabled"},
            "retention": {"recordingDays": null, "historyPerSession": 100},
            "assetAccess": {"signedUrls": false, "ttlSeconds": 21600}})
    );
    let made = app
        .post("/api/v1/organisations", OP, json!({"name": "Acme"}))
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let key = made.body["apiKey"].as_str().unwrap().to_string();
    let oid = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(made.body["name"], "Acme");
    let acme = app.get("/api/v1/organisation", &key).await;
    assert_eq!(acme.body["packages"]["liveProcessing"], "upgrade_needed");
    // Without the package: streams yes, processes no.
    let plain = create(&app, &key, json!({})).await;
    let m = app
        .post(
            "/api/v1/stream",
            &key,
            json!({"processing": {"thumbnail": {"enabled": true}}}),
        )
        .await
        .error(403, "upgrade_needed");
    assert!(m.to_lowercase().contains("upgrade"));
    let path = format!(
        "/api/v1/stream/{}/processing",
        plain["id"].as_str().unwrap()
    );
    app.put(&path, &key, json!({"replay": {"enabled": true}}))
        .await
        .error(403, "upgrade_needed");
    // Settings of a disabled process may still be changed.
    assert_eq!(
        app.put(&path, &key, json!({"replay": {"duration": 60}}))
            .await
            .status,
        200
    );
    // Only the operator switches packages and makes organisations.
    app.put(
        &format!("/api/v1/organisations/{oid}/packages"),
        &key,
        json!({"liveProcessing": true}),
    )
    .await
    .error(403, "forbidden");
    app.post("/api/v1/organisations", &key, json!({"name": "x"}))
        .await
        .error(403, "forbidden");
    let on = app
        .put(
            &format!("/api/v1/organisations/{oid}/packages"),
            OP,
            json!({"liveProcessing": true}),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(on.body["packages"]["liveProcessing"], "enabled");
    assert_eq!(
        app.put(&path, &key, json!({"replay": {"enabled": true}}))
            .await
            .status,
        200
    );
    app.put(
        "/api/v1/organisations/missing/packages",
        OP,
        json!({"liveProcessing": true}),
    )
    .await
    .error(404, "not_found");
    app.post("/api/v1/organisations", OP, json!({"name": ""}))
        .await
        .error(400, "invalid_name");
    app.put(
        &format!("/api/v1/organisations/{oid}/packages"),
        OP,
        json!({"liveProcessing": "yes"}),
    )
    .await
    .error(400, "invalid_body");
}

async fn roles_are_enforced(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({})).await;
    let id = s["id"].as_str().unwrap();
    let mut keys = std::collections::HashMap::new();
    for role in ["admin", "editor", "viewer"] {
        let a = app.post("/api/v1/keys", OP, json!({"role": role})).await;
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(a.body["role"], role);
        keys.insert(role, a.body["apiKey"].as_str().unwrap().to_string());
    }
    app.post("/api/v1/keys", OP, json!({"role": "root"}))
        .await
        .error(400, "invalid_role");
    let viewer = &keys["viewer"];
    assert_eq!(
        app.get(&format!("/api/v1/stream/{id}"), viewer)
            .await
            .status,
        200
    );
    assert_eq!(app.get("/api/v1/organisation", viewer).await.status, 200);
    app.put(
        &format!("/api/v1/stream/{id}/processing"),
        viewer,
        json!({}),
    )
    .await
    .error(403, "forbidden");
    app.post("/api/v1/stream", viewer, json!({}))
        .await
        .error(403, "forbidden");
    app.delete(&format!("/api/v1/stream/{id}"), viewer)
        .await
        .error(403, "forbidden");
    app.post("/api/v1/keys", viewer, json!({"role": "viewer"}))
        .await
        .error(403, "forbidden");
    let editor = &keys["editor"];
    assert_eq!(
        app.put(
            &format!("/api/v1/stream/{id}/processing"),
            editor,
            json!({})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.post("/api/v1/stream", editor, json!({})).await.status,
        201
    );
    app.post("/api/v1/keys", editor, json!({"role": "viewer"}))
        .await
        .error(403, "forbidden");
    let admin = &keys["admin"];
    assert_eq!(
        app.post("/api/v1/keys", admin, json!({"role": "viewer"}))
            .await
            .status,
        201
    );
    // An ordinary admin of the operator's organisation is not the operator.
    app.post("/api/v1/organisations", admin, json!({"name": "x"}))
        .await
        .error(403, "forbidden");
}

async fn organisations_are_isolated(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({"tags": ["mine"]})).await;
    let id = s["id"].as_str().unwrap();
    let group = s["streamgroup"].as_str().unwrap();
    let other = app
        .post("/api/v1/organisations", OP, json!({"name": "Other"}))
        .await;
    let key = other.body["apiKey"].as_str().unwrap();
    app.get(&format!("/api/v1/stream/{id}"), key)
        .await
        .error(404, "not_found");
    app.put(&format!("/api/v1/stream/{id}/processing"), key, json!({}))
        .await
        .error(404, "not_found");
    app.put(
        &format!("/api/v1/streamgroup/{group}/processing"),
        key,
        json!({}),
    )
    .await
    .error(404, "not_found");
    app.delete(&format!("/api/v1/stream/{id}"), key)
        .await
        .error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/streams", key).await.body["streams"],
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/streams?tag=mine", key).await.body["streams"],
        json!([])
    );
    assert_eq!(
        app.get(&format!("/api/v1/stream/{id}"), OP).await.status,
        200
    );
}

async fn bad_bodies_and_routes(b: Backend) {
    let app = TestApp::new(b).await;
    let req = axum::http::Request::post("/api/v1/stream")
        .header("x-api-key", OP)
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    app.send(req).await.error(400, "invalid_body");
    app.post("/api/v1/stream", OP, json!({"nmae": "typo"}))
        .await
        .error(400, "invalid_body");
    app.post(
        "/api/v1/stream",
        OP,
        json!({"processing": {"thumbnail": {"interval": "ten"}}}),
    )
    .await
    .error(400, "invalid_body");
    let big = "x".repeat(100 * 1024);
    app.post("/api/v1/stream", OP, json!({"name": big}))
        .await
        .error(413, "invalid_body");
    app.post("/api/v1/stream", OP, json!({"name": "n".repeat(201)}))
        .await
        .error(400, "invalid_name");
    app.post("/api/v1/stream", OP, json!({"tags": [""]}))
        .await
        .error(400, "invalid_tags");
    app.get("/api/v1/nothing", OP).await.error(404, "not_found");
    app.call(Method::PATCH, "/api/v1/streams", Some(OP), None)
        .await
        .error(405, "method_not_allowed");
}

async fn health_metrics_and_openapi(b: Backend) {
    let app = TestApp::new(b).await;
    let h = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(h.status, 200);
    create(&app, OP, json!({})).await;
    app.get("/api/v1/streams", "bad").await;
    let m = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    assert!(m.text.contains("liveproc_streams 1"), "{}", m.text);
    assert!(m.text.contains("liveproc_live_sessions 0"));
    assert!(
        m.text
            .contains("liveproc_api_requests_total{status=\"2xx\"} 1"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("liveproc_api_requests_total{status=\"4xx\"} 1"),
        "{}",
        m.text
    );

    // The OpenAPI document lists every route of the contract, and each documented operation is
    // routed (a call without a key answers 401, never 404 or 405).
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    // A link is exactly {url, type}: the richer entries of the same lists never also match it,
    // so each `oneOf` of those lists picks one schema.
    assert_eq!(
        doc.body["components"]["schemas"]["Link"]["additionalProperties"],
        false
    );
    let expected = [
        ("/api/v1/stream", "post"),
        ("/api/v1/stream/{id}", "get"),
        ("/api/v1/stream/{id}", "delete"),
        ("/api/v1/streams", "get"),
        ("/api/v1/stream/{id}/processing", "put"),
        ("/api/v1/streamgroup/{id}/processing", "put"),
        ("/api/v1/streamgroup/{id}/transcoding", "put"),
        ("/api/v1/organisation", "get"),
        ("/api/v1/organisation/retention", "put"),
        ("/api/v1/organisation/asset-access", "put"),
        ("/api/v1/organisations", "post"),
        ("/api/v1/organisations/{id}/packages", "put"),
        ("/api/v1/keys", "post"),
        ("/api/v1/replay/{session}/clip", "post"),
        ("/api/v1/replay/{session}/clips", "get"),
        ("/api/v1/clip/{id}", "get"),
        ("/api/v1/clip/{id}", "delete"),
        ("/api/v1/streamgroup/{id}", "get"),
        ("/api/v1/stream/{id}/{kind}", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/webhooks", "get"),
        ("/api/v1/webhooks", "post"),
        ("/api/v1/webhooks/{id}", "delete"),
        ("/api/v1/webhooks/{id}/deliveries", "get"),
        ("/api/v1/webhooks/{id}/test", "post"),
        ("/api/v1/webhooks/{id}/deliveries/{delivery}/resend", "post"),
    ];
    for (p, m) in expected {
        assert!(
            paths.get(p).and_then(|o| o.get(m)).is_some(),
            "{m} {p} documented"
        );
    }
    let mut operations = 0;
    for (p, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let uri = p
                .replace("{id}", "some-id")
                .replace("{session}", "some-id")
                .replace("{delivery}", "some-id")
                .replace("{kind}", "thumbnails");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let a = app.call(m, &uri, None, None).await;
            assert_eq!(a.status, 401, "{method} {p} is routed and needs a key");
        }
    }
    assert_eq!(
        operations,
        expected.len(),
        "no undocumented extras, no gaps"
    );
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("StreamView") && schemas.contains_key("ErrorBody"));
}

async fn dashboard_requires_sign_in(b: Backend) {
    let app = TestApp::new(b).await;
    let a = app.call(Method::GET, "/stream/abc", None, None).await;
    assert!(a.status.is_redirection(), "{}", a.status);
    assert_eq!(a.headers["location"], "/login?next=/stream/abc");
    let login = app.call(Method::GET, "/login", None, None).await;
    assert_eq!(login.status, 200);
    assert!(login.text.contains("Sign in to liveproc"), "{}", login.text);
}

async fn recording_retention(b: Backend) {
    let app = TestApp::new(b).await;
    let s = create(&app, OP, json!({})).await;
    let id = s["id"].as_str().unwrap();
    let path = "/api/v1/organisation/retention";
    app.put(path, OP, json!({"recordingDays": 0}))
        .await
        .error(400, "out_of_range");
    let editor = app
        .post("/api/v1/keys", OP, json!({"role": "editor"}))
        .await;
    let editor = editor.body["apiKey"].as_str().unwrap();
    app.put(path, editor, json!({"recordingDays": 3}))
        .await
        .error(403, "forbidden");
    app.put(
        path,
        OP,
        json!({"recordingDays": 7, "historyPerSession": 0}),
    )
    .await
    .error(400, "out_of_range");
    let a = app
        .put(
            path,
            OP,
            json!({"recordingDays": 7, "historyPerSession": 20}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["retention"]["recordingDays"], 7);
    assert_eq!(a.body["retention"]["historyPerSession"], 20);
    assert_eq!(
        app.get("/api/v1/organisation", OP).await.body["retention"]["recordingDays"],
        7
    );

    // A finished recording on disk, swept at "now" plus six days (kept) and plus eight (gone).
    let store = &app.state.services.store;
    let assets = app.state.engine.shared.assets.root();
    let rel = format!("recordings/{id}/old.mp4");
    std::fs::create_dir_all(assets.join(format!("recordings/{id}"))).unwrap();
    std::fs::write(assets.join(&rel), b"not really an mp4").unwrap();
    let asset = store
        .insert_asset(&domain::store::NewAsset {
            stream_id: id.to_string(),
            session_id: None,
            kind: domain::AssetKind::Recording,
            path: rel.clone(),
            index: 1,
            width: None,
            height: None,
        })
        .await
        .unwrap();
    store
        .finish_asset(&asset, Some(1000), 17, "ready")
        .await
        .unwrap();
    let vods = |v: &Value| {
        v["playout"]["web"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["type"] == "vod")
            .count()
    };
    assert_eq!(
        vods(&app.get(&format!("/api/v1/stream/{id}"), OP).await.body),
        1
    );
    let day = 86_400_000;
    let now = domain::store::now_ms();
    let swept = liveproc::retention::sweep(store, assets, now + 6 * day)
        .await
        .unwrap();
    assert_eq!(swept, 0);
    assert!(assets.join(&rel).exists());
    let swept = liveproc::retention::sweep(store, assets, now + 8 * day)
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert!(!assets.join(&rel).exists());
    let deleted = app.events(OP, "asset.deleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["streamId"], id);
    assert_eq!(
        (&deleted[0]["data"]["id"], &deleted[0]["data"]["kind"]),
        (&json!(asset), &json!("recording"))
    );
    assert_eq!(deleted[0]["data"]["reason"], "retention");
    assert_eq!(
        vods(&app.get(&format!("/api/v1/stream/{id}"), OP).await.body),
        0
    );

    // null keeps recordings for ever.
    let a = app.put(path, OP, json!({"recordingDays": null})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["retention"]["recordingDays"], Value::Null);
}

/// The event log is per organisation, in commit order, and an endpoint is created for the
/// caller's organisation only.
async fn events_and_webhooks_are_per_organisation(b: Backend) {
    let app = TestApp::new(b).await;
    let other = other_organisation(&app).await;
    let mine = create(&app, OP, json!({"name": "mine"})).await;
    let theirs = create(&app, &other, json!({"name": "theirs"})).await;
    let a = app.get("/api/v1/events", OP).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let events = a.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", a.text);
    assert_eq!(events[0]["type"], "stream.created");
    assert_eq!(events[0]["streamId"], mine["id"]);
    assert_eq!(events[0]["data"]["name"], "mine");
    let b_events = app.get("/api/v1/events", &other).await.body;
    assert_eq!(b_events["events"].as_array().unwrap().len(), 1);
    assert_eq!(b_events["events"][0]["streamId"], theirs["id"]);
    // Deleting is an event too, after the creation (seq grows).
    let id = mine["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/stream/{id}"), OP).await.status,
        204
    );
    let after = a.body["next"].as_i64().unwrap();
    let more = app
        .get(&format!("/api/v1/events?after={after}"), OP)
        .await
        .body;
    assert_eq!(more["events"][0]["type"], "stream.deleted");
    assert!(more["events"][0]["seq"].as_i64() > Some(after));
    app.get("/api/v1/events?after=x", OP)
        .await
        .error(400, "invalid_after");
    // Another organisation's endpoint is not found.
    let hook = app
        .post(
            "/api/v1/webhooks",
            OP,
            json!({"url": "http://93.184.216.34/hook", "events": ["recording.ready"]}),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    assert!(hook.body["secret"].as_str().unwrap().len() >= 32);
    let hook_id = hook.body["id"].as_str().unwrap();
    app.get(&format!("/api/v1/webhooks/{hook_id}/deliveries"), &other)
        .await
        .error(404, "not_found");
    app.delete(&format!("/api/v1/webhooks/{hook_id}"), &other)
        .await
        .error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/webhooks", &other).await.body["webhooks"],
        json!([])
    );
    assert_eq!(
        app.delete(&format!("/api/v1/webhooks/{hook_id}"), OP)
            .await
            .status,
        204
    );
}

/// Endpoints that would let a caller reach inside the network, or that cannot be verified,
/// are refused with a clear error.
async fn webhook_endpoints_are_checked(b: Backend) {
    let app = TestApp::new(b).await;
    let refused = |body: Value, code: &'static str, says: &'static str| {
        let app = &app;
        async move {
            let a = app.post("/api/v1/webhooks", OP, body).await;
            a.error(400, code);
            assert!(a.text.contains(says), "{}", a.text);
        }
    };
    refused(
        json!({"url": "http://169.254.169.254/latest/meta-data"}),
        "invalid_url",
        "link-local",
    )
    .await;
    refused(
        json!({"url": "http://[fe80::1]/x"}),
        "invalid_url",
        "link-local",
    )
    .await;
    // This server does not allow loopback or private endpoints (the flag is off).
    refused(
        json!({"url": "http://127.0.0.1:9/x"}),
        "invalid_url",
        "loopback or private",
    )
    .await;
    refused(
        json!({"url": "http://10.0.0.8/x"}),
        "invalid_url",
        "loopback or private",
    )
    .await;
    refused(
        json!({"url": "ftp://93.184.216.34/x"}),
        "invalid_url",
        "http or https",
    )
    .await;
    refused(
        json!({"url": "http://user:pw@93.184.216.34/x"}),
        "invalid_url",
        "credentials",
    )
    .await;
    refused(json!({"url": "not a url"}), "invalid_url", "url").await;
    refused(
        json!({"url": "http://93.184.216.34/x", "secret": "short"}),
        "invalid_secret",
        "32 bytes",
    )
    .await;
    refused(
        json!({"url": "http://93.184.216.34/x", "events": ["recording.done"]}),
        "invalid_event_type",
        "recording.done",
    )
    .await;
    let a = app
        .post(
            "/api/v1/webhooks",
            OP,
            json!({"url": "http://93.184.216.34/x", "extra": 1}),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
}

/// Reads a server-sent event stream until its text holds `what`, or `within` passes.
async fn sse_until(
    body: &mut (impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin),
    seen: &mut String,
    what: &str,
    within: std::time::Duration,
) -> bool {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + within;
    while !seen.contains(what) {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return false,
        }
    }
    true
}

/// `GET /api/v1/events/stream` pushes the organisation's events as they happen (and none of
/// another organisation's), and replays from a cursor.
async fn event_stream_is_live_and_per_organisation(b: Backend) {
    use tower::ServiceExt;
    let app = TestApp::new(b).await;
    let other = other_organisation(&app).await;
    let open = |key: String, query: &'static str| {
        let router = app.router.clone();
        async move {
            let req = axum::http::Request::get(format!("/api/v1/events/stream{query}"))
                .header("X-API-Key", key)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "text/event-stream");
            res.into_body().into_data_stream()
        }
    };
    let mut mine = open(OP.to_string(), "").await;
    let mut theirs = open(other.clone(), "").await;
    let made = create(&app, OP, json!({"name": "pushed"})).await;
    let id = made["id"].as_str().unwrap();
    let (mut seen, mut seen_other) = (String::new(), String::new());
    let wait = std::time::Duration::from_secs(5);
    assert!(sse_until(&mut mine, &mut seen, id, wait).await, "{seen}");
    assert!(seen.contains("event: stream.created"), "{seen}");
    let short = std::time::Duration::from_millis(1500);
    assert!(
        !sse_until(&mut theirs, &mut seen_other, id, short).await,
        "{seen_other}"
    );
    // From a cursor: history first.
    let mut replay = open(OP.to_string(), "?after=0").await;
    let mut again = String::new();
    assert!(
        sse_until(&mut replay, &mut again, id, wait).await,
        "{again}"
    );
    let a = app
        .call(Method::GET, "/api/v1/events/stream", None, None)
        .await;
    assert_eq!(a.status, 401);
}
