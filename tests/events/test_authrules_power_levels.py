"""Tests for the m.room.power_levels authorization rules (10 in v1-v5 and v12, 9 in v6-v11).

@alice:a.example created the room (100; infinite in v12); @mod:a.example (50) sends
most power level changes; @bob:b.example has 0. Each rule has an allowed and a
refused case in the versions where it differs, and hypothesis checks the
arithmetic of the change rules against the spec's wording.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.events.authrules import get_power_level_value
from tests.events.factories import RoomBuilder
from tests.events.test_authrules import AuthAssertions, room_with_members, rule

ALICE, MOD, BOB, CAROL = "@alice:a.example", "@mod:a.example", "@bob:b.example", "@carol:c.example"

VERSIONS = [str(v) for v in range(1, 13)]


def levels_room(version, **extra):
    """A room whose current power levels are ``extra`` plus users alice (v<12), mod 50."""
    users = {MOD: 50} if version == "12" else {ALICE: 100, MOD: 50}
    users.update(extra.pop("users", {}))
    return room_with_members(version, power_levels=dict(extra, users=users))


def changed_levels(room, sender=MOD, **changes):
    """A power levels event from ``sender``: the current content with ``changes`` (None deletes a key)."""
    content = dict(room.state[("m.room.power_levels", "")]["content"])
    for key, value in changes.items():
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
    return room.new_event("m.room.power_levels", sender, "", content)


class IntegerRuleTests(AuthAssertions, unittest.TestCase):
    """v10+: x.1 top-level levels and x.2 events/notifications must be JSON integers."""

    def test_top_level_strings(self):
        """A string ban level is refused from v10 (x.1) and parsed as an integer before."""
        for version in VERSIONS:
            room = levels_room(version)
            event = changed_levels(room, ban="50")
            if int(version) >= 10:
                self.assert_refused(
                    rule(version, "power_levels", "integers"), event, room.auth_state(), version
                )
            else:
                self.assert_allowed(event, room.auth_state(), version)
            self.assert_allowed(changed_levels(room, ban=50), room.auth_state(), version)

    def test_top_level_booleans(self):
        """true is not an integer: refused from v10."""
        for version in ["10", "11", "12"]:
            room = levels_room(version)
            event = changed_levels(room, kick=True)
            self.assert_refused(
                rule(version, "power_levels", "integers"), event, room.auth_state(), version
            )

    def test_events_and_notifications_maps(self):
        """From v10, events and notifications must be objects of integers (x.2)."""
        for version in VERSIONS:
            room = levels_room(version)
            for change in (
                {"events": {"m.room.topic": "10"}},
                {"notifications": {"room": "20"}},
            ):
                event = changed_levels(room, **change)
                if int(version) >= 10:
                    self.assert_refused(
                        rule(version, "power_levels", "maps"), event, room.auth_state(), version
                    )
                else:
                    self.assert_allowed(event, room.auth_state(), version)
            self.assert_allowed(
                changed_levels(room, events={"m.room.topic": 10}), room.auth_state(), version
            )
        for version in ["10", "12"]:
            room = levels_room(version)
            event = changed_levels(room, events=["m.room.topic"])
            self.assert_refused(
                rule(version, "power_levels", "maps"), event, room.auth_state(), version
            )


class UsersRuleTests(AuthAssertions, unittest.TestCase):
    """x.1 (v1-v9) / x.3 (v10+): users maps valid user IDs to integers."""

    def test_invalid_user_id_refused(self):
        """A key that is not a user ID is refused in every version."""
        for version in VERSIONS:
            room = levels_room(version)
            users = dict(room.state[("m.room.power_levels", "")]["content"]["users"], bob=0)
            event = changed_levels(room, users=users)
            self.assert_refused(
                rule(version, "power_levels", "users"), event, room.auth_state(), version
            )

    def test_non_integer_value_refused(self):
        """A value that is no integer (nor, before v10, an integer string) is refused."""
        for version in VERSIONS:
            room = levels_room(version)
            users = dict(
                room.state[("m.room.power_levels", "")]["content"]["users"], **{BOB: "ten"}
            )
            event = changed_levels(room, users=users)
            self.assert_refused(
                rule(version, "power_levels", "users"), event, room.auth_state(), version
            )

    def test_string_value(self):
        """An integer string is accepted before v10 and refused from v10."""
        for version in VERSIONS:
            room = levels_room(version)
            users = dict(
                room.state[("m.room.power_levels", "")]["content"]["users"], **{BOB: " 10 "}
            )
            event = changed_levels(room, users=users)
            if int(version) >= 10:
                self.assert_refused(
                    rule(version, "power_levels", "users"), event, room.auth_state(), version
                )
            else:
                self.assert_allowed(event, room.auth_state(), version)

    def test_float_value(self):
        """A float is accepted (truncated) in v1-v5, which lack strict canonical JSON, and refused from v6."""
        for version in VERSIONS:
            room = levels_room(version)
            users = dict(room.state[("m.room.power_levels", "")]["content"]["users"], **{BOB: 10.5})
            event = changed_levels(room, users=users)
            if int(version) <= 5:
                self.assert_allowed(event, room.auth_state(), version)
            else:
                self.assert_refused(
                    rule(version, "power_levels", "users"), event, room.auth_state(), version
                )


class CreatorsRuleTests(AuthAssertions, unittest.TestCase):
    """10.4 (v12): users must not list a creator."""

    def test_creators_listed_refused(self):
        """Listing the create sender or an additional creator is refused; other users are fine."""
        room = RoomBuilder("12", create_content={"additional_creators": [CAROL]})
        room.join(MOD)
        for creator in (ALICE, CAROL):
            event = changed_levels(room, sender=ALICE, users={creator: 100})
            self.assert_refused("10.4", event, room.auth_state(), "12")
        self.assert_allowed(
            changed_levels(room, sender=ALICE, users={MOD: 100}), room.auth_state(), "12"
        )

    def test_listing_creator_allowed_before_v12(self):
        """Before v12 the creator is listed in users as usual."""
        room = levels_room("11")
        self.assert_allowed(
            changed_levels(room, sender=ALICE, users={ALICE: 100, MOD: 60}), room.auth_state(), "11"
        )

    def test_creators_unlimited(self):
        """v12: a creator may set any level, however high."""
        room = levels_room("12")
        event = changed_levels(
            room, sender=ALICE, users={MOD: 10**9}, ban=10**9, events={"m.room.name": 10**9}
        )
        self.assert_allowed(event, room.auth_state(), "12")


class FirstPowerLevelsTests(AuthAssertions, unittest.TestCase):
    """x.2 (v1-v9) / x.4 (v10-v11) / 10.5 (v12): with no previous power levels event, allow."""

    def test_first_power_levels_unrestricted(self):
        """The first power levels may grant levels above the sender's; a later identical change is refused."""
        for version in VERSIONS:
            room = RoomBuilder(version, power_levels=False)
            content = {"users": {BOB: 1000}, "ban": 1000}
            if version != "12":
                content["users"][ALICE] = 100
            first = room.new_event("m.room.power_levels", ALICE, "", content)
            self.assert_allowed(first, room.auth_state(), version)
            if version == "12":
                continue
            room.send("m.room.power_levels", ALICE, "", {"users": {ALICE: 100}})
            again = room.new_event("m.room.power_levels", ALICE, "", content)
            self.assert_refused(
                rule(version, "power_levels", "top_level", "2"), again, room.auth_state(), version
            )


