"""Conformance of IRoomStore's forgotten rooms (``forget_room``, ``get_forgotten_room_ids``) on SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.storage.records import PersistBatch, RoomUpdate
from tests.storage.harness import EventFactory, PostgresBackendMixin, SqliteBackendMixin

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!forget:example.org"


class ForgottenRoomsConformanceMixin:
    """What every IRoomStore must do about forgotten rooms; needs ``self.store``."""

    @defer.inlineCallbacks
    def set_membership(self, factory, user_id, membership):
        event = factory.member(user_id, membership)
        yield self.store.events.persist_events(
            PersistBatch(
                [event],
                [
                    RoomUpdate(
                        ROOM, state_delta_to_insert={("m.room.member", user_id): event.event_id}
                    )
                ],
            )
        )

    @defer.inlineCallbacks
    def test_forget_until_membership_changes(self):
        """A forgotten room is listed until the user's membership of it changes again."""
        factory = EventFactory(ROOM)
        create = factory.make("m.room.create", state_key="", content={"room_version": "11"})
        yield self.store.events.persist_events(
            PersistBatch(
                [create],
                [
                    RoomUpdate(
                        ROOM, frozenset([create.event_id]), {("m.room.create", ""): create.event_id}
                    )
                ],
            )
        )
        yield self.set_membership(factory, ALICE, "join")
        yield self.set_membership(factory, ALICE, "leave")
        self.assertEqual((yield self.store.rooms.get_forgotten_room_ids(ALICE)), set())
        self.assertTrue((yield self.store.rooms.forget_room(ALICE, ROOM)))
        self.assertEqual((yield self.store.rooms.get_forgotten_room_ids(ALICE)), {ROOM})
        self.assertEqual((yield self.store.rooms.get_forgotten_room_ids(BOB)), set())
        yield self.set_membership(factory, ALICE, "join")
        self.assertEqual((yield self.store.rooms.get_forgotten_room_ids(ALICE)), set())

    @defer.inlineCallbacks
    def test_forget_without_membership(self):
        """Forgetting a room the user never had a membership of records nothing."""
        self.assertFalse((yield self.store.rooms.forget_room(BOB, ROOM)))
        self.assertEqual((yield self.store.rooms.get_forgotten_room_ids(BOB)), set())


class ForgottenRoomsSQLiteTests(
    ForgottenRoomsConformanceMixin, SqliteBackendMixin, unittest.TestCase
):
    """On SQLite."""


class ForgottenRoomsPostgresTests(
    ForgottenRoomsConformanceMixin, PostgresBackendMixin, unittest.TestCase
):
    """On PostgreSQL."""
