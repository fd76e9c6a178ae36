"""History visibility, redactions and the client event format."""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.client.serialise import format_client_event, strip_state_event
from mxref.client.visibility import EventVisibility
from mxref.storage.records import RoomPosition
from tests.rooms.support import RoomServicesMixin


class VisibilityTests(RoomServicesMixin, unittest.TestCase):
    """Who sees what, by history visibility."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.visibility = EventVisibility(self.store.events, self.store.state, self.store.rooms)
        self.alice, self.bob = self.user("alice"), self.user("bob")

    @defer.inlineCallbacks
    def _room_with_history(self, history_visibility):
        room_id = yield self.room_creator.create_room(
            self.alice,
            preset="public_chat",
            initial_state=[
                {"type": "m.room.history_visibility", "content": {"history_visibility": history_visibility}}
            ],
        )
        before, _ = yield self.creator.send_event(room_id, self.alice, "m.room.message", {"body": "before"})
        yield self.membership.join(self.bob, room_id)
        after, _ = yield self.creator.send_event(room_id, self.alice, "m.room.message", {"body": "after"})
        events = yield self.store.events.get_room_events_stream(room_id, RoomPosition(0, 0), None, 100, "f")
        return room_id, before, after, events

    @defer.inlineCallbacks
    def test_joined_hides_history_before_join(self):
        """With 'joined', a new member sees messages from their join on, not before."""
        _, before, after, events = yield self._room_with_history("joined")
        seen = [e.event_id for e in (yield self.visibility.filter_for_user(self.bob, events))]
        self.assertIn(after, seen)
        self.assertNotIn(before, seen)

    @defer.inlineCallbacks
    def test_shared_shows_history_to_members(self):
        """With 'shared', a current member sees messages from before their join."""
        _, before, after, events = yield self._room_with_history("shared")
        seen = [e.event_id for e in (yield self.visibility.filter_for_user(self.bob, events))]
        self.assertIn(before, seen)
        self.assertIn(after, seen)

    @defer.inlineCallbacks
    def test_outsiders_see_only_world_readable(self):
        """A non-member sees nothing unless the history is world readable."""
        _, _, _, events = yield self._room_with_history("shared")
        self.assertEqual((yield self.visibility.filter_for_user(self.user("eve"), events)), [])
        _, before, _, events = yield self._room_with_history("world_readable")
        seen = [e.event_id for e in (yield self.visibility.filter_for_user(self.user("eve"), events))]
        self.assertIn(before, seen)

    @defer.inlineCallbacks
    def test_redacted_event_is_served_pruned(self):
        """A redacted message is served without its body and with redacted_because."""
        room_id = yield self.room_creator.create_room(self.alice)
        message, _ = yield self.creator.send_event(room_id, self.alice, "m.room.message", {"body": "oops", "msgtype": "m.text"})
        redaction, _ = yield self.creator.send_event(room_id, self.alice, "m.room.redaction", {"reason": "typo"}, redacts=message)
        stored = yield self.store.events.get_event(message)
        applied = yield self.visibility.redactions_for([stored])
        self.assertEqual(applied[message].event_id, redaction)
        client = format_client_event(stored, stored.origin_server_ts + 5, "12", redaction=applied[message], txn_id="t")
        self.assertEqual(client["content"], {})
        self.assertEqual(client["unsigned"]["redacted_because"]["event_id"], redaction)
        self.assertEqual(client["unsigned"]["redacted_because"]["redacts"], message)
        self.assertEqual(client["unsigned"]["transaction_id"], "t")
        self.assertEqual(client["unsigned"]["age"], 5)
        self.assertEqual(client["room_id"], room_id)
        redaction_stored = yield self.store.events.get_event(redaction)
        plain = format_client_event(redaction_stored, 0, "12", include_room_id=False)
        self.assertNotIn("room_id", plain)
        self.assertEqual(plain["redacts"], message)
        self.assertEqual(plain["content"]["redacts"], message)

    def test_strip_state_event(self):
        """Stripped state keeps type, state_key, sender and content only."""
        event = {"type": "m.room.name", "state_key": "", "sender": "@a:x", "content": {"name": "n"}, "depth": 3}
        self.assertEqual(strip_state_event(event), {"type": "m.room.name", "state_key": "", "sender": "@a:x", "content": {"name": "n"}})
