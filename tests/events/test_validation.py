"""Tests for the PDU format check (check 1 on receipt of a PDU)."""

import copy

from twisted.trial import unittest

from mxref.errors import InvalidEventFormat
from mxref.events.canonical import encode_canonical_json
from mxref.events.hashing import compute_room_id
from mxref.events.room_versions import ROOM_VERSIONS
from mxref.events.validation import MAX_PDU_BYTES, validate_pdu_format

HASH_V3 = "$" + "A+/b" * 10 + "abc"  # 43 characters of standard base64
HASH_V4 = "$" + "A-_b" * 10 + "abc"  # 43 characters of URL-safe base64
V12_ROOM_ID = "!" + "Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"


def valid_pdu(identifier: str) -> dict:
    """A well-formed message PDU for the room version ``identifier``."""
    version = ROOM_VERSIONS[identifier]
    event = {
        "type": "m.room.message",
        "sender": "@alice:example.org",
        "origin_server_ts": 1700000000000,
        "content": {"body": "hi", "msgtype": "m.text"},
        "depth": 7,
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "unsigned": {"age": 5},
    }
    if not version.is_event_id_computed:
        event["event_id"] = "$abc:example.org"
        event["prev_events"] = [["$prev:example.org", {"sha256": "hash"}]]
        event["auth_events"] = [["$create:example.org", {"sha256": "hash"}]]
    else:
        reference = HASH_V3 if identifier == "3" else HASH_V4
        event["prev_events"] = [reference]
        event["auth_events"] = [reference]
    event["room_id"] = V12_ROOM_ID if version.room_id_from_create_event else "!room:example.org"
    return event


def without(event: dict, key: str) -> dict:
    copied = dict(event)
    del copied[key]
    return copied


