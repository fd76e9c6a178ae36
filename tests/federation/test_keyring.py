"""Tests for the Keyring: fetching, verifying and caching remote keys; checking JSON and event signatures."""

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from mxref.crypto.keys import OldVerifyKey
from mxref.crypto.keyring import Keyring
from mxref.events.signing import generate_signing_key, get_verify_key
from mxref.federation.transport.client import RequestFailed
from mxref.federation.transport.keys import KeyQueryResource, server_keys_response
from mxref.storage.database import make_database
from mxref.storage.sql.store import make_store

DAY_MS = 24 * 60 * 60 * 1000


@defer.inlineCallbacks
def memory_store(test_case):
    """A fresh in-memory SQLite store, closed when the test ends."""
    database = yield make_database({"name": "sqlite3", "args": {"database": ":memory:"}}, reactor)
    test_case.addCleanup(database.close)
    return make_store(database)


class RemoteServer:
    """A homeserver publishing its keys: the current one, plus old ones with their expiry."""

    def __init__(self, clock, name, version="k1", validity_ms=DAY_MS):
        self.clock = clock
        self.name = name
        self.signing_key = generate_signing_key(version)
        self.old_keys = {}
        self.validity_ms = validity_ms
        self.reachable = True

    def rotate(self, version):
        """Retire the current key (expired now) and start signing with a new one."""
        now_ms = int(self.clock.seconds() * 1000)
        old = self.signing_key
        self.old_keys[f"ed25519:{old.version}"] = OldVerifyKey(get_verify_key(old), now_ms)
        self.signing_key = generate_signing_key(version)
        return old

    def key_response(self):
        now_ms = int(self.clock.seconds() * 1000)
        return server_keys_response(self.name, self.signing_key, self.old_keys, now_ms, self.validity_ms)


class KeyNetwork:
    """A key fetcher (FederationClient-shaped) over in-process servers and notaries.

    :ivar calls: ``("direct", server)`` and ``("notary", notary, query)`` in order.
    :ivar hold: when true, fetches return Deferreds the test fires with :meth:`release`.
    """

    def __init__(self):
        self.servers = {}
        self.notaries = {}
        self.calls = []
        self.hold = False
        self.held = []
        self.tamper = None

    def add(self, server):
        self.servers[server.name] = server
        return server

    def get_server_keys(self, destination):
        self.calls.append(("direct", destination))
        server = self.servers.get(destination)
        if server is None or not server.reachable:
            return defer.fail(RequestFailed(f"{destination} is unreachable"))
        response = server.key_response()
        if self.tamper is not None:
            response = self.tamper(response)
        if self.hold:
            d = defer.Deferred()
            self.held.append((d, response))
            return d
        return defer.succeed(response)

    def release(self):
        held, self.held = self.held, []
        for d, response in held:
            d.callback(response)

    def query_server_keys(self, notary, server_keys):
        self.calls.append(("notary", notary, server_keys))
        resource = self.notaries.get(notary)
        if resource is None:
            return defer.fail(RequestFailed(f"{notary} is unreachable"))
        d = resource.query(server_keys)
        d.addCallback(lambda responses: {"server_keys": responses})
        return d

    def direct_calls(self):
        return [call for call in self.calls if call[0] == "direct"]


@defer.inlineCallbacks
def make_notary(test_case, clock, network, name="notary.org"):
    """A notary homeserver: its own keyring and store, its KeyQueryResource registered on ``network``.

    :returns: ``(notary RemoteServer, KeyQueryResource)``.
    """
    notary = network.add(RemoteServer(clock, name, version="n1"))
    store = yield memory_store(test_case)
    keyring = Keyring(store.federation, network, clock, name, notary.signing_key)
    resource = KeyQueryResource(keyring, name, notary.signing_key, {}, clock, DAY_MS)
    network.notaries[name] = resource
    return notary, resource


from twisted.internet.task import Clock
from twisted.trial import unittest

from mxref.config.keys import TrustedKeyServerConfig
from mxref.errors import SignatureError
from mxref.events.signing import encode_verify_key_base64, sign_event, sign_json