class TopLevelChangeTests(AuthAssertions, unittest.TestCase):
    """Changes to users_default, events_default, state_default, ban, redact, kick, invite."""

    def test_change_within_power_allowed(self):
        """A change whose old and new values are within the sender's power is allowed."""
        for version in VERSIONS:
            room = levels_room(version, kick=50)
            self.assert_allowed(changed_levels(room, kick=40), room.auth_state(), version)
            self.assert_allowed(changed_levels(room, kick=None), room.auth_state(), version)

    def test_old_value_above_sender_refused(self):
        """.1: changing or removing a level currently above the sender's is refused."""
        for version in VERSIONS:
            room = levels_room(version, ban=60)
            expected = rule(version, "power_levels", "top_level", "1")
            self.assert_refused(expected, changed_levels(room, ban=40), room.auth_state(), version)
            self.assert_refused(
                expected, changed_levels(room, ban=None), room.auth_state(), version
            )

    def test_new_value_above_sender_refused(self):
        """.2: adding or raising a level above the sender's is refused."""
        for version in VERSIONS:
            room = levels_room(version)
            expected = rule(version, "power_levels", "top_level", "2")
            self.assert_refused(
                expected, changed_levels(room, redact=70), room.auth_state(), version
            )
            self.assert_refused(
                expected, changed_levels(room, users_default=51), room.auth_state(), version
            )

    def test_string_and_integer_equal_before_v10(self):
        """Before v10, "60" and 60 are the same level, so rewriting one as the other is no change."""
        for version in ["1", "6", "9"]:
            room = levels_room(version, ban="60")
            self.assert_allowed(changed_levels(room, ban=60), room.auth_state(), version)
            self.assert_refused(
                rule(version, "power_levels", "top_level", "1"),
                changed_levels(room, ban=59),
                room.auth_state(),
                version,
            )


