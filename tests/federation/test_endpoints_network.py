"""Two whole homeservers on the in-memory network: one joins, talks in and reads a room of the
other through the receiver's endpoints, with real X-Matrix signatures and key fetching."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.auth.tokens import Requester
from mxref.federation.receiver.pipeline import ACCEPTED
from mxref.events.builder import build_event
from mxref.events.hashing import compute_event_id
from mxref.events.signing import sign_event
from mxref.testing.homeserver import make_test_homeserver
from mxref.testing.network import FederationNetwork
from tests.client.support import deferred_test

A, B, C = "a.example", "b.example", "c.example"


class TwoServerTests(unittest.TestCase):
    """``b.example`` joins and writes to a room of ``a.example`` through the federation API."""

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
        self.bob = f"@bob:{B}"
        await self.a.store.accounts.create_user(self.alice, None)
        self.room_id = await self.a.room_creator.create_room(self.alice, preset="public_chat")

    async def join_bob(self):
        client = self.b.federation_client
        made = await client.make_join(A, self.room_id, self.bob, ["10", "11", "12"])
        version = made["room_version"]
        pdu = sign_event(made["event"], B, self.b.signing_key, version)
        event_id = compute_event_id(pdu, version)
        joined = await client.send_join(A, self.room_id, event_id, pdu)
        return version, event_id, pdu, joined

    @deferred_test
    async def test_join_then_send_a_message(self):
        """b.example joins with make_join/send_join and then sends a message in a transaction;
        a.example accepts both and serves the message back."""
        version, join_id, join, joined = await self.join_bob()
        members = await self.a.store.rooms.get_members(self.room_id)
        self.assertEqual(members[self.bob].event_id, join_id)
        self.assertIn(("m.room.create", ""), {(e["type"], e["state_key"]) for e in joined["state"]})

        state = {
            (e["type"], e["state_key"]): dict(e, event_id=compute_event_id(e, version))
            for e in joined["state"]
        }
        state[("m.room.member", self.bob)] = dict(join, event_id=join_id)
        message = build_event(
            room_version=version,
            room_id=self.room_id,
            sender=self.bob,
            event_type="m.room.message",
            content={"msgtype": "m.text", "body": "hello from b"},
            prev_events=[(join_id, join["depth"])],
            current_state=state,
            origin_server_ts=join["origin_server_ts"] + 1,
            server_name=B,
            signing_key=self.b.signing_key,
        )
        message_id = compute_event_id(message, version)
        answer = await self.b.federation_client.send_transaction(A, "1", [message], [])
        self.assertEqual(answer, {"pdus": {message_id: {}}})
        served = await self.b.federation_client.get_event(A, message_id)
        self.assertEqual(served["pdus"][0]["content"]["body"], "hello from b")
        state_ids = await self.b.federation_client.get_state_ids(A, self.room_id, message_id)
        self.assertIn(join_id, state_ids["pdu_ids"])

    @deferred_test
    async def test_profile_query(self):
        """b.example reads a.example's user profile."""
        await self.a.store.accounts.set_displayname(self.alice, "Alice")
        profile = await self.b.federation_client.query_profile(A, self.alice)
        self.assertEqual(profile, {"displayname": "Alice"})


class InvitingRemoteRooms:
    """The invite part of ``IRemoteRooms`` for the inviting server of these tests: ``invite``
    v2 through its federation client."""

    def __init__(self, client_of):
        self._client_of = client_of

    async def _invite(self, room_version, room_id, invite_pdu, event_id, invite_room_state):
        wire_state = [{k: v for k, v in e.items() if k != "event_id"} for e in invite_room_state]
        destination = invite_pdu["state_key"].split(":", 1)[1]
        answer = await self._client_of().send_invite(
            destination, room_id, event_id, invite_pdu, room_version.identifier, wire_state
        )
        return answer["event"]

    def invite_remote_user(self, room_version, room_id, invite_pdu, event_id, invite_room_state):
        return defer.ensureDeferred(
            self._invite(room_version, room_id, invite_pdu, event_id, invite_room_state)
        )


