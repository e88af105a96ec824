-- Where each event came from: `webhook` (DR's POST) or `backfill` (DR's Events API).
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
