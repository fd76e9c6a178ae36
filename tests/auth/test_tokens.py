"""Tests for mxref.auth.tokens: token format, reading tokens from requests, and authentication."""

import random

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from mxref.auth.tokens import (
    ACCESS_TOKEN_PREFIX, RequestAuthenticator, Requester, generate_access_token,
    get_access_token_from_request, has_access_token,
)
from mxref.errors import MatrixError
from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite
from tests.http.memory_http import request as http_request


def make_request(authorization=None, query_token=None):
    request = DummyRequest([b""])
    if authorization is not None:
        request.requestHeaders.addRawHeader(b"Authorization", authorization)
    if query_token is not None:
        request.args[b"access_token"] = [query_token]
    return request


class GenerateTokenTests(unittest.TestCase):
    def test_prefix_and_url_safety(self):
        """A new token starts with mxr_ and uses only URL-safe characters."""
        token = generate_access_token("@alice:example.org", random.Random(1))
        self.assertTrue(token.startswith(ACCESS_TOKEN_PREFIX))
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        self.assertLessEqual(set(token), allowed)
        self.assertTrue(token.endswith("_" + token[-40:]))

    def test_tokens_differ(self):
        """Two tokens for the same user are different."""
        rng = random.SystemRandom()
        self.assertNotEqual(generate_access_token("@a:x", rng), generate_access_token("@a:x", rng))

    def test_deterministic_with_seeded_rng(self):
        """With a seeded RNG (tests), the token is reproducible."""
        self.assertEqual(generate_access_token("@a:x", random.Random(7)),
                         generate_access_token("@a:x", random.Random(7)))


class ReadTokenTests(unittest.TestCase):
    def assert_missing(self, request, **kwargs):
        error = self.assertRaises(MatrixError, get_access_token_from_request, request, **kwargs)
        self.assertEqual((error.code, error.errcode), (401, "M_MISSING_TOKEN"))

    def test_bearer_header(self):
        """The token is read from 'Authorization: Bearer <token>', whatever the scheme's case."""
        self.assertEqual(get_access_token_from_request(make_request(b"Bearer abc")), "abc")
        self.assertEqual(get_access_token_from_request(make_request(b"bearer abc")), "abc")

    def test_query_parameter(self):
        """The deprecated access_token query parameter is accepted unless switched off."""
        request = make_request(query_token=b"qs_token")
        self.assertEqual(get_access_token_from_request(request), "qs_token")
        self.assert_missing(request, allow_query_param=False)

    def test_header_wins_over_query(self):
        """When both are given, the header is used."""
        self.assertEqual(get_access_token_from_request(make_request(b"Bearer h", b"q")), "h")

    def test_missing(self):
        """No token, an empty Bearer, or another scheme gives 401 M_MISSING_TOKEN."""
        self.assert_missing(make_request())
        self.assert_missing(make_request(b"Bearer "))
        self.assert_missing(make_request(b'X-Matrix origin="a",key="ed25519:1",sig="x"'))
        self.assert_missing(make_request(query_token=b""))
        self.assertFalse(has_access_token(make_request()))
        self.assertTrue(has_access_token(make_request(b"Bearer x")))


class AuthenticatorTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.tokens = {
            "good": ("@alice:example.org", "DEV1"),
            "expiring": ("@bob:example.org", "DEV2", 5000),
        }
        self.authenticator = RequestAuthenticator(self.lookup, self.clock)

    def lookup(self, token):
        return defer.succeed(self.tokens.get(token))

    def test_known_token_gives_requester(self):
        """A known token gives the Requester for its user and device, also left on the request."""
        request = make_request(b"Bearer good")
        requester = self.successResultOf(self.authenticator.authenticate(request))
        self.assertEqual(requester, Requester("@alice:example.org", "DEV1", "good"))
        self.assertIs(request.requester, requester)

    def test_unknown_token(self):
        """An unknown token fails with 401 M_UNKNOWN_TOKEN and soft_logout false."""
        failure = self.failureResultOf(self.authenticator.authenticate(make_request(b"Bearer nope")), MatrixError)
        self.assertEqual(failure.value.code, 401)
        self.assertEqual(failure.value.to_json()["errcode"], "M_UNKNOWN_TOKEN")
        self.assertIs(failure.value.to_json()["soft_logout"], False)

    def test_missing_token(self):
        """A request without a token fails with 401 M_MISSING_TOKEN."""
        failure = self.failureResultOf(self.authenticator.authenticate(make_request()), MatrixError)
        self.assertEqual(failure.value.errcode, "M_MISSING_TOKEN")

    def test_expired_token(self):
        """A token past its valid_until_ms is refused with M_UNKNOWN_TOKEN."""
        self.clock.advance(4.9)
        self.successResultOf(self.authenticator.authenticate(make_request(b"Bearer expiring")))
        self.clock.advance(0.1)
        failure = self.failureResultOf(self.authenticator.authenticate(make_request(b"Bearer expiring")),
                                       MatrixError)
        self.assertEqual(failure.value.errcode, "M_UNKNOWN_TOKEN")

    def test_lookup_may_be_a_coroutine(self):
        """The storage lookup may be an async def function."""
        async def lookup(token):
            return ("@carol:example.org", None) if token == "c" else None

        authenticator = RequestAuthenticator(lookup, self.clock)
        requester = self.successResultOf(authenticator.authenticate(make_request(b"Bearer c")))
        self.assertEqual(requester.user_id, "@carol:example.org")

    def test_lookup_waits_for_storage(self):
        """Authentication completes only when the storage lookup does."""
        pending = defer.Deferred()
        authenticator = RequestAuthenticator(lambda token: pending, self.clock)
        result = authenticator.authenticate(make_request(b"Bearer slow"))
        self.assertNoResult(result)
        pending.callback(("@dan:example.org", "D"))
        self.assertEqual(self.successResultOf(result).device_id, "D")

    def test_optional_authentication(self):
        """Where auth is optional, no token gives None but a bad token is still refused."""
        self.assertIsNone(self.successResultOf(self.authenticator.authenticate_optional(make_request())))
        self.assertEqual(
            self.successResultOf(self.authenticator.authenticate_optional(make_request(b"Bearer good"))).user_id,
            "@alice:example.org")
        self.failureResultOf(self.authenticator.authenticate_optional(make_request(b"Bearer bad")), MatrixError)

    def test_through_http(self):
        """Over HTTP, missing and unknown tokens give 401 JSON errors and a good one reaches the endpoint."""
        resource = JsonResource()

        async def whoami(request):
            requester = await self.authenticator.authenticate(request)
            return 200, {"user_id": requester.user_id, "device_id": requester.device_id}

        resource.register("GET", "/_matrix/client/v3/account/whoami", whoami)
        site = MatrixSite(resource, MemoryReactorClock())
        path = "/_matrix/client/v3/account/whoami"
        self.assertEqual(http_request(site, "GET", path).json()["errcode"], "M_MISSING_TOKEN")
        response = http_request(site, "GET", path, headers={"Authorization": "Bearer nope"})
        self.assertEqual((response.code, response.json()["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        response = http_request(site, "GET", path + "?access_token=good")
        self.assertEqual(response.json(), {"user_id": "@alice:example.org", "device_id": "DEV1"})
