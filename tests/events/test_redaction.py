"""Tests for the redaction algorithms of every room version."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.errors import InvalidEventFormat
from mxref.events.redaction import redact, redacted_for_client, redacted_view, redacts_of
from mxref.events.room_versions import ROOM_VERSIONS, RedactionRules

#: One room version per redaction algorithm.
VERSION_OF_RULES = {
    RedactionRules.V1: "1",
    RedactionRules.V6: "6",
    RedactionRules.V8: "8",
    RedactionRules.V9: "9",
    RedactionRules.V11: "11",
}

ALL_TOP_LEVEL = {
    "event_id": "$e:example.org",
    "type": "m.room.message",
    "room_id": "!r:example.org",
    "sender": "@u:example.org",
    "state_key": "",
    "hashes": {"sha256": "abc"},
    "signatures": {"example.org": {"ed25519:1": "sig"}},
    "depth": 5,
    "prev_events": ["$p"],
    "prev_state": [],
    "auth_events": ["$a"],
    "origin": "example.org",
    "origin_server_ts": 1234,
    "membership": "join",
    "unsigned": {"age": 5},
    "redacts": "$target",
    "extra": "dropped",
}

V1_TOP_LEVEL = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts", "membership",
}  # fmt: skip
V11_TOP_LEVEL = V1_TOP_LEVEL - {"origin", "membership", "prev_state"}

MEMBER_CONTENT = {
    "membership": "join",
    "displayname": "Alice",
    "avatar_url": "mxc://x/y",
    "join_authorised_via_users_server": "@admin:example.org",
    "third_party_invite": {"display_name": "alice", "signed": {"token": "t", "mxid": "@a:b"}},
}
CREATE_CONTENT = {"creator": "@u:example.org", "room_version": "1", "m.federate": False}
JOIN_RULES_CONTENT = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "other": 1}
POWER_LEVELS_CONTENT = {
    "ban": 50, "events": {"m.room.name": 50}, "events_default": 0, "invite": 0, "kick": 50,
    "redact": 50, "state_default": 50, "users": {"@u:example.org": 100}, "users_default": 0,
    "notifications": {"room": 50}, "historical": 100,
}  # fmt: skip
POWER_LEVELS_KEPT_V1 = {
    k: v for k, v in POWER_LEVELS_CONTENT.items() if k not in ("invite", "notifications", "historical")
}

#: event type -> content before redaction, and the content kept under each algorithm.
CONTENT_CASES = {
    "m.room.member": (
        MEMBER_CONTENT,
        {
            RedactionRules.V1: {"membership": "join"},
            RedactionRules.V6: {"membership": "join"},
            RedactionRules.V8: {"membership": "join"},
            RedactionRules.V9: {
                "membership": "join",
                "join_authorised_via_users_server": "@admin:example.org",
            },
            RedactionRules.V11: {
                "membership": "join",
                "join_authorised_via_users_server": "@admin:example.org",
                "third_party_invite": {"signed": {"token": "t", "mxid": "@a:b"}},
            },
        },
    ),
    "m.room.create": (
        CREATE_CONTENT,
        {
            RedactionRules.V1: {"creator": "@u:example.org"},
            RedactionRules.V6: {"creator": "@u:example.org"},
            RedactionRules.V8: {"creator": "@u:example.org"},
            RedactionRules.V9: {"creator": "@u:example.org"},
            RedactionRules.V11: CREATE_CONTENT,
        },
    ),
    "m.room.join_rules": (
        JOIN_RULES_CONTENT,
        {
            RedactionRules.V1: {"join_rule": "restricted"},
            RedactionRules.V6: {"join_rule": "restricted"},
            RedactionRules.V8: {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
            RedactionRules.V9: {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
            RedactionRules.V11: {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
        },
    ),
    "m.room.power_levels": (
        POWER_LEVELS_CONTENT,
        {
            RedactionRules.V1: POWER_LEVELS_KEPT_V1,
            RedactionRules.V6: POWER_LEVELS_KEPT_V1,
            RedactionRules.V8: POWER_LEVELS_KEPT_V1,
            RedactionRules.V9: POWER_LEVELS_KEPT_V1,
            RedactionRules.V11: dict(POWER_LEVELS_KEPT_V1, invite=0),
        },
    ),
    "m.room.aliases": (
        {"aliases": ["#a:example.org"], "x": 1},
        {
            RedactionRules.V1: {"aliases": ["#a:example.org"]},
            RedactionRules.V6: {},
            RedactionRules.V8: {},
            RedactionRules.V9: {},
            RedactionRules.V11: {},
        },
    ),
    "m.room.history_visibility": (
        {"history_visibility": "shared", "x": 1},
        {rules: {"history_visibility": "shared"} for rules in RedactionRules},
    ),
    "m.room.redaction": (
        {"redacts": "$target", "reason": "spam"},
        {
            RedactionRules.V1: {},
            RedactionRules.V6: {},
            RedactionRules.V8: {},
            RedactionRules.V9: {},
            RedactionRules.V11: {"redacts": "$target"},
        },
    ),
    "m.room.message": (
        {"body": "secret", "msgtype": "m.text"},
        {rules: {} for rules in RedactionRules},
    ),
    "m.room.name": ({"name": "Room"}, {rules: {} for rules in RedactionRules}),
}

json_leaves = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=5)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
event_types = st.sampled_from(sorted(CONTENT_CASES) + ["m.custom"])
content_keys = st.sampled_from(
    ["membership", "creator", "join_rule", "allow", "ban", "invite", "redacts", "aliases", "body",
     "third_party_invite", "join_authorised_via_users_server", "history_visibility", "x"]
)  # fmt: skip
events = st.fixed_dictionaries(
    {"type": event_types, "content": st.dictionaries(content_keys, json_values, max_size=5)},
    optional={
        key: json_values
        for key in ["origin", "membership", "prev_state", "unsigned", "redacts", "state_key", "junk"]
    },
)


class RedactTests(unittest.TestCase):
    """redact keeps exactly what each room version's algorithm lists."""

    def test_top_level_keys_v1_to_v10(self):
        """Rooms v1-v10 keep origin, membership and prev_state and drop unsigned, redacts and unknown keys."""
        for identifier in ("1", "5", "6", "8", "9", "10"):
            with self.subTest(version=identifier):
                event = dict(ALL_TOP_LEVEL, content={"body": "x"})
                self.assertEqual(set(redact(event, identifier)), V1_TOP_LEVEL)

    def test_top_level_keys_v11(self):
        """Rooms v11 and v12 also drop origin, membership and prev_state."""
        for identifier in ("11", "12"):
            with self.subTest(version=identifier):
                event = dict(ALL_TOP_LEVEL, content={"body": "x"})
                self.assertEqual(set(redact(event, identifier)), V11_TOP_LEVEL)

    def test_kept_values_unchanged(self):
        """The top-level values that survive are equal to the originals."""
        event = dict(ALL_TOP_LEVEL, content={})
        redacted = redact(event, "1")
        for key in V1_TOP_LEVEL:
            self.assertEqual(redacted[key], event[key])

    def test_content_per_algorithm(self):
        """Each event type keeps exactly the content keys its algorithm protects."""
        for event_type, (content, expected_by_rules) in CONTENT_CASES.items():
            for rules, identifier in VERSION_OF_RULES.items():
                with self.subTest(event_type=event_type, rules=rules):
                    event = {"type": event_type, "content": content, "state_key": ""}
                    self.assertEqual(redact(event, identifier)["content"], expected_by_rules[rules])

    def test_every_version_uses_its_algorithm(self):
        """Each of the twelve room versions redacts a v8/v9/v11-sensitive event as its rules say."""
        event = {"type": "m.room.member", "content": MEMBER_CONTENT, "state_key": "@a:b"}
        for identifier, version in ROOM_VERSIONS.items():
            with self.subTest(version=identifier):
                expected = CONTENT_CASES["m.room.member"][1][version.redaction_rules]
                self.assertEqual(redact(event, version)["content"], expected)

    def test_v11_third_party_invite_only_signed(self):
        """v11 keeps third_party_invite.signed alone, and nothing when signed is absent or invalid."""
        event = {
            "type": "m.room.member",
            "content": {"membership": "invite", "third_party_invite": {"display_name": "a"}},
        }
        self.assertEqual(redact(event, "11")["content"], {"membership": "invite"})
        event["content"]["third_party_invite"] = "not an object"
        self.assertEqual(redact(event, "11")["content"], {"membership": "invite"})

    def test_missing_or_malformed_content(self):
        """An event without a content object redacts to empty content."""
        self.assertEqual(redact({"type": "m.room.member"}, "9")["content"], {})
        self.assertEqual(redact({"type": "m.room.member", "content": []}, "9")["content"], {})

    def test_input_not_modified_and_not_shared(self):
        """Redacting leaves the input untouched, and changing the result does not change the input."""
        event = {
            "type": "m.room.create",
            "content": {"a": {"b": [1]}},
            "hashes": {"sha256": "x"},
            "unsigned": {"age": 1},
        }
        redacted = redact(event, "11")
        redacted["content"]["a"]["b"].append(2)
        redacted["hashes"]["sha256"] = "y"
        self.assertEqual(
            event,
            {
                "type": "m.room.create",
                "content": {"a": {"b": [1]}},
                "hashes": {"sha256": "x"},
                "unsigned": {"age": 1},
            },
        )

    @given(events, st.sampled_from(sorted(ROOM_VERSIONS)))
    def test_idempotent(self, event, identifier):
        """Redacting an already redacted event changes nothing."""
        once = redact(event, identifier)
        self.assertEqual(redact(once, identifier), once)
        self.assertNotIn("unsigned", once)


