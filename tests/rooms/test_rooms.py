"""Room creation, sending, membership and redaction through the room services."""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.errors import AuthError, MatrixError
from mxref.events.authrules import check_auth
from mxref.events.hashing import compute_event_id
from mxref.events.signing import get_verify_key, verify_event_signatures
from mxref.events.validation import validate_pdu_format
from mxref.rooms.state import with_event_id
from tests.rooms.support import RoomServicesMixin


class RoomCreationTests(RoomServicesMixin, unittest.TestCase):
    """createRoom produces the spec's sequence of events, valid for the room version."""

    @defer.inlineCallbacks
    def test_default_room_is_version_12_with_preset_state(self):
        """A room created with no options is a v12 private chat the creator has joined."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice, name="Lunch", topic="Where?")
        self.assertTrue(room_id.startswith("!"))
        self.assertNotIn(":", room_id)
        self.assertEqual((yield self.store.rooms.get_room_version(room_id)), "12")
        self.assertEqual((yield self.current_state_content(room_id, "m.room.join_rules")), {"join_rule": "invite"})
        self.assertEqual((yield self.current_state_content(room_id, "m.room.name")), {"name": "Lunch"})
        topic = yield self.current_state_content(room_id, "m.room.topic")
        self.assertEqual(topic["topic"], "Where?")
        self.assertEqual(topic["m.topic"], {"m.text": [{"body": "Where?", "mimetype": "text/plain"}]})
        from tests.schema import validate_schema

        validate_schema("event-schemas/schema/m.room.topic.yaml", topic, "/properties/content")
        power = yield self.current_state_content(room_id, "m.room.power_levels")
        self.assertNotIn(alice, power["users"])  # v12: creators are not listed
        self.assertEqual(power["events"]["m.room.tombstone"], 150)
        members = yield self.store.rooms.get_members(room_id)
        self.assertEqual(members[alice].membership, "join")

    @defer.inlineCallbacks
    def test_every_event_is_well_formed_signed_and_authorised(self):
        """Each event of a new room passes format, signature and auth checks against the state before it."""
        alice = self.user("alice")
        for version in ("1", "3", "6", "10", "11", "12"):
            room_id = yield self.room_creator.create_room(
                alice, room_version=version, preset="public_chat", name="n", topic="t"
            )
            chunk = yield self.store.events.get_room_events_stream(room_id, _start(), None, 100, "f")
            self.assertEqual(chunk[0].type, "m.room.create")
            verify_key = get_verify_key(self.signing_key)
            state = {}
            for stored in chunk:
                pdu = stored.pdu
                validate_pdu_format(pdu, version)
                verify_event_signatures(pdu, version, lambda server, key_id: verify_key)
                if version not in ("1", "2"):
                    self.assertEqual(compute_event_id(pdu, version), stored.event_id)
                event = with_event_id(stored)
                check_auth(event, state.values(), version)
                if stored.state_key is not None:
                    state[(stored.type, stored.state_key)] = event

    @defer.inlineCallbacks
    def test_public_room_with_alias(self):
        """A public room with an alias is listed, and its alias resolves."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice, visibility="public", room_alias_name="lobby")
        alias = yield self.store.rooms.get_alias("#lobby:test.example")
        self.assertEqual(alias.room_id, room_id)
        self.assertEqual(
            (yield self.current_state_content(room_id, "m.room.canonical_alias")), {"alias": "#lobby:test.example"}
        )
        self.assertEqual((yield self.current_state_content(room_id, "m.room.join_rules")), {"join_rule": "public"})
        page = yield self.store.rooms.get_public_rooms()
        self.assertEqual([r.room_id for r in page.rooms], [room_id])
        with self.assertRaises(MatrixError) as cm:
            yield self.room_creator.create_room(alice, room_alias_name="lobby")
        self.assertEqual(cm.exception.errcode, "M_ROOM_IN_USE")

    @defer.inlineCallbacks
    def test_identical_requests_make_distinct_rooms(self):
        """Two identical createRoom calls at once give two rooms, even though v12 IDs are hashes."""
        alice = self.user("alice")
        first, second = yield defer.gatherResults(
            [self.room_creator.create_room(alice), self.room_creator.create_room(alice)]
        )
        self.assertNotEqual(first, second)

    @defer.inlineCallbacks
    def test_unsupported_room_version(self):
        """Asking for an unknown room version gives M_UNSUPPORTED_ROOM_VERSION."""
        with self.assertRaises(MatrixError) as cm:
            yield self.room_creator.create_room(self.user("alice"), room_version="99")
        self.assertEqual(cm.exception.errcode, "M_UNSUPPORTED_ROOM_VERSION")

    @defer.inlineCallbacks
    def test_power_level_override_and_initial_state(self):
        """initial_state replaces preset events and the override is applied."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(
            alice,
            room_version="10",
            initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}],
            power_level_content_override={"events_default": 10},
        )
        self.assertEqual(
            (yield self.current_state_content(room_id, "m.room.history_visibility")), {"history_visibility": "joined"}
        )
        power = yield self.current_state_content(room_id, "m.room.power_levels")
        self.assertEqual(power["events_default"], 10)
        self.assertEqual(power["users"], {alice: 100})

    @defer.inlineCallbacks
    def test_trusted_private_chat_v12_makes_invitees_creators(self):
        """In v12, trusted_private_chat invitees become additional creators."""
        alice, bob = self.user("alice"), self.user("bob")
        room_id = yield self.room_creator.create_room(alice, preset="trusted_private_chat", invite=[bob])
        create = yield self.current_state_content(room_id, "m.room.create")
        self.assertEqual(create["additional_creators"], [bob])
        members = yield self.store.rooms.get_members(room_id)
        self.assertEqual(members[bob].membership, "invite")


def _start():
    from mxref.storage.records import RoomPosition

    return RoomPosition(0, 0)


class SendingTests(RoomServicesMixin, unittest.TestCase):
    """Sending events: auth, idempotency, size and JSON limits."""

    @defer.inlineCallbacks
    def test_send_and_txn_idempotency(self):
        """The same transaction ID gives the same event, once."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice)
        first = yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "hi"}, txn=("DEV", "t1"))
        again = yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "hi"}, txn=("DEV", "t1"))
        self.assertEqual(first, again)
        other = yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "hi"}, txn=("DEV2", "t1"))
        self.assertNotEqual(first[0], other[0])
        extremities = yield self.store.events.get_forward_extremities(room_id)
        self.assertEqual([e for e, _ in extremities], [other[0]])

    @defer.inlineCallbacks
    def test_non_member_cannot_send(self):
        """A user who is not joined gets an auth error."""
        room_id = yield self.room_creator.create_room(self.user("alice"))
        with self.assertRaises(AuthError):
            yield self.creator.send_event(room_id, self.user("mallory"), "m.room.message", {"body": "x"})

    @defer.inlineCallbacks
    def test_floats_and_huge_events_refused(self):
        """Floats are M_BAD_JSON in v6+ and events over 64 KiB are M_TOO_LARGE."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice)
        with self.assertRaises(MatrixError) as cm:
            yield self.creator.send_event(room_id, alice, "m.room.message", {"body": 1.5})
        self.assertEqual(cm.exception.errcode, "M_BAD_JSON")
        with self.assertRaises(MatrixError) as cm:
            yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "x" * 70000})
        self.assertEqual(cm.exception.errcode, "M_TOO_LARGE")

    @defer.inlineCallbacks
    def test_unknown_room(self):
        """Sending into an unknown room is M_NOT_FOUND."""
        with self.assertRaises(MatrixError) as cm:
            yield self.creator.send_event("!nope:test.example", self.user("a"), "m.room.message", {})
        self.assertEqual(cm.exception.code, 404)

    @defer.inlineCallbacks
    def test_state_change_updates_current_state_and_notifies(self):
        """A topic change becomes current state and reaches waiting listeners."""
        alice = self.user("alice")
        room_id = yield self.room_creator.create_room(alice)
        seen = []
        self.notifier.subscribe(seen.append)
        yield self.creator.send_event(room_id, alice, "m.room.topic", {"topic": "new"}, state_key="")
        self.assertEqual((yield self.current_state_content(room_id, "m.room.topic")), {"topic": "new"})
        self.assertEqual(len(seen), 1)
        self.assertIn(room_id, seen[0].room_ids)


class MembershipTests(RoomServicesMixin, unittest.TestCase):
    """Invite, join, leave, kick, ban and restricted joins."""

    @defer.inlineCallbacks
    def test_invite_join_leave(self):
        """An invited user can join, then leave; an uninvited one cannot join a private room."""
        alice, bob, carol = self.user("alice"), self.user("bob"), self.user("carol")
        room_id = yield self.room_creator.create_room(alice)
        with self.assertRaises(AuthError):
            yield self.membership.join(carol, room_id)
        yield self.membership.invite(alice, room_id, bob)
        yield self.membership.join(bob, room_id)
        members = yield self.store.rooms.get_members(room_id, membership="join")
        self.assertEqual(set(members), {alice, bob})
        yield self.membership.leave(bob, room_id)
        members = yield self.store.rooms.get_members(room_id, membership="join")
        self.assertEqual(set(members), {alice})

    @defer.inlineCallbacks
    def test_join_by_alias(self):
        """Anyone can join a public room through its local alias."""
        alice, bob = self.user("alice"), self.user("bob")
        room_id = yield self.room_creator.create_room(alice, visibility="public", room_alias_name="pub")
        joined = yield self.membership.join(bob, "#pub:test.example")
        self.assertEqual(joined, room_id)
        with self.assertRaises(MatrixError) as cm:
            yield self.membership.join(bob, "#missing:test.example")
        self.assertEqual(cm.exception.code, 404)

    @defer.inlineCallbacks
    def test_kick_ban_unban(self):
        """The creator can kick and ban; a banned user cannot rejoin until unbanned."""
        alice, bob = self.user("alice"), self.user("bob")
        room_id = yield self.room_creator.create_room(alice, preset="public_chat")
        yield self.membership.join(bob, room_id)
        yield self.membership.set_membership_of_other(alice, room_id, bob, "leave", reason="out")
        yield self.membership.join(bob, room_id)
        yield self.membership.set_membership_of_other(alice, room_id, bob, "ban")
        with self.assertRaises(AuthError):
            yield self.membership.join(bob, room_id)
        with self.assertRaises(AuthError):
            yield self.membership.set_membership_of_other(bob, room_id, alice, "ban")
        yield self.membership.set_membership_of_other(alice, room_id, bob, "leave")
        yield self.membership.join(bob, room_id)

    @defer.inlineCallbacks
    def test_restricted_join(self):
        """A member of an allowed room may join a restricted room; others may not."""
        alice, bob, carol = self.user("alice"), self.user("bob"), self.user("carol")
        space = yield self.room_creator.create_room(alice, preset="public_chat")
        yield self.membership.join(bob, space)
        allow = [{"type": "m.room_membership", "room_id": space}]
        room_id = yield self.room_creator.create_room(
            alice,
            initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "restricted", "allow": allow}}],
        )
        yield self.membership.join(bob, room_id)
        state = yield self.store.events.get_current_state(room_id, types=[("m.room.member", bob)])
        self.assertEqual(state[("m.room.member", bob)].pdu["content"]["join_authorised_via_users_server"], alice)
        with self.assertRaises(MatrixError) as cm:
            yield self.membership.join(carol, room_id)
        self.assertEqual(cm.exception.code, 403)

    @defer.inlineCallbacks
    def test_redaction_permissions(self):
        """Users redact their own events; redacting others' needs the redact level."""
        alice, bob = self.user("alice"), self.user("bob")
        room_id = yield self.room_creator.create_room(alice, preset="public_chat")
        yield self.membership.join(bob, room_id)
        alice_msg, _ = yield self.creator.send_event(room_id, alice, "m.room.message", {"body": "a"})
        bob_msg, _ = yield self.creator.send_event(room_id, bob, "m.room.message", {"body": "b"})
        yield self.creator.send_event(room_id, bob, "m.room.redaction", {}, redacts=bob_msg)
        with self.assertRaises(MatrixError) as cm:
            yield self.creator.send_event(room_id, bob, "m.room.redaction", {}, redacts=alice_msg)
        self.assertEqual(cm.exception.code, 403)
        redaction, _ = yield self.creator.send_event(room_id, alice, "m.room.redaction", {}, redacts=bob_msg)
        self.assertIn(redaction, (yield self.store.events.get_redactions_of(bob_msg)))
