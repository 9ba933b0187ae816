//! liveproc's server: configuration, the HTTP site and (later) the media engine.

pub mod alloc;
pub mod bench;
pub mod check;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod live_media;
pub mod media;
pub mod metrics;
pub mod retention;
pub mod webhooks;

use std::sync::Arc;

/// In the library so the server, its tests and the fuzz targets all run on it.
#[global_allocator]
static ALLOCATOR: alloc::LazyLarge = alloc::LazyLarge;

use anyhow::Context;
use domain::services::Services;
use domain::store::{Store, Urls};
use leptos::config::LeptosOptions;

use crate::config::Config;
use crate::http::AppState;

/// Connects the store, ensures the operator's organisation and builds the app state.
pub async fn prepare(cfg: &Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&cfg.data)
        .with_context(|| format!("creating the data folder {}", cfg.data.display()))?;
    let url = cfg.database_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening the database ({})", redact(&url)))?;
    store.set_public_url(&cfg.public_url());
    match &cfg.admin_key {
        Some(key) => store.ensure_operator(key).await?,
        None if !store.has_operator().await? => {
            let key = domain::store::new_operator_key();
            store.ensure_operator(&key).await?;
            // Printed once: the store keeps only its hash.
            println!("liveproc: operator API key (shown once, keep it): {key}");
        }
        None => {}
    }
    let closed = store.close_open_sessions().await?;
    if closed > 0 {
        tracing::warn!(
            sessions = closed,
            "closed sessions left open by an earlier stop"
        );
    }
    let assets = cfg.data.join("assets");
    recover_assets(&store, &assets).await?;
    // Nothing is live yet: every file without a row is an orphan, whatever its age.
    check::run(
        &store,
        &assets,
        &cfg.data.join("lost+found"),
        true,
        std::time::Duration::ZERO,
    )
    .await?;
    let engine = media::Engine::new(media::Shared::new(store.clone(), assets));
    if let Some(max) = cfg.max_transcodes {
        engine.transcode_capacity.set_max(max);
    }
    let rtsp = Arc::new(media::ingest::rtsp::Supervisor::default());
    let media_side = live_media::MediaSide {
        engine: engine.clone(),
        rtsp: rtsp.clone(),
    };
    Ok(AppState {
        leptos_options: leptos_options(cfg),
        services: Services {
            store,
            media: Arc::new(media_side),
            urls: Urls {
                public: cfg.public_url(),
                rtmp: cfg.rtmp_url(),
                rtmps: cfg.rtmps_url(),
                srt: cfg.srt_url(),
            },
            auth_failures: Arc::new(domain::auth_failures::AuthFailures::new(
                cfg.auth_failures_per_minute,
                std::time::Duration::from_secs(60),
            )),
            webhooks: webhooks::Policy {
                allow_private: cfg.webhooks_allow_private,
                retry_ms: cfg.webhook_retry_ms.max(1),
            },
        },
        metrics: Arc::new(metrics::Metrics::default()),
        engine,
        rtsp,
    })
}

/// `liveproc check [--fix]`: the consistency check against a data folder and database that a
/// server may be using at the same time (files younger than `grace` are left alone). Fails
/// when it finds something and was not asked to fix it.
pub async fn check(cfg: &Config, fix: bool, grace: std::time::Duration) -> anyhow::Result<()> {
    let url = cfg.database_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening the database ({})", redact(&url)))?;
    let report = check::run(
        &store,
        &cfg.data.join("assets"),
        &cfg.data.join("lost+found"),
        fix,
        grace,
    )
    .await?;
    store.close().await;
    for (kind, id, path) in &report.missing {
        println!("missing {kind} {id} {path}");
    }
    for path in &report.orphans {
        println!("orphan {path}");
    }
    println!(
        "check: {} rows without their file, {} files without a row{}",
        report.missing.len(),
        report.orphans.len(),
        if report.is_clean() {
            ""
        } else if fix {
            "; fixed (orphans moved to lost+found)"
        } else {
            "; run `liveproc check --fix` to repair"
        }
    );
    if !report.is_clean() && !fix {
        anyhow::bail!("the database and the data folder disagree");
    }
    Ok(())
}

/// Files a crash left half-written stay: playable ones become `ready` (a fragmented MP4 is
/// valid up to its last complete fragment), empty or missing ones `failed`.
async fn recover_assets(store: &Store, assets: &std::path::Path) -> anyhow::Result<()> {
    for (id, path) in store.writing_assets().await? {
        let file = assets.join(&path);
        if path.ends_with(".m3u8") {
            // A replay playlist: what is on disk stays; it just never got its end.
            let mut text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
            let status = if text.contains("#EXTINF") {
                "ready"
            } else {
                "failed"
            };
            if !text.contains("#EXT-X-ENDLIST") && !text.is_empty() {
                text.push_str("#EXT-X-ENDLIST\n");
                tokio::fs::write(&file, &text).await?;
            }
            store.finish_asset(&id, None, 0, status).await?;
            continue;
        }
        let (duration, size) = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&file)?;
            let size = f.metadata()?.len();
            Ok::<_, std::io::Error>((media::mux::fmp4::file_duration_seconds(&mut f)?, size))
        })
        .await?
        .unwrap_or((None, 0));
        let duration_ms = duration.map(|s| (s * 1000.0).round() as i64);
        let status = if duration_ms.is_some_and(|d| d > 0) {
            "ready"
        } else {
            "failed"
        };
        store
            .finish_asset(&id, duration_ms, size as i64, status)
            .await?;
        tracing::warn!(asset = %id, path, status, "recovered a file left open by an earlier stop");
    }
    Ok(())
}

