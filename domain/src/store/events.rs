//! The event outbox and webhook deliveries. An event is written in the transaction of the change
//! it reports, with one pending delivery per endpoint that wants it; a dispatcher (the server's
//! `webhooks`) sends deliveries, each stream's in order, and records every attempt here, so
//! nothing is lost to a restart or a `kill -9`. Clients that were away read the same events
//! with a cursor (`GET /api/v1/events?after=SEQ`).

use sqlx::Any;

use super::*;

pub use crate::view::EVENT_TYPES;

/// A secret shorter than this is refused.
pub const MIN_SECRET: usize = 32;
/// How long a delivery is retried before it is marked failed.
pub const RETRY_FOR_MS: i64 = 24 * 3600 * 1000;

/// What happened, to whom.
pub struct NewEvent<'a> {
    pub kind: &'static str,
    pub organisation_id: &'a str,
    pub stream_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub data: serde_json::Value,
}

/// Writes `e` in `tx` with a pending delivery for each endpoint of its organisation that wants
/// it. The counter row's update orders events as their transactions commit.
pub(super) async fn record(
    tx: &mut sqlx::Transaction<'_, Any>,
    e: NewEvent<'_>,
) -> Result<i64, ApiError> {
    let (seq,): (i64,) = sqlx::query_as(
        "UPDATE counters SET value = value + 1 WHERE name = 'events' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO events (seq, id, type, organisation_id, stream_id, session_id, created_at, data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(format!("evt_{}", new_id().replace('-', "")))
    .bind(e.kind)
    .bind(e.organisation_id)
    .bind(e.stream_id)
    .bind(e.session_id)
    .bind(now)
    .bind(e.data.to_string())
    .execute(&mut **tx)
    .await?;
    let hooks: Vec<(String, String)> =
        sqlx::query_as("SELECT id, types FROM webhooks WHERE organisation_id = $1")
            .bind(e.organisation_id)
            .fetch_all(&mut **tx)
            .await?;
    for (hook, types) in hooks {
        // A test event goes to the endpoint it tests only (see `send_test`).
        if e.kind == "webhook.test" || !wants(&types, e.kind) {
            continue;
        }
        insert_delivery(tx, &hook, seq, e.stream_id, now).await?;
    }
    Ok(seq)
}

async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, Any>,
    hook: &str,
    seq: i64,
    stream_id: Option<&str>,
    now: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO deliveries (id, webhook_id, event_seq, lane, state, next_at, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
    )
    .bind(new_id())
    .bind(hook)
    .bind(seq)
    .bind(stream_id.unwrap_or("organisation"))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn wants(types: &str, kind: &str) -> bool {
    types.split(',').any(|t| t == "*" || t == kind)
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    organisation_id: String,
    stream_id: Option<String>,
    session_id: Option<String>,
    created_at: i64,
    data: String,
}

const EVENT_SELECT: &str = "SELECT e.seq, e.id, e.type, e.organisation_id, e.stream_id, \
     e.session_id, e.created_at, e.data FROM events e";

impl EventRow {
    fn view(self) -> EventView {
        EventView {
            id: self.id,
            seq: self.seq,
            kind: self.kind,
            created_at: rfc3339(self.created_at),
            organisation_id: self.organisation_id,
            stream_id: self.stream_id,
            session_id: self.session_id,
            data: serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A delivery the dispatcher should make now.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub attempts: i64,
    pub event: EventView,
    pub event_created_ms: i64,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    delivery_id: String,
    attempts: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

/// An endpoint as the dispatcher needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub secret: String,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    url: String,
    types: String,
    created_at: i64,
}

impl WebhookRow {
    fn view(self, secret: Option<String>) -> WebhookView {
        WebhookView {
            id: self.id,
            url: self.url,
            events: self.types.split(',').map(str::to_string).collect(),
            created_at: rfc3339(self.created_at),
            secret,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    state: String,
    attempts: i64,
    next_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl Store {
    /// Events of the caller's organisation after `after` (a `seq`), oldest first.
    pub async fn events(
        &self,
        p: &Principal,
        after: i64,
        limit: i64,
    ) -> Result<EventPage, ApiError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{EVENT_SELECT} WHERE e.organisation_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
        ))
        .bind(&p.organisation_id)
        .bind(after)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        let events: Vec<EventView> = rows.into_iter().map(EventRow::view).collect();
        let next = events.last().map_or(after, |e| e.seq);
        Ok(EventPage { events, next })
    }

    /// The newest event's `seq` of the caller's organisation (0 before any): where a live
    /// event stream starts.
    pub async fn last_event_seq(&self, p: &Principal) -> Result<i64, ApiError> {
        let (seq,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(seq) FROM events WHERE organisation_id = $1")
                .bind(&p.organisation_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Writes one event in a transaction of its own (a change that is one statement).
    pub async fn add_event(&self, e: NewEvent<'_>) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await?;
        record(&mut tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an endpoint; `url` was checked by the caller (scheme, addresses). Answers it with
    /// its secret (generated when none was given), the only time the secret is shown.
    pub async fn create_webhook(
        &self,
        p: &Principal,
        req: &CreateWebhook,
    ) -> Result<WebhookView, ApiError> {
        p.require_edit()?;
        let secret = match &req.secret {
            Some(s) if s.len() < MIN_SECRET => {
                return Err(ApiError::bad_request(
                    "invalid_secret",
                    format!("secret must be at least {MIN_SECRET} bytes"),
                ))
            }
            Some(s) => s.clone(),
            None => new_secret("whsec_"),
        };
        let mut types: Vec<String> = req.events.clone();
        if types.is_empty() {
            types.push("*".into());
        }
        for t in &types {
            if t != "*" && !EVENT_TYPES.contains(&t.as_str()) {
                return Err(ApiError::bad_request(
                    "invalid_event_type",
                    format!("{t:?} is not an event type; use \"*\" or one of {EVENT_TYPES:?}"),
                ));
            }
        }
        let id = format!("wh_{}", new_id().replace('-', ""));
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhooks (id, organisation_id, url, secret, types, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&p.organisation_id)
        .bind(&req.url)
        .bind(&secret)
        .bind(types.join(","))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(WebhookRow {
            id,
            url: req.url.clone(),
            types: types.join(","),
            created_at: now,
        }
        .view(Some(secret)))
    }

    pub async fn webhooks(&self, p: &Principal) -> Result<Vec<WebhookView>, ApiError> {
        let rows: Vec<WebhookRow> = sqlx::query_as(
            "SELECT id, url, types, created_at FROM webhooks WHERE organisation_id = $1 \
             ORDER BY created_at",
        )
        .bind(&p.organisation_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.view(None)).collect())
    }

    async fn own_webhook(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT id FROM webhooks WHERE id = $1 AND organisation_id = $2")
                .bind(id)
                .bind(&p.organisation_id)
                .fetch_optional(&self.pool)
                .await?;
        found
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    pub async fn delete_webhook(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        p.require_edit()?;
        self.own_webhook(p, id).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM deliveries WHERE webhook_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first: its delivery log.
    pub async fn deliveries(
        &self,
        p: &Principal,
        id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, ApiError> {
        self.own_webhook(p, id).await?;
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT d.id, e.id AS event_id, e.type AS event_type, d.state, d.attempts, d.next_at, \
             d.last_status, d.last_error, d.created_at, d.delivered_at FROM deliveries d \
             JOIN events e ON e.seq = d.event_seq WHERE d.webhook_id = $1 \
             ORDER BY d.event_seq DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DeliveryView {
                id: r.id,
                event_id: r.event_id,
                event_type: r.event_type,
                next_attempt_at: (r.state == "pending").then(|| rfc3339(r.next_at)),
                state: r.state,
                attempts: r.attempts,
                last_status: r.last_status,
                last_error: r.last_error,
                created_at: rfc3339(r.created_at),
                delivered_at: r.delivered_at.map(rfc3339),
            })
            .collect())
    }

    /// Sends a `webhook.test` event to this endpoint only.
    pub async fn send_test(&self, p: &Principal, id: &str) -> Result<(), ApiError> {
        p.require_edit()?;
        self.own_webhook(p, id).await?;
        let mut tx = self.pool.begin().await?;
        let seq = record(
            &mut tx,
            NewEvent {
                kind: "webhook.test",
                organisation_id: &p.organisation_id,
                stream_id: None,
                session_id: None,
                data: serde_json::json!({ "webhookId": id }),
            },
        )
        .await?;
        insert_delivery(&mut tx, id, seq, None, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends one delivery again, now (a delivered or failed one too).
    pub async fn resend(&self, p: &Principal, hook: &str, delivery: &str) -> Result<(), ApiError> {
        p.require_edit()?;
        self.own_webhook(p, hook).await?;
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_at = $1, delivered_at = NULL \
             WHERE id = $2 AND webhook_id = $3",
        )
        .bind(now_ms())
        .bind(delivery)
        .bind(hook)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found("delivery"));
        }
        Ok(())
    }

    /// Every endpoint, for the dispatcher.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, ApiError> {
        Ok(sqlx::query_as("SELECT id, url, secret FROM webhooks")
            .fetch_all(&self.pool)
            .await?)
    }

    /// What endpoint `hook` should get now: the oldest pending delivery of each lane (a stream's
    /// deliveries go in order), if its time has come.
    pub async fn due_deliveries(
        &self,
        hook: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, ApiError> {
        let rows: Vec<DueRow> = sqlx::query_as(
            // The lanes with pending deliveries, one index lookup each (`lanes`), then each
            // lane's oldest (`heads`): only a head is sent, so a stream's events stay in order.
            "WITH RECURSIVE lanes(lane) AS ( \
                 SELECT MIN(lane) FROM deliveries WHERE webhook_id = $1 AND state = 'pending' \
                 UNION ALL \
                 SELECT (SELECT MIN(o.lane) FROM deliveries o WHERE o.webhook_id = $1 \
                     AND o.state = 'pending' AND o.lane > l.lane) \
                 FROM lanes l WHERE l.lane IS NOT NULL), \
             heads(id) AS ( \
                 SELECT (SELECT o.id FROM deliveries o WHERE o.webhook_id = $1 \
                     AND o.state = 'pending' AND o.lane = l.lane ORDER BY o.event_seq LIMIT 1) \
                 FROM lanes l WHERE l.lane IS NOT NULL) \
             SELECT d.id AS delivery_id, d.attempts, e.seq, e.id, e.type, e.organisation_id, \
             e.stream_id, e.session_id, e.created_at, e.data FROM heads h \
             JOIN deliveries d ON d.id = h.id \
             JOIN events e ON e.seq = d.event_seq \
             WHERE d.next_at <= $2 \
             ORDER BY d.event_seq LIMIT $3",
        )
        .bind(hook)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DueDelivery {
                id: r.delivery_id,
                attempts: r.attempts,
                event_created_ms: r.event.created_at,
                event: r.event.view(),
            })
            .collect())
    }

    /// Records an attempt: delivered, or to be tried again at `retry_at` (`None`: given up).
    pub async fn delivery_attempt(
        &self,
        id: &str,
        status: Option<u16>,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<(), ApiError> {
        let now = now_ms();
        let (state, next_at, delivered_at) = match (error, retry_at) {
            (None, _) => ("delivered", now, Some(now)),
            (Some(_), Some(at)) => ("pending", at, None),
            (Some(_), None) => ("failed", now, None),
        };
        sqlx::query(
            "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
             last_status = $3, last_error = $4, delivered_at = $5 WHERE id = $6",
        )
        .bind(state)
        .bind(next_at)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(delivered_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
