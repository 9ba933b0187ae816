//! The store: the only home of SQL. One code path for SQLite and PostgreSQL through sqlx's Any
//! driver; the schema (`migrations/`) sticks to types both decode the same way.

use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::error::ApiError;
use crate::settings::{Processing, ProcessingPatch, PROFILES};
use crate::view::*;

mod clips;
pub use clips::{check_clip_request, MAX_CLIP_SECONDS, MIN_CLIP_SECONDS};
pub mod signing;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Dashboard sign-ins last a week.
const WEB_SESSION_MS: i64 = 7 * 24 * 3600 * 1000;
pub const DEFAULT_ASSET_LIMIT: i64 = 10;
/// A hundred years: longer is "keep" (null).
pub const MAX_RETENTION_DAYS: i64 = 36_500;
/// Thumbnails and motion clips kept per session unless the organisation says otherwise.
pub const DEFAULT_HISTORY_PER_SESSION: i64 = 100;
pub const MAX_HISTORY_PER_SESSION: i64 = 10_000;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

impl FromStr for Role {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        match s {
            "admin" => Ok(Role::Admin),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            _ => Err(ApiError::bad_request(
                "invalid_role",
                format!("role must be one of admin, editor, viewer (got {s:?})"),
            )),
        }
    }
}

/// The caller, as found from an API key or a dashboard cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub organisation_id: String,
    pub role: Role,
    pub operator: bool,
}

