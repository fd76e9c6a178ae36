"""Tests for mxref.events.builder: events this server builds are well-formed, authorised by the
state they were built against, correctly signed, and cite the right auth and prev events."""

import itertools

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.events.authrules import check_auth
from mxref.events.builder import (
    MAX_PREV_EVENTS,
    SPEC_MAX_AUTH_EVENTS,
    SPEC_MAX_PREV_EVENTS,
    build_create_event,
    build_event,
    depth_after,
    select_auth_events,
    select_prev_events,
)
from mxref.events.canonical import encode_canonical_json
from mxref.events.hashing import (
    check_content_hash,
    compute_event_id,
    compute_reference_hash,
    compute_room_id,
    encode_unpadded_base64,
)
from mxref.events.room_versions import get_room_version
from mxref.events.signing import (
    decode_signing_key_base64,
    encode_verify_key_base64,
    get_verify_key,
    sign_event,
    verify_event_signatures,
)
from mxref.events.validation import validate_pdu_format

HS = "hs.example"
OTHER = "other.example"
ALICE = "@alice:hs.example"
BOB = "@bob:hs.example"
CAROL = "@carol:hs.example"
DAVE = "@dave:other.example"

#: Deterministic keys, so that failures reproduce.
HS_KEY = decode_signing_key_base64("ed25519", "a", encode_unpadded_base64(b"\x01" * 32))
OTHER_KEY = decode_signing_key_base64("ed25519", "b", encode_unpadded_base64(b"\x02" * 32))
IDENTITY_KEY = decode_signing_key_base64("ed25519", "0", encode_unpadded_base64(b"\x03" * 32))
VERIFY_KEYS = {(HS, "ed25519:a"): get_verify_key(HS_KEY), (OTHER, "ed25519:b"): get_verify_key(OTHER_KEY)}


def lookup_key(server_name, key_id):
    return VERIFY_KEYS.get((server_name, key_id))


def counting_random_source():
    """A deterministic stand-in for os.urandom: 0, 1, 2, ... as big-endian bytes."""
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


class Room:
    """A room grown with the builder, keeping the current state and forward extremity.

    Stored events carry ``event_id`` (as mxref stores them); :attr:`pdus` keeps the bare
    PDUs as the builder returned them.
    """

    def __init__(self, room_version, creator=ALICE, server_name=HS, signing_key=HS_KEY, **create_kwargs):
        self.version = get_room_version(room_version)
        self.random_source = counting_random_source()
        self.clock = itertools.count(1000)
        room_id = None if self.version.room_id_from_create_event else "!room:hs.example"
        create, self.room_id = build_create_event(
            room_version=self.version,
            creator=creator,
            content={},
            origin_server_ts=next(self.clock),
            server_name=server_name,
            signing_key=signing_key,
            room_id=room_id,
            random_source=self.random_source,
            **create_kwargs,
        )
        self.create = create
        self.state = {}
        self.pdus = [create]
        self.extremities = []
        self._record(create)

    def reference(self, pdu):
        """The ``prev_events`` entry for ``pdu``: (event_id, depth, reference hashes)."""
        hashes = {"sha256": encode_unpadded_base64(compute_reference_hash(pdu, self.version))}
        return (compute_event_id(pdu, self.version), pdu["depth"], hashes)

    def stored(self, pdu):
        return dict(pdu, event_id=compute_event_id(pdu, self.version))

    def _record(self, pdu):
        if "state_key" in pdu:
            self.state[(pdu["type"], pdu["state_key"])] = self.stored(pdu)
        self.extremities = [self.reference(pdu)]

    def build(self, sender, event_type, content, state_key=None, server_name=HS, signing_key=HS_KEY, **kwargs):
        """Build (but do not record) an event from ``sender`` against the current state."""
        return build_event(
            room_version=self.version,
            room_id=self.room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            state_key=state_key,
            prev_events=self.extremities,
            current_state=self.state,
            origin_server_ts=next(self.clock),
            server_name=server_name,
            signing_key=signing_key,
            random_source=self.random_source,
            **kwargs,
        )

    def send(self, *args, **kwargs):
        """Build an event, check that it is allowed by the current state, and record it."""
        pdu = self.build(*args, **kwargs)
        check_auth(pdu, self.state_for_auth(), self.version)
        self.pdus.append(pdu)
        self._record(pdu)
        return pdu

    def state_for_auth(self):
        state = dict(self.state)
        state[("m.room.create", "")] = self.stored(self.create)
        return state

    def id_of(self, key):
        return self.state[key]["event_id"]

    def auth_ids(self, pdu):
        return [ref if isinstance(ref, str) else ref[0] for ref in pdu["auth_events"]]

    def set_up_basics(self, join_rule="public", users=None):
        """Creator joins, sets power levels and join rules."""
        self.send(ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE)
        if users is None:
            users = {} if self.version.privileged_creators else {ALICE: 100}
        self.send(ALICE, "m.room.power_levels", {"users": users}, state_key="")
        self.send(ALICE, "m.room.join_rules", {"join_rule": join_rule}, state_key="")
        return self


