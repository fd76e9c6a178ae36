"""Tests for the m.room.member authorization rules of room versions 1 to 12.

Cast: @alice:a.example created the room (power 100; infinite in v12), @mod:a.example
has 50, @bob:b.example has 0; all three are joined. @carol:c.example and
@dave:d.example are outsiders. Each rule has an allowed and a refused case in the
versions where it differs; refusals are checked by the spec's rule number.
"""

from signedjson.key import generate_signing_key
from signedjson.sign import sign_json
from twisted.trial import unittest
from unpaddedbase64 import encode_base64

from tests.events.factories import RoomBuilder
from tests.events.test_authrules import AuthAssertions, room_with_members, rule

ALICE, MOD, BOB = "@alice:a.example", "@mod:a.example", "@bob:b.example"
CAROL, DAVE = "@carol:c.example", "@dave:d.example"

COMMON = [str(v) for v in range(1, 13)]
KNOCKING = ["7", "8", "10", "11", "12"]
RESTRICTED = ["8", "9", "10", "11", "12"]


def membership_event(room, target, membership, sender=None, **content):
    """A membership event (not added to the room) for ``target``, sent by ``sender`` (default target)."""
    return room.new_event(
        "m.room.member", sender or target, target, dict(content, membership=membership)
    )


class MemberFieldsRuleTests(AuthAssertions, unittest.TestCase):
    """The first membership rule: state_key and content.membership are required."""

    def test_missing_membership_refused(self):
        """A member event without content.membership is refused; with it, a public join is allowed."""
        for version in COMMON:
            room = room_with_members(version)
            self.assert_allowed(membership_event(room, CAROL, "join"), room.auth_state(), version)
            event = room.new_event("m.room.member", CAROL, CAROL, {"displayname": "C"})
            self.assert_refused(rule(version, "member", "1"), event, room.auth_state(), version)

    def test_missing_state_key_refused(self):
        """A member event without a state_key is refused."""
        for version in COMMON:
            room = room_with_members(version)
            event = room.new_event("m.room.member", CAROL, None, {"membership": "join"})
            self.assert_refused(rule(version, "member", "1"), event, room.auth_state(), version)

    def test_unknown_membership_refused(self):
        """An unknown membership value is refused by the last membership rule."""
        for version in COMMON:
            room = room_with_members(version)
            event = membership_event(room, BOB, "dance")
            self.assert_refused(
                rule(version, "member", "unknown"), event, room.auth_state(), version
            )


class AuthorisingServerSignatureRuleTests(AuthAssertions, unittest.TestCase):
    """Rule 4.2 of v8-v11 (5.2 in v12): join_authorised_via_users_server needs that server's signature."""

    def test_signature_present_or_missing(self):
        """A restricted join signed by the authoriser's server is allowed; unsigned by it, refused."""
        for version in RESTRICTED:
            room = room_with_members(version, join_rule="restricted")
            event = membership_event(room, CAROL, "join", join_authorised_via_users_server=MOD)
            event["signatures"]["a.example"] = {"ed25519:k": "sig"}
            self.assert_allowed(event, room.auth_state(), version)
            del event["signatures"]["a.example"]
            self.assert_refused(
                rule(version, "member", "authoriser_signed"), event, room.auth_state(), version
            )

    def test_applies_to_any_membership(self):
        """The signature rule applies whatever the membership, e.g. a leave carrying the key."""
        for version in ["8", "12"]:
            room = room_with_members(version)
            event = membership_event(room, BOB, "leave", join_authorised_via_users_server=MOD)
            self.assert_refused(
                rule(version, "member", "authoriser_signed"), event, room.auth_state(), version
            )

    def test_ignored_before_v8(self):
        """Before v8 the key means nothing: a public join carrying it, unsigned, is allowed."""
        room = room_with_members("7")
        event = membership_event(room, CAROL, "join", join_authorised_via_users_server=MOD)
        self.assert_allowed(event, room.auth_state(), "7")


