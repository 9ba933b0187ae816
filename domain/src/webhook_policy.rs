//! What a webhook endpoint may be: http(s), and never an address inside the network unless
//! the operator allows loopback and private ones. Checked when an endpoint is added (the API
//! and the dashboard alike) and again before each delivery, since DNS may change.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::ApiError;

/// What endpoints may be and how failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Loopback and private addresses allowed (`--webhooks-allow-private`).
    pub allow_private: bool,
    /// The first retry's wait (ms); doubled each time.
    pub retry_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_private: false,
            retry_ms: 5000,
        }
    }
}

/// Why an address may not receive webhooks, if it may not.
fn refused_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let (link_local, private, loopback, other) = match ip {
        IpAddr::V4(v4) => (
            v4.is_link_local(),
            v4.is_private() || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64),
            v4.is_loopback(),
            v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        ),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_address(IpAddr::V4(v4), allow_private);
            }
            let seg = v6.segments();
            (
                seg[0] & 0xffc0 == 0xfe80,
                seg[0] & 0xfe00 == 0xfc00,
                v6.is_loopback(),
                v6.is_unspecified() || v6.is_multicast(),
            )
        }
    };
    if link_local {
        Some("a link-local address (cloud metadata services live there)")
    } else if other {
        Some("not a unicast address")
    } else if (private || loopback) && !allow_private {
        Some("a loopback or private address (the server does not allow those)")
    } else {
        None
    }
}

/// Checks an endpoint URL and resolves it: http(s) only, every address it resolves to allowed.
/// Done when the endpoint is added and again before each delivery (DNS may change); the
/// delivery then connects to the address checked here.
pub async fn check_url(url: &str, policy: Policy) -> Result<(String, SocketAddr), ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_url", m);
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("url must be http or https".into()));
    }
    if url.len() > 2048 || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "url must be at most 2048 characters, without credentials".into(),
        ));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("url needs a host".into()))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| bad(format!("{host} did not resolve in 5 s")))?
    .map_err(|e| bad(format!("{host} does not resolve: {e}")))?
    .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| bad(format!("{host} has no address")))?;
    for a in &addrs {
        if let Some(why) = refused_address(a.ip(), policy.allow_private) {
            return Err(bad(format!("{host} resolves to {}: {why}", a.ip())));
        }
    }
    Ok((host, first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_that_must_not_receive_webhooks() {
        let refused = |ip: &str, private| refused_address(ip.parse().unwrap(), private);
        assert!(refused("169.254.169.254", true).is_some_and(|w| w.contains("link-local")));
        assert!(refused("fe80::1", true).is_some());
        assert!(refused("::ffff:169.254.169.254", true).is_some());
        assert!(refused("0.0.0.0", true).is_some());
        assert!(refused("224.0.0.1", true).is_some());
        assert!(refused("127.0.0.1", false).is_some());
        assert!(refused("10.1.2.3", false).is_some());
        assert!(refused("100.64.0.1", false).is_some());
        assert!(refused("fd00:ec2::254", false).is_some());
        assert_eq!(refused("127.0.0.1", true), None);
        assert_eq!(refused("192.168.1.10", true), None);
        assert_eq!(refused("93.184.216.34", false), None);
        assert_eq!(refused("2606:4700::1111", false), None);
    }
}
