"""SQL implementation of :class:`~mxref.storage.interfaces.IStateStore`.

A state group is a row of ``state_groups`` plus its entries in
``state_group_entries``: either a full snapshot (``prev_group`` NULL) or a
delta against ``prev_group`` (a NULL ``event_id`` removes a key). Every
``snapshot_interval``-th group in a chain is stored as a full snapshot, so a
read walks at most that many groups, in one recursive query. Groups never
change once written, which makes them safe to cache in memory.

Spec: Server-Server API "Room State Resolution" (the state *after* an event is
what a group holds; resolving it is the services' job).
"""

import collections

from twisted.internet import defer
from zope.interface import implementer

from mxref.storage.interfaces import IStateStore
from mxref.storage.sql.current_state import filter_state_map


def read_state_group_txn(txn, group):
    """The full state map of a group (empty if unknown)."""
    rows = txn.select(
        "WITH RECURSIVE chain(id, prev_group, n) AS ("
        " SELECT id, prev_group, 0 FROM state_groups WHERE id = ?"
        " UNION ALL"
        " SELECT g.id, g.prev_group, c.n + 1 FROM state_groups g JOIN chain c ON g.id = c.prev_group"
        ") SELECT c.n, e.type, e.state_key, e.event_id FROM chain c"
        " JOIN state_group_entries e ON e.state_group = c.id ORDER BY c.n DESC",
        (group,),
    )
    state = {}
    for _, event_type, state_key, event_id in rows:
        if event_id is None:
            state.pop((event_type, state_key), None)
        else:
            state[(event_type, state_key)] = event_id
    return state


def _insert_entries(txn, group, entries):
    txn.execute_many(
        "INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES (?, ?, ?, ?)",
        [(group, t, k, e) for (t, k), e in entries.items()],
    )


def store_state_group_txn(txn, room_id, prev_group, delta_ids, full_ids, snapshot_interval):
    """Store a group; returns ``(group, full_state_or_None)``."""
    group = txn.next_counter_value("state_groups")
    if prev_group is None:
        full = {k: e for k, e in (full_ids if full_ids is not None else delta_ids).items() if e is not None}
        txn.execute(
            "INSERT INTO state_groups (id, room_id, prev_group, delta_depth) VALUES (?, ?, NULL, 0)",
            (group, room_id),
        )
        _insert_entries(txn, group, full)
        return group, full
    prev_depth = txn.select_value("SELECT delta_depth FROM state_groups WHERE id = ?", (prev_group,))
    if prev_depth is None:
        raise ValueError(f"unknown previous state group {prev_group}")
    if prev_depth + 1 >= snapshot_interval:
        if full_ids is not None:
            full = {k: e for k, e in full_ids.items() if e is not None}
        else:
            full = read_state_group_txn(txn, prev_group)
            for key, event_id in delta_ids.items():
                if event_id is None:
                    full.pop(key, None)
                else:
                    full[key] = event_id
        txn.execute(
            "INSERT INTO state_groups (id, room_id, prev_group, delta_depth) VALUES (?, ?, NULL, 0)",
            (group, room_id),
        )
        _insert_entries(txn, group, full)
        return group, full
    txn.execute(
        "INSERT INTO state_groups (id, room_id, prev_group, delta_depth) VALUES (?, ?, ?, ?)",
        (group, room_id, prev_group, prev_depth + 1),
    )
    _insert_entries(txn, group, dict(delta_ids))
    full = None
    if full_ids is not None:
        full = {k: e for k, e in full_ids.items() if e is not None}
    return group, full


@implementer(IStateStore)
class SqlStateStore:
    """State groups in SQL, with an in-memory LRU cache of full group states.

    :param database: a :class:`~mxref.storage.database.Database`.
    :param snapshot_interval: store a full snapshot once a delta chain would
        reach this length.
    :param cache_size: how many group states to keep in memory.
    """

    def __init__(self, database, snapshot_interval=100, cache_size=1000):
        self._db = database
        self._snapshot_interval = snapshot_interval
        self._cache_size = cache_size
        self._cache = collections.OrderedDict()

    def _remember(self, group, state):
        self._cache[group] = state
        self._cache.move_to_end(group)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def store_state_group(self, room_id, prev_group, delta_ids, full_ids=None):
        """See :meth:`IStateStore.store_state_group`."""

        def stored(result):
            group, full = result
            if full is not None:
                self._remember(group, full)
            return group

        d = self._db.run_interaction(
            "store_state_group",
            store_state_group_txn,
            room_id,
            prev_group,
            dict(delta_ids),
            None if full_ids is None else dict(full_ids),
            self._snapshot_interval,
        )
        d.addCallback(stored)
        return d

    def get_state_group_ids(self, group, types=None):
        """See :meth:`IStateStore.get_state_group_ids`."""
        if group in self._cache:
            self._cache.move_to_end(group)
            return defer.succeed(dict(filter_state_map(self._cache[group], types)))

        def loaded(state):
            self._remember(group, state)
            return dict(filter_state_map(state, types))

        d = self._db.run_interaction("get_state_group_ids", read_state_group_txn, group)
        d.addCallback(loaded)
        return d

    def get_state_group_for_event(self, event_id):
        """See :meth:`IStateStore.get_state_group_for_event`."""
        d = self.get_state_groups_for_events([event_id])
        d.addCallback(lambda groups: groups.get(event_id))
        return d

    def get_state_groups_for_events(self, event_ids):
        """See :meth:`IStateStore.get_state_groups_for_events`."""

        def txn_func(txn):
            rows = txn.select_in(
                "SELECT event_id, state_group FROM events"
                " WHERE {in_list} AND outlier = 0 AND state_group IS NOT NULL",
                "event_id",
                list(dict.fromkeys(event_ids)),
            )
            return dict(rows)

        return self._db.run_interaction("get_state_groups_for_events", txn_func)
