"""The persister's in-memory forward extremities agree with the database's."""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.rooms.persister import EventPersister
from tests.rooms.support import RoomServicesMixin


class RoomTipTests(RoomServicesMixin, unittest.TestCase):
    """Forward extremities and their state groups served from memory."""

    @defer.inlineCallbacks
    def assert_tip_matches_storage(self, persister, room_id):
        stored = yield self.store.events.get_forward_extremities(room_id)
        remembered = yield persister.forward_extremities(room_id)
        self.assertEqual(remembered, stored)
        for event_id, _depth in stored:
            group = yield persister.state_group_after(room_id, event_id)
            self.assertEqual(group, (yield self.store.state.get_state_group_for_event(event_id)))

    @defer.inlineCallbacks
    def test_sends_and_state_changes_keep_memory_and_database_equal(self):
        """After messages, state changes and concurrent sends, the extremities (and the state
        group after each) the persister remembers are the ones stored."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice, name="one")
        yield self.assert_tip_matches_storage(self.persister, room_id)
        yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "hi"})
        yield self.creator.send_event(room_id, alice, "m.room.topic", {"topic": "t"}, state_key="")
        yield self.assert_tip_matches_storage(self.persister, room_id)
        yield defer.gatherResults([
            self.creator.send_event(room_id, alice, "m.room.message", {"body": str(i)})
            for i in range(8)
        ])
        yield self.assert_tip_matches_storage(self.persister, room_id)
        (tip,) = yield self.persister.forward_extremities(room_id)
        latest = yield self.store.events.get_event(tip[0])
        self.assertEqual(latest.pdu["content"]["body"], "7")

    @defer.inlineCallbacks
    def test_a_new_persister_reads_the_database(self):
        """A persister that has not written the room (e.g. after a restart) reads the
        extremities from the database, then keeps them up to date itself."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice)
        fresh = EventPersister(self.store.events, self.state_reader, self.notifier)
        yield self.assert_tip_matches_storage(fresh, room_id)
        self.creator._persister = fresh
        yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "after"})
        yield self.assert_tip_matches_storage(fresh, room_id)

    @defer.inlineCallbacks
    def test_remembered_current_state_follows_state_changes(self):
        """Current state entries read through the persister (including ones the room did not
        have yet) follow later state events: a join, a topic, a power level change."""
        alice, bob = self.user("alice"), self.user("bob")
        room_id = yield self.room_creator.create_room(alice, preset="public_chat")
        keys = [
            ("m.room.member", bob),
            ("m.room.topic", ""),
            ("m.room.power_levels", ""),
            ("m.room.create", ""),
        ]
        yield self.persister.forward_extremities(room_id)
        for step in range(3):
            if step == 1:
                yield self.membership.join(bob, room_id)
                yield self.creator.send_event(room_id, alice, "m.room.topic", {"topic": "t"}, state_key="")
            if step == 2:
                yield self.creator.send_event(
                    room_id, alice, "m.room.power_levels",
                    {"users": {bob: 50}}, state_key="",
                )
            remembered = yield self.persister.current_state_ids(room_id, keys)
            stored = yield self.store.events.get_current_state_ids(room_id, types=keys)
            self.assertEqual(remembered, stored)
        self.assertEqual(set(remembered), set(keys))


class ConcurrentTransactionTests(RoomServicesMixin, unittest.TestCase):
    """Transaction IDs are looked up outside the room's lock."""

    @defer.inlineCallbacks
    def test_concurrent_retries_give_one_event(self):
        """Three requests with the same transaction ID sent at once, amid other messages,
        make one event; all three get its ID, and the rate check runs once."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice)
        checks = []
        sends = [
            self.creator.send_event(
                room_id, alice, "m.room.message", {"body": "once"}, txn=("DEV", "t1"),
                before_new_event=lambda: checks.append(1),
            )
            for _ in range(3)
        ] + [
            self.creator.send_event(room_id, alice, "m.room.message", {"body": str(i)}, txn=("DEV", f"o{i}"))
            for i in range(3)
        ]
        results = yield defer.gatherResults(sends)
        self.assertEqual(len({event_id for event_id, _ in results[:3]}), 1)
        self.assertEqual(len({event_id for event_id, _ in results}), 4)
        self.assertEqual(checks, [1])
