"""Module invite checks also apply to invites arriving from other servers."""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mxref.testing.client import ClientError, InMemoryClient
from mxref.testing.homeserver import make_test_homeserver
from mxref.testing.network import FederationNetwork
from tests.modules.support import module_entry, sample

A, B = "a.example", "b.example"


class FederatedInviteCheckTests(unittest.TestCase):
    """b.example runs a module refusing invites of one of its users; a.example invites."""

    @defer.inlineCallbacks
    def setUp(self):
        self.network = FederationNetwork(reactor)
        self.a = yield make_test_homeserver(self, reactor, server_name=A, federation_agent=self.network.agent_for(A))
        gatekeeper = module_entry(sample("Gatekeeper"), {"deny_invitee": f"@shy:{B}"})
        self.b = yield make_test_homeserver(
            self, reactor, server_name=B, federation_agent=self.network.agent_for(B), overrides={"modules": [gatekeeper]}
        )
        self.network.add_server(A, self.a.resources)
        self.network.add_server(B, self.b.resources)
        self.alice = InMemoryClient(self.a, reactor)
        yield self.alice.register("alice")
        for localpart in ("shy", "open"):
            yield InMemoryClient(self.b, reactor).register(localpart)

    @defer.inlineCallbacks
    def test_remote_invite_refused_by_module(self):
        """The invitee's server refuses, with its module's reason; other invites go through."""
        room_id = yield self.alice.create_room()
        with self.assertRaises(ClientError) as caught:
            yield self.alice.invite(room_id, f"@shy:{B}")
        self.assertEqual(caught.exception.code, 403)
        yield self.alice.invite(room_id, f"@open:{B}")
        members = yield self.a.store.rooms.get_members(room_id)
        self.assertEqual(members[f"@open:{B}"].membership, "invite")
        self.assertNotIn(f"@shy:{B}", members)
