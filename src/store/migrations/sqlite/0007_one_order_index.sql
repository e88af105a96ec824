-- One index on the order key instead of two: the status page's order filter and the rule that keeps
-- an order's events in the order received ("its first pending event") both read (order_key,
-- status), newest or oldest by the rowid in each entry. A stored event then changes one random
-- page of an order index, not two: about a fifth less WAL per event.
DROP INDEX IF EXISTS events_pending_order;
DROP INDEX IF EXISTS events_order;
CREATE INDEX events_order ON events (order_key, status);
