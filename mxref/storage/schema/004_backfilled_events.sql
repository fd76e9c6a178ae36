-- mxref schema, version 4: events fetched with backfill (older than what the room held) are
-- numbered by a counter of their own and stored with the negated value as stream ordering,
-- so that they sort before every live event and never show up as new in a /sync
-- (Client-Server API, "Syncing"; Server-Server API, "Backfilling and retrieving missing events").

INSERT INTO counters (name, value) VALUES ('backfilled_events', 0);
