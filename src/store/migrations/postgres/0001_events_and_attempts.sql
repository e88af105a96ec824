-- Events as DR sent them, with their delivery state, every delivery attempt, and the few facts
-- the relays remember across restarts. Times are Unix milliseconds, as in the SQLite engine.
CREATE TABLE events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    live_mode       BOOLEAN NOT NULL,
    order_key       TEXT,
    received_at     BIGINT  NOT NULL,
    body            BYTEA   NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempts_400    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     BIGINT
);
-- Every delivery rewrites its row: vacuum early (each relay also vacuums after busy spells).
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
-- Claims read only pending events, due first.
CREATE INDEX events_due ON events (next_attempt_at, seq) WHERE status = 'pending';
-- "Is an earlier event of this order still pending?"
CREATE INDEX events_pending_order ON events (order_key, seq) WHERE status = 'pending';
CREATE INDEX events_status ON events (status, seq);
CREATE INDEX events_received ON events (received_at);

CREATE TABLE attempts (
    n           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq   BIGINT  NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    at          BIGINT  NOT NULL,
    status_code INTEGER,
    duration_ms BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT,
    excerpt     TEXT
);
CREATE INDEX attempts_event ON attempts (event_seq, n);

CREATE TABLE relay_state (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