impl Principal {
    pub fn require_edit(&self) -> Result<(), ApiError> {
        if self.role == Role::Viewer {
            return Err(ApiError::forbidden("viewer keys are read only"));
        }
        Ok(())
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role != Role::Admin {
            return Err(ApiError::forbidden(
                "only admin keys may manage keys and the organisation",
            ));
        }
        Ok(())
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        if !self.operator {
            return Err(ApiError::forbidden(
                "only the operator key may manage organisations",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<String>,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub organisations: i64,
    pub streams: i64,
    pub live_sessions: i64,
    pub sessions: i64,
}

/// The public URL of an asset file, signed when its organisation signs asset URLs.
pub fn asset_url(base: &str, signer: Option<&signing::AssetSigner>, path: &str) -> String {
    match signer {
        Some(s) => format!("{base}/assets/{}", s.sign(path, now_ms() / 1000)),
        None => format!("{base}/assets/{path}"),
    }
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

/// A fresh operator key, for when none was given on the command line.
pub fn new_operator_key() -> String {
    new_secret("lp_")
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// 256 random bits, hex, with a prefix that says what the secret is.
fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A stream name as RTMP encoders show it: two groups of five lowercase letters and digits.
fn new_streamname() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut b = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut b);
    let s: String = b
        .iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &s[..5], &s[5..])
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

/// What the store asks of the media engine: live figures, and cutting clips from replay files.
/// Held weakly: the engine holds the store.
pub trait MediaEngine: Send + Sync {
    fn stats(&self, stream_id: &str) -> Option<LiveStats>;
    fn source_state(&self, stream_id: &str) -> Option<SourceState>;
    /// A profile stream's rendition while its group is live.
    fn transcode(&self, stream_id: &str) -> Option<crate::view::TranscodeView>;
    fn cut_clip(&self, job: ClipJob) -> BoxFuture<Result<ClipCut, ApiError>>;
    /// Removes files below the assets folder (a missing file is fine).
    fn remove_files(&self, paths: Vec<String>) -> BoxFuture<()>;
    /// Removes every file of a deleted stream.
    fn remove_stream_files(&self, stream_id: String) -> BoxFuture<()>;
}

pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A clip to cut: paths are below the assets folder.
#[derive(Debug, Clone)]
pub struct ClipJob {
    /// The session's replay folder (holding `index.m3u8`).
    pub replay_dir: String,
    pub started_at_ms: i64,
    pub start: f64,
    pub end: f64,
    /// Where the MP4 goes.
    pub out: String,
    /// Where a poster JPEG of the first frame goes, if the engine can make one.
    pub poster: String,
}

/// What a cut wrote.
#[derive(Debug, Clone)]
pub struct ClipCut {
    pub duration: f64,
    pub size: i64,
    pub poster: bool,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    postgres: bool,
    live: std::sync::Arc<std::sync::OnceLock<std::sync::Weak<dyn MediaEngine>>>,
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
            live: Default::default(),
        })
    }

    /// Lets stream objects carry live figures from `source`.
    pub fn set_media_engine(&self, source: std::sync::Weak<dyn MediaEngine>) {
        let _ = self.live.set(source);
    }

    fn live_stats(&self, stream_id: &str) -> Option<LiveStats> {
        self.live.get()?.upgrade()?.stats(stream_id)
    }

    fn source_state(&self, stream_id: &str) -> Option<SourceState> {
        self.live.get()?.upgrade()?.source_state(stream_id)
    }

    fn transcode(&self, stream_id: &str) -> Option<crate::view::TranscodeView> {
        self.live.get()?.upgrade()?.transcode(stream_id)
    }

    fn media(&self) -> Result<std::sync::Arc<dyn MediaEngine>, ApiError> {
        self.live
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or_else(|| ApiError::new(503, "unavailable", "the media engine is not running"))
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

    // ---- organisations and keys ------------------------------------------------------------

    /// Makes sure organisation `default` exists with live processing enabled and `key` as its
    /// operator admin key.
    pub async fn ensure_operator(&self, key: &str) -> Result<(), ApiError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM organisations WHERE id = 'default'")
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            sqlx::query("UPDATE organisations SET live_processing = 1 WHERE id = 'default'")
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO organisations (id, name, live_processing, created_at) \
                 VALUES ('default', 'default', 1, $1)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let hash = hash_secret(key);
        let found = sqlx::query("SELECT id FROM api_keys WHERE key_hash = $1")
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
        match found {
            Some(row) => {
                let id: String = row.try_get("id")?;
                sqlx::query(
                    "UPDATE api_keys SET organisation_id = 'default', role = 'admin', operator = 1 \
                     WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO api_keys (id, organisation_id, key_hash, role, operator, created_at) \
                     VALUES ($1, 'default', $2, 'admin', 1, $3)",
                )
                .bind(new_id())
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn has_operator(&self) -> Result<bool, ApiError> {
        Ok(
            sqlx::query("SELECT id FROM api_keys WHERE operator = 1 LIMIT 1")
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    pub async fn authenticate(&self, key: &str) -> Result<Option<Principal>, ApiError> {
        let row = sqlx::query(
            "SELECT id, organisation_id, role, operator FROM api_keys WHERE key_hash = $1",
        )
        .bind(hash_secret(key))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| principal_from_row(&r, "id")).transpose()
    }

    pub async fn organisation(&self, id: &str) -> Result<OrganisationView, ApiError> {
        let row = sqlx::query(
            "SELECT id, name, live_processing, retention_days, history_per_session, asset_key, \
             asset_url_ttl FROM organisations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))?;
        let enabled: i64 = row.try_get("live_processing")?;
        Ok(OrganisationView {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            packages: Packages {
                live_processing: if enabled == 1 {
                    "enabled"
                } else {
                    "upgrade_needed"
                }
                .into(),
            },
            retention: Retention {
                recording_days: row.try_get("retention_days")?,
                history_per_session: row
                    .try_get::<Option<i64>, _>("history_per_session")?
                    .unwrap_or(DEFAULT_HISTORY_PER_SESSION),
            },
            asset_access: crate::view::AssetAccess {
                signed_urls: row.try_get::<Option<String>, _>("asset_key")?.is_some(),
                ttl_seconds: row
                    .try_get::<Option<i64>, _>("asset_url_ttl")?
                    .unwrap_or(signing::DEFAULT_TTL),
            },
        })
    }

    /// Admin: how many days recordings are kept (None = for ever).
    pub async fn set_retention(
        &self,
        p: &Principal,
        recording_days: Option<i64>,
        history_per_session: Option<i64>,
    ) -> Result<OrganisationView, ApiError> {
        p.require_admin()?;
        if let Some(n) = history_per_session {
            if !(1..=MAX_HISTORY_PER_SESSION).contains(&n) {
                return Err(crate::settings::FieldError {
                    field: "historyPerSession".into(),
                    message: format!(
                        "historyPerSession must be from 1 to {MAX_HISTORY_PER_SESSION} (got {n})"
                    ),
                }
                .into());
            }
        }
        if let Some(d) = recording_days {
            if !(1..=MAX_RETENTION_DAYS).contains(&d) {
                return Err(crate::settings::FieldError {
                    field: "recordingDays".into(),
                    message: format!(
                        "recordingDays must be from 1 to {MAX_RETENTION_DAYS} days, or null to keep recordings (got {d})"
                    ),
                }
                .into());
            }
        }
        sqlx::query(
            "UPDATE organisations SET retention_days = $1, \
             history_per_session = COALESCE($2, history_per_session) WHERE id = $3",
        )
        .bind(recording_days)
        .bind(history_per_session)
        .bind(&p.organisation_id)
        .execute(&self.pool)
        .await?;
        self.organisation(&p.organisation_id).await
    }

    /// Finished recordings past their organisation's retention at `now_ms`: (asset id, path).
    pub async fn expired_recordings(&self, now_ms: i64) -> Result<Vec<(String, String)>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.path FROM assets a JOIN streams s ON s.id = a.stream_id \
             JOIN organisations o ON o.id = s.organisation_id \
             WHERE a.kind = 'recording' AND a.status <> 'writing' AND o.retention_days IS NOT NULL \
             AND a.created_at < $1 - o.retention_days * 86400000",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest ready asset of a kind for a stream: its path.
    pub async fn latest_asset(
        &self,
        stream_id: &str,
        kind: &str,
    ) -> Result<Option<String>, ApiError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT path FROM assets WHERE stream_id = $1 AND kind = $2 AND status = 'ready' \
             ORDER BY created_at DESC, idx DESC LIMIT 1",
        )
        .bind(stream_id)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Keeps the newest assets of a kind of a session, as many as its organisation keeps;
    /// deletes the older rows and answers their paths (the caller removes the files).
    pub async fn prune_history(
        &self,
        session_id: &str,
        kind: &str,
    ) -> Result<Vec<String>, ApiError> {
        let keep: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT o.history_per_session FROM sessions ss JOIN streams s ON s.id = ss.stream_id \
             JOIN organisations o ON o.id = s.organisation_id WHERE ss.id = $1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        let keep = keep
            .and_then(|k| k.0)
            .unwrap_or(DEFAULT_HISTORY_PER_SESSION);
        let old: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, path FROM assets WHERE session_id = $1 AND kind = $2 \
             ORDER BY created_at DESC, idx DESC LIMIT 1000000 OFFSET $3",
        )
        .bind(session_id)
        .bind(kind)
        .bind(keep)
        .fetch_all(&self.pool)
        .await?;
        for (id, _) in &old {
            self.delete_asset(id).await?;
        }
        Ok(old.into_iter().map(|(_, p)| p).collect())
    }

    pub async fn delete_asset(&self, id: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates an organisation (live processing off) and its first admin key, shown only here.
    pub async fn create_organisation(
        &self,
        name: &str,
    ) -> Result<(OrganisationView, String), ApiError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must be 1 to 100 characters",
            ));
        }
        let id = new_id();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO organisations (id, name, live_processing, created_at) VALUES ($1, $2, 0, $3)",
        )
        .bind(&id)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let key = new_secret("lp_");
        insert_key(&mut tx, &id, &key, Role::Admin).await?;
        tx.commit().await?;
        Ok((self.organisation(&id).await?, key))
    }

