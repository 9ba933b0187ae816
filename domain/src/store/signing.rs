//! Signed asset URLs: an organisation may require that its asset files (recordings, replays,
//! thumbnails, motion clips) are fetched through URLs the API handed out, valid until they
//! expire. nanoStream's documentation says such access control is not available for these
//! assets; here it is one setting per organisation.
//!
//! A URL carries its expiry and an HMAC-SHA256 (the organisation's key) of the expiry and the
//! asset's folder in its path: `/assets/s/EXPIRES/SIGNATURE/FOLDER/FILE`. Signing the folder,
//! not the file, lets an HLS replay's relative segment URLs resolve under the same signature.
//! Expiries are rounded up to ten minutes so the same page gives the same URLs (browser caches
//! keep working).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

/// Where signed asset URLs start, after `/assets/`.
pub const SIGNED_PREFIX: &str = "s/";
/// Bounds of an organisation's URL lifetime, in seconds.
pub const MIN_TTL: i64 = 60;
pub const MAX_TTL: i64 = 7 * 24 * 3600;
pub const DEFAULT_TTL: i64 = 6 * 3600;
const ROUND: i64 = 600;

/// An organisation's signing key and URL lifetime.
#[derive(Clone)]
pub struct AssetSigner {
    key: Vec<u8>,
    pub ttl: i64,
}

/// Why a request for an asset is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Required,
    Invalid,
    Expired,
}

fn folder(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

impl AssetSigner {
    pub fn new(key_hex: &str, ttl: Option<i64>) -> Option<AssetSigner> {
        Some(AssetSigner {
            key: hex::decode(key_hex).ok()?,
            ttl: ttl.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL),
        })
    }

    /// When a URL signed at `now_s` expires: the lifetime, rounded up to [`ROUND`].
    fn expiry(&self, now_s: i64) -> i64 {
        (now_s + self.ttl + ROUND - 1) / ROUND * ROUND
    }

    fn mac(&self, expires: i64, path: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{expires}\n{}", folder(path)).as_bytes());
        mac
    }

    /// The URL path after `/assets/` for `path`, valid for the organisation's lifetime from `now_s`.
    pub fn sign(&self, path: &str, now_s: i64) -> String {
        let expires = self.expiry(now_s);
        let sig = hex::encode(self.mac(expires, path).finalize().into_bytes());
        format!("{SIGNED_PREFIX}{expires}/{sig}/{path}")
    }

    /// The query that signs a public page link (`?expires=E&sig=S`) for `subject`: a stream
    /// (`stream/ID`, its watch and embed pages) or a session (`replay/ID`). The same lifetime as
    /// asset URLs; a page so opened hands out asset URLs of its own.
    pub fn sign_page(&self, subject: &str, now_s: i64) -> String {
        let expires = self.expiry(now_s);
        let sig = hex::encode(self.page_mac(expires, subject).finalize().into_bytes());
        format!("?expires={expires}&sig={sig}")
    }

    fn page_mac(&self, expires: i64, subject: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        // A page's message cannot be taken for an asset folder's (those have no "page").
        mac.update(format!("page\n{expires}\n{subject}").as_bytes());
        mac
    }

    /// Checks a page link's signature and expiry for `subject`.
    pub fn verify_page(
        &self,
        subject: &str,
        signature: Option<(i64, &str)>,
        now_s: i64,
    ) -> Result<(), Refused> {
        let (expires, sig_hex) = signature.ok_or(Refused::Required)?;
        checked(self.page_mac(expires, subject), expires, sig_hex, now_s)
    }

    /// Checks a signature (constant-time) and its expiry for `path`.
    pub fn verify(
        &self,
        path: &str,
        expires: i64,
        sig_hex: &str,
        now_s: i64,
    ) -> Result<(), Refused> {
        checked(self.mac(expires, path), expires, sig_hex, now_s)
    }
}

/// Checks a hex signature against `mac` (constant-time), then its expiry.
fn checked(mac: Hmac<Sha256>, expires: i64, sig_hex: &str, now_s: i64) -> Result<(), Refused> {
    let sig = hex::decode(sig_hex).map_err(|_| Refused::Invalid)?;
    mac.verify_slice(&sig).map_err(|_| Refused::Invalid)?;
    if now_s >= expires {
        return Err(Refused::Expired);
    }
    Ok(())
}

impl Refused {
    /// The 403 a refused asset or page answers; `what` is "assets" or "pages".
    pub fn error(self, what: &str) -> ApiError {
        let (code, message) = match self {
            Refused::Required => (
                "signature_required",
                format!("this organisation's {what} need a signed URL; take the URL from the API"),
            ),
            Refused::Invalid => (
                "signature_invalid",
                "the URL's signature does not match".to_string(),
            ),
            Refused::Expired => (
                "signature_expired",
                "the signed URL has expired; take a new one from the API".to_string(),
            ),
        };
        ApiError::new(403, code, message)
    }
}

