"""SQL implementation of :class:`~mxref.storage.interfaces.IEventStore`.

Events live in ``events`` (PDU JSON plus indexed columns), their DAG edges in
``event_edges`` and ``event_auth_edges``, each room's current state in
``current_state_events`` with its history in ``current_state_deltas``, the relations
named by accepted events' ``m.relates_to`` in ``event_relations``.
Stream orderings come from the ``events`` row of ``counters``, advanced inside
the persisting transaction, so they become visible in order (see
:meth:`~mxref.storage.database.Transaction.next_counter_value`).

Spec: Client-Server API "Syncing" and "Pagination" (``/sync``, ``/messages``);
Client-Server API "Event replacements" (edits to bundle); Server-Server API
"Backfilling and retrieving missing events", "Auth chain".
"""

import collections
import copy
import heapq

import attr

from twisted.internet import defer
from zope.interface import implementer

from mxref.storage.database import decode_json, encode_json
from mxref.storage.interfaces import IEventStore
from mxref.storage.records import RoomEventsChunk, StoredEvent
from mxref.storage.sql.current_state import (
    apply_state_delta_txn,
    read_current_state_ids_txn,
    record_membership_txn,
)
from mxref.storage.sql.state import SqlStateStore

_EVENT_COLUMNS = (
    "event_id, room_id, type, state_key, sender, depth, origin_server_ts, stream_ordering,"
    " outlier, rejected_reason, soft_failed, state_group, redacts, membership, pdu_json"
)

# Events clients may see: in the timeline, accepted, not soft-failed.
_VISIBLE = "stream_ordering IS NOT NULL AND outlier = 0 AND rejected_reason IS NULL AND soft_failed = 0"


def _ordered(ids, reference_order):
    """Sort edge IDs by their position in the PDU's list (then by ID)."""
    index = {event_id: i for i, event_id in enumerate(reference_order)}
    return tuple(sorted(ids, key=lambda e: (index.get(e, len(index)), e)))


def _pdu_reference_ids(references):
    return [r[0] if isinstance(r, (list, tuple)) else r for r in references or ()]


def load_events_txn(txn, event_ids, allow_rejected=False):
    """``{event_id: StoredEvent}`` for the stored events among ``event_ids``."""
    event_ids = list(dict.fromkeys(event_ids))
    if not event_ids:
        return {}
    rows = txn.select_in(f"SELECT {_EVENT_COLUMNS} FROM events WHERE {{in_list}}", "event_id", event_ids)
    if not allow_rejected:
        rows = [row for row in rows if row[9] is None]
    found = [row[0] for row in rows]
    prevs, auths = {}, {}
    if found:
        for event_id, prev_id in txn.select_in(
            "SELECT event_id, prev_event_id FROM event_edges WHERE {in_list}", "event_id", found
        ):
            prevs.setdefault(event_id, []).append(prev_id)
        for event_id, auth_id in txn.select_in(
            "SELECT event_id, auth_event_id FROM event_auth_edges WHERE {in_list}", "event_id", found
        ):
            auths.setdefault(event_id, []).append(auth_id)
    events = {}
    for row in rows:
        pdu = decode_json(row[14])
        events[row[0]] = StoredEvent(
            event_id=row[0],
            room_id=row[1],
            type=row[2],
            state_key=row[3],
            sender=row[4],
            depth=row[5],
            origin_server_ts=row[6],
            stream_ordering=row[7],
            outlier=bool(row[8]),
            rejected_reason=row[9],
            soft_failed=bool(row[10]),
            state_group=row[11],
            redacts=row[12],
            membership=row[13],
            prev_event_ids=_ordered(prevs.get(row[0], ()), _pdu_reference_ids(pdu.get("prev_events"))),
            auth_event_ids=_ordered(auths.get(row[0], ()), _pdu_reference_ids(pdu.get("auth_events"))),
            pdu=pdu,
        )
    return events


