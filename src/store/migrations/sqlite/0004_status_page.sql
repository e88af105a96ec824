-- The status page: each list filter on an index (newest first comes from the rowid in each), and
-- the delivered-per-hour chart on the delivered events' finish times (an index holding both
-- columns it reads, so that counting never reads the events themselves).
CREATE INDEX IF NOT EXISTS events_status ON events (status);
CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE INDEX IF NOT EXISTS events_order ON events (order_key);
CREATE INDEX IF NOT EXISTS events_delivered ON events (finished_at, status) WHERE status = 'delivered';
