"""Tests for mxref.events.authrules: create, auth events, federation, aliases, redaction,
sender-joined, third-party invite events, required power level, state keys, the auth
events selection and the power helpers.

Every rule has an allowed and a refused case, in each room version where the rule
(or its number) differs; refusals are checked by the rule number that the spec
gives in that version (transcribed below, independently of the module's own
counting). Membership rules are in ``test_authrules_membership``, power level
rules in ``test_authrules_power_levels``.
"""

import math

from twisted.trial import unittest

from mxref.errors import AuthError
from mxref.events.authrules import (
    auth_types_for_event,
    check_auth,
    check_auth_events_list,
    get_creators,
    get_power_level_value,
    get_required_power_level,
    get_user_power_level,
    is_power_event,
)
from tests.events.factories import RoomBuilder, make_event

ALL_VERSIONS = [str(v) for v in range(1, 13)]

# The spec's top-level rule numbers, transcribed from each room version page.
_V1_SECTIONS = {
    "create": "1",
    "auth_events": "2",
    "federate": "3",
    "aliases": "4",
    "member": "5",
    "sender_joined": "6",
    "third_party_invite": "7",
    "required_power": "8",
    "state_key": "9",
    "power_levels": "10",
    "redaction": "11",
}
_V3_SECTIONS = {k: v for k, v in _V1_SECTIONS.items() if k != "redaction"}
_V6_SECTIONS = {
    "create": "1",
    "auth_events": "2",
    "federate": "3",
    "member": "4",
    "sender_joined": "5",
    "third_party_invite": "6",
    "required_power": "7",
    "state_key": "8",
    "power_levels": "9",
}
_V12_SECTIONS = {
    "create": "1",
    "room_id": "2",
    "auth_events": "3",
    "federate": "4",
    "member": "5",
    "sender_joined": "6",
    "third_party_invite": "7",
    "required_power": "8",
    "state_key": "9",
    "power_levels": "10",
}
# Sub-rules of the membership rule.
_V1_MEMBER = {"join": "2", "invite": "3", "leave": "4", "ban": "5", "unknown": "6"}
_V7_MEMBER = {"join": "2", "invite": "3", "leave": "4", "ban": "5", "knock": "6", "unknown": "7"}
_V8_MEMBER = {
    "authoriser_signed": "2",
    "join": "3",
    "invite": "4",
    "leave": "5",
    "ban": "6",
    "knock": "7",
    "unknown": "8",
}
# Sub-rules of membership "join".
_V1_JOIN = {
    "first": "1",
    "other_user": "2",
    "banned": "3",
    "invite": "4",
    "public": "5",
    "otherwise": "6",
}
_V8_JOIN = {
    "first": "1",
    "other_user": "2",
    "banned": "3",
    "invite": "4",
    "restricted": "5",
    "public": "6",
    "otherwise": "7",
}
# Sub-rules of m.room.power_levels.
_V1_LEVELS = {
    "users": "1",
    "first": "2",
    "top_level": "3",
    "events_old": "4",
    "events_new": "5",
    "users_old": "6",
    "users_new": "7",
}
_V10_LEVELS = {
    "integers": "1",
    "maps": "2",
    "users": "3",
    "first": "4",
    "top_level": "5",
    "events_old": "6",
    "events_new": "7",
    "users_old": "8",
    "users_new": "9",
}
_V12_LEVELS = {
    "integers": "1",
    "maps": "2",
    "users": "3",
    "creators": "4",
    "first": "5",
    "top_level": "6",
    "events_old": "7",
    "events_new": "8",
    "users_old": "9",
    "users_new": "10",
}


def _numbering(version):
    v = int(version)
    sections = _V1_SECTIONS if v <= 2 else _V3_SECTIONS if v <= 5 else _V6_SECTIONS
    if v == 12:
        sections = _V12_SECTIONS
    member = _V1_MEMBER if v <= 6 else _V7_MEMBER if v == 7 else _V8_MEMBER
    join = _V1_JOIN if v <= 7 else _V8_JOIN
    levels = _V1_LEVELS if v <= 9 else _V10_LEVELS if v <= 11 else _V12_LEVELS
    return sections, member, join, levels