def _stored_from_record(event, stream_ordering):
    """The :class:`StoredEvent` a read of a just inserted non-outlier ``EventToPersist``
    would give."""
    pdu = decode_json(encode_json(event.pdu))
    return StoredEvent(
        event_id=event.event_id,
        room_id=event.room_id,
        type=event.type,
        state_key=event.state_key,
        sender=event.sender,
        depth=event.depth,
        origin_server_ts=event.origin_server_ts,
        stream_ordering=stream_ordering,
        outlier=False,
        rejected_reason=event.rejected_reason,
        soft_failed=bool(event.soft_failed),
        state_group=event.state_group,
        redacts=event.redacts,
        membership=event.membership,
        prev_event_ids=_ordered(set(event.prev_event_ids), _pdu_reference_ids(pdu.get("prev_events"))),
        auth_event_ids=_ordered(set(event.auth_event_ids), _pdu_reference_ids(pdu.get("auth_events"))),
        pdu=pdu,
    )


def _events_in_order(txn, event_ids):
    events = load_events_txn(txn, event_ids, allow_rejected=True)
    return [events[e] for e in event_ids if e in events]


def _position_condition(position, before):
    """SQL for "the event's key is <= position" (``before``) or "> position"."""
    if position.topological is None:
        return ("stream_ordering <= ?" if before else "stream_ordering > ?"), [position.stream]
    if before:
        sql = "(depth < ? OR (depth = ? AND stream_ordering <= ?))"
    else:
        sql = "(depth > ? OR (depth = ? AND stream_ordering > ?))"
    return sql, [position.topological, position.topological, position.stream]


def _check_indexable(event):
    """Refuse NUL characters in indexed text, which PostgreSQL cannot store in TEXT
    (refused on every engine, so that all backends accept the same events)."""
    for value in (event.event_id, event.room_id, event.type, event.state_key, event.sender,
                  event.redacts, event.membership):
        if value is not None and "\x00" in value:
            raise ValueError(f"NUL character in an indexed field of event {event.event_id!r}")


def relation_of(pdu):
    """``(relates_to_id, rel_type)`` from a PDU's ``content["m.relates_to"]``, or ``None``
    when it names no relation (absent, not an object, non-string or NUL-holding fields).

    Client-Server API "Forming relationships between events": ``m.relates_to`` holds the
    ``rel_type`` and the parent's ``event_id``.
    """
    content = pdu.get("content")
    relates_to = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(relates_to, dict):
        return None
    parent, rel_type = relates_to.get("event_id"), relates_to.get("rel_type")
    if not (isinstance(parent, str) and isinstance(rel_type, str) and parent and rel_type):
        return None
    if "\x00" in parent or "\x00" in rel_type:
        return None
    return parent, rel_type


def _record_relations_txn(txn, events):
    """Index the relations of the accepted, non-outlier events among ``events``."""
    rows = []
    for event in events:
        if event.outlier or event.rejected_reason is not None or event.soft_failed:
            continue
        relation = relation_of(event.pdu)
        if relation is not None:
            rows.append((event.event_id, relation[0], relation[1], event.sender, event.type))
    txn.execute_many(
        "INSERT INTO event_relations (event_id, relates_to_id, rel_type, sender, type)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        rows,
    )


