"""The receiver endpoints as the composed HomeServer serves them: routes, X-Matrix checked with a
key fetched through the real keyring and federation client (over an in-memory agent)."""

import json

from treq.testing import RequestTraversalAgent
from twisted.internet import reactor, task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from mxref.events.signing import generate_signing_key
from mxref.federation.transport.keys import ServerKeysResource
from mxref.federation.transport.xmatrix import sign_request
from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite
from mxref.testing.homeserver import make_test_homeserver
from tests.client.support import deferred_test
from tests.http.memory_http import MemoryConnection

REMOTE = "remote.example"


class MemoryFederationAgent:
    """Sends ``matrix-federation://`` requests to an in-memory resource (as ``http://``)."""

    def __init__(self, resource):
        self._traversal = RequestTraversalAgent(resource)

    def request(self, method, uri, headers=None, bodyProducer=None):
        return self._traversal.request(
            method, uri.replace(b"matrix-federation://", b"http://", 1), headers, bodyProducer
        )


class HomeServerFederationEndpointTests(unittest.TestCase):
    """The federation listener of a HomeServer serves the receiver's endpoints."""

    @deferred_test
    async def setUp(self):
        self.remote_key = generate_signing_key("r1")
        remote = JsonResource()
        ServerKeysResource(REMOTE, self.remote_key, {}, reactor, 86_400_000).register_routes(remote)
        self.homeserver = await make_test_homeserver(
            self,
            reactor,
            overrides={"allow_public_rooms_over_federation": True},
            federation_agent=MemoryFederationAgent(remote),
        )
        self.site = MatrixSite(self.homeserver.federation_resource, MemoryReactorClock())

    async def request(self, method, path, body=None, signed=True):
        headers = {}
        if signed:
            headers["Authorization"] = sign_request(
                self.remote_key, REMOTE, self.homeserver.server_name, method, path, body
            )
        connection = MemoryConnection(self.site)
        connection.request(
            method, path, json.dumps(body).encode() if body is not None else None, headers
        )
        for _ in range(5000):
            try:
                return connection.response()
            except ValueError:
                await task.deferLater(reactor, 0.002, lambda: None)
        raise AssertionError(f"no response to {method} {path}")

    @deferred_test
    async def test_signed_request_is_answered(self):
        """A request signed with the remote's published key is authenticated and answered."""
        response = await self.request("GET", "/_matrix/federation/v1/publicRooms")
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(response.json()["chunk"], [])
        response = await self.request(
            "PUT", "/_matrix/federation/v1/send/1", {"pdus": [], "edus": []}
        )
        self.assertEqual((response.code, response.json()), (200, {"pdus": {}}))

    @deferred_test
    async def test_unsigned_request_and_removed_endpoints(self):
        """Unsigned requests get 401; the v1 send_join removed in v1.18 is unknown (404)."""
        response = await self.request("GET", "/_matrix/federation/v1/publicRooms", signed=False)
        self.assertEqual(response.code, 401)
        response = await self.request("PUT", "/_matrix/federation/v1/send_join/!r/$e", {})
        self.assertEqual((response.code, response.json()["errcode"]), (404, "M_UNRECOGNIZED"))