def rule(version, section, *parts) -> str:
    """The spec's number of a rule in ``version``: ``rule("10", "member", "join", "banned")`` is 4.3.3.

    Named parts are looked up in the transcribed tables; other parts are literal.
    """
    sections, member, join, levels = _numbering(version)
    numbers = [sections[section]]
    tables = {"member": [member, join], "power_levels": [levels]}.get(section, [])
    for index, part in enumerate(parts):
        table = tables[index] if index < len(tables) else {}
        numbers.append(table.get(part, part))
    return ".".join(numbers)


class AuthAssertions:
    """Assertions shared by the auth rule tests."""

    def assert_allowed(self, event, state, version):
        try:
            check_auth(event, state, version)
        except AuthError as error:
            self.fail(f"v{version}: expected allowed, got {error.msg}")

    def assert_refused(self, expected_rule, event, state, version):
        error = self.assertRaises(AuthError, check_auth, event, state, version)
        self.assertEqual(error.rule, expected_rule, f"v{version}: {error.msg}")
        return error


def room_with_members(version, join_rule="public", mod_level=50, **kwargs):
    """A room where @alice (creator), @mod (power ``mod_level``) and @bob (0) are joined."""
    if int(version) >= 12:
        users = {"@mod:a.example": mod_level}
    else:
        users = {"@alice:a.example": 100, "@mod:a.example": mod_level}
    room = RoomBuilder(version, power_levels=kwargs.pop("power_levels", {"users": users}), **kwargs)
    room.join("@mod:a.example")
    room.join("@bob:b.example")
    if join_rule != "public":
        room.send("m.room.join_rules", "@alice:a.example", "", {"join_rule": join_rule})
    return room


class RuleNumberTableTests(unittest.TestCase):
    """The transcribed numbering matches the spec's examples."""

    def test_examples(self):
        """Membership join/banned is 5.2.3 in v1, 4.3.3 in v10 and 5.3.3 in v12."""
        self.assertEqual(rule("1", "member", "join", "banned"), "5.2.3")
        self.assertEqual(rule("10", "member", "join", "banned"), "4.3.3")
        self.assertEqual(rule("12", "member", "join", "banned"), "5.3.3")
        self.assertEqual(rule("12", "power_levels", "creators"), "10.4")


class ReplayTests(AuthAssertions, unittest.TestCase):
    """A freshly created room passes its own auth rules in every version."""

    def test_room_setup_passes(self):
        """Create, creator join, power levels and join rules are each allowed by the state before them."""
        for version in ALL_VERSIONS:
            room = room_with_members(version)
            state = {("m.room.create", ""): room.create_event}
            for event in room.events:
                self.assert_allowed(event, state, version)
                state[(event["type"], event["state_key"])] = event

    def test_setup_passes_against_own_auth_events(self):
        """Each event of a fresh room passes the auth_events list rules and auth against its auth events."""
        for version in ALL_VERSIONS:
            room = room_with_members(version)
            by_id = {event["event_id"]: event for event in room.events}
            for event in room.events:
                ids = [ref[0] if isinstance(ref, list) else ref for ref in event["auth_events"]]
                auth_events = [by_id[event_id] for event_id in ids]
                check_auth_events_list(event, auth_events, version)
                self.assert_allowed(event, auth_events + [room.create_event], version)

    def test_string_room_version_or_object(self):
        """check_auth accepts a RoomVersion as well as an identifier."""
        from mxref.events.room_versions import get_room_version

        room = room_with_members("10")
        event = room.new_event("m.room.message", "@bob:b.example", content={"body": "hi"})
        check_auth(event, room.auth_state(), get_room_version("10"))


class CreateRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 1: the m.room.create event."""

    def create(self, version, content=None, **fields):
        base = {"room_version": version}
        if int(version) <= 10:
            base["creator"] = "@alice:a.example"
        base.update(content or {})
        if int(version) < 12:
            fields.setdefault("room_id", "!r:a.example")
        return make_event(
            "m.room.create", "@alice:a.example", "", base, room_version=version, **fields
        )

    def test_valid_create_allowed(self):
        """A well-formed create event is allowed without any state."""
        for version in ALL_VERSIONS:
            self.assert_allowed(self.create(version), [], version)

    def test_prev_events_refused(self):
        """1.1: a create event with prev_events is refused."""
        for version in ALL_VERSIONS:
            event = self.create(version, prev_events=["$earlier:a.example"])
            self.assert_refused("1.1", event, [], version)

    def test_room_id_domain(self):
        """1.2 (v1-v11): the room ID's domain must be the sender's; a foreign room ID is refused."""
        for version in ALL_VERSIONS[:11]:
            self.assert_allowed(self.create(version, room_id="!r:a.example"), [], version)
            self.assert_refused("1.2", self.create(version, room_id="!r:b.example"), [], version)

    def test_v12_room_id_forbidden(self):
        """1.2 (v12): a create event carrying any room_id is refused."""
        event = self.create("12")
        self.assertNotIn("room_id", event)
        self.assert_allowed(event, [], "12")
        event["room_id"] = "!" + event["event_id"][1:]
        self.assert_refused("1.2", event, [], "12")

    def test_room_version_recognised(self):
        """1.3: an unknown content.room_version is refused; a known one or none is allowed."""
        for version in ALL_VERSIONS:
            self.assert_refused("1.3", self.create(version, {"room_version": "999"}), [], version)
            self.assert_refused("1.3", self.create(version, {"room_version": 12}), [], version)
            event = self.create(version)
            del event["content"]["room_version"]
            self.assert_allowed(event, [], version)

    def test_creator_required_until_v10(self):
        """1.4 (v1-v10): no content.creator is refused; from v11 it is not needed."""
        for version in ALL_VERSIONS:
            event = self.create(version)
            event["content"].pop("creator", None)
            if int(version) <= 10:
                self.assert_refused("1.4", event, [], version)
            else:
                self.assert_allowed(event, [], version)

    def test_v12_additional_creators(self):
        """1.4 (v12): additional_creators must be an array of valid user IDs."""
        good = self.create("12", {"additional_creators": ["@bob:b.example", "@carol:c.example"]})
        self.assert_allowed(good, [], "12")
        for bad in (["not a user"], "@bob:b.example", [42], ["@bob"]):
            event = self.create("12", {"additional_creators": bad})
            self.assert_refused("1.4", event, [], "12")

    def test_v11_additional_creators_ignored(self):
        """Before v12 additional_creators means nothing to the create rules."""
        self.assert_allowed(self.create("11", {"additional_creators": "junk"}), [], "11")


class RoomIdRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 2 of v12: the room ID names the room's (accepted) create event."""

    def test_room_id_names_create_event(self):
        """An event whose room_id is the create event's ID with '!' is allowed; another room_id is refused."""
        room = room_with_members("12")
        event = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
        self.assert_allowed(event, room.auth_state(), "12")
        event["room_id"] = "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        self.assert_refused("2", event, room.auth_state(), "12")

    def test_missing_create_event(self):
        """Without the create event among the given events a v12 event is refused by rule 2."""
        room = room_with_members("12")
        event = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
        state = {k: v for k, v in room.state.items() if k[0] != "m.room.create"}
        self.assert_refused("2", event, state, "12")

    def test_rejected_create_event(self):
        """check_auth_events_list refuses a v12 event whose create event was rejected (rule 2)."""
        room = room_with_members("12")
        event = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
        auth_events = [
            room.state[("m.room.power_levels", "")],
            room.state[("m.room.member", "@bob:b.example")],
        ]
        check_auth_events_list(event, auth_events, "12")
        create_id = room.create_event["event_id"]
        error = self.assertRaises(
            AuthError, check_auth_events_list, event, auth_events, "12", lambda i: i == create_id
        )
        self.assertEqual(error.rule, "2")


