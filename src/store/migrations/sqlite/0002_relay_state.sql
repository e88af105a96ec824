-- Small facts the relay must remember across restarts (a refused Salesforce sign-in, ...).
CREATE TABLE IF NOT EXISTS relay_state (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
