-- Small facts the relay must remember across restarts (a refused Salesforce sign-in, ...).
-- PostgreSQL's first migration already made this table; the number is kept so that both engines
-- count their schema alike.
CREATE TABLE IF NOT EXISTS relay_state (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