class AuthEventsListTests(unittest.TestCase):
    """Rules 2.1-2.5 (3.x in v12): the event's own auth_events list."""

    VERSIONS = ALL_VERSIONS

    def setup(self, version):
        room = room_with_members(version)
        event = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
        selected = [room.state[k] for k in auth_types_for_event(event, version) if k in room.state]
        return room, event, selected

    def assert_list_refused(self, expected_rule, event, auth_events, version, **kwargs):
        error = self.assertRaises(
            AuthError, check_auth_events_list, event, auth_events, version, **kwargs
        )
        self.assertEqual(error.rule, expected_rule, f"v{version}: {error.msg}")

    def test_selected_entries_allowed(self):
        """The events picked by the auth events selection pass."""
        for version in self.VERSIONS:
            _room, event, selected = self.setup(version)
            check_auth_events_list(event, selected, version)

    def test_duplicates_refused(self):
        """x.1: two entries for the same (type, state_key) are refused."""
        for version in self.VERSIONS:
            room, event, selected = self.setup(version)
            older_pl = room.send("m.room.power_levels", "@alice:a.example", "", {"users": {}})
            self.assert_list_refused(
                rule(version, "auth_events", "1"), event, selected + [older_pl], version
            )

    def test_unselectable_entry_refused(self):
        """x.2: a join rules event in a message's auth events is refused."""
        for version in self.VERSIONS:
            room, event, selected = self.setup(version)
            extra = room.state[("m.room.join_rules", "")]
            self.assert_list_refused(
                rule(version, "auth_events", "2"), event, selected + [extra], version
            )

    def test_v12_create_event_not_selectable(self):
        """3.2 (v12): listing the create event is refused."""
        room, event, selected = self.setup("12")
        self.assert_list_refused("3.2", event, selected + [room.create_event], "12")

    def test_rejected_entry_refused(self):
        """x.3: an entry that was itself rejected is refused."""
        for version in self.VERSIONS:
            _room, event, selected = self.setup(version)
            rejected_id = selected[-1]["event_id"]
            self.assert_list_refused(
                rule(version, "auth_events", "3"),
                event,
                selected,
                version,
                is_rejected=lambda event_id: event_id == rejected_id,
            )

    def test_missing_create_refused_before_v12(self):
        """x.4 (v1-v11): no create event among the entries is refused."""
        for version in self.VERSIONS[:-1]:
            _room, event, selected = self.setup(version)
            without_create = [e for e in selected if e["type"] != "m.room.create"]
            self.assert_list_refused("2.4", event, without_create, version)

    def test_other_room_refused(self):
        """x.5 (3.5 in v12): an entry from another room is refused."""
        for version in self.VERSIONS:
            _room, event, selected = self.setup(version)
            foreign = dict(selected[-1], room_id="!other:b.example")
            expected = "3.5" if version == "12" else "2.5"
            self.assert_list_refused(expected, event, selected[:-1] + [foreign], version)

    def test_create_event_exempt(self):
        """A create event is decided by rule 1 alone; its auth_events list is not examined."""
        room = RoomBuilder("10")
        check_auth_events_list(room.create_event, [], "10")

    def test_check_auth_needs_create_before_v12(self):
        """check_auth refuses (2.4) when the given state has no create event (v1-v11)."""
        for version in self.VERSIONS[:-1]:
            room, event, _selected = self.setup(version)
            state = {k: v for k, v in room.state.items() if k[0] != "m.room.create"}
            error = self.assertRaises(AuthError, check_auth, event, state, version)
            self.assertEqual(error.rule, "2.4")

    def test_check_auth_other_room(self):
        """check_auth refuses (2.5 / 3.5) when a state event it uses is from another room."""
        for version in self.VERSIONS:
            room, event, _selected = self.setup(version)
            state = room.auth_state()
            key = ("m.room.member", "@bob:b.example")
            state[key] = dict(state[key], room_id="!elsewhere:b.example")
            error = self.assertRaises(AuthError, check_auth, event, state, version)
            self.assertEqual(error.rule, rule(version, "auth_events", "5"))


class FederateRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 3 (4 in v12): m.federate false keeps other servers out."""

    VERSIONS = ALL_VERSIONS

    def test_local_users_allowed(self):
        """In an unfederated room, a user on the creator's server may join."""
        for version in self.VERSIONS:
            room = RoomBuilder(version, create_content={"m.federate": False})
            event = room.new_event(
                "m.room.member", "@dave:a.example", "@dave:a.example", {"membership": "join"}
            )
            self.assert_allowed(event, room.auth_state(), version)

    def test_remote_users_refused(self):
        """In an unfederated room, a user from another server is refused, whatever the event."""
        for version in self.VERSIONS:
            room = RoomBuilder(version, create_content={"m.federate": False})
            event = room.new_event(
                "m.room.member", "@bob:b.example", "@bob:b.example", {"membership": "join"}
            )
            self.assert_refused(rule(version, "federate"), event, room.auth_state(), version)

    def test_federate_true_allows_remote(self):
        """With m.federate true (or absent) a remote user may join a public room."""
        for version in self.VERSIONS:
            room = RoomBuilder(version, create_content={"m.federate": True})
            event = room.new_event(
                "m.room.member", "@bob:b.example", "@bob:b.example", {"membership": "join"}
            )
            self.assert_allowed(event, room.auth_state(), version)


class AliasesRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 4 of v1-v5: m.room.aliases belongs to the server named by its state_key."""

    def test_own_server_allowed_even_for_non_members(self):
        """v1-v5: any user may set the aliases of their own server, even without joining."""
        for version in ["1", "3", "5"]:
            room = room_with_members(version)
            event = room.new_event(
                "m.room.aliases", "@carol:c.example", "c.example", {"aliases": []}
            )
            self.assert_allowed(event, room.auth_state(), version)

    def test_other_server_refused(self):
        """4.2 (v1-v5): a state_key that is not the sender's domain is refused."""
        for version in ["1", "3", "5"]:
            room = room_with_members(version)
            event = room.new_event(
                "m.room.aliases", "@alice:a.example", "b.example", {"aliases": []}
            )
            self.assert_refused("4.2", event, room.auth_state(), version)

    def test_no_state_key_refused(self):
        """4.1 (v1-v5): an m.room.aliases event without state_key is refused."""
        for version in ["1", "3"]:
            room = room_with_members(version)
            event = room.new_event("m.room.aliases", "@alice:a.example", None, {"aliases": []})
            self.assert_refused("4.1", event, room.auth_state(), version)

    def test_v6_aliases_are_ordinary_state(self):
        """From v6, m.room.aliases needs membership and the state power level like any state."""
        for version in ["6", "10", "12"]:
            room = room_with_members(version)
            stranger = room.new_event(
                "m.room.aliases", "@carol:c.example", "c.example", {"aliases": []}
            )
            self.assert_refused(
                rule(version, "sender_joined"), stranger, room.auth_state(), version
            )
            member = room.new_event(
                "m.room.aliases", "@bob:b.example", "b.example", {"aliases": []}
            )
            self.assert_refused(rule(version, "required_power"), member, room.auth_state(), version)
            moderator = room.new_event(
                "m.room.aliases", "@mod:a.example", "b.example", {"aliases": []}
            )
            self.assert_allowed(moderator, room.auth_state(), version)


class SenderJoinedRuleTests(AuthAssertions, unittest.TestCase):
    """Rule "the sender's current membership is not join": 6 in v1-v5 and v12, 5 in v6-v11."""

    def test_member_allowed_others_refused(self):
        """A joined user may send a message; a user who left, was invited or never joined may not."""
        for version in ALL_VERSIONS:
            room = room_with_members(version)
            joined = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
            self.assert_allowed(joined, room.auth_state(), version)
            room.member("@carol:c.example", "invite", sender="@alice:a.example")
            invited = room.new_event("m.room.message", "@carol:c.example", content={"body": "x"})
            self.assert_refused(rule(version, "sender_joined"), invited, room.auth_state(), version)
            room.member("@bob:b.example", "leave")
            left = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
            self.assert_refused(rule(version, "sender_joined"), left, room.auth_state(), version)


class ThirdPartyInviteEventRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 7 (6 in v6-v11): m.room.third_party_invite needs exactly the invite level."""

    def test_invite_level_decides(self):
        """A member at the invite level may send it, even below state_default; below it is refused."""
        for version in ALL_VERSIONS:
            levels = {"users": {"@mod:a.example": 50}, "invite": 20, "users_default": 20}
            if version != "12":
                levels["users"]["@alice:a.example"] = 100
            room = room_with_members(version, power_levels=levels)
            allowed = room.new_event(
                "m.room.third_party_invite", "@bob:b.example", "tok", {"display_name": "x"}
            )
            self.assert_allowed(allowed, room.auth_state(), version)
            room.send("m.room.power_levels", "@alice:a.example", "", dict(levels, invite=30))
            refused = room.new_event(
                "m.room.third_party_invite", "@bob:b.example", "tok", {"display_name": "x"}
            )
            self.assert_refused(
                rule(version, "third_party_invite", "1"), refused, room.auth_state(), version
            )


class RequiredPowerLevelRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 8 (7 in v6-v11): the event type's required power level."""

    VERSIONS = ALL_VERSIONS

    def test_state_default_and_events_default(self):
        """A level-0 member may send messages but not state (state_default 50)."""
        for version in self.VERSIONS:
            room = room_with_members(version)
            message = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
            self.assert_allowed(message, room.auth_state(), version)
            topic = room.new_event("m.room.topic", "@bob:b.example", "", {"topic": "x"})
            self.assert_refused(rule(version, "required_power"), topic, room.auth_state(), version)

    def test_events_override(self):
        """events[type] overrides the defaults, in both directions."""
        for version in self.VERSIONS:
            users = (
                {"@mod:a.example": 50}
                if version == "12"
                else {"@alice:a.example": 100, "@mod:a.example": 50}
            )
            levels = {"users": users, "events": {"m.room.topic": 0, "m.room.message": 10}}
            room = room_with_members(version, power_levels=levels)
            topic = room.new_event("m.room.topic", "@bob:b.example", "", {"topic": "x"})
            self.assert_allowed(topic, room.auth_state(), version)
            message = room.new_event("m.room.message", "@bob:b.example", content={"body": "x"})
            self.assert_refused(
                rule(version, "required_power"), message, room.auth_state(), version
            )

    def test_no_power_levels_event(self):
        """Without power levels the creator has 100 (v1-v11) or infinite power (v12); others 0 < state_default 50."""
        for version in self.VERSIONS:
            room = RoomBuilder(version, power_levels=False)
            room.join("@bob:b.example")
            creator_topic = room.new_event("m.room.topic", "@alice:a.example", "", {"topic": "x"})
            self.assert_allowed(creator_topic, room.auth_state(), version)
            bob_topic = room.new_event("m.room.topic", "@bob:b.example", "", {"topic": "x"})
            self.assert_refused(
                rule(version, "required_power"), bob_topic, room.auth_state(), version
            )


class StateKeyRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 9 (8 in v6-v11): a state_key starting with '@' must be the sender."""

    def test_own_and_other_user_state_keys(self):
        """The moderator may set state keyed by their own user ID, not by another user's."""
        for version in ALL_VERSIONS:
            room = room_with_members(version)
            own = room.new_event("org.example.status", "@mod:a.example", "@mod:a.example", {})
            self.assert_allowed(own, room.auth_state(), version)
            other = room.new_event("org.example.status", "@mod:a.example", "@bob:b.example", {})
            self.assert_refused(rule(version, "state_key"), other, room.auth_state(), version)
            not_user = room.new_event("org.example.status", "@mod:a.example", "bob", {})
            self.assert_allowed(not_user, room.auth_state(), version)


class RedactionRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 11 of v1/v2: m.room.redaction needs the redact level or the same server."""

    def test_v1_redact_level(self):
        """v1/v2: a sender at the redact level may redact anything."""
        for version in ["1", "2"]:
            room = room_with_members(version)
            event = room.new_event("m.room.redaction", "@mod:a.example", redacts="$x:b.example")
            self.assert_allowed(event, room.auth_state(), version)

    def test_v1_same_server(self):
        """v1/v2: below the redact level, redacting an event whose ID is from the redaction's server is allowed."""
        for version in ["1", "2"]:
            room = room_with_members(version)
            event = room.new_event("m.room.redaction", "@bob:b.example", redacts="$x:b.example")
            self.assert_allowed(event, room.auth_state(), version)

    def test_v1_other_server_refused(self):
        """11.3 (v1/v2): below the redact level, an event from another server may not be redacted."""
        for version in ["1", "2"]:
            room = room_with_members(version)
            event = room.new_event("m.room.redaction", "@bob:b.example", redacts="$x:a.example")
            self.assert_refused("11.3", event, room.auth_state(), version)

    def test_v3_no_redaction_rule(self):
        """From v3 the auth rules ignore the redact level: only the required power level applies."""
        for version in ["3", "6", "10", "11", "12"]:
            room = room_with_members(version)
            event = room.new_event("m.room.redaction", "@bob:b.example", redacts="$xyz")
            self.assert_allowed(event, room.auth_state(), version)


