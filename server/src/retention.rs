//! Retention: deletes recordings older than their organisation keeps them (files, then rows).

use std::path::Path;
use std::time::Duration;

use domain::store::Store;

/// How often the sweep runs; the first one runs at start-up.
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes what is past retention at `now_ms`; answers how many recordings went.
pub async fn sweep(store: &Store, assets: &Path, now_ms: i64) -> Result<usize, domain::ApiError> {
    let expired = store.expired_recordings(now_ms).await?;
    let mut deleted = 0;
    for (id, path) in expired {
        match tokio::fs::remove_file(assets.join(&path)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // Keep the row so the next sweep retries and nothing is orphaned on disk.
                tracing::warn!(path, error = %e, "retention: could not delete a recording");
                continue;
            }
        }
        store.delete_asset(&id, "retention").await?;
        deleted += 1;
    }
    if deleted > 0 {
        tracing::info!(
            deleted,
            "retention: deleted recordings past their organisation's retention"
        );
    }
    Ok(deleted)
}

/// Sweeps now and then every hour, for as long as the server runs.
pub async fn run(store: Store, assets: std::path::PathBuf) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&store, &assets, domain::store::now_ms()).await {
            tracing::error!(error = %e.message, "retention sweep failed");
        }
    }
}
