//! The store: the only home of SQL. One code path for SQLite and PostgreSQL through sqlx's Any
//! driver; the schema (`migrations/`) sticks to types both decode the same way.
//!
//! This file holds the connection, the migrator, the error mapping and the small helpers; each
//! family of tables has a file of its own below `store/`, each adding to `impl Store`.

use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::error::ApiError;
use crate::settings::{Processing, ProcessingPatch, PROFILES};
use crate::view::*;

mod assets;
mod auth;
mod clips;
pub mod events;
mod organisations;
mod pages;
mod sessions;
pub mod signing;
mod stream_view;
mod streams;

pub use assets::*;
pub use auth::*;
pub use clips::*;
pub use organisations::*;
pub use pages::*;
pub use sessions::*;
pub use stream_view::*;
pub use streams::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("creating the database folder {0}: {1}")]
    Folder(String, std::io::Error),
}

/// Database failures reach clients as a bare 500; the cause goes to the log.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // A write that refers to a row deleted meanwhile (a stream deleted while its settings
        // are saved, found by schemathesis with two workers): the client's target is gone.
        if let sqlx::Error::Database(db) = &e {
            if db.is_foreign_key_violation() {
                tracing::warn!(error = %e, "write to something deleted meanwhile");
                return ApiError::new(
                    404,
                    "not_found",
                    "what this request refers to was deleted meanwhile",
                );
            }
        }
        tracing::error!(error = %e, "database error");
        ApiError::internal()
    }
}

/// Where absolute URLs in answers point.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `--public-url` without a trailing slash.
    pub public: String,
    /// RTMP ingest base, e.g. `rtmp://host:1935`.
    pub rtmp: String,
    /// RTMPS ingest base, e.g. `rtmps://host:1936`, when that listener is on.
    pub rtmps: Option<String>,
    /// SRT ingest base, e.g. `srt://host:9710`, when that listener is on.
    pub srt: Option<String>,
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// 256 random bits, hex, with a prefix that says what the secret is.
pub(super) fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An SQLite URL without an explicit mode gets `mode=rwc`, so a fresh data folder just works.
fn with_create_mode(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    postgres: bool,
    /// `--public-url`, for the URLs in events (set once at start).
    public_url: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl Store {
    /// Connects, creating the SQLite file (and its folder) if needed, and runs the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
        {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Folder(dir.display().to_string(), e))?;
                }
            }
        }
        let postgres = url.starts_with("postgres");
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 10 } else { 4 })
            .connect(&with_create_mode(url))
            .await?;
        if !postgres {
            // WAL lets the dashboard read while ingest writes; it is a property of the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            postgres,
            public_url: Default::default(),
        })
    }

    /// Where the URLs in events point (`--public-url`); set once, when the server starts.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_string());
    }

    pub(crate) fn public_url(&self) -> String {
        self.public_url.get().cloned().unwrap_or_default()
    }

    pub fn backend(&self) -> &'static str {
        if self.postgres {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_keep_passthrough_first_and_refuse_unknown() {
        assert_eq!(
            group_profiles(Some(&["720p".into(), "360p".into()])).unwrap(),
            vec!["passthrough", "720p", "360p"]
        );
        let e = group_profiles(Some(&["4k".into()])).unwrap_err();
        assert_eq!(e.code, "unknown_profile");
        assert!(e.message.contains("720p"));
        assert_eq!(
            group_profiles(Some(&["720p".into(), "720p".into()]))
                .unwrap_err()
                .code,
            "duplicate_profile"
        );
    }

    #[test]
    fn streamnames_look_like_encoder_keys() {
        let s = new_streamname();
        assert_eq!(s.len(), 11);
        assert_eq!(&s[5..6], "-");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        assert_eq!(
            with_create_mode("sqlite://a/b.db"),
            "sqlite://a/b.db?mode=rwc"
        );
        assert_eq!(
            with_create_mode("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=rwc"
        );
        assert_eq!(with_create_mode("postgres://x/y"), "postgres://x/y");
    }
}
