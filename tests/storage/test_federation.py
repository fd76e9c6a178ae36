"""Conformance suite for IFederationStore, run against SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.interfaces import IFederationStore
from mxref.storage.records import DestinationRecord
from tests.storage.harness import PostgresBackendMixin, SqliteBackendMixin


class FederationStoreConformanceMixin:
    """What every IFederationStore must do; needs ``self.store``."""

    def test_provides_interface(self):
        """The federation store fully implements IFederationStore."""
        self.assertTrue(verifyObject(IFederationStore, self.store.federation))

    @defer.inlineCallbacks
    def test_received_transactions(self):
        """Our answer to a transaction is remembered per origin so that a retry gets it again."""
        self.assertIsNone((yield self.store.federation.get_received_txn("a.test", "t1")))
        yield self.store.federation.set_received_txn("a.test", "t1", 200, {"pdus": {"$e": {}}}, 5)
        txn = yield self.store.federation.get_received_txn("a.test", "t1")
        self.assertEqual((txn.response_code, txn.response, txn.received_ts), (200, {"pdus": {"$e": {}}}, 5))
        self.assertIsNone((yield self.store.federation.get_received_txn("b.test", "t1")))
        yield self.store.federation.set_received_txn("a.test", "t1", 400, {}, 6)
        self.assertEqual((yield self.store.federation.get_received_txn("a.test", "t1")).response_code, 400)

    @defer.inlineCallbacks
    def test_destination_retry_and_catch_up(self):
        """Back-off state and the caught-up stream position are kept per destination."""
        self.assertIsNone((yield self.store.federation.get_destination("a.test")))
        yield self.store.federation.set_destination_retry("a.test", 1000, 60000, 900)
        self.assertEqual((yield self.store.federation.get_destination("a.test")),
                         DestinationRecord("a.test", 1000, 60000, 900, None))
        yield self.store.federation.set_destination_last_successful_stream_ordering("a.test", 42)
        yield self.store.federation.set_destination_retry("a.test", 0, 0, None)
        self.assertEqual((yield self.store.federation.get_destination("a.test")),
                         DestinationRecord("a.test", 0, 0, None, 42))
        yield self.store.federation.set_destination_last_successful_stream_ordering("b.test", 50)
        yield self.store.federation.set_destination_retry("c.test", 1, 2, 3)
        behind = yield self.store.federation.get_destinations_behind(50)
        self.assertEqual([d.destination for d in behind], ["a.test"])
        self.assertEqual((yield self.store.federation.get_destinations_behind(10)), [])

    @defer.inlineCallbacks
    def test_server_keys(self):
        """Cached keys are found by server and key ID; the longest-valid copy wins."""
        response = {"server_name": "a.test", "verify_keys": {"ed25519:k1": {"key": "AAA"}}, "signatures": {}}
        yield self.store.federation.store_server_keys("a.test", "ed25519:k1", "AAA", 1000, "a.test", response)
        yield self.store.federation.store_server_keys("a.test", "ed25519:k1", "AAA", 5000, "notary.test", response)
        yield self.store.federation.store_server_keys("a.test", "ed25519:k2", "BBB", 10, "a.test", response)
        yield self.store.federation.store_server_keys("a.test", "ed25519:k2", "BBB", 20, "a.test", response)
        keys = yield self.store.federation.get_server_keys("a.test", ["ed25519:k1", "ed25519:missing"])
        self.assertEqual(list(keys), ["ed25519:k1"])
        key = keys["ed25519:k1"]
        self.assertEqual((key.verify_key_b64, key.valid_until_ts, key.from_server, key.key_json),
                         ("AAA", 5000, "notary.test", response))
        every = yield self.store.federation.get_server_keys("a.test", None)
        self.assertEqual({k: v.valid_until_ts for k, v in every.items()}, {"ed25519:k1": 5000, "ed25519:k2": 20})
        self.assertEqual((yield self.store.federation.get_server_keys("b.test", None)), {})


class FederationStoreSQLiteTests(FederationStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """IFederationStore conformance on SQLite."""


class FederationStorePostgresTests(FederationStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """IFederationStore conformance on PostgreSQL."""