class AuthEventsSelectionTests(unittest.TestCase):
    """Server-Server API, "Auth events selection"."""

    def test_create_selects_nothing(self):
        """The create event has no auth events."""
        room = RoomBuilder("10")
        self.assertEqual(auth_types_for_event(room.create_event, "10"), [])

    def test_message(self):
        """A message needs create, power levels and the sender's membership; v12 drops create."""
        event = {"type": "m.room.message", "sender": "@bob:b.example", "content": {}}
        expected = [("m.room.power_levels", ""), ("m.room.member", "@bob:b.example")]
        self.assertEqual(auth_types_for_event(event, "11"), [("m.room.create", "")] + expected)
        self.assertEqual(auth_types_for_event(event, "12"), expected)

    def test_membership(self):
        """A kick needs the target's membership and no join rules; a join or knock needs join rules."""
        kick = {
            "type": "m.room.member",
            "sender": "@a:a",
            "state_key": "@b:b",
            "content": {"membership": "leave"},
        }
        self.assertEqual(
            auth_types_for_event(kick, "10"),
            [
                ("m.room.create", ""),
                ("m.room.power_levels", ""),
                ("m.room.member", "@a:a"),
                ("m.room.member", "@b:b"),
            ],
        )
        for membership in ("join", "invite", "knock"):
            event = dict(kick, content={"membership": membership})
            self.assertIn(("m.room.join_rules", ""), auth_types_for_event(event, "10"))

    def test_third_party_invite_token(self):
        """An invite with third_party_invite selects the m.room.third_party_invite named by signed.token."""
        event = {
            "type": "m.room.member",
            "sender": "@a:a",
            "state_key": "@b:b",
            "content": {"membership": "invite", "third_party_invite": {"signed": {"token": "abc"}}},
        }
        self.assertIn(("m.room.third_party_invite", "abc"), auth_types_for_event(event, "1"))
        event["content"]["third_party_invite"] = {}
        self.assertNotIn(
            "m.room.third_party_invite", [t for t, _ in auth_types_for_event(event, "1")]
        )

    def test_authorising_user_from_v8(self):
        """A join with join_authorised_via_users_server selects that user's membership from v8 only."""
        event = {
            "type": "m.room.member",
            "sender": "@b:b",
            "state_key": "@b:b",
            "content": {"membership": "join", "join_authorised_via_users_server": "@a:a"},
        }
        self.assertIn(("m.room.member", "@a:a"), auth_types_for_event(event, "8"))
        self.assertNotIn(("m.room.member", "@a:a"), auth_types_for_event(event, "7"))

    def test_no_duplicates(self):
        """A self-join lists the sender's membership once."""
        event = {
            "type": "m.room.member",
            "sender": "@b:b",
            "state_key": "@b:b",
            "content": {"membership": "join"},
        }
        types = auth_types_for_event(event, "10")
        self.assertEqual(len(types), len(set(types)))


