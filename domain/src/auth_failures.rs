//! A bound on guessing API keys: each client address may fail authentication `limit` times per
//! window; after that, its requests that need a key are refused (429) until the window ends,
//! before any key is looked at. Shared by the REST API and the dashboard's sign-in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ApiError;

/// Addresses remembered at most; beyond it, entries of past windows are dropped first, then all
/// (a flood of addresses then gets fresh windows rather than growing memory).
const MAX_ADDRESSES: usize = 100_000;

fn known(ip: Option<IpAddr>) -> IpAddr {
    ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into())
}

pub struct AuthFailures {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthFailures {
    pub fn new(limit: u32, window: Duration) -> AuthFailures {
        AuthFailures {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// 429 when `ip` has used up its failures in the current window. Requests whose address is
    /// unknown (a router called without a listener, as in tests) share one.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let ip = known(ip);
        let seen = self.seen.lock().map_err(|_| ApiError::internal())?;
        match seen.get(&ip) {
            Some((since, n)) if *n >= self.limit && since.elapsed() < self.window => {
                let wait = (self.window - since.elapsed()).as_secs() + 1;
                Err(ApiError::new(
                    429,
                    "too_many_auth_failures",
                    format!(
                        "{} requests with an unknown API key came from this address; try again in {wait} s",
                        self.limit
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure of `ip`.
    pub fn failed(&self, ip: Option<IpAddr>) {
        let ip = known(ip);
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&ip) {
            let window = self.window;
            seen.retain(|_, (since, _)| since.elapsed() < window);
            if seen.len() >= MAX_ADDRESSES {
                seen.clear();
            }
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let f = AuthFailures::new(3, Duration::from_millis(200));
        let (a, b): (Option<IpAddr>, Option<IpAddr>) = (
            Some("10.0.0.1".parse().unwrap()),
            Some("10.0.0.2".parse().unwrap()),
        );
        for _ in 0..3 {
            assert!(f.check(a).is_ok());
            f.failed(a);
        }
        let e = f.check(a).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (429, "too_many_auth_failures"));
        assert!(f.check(b).is_ok(), "other addresses are not affected");
        std::thread::sleep(Duration::from_millis(250));
        assert!(f.check(a).is_ok(), "a new window starts afresh");
        f.failed(a);
        assert!(f.check(a).is_ok());
    }
}