class RemoteInviteTests(unittest.TestCase):
    """A user of ``b.example`` invites a user of ``a.example``; the invite shows in her /sync."""

    @deferred_test
    async def test_invite_shows_in_sync(self):
        """The invite is countersigned by a.example and listed in alice's /sync with the room's
        stripped state."""
        network = FederationNetwork(reactor)
        a = await make_test_homeserver(
            self, reactor, server_name=A, federation_agent=network.agent_for(A)
        )
        remote_rooms = InvitingRemoteRooms(lambda: b.federation_client)
        b = await make_test_homeserver(
            self,
            reactor,
            server_name=B,
            federation_agent=network.agent_for(B),
            remote_rooms=remote_rooms,
        )
        network.add_server(A, a.resources)
        network.add_server(B, b.resources)
        alice, carol = f"@alice:{A}", f"@carol:{B}"
        await a.store.accounts.create_user(alice, None)
        await b.store.accounts.create_user(carol, None)
        room_id = await b.room_creator.create_room(carol, name="Tea")
        invite_id = await b.membership.invite(carol, room_id, alice)

        stored = await a.store.events.get_event(invite_id)
        self.assertEqual(set(stored.pdu["signatures"]), {A, B})
        sync = await a.sync.sync(Requester(alice))
        invite = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
        types = {e["type"] for e in invite}
        self.assertIn("m.room.create", types)
        self.assertIn("m.room.name", types)
        self.assertIn(
            {
                "type": "m.room.member",
                "state_key": alice,
                "sender": carol,
                "content": {"membership": "invite"},
            },
            invite,
        )


class ThreeServerTests(unittest.TestCase):
    """Users of ``b.example`` and ``c.example`` join a room of ``a.example`` through the client
    API; the resident passes each join on, and messages reach every server."""

    @deferred_test
    async def test_joins_are_forwarded_and_messages_reach_everyone(self):
        """Carol's join, handed to a.example only, reaches b.example; Bob's message reaches
        a.example and c.example."""
        network = FederationNetwork(reactor)
        servers = {}
        for name in (A, B, C):
            servers[name] = await make_test_homeserver(
                self, reactor, server_name=name, federation_agent=network.agent_for(name)
            )
            network.add_server(name, servers[name].resources)
        alice, bob, carol = f"@alice:{A}", f"@bob:{B}", f"@carol:{C}"
        for user_id, name in ((alice, A), (bob, B), (carol, C)):
            await servers[name].store.accounts.create_user(user_id, None)
        room_id = await servers[A].room_creator.create_room(alice, preset="public_chat")
        await servers[B].membership.join(bob, room_id, servers=[A])
        await servers[C].membership.join(carol, room_id, servers=[A])

        async def eventually(check):
            for _ in range(2500):
                if await check():
                    return
                await task.deferLater(reactor, 0.004, lambda: None)
            self.fail("condition not reached")

        async def member_on(name, user_id):
            members = await servers[name].store.rooms.get_members(room_id, membership="join")
            return user_id in members

        await eventually(lambda: member_on(B, carol))
        event_id, _ = await servers[B].event_creator.send_event(
            room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "hi all"}
        )

        async def has_event(name):
            return (await servers[name].store.events.get_event(event_id)) is not None

        await eventually(lambda: has_event(A))
        await eventually(lambda: has_event(C))
        for name in (A, B, C):
            await servers[name].federation_sender.idle()