class JoinRuleTests(AuthAssertions, unittest.TestCase):
    """membership = join."""

    def test_first_join_of_creator(self):
        """The creator's join right after the create event is allowed with no other state (v1 uses ID pairs)."""
        for version in COMMON:
            room = RoomBuilder(version, power_levels=False, join_rule=None)
            join = room.state[("m.room.member", ALICE)]
            self.assert_allowed(join, {("m.room.create", ""): room.create_event}, version)
            if version == "1":
                self.assertIsInstance(join["prev_events"][0], list)

    def test_first_join_creator_is_content_creator_until_v10(self):
        """v1-v10: the first join must be content.creator's; v11+: the create event's sender's."""
        for version in COMMON:
            room = RoomBuilder(
                version, power_levels=False, join_rule=None, create_content={"creator": CAROL}
            )
            join = room.state[("m.room.member", ALICE)]
            state = {("m.room.create", ""): room.create_event}
            if int(version) <= 10:
                self.assert_refused(
                    rule(version, "member", "join", "otherwise"), join, state, version
                )
            else:
                self.assert_allowed(join, state, version)

    def test_first_join_needs_create_as_only_prev_event(self):
        """A creator join whose prev_events are not just the create event gets no special treatment."""
        for version in ["1", "10", "12"]:
            room = RoomBuilder(version, power_levels=False, join_rule=None)
            event = room.new_event(
                "m.room.member",
                ALICE,
                ALICE,
                {"membership": "join"},
                prev_events=[room.create_event, room.state[("m.room.member", ALICE)]],
            )
            state = {("m.room.create", ""): room.create_event}
            self.assert_refused(rule(version, "member", "join", "otherwise"), event, state, version)

    def test_join_for_someone_else_refused(self):
        """A user may join themselves to a public room, but not someone else."""
        for version in COMMON:
            room = room_with_members(version)
            self.assert_allowed(membership_event(room, CAROL, "join"), room.auth_state(), version)
            event = membership_event(room, CAROL, "join", sender=BOB)
            self.assert_refused(
                rule(version, "member", "join", "other_user"), event, room.auth_state(), version
            )

    def test_banned_user_refused(self):
        """A banned user cannot join even a public room."""
        for version in COMMON:
            room = room_with_members(version)
            room.member(CAROL, "ban", sender=MOD)
            event = membership_event(room, CAROL, "join")
            self.assert_refused(
                rule(version, "member", "join", "banned"), event, room.auth_state(), version
            )

    def test_invite_join_rule(self):
        """Join rule invite: an invited user may join, an uninvited one may not."""
        for version in COMMON:
            room = room_with_members(version, join_rule="invite")
            room.member(CAROL, "invite", sender=BOB)
            self.assert_allowed(membership_event(room, CAROL, "join"), room.auth_state(), version)
            self.assert_allowed(membership_event(room, BOB, "join"), room.auth_state(), version)
            event = membership_event(room, DAVE, "join")
            self.assert_refused(
                rule(version, "member", "join", "otherwise"), event, room.auth_state(), version
            )

    def test_knock_join_rule(self):
        """Join rule knock (v7+): invited users may join, others not; before v7 the rule is unknown."""
        for version in COMMON:
            room = room_with_members(version, join_rule="knock")
            room.member(CAROL, "invite", sender=BOB)
            invited = membership_event(room, CAROL, "join")
            if int(version) >= 7:
                self.assert_allowed(invited, room.auth_state(), version)
            else:
                self.assert_refused(
                    rule(version, "member", "join", "otherwise"),
                    invited,
                    room.auth_state(),
                    version,
                )
            stranger = membership_event(room, DAVE, "join")
            self.assert_refused(
                rule(version, "member", "join", "otherwise"), stranger, room.auth_state(), version
            )

    def test_public_and_missing_join_rule(self):
        """Join rule public lets anyone join; with no join rules event nobody but the creator can."""
        for version in COMMON:
            public = room_with_members(version)
            self.assert_allowed(
                membership_event(public, CAROL, "join"), public.auth_state(), version
            )
            closed = RoomBuilder(version, join_rule=None)
            event = membership_event(closed, CAROL, "join")
            self.assert_refused(
                rule(version, "member", "join", "otherwise"), event, closed.auth_state(), version
            )
            private = room_with_members(version, join_rule="private")
            event = membership_event(private, CAROL, "join")
            self.assert_refused(
                rule(version, "member", "join", "otherwise"), event, private.auth_state(), version
            )


