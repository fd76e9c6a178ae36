"""Conformance suite for IClientDataStore, run against SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.interfaces import IClientDataStore
from tests.storage.harness import PostgresBackendMixin, SqliteBackendMixin

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!r:example.org"


class ClientDataStoreConformanceMixin:
    """What every IClientDataStore must do; needs ``self.store``."""

    def test_provides_interface(self):
        """The client data store fully implements IClientDataStore."""
        self.assertTrue(verifyObject(IClientDataStore, self.store.client_data))

    @defer.inlineCallbacks
    def test_account_data(self):
        """Global and room account data are replaced in place and reported after a position."""
        self.assertEqual((yield self.store.client_data.get_account_data_position()), 0)
        p1 = yield self.store.client_data.put_account_data(ALICE, None, "m.push_rules", {"a": 1})
        p2 = yield self.store.client_data.put_account_data(ALICE, ROOM, "m.tag", {"tags": {"u.work": {}}})
        p3 = yield self.store.client_data.put_account_data(ALICE, None, "m.push_rules", {"a": 2})
        yield self.store.client_data.put_account_data(BOB, None, "m.push_rules", {"b": 1})
        self.assertTrue(p1 < p2 < p3)
        self.assertEqual((yield self.store.client_data.get_account_data(ALICE, None, "m.push_rules")), {"a": 2})
        self.assertEqual((yield self.store.client_data.get_account_data(ALICE, ROOM, "m.tag")),
                         {"tags": {"u.work": {}}})
        self.assertIsNone((yield self.store.client_data.get_account_data(ALICE, ROOM, "m.push_rules")))
        everything = yield self.store.client_data.get_account_data_since(ALICE, 0)
        self.assertEqual(everything.global_data, {"m.push_rules": {"a": 2}})
        self.assertEqual(everything.room_data, {ROOM: {"m.tag": {"tags": {"u.work": {}}}}})
        recent = yield self.store.client_data.get_account_data_since(ALICE, p2)
        self.assertEqual((recent.global_data, recent.room_data), ({"m.push_rules": {"a": 2}}, {}))
        self.assertEqual((yield self.store.client_data.get_account_data_position()), p3 + 1)

    @defer.inlineCallbacks
    def test_filters(self):
        """A filter is stored per user under a new ID; unknown or malformed IDs find nothing."""
        definition = {"room": {"timeline": {"limit": 10}}, "event_fields": ["type", "content.body"]}
        f1 = yield self.store.client_data.add_filter(ALICE, definition)
        f2 = yield self.store.client_data.add_filter(ALICE, {"presence": {"not_types": ["*"]}})
        self.assertIsInstance(f1, str)
        self.assertNotEqual(f1, f2)
        self.assertEqual((yield self.store.client_data.get_filter(ALICE, f1)), definition)
        self.assertIsNone((yield self.store.client_data.get_filter(BOB, f1)))
        for bad in ["", "abc", "-1", "99999999999999999999999", "١"]:
            self.assertIsNone((yield self.store.client_data.get_filter(ALICE, bad)))

    @defer.inlineCallbacks
    def test_receipts(self):
        """A user's receipt per type and thread is replaced and reported after a position."""
        self.assertEqual((yield self.store.client_data.get_receipts_position()), 0)
        p1 = yield self.store.client_data.put_receipt(ROOM, "m.read", ALICE, "$1", {"ts": 1})
        p2 = yield self.store.client_data.put_receipt(ROOM, "m.read", ALICE, "$2", {"ts": 2})
        p3 = yield self.store.client_data.put_receipt(ROOM, "m.read", ALICE, "$t", {"ts": 3}, thread_id="$root")
        p4 = yield self.store.client_data.put_receipt("!other:example.org", "m.read", BOB, "$9", {"ts": 4})
        self.assertTrue(p1 < p2 < p3 < p4)
        receipts = yield self.store.client_data.get_receipts_since([ROOM], 0)
        self.assertEqual(
            [(r.user_id, r.event_id, r.thread_id, r.data, r.stream_id) for r in receipts],
            [(ALICE, "$2", None, {"ts": 2}, p2), (ALICE, "$t", "$root", {"ts": 3}, p3)],
        )
        bounded = yield self.store.client_data.get_receipts_since([ROOM, "!other:example.org"], p2, p3)
        self.assertEqual([r.event_id for r in bounded], ["$t"])
        self.assertEqual((yield self.store.client_data.get_receipts_since([], 0)), [])
        self.assertEqual((yield self.store.client_data.get_receipts_position()), p4)


class ClientDataStoreSQLiteTests(ClientDataStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """IClientDataStore conformance on SQLite."""


class ClientDataStorePostgresTests(ClientDataStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """IClientDataStore conformance on PostgreSQL."""