class MappedLevelChangeTests(AuthAssertions, unittest.TestCase):
    """Changes to events (and notifications from v6)."""

    def test_events_changes(self):
        """Old values above the sender's may not change; new values must be within the sender's power."""
        for version in VERSIONS:
            room = levels_room(version, events={"m.room.name": 80, "m.room.topic": 40})
            old = rule(version, "power_levels", "events_old", "1")
            new = rule(version, "power_levels", "events_new", "1")
            state = room.auth_state()
            self.assert_allowed(
                changed_levels(room, events={"m.room.name": 80, "m.room.topic": 50}), state, version
            )
            self.assert_refused(
                old,
                changed_levels(room, events={"m.room.name": 10, "m.room.topic": 40}),
                state,
                version,
            )
            self.assert_refused(
                old, changed_levels(room, events={"m.room.topic": 40}), state, version
            )
            self.assert_refused(
                new,
                changed_levels(
                    room, events={"m.room.name": 80, "m.room.topic": 40, "m.room.avatar": 51}
                ),
                state,
                version,
            )

    def test_notifications_protected_from_v6(self):
        """From v6 notifications levels are protected like events; before, anyone able to send power levels may change them."""
        for version in VERSIONS:
            room = levels_room(version, notifications={"room": 80})
            lowered = changed_levels(room, notifications={"room": 10})
            raised = levels_room(version)
            too_high = changed_levels(raised, notifications={"room": 90})
            if int(version) >= 6:
                self.assert_refused(
                    rule(version, "power_levels", "events_old", "1"),
                    lowered,
                    room.auth_state(),
                    version,
                )
                self.assert_refused(
                    rule(version, "power_levels", "events_new", "1"),
                    too_high,
                    raised.auth_state(),
                    version,
                )
                self.assert_allowed(
                    changed_levels(raised, notifications={"room": 50}), raised.auth_state(), version
                )
            else:
                self.assert_allowed(lowered, room.auth_state(), version)
                self.assert_allowed(too_high, raised.auth_state(), version)


class UserLevelChangeTests(AuthAssertions, unittest.TestCase):
    """Changes to users entries."""

    def users(self, room, **changes):
        users = dict(room.state[("m.room.power_levels", "")]["content"]["users"])
        for user, level in changes.items():
            user = {"alice": ALICE, "mod": MOD, "bob": BOB, "carol": CAROL}[user]
            if level is None:
                users.pop(user, None)
            else:
                users[user] = level
        return users

    def test_others_at_or_above_sender_untouchable(self):
        """users_old: changing or removing another user whose level is >= the sender's is refused."""
        for version in VERSIONS:
            room = levels_room(version, users={CAROL: 50})
            expected = rule(version, "power_levels", "users_old", "1")
            state = room.auth_state()
            self.assert_refused(
                expected, changed_levels(room, users=self.users(room, carol=10)), state, version
            )
            self.assert_refused(
                expected, changed_levels(room, users=self.users(room, carol=None)), state, version
            )
            if version != "12":
                self.assert_refused(
                    expected,
                    changed_levels(room, users=self.users(room, alice=None)),
                    state,
                    version,
                )

    def test_lower_users_and_self(self):
        """The sender may change users below them and lower their own level."""
        for version in VERSIONS:
            room = levels_room(version, users={BOB: 10})
            state = room.auth_state()
            self.assert_allowed(
                changed_levels(room, users=self.users(room, bob=40)), state, version
            )
            self.assert_allowed(
                changed_levels(room, users=self.users(room, bob=None)), state, version
            )
            self.assert_allowed(
                changed_levels(room, users=self.users(room, mod=20)), state, version
            )
            self.assert_allowed(
                changed_levels(room, users=self.users(room, carol=50)), state, version
            )

    def test_new_level_above_sender_refused(self):
        """users_new: granting a level above the sender's, even to themselves, is refused."""
        for version in VERSIONS:
            room = levels_room(version)
            expected = rule(version, "power_levels", "users_new", "1")
            state = room.auth_state()
            self.assert_refused(
                expected, changed_levels(room, users=self.users(room, bob=51)), state, version
            )
            self.assert_refused(
                expected, changed_levels(room, users=self.users(room, mod=51)), state, version
            )

    def test_float_equal_after_truncation(self):
        """v1-v5: 10.7 and 10 are the same level, so rewriting one as the other is no change."""
        room = levels_room("3", users={CAROL: 50.9})
        self.assert_allowed(
            changed_levels(room, users=self.users(room, carol=50)), room.auth_state(), "3"
        )


