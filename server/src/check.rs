//! The consistency check between the database and the assets folder, run at every start (after
//! crash recovery) and on demand as `liveproc check [--fix]`.
//!
//! - A row whose file is gone: thumbnail, motion-clip and clip rows are removed (the history
//!   simply has one entry less); recording and replay rows stay, marked `failed`, so the session
//!   still says what happened to it.
//! - A file no row refers to: moved to `DATA/lost+found/` (same relative path), never deleted —
//!   the operator decides. Files younger than `grace` are left alone, because a running server
//!   writes a picture just before it lists it.
//! - Rows still `writing` belong to live sessions (or to crash recovery, which runs first) and
//!   are not judged.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use domain::store::{KnownFile, Store};

#[derive(Debug, Default)]
pub struct Report {
    /// Rows whose file is gone: (kind, id, path).
    pub missing: Vec<(String, String, String)>,
    /// Files below the assets folder that no row refers to.
    pub orphans: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.orphans.is_empty()
    }
}

/// Every path a row owns: the file itself and its companions.
fn owned(file: &KnownFile) -> Vec<String> {
    // A clip's poster is a column of its own (a clip may have none).
    let mut paths = match domain::AssetKind::parse(&file.kind) {
        Some(k) if k != domain::AssetKind::Clip => k.files(&file.path),
        _ => vec![file.path.clone()],
    };
    paths.extend(file.poster.clone());
    paths
}

/// Relative paths of all files below `dir`.
fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => walk(&path, base, out),
            Ok(m) => {
                if let Ok(rel) = path.strip_prefix(base) {
                    let modified = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    out.push((rel.to_string_lossy().replace('\\', "/"), modified));
                }
            }
            Err(_) => {}
        }
    }
}

/// Compares the database with `assets`; with `fix`, repairs what it finds (see the module doc).
pub async fn run(
    store: &Store,
    assets: &Path,
    lost_found: &Path,
    fix: bool,
    grace: Duration,
) -> anyhow::Result<Report> {
    let known = store.known_files().await?;
    let mut report = Report::default();
    let mut owned_paths = HashSet::new();
    // A replay owns its whole folder: segments come and go with the sliding window.
    let mut owned_dirs = Vec::new();
    for file in &known {
        let judged = file.status != "writing" && file.status != "failed";
        let lost = judged
            && !tokio::fs::try_exists(assets.join(&file.path))
                .await
                .unwrap_or(true);
        let forgotten = lost && fix && !matches!(file.kind.as_str(), "recording" | "replay");
        if lost {
            report
                .missing
                .push((file.kind.clone(), file.id.clone(), file.path.clone()));
            if fix {
                match file.kind.as_str() {
                    "clip" => store.forget_clip(&file.id).await?,
                    "recording" | "replay" => {
                        store.finish_asset(&file.id, None, 0, "failed").await?
                    }
                    _ => store.delete_asset(&file.id, "missing").await?,
                }
            }
        }
        // A forgotten row's companions (preview, MP4, poster) become orphans with it.
        if !forgotten {
            owned_paths.extend(owned(file));
            if file.kind == "replay" {
                if let Some((dir, _)) = file.path.rsplit_once('/') {
                    owned_dirs.push(format!("{dir}/"));
                }
            }
        }
    }
    let files = {
        let assets = assets.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&assets, &assets, &mut out);
            out
        })
        .await?
    };
    let now = SystemTime::now();
    for (rel, modified) in files {
        if owned_paths.contains(&rel) || owned_dirs.iter().any(|d| rel.starts_with(d.as_str())) {
            continue;
        }
        if now.duration_since(modified).unwrap_or_default() < grace {
            continue;
        }
        if fix {
            let to: PathBuf = lost_found.join(&rel);
            if let Some(parent) = to.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::rename(assets.join(&rel), &to).await?;
        }
        report.orphans.push(rel);
    }
    for (kind, id, path) in &report.missing {
        tracing::warn!(
            kind,
            id,
            path,
            fixed = fix,
            "check: a listed file is missing"
        );
    }
    for path in &report.orphans {
        tracing::warn!(
            path,
            fixed = fix,
            "check: a file no row refers to (moved to lost+found when fixed)"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companions_of_pictures_and_clips() {
        let f = |kind: &str, path: &str, poster: Option<&str>| KnownFile {
            id: "x".into(),
            kind: kind.into(),
            path: path.into(),
            status: "ready".into(),
            poster: poster.map(Into::into),
        };
        assert_eq!(
            owned(&f("thumbnail", "thumbnails/s/e/3.jpg", None)),
            ["thumbnails/s/e/3.jpg", "thumbnails/s/e/3.320.jpg"]
        );
        assert_eq!(
            owned(&f("motionclip", "motionclips/s/e/1.gif", None)),
            ["motionclips/s/e/1.gif", "motionclips/s/e/1.mp4"]
        );
        assert_eq!(
            owned(&f("clip", "clips/c.mp4", Some("clips/c.jpg"))),
            ["clips/c.mp4", "clips/c.jpg"]
        );
    }
}