class BuiltEventsMixin:
    """Events built for a room version are valid PDUs, pass the auth rules and verify."""

    room_version = None

    def make_room(self):
        room = Room(self.room_version).set_up_basics()
        room.send(BOB, "m.room.member", {"membership": "join", "displayname": "Bob"}, state_key=BOB)
        room.send(ALICE, "m.room.topic", {"topic": "builders"}, state_key="")
        room.send(BOB, "m.room.message", {"msgtype": "m.text", "body": "hello"})
        message_id = compute_event_id(room.pdus[-1], room.version)
        room.send(ALICE, "m.room.redaction", {}, redacts=message_id)
        room.send(ALICE, "m.room.member", {"membership": "invite"}, state_key=CAROL)
        room.send(ALICE, "m.room.member", {"membership": "leave"}, state_key=BOB)
        return room

    def test_built_events_are_valid_pdus(self):
        """Every event the builder makes passes the room version's PDU format checks."""
        room = self.make_room()
        for pdu in room.pdus:
            validate_pdu_format(pdu, room.version)

    def test_built_events_are_signed_and_hashed(self):
        """Every built event carries a correct content hash and our verifiable signature."""
        room = self.make_room()
        for pdu in room.pdus:
            self.assertTrue(check_content_hash(pdu))
            verify_event_signatures(pdu, room.version, lookup_key)

    def test_built_events_pass_auth_against_their_own_auth_events(self):
        """Each event is allowed by exactly the auth events it cites (plus the create event)."""
        room = self.make_room()
        by_id = {compute_event_id(pdu, room.version): room.stored(pdu) for pdu in room.pdus}
        for pdu in room.pdus[1:]:
            auth_events = [by_id[event_id] for event_id in room.auth_ids(pdu)]
            auth_events.append(by_id[compute_event_id(room.create, room.version)])
            check_auth(pdu, auth_events, room.version)

    def test_event_id_shape(self):
        """v1/v2 events carry a random $opaque:server ID; later versions carry none."""
        room = self.make_room()
        for pdu in room.pdus:
            if room.version.is_event_id_computed:
                self.assertNotIn("event_id", pdu)
            else:
                self.assertRegex(pdu["event_id"], r"^\$[A-Za-z0-9_-]+:hs\.example$")

    def test_references_shape(self):
        """v1/v2 cite [id, {sha256: reference hash}] pairs; later versions plain IDs."""
        room = self.make_room()
        by_id = {compute_event_id(pdu, room.version): pdu for pdu in room.pdus}
        for pdu in room.pdus[1:]:
            for reference in pdu["prev_events"] + pdu["auth_events"]:
                if room.version.is_event_id_computed:
                    self.assertIsInstance(reference, str)
                    self.assertIn(reference, by_id)
                else:
                    event_id, hashes = reference
                    expected = compute_reference_hash(by_id[event_id], room.version)
                    self.assertEqual(hashes, {"sha256": encode_unpadded_base64(expected)})

    def test_redacts_placement(self):
        """Redactions name their target at top level before v11 and in content from v11."""
        room = self.make_room()
        redaction = next(pdu for pdu in room.pdus if pdu["type"] == "m.room.redaction")
        message = next(pdu for pdu in room.pdus if pdu["type"] == "m.room.message")
        target = compute_event_id(message, room.version)
        if room.version.redacts_in_content:
            self.assertEqual(redaction["content"], {"redacts": target})
            self.assertNotIn("redacts", redaction)
        else:
            self.assertEqual(redaction["redacts"], target)
            self.assertEqual(redaction["content"], {})

    def test_create_event(self):
        """The create event is the root: depth 1, nothing cited, room_version and creator set."""
        room = Room(self.room_version)
        create = room.create
        self.assertEqual((create["depth"], create["prev_events"], create["auth_events"]), (1, [], []))
        self.assertEqual(create["content"]["room_version"], room.version.identifier)
        if room.version.implicit_room_creator:
            self.assertNotIn("creator", create["content"])
        else:
            self.assertEqual(create["content"]["creator"], ALICE)
        if room.version.room_id_from_create_event:
            self.assertNotIn("room_id", create)
            self.assertEqual(room.room_id, compute_room_id(create, room.version))
        else:
            self.assertEqual(create["room_id"], room.room_id)
        check_auth(create, [], room.version)
        verify_event_signatures(create, room.version, lookup_key)

    def test_create_event_never_cited_in_v12(self):
        """Room version 12 events never list the create event; earlier ones always do."""
        room = self.make_room()
        create_id = compute_event_id(room.create, room.version)
        for pdu in room.pdus[1:]:
            if room.version.room_id_from_create_event:
                self.assertNotIn(create_id, room.auth_ids(pdu))
            else:
                self.assertEqual(room.auth_ids(pdu)[0], create_id)

    def test_depth_grows_by_one(self):
        """In a linear room each event is one deeper than the one before it."""
        room = self.make_room()
        self.assertEqual([pdu["depth"] for pdu in room.pdus], list(range(1, len(room.pdus) + 1)))


