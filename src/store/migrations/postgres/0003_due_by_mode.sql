-- Each Salesforce target claims only the events of its DR mode: due events are found by mode.
DROP INDEX IF EXISTS events_due;
CREATE INDEX events_due ON events (live_mode, next_attempt_at, seq) WHERE status = 'pending';