class PowerHelperTests(unittest.TestCase):
    """The power level helpers used by the rules and by state resolution."""

    def test_user_power_level_with_power_levels(self):
        """users[user] wins; others get users_default (default 0)."""
        room = room_with_members(
            "10", power_levels={"users": {"@mod:a.example": 50}, "users_default": 5}
        )
        self.assertEqual(get_user_power_level("@mod:a.example", room.state, "10"), 50)
        self.assertEqual(get_user_power_level("@bob:b.example", room.state, "10"), 5)
        self.assertEqual(get_user_power_level("@bob:b.example", list(room.state.values()), "10"), 5)

    def test_creator_without_power_levels(self):
        """No power levels event: the creator has 100 in v1-v11 (content.creator until v10, sender in v11)."""
        for version in ["1", "10", "11"]:
            room = RoomBuilder(version, power_levels=False)
            self.assertEqual(get_user_power_level("@alice:a.example", room.state, version), 100)
            self.assertEqual(get_user_power_level("@bob:b.example", room.state, version), 0)

    def test_v10_creator_is_content_creator(self):
        """In v10 the creator is content.creator even if someone else sent the create event."""
        room = RoomBuilder("10", power_levels=False, create_content={"creator": "@carol:a.example"})
        self.assertEqual(get_user_power_level("@carol:a.example", room.state, "10"), 100)
        self.assertEqual(get_user_power_level("@alice:a.example", room.state, "10"), 0)

    def test_v12_creators_infinite(self):
        """In v12 the create sender and additional_creators have infinite power, with or without power levels."""
        room = RoomBuilder("12", create_content={"additional_creators": ["@carol:c.example"]})
        state = room.auth_state()
        self.assertEqual(get_user_power_level("@alice:a.example", state, "12"), math.inf)
        self.assertEqual(get_user_power_level("@carol:c.example", state, "12"), math.inf)
        self.assertEqual(get_user_power_level("@bob:b.example", state, "12"), 0)
        bare = RoomBuilder("12", power_levels=False)
        self.assertEqual(
            get_user_power_level("@alice:a.example", bare.auth_state(), "12"), math.inf
        )

    def test_get_creators(self):
        """Creators: content.creator (v1-v10), sender (v11), sender + additional_creators (v12)."""
        create = {
            "type": "m.room.create",
            "sender": "@s:a",
            "state_key": "",
            "content": {"creator": "@c:a", "additional_creators": ["@x:b"]},
        }
        self.assertEqual(get_creators(create, "10"), {"@c:a"})
        self.assertEqual(get_creators(create, "11"), {"@s:a"})
        self.assertEqual(get_creators(create, "12"), {"@s:a", "@x:b"})
        self.assertEqual(get_creators(None, "12"), set())

    def test_required_power_level_defaults(self):
        """Without power levels: state events need 50, others 0; events[type] overrides."""
        self.assertEqual(get_required_power_level("m.room.topic", True, None), 50)
        self.assertEqual(get_required_power_level("m.room.message", False, None), 0)
        content = {"events": {"m.room.topic": 10}, "state_default": 70, "events_default": 3}
        self.assertEqual(get_required_power_level("m.room.topic", True, content), 10)
        self.assertEqual(get_required_power_level("m.room.name", True, content), 70)
        self.assertEqual(get_required_power_level("m.room.message", False, content), 3)
        self.assertEqual(get_required_power_level("m.room.name", True, {"state_default": "20"}), 20)

    def test_power_level_value_parsing(self):
        """Strings parse before v10, floats truncate before v6, other values give the default."""
        content = {"s": " +007 ", "f": 50.9, "i": 42, "b": True, "junk": "1_0", "neg": "-5"}
        self.assertEqual(get_power_level_value(content, "s", 0, "9"), 7)
        self.assertEqual(get_power_level_value(content, "s", 0, "10"), 0)
        self.assertEqual(get_power_level_value(content, "neg", 0, "1"), -5)
        self.assertEqual(get_power_level_value(content, "f", 0, "5"), 50)
        self.assertEqual(get_power_level_value(content, "f", 0, "6"), 0)
        self.assertEqual(get_power_level_value(content, "i", 0, "12"), 42)
        self.assertEqual(get_power_level_value(content, "b", 9, "1"), 9)
        self.assertEqual(get_power_level_value(content, "junk", 9, "1"), 9)
        self.assertEqual(get_power_level_value(content, "missing", 9, "1"), 9)
        self.assertEqual(get_power_level_value(None, "ban", 50, "1"), 50)

    def test_is_power_event(self):
        """Power levels, join rules, create, kicks and bans are power events; self-leaves and joins are not."""

        def member(sender, target, membership):
            return {
                "type": "m.room.member",
                "sender": sender,
                "state_key": target,
                "content": {"membership": membership},
            }

        self.assertTrue(
            is_power_event({"type": "m.room.power_levels", "state_key": "", "content": {}})
        )
        self.assertTrue(
            is_power_event({"type": "m.room.join_rules", "state_key": "", "content": {}})
        )
        self.assertTrue(is_power_event({"type": "m.room.create", "state_key": "", "content": {}}))
        self.assertTrue(is_power_event(member("@a:a", "@b:b", "leave")))
        self.assertTrue(is_power_event(member("@a:a", "@b:b", "ban")))
        self.assertFalse(is_power_event(member("@b:b", "@b:b", "leave")))
        self.assertFalse(is_power_event(member("@a:a", "@b:b", "invite")))
        self.assertFalse(is_power_event({"type": "m.room.topic", "state_key": "", "content": {}}))
        self.assertFalse(is_power_event({"type": "m.room.power_levels", "content": {}}))
