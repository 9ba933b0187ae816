//! Dashboard sign-in: an API key is exchanged for a cookie session (see the store's
//! `web_sessions`); server functions find the caller from that cookie.

pub const SESSION_COOKIE: &str = "liveproc_session";

/// Percent-encodes a query component (for `/login?next=…`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where to go after sign-in: only paths of this site, never another host (`//evil`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(feature = "ssr")]
pub fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use domain::services::Services;
    use domain::store::Principal;
    use domain::ApiError;
    use leptos::prelude::use_context;

    pub fn services() -> Result<Services, ApiError> {
        use_context::<Services>().ok_or_else(ApiError::internal)
    }

    /// The signed-in caller, or 401.
    pub async fn principal() -> Result<(Services, Principal), ApiError> {
        let services = services()?;
        let headers: http::HeaderMap = leptos_axum::extract()
            .await
            .map_err(|_| ApiError::internal())?;
        let token = super::session_cookie(&headers).ok_or_else(signed_out)?;
        let p = services
            .store
            .web_principal(&token)
            .await?
            .ok_or_else(signed_out)?;
        Ok((services, p))
    }

    fn signed_out() -> ApiError {
        ApiError::new(401, "unauthorized", "you are signed out; sign in again")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/stream/x")), "/stream/x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn encodes_query() {
        assert_eq!(encode_component("/a?b=c d"), "/a%3Fb%3Dc%20d");
    }
}
