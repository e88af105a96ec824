-- Events as DR sent them, with their delivery state, and every delivery attempt.
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    live_mode       INTEGER NOT NULL,
    order_key       TEXT,
    received_at     INTEGER NOT NULL,
    body            BLOB    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempts_400    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     INTEGER
);
CREATE INDEX IF NOT EXISTS events_due ON events (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_pending_order ON events (order_key, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS attempts (
    event_seq   INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT,
    excerpt     TEXT
);
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_seq);