class RedactedForClientTests(unittest.TestCase):
    """redacted_for_client adds redacted_because and keeps only serving metadata in unsigned."""

    REDACTION = {
        "type": "m.room.redaction",
        "event_id": "$r",
        "sender": "@mod:example.org",
        "content": {"reason": "spam", "redacts": "$target"},
        "redacts": "$target",
        "origin_server_ts": 5,
    }

    def test_redacted_because(self):
        """The client copy is the redacted event with unsigned.redacted_because set to the redaction."""
        event = {
            "type": "m.room.message",
            "event_id": "$target",
            "content": {"body": "spam"},
            "unsigned": {"age": 10, "transaction_id": "txn1", "prev_content": {"body": "old"}, "custom": 1},
        }
        result = redacted_for_client(event, self.REDACTION, "10")
        self.assertEqual(result["content"], {})
        self.assertEqual(
            result["unsigned"],
            {"age": 10, "transaction_id": "txn1", "redacted_because": self.REDACTION},
        )

    def test_redaction_for_another_event_refused(self):
        """A redaction that targets a different event ID is refused."""
        event = {"type": "m.room.message", "event_id": "$other", "content": {}}
        self.assertRaises(InvalidEventFormat, redacted_for_client, event, self.REDACTION, "10")

    def test_redacted_because_is_a_copy(self):
        """Changing the served copy does not change the redaction event."""
        event = {"type": "m.room.message", "event_id": "$target", "content": {}}
        result = redacted_for_client(event, self.REDACTION, "11")
        result["unsigned"]["redacted_because"]["content"]["reason"] = "changed"
        self.assertEqual(self.REDACTION["content"]["reason"], "spam")


