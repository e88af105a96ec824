-- Each Salesforce target claims only the events of its DR mode: due events are found by mode.
DROP INDEX IF EXISTS events_due;
CREATE INDEX IF NOT EXISTS events_due ON events (status, live_mode, next_attempt_at);
