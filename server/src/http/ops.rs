//! Operations endpoints: health for load balancers, metrics for Prometheus.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;

use super::{AppState, Error};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// 200 while the database answers, 503 otherwise.
async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if s.services.store.ping().await {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
    }
}

async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, Error> {
    let counts = s.services.store.counts().await?;
    let live: Vec<_> = s
        .engine
        .live()
        .iter()
        .map(|l| (l.stream_id.clone(), l.live_stats()))
        .collect();
    let mut out = crate::metrics::Prometheus::default();
    s.metrics.render(&mut out, &counts, &live);
    let shared = &s.engine.shared;
    shared.workers.render(&mut out);
    shared.latency.render(&mut out);
    s.engine.render_transcodes(&mut out);
    shared.render_warnings(&mut out);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out.finish(),
    ))
}