class RestrictedJoinRuleTests(AuthAssertions, unittest.TestCase):
    """Join rules restricted (v8+) and knock_restricted (v10+): rule 4.3.5 (5.3.5 in v12)."""

    def restricted_join(self, room, authoriser=MOD, target=CAROL):
        event = membership_event(room, target, "join", join_authorised_via_users_server=authoriser)
        event["signatures"][authoriser.split(":", 1)[1]] = {"ed25519:k": "sig"}
        return event

    def test_invited_or_joined_need_no_authoriser(self):
        """5.1: an invited user joins a restricted room without join_authorised_via_users_server."""
        for version in RESTRICTED:
            room = room_with_members(version, join_rule="restricted")
            room.member(CAROL, "invite", sender=BOB)
            self.assert_allowed(membership_event(room, CAROL, "join"), room.auth_state(), version)
            self.assert_allowed(membership_event(room, BOB, "join"), room.auth_state(), version)

    def test_authorised_by_joined_member_with_invite_power(self):
        """5.3: a join authorised by a joined member who may invite is allowed."""
        for version in RESTRICTED:
            room = room_with_members(version, join_rule="restricted")
            self.assert_allowed(self.restricted_join(room), room.auth_state(), version)

    def test_no_authoriser_refused(self):
        """5.2: an uninvited join without join_authorised_via_users_server is refused."""
        for version in RESTRICTED:
            room = room_with_members(version, join_rule="restricted")
            event = membership_event(room, CAROL, "join")
            self.assert_refused(
                rule(version, "member", "join", "restricted", "2"),
                event,
                room.auth_state(),
                version,
            )

    def test_authoriser_not_joined_refused(self):
        """5.2: an authoriser who is not joined cannot authorise."""
        for version in RESTRICTED:
            room = room_with_members(version, join_rule="restricted")
            room.member(MOD, "leave")
            event = self.restricted_join(room)
            self.assert_refused(
                rule(version, "member", "join", "restricted", "2"),
                event,
                room.auth_state(),
                version,
            )

    def test_authoriser_without_invite_power_refused(self):
        """5.2: an authoriser below the invite level cannot authorise."""
        for version in RESTRICTED:
            users = {MOD: 50} if version == "12" else {ALICE: 100, MOD: 50}
            room = room_with_members(
                version, join_rule="restricted", power_levels={"users": users, "invite": 60}
            )
            event = self.restricted_join(room)
            self.assert_refused(
                rule(version, "member", "join", "restricted", "2"),
                event,
                room.auth_state(),
                version,
            )

    def test_v12_creator_authorises(self):
        """v12: the creator (infinite power) may authorise restricted joins."""
        room = room_with_members(
            "12", join_rule="restricted", power_levels={"users": {}, "invite": 100}
        )
        self.assert_allowed(self.restricted_join(room, authoriser=ALICE), room.auth_state(), "12")

    def test_restricted_unknown_before_v8(self):
        """Before v8, restricted is an unknown join rule: the join is refused."""
        for version in ["6", "7"]:
            room = room_with_members(version, join_rule="restricted")
            event = self.restricted_join(room)
            self.assert_refused(
                rule(version, "member", "join", "otherwise"), event, room.auth_state(), version
            )

    def test_knock_restricted_from_v10(self):
        """knock_restricted works like restricted from v10; in v8/v9 it is unknown and refused."""
        for version in ["8", "9", "10", "11", "12"]:
            room = room_with_members(version, join_rule="knock_restricted")
            event = self.restricted_join(room)
            if int(version) >= 10:
                self.assert_allowed(event, room.auth_state(), version)
                bare = membership_event(room, DAVE, "join")
                self.assert_refused(
                    rule(version, "member", "join", "restricted", "2"),
                    bare,
                    room.auth_state(),
                    version,
                )
            else:
                self.assert_refused(
                    rule(version, "member", "join", "otherwise"), event, room.auth_state(), version
                )

    def test_knock_restricted_lets_invited_join(self):
        """knock_restricted (v10+): an invited user joins without an authoriser."""
        for version in ["10", "11", "12"]:
            room = room_with_members(version, join_rule="knock_restricted")
            room.member(CAROL, "invite", sender=BOB)
            self.assert_allowed(membership_event(room, CAROL, "join"), room.auth_state(), version)