class PartitionTests(unittest.TestCase):
    """A server cut off while a room moves on catches up once the link is back."""

    @deferred_test
    async def test_gap_after_partition_is_bridged(self):
        """Handed only a.example's latest event after missing many, b.example fetches the
        missing events it can, bridges the rest with the state at the gap, and ends up with
        the room's new name; the sender's catch-up afterwards changes nothing."""
        network = FederationNetwork(reactor)
        a = await make_test_homeserver(
            self, reactor, server_name=A, federation_agent=network.agent_for(A)
        )
        b = await make_test_homeserver(
            self, reactor, server_name=B, federation_agent=network.agent_for(B)
        )
        network.add_server(A, a.resources)
        network.add_server(B, b.resources)
        alice, bob = f"@alice:{A}", f"@bob:{B}"
        await a.store.accounts.create_user(alice, None)
        await b.store.accounts.create_user(bob, None)
        room_id = await a.room_creator.create_room(alice, preset="public_chat")
        await b.membership.join(bob, room_id, servers=[A])
        await a.federation_sender.idle()

        network.cut(A, B)
        await a.event_creator.send_event(
            room_id, alice, "m.room.name", {"name": "Renamed"}, state_key=""
        )
        for i in range(25):
            await a.event_creator.send_event(
                room_id, alice, "m.room.message", {"msgtype": "m.text", "body": str(i)}
            )
        last_id, _ = await a.event_creator.send_event(
            room_id, alice, "m.room.message", {"msgtype": "m.text", "body": "last"}
        )
        await a.federation_sender.idle()
        network.heal()

        last = await a.store.events.get_event(last_id)
        outcome = await b.pdu_receiver.receive_pdu(A, last.pdu)
        self.assertEqual((outcome.event_id, outcome.status), (last_id, ACCEPTED))
        asked = {path.split("/")[4] for origin, _d, _m, path in network.requests if origin == B}
        self.assertIn("get_missing_events", asked)
        self.assertIn("state_ids", asked)
        state = await b.store.events.get_current_state(room_id, types=[("m.room.name", "")])
        self.assertEqual(state[("m.room.name", "")].pdu["content"], {"name": "Renamed"})
        extremities = await b.store.events.get_forward_extremities(room_id)
        self.assertIn(last_id, [e for e, _ in extremities])

        # b.example talking to a.example wakes a.example's queue for it; its catch-up then
        # delivers events b.example already has or can now place.
        await b.event_creator.send_event(
            room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "back"}
        )
        await a.federation_sender.idle()
        await b.federation_sender.idle()

    @deferred_test
    async def test_conflicting_state_converges(self):
        """Both sides rename the room during a partition; after it heals both servers hold the
        same resolved name."""
        network = FederationNetwork(reactor)
        a = await make_test_homeserver(
            self, reactor, server_name=A, federation_agent=network.agent_for(A)
        )
        b = await make_test_homeserver(
            self, reactor, server_name=B, federation_agent=network.agent_for(B)
        )
        network.add_server(A, a.resources)
        network.add_server(B, b.resources)
        alice, bob = f"@alice:{A}", f"@bob:{B}"
        await a.store.accounts.create_user(alice, None)
        await b.store.accounts.create_user(bob, None)
        room_id = await a.room_creator.create_room(
            alice, preset="public_chat", power_level_content_override={"users": {bob: 50}}
        )
        await b.membership.join(bob, room_id, servers=[A])
        await a.federation_sender.idle()

        network.cut(A, B)
        a_name, _ = await a.event_creator.send_event(
            room_id, alice, "m.room.name", {"name": "A side"}, state_key=""
        )
        b_name, _ = await b.event_creator.send_event(
            room_id, bob, "m.room.name", {"name": "B side"}, state_key=""
        )
        network.heal()
        await a.event_creator.send_event(
            room_id, alice, "m.room.message", {"msgtype": "m.text", "body": "a"}
        )
        await b.event_creator.send_event(
            room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "b"}
        )

        async def both_have_both():
            for server in (a, b):
                if not await server.store.events.have_events([a_name, b_name]) == {a_name, b_name}:
                    return False
            return True

        for _ in range(2500):
            if await both_have_both():
                break
            await task.deferLater(reactor, 0.004, lambda: None)
        await a.federation_sender.idle()
        await b.federation_sender.idle()
        names = []
        for server in (a, b):
            state = await server.store.events.get_current_state_ids(
                room_id, types=[("m.room.name", "")]
            )
            names.append(state[("m.room.name", "")])
        self.assertEqual(names[0], names[1])
        self.assertIn(names[0], (a_name, b_name))
