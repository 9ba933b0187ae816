-- The event outbox: each change a user cares about is a row, written in the transaction of the
-- change. `seq` orders events as they committed: it comes from the one counter row, whose
-- update serialises the writers of events until they commit (SQLite and PostgreSQL alike).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('events', 0);

CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    organisation_id TEXT NOT NULL,
    stream_id TEXT,
    session_id TEXT,
    created_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_organisation ON events (organisation_id, seq);

-- Webhook endpoints of an organisation, and one delivery row per (endpoint, event): the
-- delivery state survives restarts.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    types TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq BIGINT NOT NULL,
    -- Deliveries of one stream go in order; events without a stream are their own lane.
    lane TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX deliveries_pending ON deliveries (webhook_id, state, event_seq);
CREATE INDEX deliveries_log ON deliveries (webhook_id, created_at);