class InviteRuleTests(AuthAssertions, unittest.TestCase):
    """membership = invite, without third_party_invite."""

    def test_member_at_invite_level_may_invite(self):
        """A joined member at the invite level (default 0) may invite an outsider."""
        for version in COMMON:
            room = room_with_members(version)
            self.assert_allowed(
                membership_event(room, CAROL, "invite", sender=BOB), room.auth_state(), version
            )

    def test_sender_not_joined_refused(self):
        """x.2: an outsider cannot invite."""
        for version in COMMON:
            room = room_with_members(version)
            event = membership_event(room, CAROL, "invite", sender=DAVE)
            self.assert_refused(
                rule(version, "member", "invite", "2"), event, room.auth_state(), version
            )

    def test_target_joined_or_banned_refused(self):
        """x.3: a joined or banned user cannot be invited."""
        for version in COMMON:
            room = room_with_members(version)
            event = membership_event(room, BOB, "invite", sender=MOD)
            self.assert_refused(
                rule(version, "member", "invite", "3"), event, room.auth_state(), version
            )
            room.member(CAROL, "ban", sender=MOD)
            event = membership_event(room, CAROL, "invite", sender=MOD)
            self.assert_refused(
                rule(version, "member", "invite", "3"), event, room.auth_state(), version
            )

    def test_below_invite_level_refused(self):
        """x.5: a member below the invite level cannot invite; x.4: one at it can."""
        for version in COMMON:
            users = {MOD: 50} if version == "12" else {ALICE: 100, MOD: 50}
            room = room_with_members(version, power_levels={"users": users, "invite": 50})
            self.assert_allowed(
                membership_event(room, CAROL, "invite", sender=MOD), room.auth_state(), version
            )
            event = membership_event(room, CAROL, "invite", sender=BOB)
            self.assert_refused(
                rule(version, "member", "invite", "5"), event, room.auth_state(), version
            )