levels = st.one_of(st.none(), st.integers(min_value=-500, max_value=500))


def arithmetic_room(version, sender_level, key, old):
    """A room where @mod has ``sender_level`` and may send power levels; ``key`` (a user or a top-level name) is ``old``."""
    users = {MOD: sender_level}
    content = {"events": {"m.room.power_levels": -1000}}
    if key.startswith("@") and old is not None:
        users[key] = old
    elif old is not None:
        content[key] = old
    if version != "12":
        users[ALICE] = 1000
    content["users"] = users
    room = RoomBuilder(version, power_levels=content)
    room.join(MOD)
    return room


class PowerLevelArithmeticTests(AuthAssertions, unittest.TestCase):
    """Property tests: the change rules follow the spec's comparisons exactly."""

    @settings(max_examples=150, deadline=None)
    @given(
        version=st.sampled_from(VERSIONS),
        sender_level=st.integers(min_value=-500, max_value=500),
        old=levels,
        new=levels,
    )
    def test_user_level_change(self, version, sender_level, old, new):
        """Changing another user's level: refused if old >= sender (users_old), else if new > sender (users_new)."""
        room = arithmetic_room(version, sender_level, CAROL, old)
        users = dict(room.state[("m.room.power_levels", "")]["content"]["users"])
        users.pop(CAROL, None)
        if new is not None:
            users[CAROL] = new
        event = changed_levels(room, users=users)
        if old != new and old is not None and old >= sender_level:
            self.assert_refused(
                rule(version, "power_levels", "users_old", "1"), event, room.auth_state(), version
            )
        elif old != new and new is not None and new > sender_level:
            self.assert_refused(
                rule(version, "power_levels", "users_new", "1"), event, room.auth_state(), version
            )
        else:
            self.assert_allowed(event, room.auth_state(), version)

    @settings(max_examples=150, deadline=None)
    @given(
        version=st.sampled_from(VERSIONS),
        sender_level=st.integers(min_value=-500, max_value=500),
        key=st.sampled_from(
            ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"]
        ),
        old=levels,
        new=levels,
    )
    def test_top_level_change(self, version, sender_level, key, old, new):
        """Changing a top-level level: refused if old > sender (.1), else if new > sender (.2)."""
        room = arithmetic_room(version, sender_level, key, old)
        event = changed_levels(room, **{key: new})
        if old != new and old is not None and old > sender_level:
            self.assert_refused(
                rule(version, "power_levels", "top_level", "1"), event, room.auth_state(), version
            )
        elif old != new and new is not None and new > sender_level:
            self.assert_refused(
                rule(version, "power_levels", "top_level", "2"), event, room.auth_state(), version
            )
        else:
            self.assert_allowed(event, room.auth_state(), version)

    @settings(max_examples=100, deadline=None)
    @given(
        value=st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
        zeros=st.integers(min_value=0, max_value=3),
        plus=st.booleans(),
        padding=st.sampled_from(["", " ", "\t", "  \n"]),
    )
    def test_string_levels_parse(self, value, zeros, plus, padding):
        """Before v10 any spec-conforming integer string reads as its integer; from v10 it is ignored."""
        sign = "-" if value < 0 else ("+" if plus else "")
        text = f"{padding}{sign}{'0' * zeros}{abs(value)}{padding}"
        self.assertEqual(get_power_level_value({"ban": text}, "ban", 50, "9"), value)
        self.assertEqual(get_power_level_value({"ban": text}, "ban", 50, "10"), 50)
