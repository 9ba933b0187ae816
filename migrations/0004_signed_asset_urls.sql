-- Signed asset URLs per organisation: the HMAC key (hex) while they are on, NULL = asset URLs
-- are public; and how long a signed URL stays valid, in seconds.
ALTER TABLE organisations ADD COLUMN asset_key TEXT;
ALTER TABLE organisations ADD COLUMN asset_url_ttl BIGINT;