    pub async fn set_live_processing(
        &self,
        organisation_id: &str,
        enabled: bool,
    ) -> Result<OrganisationView, ApiError> {
        let done = sqlx::query("UPDATE organisations SET live_processing = $1 WHERE id = $2")
            .bind(enabled as i64)
            .bind(organisation_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("organisation"));
        }
        self.organisation(organisation_id).await
    }

    pub async fn create_key(&self, organisation_id: &str, role: Role) -> Result<String, ApiError> {
        let key = new_secret("lp_");
        let mut tx = self.pool.begin().await?;
        insert_key(&mut tx, organisation_id, &key, role).await?;
        tx.commit().await?;
        Ok(key)
    }

    // ---- dashboard sign-in -----------------------------------------------------------------

    /// Exchanges an API key for a cookie token; None when the key is unknown.
    pub async fn sign_in(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(p) = self.authenticate(key).await? else {
            return Ok(None);
        };
        let token = new_secret("ws_");
        let now = now_ms();
        sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, api_key_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_secret(&token))
        .bind(p.key_id)
        .bind(now)
        .bind(now + WEB_SESSION_MS)
        .execute(&self.pool)
        .await?;
        Ok(Some(token))
    }

    pub async fn web_principal(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        let row = sqlx::query(
            "SELECT k.id AS key_id, k.organisation_id, k.role, k.operator FROM web_sessions w \
             JOIN api_keys k ON k.id = w.api_key_id WHERE w.token_hash = $1 AND w.expires_at > $2",
        )
        .bind(hash_secret(token))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| principal_from_row(&r, "key_id")).transpose()
    }

    pub async fn sign_out(&self, token: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(hash_secret(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn me(&self, p: &Principal) -> Result<Me, ApiError> {
        Ok(Me {
            organisation: self.organisation(&p.organisation_id).await?,
            role: p.role.as_str().into(),
            operator: p.operator,
        })
    }

    // ---- streams ---------------------------------------------------------------------------

    /// Creates a stream group: the passthrough stream plus one stream per transcoding profile.
    /// Answers the passthrough stream.
    pub async fn create_stream(
        &self,
        p: &Principal,
        req: &CreateStream,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        p.require_edit()?;
        let name = req.name.as_deref().unwrap_or("").trim().to_string();
        if name.chars().count() > 200 {
            return Err(ApiError::bad_request(
                "invalid_name",
                "name must be at most 200 characters",
            ));
        }
        let tags = clean_tags(&req.tags)?;
        if let Some(src) = &req.source {
            if !(src.starts_with("rtsp://") || src.starts_with("rtsps://")) || src.len() > 2048 {
                return Err(ApiError::bad_request(
                    "invalid_source",
                    "source must be an rtsp:// or rtsps:// URL",
                ));
            }
        }
        let profiles = group_profiles(req.transcoding.as_ref().map(|t| &t.profiles[..]))?;
        for key in req.profile_processing.keys() {
            if !profiles.contains(key) {
                return Err(ApiError::bad_request(
                    "unknown_profile",
                    format!(
                        "profileProcessing names {key:?}, which is not a profile of this stream"
                    ),
                ));
            }
        }
        let mut settings = Vec::new();
        for profile in &profiles {
            let mut s = Processing::default();
            if let Some(patch) = &req.processing {
                s.apply(patch);
            }
            if let Some(patch) = req.profile_processing.get(profile) {
                s.apply(patch);
            }
            s.validate()?;
            settings.push(s);
        }
        if settings.iter().any(Processing::any_enabled) {
            self.require_live_processing(&p.organisation_id).await?;
        }

        let group_id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO stream_groups (id, organisation_id, name, source, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&group_id)
        .bind(&p.organisation_id)
        .bind(&name)
        .bind(req.source.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for tag in &tags {
            sqlx::query("INSERT INTO stream_tags (group_id, tag) VALUES ($1, $2)")
                .bind(&group_id)
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        let mut first = None;
        for (position, (profile, s)) in profiles.iter().zip(&settings).enumerate() {
            let id = insert_stream(
                &mut tx,
                &group_id,
                &p.organisation_id,
                profile,
                position,
                s,
                now,
            )
            .await?;
            first.get_or_insert(id);
        }
        tx.commit().await?;
        let id = first.expect("passthrough always exists");
        self.stream(p, &id, DEFAULT_ASSET_LIMIT, urls).await
    }

    /// One stream of the caller's organisation; another organisation's stream is "not found".
    pub async fn stream(
        &self,
        p: &Principal,
        id: &str,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        let row = self.stream_row(p, id).await?;
        self.view(row, asset_limit, urls).await
    }

    pub async fn streams(
        &self,
        p: &Principal,
        filter: &ListFilter,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        let live = match filter.state.as_deref() {
            None | Some("") => None,
            Some("live") => Some(true),
            Some("idle") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_state",
                    format!("state must be live or idle (got {other:?})"),
                ))
            }
        };
        let rows = sqlx::query_as::<_, StreamRow>(&format!(
            "{STREAM_SELECT} WHERE s.organisation_id = $1 \
             AND ($2 = '' OR EXISTS (SELECT 1 FROM stream_tags t WHERE t.group_id = s.group_id AND t.tag = $2)) \
             ORDER BY g.created_at DESC, s.group_id, s.position"
        ))
        .bind(&p.organisation_id)
        .bind(filter.tag.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        let mut views = self.views(rows, asset_limit, urls).await?;
        views.retain(|v| live.is_none_or(|l| l == v.is_live()));
        Ok(views)
    }

    /// Every stream of the group `id` belongs to (found by group or by any member stream).
    pub async fn group(
        &self,
        p: &Principal,
        id: &str,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        let rows = sqlx::query_as::<_, StreamRow>(&format!(
            "{STREAM_SELECT} WHERE s.organisation_id = $1 AND s.group_id = \
             COALESCE((SELECT group_id FROM streams WHERE id = $2), $2) ORDER BY s.position"
        ))
        .bind(&p.organisation_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(ApiError::not_found("stream group"));
        }
        self.views(rows, asset_limit, urls).await
    }

    async fn views(
        &self,
        rows: Vec<StreamRow>,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.view(row, asset_limit, urls).await?);
        }
        Ok(out)
    }

    /// Saves new settings for one stream; a live stream gets them at its next ingest.
    pub async fn update_processing(
        &self,
        p: &Principal,
        id: &str,
        patch: &ProcessingPatch,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        p.require_edit()?;
        let row = self.stream_row(p, id).await?;
        self.save_many(p, vec![(row.id.clone(), patch.clone())])
            .await?;
        self.stream(p, id, DEFAULT_ASSET_LIMIT, urls).await
    }

    /// "Sync settings across profiles": the passthrough stream's settings with `patch` applied
    /// become the settings of every stream of the group.
    pub async fn update_group_processing(
        &self,
        p: &Principal,
        group_id: &str,
        patch: &ProcessingPatch,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        p.require_edit()?;
        let streams = self.group(p, group_id, 0, urls).await?;
        let mut base = streams[0].processing.settings;
        base.apply(patch);
        let full = ProcessingPatch::from(base);
        let edits = streams
            .iter()
            .map(|s| (s.id.clone(), full.clone()))
            .collect();
        self.save_many(p, edits).await?;
        self.group(p, group_id, DEFAULT_ASSET_LIMIT, urls).await
    }

    /// Saves several streams' settings at once (the dashboard's Edit dialog): all are checked
    /// before any is written, so a range error leaves every stream as it was.
    pub async fn save_group_settings(
        &self,
        p: &Principal,
        edits: Vec<(String, Processing)>,
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        p.require_edit()?;
        let first = edits
            .first()
            .map(|e| e.0.clone())
            .ok_or_else(|| ApiError::bad_request("empty", "no settings to save"))?;
        let edits = edits
            .into_iter()
            .map(|(id, s)| (id, ProcessingPatch::from(s)))
            .collect();
        self.save_many(p, edits).await?;
        self.group(p, &first, DEFAULT_ASSET_LIMIT, urls).await
    }

    async fn save_many(
        &self,
        p: &Principal,
        edits: Vec<(String, ProcessingPatch)>,
    ) -> Result<(), ApiError> {
        let mut next = Vec::new();
        let mut enables = false;
        for (id, patch) in &edits {
            let row = self.stream_row(p, id).await?;
            let before = self.settings(&row.id).await?;
            let mut after = before;
            after.apply(patch);
            after.validate()?;
            enables |= after.enables_more_than(&before);
            next.push((row.id, after));
        }
        if enables {
            self.require_live_processing(&p.organisation_id).await?;
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (id, s) in &next {
            write_settings(&mut tx, id, s, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets a group's transcoding profiles: new profiles get streams with the passthrough
    /// stream's settings, dropped ones are deleted (their ids are answered, so their files go
    /// too). A live group takes the new ladder at its next ingest, like settings.
    pub async fn set_group_profiles(
        &self,
        p: &Principal,
        id: &str,
        requested: &[String],
        urls: &Urls,
    ) -> Result<Vec<StreamView>, ApiError> {
        p.require_edit()?;
        let wanted = group_profiles(Some(requested))?;
        let streams = self.group(p, id, 0, urls).await?;
        let passthrough = &streams[0];
        let base = self.settings(&passthrough.id).await?;
        if base.any_enabled() && wanted.len() > streams.len() {
            self.require_live_processing(&p.organisation_id).await?;
        }
        let now = now_ms();
        let mut deleted = Vec::new();
        let mut tx = self.pool.begin().await?;
        for s in &streams {
            if !wanted.contains(&s.profile) {
                sqlx::query("DELETE FROM streams WHERE id = $1")
                    .bind(&s.id)
                    .execute(&mut *tx)
                    .await?;
                deleted.push(s.id.clone());
            }
        }
        for (position, profile) in wanted.iter().enumerate() {
            if let Some(s) = streams.iter().find(|s| &s.profile == profile) {
                sqlx::query("UPDATE streams SET position = $1 WHERE id = $2")
                    .bind(position as i64)
                    .bind(&s.id)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            insert_stream(
                &mut tx,
                &passthrough.streamgroup,
                &p.organisation_id,
                profile,
                position,
                &base,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.remove_stream_files(deleted).await;
        self.group(p, &passthrough.id, DEFAULT_ASSET_LIMIT, urls)
            .await
    }

    /// Removes the files of streams whose rows are gone (nothing to do without an engine: the
    /// start-up consistency check takes such orphans).
    async fn remove_stream_files(&self, streams: Vec<String>) {
        if let Ok(media) = self.media() {
            for s in streams {
                media.remove_stream_files(s).await;
            }
        }
    }

    /// Deletes a stream and its files. The passthrough stream takes its whole group with it; a
    /// profile stream leaves the rest of its group.
    pub async fn delete_stream(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        p.require_edit()?;
        let row = self.stream_row(p, id).await?;
        let deleted: Vec<String> = if row.profile == "passthrough" {
            sqlx::query("SELECT id FROM streams WHERE group_id = $1")
                .bind(&row.group_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<_, _>>()?
        } else {
            vec![row.id.clone()]
        };
        if row.profile == "passthrough" {
            sqlx::query("DELETE FROM stream_groups WHERE id = $1")
                .bind(&row.group_id)
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query("DELETE FROM streams WHERE id = $1")
                .bind(&row.id)
                .execute(&self.pool)
                .await?;
        }
        self.remove_stream_files(deleted).await;
        Ok(())
    }

    pub async fn counts(&self) -> Result<Counts, ApiError> {
        let one = |sql: &'static str| async move {
            let row = sqlx::query(sql).fetch_one(&self.pool).await?;
            row.try_get::<i64, _>(0).map_err(ApiError::from)
        };
        Ok(Counts {
            organisations: one("SELECT COUNT(*) FROM organisations").await?,
            streams: one("SELECT COUNT(*) FROM streams").await?,
            live_sessions: one("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL").await?,
            sessions: one("SELECT COUNT(*) FROM sessions").await?,
        })
    }

    // ---- ingest sessions -------------------------------------------------------------------

    /// The stream an encoder may publish to with this stream name (only passthrough streams take
    /// ingest; profile streams are fed by transcoding).
    pub async fn ingest_target(&self, streamname: &str) -> Result<Option<IngestTarget>, ApiError> {
        Ok(
            sqlx::query_as::<_, IngestTarget>(&format!("{INGEST_SELECT} WHERE s.streamname = $1"))
                .bind(streamname)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The same, by stream id (RTSP workers know their stream, not a name).
    pub async fn ingest_target_by_id(
        &self,
        stream_id: &str,
    ) -> Result<Option<IngestTarget>, ApiError> {
        Ok(
            sqlx::query_as::<_, IngestTarget>(&format!("{INGEST_SELECT} WHERE s.id = $1"))
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The profile streams of the group whose passthrough stream is `stream_id`, in ladder
    /// order: the renditions its ingest feeds.
    pub async fn profile_targets(&self, stream_id: &str) -> Result<Vec<IngestTarget>, ApiError> {
        Ok(sqlx::query_as::<_, IngestTarget>(&format!(
            "{INGEST_SELECT} WHERE s.group_id = (SELECT group_id FROM streams WHERE id = $1) \
             AND s.profile <> 'passthrough' ORDER BY s.position"
        ))
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every stream to pull: (passthrough stream id, rtsp URL).
    pub async fn rtsp_sources(&self) -> Result<Vec<(String, String)>, ApiError> {
        Ok(sqlx::query_as(
            "SELECT s.id, g.source FROM streams s JOIN stream_groups g ON g.id = s.group_id \
             WHERE g.source IS NOT NULL AND s.profile = 'passthrough'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Opens a session: copies the saved settings, which the session keeps until it ends.
    pub async fn start_session(
        &self,
        stream_id: &str,
        source: &str,
        app: Option<&str>,
        forced_recording: bool,
    ) -> Result<(String, Processing), ApiError> {
        let settings = self.settings(stream_id).await?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO sessions (id, stream_id, started_at, source, app, processing, forced_recording) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(stream_id)
        .bind(now_ms())
        .bind(source)
        .bind(app)
        .bind(serde_json::to_string(&settings).unwrap_or_default())
        .bind(forced_recording as i64)
        .execute(&self.pool)
        .await?;
        Ok((id, settings))
    }

    pub async fn set_session_codecs(&self, id: &str, c: &SessionCodecs) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE sessions SET video_codec = $1, width = $2, height = $3, audio_codec = $4, \
             audio_sample_rate = $5 WHERE id = $6",
        )
        .bind(c.video_codec.clone())
        .bind(c.width)
        .bind(c.height)
        .bind(c.audio_codec.clone())
        .bind(c.audio_sample_rate)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn end_session(&self, id: &str, reason: &str) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a warning to a session: something dropped or refused, said on the stream.
    pub async fn add_session_warning(&self, id: &str, warning: &str) -> Result<(), ApiError> {
        let line = warning.replace('\n', " ");
        sqlx::query(
            "UPDATE sessions SET warnings = CASE WHEN warnings IS NULL THEN $1 \
             ELSE warnings || $2 END WHERE id = $3",
        )
        .bind(&line)
        .bind(format!("\n{line}"))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// At start-up: sessions a crash left open end now. Answers how many.
    pub async fn close_open_sessions(&self) -> Result<u64, ApiError> {
        Ok(sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = 'server restarted' WHERE ended_at IS NULL",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn sessions(&self, stream_id: &str, limit: i64) -> Result<Vec<SessionView>, ApiError> {
        let rows = sqlx::query_as::<_, SessionRow>(
            "SELECT id, started_at, ended_at, source, app, video_codec, audio_codec, width, height, \
             audio_sample_rate, end_reason, warnings FROM sessions WHERE stream_id = $1 \
             ORDER BY started_at DESC LIMIT $2",
        )
        .bind(stream_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionView {
                id: r.id,
                started_at: rfc3339(r.started_at),
                ended_at: r.ended_at.map(rfc3339),
                source: r.source,
                app: r.app,
                video_codec: r.video_codec,
                audio_codec: r.audio_codec,
                width: r.width,
                height: r.height,
                audio_sample_rate: r.audio_sample_rate,
                end_reason: r.end_reason,
                warnings: r
                    .warnings
                    .map(|w| w.lines().map(String::from).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    // ---- assets ------------------------------------------------------------------------------

    /// Registers a file a process has started writing (status `writing`); answers its id.
    pub async fn insert_asset(&self, a: &NewAsset) -> Result<String, ApiError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO assets (id, stream_id, session_id, kind, path, status, created_at, width, height, idx) \
             VALUES ($1, $2, $3, $4, $5, 'writing', $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&a.stream_id)
        .bind(a.session_id.clone())
        .bind(a.kind)
        .bind(&a.path)
        .bind(now_ms())
        .bind(a.width)
        .bind(a.height)
        .bind(a.index)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Marks a file done (`ready`) or broken (`failed`, kept for inspection).
    pub async fn finish_asset(
        &self,
        id: &str,
        duration_ms: Option<i64>,
        size_bytes: i64,
        status: &str,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE assets SET status = $1, duration_ms = COALESCE($2, duration_ms), size_bytes = $3 WHERE id = $4",
        )
        .bind(status)
        .bind(duration_ms)
        .bind(size_bytes)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Files a crash left in `writing`: (id, path below the assets folder).
    pub async fn writing_assets(&self) -> Result<Vec<(String, String)>, ApiError> {
        Ok(
            sqlx::query_as("SELECT id, path FROM assets WHERE status = 'writing'")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Every file the database knows of, for the consistency check: asset rows and clip rows
    /// (kind "clip", with their poster).
    pub async fn known_files(&self) -> Result<Vec<KnownFile>, ApiError> {
        let assets: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT id, kind, path, status FROM assets")
                .fetch_all(&self.pool)
                .await?;
        let clips: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT id, path, poster FROM clips")
                .fetch_all(&self.pool)
                .await?;
        Ok(assets
            .into_iter()
            .map(|(id, kind, path, status)| KnownFile {
                id,
                kind,
                path,
                status,
                poster: None,
            })
            .chain(clips.into_iter().map(|(id, path, poster)| KnownFile {
                id,
                kind: "clip".into(),
                path,
                status: "ready".into(),
                poster,
            }))
            .collect())
    }

    /// Removes a clip row whose file is gone (the consistency check's fix).
    pub async fn forget_clip(&self, id: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM clips WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A session's replay, for its rewatch page: the stream object and the replay entry.
    pub async fn replay(
        &self,
        p: &Principal,
        session_id: &str,
        urls: &Urls,
    ) -> Result<(StreamView, ReplayEntry), ApiError> {
        let (stream_id, _) = self.own_session(p, session_id).await?;
        let view = self.stream(p, &stream_id, 100, urls).await?;
        let entry = view
            .playout
            .replay
            .iter()
            .find(|r| r.session_id == session_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("replay of this session"))?;
        Ok((view, entry))
    }

    /// A session's thumbnails for its replay timeline: (seconds from the session's start,
    /// 320 px preview URL), oldest first.
    pub async fn session_thumbnails(
        &self,
        p: &Principal,
        session_id: &str,
        urls: &Urls,
    ) -> Result<Vec<(f64, String)>, ApiError> {
        let signer = self.asset_signer(&p.organisation_id).await?;
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT a.created_at, a.path, ss.started_at FROM assets a \
             JOIN sessions ss ON ss.id = a.session_id JOIN streams s ON s.id = ss.stream_id \
             WHERE a.session_id = $1 AND a.kind = 'thumbnail' AND a.status = 'ready' \
             AND s.organisation_id = $2 ORDER BY a.created_at",
        )
        .bind(session_id)
        .bind(&p.organisation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, path, started)| {
                (
                    (at - started) as f64 / 1000.0,
                    asset_url(&urls.public, signer.as_ref(), &sibling(&path, ".320.jpg")),
                )
            })
            .collect())
    }

    // ---- internals -------------------------------------------------------------------------

    /// A session of the caller's organisation: (stream id, started at ms); 404 otherwise.
    async fn own_session(
        &self,
        p: &Principal,
        session_id: &str,
    ) -> Result<(String, i64), ApiError> {
        sqlx::query_as(
            "SELECT ss.stream_id, ss.started_at FROM sessions ss JOIN streams s ON s.id = ss.stream_id \
             WHERE ss.id = $1 AND s.organisation_id = $2",
        )
        .bind(session_id)
        .bind(&p.organisation_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
    }

    async fn require_live_processing(&self, organisation_id: &str) -> Result<(), ApiError> {
        if self
            .organisation(organisation_id)
            .await?
            .live_processing_enabled()
        {
            Ok(())
        } else {
            Err(ApiError::upgrade_needed())
        }
    }

    async fn stream_row(&self, p: &Principal, id: &str) -> Result<StreamRow, ApiError> {
        sqlx::query_as::<_, StreamRow>(&format!(
            "{STREAM_SELECT} WHERE s.id = $1 AND s.organisation_id = $2"
        ))
        .bind(id)
        .bind(&p.organisation_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("stream"))
    }

    pub async fn settings(&self, stream_id: &str) -> Result<Processing, ApiError> {
        let rows = sqlx::query(
            "SELECT process, enabled, interval_s, duration_s FROM processing_settings WHERE stream_id = $1",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let mut s = Processing::default();
        for r in rows {
            let process: String = r.try_get("process")?;
            let enabled = r.try_get::<i64, _>("enabled")? == 1;
            let interval: Option<i64> = r.try_get("interval_s")?;
            let duration: Option<i64> = r.try_get("duration_s")?;
            match process.as_str() {
                "thumbnail" => {
                    s.thumbnail.enabled = enabled;
                    s.thumbnail.interval = interval.unwrap_or(s.thumbnail.interval);
                }
                "motionclip" => {
                    s.motionclip.enabled = enabled;
                    s.motionclip.interval = interval.unwrap_or(s.motionclip.interval);
                    s.motionclip.duration = duration.unwrap_or(s.motionclip.duration);
                }
                "recording" => {
                    s.recording.enabled = enabled;
                    s.recording.duration = duration;
                }
                "replay" => {
                    s.replay.enabled = enabled;
                    s.replay.duration = duration;
                }
                _ => {}
            }
        }
        Ok(s)
    }

    async fn view(
        &self,
        row: StreamRow,
        asset_limit: i64,
        urls: &Urls,
    ) -> Result<StreamView, ApiError> {
        let settings = self.settings(&row.id).await?;
        let open = sqlx::query(
            "SELECT processing FROM sessions WHERE stream_id = $1 AND ended_at IS NULL \
             ORDER BY started_at DESC LIMIT 1",
        )
        .bind(&row.id)
        .fetch_optional(&self.pool)
        .await?;
        let live = open.is_some();
        // Pending: the open session runs with other settings than those saved.
        let pending = match open {
            Some(r) => {
                let snapshot: String = r.try_get("processing")?;
                serde_json::from_str::<Processing>(&snapshot).ok() != Some(settings)
            }
            None => false,
        };
        let tags = sqlx::query("SELECT tag FROM stream_tags WHERE group_id = $1 ORDER BY tag")
            .bind(&row.group_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("tag"))
            .collect::<Result<Vec<_>, _>>()?;
        let counts = self.asset_counts(&row.id).await?;
        let sessions = self.sessions(&row.id, asset_limit.clamp(1, 10)).await?;
        let live_stats = if live { self.live_stats(&row.id) } else { None };
        let playout = self.playout(&row, &settings, asset_limit, urls).await?;
        let transcode = self.transcode(&row.id);
        Ok(StreamView {
            ingest: Ingest {
                rtmp: RtmpIngest {
                    url: format!("{}/live", urls.rtmp),
                    rec_url: format!("{}/rec", urls.rtmp),
                    streamname: row.streamname.clone(),
                },
                rtmps: urls.rtmps.as_ref().map(|base| RtmpIngest {
                    url: format!("{base}/live"),
                    rec_url: format!("{base}/rec"),
                    streamname: row.streamname.clone(),
                }),
                source: row.source.clone(),
                source_state: row.source.as_ref().and_then(|_| self.source_state(&row.id)),
            },
            id: row.id,
            streamgroup: row.group_id,
            name: row.name,
            streamname: row.streamname,
            profile: row.profile,
            state: if live { "live" } else { "idle" }.into(),
            tags,
            created_at: rfc3339(row.created_at),
            processing: ProcessingView { settings, pending },
            playout,
            asset_counts: counts,
            sessions,
            live: live_stats,
            transcode,
        })
    }

    async fn asset_counts(&self, stream_id: &str) -> Result<AssetCounts, ApiError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM assets WHERE stream_id = $1 GROUP BY kind",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let mut c = AssetCounts::default();
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let n: i64 = r.try_get("n")?;
            match kind.as_str() {
                "thumbnail" => c.thumbnail = n,
                "motionclip" => c.motionclip = n,
                "recording" => c.recording = n,
                "replay" => c.replay = n,
                _ => {}
            }
        }
        Ok(c)
    }

    async fn assets(
        &self,
        stream_id: &str,
        kind: &str,
        limit: i64,
    ) -> Result<Vec<AssetRow>, ApiError> {
        Ok(sqlx::query_as::<_, AssetRow>(
            "SELECT a.id, a.session_id, a.path, a.status, a.created_at, a.duration_ms, a.width, \
             a.height, a.size_bytes, a.idx, ss.started_at, ss.ended_at FROM assets a \
             LEFT JOIN sessions ss ON ss.id = a.session_id \
             WHERE a.stream_id = $1 AND a.kind = $2 ORDER BY a.created_at DESC, a.idx DESC LIMIT $3",
        )
        .bind(stream_id)
        .bind(kind)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn playout(
        &self,
        row: &StreamRow,
        settings: &Processing,
        limit: i64,
        urls: &Urls,
    ) -> Result<Playout, ApiError> {
        let base = &urls.public;
        let id = &row.id;
        let signer = self.asset_signer_of_stream(id).await?;
        let asset_url = |path: &str| asset_url(base, signer.as_ref(), path);
        let link = |url: String, kind: &str| Link {
            url,
            kind: kind.into(),
        };
        let mut hls = vec![link(format!("{base}/hls/{id}/index.m3u8"), "live")];
        if row.profile == "passthrough" && row.profile_streams > 0 {
            // The group's ABR playlist: the source plus every running rendition.
            hls.push(link(format!("{base}/hls/{id}/master.m3u8"), "abr"));
        }
        let mut out = Playout {
            hls,
            web: vec![WebEntry::Link(link(format!("{base}/playout/{id}"), "live"))],
            ..Playout::default()
        };
        for a in self.assets(id, "recording", limit).await? {
            out.web.push(WebEntry::Vod(VodEntry {
                url: asset_url(&a.path),
                kind: "vod".into(),
                created_at: rfc3339(a.created_at),
                stream_id: id.clone(),
                session_id: a.session_id.clone(),
                index: a.idx,
                duration: a.duration_ms.map(|d| d as f64 / 1000.0),
                size: a.size_bytes,
                status: a.status.clone(),
            }));
        }
        for a in self.assets(id, "replay", limit).await? {
            let Some(session) = a.session_id.clone() else {
                continue;
            };
            out.replay.push(ReplayEntry {
                url: format!("{base}/replay/{session}"),
                hls: asset_url(&a.path),
                kind: "session".into(),
                index: a.idx,
                stream_id: id.clone(),
                streamname: row.streamname.clone(),
                session_id: session,
                started_at: rfc3339(a.started_at.unwrap_or(a.created_at)),
                ended_at: a.ended_at.map(rfc3339),
            });
        }
        let thumbs = self.assets(id, "thumbnail", limit).await?;
        if settings.thumbnail.enabled || !thumbs.is_empty() {
            out.thumbnails.push(ThumbnailEntry::Link(link(
                asset_url(&format!("{id}/thumbnail/latest.jpg")),
                "latest",
            )));
        }
        for a in thumbs {
            out.thumbnails.push(ThumbnailEntry::Image(ImageEntry {
                url: asset_url(&a.path),
                kind: "image".into(),
                created_at: rfc3339(a.created_at),
                width: a.width,
                height: a.height,
                preview: asset_url(&sibling(&a.path, ".320.jpg")),
                session_id: a.session_id.clone(),
            }));
        }
        let clips = self.assets(id, "motionclip", limit).await?;
        if settings.motionclip.enabled || !clips.is_empty() {
            out.motionclip.push(MotionClipEntry::Link(link(
                asset_url(&format!("{id}/motionclip/latest.gif")),
                "latest",
            )));
        }
        for a in clips {
            out.motionclip.push(MotionClipEntry::Clip(ClipEntry {
                url: asset_url(&a.path),
                kind: "clip".into(),
                created_at: rfc3339(a.created_at),
                duration: a.duration_ms.map(|d| d as f64 / 1000.0),
                mp4: asset_url(&sibling(&a.path, ".mp4")),
                width: a.width,
                height: a.height,
                session_id: a.session_id.clone(),
            }));
        }
        Ok(out)
    }
}

/// The file next to an asset with another suffix: `…/7.jpg` → `…/7.320.jpg`, `…/7.gif` → `…/7.mp4`.
pub fn sibling(path: &str, suffix: &str) -> String {
    let stem = path.rsplit_once('.').map_or(path, |(s, _)| s);
    format!("{stem}{suffix}")
}

/// Profiles of a new group: passthrough first, then the requested ones in order.
fn group_profiles(requested: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let mut out = vec!["passthrough".to_string()];
    for p in requested.unwrap_or_default() {
        if !PROFILES.contains(&p.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_profile",
                format!(
                    "unknown transcoding profile {p:?}; known profiles: {}",
                    PROFILES[1..].join(", ")
                ),
            ));
        }
        if out.contains(p) {
            if p == "passthrough" {
                continue;
            }
            return Err(ApiError::bad_request(
                "duplicate_profile",
                format!("transcoding profile {p:?} is listed twice"),
            ));
        }
        out.push(p.clone());
    }
    Ok(out)
}

fn clean_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    if tags.len() > 20 {
        return Err(ApiError::bad_request(
            "invalid_tags",
            "at most 20 tags per stream",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() || t.chars().count() > 64 {
            return Err(ApiError::bad_request(
                "invalid_tags",
                "each tag must be 1 to 64 characters",
            ));
        }
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organisation_id: &str,
    key: &str,
    role: Role,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO api_keys (id, organisation_id, key_hash, role, operator, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(new_id())
    .bind(organisation_id)
    .bind(hash_secret(key))
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A new stream of a group (its profile at `position` in the ladder) with its settings;
/// answers its id.
async fn insert_stream(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
    organisation_id: &str,
    profile: &str,
    position: usize,
    settings: &Processing,
    now: i64,
) -> Result<String, ApiError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO streams (id, group_id, organisation_id, profile, streamname, position, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(group_id)
    .bind(organisation_id)
    .bind(profile)
    .bind(new_streamname())
    .bind(position as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    write_settings(tx, &id, settings, now).await?;
    Ok(id)
}

async fn write_settings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    stream_id: &str,
    s: &Processing,
    now: i64,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM processing_settings WHERE stream_id = $1")
        .bind(stream_id)
        .execute(&mut **tx)
        .await?;
    let rows: [(&str, bool, Option<i64>, Option<i64>); 4] = [
        (
            "thumbnail",
            s.thumbnail.enabled,
            Some(s.thumbnail.interval),
            None,
        ),
        (
            "motionclip",
            s.motionclip.enabled,
            Some(s.motionclip.interval),
            Some(s.motionclip.duration),
        ),
        ("recording", s.recording.enabled, None, s.recording.duration),
        ("replay", s.replay.enabled, None, s.replay.duration),
    ];
    for (process, enabled, interval, duration) in rows {
        sqlx::query(
            "INSERT INTO processing_settings (stream_id, process, enabled, interval_s, duration_s, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(stream_id)
        .bind(process)
        .bind(enabled as i64)
        .bind(interval)
        .bind(duration)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn principal_from_row(r: &AnyRow, key_col: &str) -> Result<Principal, ApiError> {
    let role: String = r.try_get("role")?;
    Ok(Principal {
        key_id: r.try_get(key_col)?,
        organisation_id: r.try_get("organisation_id")?,
        role: role.parse()?,
        operator: r.try_get::<i64, _>("operator")? == 1,
    })
}

/// A stream's row with its group's name and source, and how many profile streams its group has
/// (a passthrough stream lists the group's ABR playlist when there are any).
const STREAM_SELECT: &str = "SELECT s.id, s.group_id, s.profile, s.streamname, s.created_at, \
     g.name, g.source, (SELECT COUNT(*) FROM streams p WHERE p.group_id = s.group_id \
     AND p.profile <> 'passthrough') AS profile_streams \
     FROM streams s JOIN stream_groups g ON g.id = s.group_id";

#[derive(sqlx::FromRow)]
struct StreamRow {
    id: String,
    group_id: String,
    profile: String,
    streamname: String,
    created_at: i64,
    name: String,
    source: Option<String>,
    profile_streams: i64,
}

const INGEST_SELECT: &str = "SELECT s.id AS stream_id, s.organisation_id, s.profile, g.source \
     FROM streams s JOIN stream_groups g ON g.id = s.group_id";

/// A file the database refers to (see [`Store::known_files`]).
#[derive(Debug, Clone)]
pub struct KnownFile {
    pub id: String,
    /// recording, thumbnail, motionclip, replay or clip.
    pub kind: String,
    /// Below the assets folder.
    pub path: String,
    pub status: String,
    /// A clip's poster image.
    pub poster: Option<String>,
}

/// Where an ingest lands.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IngestTarget {
    pub stream_id: String,
    pub organisation_id: String,
    pub profile: String,
    pub source: Option<String>,
}

/// A file a process is about to write.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub stream_id: String,
    pub session_id: Option<String>,
    /// "recording", "thumbnail", "motionclip" or "replay".
    pub kind: &'static str,
    /// Relative to the assets folder, `/`-separated.
    pub path: String,
    pub index: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

/// What ingest learnt about a session's media.
#[derive(Debug, Clone, Default)]
pub struct SessionCodecs {
    pub video_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub audio_codec: Option<String>,
    pub audio_sample_rate: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    started_at: i64,
    ended_at: Option<i64>,
    source: String,
    app: Option<String>,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    audio_sample_rate: Option<i64>,
    end_reason: Option<String>,
    warnings: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AssetRow {
    session_id: Option<String>,
    path: String,
    status: String,
    created_at: i64,
    duration_ms: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    size_bytes: Option<i64>,
    idx: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
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

/// What server code hands to request handlers and server functions.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub urls: Urls,
    /// Wrong API keys per client address (REST API and dashboard sign-in).
    pub auth_failures: std::sync::Arc<crate::auth_failures::AuthFailures>,
}