def _persist_txn(txn, batch, inserted=None):
    """Write a :class:`PersistBatch`; returns ``{event_id: stream_ordering}``.

    :param inserted: if given, a list receiving the non-outlier events newly stored.
    """
    events = list({e.event_id: e for e in reversed(batch.events)}.values())[::-1]
    for event in events:
        _check_indexable(event)
    if not events and not batch.room_updates:
        return {}
    # Serialise persists before looking at what is already stored, so that two
    # concurrent persists of one event cannot both decide to insert it.
    txn.lock_counter("events")
    existing = {
        row[0]: (row[1], bool(row[2]))
        for row in txn.select_in(
            "SELECT event_id, stream_ordering, outlier FROM events WHERE {in_list}",
            "event_id",
            [e.event_id for e in events],
        )
    } if events else {}

    def wants_ordering(event):
        return not event.outlier or event.out_of_band_membership

    needing = [
        e for e in events
        if wants_ordering(e) and (e.event_id not in existing or existing[e.event_id][0] is None)
    ]
    # Backfilled history goes below zero, further down the later it is stored.
    backfilled = [e for e in needing if e.backfilled]
    needing = [e for e in needing if not e.backfilled]
    orderings = {}
    if backfilled:
        last_backfilled = txn.next_counter_value("backfilled_events", len(backfilled))
        for offset, event in enumerate(backfilled):
            orderings[event.event_id] = -(last_backfilled - len(backfilled) + 1 + offset)
    rooms_with_new = {e.room_id for e in needing}
    rooms_needing_position = [
        u.room_id for u in batch.room_updates if u.changes_state and u.room_id not in rooms_with_new
    ]
    count = len(needing) + len(rooms_needing_position)
    last = txn.next_counter_value("events", count)
    next_position = last - count + 1
    for event in needing:
        orderings[event.event_id] = next_position
        next_position += 1
    room_positions = {}
    for event in needing:
        room_positions[event.room_id] = orderings[event.event_id]
    for room_id in rooms_needing_position:
        room_positions[room_id] = next_position
        next_position += 1

    new_rows, promotions, new_events = [], [], []
    for event in events:
        if event.event_id not in existing:
            new_events.append(event)
            if inserted is not None and not event.outlier:
                inserted.append(event)
            new_rows.append((
                event.event_id, event.room_id, event.type, event.state_key, event.sender,
                event.depth, event.origin_server_ts, orderings.get(event.event_id),
                int(event.outlier), event.rejected_reason, int(event.soft_failed),
                None if event.outlier else event.state_group, event.redacts, event.membership,
                encode_json(event.pdu),
            ))
        elif event.event_id in orderings or (existing[event.event_id][1] and not event.outlier):
            # A stored outlier now persisted with its state: promote it.
            stored_ordering, stored_outlier = existing[event.event_id]
            promotions.append((
                orderings.get(event.event_id, stored_ordering),
                int(event.outlier and stored_outlier),
                event.rejected_reason, int(event.soft_failed),
                None if event.outlier else event.state_group,
                event.event_id,
            ))
    txn.execute_many(
        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        new_rows,
    )
    txn.execute_many(
        "UPDATE events SET stream_ordering = ?, outlier = ?, rejected_reason = ?, soft_failed = ?,"
        " state_group = ? WHERE event_id = ?",
        promotions,
    )
    txn.execute_many(
        "INSERT INTO event_edges (event_id, prev_event_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(e.event_id, p) for e in new_events for p in dict.fromkeys(e.prev_event_ids)],
    )
    txn.execute_many(
        "INSERT INTO event_auth_edges (event_id, auth_event_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(e.event_id, a) for e in new_events for a in dict.fromkeys(e.auth_event_ids)],
    )
    txn.execute_many(
        "INSERT INTO event_txn_ids (user_id, device_id, txn_id, event_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        [
            (e.txn.user_id, e.txn.device_id or "", e.txn.txn_id, e.event_id)
            for e in new_events if e.txn is not None
        ],
    )
    _record_relations_txn(txn, events)
    for event in events:
        if event.out_of_band_membership and event.event_id in orderings and event.membership:
            record_membership_txn(
                txn, event.room_id, event.state_key, event.membership,
                event.event_id, orderings[event.event_id],
            )

    batch_memberships = {e.event_id: e.membership for e in events if e.membership is not None}
    batch_pdus = {e.event_id: e.pdu for e in events}
    for update in batch.room_updates:
        if update.forward_extremities is not None:
            txn.execute("DELETE FROM forward_extremities WHERE room_id = ?", (update.room_id,))
            txn.execute_many(
                "INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?)",
                [(update.room_id, e) for e in sorted(update.forward_extremities)],
            )
        if update.changes_state:
            apply_state_delta_txn(
                txn, update, room_positions[update.room_id], batch_memberships, batch_pdus
            )

    result = {}
    for event in events:
        if event.event_id in orderings:
            result[event.event_id] = orderings[event.event_id]
        elif event.event_id in existing and existing[event.event_id][0] is not None:
            result[event.event_id] = existing[event.event_id][0]
    return result