class ThirdPartyInviteRuleTests(AuthAssertions, unittest.TestCase):
    """membership = invite with content.third_party_invite (sub-rules x.1.1 to x.1.8)."""

    def setup(self, version, token="tok", key_field="public_key"):
        self.signing_key = generate_signing_key("0")
        public_key = encode_base64(self.signing_key.verify_key.encode())
        room = room_with_members(version)
        if key_field == "public_key":
            content = {
                "display_name": "c...",
                "public_key": public_key,
                "key_validity_url": "https://id/x",
            }
        else:
            content = {
                "display_name": "c...",
                "public_keys": [{"public_key": "AAAA"}, {"public_key": public_key}],
            }
        room.send("m.room.third_party_invite", BOB, token, content)
        return room

    def invite(self, room, target=CAROL, sender=BOB, signed=None, token="tok", sign=True):
        if signed is None:
            signed = {"mxid": target, "token": token, "sender": sender}
            if sign:
                signed = sign_json(signed, "id.example", self.signing_key)
        content = {"third_party_invite": {"display_name": "c...", "signed": signed}}
        return membership_event(room, target, "invite", sender=sender, **content)

    def refused(self, version, sub, event, room):
        self.assert_refused(
            rule(version, "member", "invite", "1", sub), event, room.auth_state(), version
        )

    def test_valid_signature_allowed(self):
        """x.1.7: a signature by the invite's public_key (or one of public_keys) allows the invite."""
        for version in COMMON:
            room = self.setup(version)
            self.assert_allowed(self.invite(room), room.auth_state(), version)
            room = self.setup(version, key_field="public_keys")
            self.assert_allowed(self.invite(room), room.auth_state(), version)

    def test_target_banned_refused(self):
        """x.1.1: a banned target cannot be invited this way."""
        for version in COMMON:
            room = self.setup(version)
            room.member(CAROL, "ban", sender=MOD)
            self.refused(version, "1", self.invite(room), room)

    def test_no_signed_refused(self):
        """x.1.2: third_party_invite without signed is refused."""
        for version in COMMON:
            room = self.setup(version)
            event = membership_event(
                room, CAROL, "invite", sender=BOB, third_party_invite={"display_name": "c"}
            )
            self.refused(version, "2", event, room)

    def test_signed_without_mxid_or_token_refused(self):
        """x.1.3: signed must hold mxid and token."""
        for version in COMMON:
            room = self.setup(version)
            signed = sign_json({"token": "tok"}, "id.example", self.signing_key)
            self.refused(version, "3", self.invite(room, signed=signed), room)
            signed = sign_json({"mxid": CAROL}, "id.example", self.signing_key)
            self.refused(version, "3", self.invite(room, signed=signed), room)

    def test_mxid_mismatch_refused(self):
        """x.1.4: signed.mxid must be the invited user."""
        for version in COMMON:
            room = self.setup(version)
            signed = sign_json({"mxid": DAVE, "token": "tok"}, "id.example", self.signing_key)
            self.refused(version, "4", self.invite(room, signed=signed), room)

    def test_unknown_token_refused(self):
        """x.1.5: there must be an m.room.third_party_invite whose state_key is the token."""
        for version in COMMON:
            room = self.setup(version)
            self.refused(version, "5", self.invite(room, token="other"), room)

    def test_other_sender_refused(self):
        """x.1.6: only the sender of the m.room.third_party_invite may redeem it."""
        for version in COMMON:
            room = self.setup(version)
            self.refused(version, "6", self.invite(room, sender=MOD), room)

    def test_bad_signature_refused(self):
        """x.1.8: an unsigned or wrongly signed token is refused."""
        for version in COMMON:
            room = self.setup(version)
            self.refused(version, "8", self.invite(room, sign=False), room)
            other_key = generate_signing_key("0")
            signed = sign_json({"mxid": CAROL, "token": "tok"}, "id.example", other_key)
            self.refused(version, "8", self.invite(room, signed=signed), room)
            signed = sign_json({"mxid": CAROL, "token": "tok"}, "id.example", self.signing_key)
            signed["mxid"] = CAROL + " "
            event = self.invite(room, target=CAROL + " ", signed=signed)
            self.refused(version, "8", event, room)


