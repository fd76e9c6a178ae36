"""Conformance suite for IStateStore, run against SQLite and PostgreSQL."""

import sqlite3

from hypothesis import given, settings, strategies as st
from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.database import Transaction, apply_schema_txn, schema_files
from mxref.storage.engines.sqlite import SqliteEngine
from mxref.storage.interfaces import IStateStore
from mxref.storage.records import PersistBatch
from mxref.storage.sql.state import SqlStateStore, store_state_group_txn, read_state_group_txn
from tests.storage.harness import EventFactory, PostgresBackendMixin, SqliteBackendMixin

ROOM = "!room:example.org"


class StateStoreConformanceMixin:
    """What every IStateStore must do; needs ``self.store``."""

    snapshot_interval = 4

    def test_provides_interface(self):
        """The state store fully implements IStateStore."""
        self.assertTrue(verifyObject(IStateStore, self.store.state))

    @defer.inlineCallbacks
    def test_full_group_round_trip(self):
        """A group stored without a predecessor reads back as given."""
        state = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$m"}
        group = yield self.store.state.store_state_group(ROOM, None, state)
        self.assertEqual((yield self.store.state.get_state_group_ids(group)), state)

    @defer.inlineCallbacks
    def test_deltas_chain(self):
        """Deltas add, replace and remove keys relative to the previous group."""
        base = {("m.room.create", ""): "$c", ("m.room.name", ""): "$n1", ("m.room.topic", ""): "$t"}
        g1 = yield self.store.state.store_state_group(ROOM, None, base)
        g2 = yield self.store.state.store_state_group(ROOM, g1, {("m.room.name", ""): "$n2"})
        g3 = yield self.store.state.store_state_group(
            ROOM, g2, {("m.room.topic", ""): None, ("m.room.member", "@a:x"): "$m"}
        )
        self.assertEqual((yield self.store.state.get_state_group_ids(g1)), base)
        self.assertEqual(
            (yield self.store.state.get_state_group_ids(g3)),
            {("m.room.create", ""): "$c", ("m.room.name", ""): "$n2", ("m.room.member", "@a:x"): "$m"},
        )
        self.assertEqual(
            (yield self.store.state.get_state_group_ids(g3, types=[("m.room.member", None)])),
            {("m.room.member", "@a:x"): "$m"},
        )

    @defer.inlineCallbacks
    def test_long_chains_are_snapshotted(self):
        """A long run of deltas still reads correctly, and snapshots bound the chain length."""
        group = yield self.store.state.store_state_group(ROOM, None, {("m.room.create", ""): "$c"})
        expected = {("m.room.create", ""): "$c"}
        for i in range(11):
            delta = {("m.room.member", f"@u{i}:x"): f"$m{i}"}
            expected.update(delta)
            group = yield self.store.state.store_state_group(ROOM, group, delta)
        fresh = SqlStateStore(self.database, snapshot_interval=self.snapshot_interval)
        self.assertEqual((yield fresh.get_state_group_ids(group)), expected)
        depths = yield self.database.execute("depths", "SELECT MAX(delta_depth) FROM state_groups")
        self.assertLess(depths[0][0], self.snapshot_interval)

    @defer.inlineCallbacks
    def test_full_ids_used_for_snapshot(self):
        """When the caller passes the full state it is what the group holds."""
        g1 = yield self.store.state.store_state_group(ROOM, None, {("a", ""): "$1"})
        full = {("a", ""): "$1", ("b", ""): "$2"}
        g2 = yield self.store.state.store_state_group(ROOM, g1, {("b", ""): "$2"}, full_ids=full)
        fresh = SqlStateStore(self.database)
        self.assertEqual((yield fresh.get_state_group_ids(g2)), full)

    @defer.inlineCallbacks
    def test_unknown_group_is_empty_and_unknown_prev_fails(self):
        """Reading an unknown group gives empty state; building on one is refused."""
        self.assertEqual((yield self.store.state.get_state_group_ids(987654)), {})
        yield self.assertFailure(self.store.state.store_state_group(ROOM, 987654, {}), ValueError)

    @defer.inlineCallbacks
    def test_cached_results_are_copies(self):
        """Changing a returned state map does not change what the store returns next."""
        group = yield self.store.state.store_state_group(ROOM, None, {("a", ""): "$1"})
        first = yield self.store.state.get_state_group_ids(group)
        first[("b", "")] = "$2"
        self.assertEqual((yield self.store.state.get_state_group_ids(group)), {("a", ""): "$1"})

    @defer.inlineCallbacks
    def test_group_for_event(self):
        """The group recorded with an event is found by event ID; outliers have none."""
        group = yield self.store.state.store_state_group(ROOM, None, {("a", ""): "$1"})
        factory = EventFactory(ROOM)
        event = factory.make("m.room.message", state_group=group)
        outlier = factory.make("m.room.message", outlier=True, state_group=group)
        yield self.store.events.persist_events(PersistBatch([event, outlier]))
        self.assertEqual((yield self.store.state.get_state_group_for_event(event.event_id)), group)
        self.assertIsNone((yield self.store.state.get_state_group_for_event(outlier.event_id)))
        groups = yield self.store.state.get_state_groups_for_events([event.event_id, outlier.event_id, "$x"])
        self.assertEqual(groups, {event.event_id: group})


class StateStoreSQLiteTests(StateStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """IStateStore conformance on SQLite."""


class StateStorePostgresTests(StateStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """IStateStore conformance on PostgreSQL."""


class StateGroupPropertyTests(unittest.TestCase):
    """State group encoding checked against a plain dict, synchronously on in-memory SQLite."""

    @settings(max_examples=60, deadline=None)
    @given(
        deltas=st.lists(
            st.dictionaries(
                st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "x"])),
                st.one_of(st.none(), st.sampled_from(["$1", "$2", "$3"])),
                max_size=4,
            ),
            max_size=12,
        ),
        interval=st.integers(min_value=1, max_value=5),
    )
    def test_any_delta_sequence_matches_a_dict(self, deltas, interval):
        """Any sequence of deltas, with any snapshot interval, reads back like applying them to a dict."""
        connection = sqlite3.connect(":memory:", isolation_level=None)
        txn = Transaction(SqliteEngine({}), connection.cursor(), "property")
        apply_schema_txn(txn, schema_files(SqliteEngine({})), 0)
        expected, group = {}, None
        for delta in deltas:
            group, _ = store_state_group_txn(txn, ROOM, group, delta, None, interval)
            for key, event_id in delta.items():
                if event_id is None:
                    expected.pop(key, None)
                else:
                    expected[key] = event_id
            self.assertEqual(read_state_group_txn(txn, group), expected)
        depth = txn.select_value("SELECT MAX(delta_depth) FROM state_groups", default=0)
        self.assertLess(depth or 0, interval)
        connection.close()
