-- liveproc schema. One file serves SQLite and PostgreSQL: only TEXT and BIGINT columns, ids made by
-- the server, times in milliseconds since the Unix epoch (UTC), flags as 0/1. sqlx's Any driver
-- decodes exactly these types on both backends.

-- An organisation owns keys and streams. live_processing is its package switch:
-- 0 = "upgrade needed" (no process may be enabled), 1 = enabled.
CREATE TABLE organisations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    live_processing BIGINT NOT NULL DEFAULT 0,
    -- Days to keep recordings; NULL keeps them (used by the recording process).
    retention_days BIGINT,
    created_at BIGINT NOT NULL
);

-- Keys are shown once and stored as SHA-256 hex: they are 256-bit random, so a plain hash is enough.
-- operator = 1 marks the --admin-key, which may also manage organisations.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    operator BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Dashboard sign-in: a cookie carries a random token whose hash points at the key that signed in,
-- so revoking the key ends its sessions.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- A stream group is what a user creates: one ingest, one stream per transcoding profile.
CREATE TABLE stream_groups (
    id TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- rtsp:// URL pulled by a worker, or NULL for RTMP push.
    source TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE stream_tags (
    group_id TEXT NOT NULL REFERENCES stream_groups (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (group_id, tag)
);
CREATE INDEX stream_tags_tag ON stream_tags (tag);

-- One stream per profile; 'passthrough' (position 0) always exists and carries the group's ingest.
CREATE TABLE streams (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES stream_groups (id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    streamname TEXT NOT NULL UNIQUE,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (group_id, profile)
);
CREATE INDEX streams_org ON streams (organisation_id, created_at);

-- The saved settings of each process of a stream. A session copies them when it starts, so edits
-- of a live stream wait for the next ingest (the stream object's processing.pending).
CREATE TABLE processing_settings (
    stream_id TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    process TEXT NOT NULL CHECK (process IN ('thumbnail', 'motionclip', 'recording', 'replay')),
    enabled BIGINT NOT NULL,
    interval_s BIGINT,
    duration_s BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (stream_id, process)
);

-- One row per ingest from start to stop. ended_at NULL = live (start-up closes those a crash left).
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    source TEXT NOT NULL CHECK (source IN ('rtmp', 'rtsp')),
    -- RTMP application: 'live', or 'rec' which forces recording on.
    app TEXT,
    video_codec TEXT,
    audio_codec TEXT,
    width BIGINT,
    height BIGINT,
    audio_sample_rate BIGINT,
    -- JSON copy of the processing settings in force for this session.
    processing TEXT NOT NULL,
    forced_recording BIGINT NOT NULL DEFAULT 0,
    end_reason TEXT
);
CREATE INDEX sessions_stream ON sessions (stream_id, started_at);

-- Files the processes write: recordings (MP4), thumbnails (JPEG), motion clips (GIF) and replay
-- playlists. path is relative to the data folder; status 'writing' rows found at start-up are
-- finalised or marked 'failed', never dropped.
CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('recording', 'thumbnail', 'motionclip', 'replay')),
    path TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('writing', 'ready', 'failed')),
    created_at BIGINT NOT NULL,
    duration_ms BIGINT,
    width BIGINT,
    height BIGINT,
    size_bytes BIGINT,
    idx BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX assets_stream_kind ON assets (stream_id, kind, created_at);

-- Clips cut from a session's replay; public = 1 lets /clip/ID be opened without signing in.
CREATE TABLE clips (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    stream_id TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    path TEXT NOT NULL,
    title TEXT,
    public BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX clips_session ON clips (session_id, created_at);
