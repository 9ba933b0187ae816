//! Organisations: their packages, retention, history limits, and the instance's counts.

use super::*;

/// A hundred years: longer is "keep" (null).
pub const MAX_RETENTION_DAYS: i64 = 36_500;

/// Thumbnails and motion clips kept per session unless the organisation says otherwise.
pub const DEFAULT_HISTORY_PER_SESSION: i64 = 100;

pub const MAX_HISTORY_PER_SESSION: i64 = 10_000;

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub organisations: i64,
    pub streams: i64,
    pub live_sessions: i64,
    pub sessions: i64,
}

impl Store {
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

    pub(super) async fn require_live_processing(
        &self,
        organisation_id: &str,
    ) -> Result<(), ApiError> {
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
}
