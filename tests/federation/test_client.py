"""Tests for the outbound FederationClient over an in-memory HTTP connection to a real JsonResource."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest
from treq.testing import RequestTraversalAgent

from mxref.events.signing import generate_signing_key, get_verify_key
from mxref.federation.transport.client import (
    SEND_JOIN_MAX_RESPONSE_SIZE,
    FederationClient,
    HttpResponseError,
    RequestFailed,
)
from mxref.federation.transport.server import FederationRequestAuthenticator, authenticated, read_json_body
from mxref.http.resource import JsonResource
from tests.federation.test_server_auth import KnownKeys


class RecordingServer:
    """A remote homeserver's federation API: authenticates every request and records what it saw."""

    def __init__(self, clock, client_key):
        keys = KnownKeys(clock, {"us.org": {"ed25519:k1": (get_verify_key(client_key), 10**13)}})
        self.authenticator = FederationRequestAuthenticator(keys, "remote.org")
        self.resource = JsonResource()
        self.seen = []
        self.answer = (200, {"ok": True})

    def route(self, method, pattern):
        def endpoint(request, origin, **parameters):
            self.seen.append({
                "method": method,
                "origin": origin,
                "parameters": parameters,
                "uri": request.uri.decode("ascii"),
                "args": {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()},
                "body": read_json_body(request),
                "content_type": request.requestHeaders.getRawHeaders(b"Content-Type"),
            })
            return self.answer

        self.resource.register(method, pattern, authenticated(self.authenticator, endpoint))

    def unauthenticated_route(self, method, pattern):
        def endpoint(request, **parameters):
            self.seen.append({"uri": request.uri.decode("ascii"), "body": read_json_body(request),
                              "authorization": request.requestHeaders.getRawHeaders(b"Authorization")})
            return self.answer

        self.resource.register(method, pattern, endpoint)


class MemoryFederationAgent:
    """Sends matrix-federation:// requests to an in-memory Site (as plain http://)."""

    def __init__(self, resource):
        self.traversal = RequestTraversalAgent(resource)
        self.uris = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        self.uris.append(uri)
        return self.traversal.request(method, uri.replace(b"matrix-federation://", b"http://", 1), headers, bodyProducer)

    def flush(self):
        self.traversal.flush()


class FederationClientTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.key = generate_signing_key("k1")
        self.server = RecordingServer(self.clock, self.key)
        self.agent = MemoryFederationAgent(self.server.resource)
        self.client = FederationClient(self.agent, "us.org", self.key, self.clock)

    def complete(self, d):
        for _ in range(20):
            self.agent.flush()
        return d

    def result(self, d):
        return self.successResultOf(self.complete(d))

    def test_get_json_signed(self):
        """A GET arrives authenticated as our server, with its query parameters."""
        self.server.route("GET", "/_matrix/federation/v1/query/directory")
        body = self.result(self.client.query_directory("remote.org", "#a b:x.org"))
        self.assertEqual(body, {"ok": True})
        [seen] = self.server.seen
        self.assertEqual(seen["origin"], "us.org")
        self.assertEqual(seen["args"], {"room_alias": ["#a b:x.org"]})
        self.assertIsNone(seen["body"])

    def test_send_transaction(self):
        """A transaction is PUT with origin, origin_server_ts, pdus and edus as a JSON body."""
        self.server.route("PUT", "/_matrix/federation/v1/send/{txnId}")
        pdu = {"type": "m.room.message", "content": {"body": "h\u00e9"}}
        self.result(self.client.send_transaction("remote.org", "t/1", [pdu], [{"edu_type": "m.typing", "content": {}}]))
        [seen] = self.server.seen
        self.assertEqual(seen["parameters"], {"txn_id": "t/1"})
        self.assertEqual(seen["body"], {"origin": "us.org", "origin_server_ts": 1000000, "pdus": [pdu],
                                        "edus": [{"edu_type": "m.typing", "content": {}}]})
        self.assertEqual(seen["content_type"], [b"application/json"])

    def test_identifiers_in_paths(self):
        """Room, user and event IDs are percent-encoded in paths and arrive intact; `ver` is repeated."""
        self.server.route("GET", "/_matrix/federation/v1/make_join/{roomId}/{userId}")
        self.server.route("PUT", "/_matrix/federation/v2/send_join/{roomId}/{eventId}")
        self.server.route("GET", "/_matrix/federation/v1/backfill/{roomId}")
        self.result(self.client.make_join("remote.org", "!room:x.org", "@u/x:us.org", ["10", "11"]))
        self.result(self.client.send_join("remote.org", "!room:x.org", "$ev+/=", {"type": "m.room.member"},
                                          omit_members=True))
        self.result(self.client.backfill("remote.org", "!room:x.org", ["$a", "$b"], 5))
        join, send_join, backfill = self.server.seen
        self.assertEqual(join["parameters"], {"room_id": "!room:x.org", "user_id": "@u/x:us.org"})
        self.assertEqual(join["args"], {"ver": ["10", "11"]})
        self.assertEqual(send_join["parameters"], {"room_id": "!room:x.org", "event_id": "$ev+/="})
        self.assertEqual(send_join["args"], {"omit_members": ["true"]})
        self.assertEqual(send_join["body"], {"type": "m.room.member"})
        self.assertEqual(backfill["args"], {"v": ["$a", "$b"], "limit": ["5"]})

    def test_typed_paths(self):
        """Each typed method calls the spec's method and path."""
        calls = [
            ("GET", "/_matrix/federation/v1/make_leave/{roomId}/{userId}", lambda: self.client.make_leave("remote.org", "!r:x", "@u:x")),
            ("PUT", "/_matrix/federation/v2/send_leave/{roomId}/{eventId}", lambda: self.client.send_leave("remote.org", "!r:x", "$e", {})),
            ("GET", "/_matrix/federation/v1/make_knock/{roomId}/{userId}", lambda: self.client.make_knock("remote.org", "!r:x", "@u:x", ["7"])),
            ("PUT", "/_matrix/federation/v1/send_knock/{roomId}/{eventId}", lambda: self.client.send_knock("remote.org", "!r:x", "$e", {})),
            ("PUT", "/_matrix/federation/v2/invite/{roomId}/{eventId}", lambda: self.client.send_invite("remote.org", "!r:x", "$e", {"a": 1}, "11", [{"b": 2}])),
            ("GET", "/_matrix/federation/v1/event/{eventId}", lambda: self.client.get_event("remote.org", "$e")),
            ("GET", "/_matrix/federation/v1/state/{roomId}", lambda: self.client.get_state("remote.org", "!r:x", "$e")),
            ("GET", "/_matrix/federation/v1/state_ids/{roomId}", lambda: self.client.get_state_ids("remote.org", "!r:x", "$e")),
            ("GET", "/_matrix/federation/v1/event_auth/{roomId}/{eventId}", lambda: self.client.get_event_auth("remote.org", "!r:x", "$e")),
            ("POST", "/_matrix/federation/v1/get_missing_events/{roomId}", lambda: self.client.get_missing_events("remote.org", "!r:x", ["$a"], ["$b"], 20, 3)),
            ("GET", "/_matrix/federation/v1/query/profile", lambda: self.client.query_profile("remote.org", "@u:x", "displayname")),
            ("GET", "/_matrix/federation/v1/publicRooms", lambda: self.client.get_public_rooms("remote.org", limit=5)),
            ("POST", "/_matrix/federation/v1/publicRooms", lambda: self.client.get_public_rooms("remote.org", search_filter={"generic_search_term": "x"})),
        ]
        for method, pattern, call in calls:
            self.server.route(method, pattern)
        for method, pattern, call in calls:
            self.result(call())
        self.assertEqual(len(self.server.seen), len(calls))
        self.assertEqual([seen["method"] for seen in self.server.seen], [method for method, _, _ in calls])
        by_uri = {seen["uri"].split("?")[0]: seen for seen in self.server.seen}
        self.assertEqual(by_uri["/_matrix/federation/v2/invite/%21r%3Ax/%24e"]["body"],
                         {"room_version": "11", "event": {"a": 1}, "invite_room_state": [{"b": 2}]})
        self.assertEqual(by_uri["/_matrix/federation/v1/get_missing_events/%21r%3Ax"]["body"],
                         {"earliest_events": ["$a"], "latest_events": ["$b"], "limit": 20, "min_depth": 3})
        self.assertEqual(by_uri["/_matrix/federation/v1/state_ids/%21r%3Ax"]["args"], {"event_id": ["$e"]})
        self.assertEqual(by_uri["/_matrix/federation/v1/query/profile"]["args"], {"user_id": ["@u:x"], "field": ["displayname"]})

    def test_key_requests_unauthenticated(self):
        """Key requests go without an Authorization header; the notary query carries server_keys."""
        self.server.unauthenticated_route("GET", "/_matrix/key/v2/server")
        self.server.unauthenticated_route("POST", "/_matrix/key/v2/query")
        self.result(self.client.get_server_keys("remote.org"))
        query = {"a.org": {"ed25519:x": {"minimum_valid_until_ts": 5}}}
        self.result(self.client.query_server_keys("remote.org", query))
        server, notary = self.server.seen
        self.assertIsNone(server["authorization"])
        self.assertEqual(notary["body"], {"server_keys": query})

    def test_error_response(self):
        """A non-2xx answer raises HttpResponseError with the remote status, errcode and body."""
        self.server.route("GET", "/_matrix/federation/v1/event/{eventId}")
        self.server.answer = (404, {"errcode": "M_NOT_FOUND", "error": "no such event"})
        error = self.failureResultOf(self.complete(self.client.get_event("remote.org", "$e")), HttpResponseError).value
        self.assertEqual((error.code, error.errcode, error.msg), (404, "M_NOT_FOUND", "no such event"))
        self.assertEqual(error.body["errcode"], "M_NOT_FOUND")

    def test_unknown_endpoint(self):
        """An endpoint the remote does not have gives 404 M_UNRECOGNIZED as an HttpResponseError."""
        error = self.failureResultOf(self.complete(self.client.get_json("remote.org", "/_matrix/federation/v1/nope")), HttpResponseError).value
        self.assertEqual((error.code, error.errcode), (404, "M_UNRECOGNIZED"))

    def test_auth_refused(self):
        """A request signed with a key the remote does not know is refused with 401."""
        other = FederationClient(self.agent, "us.org", generate_signing_key("k1"), self.clock)
        self.server.route("GET", "/_matrix/federation/v1/event/{eventId}")
        error = self.failureResultOf(self.complete(other.get_event("remote.org", "$e")), HttpResponseError).value
        self.assertEqual((error.code, error.errcode), (401, "M_UNAUTHORIZED"))

    def test_response_not_object(self):
        """A 200 answer that is a JSON array instead of an object raises RequestFailed (502)."""
        self.server.route("GET", "/_matrix/federation/v1/event/{eventId}")
        self.server.answer = (200, [1, 2])
        error = self.failureResultOf(self.complete(self.client.get_event("remote.org", "$e")), RequestFailed).value
        self.assertEqual(error.code, 502)