/// Leptos's options come from cargo-leptos's environment when it runs us, else from defaults
/// that match `[[workspace.metadata.leptos]]`.
fn leptos_options(cfg: &Config) -> LeptosOptions {
    let from_cargo_leptos = option_env!("LEPTOS_OUTPUT_NAME").is_some()
        || std::env::var_os("LEPTOS_OUTPUT_NAME").is_some();
    let mut options = if from_cargo_leptos {
        leptos::config::get_configuration(None)
            .map(|c| c.leptos_options)
            .ok()
    } else {
        None
    }
    .unwrap_or_else(|| LeptosOptions::builder().output_name("liveproc").build());
    options.site_addr = cfg.http;
    options
}

/// Database URLs may carry a password; logs get the scheme and host only.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A bound server: its listeners are open (so tests can ask for port 0 and read the port).
pub struct Server {
    pub http: std::net::SocketAddr,
    pub rtmp: std::net::SocketAddr,
    state: AppState,
    http_listener: tokio::net::TcpListener,
    rtmp_listener: tokio::net::TcpListener,
    rtmps: Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    /// The SRT listener's address and receive latency, when on.
    srt: Option<(std::net::SocketAddr, std::time::Duration)>,
    rtmp_limits: media::ingest::rtmp::Limits,
}

impl Server {
    pub async fn bind(cfg: &Config) -> anyhow::Result<Server> {
        let state = prepare(cfg).await?;
        let http_listener = tokio::net::TcpListener::bind(cfg.http)
            .await
            .with_context(|| format!("binding the HTTP listener {}", cfg.http))?;
        let rtmp_listener = tokio::net::TcpListener::bind(cfg.rtmp)
            .await
            .with_context(|| format!("binding the RTMP listener {}", cfg.rtmp))?;
        let rtmps = match (cfg.rtmps, &cfg.rtmps_cert, &cfg.rtmps_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let tls = media::ingest::rtmp::tls_acceptor(cert, key)?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the RTMPS listener {addr}"))?;
                Some((listener, tls))
            }
            _ => None,
        };
        Ok(Server {
            http: http_listener.local_addr()?,
            rtmp: rtmp_listener.local_addr()?,
            state,
            http_listener,
            rtmp_listener,
            rtmps,
            srt: cfg
                .srt
                .map(|a| (a, std::time::Duration::from_millis(cfg.srt_latency_ms))),
            rtmp_limits: media::ingest::rtmp::Limits {
                total: cfg.rtmp_max_connections,
                waiting_per_ip: cfg.rtmp_max_waiting_per_ip,
            },
        })
    }

    /// The state the site runs on (tests drive the API through it while ingest uses sockets).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then ends live sessions and closes the store.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.services.store.clone();
        let engine = self.state.engine.clone();
        tracing::info!(http = %self.http, rtmp = %self.rtmp, public = %self.state.services.urls.public,
            database = store.backend(), "liveproc listening");
        let rtmp = tokio::spawn(media::ingest::rtmp::serve(
            self.rtmp_listener,
            self.rtmps,
            engine.clone(),
            self.rtmp_limits,
        ));
        let rtsp = tokio::spawn(self.state.rtsp.clone().run(engine.clone()));
        let srt = self.srt.map(|(addr, latency)| {
            tokio::spawn(media::ingest::srt::serve(addr, latency, engine.clone()))
        });
        let assets = engine.shared.assets.root().to_path_buf();
        let retention = tokio::spawn(retention::run(store.clone(), assets));
        let webhooks = tokio::spawn(webhooks::run(store.clone(), self.state.services.webhooks));
        // The peer's address reaches handlers (as `ConnectInfo`) for the auth failure limit.
        let site =
            http::router(self.state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(self.http_listener, site)
            .with_graceful_shutdown(shutdown)
            .await?;
        rtmp.abort();
        rtsp.abort();
        if let Some(srt) = srt {
            srt.abort();
        }
        retention.abort();
        engine.stop_all("server stopped").await;
        webhooks.abort();
        store.close().await;
        tracing::info!("liveproc stopped");
        Ok(())
    }
}

/// Serves until SIGINT/SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    Server::bind(&cfg).await?.run(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@db:5432/x"),
            "postgres://…@db:5432/x"
        );
        assert_eq!(super::redact("sqlite://data/a.db"), "sqlite://data/a.db");
    }
}
