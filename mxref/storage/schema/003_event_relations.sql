-- mxref schema, version 3: relations between events (Client-Server API "Forming
-- relationships between events", "Aggregations of child events", "Event replacements").
-- One row per accepted, non-outlier event whose content has an "m.relates_to" object with a
-- string "rel_type" and "event_id"; sender and type are copied so that validity checks
-- (an edit has the sender and type of its original) need no JSON parsing.

CREATE TABLE event_relations (
    event_id TEXT NOT NULL PRIMARY KEY,     -- the child (relating) event
    relates_to_id TEXT NOT NULL,            -- the parent event named by m.relates_to.event_id
    rel_type TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL
);
CREATE INDEX event_relations_relates_to_id_idx ON event_relations (relates_to_id, rel_type);
