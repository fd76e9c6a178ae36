"""Conformance suite for IRoomStore, run against SQLite and PostgreSQL."""

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mxref.storage.interfaces import IRoomStore
from mxref.storage.records import Member, PersistBatch, RoomUpdate, UserMembership
from tests.storage.harness import EventFactory, PostgresBackendMixin, SqliteBackendMixin

ALICE = "@alice:example.org"
BOB = "@bob:remote.test"
CAROL = "@carol:third.test"


class RoomStoreConformanceMixin:
    """What every IRoomStore must do; needs ``self.store``."""

    def test_provides_interface(self):
        """The room store fully implements IRoomStore."""
        self.assertTrue(verifyObject(IRoomStore, self.store.rooms))

    @defer.inlineCallbacks
    def test_store_and_get_room(self):
        """A stored room reads back; storing it again changes nothing."""
        created = yield self.store.rooms.store_room("!r:example.org", "11", ALICE, False, 1234)
        self.assertTrue(created)
        again = yield self.store.rooms.store_room("!r:example.org", "12", BOB, True, 5)
        self.assertFalse(again)
        room = yield self.store.rooms.get_room("!r:example.org")
        self.assertEqual((room.room_version, room.creator, room.is_public, room.created_ts), ("11", ALICE, False, 1234))
        self.assertEqual((yield self.store.rooms.get_room_version("!r:example.org")), "11")
        self.assertIsNone((yield self.store.rooms.get_room("!none:example.org")))
        self.assertIsNone((yield self.store.rooms.get_room_version("!none:example.org")))
        yield self.store.rooms.set_room_is_public("!r:example.org", True)
        self.assertTrue((yield self.store.rooms.get_room("!r:example.org")).is_public)

    @defer.inlineCallbacks
    def test_aliases(self):
        """Aliases are created once, resolve with their servers, list per room and delete."""
        self.assertTrue((yield self.store.rooms.create_alias("#a:example.org", "!r:example.org", ALICE,
                                                            ["example.org", "other.test"])))
        self.assertFalse((yield self.store.rooms.create_alias("#a:example.org", "!s:example.org", BOB, [])))
        yield self.store.rooms.create_alias("#b:example.org", "!r:example.org", ALICE, [])
        alias = yield self.store.rooms.get_alias("#a:example.org")
        self.assertEqual((alias.room_id, alias.creator, alias.servers),
                         ("!r:example.org", ALICE, ("example.org", "other.test")))
        self.assertEqual((yield self.store.rooms.get_aliases_for_room("!r:example.org")),
                         ["#a:example.org", "#b:example.org"])
        self.assertEqual((yield self.store.rooms.delete_alias("#a:example.org")), "!r:example.org")
        self.assertIsNone((yield self.store.rooms.delete_alias("#a:example.org")))
        self.assertIsNone((yield self.store.rooms.get_alias("#a:example.org")))
        self.assertEqual((yield self.store.rooms.get_aliases_for_room("!r:example.org")), ["#b:example.org"])

    @defer.inlineCallbacks
    def populate(self, room_id, name=None, topic=None, joined=(), invited=(), extra_state=None):
        """Persist a room whose current state has the given name/topic and members."""
        factory = EventFactory(room_id)
        events, state = [], {}

        def add(event):
            events.append(event)
            state[(event.type, event.state_key)] = event.event_id

        add(factory.make("m.room.create", state_key="", content={"room_version": "11"}))
        if name is not None:
            add(factory.make("m.room.name", state_key="", content={"name": name}))
        if topic is not None:
            add(factory.make("m.room.topic", state_key="", content={"topic": topic}))
        for event_type, content in (extra_state or {}).items():
            add(factory.make(event_type, state_key="", content=content))
        for user in joined:
            add(factory.member(user, "join"))
        for user in invited:
            add(factory.member(user, "invite", sender=ALICE))
        orderings = yield self.store.events.persist_events(
            PersistBatch(events, [RoomUpdate(room_id, frozenset([events[-1].event_id]), state)])
        )
        return events, orderings

    @defer.inlineCallbacks
    def test_memberships_follow_current_state(self):
        """Members and a user's rooms come from current state, with the position they changed at."""
        events, orderings = yield self.populate("!r:example.org", joined=[ALICE, BOB], invited=[CAROL])
        members = yield self.store.rooms.get_members("!r:example.org")
        self.assertEqual({u: m.membership for u, m in members.items()},
                         {ALICE: "join", BOB: "join", CAROL: "invite"})
        joined = yield self.store.rooms.get_members("!r:example.org", membership="join")
        self.assertEqual(set(joined), {ALICE, BOB})
        rooms = yield self.store.rooms.get_rooms_for_user(CAROL, memberships=("invite", "join"))
        self.assertEqual([(r.room_id, r.membership) for r in rooms], [("!r:example.org", "invite")])
        self.assertEqual(rooms[0].stream_ordering, max(orderings.values()))
        self.assertEqual((yield self.store.rooms.get_rooms_for_user(CAROL)), [])
        self.assertEqual(len((yield self.store.rooms.get_rooms_for_user(CAROL, memberships=None))), 1)
        self.assertEqual((yield self.store.rooms.get_joined_hosts("!r:example.org")), {"example.org", "remote.test"})

    @defer.inlineCallbacks
    def test_membership_history_and_changes(self):
        """Members at an earlier stream position, and a user's changes since a token, are reported."""
        yield self.populate("!r:example.org", joined=[ALICE])
        token = yield self.store.events.get_max_stream_ordering()
        factory = EventFactory("!r:example.org")
        invite = factory.member(BOB, "invite", sender=ALICE)
        yield self.store.events.persist_events(PersistBatch(
            [invite], [RoomUpdate("!r:example.org", state_delta_to_insert={("m.room.member", BOB): invite.event_id})]
        ))
        join = factory.member(BOB, "join")
        yield self.store.events.persist_events(PersistBatch(
            [join], [RoomUpdate("!r:example.org", state_delta_to_insert={("m.room.member", BOB): join.event_id})]
        ))
        now = yield self.store.rooms.get_members("!r:example.org")
        self.assertEqual(now[BOB], Member(BOB, "join", join.event_id))
        then = yield self.store.rooms.get_members("!r:example.org", at_stream=token)
        self.assertEqual(set(then), {ALICE})
        middle = yield self.store.rooms.get_members("!r:example.org", at_stream=token + 1)
        self.assertEqual(middle[BOB].membership, "invite")
        joined_then = yield self.store.rooms.get_members("!r:example.org", membership="join", at_stream=token + 1)
        self.assertEqual(set(joined_then), {ALICE})
        changes = yield self.store.rooms.get_membership_changes(BOB, token)
        self.assertEqual(changes, [UserMembership("!r:example.org", "join", join.event_id, token + 2)])
        self.assertEqual((yield self.store.rooms.get_membership_changes(BOB, token, token + 1)), [])
        self.assertEqual((yield self.store.rooms.get_membership_changes(BOB, token + 2)), [])

    @defer.inlineCallbacks
    def test_large_state_deltas(self):
        """A join with hundreds of members, then a large change, keeps state, members and counts exact."""
        users = [f"@u{i}:host{i % 7}.test" for i in range(300)]
        events, _ = yield self.populate("!big:example.org", joined=users)
        factory = EventFactory("!big:example.org")
        leaves = [factory.member(user, "leave") for user in users[:40]]
        yield self.store.events.persist_events(PersistBatch(leaves, [RoomUpdate(
            "!big:example.org",
            state_delta_to_insert={("m.room.member", e.state_key): e.event_id for e in leaves},
            state_delta_to_delete=[("m.room.member", user) for user in users[40:70]],
        )]))
        members = yield self.store.rooms.get_members("!big:example.org")
        self.assertEqual(len(members), 270)
        self.assertEqual({m.membership for u, m in members.items() if u in users[:40]}, {"leave"})
        state = yield self.store.events.get_current_state_ids("!big:example.org", types=[("m.room.member", None)])
        self.assertEqual(len(state), 270)
        stats = yield self.store.rooms.get_room_stats("!big:example.org")
        self.assertEqual(stats.joined_members, 230)
        self.assertEqual(len((yield self.store.rooms.get_joined_hosts("!big:example.org"))), 7)

    @defer.inlineCallbacks
    def test_out_of_band_invite(self):
        """A remote invite stored as an out-of-band outlier shows up as the user's invite."""
        factory = EventFactory("!remote:remote.test")
        invite = factory.member(ALICE, "invite", sender=BOB, outlier=True, out_of_band_membership=True)
        orderings = yield self.store.events.persist_events(PersistBatch([invite]))
        self.assertEqual(list(orderings), [invite.event_id])
        rooms = yield self.store.rooms.get_rooms_for_user(ALICE, memberships=("invite",))
        self.assertEqual(rooms, [UserMembership("!remote:remote.test", "invite", invite.event_id,
                                                orderings[invite.event_id])])
        changes = yield self.store.rooms.get_membership_changes(ALICE, 0)
        self.assertEqual([c.room_id for c in changes], ["!remote:remote.test"])
        stored = yield self.store.events.get_event(invite.event_id)
        self.assertTrue(stored.outlier)
        timeline = yield self.store.events.get_events_since(0, ["!remote:remote.test"], 10)
        self.assertEqual(timeline, {})

    @defer.inlineCallbacks
    def test_room_stats_follow_state(self):
        """Member counts, name, topic and other directory fields track current state."""
        events, _ = yield self.populate(
            "!r:example.org", name="Lounge", topic="chat", joined=[ALICE, BOB], invited=[CAROL],
            extra_state={
                "m.room.join_rules": {"join_rule": "public"},
                "m.room.canonical_alias": {"alias": "#l:example.org"},
            },
        )
        stats = yield self.store.rooms.get_room_stats("!r:example.org")
        self.assertEqual(
            (stats.joined_members, stats.invited_members, stats.name, stats.topic, stats.join_rule,
             stats.canonical_alias),
            (2, 1, "Lounge", "chat", "public", "#l:example.org"),
        )
        factory = EventFactory("!r:example.org")
        leave = factory.member(BOB, "leave")
        rename = factory.make("m.room.name", state_key="", content={"name": 42})
        yield self.store.events.persist_events(PersistBatch([leave, rename], [RoomUpdate(
            "!r:example.org",
            state_delta_to_insert={("m.room.member", BOB): leave.event_id, ("m.room.name", ""): rename.event_id},
            state_delta_to_delete=[("m.room.topic", "")],
        )]))
        stats = yield self.store.rooms.get_room_stats("!r:example.org")
        self.assertEqual((stats.joined_members, stats.name, stats.topic), (1, None, None))
        self.assertIsNone((yield self.store.rooms.get_room_stats("!none:example.org")))

    @defer.inlineCallbacks
    def test_public_rooms_directory(self):
        """Only public rooms are listed, busiest first, with search and offset paging."""
        for i, (name, members) in enumerate([("Alpha", 3), ("Beta 100%", 1), ("gamma", 2), ("Hidden", 5)]):
            room_id = f"!{i}:example.org"
            yield self.store.rooms.store_room(room_id, "11", ALICE, name != "Hidden", 0)
            yield self.populate(room_id, name=name, joined=[f"@u{j}:example.org" for j in range(members)])
        yield self.store.rooms.store_room("!empty:example.org", "11", ALICE, True, 0)
        page = yield self.store.rooms.get_public_rooms()
        self.assertEqual([r.name for r in page.rooms], ["Alpha", "gamma", "Beta 100%", None])
        self.assertEqual((page.total, page.next_offset, page.prev_offset), (4, None, None))
        first = yield self.store.rooms.get_public_rooms(limit=2)
        self.assertEqual([r.name for r in first.rooms], ["Alpha", "gamma"])
        self.assertEqual(first.next_offset, 2)
        second = yield self.store.rooms.get_public_rooms(limit=2, since=first.next_offset)
        self.assertEqual([r.name for r in second.rooms], ["Beta 100%", None])
        self.assertEqual((second.next_offset, second.prev_offset), (None, 0))
        found = yield self.store.rooms.get_public_rooms(search="GAMM")
        self.assertEqual([r.name for r in found.rooms], ["gamma"])
        percent = yield self.store.rooms.get_public_rooms(search="0%")
        self.assertEqual([r.name for r in percent.rooms], ["Beta 100%"])
        nothing = yield self.store.rooms.get_public_rooms(search="a_p")
        self.assertEqual(nothing.rooms, [])


class RoomStoreSQLiteTests(RoomStoreConformanceMixin, SqliteBackendMixin, unittest.TestCase):
    """IRoomStore conformance on SQLite."""


class RoomStorePostgresTests(RoomStoreConformanceMixin, PostgresBackendMixin, unittest.TestCase):
    """IRoomStore conformance on PostgreSQL."""