class RoomVersion1BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "1"


class RoomVersion3BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "3"


class RoomVersion4BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "4"


class RoomVersion6BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "6"


class RoomVersion10BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "10"


class RoomVersion11BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "11"


class RoomVersion12BuiltEventsTests(BuiltEventsMixin, unittest.TestCase):
    room_version = "12"


class AuthEventsSelectionTests(unittest.TestCase):
    """The builder cites exactly the auth events the spec's selection names."""

    def assertCites(self, room, pdu, keys):
        self.assertEqual(room.auth_ids(pdu), [room.id_of(key) for key in keys])

    def test_message_cites_create_power_levels_and_sender(self):
        """A message cites the create event, power levels and the sender's membership only."""
        room = Room("10").set_up_basics()
        room.send(ALICE, "m.room.topic", {"topic": "t"}, state_key="")
        pdu = room.send(ALICE, "m.room.message", {"body": "hi"})
        self.assertCites(room, pdu, [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", ALICE)])

    def test_first_join_cites_join_rules_not_missing_membership(self):
        """A first join cites create, power levels and join rules; there is no membership yet."""
        room = Room("10").set_up_basics()
        pdu = room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
        self.assertCites(room, pdu, [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", "")])

    def test_rejoin_cites_own_membership(self):
        """A join after leaving cites the sender's previous membership as well."""
        room = Room("11").set_up_basics()
        room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
        room.send(BOB, "m.room.member", {"membership": "leave"}, state_key=BOB)
        left_id = room.id_of(("m.room.member", BOB))
        pdu = room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
        self.assertEqual(
            room.auth_ids(pdu),
            [room.id_of(("m.room.create", "")), room.id_of(("m.room.power_levels", "")), left_id,
             room.id_of(("m.room.join_rules", ""))],
        )

    def test_invite_cites_sender_target_and_join_rules(self):
        """An invite cites the inviter's membership, the invitee's, and the join rules."""
        room = Room("10").set_up_basics(join_rule="invite")
        room.send(ALICE, "m.room.member", {"membership": "invite"}, state_key=CAROL)
        room.send(CAROL, "m.room.member", {"membership": "leave"}, state_key=CAROL)
        expected = [
            room.id_of(key)
            for key in [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", ALICE),
                        ("m.room.member", CAROL), ("m.room.join_rules", "")]
        ]
        pdu = room.send(ALICE, "m.room.member", {"membership": "invite"}, state_key=CAROL)
        self.assertEqual(room.auth_ids(pdu), expected)

    def test_kick_does_not_cite_join_rules(self):
        """A kick (leave by another user) cites both memberships but not the join rules."""
        room = Room("10").set_up_basics()
        room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
        pdu = room.send(ALICE, "m.room.member", {"membership": "leave"}, state_key=BOB)
        self.assertNotIn(room.id_of(("m.room.join_rules", "")), room.auth_ids(pdu))
        self.assertEqual(len(room.auth_ids(pdu)), 4)

    def test_restricted_join_cites_authorising_member(self):
        """A restricted join cites the member event of join_authorised_via_users_server."""
        room = Room("10").set_up_basics(join_rule="invite")
        room.send(
            ALICE,
            "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!space:hs.example"}]},
            state_key="",
        )
        pdu = room.build(
            DAVE,
            "m.room.member",
            {"membership": "join", "join_authorised_via_users_server": ALICE},
            state_key=DAVE,
            server_name=OTHER,
            signing_key=OTHER_KEY,
        )
        self.assertCites(
            room,
            pdu,
            [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", ""), ("m.room.member", ALICE)],
        )
        # The resident server (ours) countersigns the join, as send_join does.
        countersigned = dict(pdu)
        countersigned["signatures"] = dict(pdu["signatures"])
        countersigned["signatures"].update(sign_event(pdu, HS, HS_KEY, room.version)["signatures"])
        check_auth(countersigned, room.state_for_auth(), room.version)
        verify_event_signatures(countersigned, room.version, lookup_key)

    def test_restricted_join_ignored_before_v8(self):
        """Before room version 8, join_authorised_via_users_server selects nothing."""
        room = Room("7").set_up_basics()
        pdu = room.send(BOB, "m.room.member", {"membership": "join", "join_authorised_via_users_server": ALICE}, state_key=BOB)
        self.assertNotIn(room.id_of(("m.room.member", ALICE)), room.auth_ids(pdu))

    def test_third_party_invite_cites_the_token_event(self):
        """Redeeming a third-party invite cites the m.room.third_party_invite of its token."""
        room = Room("10").set_up_basics(join_rule="invite")
        public_key = encode_verify_key_base64(get_verify_key(IDENTITY_KEY))
        room.send(
            ALICE,
            "m.room.third_party_invite",
            {"display_name": "c...@example.com", "key_validity_url": "https://id.example/isvalid",
             "public_key": public_key},
            state_key="tok123",
        )
        room.send(ALICE, "m.room.third_party_invite", {"display_name": "other"}, state_key="other-token")
        signed = {"mxid": CAROL, "sender": ALICE, "token": "tok123"}
        signature = IDENTITY_KEY.sign(encode_canonical_json(signed)).signature
        signed["signatures"] = {"id.example": {"ed25519:0": encode_unpadded_base64(signature)}}
        content = {"membership": "invite", "third_party_invite": {"display_name": "c...@example.com", "signed": signed}}
        pdu = room.send(ALICE, "m.room.member", content, state_key=CAROL)
        self.assertCites(
            room,
            pdu,
            [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", ALICE),
             ("m.room.join_rules", ""), ("m.room.third_party_invite", "tok123")],
        )

    def test_v12_selection_leaves_out_create(self):
        """In room version 12 a join cites power levels and join rules but not the create event."""
        room = Room("12").set_up_basics()
        pdu = room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
        self.assertCites(room, pdu, [("m.room.power_levels", ""), ("m.room.join_rules", "")])

    def test_v12_additional_creators(self):
        """A v12 create event records additional creators, who may then act with creator power."""
        room = Room("12", additional_creators=[BOB])
        self.assertEqual(room.create["content"]["additional_creators"], [BOB])
        room.set_up_basics()
        room.send(BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
        room.send(BOB, "m.room.power_levels", {"users": {CAROL: 50}}, state_key="")

    def test_selection_reads_only_current_state(self):
        """Unrelated state (topic, name) is never cited, and absent state is skipped."""
        room = Room("10")
        room.send(ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE)
        room.send(ALICE, "m.room.topic", {"topic": "x"}, state_key="")
        pdu = room.send(ALICE, "m.room.name", {"name": "n"}, state_key="")
        self.assertCites(room, pdu, [("m.room.create", ""), ("m.room.member", ALICE)])

    def test_selected_auth_events_within_spec_bound(self):
        """The largest selection (a 3PID invite by a member) stays within the spec's 10."""
        room = Room("10").set_up_basics()
        event = {
            "type": "m.room.member", "sender": ALICE, "state_key": CAROL,
            "content": {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}},
        }
        self.assertLessEqual(len(select_auth_events(event, room.state, room.version)), SPEC_MAX_AUTH_EVENTS)


class DepthTests(unittest.TestCase):
    """The depth of a new event follows its deepest prev event, within the version's limit."""

    def test_one_more_than_deepest(self):
        """Depth is one more than the deepest prev event."""
        self.assertEqual(depth_after([3, 9, 4], "10"), 10)

    def test_root_depth(self):
        """With no prev events (the create event) the depth is 1."""
        self.assertEqual(depth_after([], "10"), 1)

    def test_capped_from_v6(self):
        """From v6 the depth stops at 2**53-1 once the room reaches it."""
        limit = 2**53 - 1
        self.assertEqual(depth_after([limit - 1], "6"), limit)
        self.assertEqual(depth_after([limit], "6"), limit)
        self.assertEqual(depth_after([limit], "12"), limit)

    def test_capped_before_v6(self):
        """Before v6 the limit is 2**63-1, so 2**53 is still a valid next depth."""
        self.assertEqual(depth_after([2**53 - 1], "5"), 2**53)
        self.assertEqual(depth_after([2**63 - 1], "1"), 2**63 - 1)

    def test_built_event_depth_is_capped(self):
        """A built event whose prev event sits at the limit gets the limit, and still validates."""
        room = Room("11").set_up_basics()
        room.extremities = [(room.extremities[0][0], 2**53 - 1)]
        pdu = room.send(ALICE, "m.room.message", {"body": "deep"})
        self.assertEqual(pdu["depth"], 2**53 - 1)
        validate_pdu_format(pdu, room.version)


class PrevEventsTests(unittest.TestCase):
    """The builder cites the deepest forward extremities, at most MAX_PREV_EVENTS of them."""

    def test_bound_within_spec(self):
        """Our bound is below the spec's 20."""
        self.assertLessEqual(MAX_PREV_EVENTS, SPEC_MAX_PREV_EVENTS)

    def test_keeps_deepest(self):
        """Of 15 extremities the 10 deepest are cited, deepest first."""
        extremities = [(f"$e{i:02d}", depth) for i, depth in enumerate([5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11, 0, 12, 13, 14])]
        chosen = select_prev_events(extremities)
        self.assertEqual([depth for _, depth in chosen], [14, 13, 12, 11, 10, 9, 8, 7, 6, 5])

    def test_few_extremities_all_kept(self):
        """With fewer extremities than the bound all are cited."""
        self.assertEqual(len(select_prev_events([("$a", 1), ("$b", 1)])), 2)

    @given(st.lists(st.tuples(st.text(min_size=1, max_size=5), st.integers(1, 50)), unique_by=lambda e: e[0], max_size=40))
    def test_no_dropped_extremity_is_deeper(self, extremities):
        """No extremity left out is deeper than one cited, and the input order does not matter."""
        chosen = select_prev_events(extremities)
        self.assertEqual(len(chosen), min(len(extremities), MAX_PREV_EVENTS))
        dropped = [e for e in extremities if e not in chosen]
        if chosen and dropped:
            self.assertLessEqual(max(d for _, d in dropped), min(d for _, d in chosen))
        self.assertEqual(chosen, select_prev_events(list(reversed(extremities))))

    def test_built_event_cites_bounded_prev_events(self):
        """An event built on 25 extremities cites 10 of them and its depth follows the deepest."""
        room = Room("10").set_up_basics()
        base = room.extremities[0]
        extremities = [base] + [(f"$fork{i}", base[1] - (i % 3)) for i in range(24)]
        pdu = build_event(
            room_version="10", room_id=room.room_id, sender=ALICE, event_type="m.room.message",
            content={"body": "merge"}, prev_events=extremities, current_state=room.state,
            origin_server_ts=5, server_name=HS, signing_key=HS_KEY,
        )
        self.assertEqual(len(pdu["prev_events"]), MAX_PREV_EVENTS)
        self.assertIn(base[0], pdu["prev_events"])
        self.assertEqual(pdu["depth"], base[1] + 1)
        validate_pdu_format(pdu, "10")

    def test_v1_prev_events_need_hashes(self):
        """Room version 1 refuses prev events given without their reference hashes."""
        room = Room("1").set_up_basics()
        with self.assertRaises(ValueError):
            build_event(
                room_version="1", room_id=room.room_id, sender=ALICE, event_type="m.room.message",
                content={}, prev_events=[room.extremities[0][:2]], current_state=room.state,
                origin_server_ts=5, server_name=HS, signing_key=HS_KEY,
            )


class BuilderInputTests(unittest.TestCase):
    """The builder refuses what it cannot build and leaves its inputs alone."""

    def test_create_room_id_per_version(self):
        """v1-11 create events need a room_id; v12 ones must not be given one."""
        common = dict(creator=ALICE, content={}, origin_server_ts=1, server_name=HS, signing_key=HS_KEY)
        with self.assertRaises(ValueError):
            build_create_event(room_version="11", **common)
        with self.assertRaises(ValueError):
            build_create_event(room_version="12", room_id="!r:hs.example", **common)
        with self.assertRaises(ValueError):
            build_create_event(room_version="11", room_id="!r:hs.example", additional_creators=[BOB], **common)

    def test_create_not_through_build_event(self):
        """build_event refuses m.room.create and events without prev events."""
        room = Room("10")
        with self.assertRaises(ValueError):
            room.build(ALICE, "m.room.create", {}, state_key="")
        with self.assertRaises(ValueError):
            build_event(
                room_version="10", room_id=room.room_id, sender=ALICE, event_type="m.room.message",
                content={}, prev_events=[], current_state=room.state, origin_server_ts=5,
                server_name=HS, signing_key=HS_KEY,
            )

    def test_content_not_modified(self):
        """The caller's content dict is copied, not changed (even when redacts is added)."""
        room = Room("11").set_up_basics()
        content = {"reason": "spam"}
        room.send(ALICE, "m.room.redaction", content, redacts="$target")
        self.assertEqual(content, {"reason": "spam"})

    def test_unsigned_is_attached_but_not_signed(self):
        """unsigned data rides along without affecting the hash or the signature."""
        room = Room("10").set_up_basics()
        pdu = room.send(ALICE, "m.room.message", {"body": "x"}, unsigned={"transaction_id": "t1"})
        self.assertEqual(pdu["unsigned"], {"transaction_id": "t1"})
        pdu["unsigned"] = {"age": 5}
        self.assertTrue(check_content_hash(pdu))
        verify_event_signatures(pdu, room.version, lookup_key)

    def test_v1_event_ids_come_from_random_source(self):
        """v1 event IDs are built from the injected random source, so tests are repeatable."""
        first = Room("1")
        second = Room("1")
        self.assertEqual(first.create["event_id"], second.create["event_id"])
        self.assertEqual(first.create["event_id"], "$" + encode_unpadded_base64(bytes(18), urlsafe=True) + ":hs.example")

    def test_signature_covers_built_content(self):
        """Changing a built event's content breaks its content hash (the signature covers the hash)."""
        room = Room("10").set_up_basics()
        pdu = room.send(ALICE, "m.room.message", {"body": "original"})
        tampered = dict(pdu, content={"body": "changed"})
        self.assertFalse(check_content_hash(tampered))
