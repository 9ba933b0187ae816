-- What a session dropped or refused, one warning a line (a track the server cannot carry, a
-- second publisher turned away): shown on the stream instead of only in the log.
ALTER TABLE sessions ADD COLUMN warnings TEXT;
