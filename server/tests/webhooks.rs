//! Webhooks with a real HTTP receiver (Python's http.server, checking signatures with its own
//! hmac) and a real publisher (ffmpeg): every event arrives signed, once after de-duplication,
//! in order per stream, also to an endpoint that was down for 30 s and then slow; that endpoint
//! holds up no other. The events API gives the same events to a client that reads them later.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::media::*;
use common::{until, Running, OPERATOR_KEY as OP};
use serde_json::{json, Value};

const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A receiver on `port` writing to `out`, answering after `delay` seconds.
struct Receiver(Child);

impl Receiver {
    fn start(port: u16, out: &Path, delay: f64) -> Receiver {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .arg(SECRET)
            .arg(delay.to_string())
            .spawn()
            .expect("python3");
        // Listening once it accepts a connection.
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "receiver up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Receiver(child)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn received(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn webhook(r: &Running, port: u16, events: Value) -> Value {
    let a = r
        .app
        .post(
            "/api/v1/webhooks",
            OP,
            json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": SECRET, "events": events}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

/// Waits until `out` holds an event of each of `types`.
async fn until_received(out: &Path, types: &[&str], within: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let got = received(out);
        let kinds: HashSet<&str> = got.iter().filter_map(|l| l["type"].as_str()).collect();
        if types.iter().all(|t| kinds.contains(t)) {
            return got;
        }
        assert!(
            start.elapsed() < within,
            "waiting for {types:?}, got {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds from an event's creation to its arrival at the receiver.
fn lag(l: &Value) -> f64 {
    let created = time::OffsetDateTime::parse(
        l["body"]["createdAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    l["at"].as_f64().unwrap() - created.unix_timestamp_nanos() as f64 / 1e9
}

/// The ids received, asserting that after de-duplication by id each stream's events came in
/// order (retries may repeat one: at least once).
fn once_in_order(got: &[Value]) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    for l in got {
        if !seen.insert(l["id"].as_str().unwrap().to_string()) {
            continue;
        }
        let e = &l["body"];
        assert_eq!(e["id"], l["id"]);
        let lane = e["streamId"].as_str().unwrap_or("").to_string();
        let seq = e["seq"].as_i64().unwrap();
        let before = last_seq.insert(lane, seq).unwrap_or(0);
        assert!(seq > before, "in order per stream: {got:?}");
    }
    seen
}

#[tokio::test]
async fn every_event_arrives_signed_once_in_order_and_a_slow_endpoint_delays_no_other() {
    let r = Running::start_with(&["--webhooks-allow-private", "--webhook-retry-ms", "100"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (steady_out, flaky_out): (PathBuf, PathBuf) = (
        dir.path().join("steady.jsonl"),
        dir.path().join("flaky.jsonl"),
    );
    let (steady_port, flaky_port) = (free_port(), free_port());
    let steady = webhook(&r, steady_port, json!(["*"])).await;
    assert_eq!(steady["events"], json!(["*"]));
    assert!(steady.get("secret").is_some(), "the secret is shown once");
    let listed = r.app.get("/api/v1/webhooks", OP).await;
    assert!(
        listed.body["webhooks"][0].get("secret").is_none(),
        "{}",
        listed.text
    );
    let flaky = webhook(&r, flaky_port, json!(["*"])).await;
    // The steady endpoint answers at once all along; the flaky one is down for 30 s
    // (connection refused), then answers after 5 s each, then at once.
    let _steady = Receiver::start(steady_port, &steady_out, 0.0);
    let down_since = Instant::now();

    let (id, name) = create(&r).await;
    set_processing(
        &r,
        &id,
        json!({"thumbnail": {"enabled": true, "interval": 10},
               "motionclip": {"enabled": true, "duration": 2, "interval": 10},
               "recording": {"enabled": true}, "replay": {"enabled": true}}),
    )
    .await;
    publish_all(&r, "live", &name, 20).await;
    until(&r, &id, "idle", |s| s["state"] == "idle").await;
    let types = [
        "stream.created",
        "stream.updated",
        "stream.live",
        "thumbnail.created",
        "motionclip.created",
        "recording.ready",
        "replay.ready",
        "session.ended",
        "stream.idle",
    ];
    let got = until_received(&steady_out, &types, Duration::from_secs(20)).await;
    // Every event reached the steady endpoint within two seconds of happening, while the
    // flaky one refused connections: one endpoint holds up no other.
    for l in &got {
        let lag = lag(l);
        assert!(
            lag < 2.0,
            "{} arrived {lag:.2} s after it happened",
            l["type"]
        );
    }
    // Meanwhile the flaky endpoint's first delivery waits, retried with back-off.
    let hook = flaky["id"].as_str().unwrap().to_string();
    let log = r
        .app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries"), OP)
        .await;
    let deliveries = log.body["deliveries"].as_array().unwrap();
    let first = deliveries.last().unwrap();
    assert_eq!(first["eventType"], "stream.created", "{}", log.text);
    assert_eq!(first["state"], "pending", "{first}");
    assert_eq!(first["lastError"], "could not connect", "{first}");
    assert!(first["attempts"].as_i64() >= Some(5), "{first}");
    assert!(first["nextAttemptAt"].is_string(), "{first}");
    assert!(deliveries.iter().all(|d| d["state"] == "pending"));
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_since.elapsed())).await;
    // Slow: two answers of 5 s each.
    {
        let _slow = Receiver::start(flaky_port, &flaky_out, 5.0);
        let start = Instant::now();
        while received(&flaky_out).len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(90), "slow deliveries");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _flaky = Receiver::start(flaky_port, &flaky_out, 0.0);
    let flaky_got = until_received(&flaky_out, &types, Duration::from_secs(30)).await;

    for got in [&got, &flaky_got] {
        assert!(
            got.iter().all(|l| l["valid"] == true),
            "signatures: {got:?}"
        );
    }
    let steady_ids = once_in_order(&got);
    let recording = got.iter().find(|l| l["type"] == "recording.ready").unwrap();
    assert_eq!(recording["body"]["data"]["status"], "ready");
    assert_eq!(recording["body"]["streamId"], id.as_str());
    let url = recording["body"]["data"]["url"].as_str().unwrap();
    assert_eq!(
        get(&r, &asset_path(url)).await.0,
        200,
        "the event's URL serves"
    );
    let ended = got.iter().find(|l| l["type"] == "session.ended").unwrap();
    assert!(ended["body"]["data"]["endedAt"].is_string(), "{ended}");

    // The events API lists the same events for a client that reads later, and the flaky
    // endpoint got every one of them too: nothing lost.
    let page = r.app.get("/api/v1/events?after=0&limit=1000", OP).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let listed: HashSet<String> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed, steady_ids,
        "the API and the webhook carry the same events"
    );
    let start = Instant::now();
    while once_in_order(&received(&flaky_out)) != listed {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the flaky endpoint catches up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let next = page.body["next"].as_i64().unwrap();
    let rest = r.app.get(&format!("/api/v1/events?after={next}"), OP).await;
    assert_eq!(rest.body["events"], json!([]));
    let hook = steady["id"].as_str().unwrap().to_string();

    // A test event and a resend show in the delivery log.
    let a = r
        .app
        .post(&format!("/api/v1/webhooks/{hook}/test"), OP, json!({}))
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    until_received(&steady_out, &["webhook.test"], Duration::from_secs(10)).await;
    let log = r
        .app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries"), OP)
        .await;
    let first = log.body["deliveries"][0].clone();
    assert_eq!(first["eventType"], "webhook.test");
    assert_eq!(first["state"], "delivered");
    assert_eq!(first["lastStatus"], 200);
    let before = received(&steady_out).len();
    let a = r
        .app
        .post(
            &format!(
                "/api/v1/webhooks/{hook}/deliveries/{}/resend",
                first["id"].as_str().unwrap()
            ),
            OP,
            json!({}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let start = Instant::now();
    while received(&steady_out).len() == before {
        assert!(start.elapsed() < Duration::from_secs(10), "resent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        received(&steady_out).last().unwrap()["id"],
        first["eventId"]
    );
    r.stop().await;
}

/// The real binary, killed with SIGKILL while a delivery is pending: after the restart the
/// delivery goes out (its state is a row, not memory).
#[tokio::test]
async fn pending_deliveries_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.jsonl");
    let (http, rtmp, hook_port) = (free_port(), free_port(), free_port());
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_liveproc"))
            .arg("--data")
            .arg(data.path())
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--rtmp", &format!("127.0.0.1:{rtmp}")])
            .args(["--admin-key", OP, "--webhooks-allow-private"])
            .args(["--webhook-retry-ms", "100"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let up = || async {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", http))
            .await
            .is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(20), "server listens");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{http}/api/v1");
    let mut server = spawn();
    up().await;
    let hook: Value = client
        .post(format!("{api}/webhooks"))
        .header("X-API-Key", OP)
        .json(&json!({"url": format!("http://127.0.0.1:{hook_port}/"), "secret": SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hook = hook["id"].as_str().unwrap().to_string();
    let stream: Value = client
        .post(format!("{api}/stream"))
        .header("X-API-Key", OP)
        .json(&json!({"name": "survivor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = || async {
        let v: Value = client
            .get(format!("{api}/webhooks/{hook}/deliveries"))
            .header("X-API-Key", OP)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["deliveries"][0].clone()
    };
    let start = Instant::now();
    while log().await["attempts"].as_i64() < Some(1) {
        assert!(start.elapsed() < Duration::from_secs(10), "attempted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(log().await["state"], "pending");
    server.kill().unwrap();
    server.wait().unwrap();

    let _receiver = Receiver::start(hook_port, &out, 0.0);
    let mut server = spawn();
    up().await;
    let got = until_received(&out, &["stream.created"], Duration::from_secs(20)).await;
    assert_eq!(got[0]["valid"], true);
    assert_eq!(got[0]["body"]["streamId"], stream["id"]);
    let start = Instant::now();
    while log().await["state"] != "delivered" {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", log().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