/// An asset path with its signature taken apart: `(expires, signature, path)`.
pub fn split_signed(path: &str) -> Option<(i64, &str, &str)> {
    let rest = path.strip_prefix(SIGNED_PREFIX)?;
    let (expires, rest) = rest.split_once('/')?;
    let (sig, path) = rest.split_once('/')?;
    Some((expires.parse().ok()?, sig, path))
}

pub use crate::asset_kind::stream_of;

impl Store {
    /// The signer of the organisation that owns `stream_id`, if it signs its asset URLs.
    pub async fn asset_signer_of_stream(
        &self,
        stream_id: &str,
    ) -> Result<Option<AssetSigner>, ApiError> {
        let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT o.asset_key, o.asset_url_ttl FROM streams s \
             JOIN organisations o ON o.id = s.organisation_id WHERE s.id = $1",
        )
        .bind(stream_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(key, ttl)| AssetSigner::new(&key?, ttl)))
    }

    pub(crate) async fn asset_signer(
        &self,
        organisation_id: &str,
    ) -> Result<Option<AssetSigner>, ApiError> {
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT asset_key, asset_url_ttl FROM organisations WHERE id = $1")
                .bind(organisation_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(key, ttl)| AssetSigner::new(&key?, ttl)))
    }

    /// Whether the clip file at `path` (`clips/STREAM/ID.mp4|.jpg`) belongs to a public clip:
    /// share links work without a signature, by the clip's own choice.
    pub async fn is_public_clip_file(&self, path: &str) -> Result<bool, ApiError> {
        let Some(id) = path
            .strip_prefix("clips/")
            .and_then(|p| p.rsplit('/').next())
            .and_then(|f| f.split('.').next())
        else {
            return Ok(false);
        };
        let row: Option<(i64,)> = sqlx::query_as("SELECT public FROM clips WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some_and(|(p,)| p == 1))
    }

    /// Admin: turns signed asset URLs on (a fresh key, so URLs handed out before stop working)
    /// or off, with their lifetime.
    pub async fn set_asset_access(
        &self,
        p: &Principal,
        signed: bool,
        ttl: Option<i64>,
    ) -> Result<OrganisationView, ApiError> {
        p.require_admin()?;
        if let Some(t) = ttl {
            if !(MIN_TTL..=MAX_TTL).contains(&t) {
                return Err(crate::settings::FieldError {
                    field: "ttlSeconds".into(),
                    message: format!("ttlSeconds must be from {MIN_TTL} to {MAX_TTL} (got {t})"),
                }
                .into());
            }
        }
        let key = signed.then(|| {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut k);
            hex::encode(k)
        });
        sqlx::query(
            "UPDATE organisations SET asset_key = $1, \
             asset_url_ttl = COALESCE($2, asset_url_ttl) WHERE id = $3",
        )
        .bind(key)
        .bind(ttl)
        .bind(&p.organisation_id)
        .execute(&self.pool)
        .await?;
        self.organisation(&p.organisation_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_opens_its_folder_until_it_expires() {
        let s = AssetSigner::new(&"ab".repeat(32), Some(3600)).unwrap();
        let signed = s.sign("replay/st/se/index.m3u8", 1_000_000);
        let (expires, sig, path) = split_signed(&signed).unwrap();
        assert_eq!(path, "replay/st/se/index.m3u8");
        assert!(expires >= 1_003_600 && expires % 600 == 0);
        assert_eq!(s.verify(path, expires, sig, 1_000_000), Ok(()));
        // Same folder (a segment the playlist names): valid too.
        assert_eq!(
            s.verify("replay/st/se/seg-9.m4s", expires, sig, 1_000_000),
            Ok(())
        );
        // Another folder, another expiry, another key: not.
        assert_eq!(
            s.verify("replay/st/other/seg-9.m4s", expires, sig, 1_000_000),
            Err(Refused::Invalid)
        );
        assert_eq!(
            s.verify(path, expires + 600, sig, 1_000_000),
            Err(Refused::Invalid)
        );
        let other = AssetSigner::new(&"cd".repeat(32), None).unwrap();
        assert_eq!(
            other.verify(path, expires, sig, 1_000_000),
            Err(Refused::Invalid)
        );
        assert_eq!(
            s.verify(path, expires, "zz", 1_000_000),
            Err(Refused::Invalid)
        );
        assert_eq!(s.verify(path, expires, sig, expires), Err(Refused::Expired));
    }

    #[test]
    fn paths_name_their_stream() {
        assert_eq!(stream_of("recordings/st/a-1.mp4"), Some("st"));
        assert_eq!(stream_of("st/thumbnail/latest.jpg"), Some("st"));
        assert_eq!(split_signed("thumbnails/x/y/1.jpg"), None);
    }
}