class LeaveRuleTests(AuthAssertions, unittest.TestCase):
    """membership = leave: leaving, rejecting invites, retracting knocks, kicks and unbans."""

    def test_leave_from_join_or_invite(self):
        """x.1: a joined or invited user may leave."""
        for version in COMMON:
            room = room_with_members(version)
            self.assert_allowed(membership_event(room, BOB, "leave"), room.auth_state(), version)
            room.member(CAROL, "invite", sender=BOB)
            self.assert_allowed(membership_event(room, CAROL, "leave"), room.auth_state(), version)

    def test_leave_from_leave_or_ban_refused(self):
        """x.1: a user who is not in the room, or is banned, cannot leave it themselves."""
        for version in COMMON:
            room = room_with_members(version)
            event = membership_event(room, CAROL, "leave")
            self.assert_refused(
                rule(version, "member", "leave", "1"), event, room.auth_state(), version
            )
            room.member(CAROL, "ban", sender=MOD)
            event = membership_event(room, CAROL, "leave")
            self.assert_refused(
                rule(version, "member", "leave", "1"), event, room.auth_state(), version
            )

    def test_leave_from_knock(self):
        """v7+: a knocking user may retract the knock; before v7 a knock membership is not a way out."""
        for version in ["6", "7", "10", "12"]:
            room = room_with_members(version, join_rule="knock")
            room.member(CAROL, "knock")
            event = membership_event(room, CAROL, "leave")
            if int(version) >= 7:
                self.assert_allowed(event, room.auth_state(), version)
            else:
                self.assert_refused(
                    rule(version, "member", "leave", "1"), event, room.auth_state(), version
                )

    def test_kick_needs_joined_sender(self):
        """x.2: a user who is not joined cannot kick."""
        for version in COMMON:
            room = room_with_members(version)
            room.member(MOD, "leave")
            event = membership_event(room, BOB, "leave", sender=MOD)
            self.assert_refused(
                rule(version, "member", "leave", "2"), event, room.auth_state(), version
            )

    def test_kick(self):
        """x.4: at the kick level and above the target, a kick is allowed; x.5: otherwise refused."""
        for version in COMMON:
            room = room_with_members(version)
            self.assert_allowed(
                membership_event(room, BOB, "leave", sender=MOD), room.auth_state(), version
            )
            event = membership_event(room, MOD, "leave", sender=BOB)
            self.assert_refused(
                rule(version, "member", "leave", "5"), event, room.auth_state(), version
            )

    def test_kick_equal_power_refused(self):
        """x.5: a kick of a user with the same power level is refused."""
        for version in COMMON:
            users = {MOD: 50, BOB: 50} if version == "12" else {ALICE: 100, MOD: 50, BOB: 50}
            room = room_with_members(version, power_levels={"users": users})
            event = membership_event(room, BOB, "leave", sender=MOD)
            self.assert_refused(
                rule(version, "member", "leave", "5"), event, room.auth_state(), version
            )

    def test_unban_needs_ban_level(self):
        """x.3: unbanning (leave over ban) needs the ban level as well as the kick level."""
        for version in COMMON:
            users = {MOD: 50} if version == "12" else {ALICE: 100, MOD: 50}
            room = room_with_members(version, power_levels={"users": users, "ban": 60, "kick": 50})
            room.member(CAROL, "ban", sender=ALICE)
            event = membership_event(room, CAROL, "leave", sender=MOD)
            self.assert_refused(
                rule(version, "member", "leave", "3"), event, room.auth_state(), version
            )
            event = membership_event(room, CAROL, "leave", sender=ALICE)
            self.assert_allowed(event, room.auth_state(), version)

    def test_v12_creator_cannot_be_kicked(self):
        """v12: the creator's infinite power means nobody can kick them; they can kick anyone."""
        room = room_with_members("12", power_levels={"users": {MOD: 100}})
        event = membership_event(room, ALICE, "leave", sender=MOD)
        self.assert_refused("5.5.5", event, room.auth_state(), "12")
        self.assert_allowed(
            membership_event(room, MOD, "leave", sender=ALICE), room.auth_state(), "12"
        )


