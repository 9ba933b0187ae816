//! Webhook deliveries: one task per endpoint sends that endpoint's due deliveries (the oldest
//! pending one of each stream, so a stream's events arrive in order), signs each, records each
//! attempt in the store and retries with exponential back-off for 24 hours. A slow or dead
//! endpoint holds up its own task only; ingest never waits for any of this (events are rows).
//!
//! Signature: `Liveproc-Signature: t=UNIX_SECONDS,v1=HEX` where HEX is HMAC-SHA256 with the
//! endpoint's secret over `t` + "." + the raw body. Receivers check it, the time (say, within
//! five minutes) and de-duplicate by `Liveproc-Event-Id` (deliveries are at least once).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;

use domain::store::events::{DueDelivery, Endpoint, RETRY_FOR_MS};
use domain::store::{now_ms, Store};
pub use domain::webhook_policy::{check_url, Policy};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long an endpoint has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle endpoint task looks for due deliveries.
const POLL: Duration = Duration::from_millis(250);
/// Deliveries of one endpoint in flight at once (each of a different lane).
const IN_FLIGHT: usize = 8;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 3600 * 1000;

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`: the base doubled per attempt, up to an hour, with
/// up to a tenth more so that endpoints coming back are not hit all at once.
fn backoff_ms(policy: Policy, attempts: i64) -> i64 {
    let base = (policy.retry_ms as i64).saturating_mul(1 << attempts.clamp(0, 20));
    let wait = base.min(MAX_BACKOFF_MS);
    wait + rand::random::<u32>() as i64 % (wait / 10 + 1)
}

/// Runs the endpoint tasks: starts one for each endpoint, stops those of deleted endpoints.
pub async fn run(store: Store, policy: Policy) {
    let mut tasks = Tasks::default();
    let tasks = &mut tasks.0;
    loop {
        match store.endpoints().await {
            Ok(endpoints) => {
                tasks.retain(|_, (e, task)| {
                    let keep = endpoints.iter().any(|n| n == e) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for e in endpoints {
                    if !tasks.contains_key(&e.id) {
                        let task = tokio::spawn(endpoint(store.clone(), e.clone(), policy));
                        tasks.insert(e.id.clone(), (e, task));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "webhooks: cannot list endpoints"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The endpoint tasks, stopped with their dispatcher (when `run` is dropped or aborted).
#[derive(Default)]
struct Tasks(HashMap<String, (Endpoint, tokio::task::JoinHandle<()>)>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, task) in self.0.values() {
            task.abort();
        }
    }
}

/// One endpoint's deliveries, for as long as it exists. Each batch holds at most one delivery
/// per lane (a stream's oldest pending), so they may go out together without reordering a
/// stream's events; a burst (a hundred streams' thumbnails at once) does not queue behind
/// one request at a time.
async fn endpoint(store: Store, e: Endpoint, policy: Policy) {
    let mut client = None;
    loop {
        let due = match store.due_deliveries(&e.id, now_ms(), 50).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err.message, "webhooks: cannot read deliveries");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let target = client_for(&e, policy, &mut client).await;
        let (store, e, target) = (&store, &e, &target);
        futures::stream::iter(due)
            .for_each_concurrent(IN_FLIGHT, |d| async move {
                let outcome = match target {
                    Ok(client) => send(client, e, &d).await,
                    Err(err) => Err(err.clone()),
                };
                record(store, e, &d, outcome, policy).await;
            })
            .await;
    }
}

/// Writes an attempt's outcome: delivered, or when to try again (given up after 24 h).
async fn record(
    store: &Store,
    e: &Endpoint,
    d: &DueDelivery,
    outcome: Result<u16, (Option<u16>, String)>,
    policy: Policy,
) {
    let (status, error) = match &outcome {
        Ok(status) => (Some(*status), None),
        Err((status, error)) => (*status, Some(error.as_str())),
    };
    let retry_at = match error {
        None => None,
        Some(_) if now_ms() - d.event_created_ms >= RETRY_FOR_MS => None,
        Some(_) => Some(now_ms() + backoff_ms(policy, d.attempts)),
    };
    if let Some(error) = error {
        tracing::info!(endpoint = %e.id, event = %d.event.id, attempts = d.attempts + 1,
            error, "webhook delivery failed");
    }
    if let Err(err) = store.delivery_attempt(&d.id, status, error, retry_at).await {
        tracing::warn!(error = %err.message, "webhooks: cannot record an attempt");
    }
}

/// The endpoint's client, after checking where its host points now (DNS can change): kept
/// between batches (its connections are reused) while the checked address stays the same.
async fn client_for(
    e: &Endpoint,
    policy: Policy,
    cache: &mut Option<(std::net::SocketAddr, reqwest::Client)>,
) -> Result<reqwest::Client, (Option<u16>, String)> {
    let (host, addr) = check_url(&e.url, policy)
        .await
        .map_err(|err| (None, err.message))?;
    if let Some((checked, client)) = cache.as_ref() {
        if *checked == addr {
            return Ok(client.clone());
        }
    }
    // The address checked above is the one connected to: no second lookup to rebind.
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .build()
        .map_err(|err| (None, err.to_string()))?;
    *cache = Some((addr, client.clone()));
    Ok(client)
}

/// Sends one delivery: the status of a 2xx answer, or the status (if any) and why not.
async fn send(
    client: &reqwest::Client,
    e: &Endpoint,
    d: &DueDelivery,
) -> Result<u16, (Option<u16>, String)> {
    let body = serde_json::to_vec(&d.event).map_err(|err| (None, err.to_string()))?;
    let t = now_ms() / 1000;
    let answer = client
        .post(&e.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", "liveproc-webhooks/1")
        .header("Liveproc-Event-Id", &d.event.id)
        .header("Liveproc-Event-Type", &d.event.kind)
        .header("Liveproc-Signature", signature(&e.secret, t, &body))
        .body(body)
        .send()
        .await
        .map_err(|err| (None, short_error(&err)))?;
    let status = answer.status().as_u16();
    if answer.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("the endpoint answered {status}")))
    }
}

fn short_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        format!("no answer in {} s", TIMEOUT.as_secs())
    } else if err.is_connect() {
        "could not connect".into()
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_time_and_body() {
        // RFC 4231-style check against an independent computation of the same message.
        let s = signature("whsec_test", 1_700_000_000, b"{\"a\":1}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            s,
            format!(
                "t=1700000000,v1={}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let p = Policy {
            allow_private: false,
            retry_ms: 1000,
        };
        let w = |n| backoff_ms(p, n);
        assert!((1000..=1100).contains(&w(0)));
        assert!((4000..=4400).contains(&w(2)));
        assert!((3_600_000..=3_960_000).contains(&w(30)));
    }
}
