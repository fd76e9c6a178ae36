"""Tests for mxref.events.authrules: the authorization rules of room versions 1 to 12."""

from twisted.trial import unittest

from mxref.errors import AuthError
from mxref.events.authrules import check_auth
from tests.events.factories import RoomBuilder


class ReplayTests(unittest.TestCase):
    """A freshly created room passes its own auth rules in every version."""

    def test_room_setup_passes(self):
        """Create, creator join, power levels and join rules are each allowed by the state before them."""
        for version in [str(v) for v in range(1, 13)]:
            room = RoomBuilder(version)
            state = {("m.room.create", ""): room.create_event}
            for event in room.events:
                check_auth(event, state, version)
                state[(event["type"], event["state_key"])] = event

    def test_stranger_cannot_send_message(self):
        """A user who never joined cannot send a message (rule "sender is joined")."""
        expected = {"1": "6", "6": "5", "10": "5", "11": "5", "12": "6"}
        for version, rule in expected.items():
            room = RoomBuilder(version)
            event = room.new_event("m.room.message", "@bob:b.example", content={"body": "hi"})
            error = self.assertRaises(AuthError, check_auth, event, room.auth_state(), version)
            self.assertEqual(error.rule, rule)
