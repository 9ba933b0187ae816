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
    use domain::store::MediaEngine;
    let counts = s.services.store.counts().await?;
    let live: Vec<_> = s
        .engine
        .live()
        .iter()
        .filter_map(|l| Some((l.stream_id.clone(), s.engine.stats(&l.stream_id)?)))
        .collect();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(&counts, &live)
            + &s.engine.workers.render()
            + &s.engine.latency.render()
            + &s.engine.render_transcodes()
            + &s.engine.render_warnings(),
    ))
}
