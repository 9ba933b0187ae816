//! `liveproc bench --events`: how fast events reach webhooks, and how many the outbox takes.
//!
//! - **Webhook latency**: a liveproc server process with N live streams and every process on,
//!   one endpoint for every event type at a receiver in this process; per event, the time from
//!   its row being written (its `createdAt`, in the transaction that made the asset `ready`) to
//!   the receiver reading the request.
//! - **Outbox throughput**: writers add events through the store (each in its own transaction
//!   with a delivery row per endpoint, as the server does) for a few seconds, on SQLite and on
//!   PostgreSQL; then the server's dispatcher delivers them all to the receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use super::media::{read_flv, test_clip};
use super::streams::{http, measure_liveproc, Server, StreamFigures};
use super::BenchArgs;
use domain::store::events::NewEvent;
use domain::store::{now_ms, Store};

#[derive(Debug, Serialize)]
pub struct EventFigures {
    pub webhooks: Option<WebhookFigures>,
    pub outbox: Vec<OutboxFigures>,
}

#[derive(Debug, Serialize)]
pub struct WebhookFigures {
    pub streams: usize,
    pub seconds: u32,
    pub events: usize,
    /// Written → received, ms, over every event.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// The same per event type: (type, count, p50, p95).
    pub by_type: Vec<(String, usize, f64, f64)>,
    /// The server's figures for the same run (CPU, skipped motion clips, …).
    pub server: StreamFigures,
}

#[derive(Debug, Serialize)]
pub struct OutboxFigures {
    pub backend: String,
    pub writers: usize,
    pub endpoints: usize,
    pub events: u64,
    pub events_per_s: f64,
    /// Deliveries made per second by the dispatcher draining what the writers wrote.
    pub delivered_per_s: f64,
}

/// What the receiver got: arrival (ms since the epoch) and the body.
type Received = Arc<Mutex<Vec<(i64, Value)>>>;

/// An HTTP receiver on a free loopback port that answers 200 to every POST.
async fn receiver() -> anyhow::Result<(SocketAddr, Received)> {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let at = now_ms();
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    sink.lock().expect("received").push((at, v));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, got))
}

