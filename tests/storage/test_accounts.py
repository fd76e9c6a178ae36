"""Conformance suite for IAccountStore, run against SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.interfaces import IAccountStore
from mxref.storage.records import Profile, TokenOwner
from tests.storage.harness import PostgresBackendMixin, SqliteBackendMixin

ALICE = "@alice:example.org"
BOB = "@bob:example.org"


class AccountStoreConformanceMixin:
    """What every IAccountStore must do; needs ``self.store``."""

    def test_provides_interface(self):
        """The account store fully implements IAccountStore."""
        self.assertTrue(verifyObject(IAccountStore, self.store.accounts))

    @defer.inlineCallbacks
    def test_users(self):
        """A user is created once, reads back, changes password and can be deactivated."""
        self.assertTrue((yield self.store.accounts.create_user(ALICE, "hash1", is_admin=True, created_ts=5)))
        self.assertFalse((yield self.store.accounts.create_user(ALICE, "other")))
        yield self.store.accounts.create_user(BOB, None, is_guest=True, user_type="bot")
        alice = yield self.store.accounts.get_user(ALICE)
        self.assertEqual(
            (alice.password_hash, alice.is_admin, alice.is_guest, alice.created_ts, alice.user_type, alice.deactivated),
            ("hash1", True, False, 5, None, False),
        )
        bob = yield self.store.accounts.get_user(BOB)
        self.assertEqual((bob.password_hash, bob.is_guest, bob.user_type), (None, True, "bot"))
        self.assertIsNone((yield self.store.accounts.get_user("@nobody:example.org")))
        self.assertTrue((yield self.store.accounts.set_password_hash(ALICE, "hash2")))
        self.assertFalse((yield self.store.accounts.set_password_hash("@nobody:example.org", "x")))
        self.assertEqual((yield self.store.accounts.get_user(ALICE)).password_hash, "hash2")

    @defer.inlineCallbacks
    def test_devices(self):
        """Devices are created once, renamed, marked seen, listed and deleted with their tokens."""
        yield self.store.accounts.create_user(ALICE, "h")
        self.assertTrue((yield self.store.accounts.create_device(ALICE, "D1", "Phone", 10)))
        self.assertFalse((yield self.store.accounts.create_device(ALICE, "D1", "Other", 11)))
        yield self.store.accounts.create_device(ALICE, "D2")
        device = yield self.store.accounts.get_device(ALICE, "D1")
        self.assertEqual((device.display_name, device.created_ts, device.last_seen_ts), ("Phone", 10, None))
        self.assertTrue((yield self.store.accounts.set_device_display_name(ALICE, "D1", "Laptop")))
        self.assertFalse((yield self.store.accounts.set_device_display_name(ALICE, "D9", "x")))
        yield self.store.accounts.record_device_seen(ALICE, "D1", 99, "192.0.2.1")
        device = yield self.store.accounts.get_device(ALICE, "D1")
        self.assertEqual((device.display_name, device.last_seen_ts, device.last_seen_ip), ("Laptop", 99, "192.0.2.1"))
        self.assertEqual(set((yield self.store.accounts.get_devices(ALICE))), {"D1", "D2"})
        yield self.store.accounts.add_access_token(ALICE, "D1", "tok1", 1)
        yield self.store.accounts.add_access_token(ALICE, "D2", "tok2", 1)
        self.assertTrue((yield self.store.accounts.delete_device(ALICE, "D1")))
        self.assertFalse((yield self.store.accounts.delete_device(ALICE, "D1")))
        self.assertIsNone((yield self.store.accounts.get_device(ALICE, "D1")))
        self.assertIsNone((yield self.store.accounts.get_user_by_access_token("tok1")))
        self.assertIsNotNone((yield self.store.accounts.get_user_by_access_token("tok2")))

    @defer.inlineCallbacks
    def test_access_tokens(self):
        """Tokens identify their user and device; they can be revoked singly or all but one."""
        yield self.store.accounts.create_user(ALICE, "h")
        yield self.store.accounts.create_user(BOB, None, is_guest=True)
        yield self.store.accounts.add_access_token(ALICE, "D1", "a1", 1)
        yield self.store.accounts.add_access_token(ALICE, None, "a2", 2)
        yield self.store.accounts.add_access_token(ALICE, "D3", "a3", 3)
        yield self.store.accounts.add_access_token(BOB, "G", "b1", 4)
        self.assertEqual((yield self.store.accounts.get_user_by_access_token("a1")), TokenOwner(ALICE, "D1", False))
        self.assertEqual((yield self.store.accounts.get_user_by_access_token("a2")), TokenOwner(ALICE, None, False))
        self.assertEqual((yield self.store.accounts.get_user_by_access_token("b1")), TokenOwner(BOB, "G", True))
        self.assertIsNone((yield self.store.accounts.get_user_by_access_token("nope")))
        self.assertTrue((yield self.store.accounts.delete_access_token("a1")))
        self.assertFalse((yield self.store.accounts.delete_access_token("a1")))
        self.assertEqual((yield self.store.accounts.delete_all_access_tokens(ALICE, except_token="a3")), 1)
        self.assertIsNotNone((yield self.store.accounts.get_user_by_access_token("a3")))
        self.assertEqual((yield self.store.accounts.delete_all_access_tokens(ALICE)), 1)
        self.assertIsNone((yield self.store.accounts.get_user_by_access_token("a3")))
        self.assertIsNotNone((yield self.store.accounts.get_user_by_access_token("b1")))

    @defer.inlineCallbacks
    def test_delete_tokens_of_one_device(self):
        """A device's tokens can be revoked without touching other devices or the device record."""
        yield self.store.accounts.create_user(ALICE, "h")
        yield self.store.accounts.create_device(ALICE, "D1")
        yield self.store.accounts.add_access_token(ALICE, "D1", "old", 1)
        yield self.store.accounts.add_access_token(ALICE, "D1", "new", 2)
        yield self.store.accounts.add_access_token(ALICE, "D2", "other", 3)
        self.assertEqual((yield self.store.accounts.delete_access_tokens_for_device(ALICE, "D1", except_token="new")), 1)
        self.assertIsNone((yield self.store.accounts.get_user_by_access_token("old")))
        self.assertIsNotNone((yield self.store.accounts.get_user_by_access_token("new")))
        self.assertIsNotNone((yield self.store.accounts.get_user_by_access_token("other")))
        self.assertIsNotNone((yield self.store.accounts.get_device(ALICE, "D1")))

    @defer.inlineCallbacks
    def test_deactivate(self):
        """Deactivating removes the password, tokens and devices but keeps the account record."""
        yield self.store.accounts.create_user(ALICE, "h")
        yield self.store.accounts.create_device(ALICE, "D1")
        yield self.store.accounts.add_access_token(ALICE, "D1", "a1", 1)
        self.assertTrue((yield self.store.accounts.deactivate(ALICE)))
        alice = yield self.store.accounts.get_user(ALICE)
        self.assertEqual((alice.deactivated, alice.password_hash), (True, None))
        self.assertIsNone((yield self.store.accounts.get_user_by_access_token("a1")))
        self.assertEqual((yield self.store.accounts.get_devices(ALICE)), {})
        self.assertFalse((yield self.store.accounts.deactivate("@nobody:example.org")))

    @defer.inlineCallbacks
    def test_tokens_looked_up_before_revocation_are_refused_after(self):
        """A token that was just used stops working after each way of revoking it (single
        token, device's tokens, device deletion, all tokens, deactivation)."""
        yield self.store.accounts.create_user(ALICE, "h")
        accounts = self.store.accounts
        revocations = [
            ("t1", "D1", lambda: accounts.delete_access_token("t1")),
            ("t2", "D2", lambda: accounts.delete_access_tokens_for_device(ALICE, "D2")),
            ("t3", "D3", lambda: accounts.delete_device(ALICE, "D3")),
            ("t4", "D4", lambda: accounts.delete_all_access_tokens(ALICE, except_token="t5")),
            ("t5", "D5", lambda: accounts.deactivate(ALICE)),
        ]
        for token, device_id, _revoke in revocations:
            yield accounts.create_device(ALICE, device_id)
            yield accounts.add_access_token(ALICE, device_id, token, 1)
        for token, device_id, revoke in revocations:
            for _ in range(2):
                self.assertEqual((yield accounts.get_user_by_access_token(token)), TokenOwner(ALICE, device_id, False))
            yield revoke()
            self.assertIsNone((yield accounts.get_user_by_access_token(token)))

    @defer.inlineCallbacks
    def test_profiles(self):
        """Display name and avatar are set and cleared independently."""
        self.assertIsNone((yield self.store.accounts.get_profile(ALICE)))
        yield self.store.accounts.set_displayname(ALICE, "Alice 🌸")
        self.assertEqual((yield self.store.accounts.get_profile(ALICE)), Profile("Alice 🌸", None))
        yield self.store.accounts.set_avatar_url(ALICE, "mxc://example.org/abc")
        yield self.store.accounts.set_displayname(ALICE, None)
        self.assertEqual((yield self.store.accounts.get_profile(ALICE)), Profile(None, "mxc://example.org/abc"))


class AccountStoreSQLiteTests(AccountStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """IAccountStore conformance on SQLite."""


class AccountStorePostgresTests(AccountStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """IAccountStore conformance on PostgreSQL."""
