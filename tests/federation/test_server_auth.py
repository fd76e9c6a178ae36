"""Tests for inbound X-Matrix request authentication (FederationRequestAuthenticator)."""

import io

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from mxref.config.federation import FederationConfig
from mxref.crypto.keyring import Keyring
from mxref.errors import MatrixError, SignatureError
from mxref.events.signing import generate_signing_key, get_verify_key, key_id_of, verify_json
from mxref.federation.transport.server import FederationRequestAuthenticator, authenticated
from mxref.federation.transport.xmatrix import sign_request
from mxref.http.resource import JsonResource
from tests.federation.test_keyring import KeyNetwork, RemoteServer, memory_store
from tests.http.memory_http import request as http_request


class KnownKeys:
    """A key source with a fixed set of keys that checks signatures for real (stands in for the Keyring)."""

    def __init__(self, clock, keys):
        self.clock = clock
        self._keys = keys  # {server_name: {key_id: (verify_key, valid_until_ts)}}
        self.calls = []

    def verify_json_for_server(self, server_name, obj, minimum_valid_until_ts=0):
        self.calls.append((server_name, minimum_valid_until_ts))
        for key_id in obj["signatures"].get(server_name, {}):
            found = self._keys.get(server_name, {}).get(key_id)
            if found is None or found[1] < minimum_valid_until_ts:
                return defer.fail(SignatureError(f"no valid key {key_id} of {server_name}"))
            try:
                verify_json(obj, server_name, found[0], key_id)
            except SignatureError as e:
                return defer.fail(e)
            return defer.succeed(None)
        return defer.fail(SignatureError("unsigned"))


def make_request(method, uri, authorization=None, body=b""):
    path, _, _ = uri.partition("?")
    request = DummyRequest(path.lstrip("/").encode("ascii").split(b"/"))
    request.method = method.encode("ascii")
    request.uri = uri.encode("ascii")
    request.path = path.encode("ascii")
    if authorization is not None:
        for value in authorization if isinstance(authorization, list) else [authorization]:
            request.requestHeaders.addRawHeader(b"Authorization", value.encode("utf-8"))
    request.content = io.BytesIO(body)
    return request


class FederationRequestAuthenticatorTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.key = generate_signing_key("k1")
        self.keys = KnownKeys(self.clock, {"remote.org": {key_id_of(self.key): (get_verify_key(self.key), 2_000_000_000)}})
        self.authenticator = FederationRequestAuthenticator(self.keys, "us.org")

    def authenticate(self, method, uri, content, header):
        request = make_request(method, uri, header)
        return self.authenticator.authenticate(request, content)

    def assertRefused(self, d):
        error = self.failureResultOf(d, MatrixError).value
        self.assertEqual((error.code, error.errcode), (401, "M_UNAUTHORIZED"))
        return error

    def test_valid_request(self):
        """A request signed by the origin's current key authenticates as that origin."""
        body = {"pdus": [], "edus": []}
        header = sign_request(self.key, "remote.org", "us.org", "PUT", "/_matrix/federation/v1/send/1", body)
        self.assertEqual(self.successResultOf(self.authenticate("PUT", "/_matrix/federation/v1/send/1", body, header)), "remote.org")
        self.assertEqual(self.keys.calls, [("remote.org", 1_000_000_000)])

    def test_query_string_is_signed(self):
        """The query string is part of the signed target: changing it breaks the signature."""
        header = sign_request(self.key, "remote.org", "us.org", "GET", "/_matrix/federation/v1/state/!r:x?event_id=%24a")
        self.successResultOf(self.authenticate("GET", "/_matrix/federation/v1/state/!r:x?event_id=%24a", None, header))
        self.assertRefused(self.authenticate("GET", "/_matrix/federation/v1/state/!r:x?event_id=%24b", None, header))

    def test_tampered_body_method_uri(self):
        """A changed body, method or path makes the request fail with 401."""
        body = {"a": 1}
        header = sign_request(self.key, "remote.org", "us.org", "PUT", "/_matrix/federation/v1/send/1", body)
        self.assertRefused(self.authenticate("PUT", "/_matrix/federation/v1/send/1", {"a": 2}, header))
        self.assertRefused(self.authenticate("POST", "/_matrix/federation/v1/send/1", body, header))
        self.assertRefused(self.authenticate("PUT", "/_matrix/federation/v1/send/2", body, header))
        self.assertRefused(self.authenticate("PUT", "/_matrix/federation/v1/send/1", None, header))

    def test_wrong_destination(self):
        """A header naming another destination is refused even when correctly signed."""
        header = sign_request(self.key, "remote.org", "other.org", "GET", "/_matrix/federation/v1/version")
        error = self.assertRefused(self.authenticate("GET", "/_matrix/federation/v1/version", None, header))
        self.assertIn("other.org", error.msg)

    def test_no_destination_accepted(self):
        """A pre-v1.3 header without destination is accepted when the signature covers our name."""
        header = sign_request(self.key, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        legacy = header.replace(',destination="us.org"', "")
        self.assertEqual(self.successResultOf(self.authenticate("GET", "/_matrix/federation/v1/version", None, legacy)), "remote.org")

    def test_missing_header(self):
        """A request without an X-Matrix header gets 401."""
        self.assertRefused(self.authenticate("GET", "/_matrix/federation/v1/version", None, None))
        self.assertRefused(self.authenticate("GET", "/_matrix/federation/v1/version", None, "Bearer abc"))

    def test_impersonation(self):
        """A request signed by one server's key but claiming another origin is refused."""
        impostor = generate_signing_key("k1")
        header = sign_request(impostor, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        self.assertRefused(self.authenticate("GET", "/_matrix/federation/v1/version", None, header))

    def test_unknown_key(self):
        """A key the origin never published is refused."""
        other = generate_signing_key("k2")
        header = sign_request(other, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        self.assertRefused(self.authenticate("GET", "/_matrix/federation/v1/version", None, header))

    def test_one_of_several_headers(self):
        """With several X-Matrix headers (one per key), one that verifies is enough."""
        other = generate_signing_key("k2")
        bad = sign_request(other, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        good = sign_request(self.key, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        request = make_request("GET", "/_matrix/federation/v1/version", [bad, good])
        self.assertEqual(self.successResultOf(self.authenticator.authenticate(request, None)), "remote.org")


class AuthenticatedEndpointTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.key = generate_signing_key("k1")
        keys = KnownKeys(self.clock, {"remote.org": {"ed25519:k1": (get_verify_key(self.key), 10**13)}})
        authenticator = FederationRequestAuthenticator(keys, "us.org")
        resource = JsonResource()

        def echo(request, origin, room_id):
            return 200, {"origin": origin, "room_id": room_id}

        async def later(request, origin):
            return 200, {"origin": origin}

        resource.register("PUT", "/_matrix/federation/v1/echo/{roomId}", authenticated(authenticator, echo))
        resource.register("GET", "/_matrix/federation/v1/later", authenticated(authenticator, later))
        self.site = Site(resource, reactor=MemoryReactorClock())

    def test_endpoint_gets_origin(self):
        """An authenticated endpoint is called with the origin and its path parameters."""
        body = {"x": 1}
        header = sign_request(self.key, "remote.org", "us.org", "PUT", "/_matrix/federation/v1/echo/%21r%3Ax", body)
        response = http_request(self.site, "PUT", "/_matrix/federation/v1/echo/%21r%3Ax", body, {"Authorization": header})
        self.assertEqual((response.code, response.json()), (200, {"origin": "remote.org", "room_id": "!r:x"}))

    def test_coroutine_endpoint(self):
        """A coroutine endpoint works too."""
        header = sign_request(self.key, "remote.org", "us.org", "GET", "/_matrix/federation/v1/later")
        response = http_request(self.site, "GET", "/_matrix/federation/v1/later", None, {"Authorization": header})
        self.assertEqual((response.code, response.json()), (200, {"origin": "remote.org"}))

    def test_unauthenticated_request(self):
        """Without a valid header the endpoint is not called and the answer is 401 M_UNAUTHORIZED."""
        response = http_request(self.site, "PUT", "/_matrix/federation/v1/echo/r", {"x": 1})
        self.assertEqual((response.code, response.json()["errcode"]), (401, "M_UNAUTHORIZED"))

    def test_body_not_json(self):
        """A body that is not JSON gets 400 M_NOT_JSON."""
        header = sign_request(self.key, "remote.org", "us.org", "PUT", "/_matrix/federation/v1/echo/r", {})
        response = http_request(self.site, "PUT", "/_matrix/federation/v1/echo/r", b"{nope", {"Authorization": header})
        self.assertEqual((response.code, response.json()["errcode"]), (400, "M_NOT_JSON"))


class KeyringAuthenticationTests(unittest.TestCase):
    """The authenticator over the real Keyring: the origin's key is fetched, cached and must be current."""

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.network = KeyNetwork()
        self.remote = self.network.add(RemoteServer(self.clock, "remote.org"))
        store = yield memory_store(self)
        keyring = Keyring(store.federation, self.network, self.clock, "us.org", generate_signing_key("us"))
        self.authenticator = FederationRequestAuthenticator(keyring, "us.org")

    def authenticate(self, signing_key):
        header = sign_request(signing_key, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        return self.authenticator.authenticate(make_request("GET", "/_matrix/federation/v1/version", header), None)

    @defer.inlineCallbacks
    def test_key_fetched_once(self):
        """The first request fetches the origin's key; later ones use the cache."""
        origin = yield self.authenticate(self.remote.signing_key)
        self.assertEqual(origin, "remote.org")
        yield self.authenticate(self.remote.signing_key)
        self.assertEqual(self.network.direct_calls(), [("direct", "remote.org")])

    @defer.inlineCallbacks
    def test_rotated_key_refused(self):
        """After the origin rotates, a request signed with its old key is refused with 401."""
        old = self.remote.rotate("k2")
        error = yield self.assertFailure(self.authenticate(old), MatrixError)
        self.assertEqual((error.code, error.errcode), (401, "M_UNAUTHORIZED"))
        origin = yield self.authenticate(self.remote.signing_key)
        self.assertEqual(origin, "remote.org")

    @defer.inlineCallbacks
    def test_unreachable_origin(self):
        """A request from a server whose keys cannot be fetched is refused with 401."""
        self.remote.reachable = False
        error = yield self.assertFailure(self.authenticate(self.remote.signing_key), MatrixError)
        self.assertEqual(error.code, 401)


class DomainWhitelistTests(unittest.TestCase):
    def test_origin_outside_whitelist(self):
        """With federation_domain_whitelist set, a correctly signed request from another server gets 403."""
        clock = Clock()
        key = generate_signing_key("k1")
        keys = KnownKeys(clock, {"remote.org": {"ed25519:k1": (get_verify_key(key), 10**13)}})
        header = sign_request(key, "remote.org", "us.org", "GET", "/_matrix/federation/v1/version")
        for whitelist, expected in [(("friend.org",), 403), (("remote.org",), None)]:
            authenticator = FederationRequestAuthenticator(keys, "us.org", federation_config=FederationConfig(whitelist))
            d = authenticator.authenticate(make_request("GET", "/_matrix/federation/v1/version", header), None)
            if expected is None:
                self.assertEqual(self.successResultOf(d), "remote.org")
            else:
                error = self.failureResultOf(d, MatrixError).value
                self.assertEqual((error.code, error.errcode), (403, "M_FORBIDDEN"))
