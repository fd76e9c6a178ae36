-- mxref schema, version 1. Portable SQL (SQLite and PostgreSQL).
-- Never edit this file once released: add a new numbered file instead.
-- Flags are SMALLINT 0/1; JSON is TEXT; "no value" in a primary key column is ''.

-- Named counters: stream positions and ID allocators (see Transaction.next_counter_value).
CREATE TABLE counters (
    name TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('events', 0);
INSERT INTO counters (name, value) VALUES ('account_data', 0);
INSERT INTO counters (name, value) VALUES ('receipts', 0);
INSERT INTO counters (name, value) VALUES ('state_groups', 0);
INSERT INTO counters (name, value) VALUES ('filters', 0);

-- Events ---------------------------------------------------------------------------------

CREATE TABLE events (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    stream_ordering BIGINT UNIQUE,          -- NULL for outliers
    outlier SMALLINT NOT NULL,
    rejected_reason TEXT,                   -- NULL if accepted
    soft_failed SMALLINT NOT NULL,
    state_group BIGINT,                     -- state after the event; NULL for outliers
    redacts TEXT,                           -- for m.room.redaction events
    membership TEXT,                        -- for m.room.member events
    pdu_json TEXT NOT NULL
);
CREATE INDEX events_room_id_stream_ordering_idx ON events (room_id, stream_ordering);
CREATE INDEX events_room_id_depth_stream_ordering_idx ON events (room_id, depth, stream_ordering);
CREATE INDEX events_redacts_idx ON events (redacts);

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);

CREATE TABLE event_auth_edges (
    event_id TEXT NOT NULL,
    auth_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_event_id)
);

CREATE TABLE event_txn_ids (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,                -- '' for a device-less access token
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

CREATE TABLE current_state_events (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Every change to current state, at the stream position where it became current.
CREATE TABLE current_state_deltas (
    stream_ordering BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,                          -- NULL: the key was removed
    prev_event_id TEXT                      -- NULL: the key was new
);
CREATE INDEX current_state_deltas_stream_ordering_idx ON current_state_deltas (stream_ordering);
CREATE INDEX current_state_deltas_room_id_stream_ordering_idx
    ON current_state_deltas (room_id, stream_ordering);

-- State groups -----------------------------------------------------------------------------

CREATE TABLE state_groups (
    id BIGINT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT,                      -- NULL: a full snapshot
    delta_depth INTEGER NOT NULL            -- deltas between this group and its snapshot
);

CREATE TABLE state_group_entries (
    state_group BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,                          -- NULL: removed relative to prev_group
    PRIMARY KEY (state_group, type, state_key)
);

-- Rooms ------------------------------------------------------------------------------------

CREATE TABLE rooms (
    room_id TEXT NOT NULL PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT,
    is_public SMALLINT NOT NULL,
    created_ts BIGINT NOT NULL
);

CREATE TABLE room_aliases (
    room_alias TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT
);
CREATE INDEX room_aliases_room_id_idx ON room_aliases (room_id);

CREATE TABLE room_alias_servers (
    room_alias TEXT NOT NULL,
    server TEXT NOT NULL,
    PRIMARY KEY (room_alias, server)
);

-- Current membership per (room, user), from current state or out-of-band events.
CREATE TABLE room_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,        -- where this membership took effect
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_user_id_stream_ordering_idx
    ON room_memberships (user_id, stream_ordering);

CREATE TABLE room_stats_current (
    room_id TEXT NOT NULL PRIMARY KEY,
    joined_members INTEGER NOT NULL,
    invited_members INTEGER NOT NULL,
    name TEXT,
    topic TEXT,
    avatar_url TEXT,
    canonical_alias TEXT,
    join_rule TEXT,
    history_visibility TEXT,
    guest_access TEXT,
    room_type TEXT
);

-- Accounts ---------------------------------------------------------------------------------

CREATE TABLE users (
    user_id TEXT NOT NULL PRIMARY KEY,
    password_hash TEXT,
    is_admin SMALLINT NOT NULL,
    is_guest SMALLINT NOT NULL,
    created_ts BIGINT NOT NULL,
    user_type TEXT,
    deactivated SMALLINT NOT NULL
);

CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    created_ts BIGINT NOT NULL,
    last_seen_ts BIGINT,
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX access_tokens_user_id_idx ON access_tokens (user_id);

CREATE TABLE profiles (
    user_id TEXT NOT NULL PRIMARY KEY,
    displayname TEXT,
    avatar_url TEXT
);

-- Client data ------------------------------------------------------------------------------

CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,                  -- '' for global account data
    data_type TEXT NOT NULL,
    content_json TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_user_id_stream_id_idx ON account_data (user_id, stream_id);

CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id BIGINT NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,                -- '' for an unthreaded receipt
    event_id TEXT NOT NULL,
    data_json TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream_id_idx ON receipts (stream_id);

-- Federation -------------------------------------------------------------------------------

CREATE TABLE received_transactions (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response_code INTEGER NOT NULL,
    response_json TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);

CREATE TABLE destinations (
    destination TEXT NOT NULL PRIMARY KEY,
    retry_last_ts BIGINT NOT NULL,
    retry_interval BIGINT NOT NULL,
    failure_ts BIGINT,
    last_successful_stream_ordering BIGINT
);

CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    from_server TEXT NOT NULL,
    verify_key_b64 TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id, from_server)
);
