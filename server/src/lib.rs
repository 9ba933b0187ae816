//! liveproc's server: configuration, the HTTP site and (later) the media engine.

pub mod config;
pub mod http;
pub mod metrics;

use std::sync::Arc;

use anyhow::Context;
use domain::store::{Services, Store, Urls};
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
    Ok(AppState {
        leptos_options: leptos_options(cfg),
        services: Services {
            store,
            urls: Urls {
                public: cfg.public_url(),
                rtmp: cfg.rtmp_url(),
            },
        },
        metrics: Arc::new(metrics::Metrics::default()),
    })
}

/// Leptos's options come from cargo-leptos's environment when it runs us, else from defaults
/// that match `[[workspace.metadata.leptos]]`.
fn leptos_options(cfg: &Config) -> LeptosOptions {
    let mut options = leptos::config::get_configuration(None)
        .map(|c| c.leptos_options)
        .unwrap_or_else(|_| LeptosOptions::builder().output_name("liveproc").build());
    if options.output_name.is_empty() {
        options.output_name = "liveproc".into();
    }
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

/// Serves until SIGINT/SIGTERM, then closes the store.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let state = prepare(&cfg).await?;
    let store = state.services.store.clone();
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding the HTTP listener {}", cfg.http))?;
    tracing::info!(http = %cfg.http, public = %cfg.public_url(), database = store.backend(), "liveproc listening");
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    store.close().await;
    tracing::info!("liveproc stopped");
    Ok(())
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
