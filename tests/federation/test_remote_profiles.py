"""Profiles of remote users through the Client-Server API: asked of the user's own server over
federation (``GET /_matrix/federation/v1/query/profile``)."""

from twisted.internet import reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.client.profile.service import IRemoteProfiles
from mxref.errors import MatrixError
from mxref.federation.remote_profiles import RemoteProfiles
from mxref.testing.homeserver import make_test_homeserver
from mxref.testing.network import FederationNetwork
from tests.client.support import deferred_test

A, B = "a.example", "b.example"


class RemoteProfileTests(unittest.TestCase):
    """A user of b.example reads the profile of a user of a.example."""

    @deferred_test
    async def setUp(self):
        self.network = FederationNetwork(reactor)
        self.a = await make_test_homeserver(
            self, reactor, server_name=A, federation_agent=self.network.agent_for(A)
        )
        self.b = await make_test_homeserver(
            self, reactor, server_name=B, federation_agent=self.network.agent_for(B)
        )
        self.network.add_server(A, self.a.resources)
        self.network.add_server(B, self.b.resources)
        self.alice = f"@alice:{A}"
        await self.a.store.accounts.create_user(self.alice, None)
        await self.a.store.accounts.set_displayname(self.alice, "Alice")

    def test_provides_the_interface(self):
        """RemoteProfiles is an IRemoteProfiles."""
        self.assertTrue(verifyObject(IRemoteProfiles, RemoteProfiles(self.b.federation_client)))

    @deferred_test
    async def test_homeserver_answers_remote_profiles(self):
        """GET /profile of a user of another server gives what that server holds; one field can
        be read alone; an unknown remote user is 404."""
        profile = await self.b.profiles.get_profile(self.alice)
        self.assertEqual(profile, {"displayname": "Alice"})
        field = await self.b.profiles.get_field(self.alice, "displayname")
        self.assertEqual(field, {"displayname": "Alice"})
        with self.assertRaises(MatrixError) as caught:
            await self.b.profiles.get_profile(f"@nobody:{A}")
        self.assertEqual(caught.exception.code, 404)

    @deferred_test
    async def test_unreachable_server_is_not_found(self):
        """A profile on a server that cannot be reached is 404, not a server error."""
        with self.assertRaises(MatrixError) as caught:
            await self.b.profiles.get_profile("@carol:unreachable.example")
        self.assertEqual(caught.exception.code, 404)