class FakeResponse:
    """An IResponse with a given status and body, delivered in one chunk."""

    def __init__(self, code, body, length=None):
        from twisted.web.http_headers import Headers

        self.code = code
        self.phrase = b"OK"
        self.headers = Headers()
        self.length = length if length is not None else len(body)
        self._body = body
        self.stopped = False
        self.version = (b"HTTP", 1, 1)
        self.request = None
        self.previousResponse = None

    def deliverBody(self, protocol):
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone

        response = self

        class Transport:
            def stopProducing(self):
                response.stopped = True

            def loseConnection(self):
                response.stopped = True

        protocol.makeConnection(Transport())
        protocol.dataReceived(self._body)
        if not self.stopped:
            protocol.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response):
        self.previousResponse = response


class ScriptedAgent:
    """An IAgent whose answers the test supplies; records the requests."""

    def __init__(self):
        self.requests = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        d = defer.Deferred(lambda d: self.requests[-1].__setitem__("cancelled", True))
        self.requests.append({"method": method, "uri": uri, "headers": headers, "deferred": d, "cancelled": False})
        return d


class FederationClientFailureTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.agent = ScriptedAgent()
        self.client = FederationClient(self.agent, "us.org", generate_signing_key("k1"), self.clock, timeout=30)

    def test_uri(self):
        """Requests go to matrix-federation://<destination><path>?<query>."""
        self.client.get_state_ids("remote.org:8448", "!r:x", "$e")
        self.assertEqual(self.agent.requests[0]["uri"],
                         b"matrix-federation://remote.org:8448/_matrix/federation/v1/state_ids/%21r%3Ax?event_id=%24e")

    def test_timeout(self):
        """A request with no answer within the timeout is cancelled and fails with 504."""
        d = self.client.get_event("remote.org", "$e")
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        error = self.failureResultOf(d, RequestFailed).value
        self.assertEqual(error.code, 504)
        self.assertTrue(self.agent.requests[0]["cancelled"])

    def test_connection_failure(self):
        """A connection error becomes RequestFailed (502)."""
        from twisted.internet.error import ConnectionRefusedError

        d = self.client.get_event("remote.org", "$e")
        self.agent.requests[0]["deferred"].errback(ConnectionRefusedError())
        self.assertEqual(self.failureResultOf(d, RequestFailed).value.code, 502)

    def test_declared_length_too_large(self):
        """A response announcing more than the limit is refused without reading it."""
        d = self.client.get_event("remote.org", "$e")
        response = FakeResponse(200, b"{}", length=10 * 1024 * 1024 + 1)
        self.agent.requests[0]["deferred"].callback(response)
        self.failureResultOf(d, RequestFailed)
        self.assertTrue(response.stopped)

    def test_body_too_large(self):
        """A response body growing beyond the limit (unknown length) is cut off with RequestFailed."""
        from twisted.web.iweb import UNKNOWN_LENGTH

        d = self.client.get_event("remote.org", "$e")
        response = FakeResponse(200, b" " * (10 * 1024 * 1024 + 1), length=UNKNOWN_LENGTH)
        self.agent.requests[0]["deferred"].callback(response)
        self.failureResultOf(d, RequestFailed)

    def test_send_join_larger_limit(self):
        """send_join accepts answers beyond the ordinary limit, up to 50 MiB."""
        d = self.client.send_join("remote.org", "!r:x", "$e", {})
        padding = b" " * (20 * 1024 * 1024)
        self.agent.requests[0]["deferred"].callback(FakeResponse(200, b'{"state":[]}' + padding))
        self.assertEqual(self.successResultOf(d), {"state": []})
        self.assertEqual(SEND_JOIN_MAX_RESPONSE_SIZE, 50 * 1024 * 1024)

    def test_not_json(self):
        """A 200 answer that is not JSON raises RequestFailed."""
        d = self.client.get_event("remote.org", "$e")
        self.agent.requests[0]["deferred"].callback(FakeResponse(200, b"<html>"))
        self.failureResultOf(d, RequestFailed)

    def test_error_without_json(self):
        """A 502 with an HTML body raises HttpResponseError with M_UNKNOWN."""
        d = self.client.get_event("remote.org", "$e")
        self.agent.requests[0]["deferred"].callback(FakeResponse(502, b"<html>bad gateway</html>"))
        error = self.failureResultOf(d, HttpResponseError).value
        self.assertEqual((error.code, error.errcode, error.body), (502, "M_UNKNOWN", {}))
