"""The PDU receive pipeline: the spec's checks in order, fetching missing events, outcomes."""

from twisted.internet import defer
from twisted.trial import unittest

from mxref.events.builder import build_create_event, build_event
from mxref.events.hashing import compute_event_id, compute_reference_hash, encode_unpadded_base64
from mxref.events.signing import generate_signing_key
from mxref.federation.receiver.pipeline import (
    ACCEPTED,
    DROPPED,
    REJECTED,
    SOFT_FAILED,
    reference_ids,
)
from mxref.rooms.persister import ROOM_EVENTS_STREAM
from mxref.storage.records import RoomPosition
from tests.federation.receiver_support import REMOTE, ReceiverFixture, RemoteRoom

MEMBER_KEY = "m.room.member"


class PduPipelineTests(ReceiverFixture, unittest.TestCase):
    """PDUs from a remote server in a v12 room we are in."""

    @defer.inlineCallbacks
    def visible_event_ids(self):
        chunk = yield self.store.events.get_room_events_stream(
            self.room_id, RoomPosition(0, 0), None, 1000, "f"
        )
        return [e.event_id for e in chunk]

    @defer.inlineCallbacks
    def test_accepted_join_reaches_current_state_and_notifies(self):
        """A remote user's valid join becomes current state and wakes sync."""
        before = self.notifier.current_position(ROOM_EVENTS_STREAM)
        outcome = yield self.join_bob()
        self.assertEqual(outcome.status, ACCEPTED)
        self.assertEqual(outcome.transaction_result(), {})
        state = yield self.current_state_ids()
        self.assertEqual(state[(MEMBER_KEY, self.bob)], outcome.event_id)
        self.assertNotEqual(self.notifier.current_position(ROOM_EVENTS_STREAM), before)
        members = yield self.store.rooms.get_members(self.room_id)
        self.assertEqual(members[self.bob].membership, "join")
        self.assertIn(REMOTE, (yield self.store.rooms.get_joined_hosts(self.room_id)))
        extremities = yield self.store.events.get_forward_extremities(self.room_id)
        self.assertEqual([e for e, _ in extremities], [outcome.event_id])

    @defer.inlineCallbacks
    def test_bad_signature_is_dropped(self):
        """An event signed with a key the remote never published is dropped, not stored."""
        yield self.join_bob()
        event_id, pdu = self.remote.build(
            self.bob, "m.room.message", {"body": "hi"}, signing_key=generate_signing_key("r1")
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, DROPPED)
        self.assertIn("error", outcome.transaction_result())
        self.assertEqual((yield self.store.events.have_events([event_id])), set())

    @defer.inlineCallbacks
    def test_bad_content_hash_keeps_the_redacted_copy(self):
        """An event whose content was altered after signing is kept, redacted."""
        yield self.join_bob()
        event_id, pdu = self.remote.build(
            self.bob, "m.room.message", {"body": "original", "msgtype": "m.text"}
        )
        tampered = dict(pdu, content={"body": "altered", "msgtype": "m.text"})
        outcome = yield self.receiver.receive_pdu(REMOTE, tampered)
        self.assertEqual(outcome.status, ACCEPTED)
        self.assertEqual(outcome.event_id, event_id)
        stored = yield self.store.events.get_event(event_id)
        self.assertEqual(stored.pdu["content"], {})

    @defer.inlineCallbacks
    def test_non_member_message_is_rejected(self):
        """A message from a remote user who never joined is rejected and never shown."""
        eve = f"@eve:{REMOTE}"
        event_id, pdu = self.remote.build(eve, "m.room.message", {"body": "spam"})
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, REJECTED)
        self.assertIn("error", outcome.transaction_result())
        self.assertIsNone((yield self.store.events.get_event(event_id)))
        stored = yield self.store.events.get_event(event_id, allow_rejected=True)
        self.assertIsNotNone(stored.rejected_reason)
        self.assertNotIn(event_id, (yield self.visible_event_ids()))
        extremities = yield self.store.events.get_forward_extremities(self.room_id)
        self.assertNotIn(event_id, [e for e, _ in extremities])

    @defer.inlineCallbacks
    def test_raising_own_power_level_is_rejected_and_never_state(self):
        """A member granting themselves power is rejected; the power levels stay as they were."""
        yield self.join_bob()
        state = yield self.current_state_ids()
        old_levels_id = state[("m.room.power_levels", "")]
        levels = dict(self.remote.pdus[old_levels_id]["content"])
        levels["users"] = dict(levels.get("users", {}), **{self.bob: 100})
        event_id, pdu = self.remote.build(self.bob, "m.room.power_levels", levels, state_key="")
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, REJECTED)
        state = yield self.current_state_ids()
        self.assertEqual(state[("m.room.power_levels", "")], old_levels_id)
        # An event citing the rejected event as an auth event is rejected too.
        cites_id, cites = self.remote.build(
            self.bob, "m.room.message", {"body": "x"}, prev_ids=[event_id]
        )
        self.assertEqual((yield self.receiver.receive_pdu(REMOTE, cites)).status, REJECTED)
        # An event built after the rejected one, citing the old power levels, is accepted
        # and sees the state as if the rejected event did not exist.
        self.remote.state_after[event_id] = self.remote.state_before(event_id)
        msg_id, msg = self.remote.build(
            self.bob, "m.room.message", {"body": "after"}, prev_ids=[event_id]
        )
        self.assertEqual((yield self.receiver.receive_pdu(REMOTE, msg)).status, ACCEPTED)
        self.assertEqual(
            (yield self.store.events.get_state_ids_at_event(msg_id))[("m.room.power_levels", "")],
            old_levels_id,
        )

    @defer.inlineCallbacks
    def test_soft_fail_against_current_state(self):
        """A message from a user banned meanwhile is soft-failed: stored but not shown or built on."""
        join = yield self.join_bob()
        yield self.membership.set_membership_of_other(self.alice, self.room_id, self.bob, "ban")
        event_id, pdu = self.remote.build(
            self.bob, "m.room.message", {"body": "late"}, prev_ids=[join.event_id]
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, SOFT_FAILED)
        self.assertEqual(outcome.transaction_result(), {})
        stored = yield self.store.events.get_event(event_id)
        self.assertTrue(stored.soft_failed)
        self.assertNotIn(event_id, (yield self.visible_event_ids()))
        extremities = yield self.store.events.get_forward_extremities(self.room_id)
        self.assertNotIn(event_id, [e for e, _ in extremities])

    @defer.inlineCallbacks
    def test_missing_prev_events_are_fetched(self):
        """Receiving only the newest of a chain fetches the others with get_missing_events."""
        yield self.join_bob()
        ids = [self.remote.build(self.bob, "m.room.message", {"body": str(i)})[0] for i in range(3)]
        outcome = yield self.receiver.receive_pdu(REMOTE, self.remote.pdus[ids[-1]])
        self.assertEqual(outcome.status, ACCEPTED)
        self.assertIn("get_missing_events", self.client.calls)
        self.assertNotIn("state_ids", self.client.calls)
        visible = yield self.visible_event_ids()
        self.assertEqual(visible[-3:], ids)
        extremities = yield self.store.events.get_forward_extremities(self.room_id)
        self.assertEqual([e for e, _ in extremities], [ids[-1]])

    @defer.inlineCallbacks
    def test_gap_is_bridged_with_state_ids(self):
        """A gap longer than get_missing_events returns is bridged with the remote's state."""
        yield self.join_bob()
        rename_id, _ = self.remote.build(
            self.bob,
            "m.room.member",
            {"membership": "join", "displayname": "Bob"},
            state_key=self.bob,
        )
        last = None
        for i in range(15):
            last, _ = self.remote.build(self.bob, "m.room.message", {"body": str(i)})
        outcome = yield self.receiver.receive_pdu(REMOTE, self.remote.pdus[last])
        self.assertEqual(outcome.status, ACCEPTED)
        self.assertIn("state_ids", self.client.calls)
        state = yield self.current_state_ids()
        self.assertEqual(state[(MEMBER_KEY, self.bob)], rename_id)
        stored_rename = yield self.store.events.get_event(rename_id)
        self.assertTrue(stored_rename.outlier)
        visible = yield self.visible_event_ids()
        self.assertEqual(visible[-1], last)

    @defer.inlineCallbacks
    def test_missing_auth_events_are_fetched_as_outliers(self):
        """A message whose sender's join we never saw is checked with the join fetched, then
        rejected because the state before it has no such member."""
        join_id, _ = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        state = yield self.current_state_ids()
        create_id = state[("m.room.create", "")]
        # Built on our latest event, but citing bob's (unseen) join as an auth event.
        latest = reference_ids(self.remote.pdus[join_id]["prev_events"])[0]
        self.remote.state_after[latest] = dict(self.remote.state_after[join_id])
        msg_id, msg = self.remote.build(
            self.bob, "m.room.message", {"body": "hi"}, prev_ids=[latest]
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, msg)
        self.assertEqual(outcome.status, REJECTED)
        self.assertIn("state before", outcome.reason)
        self.assertIn("event_auth", self.client.calls)
        stored_join = yield self.store.events.get_event(join_id)
        self.assertTrue(stored_join.outlier)
        self.assertNotEqual(create_id, join_id)

    @defer.inlineCallbacks
    def test_duplicates_are_idempotent(self):
        """The same PDU received twice is stored once and gets the same outcome."""
        first = yield self.join_bob()
        position = self.notifier.current_position(ROOM_EVENTS_STREAM)
        again = yield self.receiver.receive_pdu(REMOTE, self.remote.pdus[first.event_id])
        self.assertEqual(again, first)
        self.assertEqual(self.notifier.current_position(ROOM_EVENTS_STREAM), position)
        visible = yield self.visible_event_ids()
        self.assertEqual(visible.count(first.event_id), 1)

    @defer.inlineCallbacks
    def test_acl_denied_origin_is_dropped(self):
        """After the room denies the remote server in its ACL, its PDUs are dropped."""
        yield self.join_bob()
        yield self.creator.send_event(
            self.room_id,
            self.alice,
            "m.room.server_acl",
            {"allow": ["*"], "deny": [REMOTE]},
            state_key="",
        )
        yield self.copy_our_events_to_remote()
        event_id, pdu = self.remote.build(self.bob, "m.room.message", {"body": "hi"})
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, DROPPED)
        self.assertIn("ACL", outcome.reason)
        self.assertEqual((yield self.store.events.have_events([event_id])), set())

    @defer.inlineCallbacks
    def test_prev_event_of_another_room_is_dropped(self):
        """An event citing another room's event as a prev event is dropped: that room's state
        never leaks into this one."""
        yield self.join_bob()
        other = yield self.room_creator.create_room(self.alice, preset="public_chat")
        other_id, other_depth = (yield self.store.events.get_forward_extremities(other))[0]
        other_latest = (other_id, other_depth)
        if self.room_version == "1":
            stored = yield self.store.events.get_event(other_id)
            reference = encode_unpadded_base64(compute_reference_hash(stored.pdu, "1"))
            other_latest = (other_id, other_depth, {"sha256": reference})
        state = self.remote.state_after[self.remote.latest]
        current = {key: dict(self.remote.pdus[i], event_id=i) for key, i in state.items()}
        pdu = build_event(
            room_version=self.room_version,
            room_id=self.room_id,
            sender=self.bob,
            event_type="m.room.message",
            content={"body": "x"},
            prev_events=[other_latest],
            current_state=current,
            origin_server_ts=1,
            server_name=REMOTE,
            signing_key=self.remote.signing_key,
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, pdu)
        self.assertEqual(outcome.status, DROPPED)
        self.assertIn("another room", outcome.reason)

    @defer.inlineCallbacks
    def test_unknown_room_is_dropped(self):
        """A PDU for a room this server is not in is dropped."""
        _, pdu = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        outcome = yield self.receiver.receive_pdu(REMOTE, dict(pdu, room_id="!elsewhere"))
        self.assertEqual(outcome.status, DROPPED)

    @defer.inlineCallbacks
    def test_malformed_pdu_is_dropped(self):
        """A PDU missing required keys is dropped."""
        _, pdu = self.remote.build(
            self.bob, "m.room.member", {"membership": "join"}, state_key=self.bob
        )
        broken = dict(pdu)
        del broken["depth"]
        outcome = yield self.receiver.receive_pdu(REMOTE, broken)
        self.assertEqual(outcome.status, DROPPED)


