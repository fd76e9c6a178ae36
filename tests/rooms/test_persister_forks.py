"""An event that forks the room (its prev events are not the forward extremities) changes the
current state through state resolution, the new event included.

Spec: Server-Server API, "Room State Resolution"
(https://spec.matrix.org/v1.19/server-server-api/#room-state-resolution): the current state
of a room with several forward extremities is the resolution of the states after each.
"""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.events.builder import build_event
from mxref.events.hashing import compute_event_id
from mxref.rooms.state import StateAt, with_event_id
from tests.rooms.support import RoomServicesMixin


class ForkedEventTests(RoomServicesMixin, unittest.TestCase):
    """A state event persisted on a fork becomes current state."""

    @defer.inlineCallbacks
    def test_state_event_on_a_fork_becomes_current(self):
        """A topic built on an older event than the latest (a fork, as when a remote server's
        event or a rejoin arrives) is the room's current topic after it is persisted."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice, preset="public_chat")
        older, _ = yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "one"})
        yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "two"})
        version = yield self.creator.room_version_of(room_id)

        state_ids = yield self.store.events.get_current_state_ids(room_id)
        stored = yield self.store.events.get_events(list(state_ids.values()))
        current = {key: with_event_id(stored[event_id]) for key, event_id in state_ids.items()}
        older_event = yield self.store.events.get_event(older)
        pdu = build_event(
            room_version=version,
            room_id=room_id,
            sender=alice,
            event_type="m.room.topic",
            content={"topic": "from the fork"},
            state_key="",
            prev_events=[(older, older_event.pdu["depth"])],
            current_state=current,
            origin_server_ts=self.creator.now_ms(),
            server_name=self.server_name,
            signing_key=self.signing_key,
        )
        event_id = compute_event_id(pdu, version)
        group = yield self.store.state.get_state_group_for_event(older)
        yield self.persister.serialised(
            room_id, self.persister.persist_event, version, room_id, event_id, pdu,
            StateAt(ids=None, group=group),
        )

        extremities = yield self.store.events.get_forward_extremities(room_id)
        self.assertEqual(len(extremities), 2)
        self.assertIn(event_id, [e for e, _ in extremities])
        topic = yield self.current_state_content(room_id, "m.room.topic")
        self.assertEqual(topic, {"topic": "from the fork"})
