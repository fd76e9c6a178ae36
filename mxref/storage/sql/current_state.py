"""Reading and writing a room's current state inside a transaction, with what is
derived from it: the delta history, memberships and room stats.

These functions take a :class:`~mxref.storage.database.Transaction` and are
shared by the event store (which writes current state when persisting) and the
room store (which reads memberships). They decide nothing: the services
computed the delta; here it is only recorded.
"""

from mxref.storage.database import decode_json

MEMBER = "m.room.member"

# (event type, content field, room_stats_current column) copied from current state.
_STATS_FIELDS = (
    ("m.room.name", "name", "name"),
    ("m.room.topic", "topic", "topic"),
    ("m.room.avatar", "url", "avatar_url"),
    ("m.room.canonical_alias", "alias", "canonical_alias"),
    ("m.room.join_rules", "join_rule", "join_rule"),
    ("m.room.history_visibility", "history_visibility", "history_visibility"),
    ("m.room.guest_access", "guest_access", "guest_access"),
    ("m.room.create", "type", "room_type"),
)
_STATS_BY_TYPE = {event_type: (field, column) for event_type, field, column in _STATS_FIELDS}


def type_filter_sql(types):
    """A SQL condition and args restricting ``(type, state_key)`` columns.

    :param types: iterable of ``(type, state_key_or_None)``.
    :returns: ``(sql, args)``; ``sql`` is ``"1 = 0"`` for an empty filter.
    """
    clauses, args = [], []
    for event_type, state_key in types:
        if state_key is None:
            clauses.append("type = ?")
            args.append(event_type)
        else:
            clauses.append("(type = ? AND state_key = ?)")
            args.extend((event_type, state_key))
    if not clauses:
        return "1 = 0", []
    return "(" + " OR ".join(clauses) + ")", args


def filter_state_map(state, types):
    """Keep the entries of a state map matching a ``types`` filter (``None`` keeps all)."""
    if types is None:
        return state
    wanted_types = {t for t, k in types if k is None}
    wanted_keys = {(t, k) for t, k in types if k is not None}
    return {key: event_id for key, event_id in state.items() if key[0] in wanted_types or key in wanted_keys}


def read_current_state_ids_txn(txn, room_id, types=None, at_stream=None):
    """The room's current state map, optionally as it was at a stream position."""
    sql = "SELECT type, state_key, event_id FROM current_state_events WHERE room_id = ?"
    args = [room_id]
    types = None if types is None else list(types)
    if types is not None and at_stream is None and len(types) <= 50:
        condition, condition_args = type_filter_sql(types)
        sql += " AND " + condition
        args += condition_args
    state = {(t, k): e for t, k, e in txn.select(sql, args)}
    if at_stream is not None:
        rows = txn.select(
            "SELECT type, state_key, prev_event_id FROM current_state_deltas"
            " WHERE room_id = ? AND stream_ordering > ?"
            " ORDER BY stream_ordering DESC",
            (room_id, at_stream),
        )
        for event_type, state_key, prev_event_id in rows:
            if prev_event_id is None:
                state.pop((event_type, state_key), None)
            else:
                state[(event_type, state_key)] = prev_event_id
    return filter_state_map(state, types)


def _current_entries_txn(txn, room_id, keys):
    """``{(type, state_key): event_id}`` of the room's current state for ``keys``
    (one query per key for small deltas, one for the whole room otherwise)."""
    if len(keys) > 20:
        rows = txn.select(
            "SELECT type, state_key, event_id FROM current_state_events WHERE room_id = ?", (room_id,)
        )
        return {(t, k): e for t, k, e in rows}
    entries = {}
    for event_type, state_key in keys:
        event_id = txn.select_value(
            "SELECT event_id FROM current_state_events WHERE room_id = ? AND type = ? AND state_key = ?",
            (room_id, event_type, state_key),
        )
        if event_id is not None:
            entries[(event_type, state_key)] = event_id
    return entries


def _memberships_of(txn, event_ids, known):
    """``{event_id: membership}`` for member events, from ``known`` or the events table."""
    result = {e: known[e] for e in event_ids if e in known}
    missing = [e for e in event_ids if e not in known]
    if missing:
        rows = txn.select_in(
            "SELECT event_id, membership FROM events WHERE {in_list}", "event_id", missing
        )
        result.update(dict(rows))
    return result


def _contents_of(txn, event_ids, known_pdus):
    """``{event_id: content dict}``, from ``known_pdus`` or the events table."""
    result = {}
    missing = []
    for event_id in event_ids:
        if event_id in known_pdus:
            result[event_id] = known_pdus[event_id].get("content")
        else:
            missing.append(event_id)
    if missing:
        rows = txn.select_in(
            "SELECT event_id, pdu_json FROM events WHERE {in_list}", "event_id", missing
        )
        for event_id, pdu_json in rows:
            result[event_id] = decode_json(pdu_json).get("content")
    return result