class PduPipelineV10Tests(PduPipelineTests):
    """The same behaviour in a room version 10 room (room IDs with a server name, create event
    listed in auth_events)."""

    room_version = "10"


class PduPipelineV1Tests(PduPipelineTests):
    """The same behaviour in a room version 1 room (sender-chosen event IDs, prev and auth
    events cited with their reference hashes, state resolution v1)."""

    room_version = "1"


class StoreOutliersTests(ReceiverFixture, unittest.TestCase):
    """``PduReceiver.store_outliers``: a joined room's state and auth chain kept as outliers."""

    room_version = "12"

    @defer.inlineCallbacks
    def test_state_of_an_unknown_room_is_stored_as_outliers(self):
        """Valid events are stored as outliers in auth order; forged and unauthorised ones are
        skipped or marked rejected."""
        carol = f"@carol:{REMOTE}"
        create, room_id = build_create_event(
            room_version="12",
            creator=carol,
            content={},
            origin_server_ts=1,
            server_name=REMOTE,
            signing_key=self.remote.signing_key,
        )
        remote = RemoteRoom(room_id, "12", signing_key=self.remote.signing_key)
        remote.add(compute_event_id(create, "12"), create, {})
        join_id, join = remote.build(
            carol, "m.room.member", {"membership": "join"}, state_key=carol
        )
        rules_id, rules = remote.build(
            carol, "m.room.join_rules", {"join_rule": "invite"}, state_key=""
        )
        eve = f"@eve:{REMOTE}"
        bad_id, bad = remote.build(eve, "m.room.name", {"name": "taken over"}, state_key="")
        forged_id, forged = remote.build(
            carol,
            "m.room.topic",
            {"topic": "x"},
            state_key="",
            signing_key=generate_signing_key("r1"),
        )
        # Out of order on purpose: the receiver sorts them by their auth references.
        results = yield self.receiver.store_outliers(
            "12", room_id, [bad, rules, forged, join, create]
        )
        create_id = compute_event_id(create, "12")
        self.assertEqual(set(results), {create_id, join_id, rules_id, bad_id})
        self.assertIsNone(results[rules_id])
        self.assertIsNotNone(results[bad_id])
        stored = yield self.store.events.get_event(rules_id)
        self.assertTrue(stored.outlier)
        self.assertEqual((yield self.store.events.have_events([forged_id])), set())
