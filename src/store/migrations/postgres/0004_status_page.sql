-- The status page: each list filter on an index, newest first, and the delivered-per-hour chart
-- on the delivered events' finish times (events_status already serves the status filter).
CREATE INDEX events_type ON events (type, seq);
CREATE INDEX events_order ON events (order_key, seq);
CREATE INDEX events_delivered ON events (finished_at) WHERE status = 'delivered';
