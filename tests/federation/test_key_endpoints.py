"""Tests for the notary endpoints GET /_matrix/key/v2/query/{serverName} and POST /_matrix/key/v2/query."""

from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.server import Site

from mxref.crypto.keyring import Keyring, check_key_response
from mxref.events.signing import generate_signing_key, get_verify_key, verify_json
from mxref.federation.transport.keys import KeyQueryResource, ServerKeysResource
from mxref.http.resource import JsonResource
from tests.federation.test_keyring import DAY_MS, KeyNetwork, RemoteServer, memory_store
from tests.http.memory_http import MemoryConnection

START_S = 1_700_000_000


class KeyQueryEndpointTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START_S)
        self.now_ms = START_S * 1000
        self.network = KeyNetwork()
        self.remote = self.network.add(RemoteServer(self.clock, "remote.org"))
        store = yield memory_store(self)
        self.key = generate_signing_key("n1")
        self.keyring = Keyring(store.federation, self.network, self.clock, "notary.org", self.key)
        resource = JsonResource()
        KeyQueryResource(self.keyring, "notary.org", self.key, {}, self.clock, DAY_MS).register_routes(resource)
        ServerKeysResource("notary.org", self.key, {}, self.clock, DAY_MS).register_routes(resource)
        self.site = Site(resource, reactor=MemoryReactorClock())

    @defer.inlineCallbacks
    def request(self, method, path, body=None):
        connection = MemoryConnection(self.site)
        connection.request(method, path, body)
        for _ in range(500):
            try:
                return connection.response()
            except ValueError:
                yield deferLater(reactor, 0.005)
        self.fail(f"no response to {method} {path}")

    def assertSignedByBoth(self, response, server_name):
        check_key_response(response, server_name)
        verify_json(response, "notary.org", get_verify_key(self.key))

    @defer.inlineCallbacks
    def test_get_query(self):
        """GET query/{serverName} fetches the server's keys and returns them signed by it and by the notary."""
        response = yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        self.assertEqual(response.code, 200)
        [keys] = response.json()["server_keys"]
        self.assertSignedByBoth(keys, "remote.org")
        self.assertIn("ed25519:k1", keys["verify_keys"])

    @defer.inlineCallbacks
    def test_answers_from_cache(self):
        """A second query within the keys' validity is answered from the cache, even if the server is down."""
        yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        self.remote.reachable = False
        response = yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        self.assertEqual(len(response.json()["server_keys"]), 1)
        self.assertEqual(len(self.network.direct_calls()), 1)

    @defer.inlineCallbacks
    def test_minimum_valid_until_ts_refetches(self):
        """A minimum_valid_until_ts beyond the cached validity makes the notary fetch again."""
        yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        self.clock.advance(DAY_MS / 1000 / 2)
        minimum = self.now_ms + DAY_MS + 1
        response = yield self.request("GET", f"/_matrix/key/v2/query/remote.org?minimum_valid_until_ts={minimum}")
        self.assertEqual(len(self.network.direct_calls()), 2)
        [keys] = response.json()["server_keys"]
        self.assertGreaterEqual(keys["valid_until_ts"], minimum)

    @defer.inlineCallbacks
    def test_stale_cache_served_when_server_down(self):
        """When the server cannot be reached, the notary still returns what it has cached."""
        yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        self.remote.reachable = False
        self.clock.advance(2 * DAY_MS / 1000)
        response = yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        self.assertEqual(len(response.json()["server_keys"]), 1)

    @defer.inlineCallbacks
    def test_unreachable_gives_empty_list(self):
        """A server that cannot be reached and was never cached gives an empty server_keys list."""
        response = yield self.request("GET", "/_matrix/key/v2/query/gone.org")
        self.assertEqual((response.code, response.json()), (200, {"server_keys": []}))

    @defer.inlineCallbacks
    def test_post_query(self):
        """POST query answers for several servers, including ourselves, each signed by the notary."""
        body = {"server_keys": {
            "remote.org": {"ed25519:k1": {"minimum_valid_until_ts": self.now_ms}},
            "notary.org": {},
            "gone.org": {},
        }}
        response = yield self.request("POST", "/_matrix/key/v2/query", body)
        self.assertEqual(response.code, 200)
        by_server = {keys["server_name"]: keys for keys in response.json()["server_keys"]}
        self.assertEqual(set(by_server), {"remote.org", "notary.org"})
        self.assertSignedByBoth(by_server["remote.org"], "remote.org")
        self.assertSignedByBoth(by_server["notary.org"], "notary.org")

    @defer.inlineCallbacks
    def test_post_empty(self):
        """A query naming no servers returns an empty list."""
        response = yield self.request("POST", "/_matrix/key/v2/query", {"server_keys": {}})
        self.assertEqual(response.json(), {"server_keys": []})
        self.assertEqual(self.network.calls, [])

    @defer.inlineCallbacks
    def test_post_malformed(self):
        """Malformed query bodies get 400 M_BAD_JSON or M_NOT_JSON."""
        for body, errcode in [
            ({}, "M_BAD_JSON"),
            ({"server_keys": []}, "M_BAD_JSON"),
            ({"server_keys": {"remote.org": []}}, "M_BAD_JSON"),
            ({"server_keys": {"remote.org": {"ed25519:k1": {"minimum_valid_until_ts": "1"}}}}, "M_BAD_JSON"),
            (b"{", "M_NOT_JSON"),
        ]:
            response = yield self.request("POST", "/_matrix/key/v2/query", body)
            self.assertEqual((response.code, response.json()["errcode"]), (400, errcode), body)

    @defer.inlineCallbacks
    def test_bad_minimum_parameter(self):
        """A non-integer minimum_valid_until_ts query parameter gets 400 M_INVALID_PARAM."""
        response = yield self.request("GET", "/_matrix/key/v2/query/remote.org?minimum_valid_until_ts=soon")
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"))

    @defer.inlineCallbacks
    def test_old_keys_served(self):
        """A server's old_verify_keys are passed on with its response."""
        self.remote.rotate("k2")
        response = yield self.request("GET", "/_matrix/key/v2/query/remote.org")
        [keys] = response.json()["server_keys"]
        self.assertIn("ed25519:k1", keys["old_verify_keys"])
        self.assertIn("ed25519:k2", keys["verify_keys"])
