"""Tests for mxref.http.resource: routing, JSON responses, errors, CORS, body limits and disconnects."""

import json

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from treq.testing import StubTreq

from mxref.errors import MatrixError
from mxref.http.resource import JsonResource, client_paths, encode_json
from mxref.http.site import MatrixSite
from tests.http.memory_http import MemoryConnection, request


class Boom(Exception):
    """An unexpected bug inside an endpoint."""


def make_site(resource, **kwargs):
    return MatrixSite(resource, MemoryReactorClock(), **kwargs)


class RoutingTests(unittest.TestCase):
    def setUp(self):
        self.calls = []
        self.resource = JsonResource()

        def send(request, room_id, event_type, txn_id):
            self.calls.append((room_id, event_type, txn_id))
            return 200, {"event_id": "$abc"}

        def state(request, room_id, event_type, state_key):
            return 200, {"room_id": room_id, "event_type": event_type, "state_key": state_key}

        def members(request, room_id):
            return 200, {"which": "members"}

        def any_suffix(request, room_id, suffix):
            return 200, {"which": "generic", "suffix": suffix}

        self.resource.register("PUT", client_paths("/rooms/{roomId}/send/{eventType}/{txnId}"), send)
        self.resource.register("GET", client_paths("/rooms/{roomId}/state/{eventType}/{stateKey}"), state)
        self.resource.register("GET", "/_matrix/client/v3/rooms/{roomId}/{suffix}", any_suffix)
        self.resource.register("GET", "/_matrix/client/v3/rooms/{roomId}/members", members)
        self.site = make_site(self.resource)

    def test_put_route_gets_decoded_parameters(self):
        """A PUT to a registered path reaches its callback with each parameter as a snake_case keyword."""
        response = request(self.site, "PUT", "/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/t1", {})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"event_id": "$abc"})
        self.assertEqual(self.calls, [("!r:example.org", "m.room.message", "t1")])

    def test_r0_prefix_is_served_too(self):
        """client_paths registers the legacy r0 prefix next to v3."""
        response = request(self.site, "PUT", "/_matrix/client/r0/rooms/!r:example.org/send/m.room.message/t2", {})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.calls, [("!r:example.org", "m.room.message", "t2")])

    def test_percent_encoded_slash_stays_inside_its_parameter(self):
        """%2F in a path parameter is decoded after splitting, so a state key may contain '/'."""
        response = request(
            self.site, "GET",
            "/_matrix/client/v3/rooms/%21room%3Aexample.org/state/m.room.name/a%2Fb%20c%C3%A9",
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {
            "room_id": "!room:example.org", "event_type": "m.room.name", "state_key": "a/b cé",
        })

    def test_empty_trailing_parameter_matches_empty_string(self):
        """A trailing '/' gives an empty final parameter, as for the empty state key."""
        response = request(self.site, "GET", "/_matrix/client/v3/rooms/!r:x/state/m.room.name/")
        self.assertEqual(response.json()["state_key"], "")

    def test_literal_segment_beats_parameter(self):
        """When two patterns fit, the one with a literal segment at the first difference wins."""
        self.assertEqual(request(self.site, "GET", "/_matrix/client/v3/rooms/!r:x/members").json(),
                         {"which": "members"})
        self.assertEqual(request(self.site, "GET", "/_matrix/client/v3/rooms/!r:x/other").json(),
                         {"which": "generic", "suffix": "other"})

    def test_unknown_path_is_404_unrecognized(self):
        """An unknown endpoint answers 404 M_UNRECOGNIZED with CORS headers."""
        response = request(self.site, "GET", "/_matrix/client/v3/nonsense")
        self.assertEqual(response.code, 404)
        self.assertEqual(response.json()["errcode"], "M_UNRECOGNIZED")
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "*")

    def test_known_path_wrong_method_is_405_unrecognized(self):
        """A known path with a method it does not serve answers 405 M_UNRECOGNIZED and an Allow header."""
        response = request(self.site, "POST", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t1", {})
        self.assertEqual(response.code, 405)
        self.assertEqual(response.json()["errcode"], "M_UNRECOGNIZED")
        self.assertEqual(response.header("Allow"), "OPTIONS, PUT")
        self.assertEqual(self.calls, [])

    def test_trailing_slash_on_literal_is_unknown(self):
        """'/members/' is not '/members': paths are matched exactly."""
        response = request(self.site, "GET", "/_matrix/client/v3/rooms/!r:x/members/")
        self.assertEqual(response.code, 404)

    def test_options_answers_cors_without_running_the_endpoint(self):
        """OPTIONS on any path answers 200 with the CORS headers and never calls the endpoint."""
        response = request(self.site, "OPTIONS", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t1")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "*")
        self.assertIn("PUT", response.header("Access-Control-Allow-Methods"))
        self.assertIn("Authorization", response.header("Access-Control-Allow-Headers"))
        self.assertEqual(self.calls, [])
        self.assertEqual(request(self.site, "OPTIONS", "/_matrix/client/v3/unknown").code, 200)

    def test_head_is_served_by_get_without_a_body(self):
        """HEAD on a GET endpoint gives the GET status and headers and no body."""
        connection = MemoryConnection(self.site)
        connection.request("HEAD", "/_matrix/client/v3/rooms/!r:x/members")
        raw = connection.transport.value()
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "))
        self.assertTrue(raw.endswith(b"\r\n\r\n"))

    def test_path_not_utf8_is_400(self):
        """A path whose percent-decoding is not UTF-8 is refused with 400 M_INVALID_PARAM."""
        response = request(self.site, "GET", "/_matrix/client/v3/rooms/%FF/members")
        self.assertEqual(response.code, 400)
        self.assertEqual(response.json()["errcode"], "M_INVALID_PARAM")

    def test_registering_twice_is_refused(self):
        """Registering the same method and pattern twice is a programming error."""
        self.assertRaises(ValueError, self.resource.register, "GET",
                          "/_matrix/client/v3/rooms/{roomId}/members", lambda request, room_id: (200, {}))

    def test_parameter_must_fill_a_segment(self):
        """A pattern like '/a{b}' is refused when registered."""
        self.assertRaises(ValueError, self.resource.register, "GET", "/x/a{b}", lambda request, b: (200, {}))


class ResponseTests(unittest.TestCase):
    def serve(self, callback, method="GET", path="/x", **kwargs):
        resource = JsonResource(**kwargs)
        resource.register(method, path, callback)
        return make_site(resource)

    def test_json_response_headers_and_compact_utf8(self):
        """A response is compact UTF-8 JSON with Content-Type application/json and the CORS headers."""
        site = self.serve(lambda request: (200, {"name": "Zoë ☃", "n": [1, 2]}))
        response = request(site, "GET", "/x")
        self.assertEqual(response.body, '{"name":"Zoë ☃","n":[1,2]}'.encode("utf-8"))
        self.assertEqual(response.header("Content-Type"), "application/json")
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "*")
        self.assertEqual(int(response.header("Content-Length")), len(response.body))

    def test_unpaired_surrogate_falls_back_to_escapes(self):
        """A string that UTF-8 cannot hold is sent as a JSON escape rather than failing."""
        self.assertEqual(encode_json({"a": "\ud800"}), b'{"a":"\\ud800"}')

    def test_matrix_error_becomes_its_status_and_body(self):
        """A MatrixError raised by an endpoint gives its status and errcode/error body, plus extra fields."""
        def forbidden(request):
            raise MatrixError(403, "M_FORBIDDEN", "You are not invited", extra_field=1)

        response = request(self.serve(forbidden), "GET", "/x")
        self.assertEqual(response.code, 403)
        self.assertEqual(response.json(), {"errcode": "M_FORBIDDEN", "error": "You are not invited", "extra_field": 1})
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "*")

    def test_limit_exceeded_carries_retry_after_header(self):
        """A 429 with retry_after_ms also gets a Retry-After header in whole seconds, rounded up."""
        def limited(request):
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=1200)

        response = request(self.serve(limited), "GET", "/x")
        self.assertEqual(response.code, 429)
        self.assertEqual(response.header("Retry-After"), "2")
        self.assertEqual(response.json()["retry_after_ms"], 1200)

    def test_unexpected_exception_is_500_without_traceback(self):
        """A bug in an endpoint is logged with its traceback and the client sees only 500 M_UNKNOWN."""
        def broken(request):
            raise Boom("secret internal detail")

        response = request(self.serve(broken), "GET", "/x")
        self.assertEqual(response.code, 500)
        self.assertEqual(response.json(), {"errcode": "M_UNKNOWN", "error": "Internal server error"})
        self.assertNotIn(b"Traceback", response.body)
        self.assertNotIn(b"secret", response.body)
        self.assertEqual(len(self.flushLoggedErrors(Boom)), 1)

    def test_bad_callback_result_is_500(self):
        """A callback that returns something other than (status, body) gives 500 and a logged error."""
        response = request(self.serve(lambda request: {"oops": True}), "GET", "/x")
        self.assertEqual(response.code, 500)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_unserialisable_body_is_500(self):
        """A body that is not JSON-serialisable gives 500 M_UNKNOWN, logged."""
        response = request(self.serve(lambda request: (200, {"x": object()})), "GET", "/x")
        self.assertEqual(response.code, 500)
        self.assertEqual(response.json()["errcode"], "M_UNKNOWN")
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_deferred_result_is_sent_when_it_fires(self):
        """An endpoint returning a Deferred gets its response written when the Deferred fires."""
        pending = defer.Deferred()
        site = self.serve(lambda request: pending)
        connection = MemoryConnection(site)
        connection.request("GET", "/x")
        self.assertFalse(connection.has_response())
        pending.callback((201, {"done": True}))
        self.assertEqual(connection.response().code, 201)
        self.assertEqual(connection.response().json(), {"done": True})

    def test_coroutine_callback(self):
        """An async def endpoint works like one returning a Deferred, errors included."""
        pending = defer.Deferred()

        async def endpoint(request):
            value = await pending
            if value == "fail":
                raise MatrixError(404, "M_NOT_FOUND", "no such thing")
            return 200, {"value": value}

        site = self.serve(endpoint)
        connection = MemoryConnection(site)
        connection.request("GET", "/x")
        pending.callback("fail")
        self.assertEqual(connection.response().code, 404)
        self.assertEqual(connection.response().json()["errcode"], "M_NOT_FOUND")

    def test_client_disconnect_cancels_work_and_writes_nothing(self):
        """When the client goes away, the endpoint's Deferred is cancelled and nothing more is written."""
        cancelled = []
        pending = defer.Deferred(lambda d: cancelled.append(True))
        site = self.serve(lambda request: pending)
        connection = MemoryConnection(site)
        connection.request("GET", "/x")
        connection.disconnect()
        self.assertEqual(cancelled, [True])
        self.assertEqual(connection.transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_disconnect_then_late_result_is_ignored(self):
        """An endpoint whose Deferred cannot be cancelled still finishing after a disconnect writes nothing."""
        pending = defer.Deferred()
        site = self.serve(lambda request: pending)
        connection = MemoryConnection(site)
        connection.request("GET", "/x")
        connection.disconnect()
        pending.callback((200, {}))
        self.assertEqual(connection.transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_resource_body_limit_gives_413(self):
        """A body over the resource's own limit is refused with 413 M_TOO_LARGE and never reaches the endpoint."""
        calls = []
        site = self.serve(lambda request: calls.append(1) or (200, {}), method="POST", max_body_size=100)
        response = request(site, "POST", "/x", {"data": "x" * 200})
        self.assertEqual(response.code, 413)
        self.assertEqual(response.json()["errcode"], "M_TOO_LARGE")
        self.assertEqual(calls, [])
        self.assertEqual(request(site, "POST", "/x", {"data": "ok"}).code, 200)

    def test_site_refuses_declared_huge_body_before_reading_it(self):
        """A Content-Length over the Site's cap gets 413 M_TOO_LARGE at once and the connection is closed."""
        calls = []
        site = self.serve(lambda request: calls.append(1) or (200, {}), method="POST")
        site.max_request_body_size = 1000
        connection = MemoryConnection(site)
        connection.send(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n" + b"{" * 500)
        response = connection.response()
        self.assertEqual(response.code, 413)
        self.assertEqual(response.json()["errcode"], "M_TOO_LARGE")
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "*")
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(calls, [])

    def test_site_refuses_chunked_body_growing_too_large(self):
        """A chunked body (no declared length) is counted as it arrives and refused once over the cap."""
        site = self.serve(lambda request: (200, {}), method="POST")
        site.max_request_body_size = 1000
        connection = MemoryConnection(site)
        connection.send(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):
            connection.send(b"12c\r\n" + b"a" * 300 + b"\r\n")
        self.assertEqual(connection.response().code, 413)
        self.assertTrue(connection.transport.disconnecting)

    def test_works_through_treq_stub(self):
        """The resource serves treq's in-memory client too (as other tests may use it)."""
        resource = JsonResource()
        resource.register("POST", "/echo", lambda request: (200, json.loads(request.content.read())))
        stub = StubTreq(resource)
        response = self.successResultOf(stub.post("http://example.org/echo", json={"a": "é"}))
        self.assertEqual(response.code, 200)
        self.assertEqual(self.successResultOf(response.json()), {"a": "é"})


class DummyRequestTests(unittest.TestCase):
    def test_dummy_request_is_served(self):
        """Resources can be unit-tested with twisted's DummyRequest, whose path comes from its segments."""
        from twisted.web.test.requesthelper import DummyRequest

        resource = JsonResource()
        resource.register("GET", "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}",
                          lambda request, room_id, event_type, state_key: (200, {"key": state_key}))
        request = DummyRequest([b"_matrix", b"client", b"v3", b"rooms", b"!r:x", b"state", b"m.room.name", b"a/b"])
        request.method = b"GET"
        resource.render(request)
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(json.loads(b"".join(request.written)), {"key": "a/b"})
        self.assertEqual(request.responseHeaders.getRawHeaders(b"Content-Type"), [b"application/json"])


class SpecShapeTests(unittest.TestCase):
    def test_error_bodies_match_the_spec_schemas(self):
        """404, 405, 500 and 429 bodies fit the spec's standard error and rate-limited error schemas."""
        from tests.schema import validate_schema

        def limited(request):
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=1500)

        def broken(request):
            raise Boom()

        resource = JsonResource()
        resource.register("GET", "/limited", limited)
        resource.register("GET", "/broken", broken)
        site = make_site(resource)
        for method, path in (("GET", "/nowhere"), ("POST", "/limited"), ("GET", "/broken")):
            validate_schema("api/client-server/definitions/errors/error.yaml", request(site, method, path).json())
        validate_schema("api/client-server/definitions/errors/rate_limited.yaml",
                        request(site, "GET", "/limited").json())
        self.flushLoggedErrors(Boom)
