-- The W3C traceparent of the span that received each event (NULL when traces are off), so that
-- its delivery attempts join its trace on any relay, after any restart.
ALTER TABLE events ADD COLUMN trace_parent TEXT;