@implementer(IEventStore)
class SqlEventStore:
    """Room events in SQL.

    :param database: a :class:`~mxref.storage.database.Database`.
    :param state_store: the :class:`~mxref.storage.sql.state.SqlStateStore`
        whose cache serves ``get_state_ids_at_event`` (one is made if omitted).
    :param cache_size: how many non-outlier events to keep in memory.
    """

    def __init__(self, database, state_store=None, cache_size=20000):
        self._db = database
        self._state_store = state_store if state_store is not None else SqlStateStore(database)
        self._cache_size = cache_size
        self._cache = collections.OrderedDict()

    def persist_events(self, batch):
        """See :meth:`IEventStore.persist_events`."""

        def txn_func(txn):
            inserted = []
            return _persist_txn(txn, batch, inserted), inserted

        def persisted(result):
            # New non-outlier events never change again: remember them as a read would.
            orderings, inserted = result
            for event in inserted:
                self._remember(_stored_from_record(event, orderings.get(event.event_id)))
            return orderings

        return self._db.run_interaction("persist_events", txn_func).addCallback(persisted)

    def get_event(self, event_id, allow_rejected=False):
        """See :meth:`IEventStore.get_event`."""
        d = self.get_events([event_id], allow_rejected)
        d.addCallback(lambda events: events.get(event_id))
        return d

    def get_events(self, event_ids, allow_rejected=False):
        """See :meth:`IEventStore.get_events`.

        Non-outlier events never change once stored, so they are served from
        an in-memory cache (callers get their own copy of each PDU).
        """
        event_ids = list(dict.fromkeys(event_ids))
        found = {}
        missing = []
        for event_id in event_ids:
            cached = self._cache.get(event_id)
            if cached is None:
                missing.append(event_id)
            else:
                self._cache.move_to_end(event_id)
                if allow_rejected or cached.rejected_reason is None:
                    found[event_id] = attr.evolve(cached, pdu=copy.deepcopy(cached.pdu))
        if not missing:
            return defer.succeed(found)

        def loaded(events):
            for event_id, event in events.items():
                if not event.outlier:
                    self._remember(attr.evolve(event, pdu=copy.deepcopy(event.pdu)))
                if allow_rejected or event.rejected_reason is None:
                    found[event_id] = event
            return found

        d = self._db.run_interaction("get_events", load_events_txn, missing, True)
        d.addCallback(loaded)
        return d

    def _remember(self, event):
        self._cache[event.event_id] = event
        self._cache.move_to_end(event.event_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def have_events(self, event_ids):
        """See :meth:`IEventStore.have_events`."""
        event_ids = list(dict.fromkeys(event_ids))
        held = {event_id for event_id in event_ids if event_id in self._cache}
        missing = [event_id for event_id in event_ids if event_id not in held]

        def txn_func(txn):
            rows = txn.select_in("SELECT event_id FROM events WHERE {in_list}", "event_id", missing)
            return held | {row[0] for row in rows}

        if not missing:
            return defer.succeed(held)
        return self._db.run_interaction("have_events", txn_func)

    def get_forward_extremities(self, room_id):
        """See :meth:`IEventStore.get_forward_extremities`."""

        def txn_func(txn):
            rows = txn.select(
                "SELECT f.event_id, e.depth FROM forward_extremities f"
                " JOIN events e ON e.event_id = f.event_id WHERE f.room_id = ?",
                (room_id,),
            )
            return sorted(rows, key=lambda row: (-row[1], row[0]))

        return self._db.run_interaction("get_forward_extremities", txn_func)

    def get_current_state_ids(self, room_id, types=None, at_stream=None):
        """See :meth:`IEventStore.get_current_state_ids`."""
        return self._db.run_interaction(
            "get_current_state_ids", read_current_state_ids_txn, room_id, types, at_stream
        )

    def get_current_state(self, room_id, types=None):
        """See :meth:`IEventStore.get_current_state`."""

        def txn_func(txn):
            state = read_current_state_ids_txn(txn, room_id, types)
            events = load_events_txn(txn, state.values(), allow_rejected=True)
            return {key: events[e] for key, e in state.items() if e in events}

        return self._db.run_interaction("get_current_state", txn_func)

    def get_current_state_deltas(self, from_stream, to_stream):
        """See :meth:`IEventStore.get_current_state_deltas`."""
        return self._db.execute(
            "get_current_state_deltas",
            "SELECT stream_ordering, room_id, type, state_key, event_id FROM current_state_deltas"
            " WHERE stream_ordering > ? AND stream_ordering <= ?"
            " ORDER BY stream_ordering, room_id, type, state_key",
            from_stream or 0,
            to_stream,
        )

    def get_state_ids_at_event(self, event_id):
        """See :meth:`IEventStore.get_state_ids_at_event`."""

        def read_group(group):
            if group is None:
                return None
            return self._state_store.get_state_group_ids(group)

        d = self._state_store.get_state_group_for_event(event_id)
        d.addCallback(read_group)
        return d

    def get_room_events_stream(self, room_id, from_position, to_position, limit, direction):
        """See :meth:`IEventStore.get_room_events_stream`."""
        if direction not in ("b", "f"):
            raise ValueError(f"direction must be 'b' or 'f', not {direction!r}")
        backwards = direction == "b"

        def txn_func(txn):
            conditions = ["room_id = ?", _VISIBLE]
            args = [room_id]
            sql, sql_args = _position_condition(from_position, before=backwards)
            conditions.append(sql)
            args += sql_args
            if to_position is not None:
                sql, sql_args = _position_condition(to_position, before=not backwards)
                conditions.append(sql)
                args += sql_args
            order = "DESC" if backwards else "ASC"
            rows = txn.select(
                f"SELECT event_id FROM events WHERE {' AND '.join(conditions)}"
                f" ORDER BY depth {order}, stream_ordering {order} LIMIT ?",
                args + [limit],
            )
            return _events_in_order(txn, [row[0] for row in rows])

        return self._db.run_interaction("get_room_events_stream", txn_func)

    def get_events_since(self, from_stream, room_ids, limit, to_stream=None):
        """See :meth:`IEventStore.get_events_since`."""

        def txn_func(txn):
            upper = to_stream
            if upper is None:
                upper = txn.select_value("SELECT value FROM counters WHERE name = 'events'")
            lower = from_stream or 0
            changed = {
                row[0]
                for row in txn.select_in(
                    f"SELECT DISTINCT room_id FROM events WHERE {{in_list}} AND {_VISIBLE}"
                    " AND stream_ordering > ? AND stream_ordering <= ?",
                    "room_id",
                    list(dict.fromkeys(room_ids)),
                    args_after=(lower, upper),
                )
            }
            chunks = {}
            for room_id in sorted(changed):
                rows = txn.select(
                    f"SELECT event_id FROM events WHERE room_id = ? AND {_VISIBLE}"
                    " AND stream_ordering > ? AND stream_ordering <= ?"
                    " ORDER BY stream_ordering DESC LIMIT ?",
                    (room_id, lower, upper, limit + 1),
                )
                ids = [row[0] for row in rows[:limit]]
                ids.reverse()
                chunks[room_id] = RoomEventsChunk(_events_in_order(txn, ids), len(rows) > limit)
            return chunks

        if not room_ids:
            return defer.succeed({})
        return self._db.run_interaction("get_events_since", txn_func)

    def get_max_stream_ordering(self):
        """See :meth:`IEventStore.get_max_stream_ordering`."""
        d = self._db.execute("get_max_stream_ordering", "SELECT value FROM counters WHERE name = 'events'")
        d.addCallback(lambda rows: rows[0][0])
        return d

    def get_auth_chain_ids(self, event_ids):
        """See :meth:`IEventStore.get_auth_chain_ids`."""

        def txn_func(txn):
            rows = txn.select_in(
                "WITH RECURSIVE chain(event_id) AS ("
                " SELECT auth_event_id FROM event_auth_edges WHERE {in_list}"
                " UNION"
                " SELECT a.auth_event_id FROM event_auth_edges a JOIN chain c ON a.event_id = c.event_id"
                ") SELECT event_id FROM chain",
                "event_id",
                list(dict.fromkeys(event_ids)),
            )
            return {row[0] for row in rows}

        return self._db.run_interaction("get_auth_chain_ids", txn_func)

    def get_redactions_of(self, event_id):
        """See :meth:`IEventStore.get_redactions_of`."""
        d = self._db.execute(
            "get_redactions_of",
            "SELECT event_id FROM events WHERE redacts = ? AND rejected_reason IS NULL"
            " AND soft_failed = 0 ORDER BY event_id",
            event_id,
        )
        d.addCallback(lambda rows: [row[0] for row in rows])
        return d

    def get_redactions_of_events(self, event_ids):
        """See :meth:`IEventStore.get_redactions_of_events`."""
        event_ids = list(dict.fromkeys(event_ids))

        def txn_func(txn):
            rows = txn.select_in(
                "SELECT redacts, event_id FROM events WHERE {in_list}"
                " AND rejected_reason IS NULL AND soft_failed = 0",
                "redacts",
                event_ids,
            )
            found = {}
            for redacts, event_id in sorted(rows):
                found.setdefault(redacts, []).append(event_id)
            return found

        if not event_ids:
            return defer.succeed({})
        return self._db.run_interaction("get_redactions_of_events", txn_func)

    def get_replacements(self, event_ids):
        """See :meth:`IEventStore.get_replacements`."""

        def txn_func(txn):
            rows = txn.select_in(
                "SELECT r.relates_to_id, r.event_id FROM event_relations r"
                " JOIN events e ON e.event_id = r.event_id"
                " JOIN events o ON o.event_id = r.relates_to_id"
                " WHERE {in_list} AND r.rel_type = 'm.replace'"
                " AND e.room_id = o.room_id AND e.sender = o.sender AND e.type = o.type"
                " AND e.state_key IS NULL AND o.state_key IS NULL"
                " AND e.stream_ordering IS NOT NULL AND e.outlier = 0"
                " AND e.rejected_reason IS NULL AND e.soft_failed = 0"
                " ORDER BY e.origin_server_ts DESC, e.event_id DESC",
                "r.relates_to_id",
                list(dict.fromkeys(event_ids)),
            )
            events = load_events_txn(txn, [row[1] for row in rows])
            found = {}
            for original_id, event_id in rows:
                if event_id in events:
                    found.setdefault(original_id, []).append(events[event_id])
            for replacements in found.values():
                replacements.sort(key=lambda e: (e.origin_server_ts, e.event_id), reverse=True)
            return found

        if not event_ids:
            return defer.succeed({})
        return self._db.run_interaction("get_replacements", txn_func)

    def get_relations(self, room_id, parent_id, rel_type, event_type, from_position, to_position,
                      limit, direction):
        """See :meth:`IEventStore.get_relations`."""
        if direction not in ("b", "f"):
            raise ValueError(f"direction must be 'b' or 'f', not {direction!r}")
        backwards = direction == "b"

        def txn_func(txn):
            conditions = [
                "r.relates_to_id = ?", "room_id = ?",
                "stream_ordering IS NOT NULL AND outlier = 0 AND rejected_reason IS NULL"
                " AND soft_failed = 0",
            ]
            args = [parent_id, room_id]
            if rel_type is not None:
                conditions.append("r.rel_type = ?")
                args.append(rel_type)
            if event_type is not None:
                conditions.append("r.type = ?")
                args.append(event_type)
            sql, sql_args = _position_condition(from_position, before=backwards)
            conditions.append(sql)
            args += sql_args
            if to_position is not None:
                sql, sql_args = _position_condition(to_position, before=not backwards)
                conditions.append(sql)
                args += sql_args
            order = "DESC" if backwards else "ASC"
            rows = txn.select(
                "SELECT e.event_id FROM event_relations r JOIN events e ON e.event_id = r.event_id"
                f" WHERE {' AND '.join(conditions)}"
                f" ORDER BY depth {order}, stream_ordering {order} LIMIT ?",
                args + [limit],
            )
            return _events_in_order(txn, [row[0] for row in rows])

        return self._db.run_interaction("get_relations", txn_func)

    def get_event_by_txn_id(self, user_id, device_id, txn_id):
        """See :meth:`IEventStore.get_event_by_txn_id`."""
        d = self._db.execute(
            "get_event_by_txn_id",
            "SELECT event_id FROM event_txn_ids WHERE user_id = ? AND device_id = ? AND txn_id = ?",
            user_id,
            device_id or "",
            txn_id,
        )
        d.addCallback(lambda rows: rows[0][0] if rows else None)
        return d

    def get_txn_ids(self, user_id, device_id, event_ids):
        """See :meth:`IEventStore.get_txn_ids`."""

        def txn_func(txn):
            rows = txn.select_in(
                "SELECT event_id, txn_id FROM event_txn_ids WHERE user_id = ? AND device_id = ? AND {in_list}",
                "event_id",
                list(event_ids),
                args_before=(user_id, device_id or ""),
            )
            return {event_id: txn_id for event_id, txn_id in rows}

        if not event_ids:
            return defer.succeed({})
        return self._db.run_interaction("get_txn_ids", txn_func)

    def get_prev_event_ids(self, event_id):
        """See :meth:`IEventStore.get_prev_event_ids`."""

        def txn_func(txn):
            event = load_events_txn(txn, [event_id], allow_rejected=True).get(event_id)
            return list(event.prev_event_ids) if event else []

        return self._db.run_interaction("get_prev_event_ids", txn_func)

    def get_backfill_ids(self, room_id, from_ids, limit):
        """See :meth:`IEventStore.get_backfill_ids`."""

        def txn_func(txn):
            heap = []
            for event_id, depth, rejected in txn.select_in(
                "SELECT event_id, depth, rejected_reason FROM events WHERE {in_list} AND room_id = ?",
                "event_id",
                list(dict.fromkeys(from_ids)),
                args_after=(room_id,),
            ):
                heapq.heappush(heap, (-depth, event_id, rejected is not None))
            seen, result = set(), []
            while heap and len(result) < limit:
                _, event_id, rejected = heapq.heappop(heap)
                if event_id in seen:
                    continue
                seen.add(event_id)
                if not rejected:
                    result.append(event_id)
                for prev_id, depth, prev_rejected in txn.select(
                    "SELECT e.event_id, e.depth, e.rejected_reason FROM event_edges g"
                    " JOIN events e ON e.event_id = g.prev_event_id"
                    " WHERE g.event_id = ? AND e.room_id = ?",
                    (event_id, room_id),
                ):
                    if prev_id not in seen:
                        heapq.heappush(heap, (-depth, prev_id, prev_rejected is not None))
            return result

        return self._db.run_interaction("get_backfill_ids", txn_func)

    def get_missing_events(self, room_id, earliest_ids, latest_ids, limit, min_depth=0):
        """See :meth:`IEventStore.get_missing_events`."""

        def txn_func(txn):
            seen = set(earliest_ids) | set(latest_ids)
            front = list(dict.fromkeys(latest_ids))
            found = []
            while front and len(found) < limit:
                rows = txn.select_in(
                    "SELECT e.event_id, e.depth, e.rejected_reason FROM event_edges g"
                    " JOIN events e ON e.event_id = g.prev_event_id"
                    " WHERE {in_list} AND e.room_id = ? ORDER BY e.depth DESC, e.event_id",
                    "g.event_id",
                    front,
                    args_after=(room_id,),
                )
                front = []
                for event_id, depth, rejected in rows:
                    if event_id in seen or depth < min_depth:
                        continue
                    seen.add(event_id)
                    front.append(event_id)
                    if rejected is None:
                        found.append((depth, event_id))
            found = found[:limit]
            return [event_id for _, event_id in sorted(found)]

        return self._db.run_interaction("get_missing_events", txn_func)