class ValidatePduFormatTests(unittest.TestCase):
    """validate_pdu_format accepts well-formed PDUs and names what is wrong with others."""

    def assertInvalid(self, event, identifier, fragment=None):
        error = self.assertRaises(InvalidEventFormat, validate_pdu_format, event, identifier)
        self.assertEqual(error.errcode, "M_BAD_JSON")
        if fragment is not None:
            self.assertIn(fragment, error.msg)
        return error

    def test_valid_in_every_version(self):
        """A well-formed PDU passes in each of the twelve room versions, and is not modified."""
        for identifier in ROOM_VERSIONS:
            with self.subTest(version=identifier):
                event = valid_pdu(identifier)
                snapshot = copy.deepcopy(event)
                validate_pdu_format(event, identifier)
                self.assertEqual(event, snapshot)

    def test_not_an_object(self):
        """A PDU that is not a JSON object is refused."""
        self.assertInvalid(["not", "an", "object"], "10")

    def test_required_keys(self):
        """Removing any required key is refused, naming the key."""
        for identifier in ("1", "3", "10", "11", "12"):
            required = [
                "sender",
                "origin_server_ts",
                "type",
                "content",
                "depth",
                "hashes",
                "signatures",
                "auth_events",
                "prev_events",
                "room_id",
            ]
            if identifier == "1":
                required.append("event_id")
            for key in required:
                with self.subTest(version=identifier, key=key):
                    self.assertInvalid(without(valid_pdu(identifier), key), identifier, key)

    def test_wrong_types(self):
        """Keys of the wrong JSON type are refused (booleans are not integers)."""
        cases = {
            "sender": 5,
            "origin_server_ts": "1",
            "type": None,
            "content": [],
            "depth": True,
            "hashes": {"sha256": 5},
            "signatures": {"example.org": "sig"},
            "state_key": 0,
            "unsigned": [],
            "redacts": ["$x"],
            "auth_events": {},
        }
        for key, value in cases.items():
            with self.subTest(key=key):
                self.assertInvalid(dict(valid_pdu("10"), **{key: value}), "10")
        self.assertInvalid(dict(valid_pdu("10"), hashes={}), "10", "sha256")
        self.assertInvalid(dict(valid_pdu("10"), signatures={"example.org": {"ed25519:1": 5}}), "10")

    def test_redacts_unchecked_from_v11(self):
        """From v11 a top-level redacts is not part of the format, so its type does not matter."""
        validate_pdu_format(dict(valid_pdu("11"), redacts=5), "11")

    def test_reference_format_v1(self):
        """v1/v2 references must be [event_id, {sha256}] pairs."""
        for bad in (
            ["$prev:example.org"],
            [["$prev:example.org"]],
            [["$prev:example.org", {}]],
            [[5, {"sha256": "h"}]],
            [["prev", {"sha256": "h"}]],
        ):
            with self.subTest(references=bad):
                self.assertInvalid(dict(valid_pdu("1"), prev_events=bad), "1")

    def test_reference_format_v3_plus(self):
        """From v3 references are plain '$' event ID strings of at most 255 bytes."""
        self.assertInvalid(dict(valid_pdu("3"), prev_events=[["$x:y", {"sha256": "h"}]]), "3")
        self.assertInvalid(dict(valid_pdu("4"), prev_events=[5]), "4")
        self.assertInvalid(dict(valid_pdu("10"), auth_events=["no-sigil"]), "10", "auth_events")
        self.assertInvalid(dict(valid_pdu("10"), auth_events=["$" + "a" * 255]), "10", "auth_events")

    def test_reference_limits(self):
        """At most 20 prev_events and 10 auth_events are allowed."""
        validate_pdu_format(
            dict(valid_pdu("10"), prev_events=[HASH_V4] * 20, auth_events=[HASH_V4] * 10), "10"
        )
        self.assertInvalid(dict(valid_pdu("10"), prev_events=[HASH_V4] * 21), "10", "prev_events")
        self.assertInvalid(dict(valid_pdu("10"), auth_events=[HASH_V4] * 11), "10", "auth_events")
        pair = ["$p:example.org", {"sha256": "h"}]
        self.assertInvalid(dict(valid_pdu("1"), auth_events=[pair] * 11), "1", "auth_events")

    def test_identifier_grammar(self):
        """Malformed sender, room_id and v1 event_id are refused."""
        self.assertInvalid(dict(valid_pdu("10"), sender="alice:example.org"), "10", "sender")
        self.assertInvalid(dict(valid_pdu("10"), sender="@alice"), "10", "sender")
        self.assertInvalid(dict(valid_pdu("10"), room_id="!nodomain"), "10", "room_id")
        self.assertInvalid(dict(valid_pdu("1"), event_id="$nodomain"), "1", "event_id")
        self.assertInvalid(dict(valid_pdu("1"), event_id="abc:example.org"), "1", "event_id")

    def test_historical_sender_accepted(self):
        """A historical user ID (upper case localpart) from another server is accepted."""
        validate_pdu_format(dict(valid_pdu("10"), sender="@Alice:example.org"), "10")

    def test_identifier_lengths(self):
        """sender and room_id longer than 255 bytes are refused; exactly 255 passes."""
        server = ":example.org"
        at_limit = "@" + "a" * (255 - 1 - len(server)) + server
        validate_pdu_format(dict(valid_pdu("10"), sender=at_limit), "10")
        self.assertInvalid(dict(valid_pdu("10"), sender="@a" + at_limit[1:]), "10", "sender")
        self.assertInvalid(dict(valid_pdu("10"), room_id="!" + "r" * 255 + server), "10", "room_id")

    def test_type_and_state_key_lengths(self):
        """type and state_key may be 255 bytes but not 256 (counted in UTF-8 bytes)."""
        validate_pdu_format(dict(valid_pdu("10"), type="t" * 255, state_key="s" * 255), "10")
        self.assertInvalid(dict(valid_pdu("10"), type="t" * 256), "10", "type")
        self.assertInvalid(dict(valid_pdu("10"), state_key="é" * 128), "10", "state_key")

    def test_total_size(self):
        """An event over 65536 bytes of canonical JSON is refused; one at the limit passes."""
        event = valid_pdu("10")
        event["content"] = {"body": ""}
        base = len(encode_canonical_json(event))
        event["content"]["body"] = "x" * (MAX_PDU_BYTES - base)
        validate_pdu_format(event, "10")
        event["content"]["body"] += "x"
        self.assertInvalid(event, "10", "65536")

    def test_depth_range(self):
        """depth must be 0 to 2**53-1 from v6, and 0 to 2**63-1 before."""
        validate_pdu_format(dict(valid_pdu("10"), depth=0), "10")
        validate_pdu_format(dict(valid_pdu("10"), depth=2**53 - 1), "10")
        self.assertInvalid(dict(valid_pdu("10"), depth=-1), "10", "depth")
        self.assertInvalid(dict(valid_pdu("10"), depth=2**53), "10")
        validate_pdu_format(dict(valid_pdu("5"), depth=2**63 - 1), "5")
        self.assertInvalid(dict(valid_pdu("5"), depth=2**63), "5", "depth")

    def test_strict_canonical_json_from_v6(self):
        """Floats and out-of-range integers anywhere are refused from v6 but tolerated in v1-v5."""
        for content in ({"n": 1.5}, {"n": 2**60}, {"nested": [{"n": 10.0}]}):
            with self.subTest(content=content):
                validate_pdu_format(dict(valid_pdu("5"), content=content), "5")
                self.assertInvalid(dict(valid_pdu("6"), content=content), "6")
        self.assertInvalid(dict(valid_pdu("10"), unsigned={"age": 0.5}), "10")

    def test_v12_create_event(self):
        """A v12 create event must have no room_id; with one it is refused."""
        create = valid_pdu("12")
        del create["room_id"]
        create.update(
            type="m.room.create", state_key="", content={"room_version": "12"}, prev_events=[], auth_events=[]
        )
        validate_pdu_format(create, "12")
        self.assertInvalid(dict(create, room_id=V12_ROOM_ID), "12", "room_id")

    def test_v12_room_id_form(self):
        """Other v12 events need the hash room ID; older versions need !opaque:server."""
        self.assertInvalid(dict(valid_pdu("12"), room_id="!room:example.org"), "12", "room_id")
        self.assertInvalid(dict(valid_pdu("11"), room_id=V12_ROOM_ID), "11", "room_id")

    def test_v12_room_id_from_create_event(self):
        """An event whose room_id was computed from a v12 create event passes."""
        create = {
            "type": "m.room.create",
            "state_key": "",
            "sender": "@alice:example.org",
            "content": {},
            "depth": 1,
            "origin_server_ts": 1,
            "prev_events": [],
            "auth_events": [],
            "hashes": {"sha256": "x"},
            "signatures": {},
        }
        validate_pdu_format(dict(valid_pdu("12"), room_id=compute_room_id(create, "12")), "12")
