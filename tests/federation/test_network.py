"""The in-memory federation network delivers real HTTP between whole test homeservers."""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mxref.events.signing import get_verify_key, encode_verify_key_base64, key_id_of
from mxref.federation.transport.client import FederationClient, HttpResponseError, RequestFailed
from mxref.testing.homeserver import make_test_homeserver
from mxref.testing.network import FederationNetwork


class NetworkTests(unittest.TestCase):
    """Requests reach the named server, and cut links refuse them."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network = FederationNetwork(reactor)
        self.a = yield make_test_homeserver(self, reactor, server_name="a.test")
        self.b = yield make_test_homeserver(self, reactor, server_name="b.test")
        for homeserver in (self.a, self.b):
            self.network.add_server(homeserver.server_name, homeserver.resources)
        self.client = FederationClient(self.network.agent_for("a.test"), "a.test", self.a.signing_key, reactor)

    @defer.inlineCallbacks
    def test_keys_of_another_server(self):
        """a.test fetches b.test's signing key over the network."""
        response = yield self.client.get_server_keys("b.test")
        self.assertEqual(response["server_name"], "b.test")
        key_id = key_id_of(self.b.signing_key)
        self.assertEqual(
            response["verify_keys"][key_id]["key"], encode_verify_key_base64(get_verify_key(self.b.signing_key))
        )
        self.assertEqual(self.network.requests[-1][:3], ("a.test", "b.test", "GET"))

    @defer.inlineCallbacks
    def test_unknown_path_is_a_matrix_404(self):
        """An unknown federation path answers 404 M_UNRECOGNIZED through the network."""
        with self.assertRaises(HttpResponseError) as caught:
            yield self.client.get_json("b.test", "/_matrix/federation/v1/no_such_endpoint")
        self.assertEqual((caught.exception.code, caught.exception.errcode), (404, "M_UNRECOGNIZED"))

    @defer.inlineCallbacks
    def test_cut_link_and_unknown_server_refuse(self):
        """A cut link or a server that is not on the network fails like a refused connection."""
        self.network.cut("a.test", "b.test")
        with self.assertRaises(RequestFailed):
            yield self.client.get_server_keys("b.test")
        with self.assertRaises(RequestFailed):
            yield self.client.get_server_keys("nowhere.test")
        self.network.heal()
        response = yield self.client.get_server_keys("b.test")
        self.assertEqual(response["server_name"], "b.test")
