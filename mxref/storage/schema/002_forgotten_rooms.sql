-- mxref schema, version 2: rooms users have forgotten (POST /rooms/{roomId}/forget).
-- A room stays forgotten while the user's membership is the one they forgot: the row keeps
-- the stream position of that membership, and any later membership change un-forgets it.

CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,        -- room_memberships.stream_ordering when forgotten
    PRIMARY KEY (user_id, room_id)
);
