"""Module event checks over federation between two whole homeservers on the in-memory network:
``a.example`` runs the example module; ``b.example`` joins a room of ``a.example`` and sends
messages in transactions."""

from twisted.internet import reactor, task
from twisted.trial import unittest

from mxref.events.builder import build_event
from mxref.events.hashing import compute_event_id
from mxref.events.signing import sign_event
from mxref.storage.records import RoomPosition
from mxref.testing.homeserver import make_test_homeserver
from mxref.testing.network import FederationNetwork
from tests.client.support import deferred_test
from tests.modules.support import make_example_module_importable, module_entry, sample

make_example_module_importable()

A, B = "a.example", "b.example"


class ModulesOverFederationTests(unittest.TestCase):
    """b.example's users talk in a room of a.example, whose modules check their events."""

    @deferred_test
    async def setUp(self):
        self.network = FederationNetwork(reactor)
        modules = [
            module_entry("mxref_example_module.PatternRejecter", {"pattern": "(?i)buy cheap"}),
            module_entry(sample("EventRecorder")),
        ]
        self.a = await make_test_homeserver(
            self,
            reactor,
            server_name=A,
            federation_agent=self.network.agent_for(A),
            overrides={"modules": modules},
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
        await self.join_bob()

    async def join_bob(self):
        client = self.b.federation_client
        made = await client.make_join(A, self.room_id, self.bob, ["10", "11", "12"])
        self.version = made["room_version"]
        join = sign_event(made["event"], B, self.b.signing_key, self.version)
        join_id = compute_event_id(join, self.version)
        joined = await client.send_join(A, self.room_id, join_id, join)
        self.state = {
            (e["type"], e["state_key"]): dict(e, event_id=compute_event_id(e, self.version))
            for e in joined["state"]
        }
        self.state[("m.room.member", self.bob)] = dict(join, event_id=join_id)
        self.latest = (join_id, join["depth"], join["origin_server_ts"])

    async def send_from_bob(self, body, txn_id):
        """Build and send one message of bob's in a transaction; returns its event ID and a's answer."""
        prev_id, depth, ts = self.latest
        message = build_event(
            room_version=self.version,
            room_id=self.room_id,
            sender=self.bob,
            event_type="m.room.message",
            content={"msgtype": "m.text", "body": body},
            prev_events=[(prev_id, depth)],
            current_state=self.state,
            origin_server_ts=ts + 1,
            server_name=B,
            signing_key=self.b.signing_key,
        )
        message_id = compute_event_id(message, self.version)
        self.latest = (message_id, message["depth"], message["origin_server_ts"])
        answer = await self.b.federation_client.send_transaction(A, txn_id, [message], [])
        return message_id, answer

    async def visible_on_a(self):
        chunk = await self.a.store.events.get_room_events_stream(
            self.room_id, RoomPosition(0, 0), None, 1000, "f"
        )
        return [e.event_id for e in chunk]

    @deferred_test
    async def test_refused_remote_message_soft_failed(self):
        """A remote message the module refuses is kept soft-failed: accepted in the transaction,
        never visible to a.example's clients, counted by the module."""
        message_id, answer = await self.send_from_bob("BUY CHEAP watches", "1")
        self.assertEqual(answer, {"pdus": {message_id: {}}})
        stored = await self.a.store.events.get_event(message_id, allow_rejected=True)
        self.assertTrue(stored.soft_failed)
        self.assertNotIn(message_id, await self.visible_on_a())
        stats = self.a.modules[0].module
        self.assertEqual((stats.checked, stats.rejected), (1, 1))

    @deferred_test
    async def test_allowed_remote_message_visible_and_heard(self):
        """An allowed remote message is visible and reaches a.example's event listeners."""
        message_id, answer = await self.send_from_bob("hello from b", "1")
        self.assertEqual(answer, {"pdus": {message_id: {}}})
        self.assertIn(message_id, await self.visible_on_a())
        recorder = self.a.modules[1].module
        for _ in range(300):
            if message_id in [e["event_id"] for e in recorder.events]:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertIn(message_id, [e["event_id"] for e in recorder.events])