class RedactsOfTests(unittest.TestCase):
    """redacts_of finds the redaction target where the room version puts it."""

    def test_top_level_before_v11(self):
        """Before v11 the top-level redacts wins over content.redacts."""
        event = {"type": "m.room.redaction", "redacts": "$top", "content": {"redacts": "$content"}}
        self.assertEqual(redacts_of(event, "10"), "$top")

    def test_content_from_v11(self):
        """From v11 content.redacts wins over the top-level copy."""
        event = {"type": "m.room.redaction", "redacts": "$top", "content": {"redacts": "$content"}}
        self.assertEqual(redacts_of(event, "11"), "$content")
        self.assertEqual(redacts_of(event, "12"), "$content")

    def test_fallback_to_other_place(self):
        """When the version's own place is empty, the other place is used."""
        self.assertEqual(redacts_of({"type": "m.room.redaction", "content": {"redacts": "$c"}}, "1"), "$c")
        self.assertEqual(redacts_of({"type": "m.room.redaction", "redacts": "$t", "content": {}}, "11"), "$t")

    def test_none_when_absent_or_not_a_redaction(self):
        """Non-redaction events, missing targets and non-string targets give None."""
        self.assertIsNone(redacts_of({"type": "m.room.message", "redacts": "$x", "content": {}}, "10"))
        self.assertIsNone(redacts_of({"type": "m.room.redaction", "content": {}}, "11"))
        self.assertIsNone(redacts_of({"type": "m.room.redaction", "content": {"redacts": 5}}, "11"))


class RedactedViewTests(unittest.TestCase):
    """The read-only redaction used for hashing and signatures."""

    def test_equal_to_redact_and_sharing_values(self):
        """redacted_view gives the same value as redact in every version, without deep copies."""
        event = {
            "type": "m.room.power_levels",
            "state_key": "",
            "sender": "@a:x",
            "room_id": "!r:x",
            "content": {"users": {"@a:x": 100}, "events": {"m.room.name": 50}, "extra": [1]},
            "hashes": {"sha256": "abc"},
            "signatures": {"x": {"ed25519:1": "sig"}},
            "unsigned": {"age": 1},
            "origin": "x",
        }
        for identifier in ROOM_VERSIONS:
            view = redacted_view(event, identifier)
            self.assertEqual(view, redact(event, identifier))
            self.assertIs(view["content"]["users"], event["content"]["users"])
            self.assertIsNot(redact(event, identifier)["content"]["users"], event["content"]["users"])