def apply_state_delta_txn(txn, room_update, stream_ordering, batch_memberships, batch_pdus):
    """Record a current-state delta and everything derived from it.

    :param room_update: a :class:`~mxref.storage.records.RoomUpdate`.
    :param stream_ordering: the stream position the change takes effect at.
    :param batch_memberships: ``{event_id: membership}`` for member events in the batch.
    :param batch_pdus: ``{event_id: pdu}`` for the events in the batch.
    """
    room_id = room_update.room_id
    changes = [(key, None) for key in room_update.state_delta_to_delete]
    changes += [(key, event_id) for key, event_id in room_update.state_delta_to_insert.items()]
    previous = _current_entries_txn(txn, room_id, [key for key, _ in changes])
    delta_rows, deleted, upserted = [], [], []
    member_changes = {}
    stats_changes = {}
    for (event_type, state_key), event_id in changes:
        prev_event_id = previous.get((event_type, state_key))
        if prev_event_id == event_id:
            continue
        if event_id is None:
            deleted.append((room_id, event_type, state_key))
        else:
            upserted.append((room_id, event_type, state_key, event_id))
        delta_rows.append((stream_ordering, room_id, event_type, state_key, event_id, prev_event_id))
        if event_type == MEMBER:
            member_changes[state_key] = event_id
        if event_type in _STATS_BY_TYPE and state_key == "":
            stats_changes[event_type] = event_id
    txn.execute_many(
        "DELETE FROM current_state_events WHERE room_id = ? AND type = ? AND state_key = ?", deleted
    )
    txn.execute_many(
        "INSERT INTO current_state_events (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
        upserted,
    )
    txn.execute_many(
        "INSERT INTO current_state_deltas"
        " (stream_ordering, room_id, type, state_key, event_id, prev_event_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        delta_rows,
    )
    if member_changes:
        _apply_member_changes_txn(txn, room_id, member_changes, stream_ordering, batch_memberships)
    if member_changes or stats_changes:
        _update_room_stats_txn(txn, room_id, bool(member_changes), stats_changes, batch_pdus)


def _apply_member_changes_txn(txn, room_id, member_changes, stream_ordering, batch_memberships):
    present = [e for e in member_changes.values() if e is not None]
    memberships = _memberships_of(txn, present, batch_memberships)
    removed, recorded = [], []
    for user_id, event_id in member_changes.items():
        membership = memberships.get(event_id) if event_id is not None else None
        if membership is None:
            removed.append((room_id, user_id))
        else:
            recorded.append((room_id, user_id, membership, event_id, stream_ordering))
    txn.execute_many("DELETE FROM room_memberships WHERE room_id = ? AND user_id = ?", removed)
    txn.execute_many(_RECORD_MEMBERSHIP_SQL, recorded)


_RECORD_MEMBERSHIP_SQL = (
    "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream_ordering)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO UPDATE SET"
    " membership = excluded.membership, event_id = excluded.event_id,"
    " stream_ordering = excluded.stream_ordering"
)


def record_membership_txn(txn, room_id, user_id, membership, event_id, stream_ordering):
    """Set a user's current membership of a room."""
    txn.execute(_RECORD_MEMBERSHIP_SQL, (room_id, user_id, membership, event_id, stream_ordering))


def _update_room_stats_txn(txn, room_id, members_changed, stats_changes, batch_pdus):
    txn.execute(
        "INSERT INTO room_stats_current (room_id, joined_members, invited_members)"
        " VALUES (?, 0, 0) ON CONFLICT (room_id) DO NOTHING",
        (room_id,),
    )
    values = {}
    if members_changed:
        counts = dict(
            txn.select(
                "SELECT membership, COUNT(*) FROM room_memberships"
                " WHERE room_id = ? AND membership IN ('join', 'invite') GROUP BY membership",
                (room_id,),
            )
        )
        values["joined_members"] = counts.get("join", 0)
        values["invited_members"] = counts.get("invite", 0)
    present = [e for e in stats_changes.values() if e is not None]
    contents = _contents_of(txn, present, batch_pdus)
    for event_type, event_id in stats_changes.items():
        field, column = _STATS_BY_TYPE[event_type]
        content = contents.get(event_id) if event_id is not None else None
        value = content.get(field) if isinstance(content, dict) else None
        values[column] = value if isinstance(value, str) else None
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        txn.execute(
            f"UPDATE room_stats_current SET {assignments} WHERE room_id = ?",
            list(values.values()) + [room_id],
        )