fn created_ms(e: &Value) -> Option<i64> {
    let t = time::OffsetDateTime::parse(
        e["createdAt"].as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<EventFigures> {
    let webhooks = if args.no_webhooks {
        None
    } else {
        Some(webhook_latency(args).await?)
    };
    let mut outbox = vec![outbox("sqlite", None).await?];
    match &args.postgres {
        Some(url) => outbox.push(outbox_on_postgres(url).await?),
        None => eprintln!("bench: no --postgres URL; the outbox is measured on SQLite only"),
    }
    Ok(EventFigures { webhooks, outbox })
}

async fn webhook_latency(args: &BenchArgs) -> anyhow::Result<WebhookFigures> {
    let tags = read_flv(&test_clip(&args.cache, args.size(), 60)?)?;
    let (addr, got) = receiver().await?;
    let mut server = Server::start(&["--webhooks-allow-private"])?;
    let result = async {
        let started = Instant::now();
        while http(server.http, "GET", "/healthz", None).await.is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the liveproc server did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = json!({"url": format!("http://{addr}/hook"), "events": ["*"]});
        let (status, text) = http(server.http, "POST", "/api/v1/webhooks", Some(&body)).await?;
        if status != 201 {
            bail!("creating the endpoint: {status} {text}");
        }
        let all = ["thumbnail", "motionclip", "recording", "replay"].map(String::from);
        let run = BenchArgs {
            processes: all.to_vec(),
            ..args.clone()
        };
        let figures = measure_liveproc(&run, &tags, &server).await?;
        // Every session's last events (and whatever was still queued) arrive.
        let deadline = Instant::now() + Duration::from_secs(30);
        let ended = |got: &Received| {
            got.lock()
                .expect("received")
                .iter()
                .filter(|(_, e)| e["type"] == "stream.idle")
                .count()
        };
        while ended(&got) < args.streams && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(figures)
    }
    .await;
    server.stop();
    let server_figures = result?;
    let got = got.lock().expect("received").clone();
    let mut all = Vec::new();
    let mut by_type: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for (at, e) in &got {
        let Some(created) = created_ms(e) else {
            continue;
        };
        let ms = (at - created) as f64;
        all.push(ms);
        let kind = e["type"].as_str().unwrap_or("?").to_string();
        by_type.entry(kind).or_default().push(ms);
    }
    if all.is_empty() {
        bail!("the receiver got no events");
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let all = sorted(all);
    Ok(WebhookFigures {
        streams: args.streams,
        seconds: args.seconds,
        events: all.len(),
        p50_ms: super::percentile(&all, 0.5),
        p95_ms: super::percentile(&all, 0.95),
        max_ms: *all.last().expect("not empty"),
        by_type: by_type
            .into_iter()
            .map(|(k, v)| {
                let v = sorted(v);
                let (p50, p95) = (super::percentile(&v, 0.5), super::percentile(&v, 0.95));
                (k, v.len(), p50, p95)
            })
            .collect(),
        server: server_figures,
    })
}

/// A fresh database on the PostgreSQL server of `admin` (dropped afterwards).
async fn outbox_on_postgres(admin: &str) -> anyhow::Result<OutboxFigures> {
    use sqlx::Connection;
    let name = format!("liveproc_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .context("connecting to --postgres")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let (base, _) = admin
        .rsplit_once('/')
        .context("--postgres needs a database name")?;
    let result = outbox("postgresql", Some(format!("{base}/{name}"))).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    result
}

/// Writers add events for a few seconds, each with a delivery per endpoint; then the
/// dispatcher sends them all to the receiver.
async fn outbox(backend: &str, url: Option<String>) -> anyhow::Result<OutboxFigures> {
    const WRITERS: usize = 8;
    const ENDPOINTS: usize = 2;
    const SECONDS: f64 = 5.0;
    let dir = std::env::temp_dir().join(format!("liveproc-outbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = url.unwrap_or_else(|| format!("sqlite://{}/liveproc.db", dir.display()));
    let store = Store::connect(&url).await?;
    let key = "bench-outbox-key-0123456789abcdef01";
    store.ensure_operator(key).await?;
    let p = store.authenticate(key).await?.context("the operator key")?;
    let urls = domain::store::Urls {
        public: "http://127.0.0.1".into(),
        rtmp: "rtmp://127.0.0.1".into(),
        rtmps: None,
        srt: None,
    };
    let mut streams = Vec::new();
    for i in 0..WRITERS {
        let req: domain::view::CreateStream =
            serde_json::from_value(json!({"name": format!("s{i}")}))?;
        streams.push(store.create_stream(&p, &req, &urls).await?.id);
    }
    let (addr, got) = receiver().await?;
    for _ in 0..ENDPOINTS {
        let req: domain::view::CreateWebhook =
            serde_json::from_value(json!({"url": format!("http://{addr}/hook")}))?;
        store.create_webhook(&p, &req).await?;
    }
    let before = got.lock().expect("received").len();
    let start = Instant::now();
    let mut writers = Vec::new();
    for stream in streams {
        let (store, organisation) = (store.clone(), p.organisation_id.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < SECONDS {
                let event = NewEvent {
                    kind: "thumbnail.created",
                    organisation_id: &organisation,
                    stream_id: Some(&stream),
                    session_id: None,
                    data: json!({"streamId": stream, "n": n}),
                };
                store.add_event(event).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut events = 0;
    for w in writers {
        events += w.await??;
    }
    let wrote = start.elapsed().as_secs_f64();
    let drain = Instant::now();
    let policy = domain::webhook_policy::Policy {
        allow_private: true,
        retry_ms: 1000,
    };
    let dispatcher = tokio::spawn(crate::webhooks::run(store.clone(), policy));
    let want = before + events as usize * ENDPOINTS;
    let deadline = Instant::now() + Duration::from_secs(600);
    while got.lock().expect("received").len() < want {
        if Instant::now() > deadline {
            bail!("the dispatcher did not deliver every event within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = drain.elapsed().as_secs_f64();
    dispatcher.abort();
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(OutboxFigures {
        backend: backend.to_string(),
        writers: WRITERS,
        endpoints: ENDPOINTS,
        events,
        events_per_s: events as f64 / wrote,
        delivered_per_s: (events as usize * ENDPOINTS) as f64 / drained,
    })
}
