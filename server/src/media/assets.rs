//! The asset folder (`DATA/assets`) as processes see it: where a file goes, registering a
//! finished history file (a thumbnail or motion clip) and trimming the session's history, and
//! removing files. The layout itself is [`domain::AssetKind`]'s.

use std::path::{Path, PathBuf};

use domain::store::{NewAsset, Store};
use domain::AssetKind;

pub struct Assets {
    root: PathBuf,
    store: Store,
}

/// A history file a job wrote, to register.
pub struct HistoryFile {
    pub kind: AssetKind,
    pub stream_id: String,
    pub session_id: String,
    pub path: String,
    pub index: i64,
    pub width: u32,
    pub height: u32,
    pub duration_ms: Option<i64>,
    pub size: u64,
}

impl Assets {
    pub fn new(root: PathBuf, store: Store) -> Assets {
        Assets { root, store }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the asset at `path` (relative, `/`-separated) is on disk.
    pub fn file(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// Registers a finished history file, then trims the session's history to what its
    /// organisation keeps, removing the dropped files and their siblings.
    pub async fn register_history(&self, f: HistoryFile) -> Result<(), domain::ApiError> {
        let asset = NewAsset {
            stream_id: f.stream_id,
            session_id: Some(f.session_id.clone()),
            kind: f.kind,
            path: f.path,
            index: f.index,
            width: Some(i64::from(f.width)),
            height: Some(i64::from(f.height)),
        };
        let id = self.store.insert_asset(&asset).await?;
        self.store
            .finish_asset(&id, f.duration_ms, f.size as i64, "ready")
            .await?;
        let old = self.store.prune_history(&f.session_id, f.kind).await?;
        self.remove_files(old).await;
        Ok(())
    }

    /// Removes files below the assets folder (a missing file is fine).
    pub async fn remove_files(&self, paths: Vec<String>) {
        for p in paths {
            match tokio::fs::remove_file(self.root.join(&p)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %p, error = %e, "could not delete a file"),
            }
        }
    }

    /// Removes the files of a deleted stream (its rows are gone with it).
    pub async fn remove_stream_files(&self, stream_id: &str) {
        for kind in AssetKind::ALL {
            let dir = self.root.join(kind.folder()).join(stream_id);
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not delete files")
                }
            }
        }
    }
}
