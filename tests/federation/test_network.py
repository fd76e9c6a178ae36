"""The in-memory federation network delivers real HTTP between whole test homeservers."""

import treq
from treq.testing import RequestTraversalAgent
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from mxref.events.signing import get_verify_key, encode_verify_key_base64, key_id_of
from mxref.federation.transport.client import FederationClient, HttpResponseError, RequestFailed
from mxref.testing.homeserver import make_test_homeserver
from mxref.testing.network import FederationNetwork, pumped_request


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


class _SlowResource(Resource):
    """Answers every request a few milliseconds later (``NOT_DONE_YET``)."""

    isLeaf = True

    def render_GET(self, request):
        def answer():
            request.write(b"ok")
            request.finish()

        reactor.callLater(0.003, answer)
        return NOT_DONE_YET


class PumpedRequestTests(unittest.TestCase):
    """Several requests in flight through one in-memory agent all get their answers."""

    @defer.inlineCallbacks
    def test_request_started_by_a_response_handler_loses_no_other_response(self):
        """Requests started from inside another one's response handler leave the concurrent ones deliverable."""
        traversal = RequestTraversalAgent(_SlowResource())
        answers = []

        @defer.inlineCallbacks
        def fetch(then_fetch_again):
            response = yield pumped_request(traversal, reactor, b"GET", b"http://x.test/")
            # Reading the body happens inside the flush that delivered it; a follow-up
            # request started right here flushes (its pump starts at once).
            body = yield treq.content(response)
            answers.append(body)
            if then_fetch_again:
                yield fetch(False)

        requests = defer.gatherResults([fetch(True) for _ in range(6)])
        requests.addTimeout(5, reactor)
        yield requests
        self.assertEqual(answers, [b"ok"] * 12)
