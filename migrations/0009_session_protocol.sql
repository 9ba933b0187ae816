-- Ingest protocols beyond the first two (SRT now, WHIP next). `sessions.source` keeps its
-- CHECK (rtmp, rtsp): SQLite cannot widen a CHECK without rebuilding the table that assets
-- and clips hang on, so a newer protocol is written here and read first.
ALTER TABLE sessions ADD COLUMN protocol TEXT;
