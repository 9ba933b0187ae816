-- A finished session's frame rate (video frames over its media time), so the stream page can
-- show a profile's real quality after the session ended, not only while live.
ALTER TABLE sessions ADD COLUMN fps DOUBLE PRECISION;