class BanRuleTests(AuthAssertions, unittest.TestCase):
    """membership = ban."""

    def test_ban(self):
        """x.2: at the ban level and above the target, a ban is allowed; x.3: below, refused."""
        for version in COMMON:
            room = room_with_members(version)
            self.assert_allowed(
                membership_event(room, BOB, "ban", sender=MOD), room.auth_state(), version
            )
            self.assert_allowed(
                membership_event(room, CAROL, "ban", sender=MOD), room.auth_state(), version
            )
            event = membership_event(room, CAROL, "ban", sender=BOB)
            self.assert_refused(
                rule(version, "member", "ban", "3"), event, room.auth_state(), version
            )

    def test_below_ban_level_refused(self):
        """x.3: a sender above the target but below the ban level cannot ban."""
        for version in COMMON:
            users = {MOD: 50} if version == "12" else {ALICE: 100, MOD: 50}
            room = room_with_members(version, power_levels={"users": users, "ban": 60})
            event = membership_event(room, BOB, "ban", sender=MOD)
            self.assert_refused(
                rule(version, "member", "ban", "3"), event, room.auth_state(), version
            )
            event = membership_event(room, BOB, "ban", sender=ALICE)
            self.assert_allowed(event, room.auth_state(), version)

    def test_sender_not_joined_refused(self):
        """x.1: a user who is not joined cannot ban."""
        for version in COMMON:
            room = room_with_members(version)
            event = membership_event(room, BOB, "ban", sender=DAVE)
            self.assert_refused(
                rule(version, "member", "ban", "1"), event, room.auth_state(), version
            )

    def test_equal_or_higher_target_refused(self):
        """x.3: a user at or above the sender's level cannot be banned by them."""
        for version in COMMON:
            room = room_with_members(version)
            event = membership_event(room, ALICE, "ban", sender=MOD)
            self.assert_refused(
                rule(version, "member", "ban", "3"), event, room.auth_state(), version
            )


class KnockRuleTests(AuthAssertions, unittest.TestCase):
    """membership = knock (v7+)."""

    def test_knock_allowed_with_knock_rule(self):
        """x.3: an outsider may knock when the join rule is knock."""
        for version in KNOCKING:
            room = room_with_members(version, join_rule="knock")
            self.assert_allowed(membership_event(room, CAROL, "knock"), room.auth_state(), version)

    def test_wrong_join_rule_refused(self):
        """x.1: knocking on an invite-only or public room is refused."""
        for version in KNOCKING:
            for join_rule in ("invite", "public"):
                room = room_with_members(version, join_rule=join_rule)
                event = membership_event(room, CAROL, "knock")
                self.assert_refused(
                    rule(version, "member", "knock", "1"), event, room.auth_state(), version
                )

    def test_knock_restricted_from_v10(self):
        """x.1: knock_restricted allows knocks from v10; in v8/v9 it does not."""
        for version in KNOCKING:
            room = room_with_members(version, join_rule="knock_restricted")
            event = membership_event(room, CAROL, "knock")
            if int(version) >= 10:
                self.assert_allowed(event, room.auth_state(), version)
            else:
                self.assert_refused(
                    rule(version, "member", "knock", "1"), event, room.auth_state(), version
                )

    def test_knock_for_someone_else_refused(self):
        """x.2: a user can only knock for themselves."""
        for version in KNOCKING:
            room = room_with_members(version, join_rule="knock")
            event = membership_event(room, CAROL, "knock", sender=DAVE)
            self.assert_refused(
                rule(version, "member", "knock", "2"), event, room.auth_state(), version
            )

    def test_invited_joined_or_banned_refused(self):
        """x.4: invited, joined and banned users cannot knock."""
        for version in KNOCKING:
            room = room_with_members(version, join_rule="knock")
            room.member(CAROL, "invite", sender=BOB)
            room.member(DAVE, "ban", sender=MOD)
            for user in (CAROL, DAVE, BOB):
                event = membership_event(room, user, "knock")
                self.assert_refused(
                    rule(version, "member", "knock", "4"), event, room.auth_state(), version
                )

    def test_knock_unknown_before_v7(self):
        """Before v7, knock is an unknown membership."""
        for version in ["1", "3", "6"]:
            room = room_with_members(version, join_rule="knock")
            event = membership_event(room, CAROL, "knock")
            self.assert_refused(
                rule(version, "member", "unknown"), event, room.auth_state(), version
            )