START_S = 1_700_000_000


def make_event(sender_server, ts_ms, body="hi"):
    return {
        "room_id": "!room:" + sender_server,
        "type": "m.room.message",
        "sender": "@alice:" + sender_server,
        "content": {"body": body},
        "origin_server_ts": ts_ms,
        "depth": 5,
        "prev_events": ["$prev"],
        "auth_events": ["$create"],
    }


class KeyringTestsBase(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START_S)
        self.now_ms = START_S * 1000
        self.network = KeyNetwork()
        self.remote = self.network.add(RemoteServer(self.clock, "remote.org"))
        self.store = yield memory_store(self)
        self.our_key = generate_signing_key("us1")
        self.keyring = self.make_keyring()

    def make_keyring(self, trusted=()):
        return Keyring(self.store.federation, self.network, self.clock, "us.org", self.our_key, trusted)


class DirectFetchTests(KeyringTestsBase):
    @defer.inlineCallbacks
    def test_fetch_and_cache(self):
        """A remote key is fetched from the server once and then answered from the cache."""
        verify_key, valid_until_ts = yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        self.assertEqual(encode_verify_key_base64(verify_key), encode_verify_key_base64(self.remote.signing_key))
        self.assertEqual(valid_until_ts, self.now_ms + DAY_MS)
        yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        fresh = self.make_keyring()
        yield fresh.get_server_verify_key("remote.org", "ed25519:k1")
        self.assertEqual(self.network.calls, [("direct", "remote.org")])
        cached = yield self.store.federation.get_server_keys("remote.org", None)
        self.assertEqual(cached["ed25519:k1"].from_server, "remote.org")

    @defer.inlineCallbacks
    def test_validity_capped_at_seven_days(self):
        """A key published as valid for 30 days is trusted for at most 7 days from the fetch."""
        self.remote.validity_ms = 30 * DAY_MS
        _key, valid_until_ts = yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        self.assertEqual(valid_until_ts, self.now_ms + 7 * DAY_MS)

    @defer.inlineCallbacks
    def test_refetch_when_not_valid_long_enough(self):
        """A cached key not valid until the wanted time is fetched again; a fresh one is then returned."""
        yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        self.clock.advance(2 * DAY_MS / 1000)
        found = yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1", self.now_ms + 2 * DAY_MS)
        self.assertEqual(found[1], self.now_ms + 3 * DAY_MS)
        self.assertEqual(len(self.network.direct_calls()), 2)

    @defer.inlineCallbacks
    def test_unknown_key_and_unreachable(self):
        """A key the server does not publish, or a server that cannot be reached, gives None."""
        self.assertIsNone((yield self.keyring.get_server_verify_key("remote.org", "ed25519:nope")))
        self.assertIsNone((yield self.keyring.get_server_verify_key("gone.org", "ed25519:k1")))

    @defer.inlineCallbacks
    def test_bad_self_signature_refused(self):
        """A key response whose self-signature does not verify is not used or cached."""
        impostor = generate_signing_key("k1")

        def resign(response):
            response = dict(response)
            response["signatures"] = {}
            return sign_json(response, "remote.org", impostor)

        self.network.tamper = resign
        self.assertIsNone((yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")))
        self.assertEqual((yield self.store.federation.get_server_keys("remote.org", None)), {})

    @defer.inlineCallbacks
    def test_unsigned_or_other_server_refused(self):
        """Unsigned responses and responses naming another server are refused."""
        def strip(response):
            return {name: value for name, value in response.items() if name != "signatures"}

        self.network.tamper = strip
        self.assertIsNone((yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")))
        other = self.network.add(RemoteServer(self.clock, "other.org"))
        self.network.tamper = lambda response: other.key_response()
        self.assertIsNone((yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")))

    @defer.inlineCallbacks
    def test_concurrent_lookups_coalesced(self):
        """Concurrent look-ups of the same key share one fetch."""
        self.network.hold = True
        first = self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        second = self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        while len(self.network.held) < 1:
            yield deferLater(reactor, 0.01)
        yield deferLater(reactor, 0.05)
        self.assertEqual(len(self.network.direct_calls()), 1)
        self.network.release()
        results = yield defer.gatherResults([first, second])
        self.assertEqual(results[0][1], results[1][1])
        self.assertEqual(len(self.network.direct_calls()), 1)

    @defer.inlineCallbacks
    def test_own_keys_local(self):
        """Our own current and old keys are answered without any fetch."""
        old_key = generate_signing_key("us0")
        keyring = Keyring(self.store.federation, self.network, self.clock, "us.org", self.our_key,
                          old_keys={"ed25519:us0": OldVerifyKey(get_verify_key(old_key), 123)})
        current = yield keyring.get_server_verify_key("us.org", "ed25519:us1")
        self.assertEqual(encode_verify_key_base64(current[0]), encode_verify_key_base64(self.our_key))
        old = yield keyring.get_server_verify_key("us.org", "ed25519:us0")
        self.assertEqual(old[1], 123)
        self.assertIsNone((yield keyring.get_server_verify_key("us.org", "ed25519:nope")))
        self.assertEqual(self.network.calls, [])


class NotaryFetchTests(KeyringTestsBase):
    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.notary, self.notary_resource = yield make_notary(self, self.clock, self.network)
        notary_key = (("ed25519:n1", encode_verify_key_base64(self.notary.signing_key)),)
        self.keyring = self.make_keyring([TrustedKeyServerConfig("notary.org", notary_key)])

    @defer.inlineCallbacks
    def test_notary_used_when_server_unreachable(self):
        """When the server is down, its key comes from a notary that cached it earlier."""
        yield self.notary_resource.query({"remote.org": {}})
        self.remote.reachable = False
        found = yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        self.assertEqual(encode_verify_key_base64(found[0]), encode_verify_key_base64(self.remote.signing_key))
        self.assertEqual(
            self.network.calls[-1],
            ("notary", "notary.org", {"remote.org": {"ed25519:k1": {"minimum_valid_until_ts": 0}}}),
        )
        cached = yield self.store.federation.get_server_keys("remote.org", ["ed25519:k1"])
        self.assertEqual(cached["ed25519:k1"].from_server, "notary.org")
        self.assertIn("notary.org", cached["ed25519:k1"].key_json["signatures"])

    @defer.inlineCallbacks
    def test_notary_with_wrong_key_refused(self):
        """A notary answer signed with a key other than the configured one is refused."""
        yield self.notary_resource.query({"remote.org": {}})
        self.remote.reachable = False
        wrong = (("ed25519:n1", encode_verify_key_base64(generate_signing_key("n1"))),)
        keyring = self.make_keyring([TrustedKeyServerConfig("notary.org", wrong)])
        self.assertIsNone((yield keyring.get_server_verify_key("remote.org", "ed25519:k1")))

    @defer.inlineCallbacks
    def test_notary_key_fetched_directly_when_not_configured(self):
        """A notary configured without verify_keys has its own key fetched from it to check its signature."""
        yield self.notary_resource.query({"remote.org": {}})
        self.remote.reachable = False
        keyring = self.make_keyring(["notary.org"])
        self.assertIsNotNone((yield keyring.get_server_verify_key("remote.org", "ed25519:k1")))
        self.assertIn(("direct", "notary.org"), self.network.calls)

    @defer.inlineCallbacks
    def test_notary_forging_origin_signature_refused(self):
        """A notary cannot vouch for keys that lack a valid signature of the server itself."""
        forged_key = generate_signing_key("k1")
        forged = server_keys_response("remote.org", forged_key, {}, self.now_ms, DAY_MS)
        forged["signatures"] = {}
        forged = sign_json(forged, "notary.org", self.notary.signing_key)

        def query(notary, server_keys):
            return defer.succeed({"server_keys": [forged]})

        self.network.query_server_keys = query
        self.remote.reachable = False
        self.assertIsNone((yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")))


class VerifyJsonTests(KeyringTestsBase):
    @defer.inlineCallbacks
    def test_valid_and_tampered(self):
        """JSON signed by the server verifies; altered JSON raises SignatureError."""
        signed = sign_json({"a": 1}, "remote.org", self.remote.signing_key)
        yield self.keyring.verify_json_for_server("remote.org", signed, self.now_ms)
        signed["a"] = 2
        yield self.assertFailure(self.keyring.verify_json_for_server("remote.org", signed), SignatureError)

    @defer.inlineCallbacks
    def test_unsigned_and_unknown_key(self):
        """JSON without the server's signature, or signed with an unknown key, is refused."""
        yield self.assertFailure(self.keyring.verify_json_for_server("remote.org", {"a": 1}), SignatureError)
        stranger = sign_json({"a": 1}, "remote.org", generate_signing_key("k9"))
        yield self.assertFailure(self.keyring.verify_json_for_server("remote.org", stranger), SignatureError)

    @defer.inlineCallbacks
    def test_old_key_not_valid_for_requests(self):
        """A key in old_verify_keys does not authenticate JSON (it is only valid for events)."""
        old = self.remote.rotate("k2")
        signed = sign_json({"a": 1}, "remote.org", old)
        yield self.assertFailure(self.keyring.verify_json_for_server("remote.org", signed), SignatureError)


class VerifyEventTests(KeyringTestsBase):
    @defer.inlineCallbacks
    def test_signed_event(self):
        """An event signed by its sender's server verifies; a forged one does not."""
        event = sign_event(make_event("remote.org", self.now_ms), "remote.org", self.remote.signing_key, "10")
        yield self.keyring.verify_event(event, "10")
        forged = sign_event(make_event("remote.org", self.now_ms), "remote.org", generate_signing_key("k1"), "10")
        yield self.assertFailure(self.keyring.verify_event(forged, "10"), SignatureError)
        unsigned = dict(event, signatures={})
        yield self.assertFailure(self.keyring.verify_event(unsigned, "10"), SignatureError)

    @defer.inlineCallbacks
    def test_old_key_valid_before_expiry_only(self):
        """An event signed with a now-old key verifies if sent before the key's expired_ts, not after."""
        before = sign_event(make_event("remote.org", self.now_ms - 1000), "remote.org", self.remote.signing_key, "10")
        after = sign_event(make_event("remote.org", self.now_ms + 1000), "remote.org", self.remote.signing_key, "10")
        self.remote.rotate("k2")
        yield self.keyring.verify_event(before, "10")
        yield self.assertFailure(self.keyring.verify_event(after, "10"), SignatureError)
        # In a room version that ignores valid_until_ts the old key's expiry still applies.
        yield self.assertFailure(self.keyring.verify_event(after, "4"), SignatureError)

    @defer.inlineCallbacks
    def test_key_validity_enforced_from_v5(self):
        """From v5 an event newer than its key's validity fails once the server is unreachable; v4 ignores validity."""
        yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        self.remote.reachable = False
        late_ts = self.now_ms + 2 * DAY_MS
        for version in ("4", "5"):
            event = make_event("remote.org", late_ts)
            if version == "4":
                event["event_id"] = "$x"
            signed = sign_event(event, "remote.org", self.remote.signing_key, version)
            if version == "4":
                yield self.keyring.verify_event(signed, version)
            else:
                yield self.assertFailure(self.keyring.verify_event(signed, version), SignatureError)

    @defer.inlineCallbacks
    def test_key_refetched_for_newer_event(self):
        """From v5 an event newer than the cached key's validity makes the keyring fetch the key again."""
        yield self.keyring.get_server_verify_key("remote.org", "ed25519:k1")
        self.clock.advance(2 * DAY_MS / 1000)
        event = sign_event(make_event("remote.org", self.now_ms + 2 * DAY_MS), "remote.org", self.remote.signing_key, "10")
        yield self.keyring.verify_event(event, "10")
        self.assertEqual(len(self.network.direct_calls()), 2)
