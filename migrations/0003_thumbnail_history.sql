-- Thumbnails and motion clips kept per session (the newest N); NULL = the server default.
ALTER TABLE organisations ADD COLUMN history_per_session BIGINT;
