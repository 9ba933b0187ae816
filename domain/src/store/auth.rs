//! API keys, roles and dashboard sign-in: who the caller is and what they may do.

use super::*;

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

/// A fresh operator key, for when none was given on the command line.
pub fn new_operator_key() -> String {
    new_secret("lp_")
}

/// Dashboard sign-ins last a week.
pub(super) const WEB_SESSION_MS: i64 = 7 * 24 * 3600 * 1000;

impl Store {
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

    pub async fn create_key(&self, organisation_id: &str, role: Role) -> Result<String, ApiError> {
        let key = new_secret("lp_");
        let mut tx = self.pool.begin().await?;
        insert_key(&mut tx, organisation_id, &key, role).await?;
        tx.commit().await?;
        Ok(key)
    }

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
}

pub(super) async fn insert_key(
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

pub(super) fn principal_from_row(r: &AnyRow, key_col: &str) -> Result<Principal, ApiError> {
    let role: String = r.try_get("role")?;
    Ok(Principal {
        key_id: r.try_get(key_col)?,
        organisation_id: r.try_get("organisation_id")?,
        role: role.parse()?,
        operator: r.try_get::<i64, _>("operator")? == 1,
    })
}
