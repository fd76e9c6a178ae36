"""Tests for the room version table."""

from twisted.trial import unittest

from mxref.events.room_versions import (
    CREATABLE_ROOM_VERSIONS,
    DEFAULT_ROOM_VERSION,
    ROOM_VERSIONS,
    EventFormat,
    RedactionRules,
    StateResolution,
    UnsupportedRoomVersion,
    get_room_version,
)


class RoomVersionTableTests(unittest.TestCase):
    """The table matches the spec's summary of room versions 1 to 12."""

    def test_all_stable_versions(self):
        """Every stable version 1-12 is known and stable."""
        self.assertEqual(sorted(ROOM_VERSIONS, key=int), [str(i) for i in range(1, 13)])
        self.assertTrue(all(v.stable for v in ROOM_VERSIONS.values()))

    def test_default_and_creatable(self):
        """New rooms default to 12; 10, 11 and 12 can be created."""
        self.assertEqual(DEFAULT_ROOM_VERSION, "12")
        self.assertEqual(CREATABLE_ROOM_VERSIONS, ("10", "11", "12"))

    def test_event_formats(self):
        """v1-2 carry event IDs, v3 uses standard base64, v4+ URL-safe base64."""
        self.assertEqual(ROOM_VERSIONS["2"].event_format, EventFormat.V1)
        self.assertEqual(ROOM_VERSIONS["3"].event_format, EventFormat.V2)
        self.assertEqual(ROOM_VERSIONS["4"].event_format, EventFormat.V3)
        self.assertEqual(ROOM_VERSIONS["12"].event_format, EventFormat.V3)

    def test_state_resolution(self):
        """v1 uses state res v1, v2-11 v2, v12 v2.1."""
        self.assertEqual(ROOM_VERSIONS["1"].state_resolution, StateResolution.V1)
        self.assertEqual(ROOM_VERSIONS["2"].state_resolution, StateResolution.V2)
        self.assertEqual(ROOM_VERSIONS["11"].state_resolution, StateResolution.V2)
        self.assertEqual(ROOM_VERSIONS["12"].state_resolution, StateResolution.V2_1)

    def test_feature_introductions(self):
        """Each feature appears in the version that introduced it and stays."""
        firsts = {
            "enforce_key_validity": 5,
            "strict_canonical_json": 6,
            "knock_join_rule": 7,
            "restricted_join_rule": 8,
            "knock_restricted_join_rule": 10,
            "enforce_int_power_levels": 10,
            "implicit_room_creator": 11,
            "redacts_in_content": 11,
            "room_id_from_create_event": 12,
            "privileged_creators": 12,
        }
        for feature, first in firsts.items():
            for i in range(1, 13):
                self.assertEqual(getattr(ROOM_VERSIONS[str(i)], feature), i >= first, (feature, i))

    def test_redaction_rules(self):
        """Redaction algorithms change at v6, v8, v9 and v11."""
        expected = {1: 1, 5: 1, 6: 6, 7: 6, 8: 8, 9: 9, 10: 9, 11: 11, 12: 11}
        for version, rules in expected.items():
            self.assertEqual(ROOM_VERSIONS[str(version)].redaction_rules, RedactionRules(rules))

    def test_max_depth(self):
        """Depth is bounded by 2**53-1 from v6 and by 2**63-1 before."""
        self.assertEqual(ROOM_VERSIONS["5"].max_depth, 2**63 - 1)
        self.assertEqual(ROOM_VERSIONS["6"].max_depth, 2**53 - 1)

    def test_unknown(self):
        """An unknown version is a typed error; a RoomVersion passes through."""
        self.assertRaises(UnsupportedRoomVersion, get_room_version, "13")
        self.assertRaises(UnsupportedRoomVersion, get_room_version, None)
        v = ROOM_VERSIONS["11"]
        self.assertIs(get_room_version(v), v)
        self.assertIs(get_room_version("11"), v)
