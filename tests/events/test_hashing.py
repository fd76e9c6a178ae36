"""Tests for content hashes, reference hashes, event IDs and v12 room IDs."""

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.errors import InvalidEventFormat
from mxref.events.canonical import encode_canonical_json
from mxref.events.hashing import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    compute_room_id,
    decode_base64,
    encode_unpadded_base64,
)
from mxref.events.redaction import redact
from mxref.events.room_versions import ROOM_VERSIONS

#: The spec's "minimally-sized event" (Appendices, Cryptographic Test Vectors).
MINIMAL_EVENT = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}
#: The spec's "event containing redactable content".
REDACTABLE_EVENT = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}
#: The spec's signature on MINIMAL_EVENT; part of the reference hash.
MINIMAL_EVENT_SIGNATURE = (
    "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
)


def signed_minimal_event():
    """MINIMAL_EVENT as the spec's event signing vector outputs it."""
    return dict(
        MINIMAL_EVENT,
        hashes={"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        signatures={"domain": {"ed25519:1": MINIMAL_EVENT_SIGNATURE}},
    )


class Base64Tests(unittest.TestCase):
    """Unpadded base64 as the appendix defines it."""

    def test_spec_examples(self):
        """The appendix's UNPADDED_BASE64 examples encode as shown."""
        examples = {
            b"": "",
            b"f": "Zg",
            b"fo": "Zm8",
            b"foo": "Zm9v",
            b"foob": "Zm9vYg",
            b"fooba": "Zm9vYmE",
            b"foobar": "Zm9vYmFy",
        }
        for data, text in examples.items():
            self.assertEqual(encode_unpadded_base64(data), text)
            self.assertEqual(decode_base64(text), data)

    def test_padded_accepted(self):
        """Decoding accepts padded input too."""
        self.assertEqual(decode_base64("Zm8="), b"fo")

    def test_urlsafe(self):
        """URL-safe encoding uses - and _ instead of + and /."""
        self.assertEqual(encode_unpadded_base64(b"\xfb\xff", urlsafe=True), "-_8")
        self.assertEqual(encode_unpadded_base64(b"\xfb\xff"), "+/8")

    def test_garbage_refused(self):
        """Non-base64 characters and non-strings are refused."""
        for text in ("Zm9v!", "Z", None):
            self.assertRaises(ValueError, decode_base64, text)


class ContentHashTests(unittest.TestCase):
    """The content hash covers everything but unsigned, signatures and hashes."""

    def test_spec_vectors(self):
        """The spec's two event signing vectors have the content hashes the spec gives."""
        self.assertEqual(compute_content_hash(MINIMAL_EVENT), "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos")
        self.assertEqual(
            compute_content_hash(REDACTABLE_EVENT), "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
        )

    def test_matches_definition(self):
        """The hash is unpadded base64 of sha256 over canonical JSON without the three excluded keys."""
        event = {
            "type": "t",
            "content": {"b": 1},
            "unsigned": {"x": 1},
            "signatures": {"s": {}},
            "hashes": {"sha256": "z"},
        }
        digest = hashlib.sha256(b'{"content":{"b":1},"type":"t"}').digest()
        self.assertEqual(compute_content_hash(event), base64.b64encode(digest).decode().rstrip("="))

    def test_add_and_check(self):
        """add_content_hash sets hashes.sha256 that check_content_hash then accepts; the input is unchanged."""
        event = dict(MINIMAL_EVENT, hashes={"other": "kept"})
        hashed = add_content_hash(event)
        self.assertEqual(
            hashed["hashes"], {"other": "kept", "sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"}
        )
        self.assertTrue(check_content_hash(hashed))
        self.assertEqual(event["hashes"], {"other": "kept"})
        self.assertEqual(hashed["unsigned"], MINIMAL_EVENT["unsigned"])

    def test_check_accepts_padding(self):
        """A padded hashes.sha256 is accepted."""
        event = dict(MINIMAL_EVENT, hashes={"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos="})
        self.assertTrue(check_content_hash(event))

    def test_check_fails(self):
        """A changed content, a missing hash or a malformed hash fails the check."""
        hashed = add_content_hash(REDACTABLE_EVENT)
        self.assertFalse(check_content_hash(dict(hashed, content={"body": "changed"})))
        self.assertFalse(check_content_hash(REDACTABLE_EVENT))
        self.assertFalse(check_content_hash(dict(hashed, hashes={"sha256": 5})))
        self.assertFalse(check_content_hash(dict(hashed, hashes="x")))
        self.assertFalse(check_content_hash(dict(hashed, hashes={"sha256": "not base64!"})))

    def test_redacted_copy_fails(self):
        """The redacted copy of an event with redactable content no longer matches its hash."""
        hashed = add_content_hash(REDACTABLE_EVENT)
        self.assertFalse(check_content_hash(redact(hashed, "10")))

    def test_unsigned_ignored(self):
        """Changing unsigned (which servers may do in transit) keeps the hash valid."""
        hashed = add_content_hash(REDACTABLE_EVENT)
        self.assertTrue(check_content_hash(dict(hashed, unsigned={"age": 99})))

    @given(st.dictionaries(st.text(max_size=8), st.integers(0, 1000) | st.text(max_size=8), max_size=10))
    def test_independent_of_key_order(self, content):
        """The content hash does not depend on the insertion order of keys."""
        event = {"type": "m.room.message", "content": content, "sender": "@a:b"}
        reordered = {
            "sender": "@a:b",
            "content": dict(reversed(list(content.items()))),
            "type": "m.room.message",
        }
        self.assertEqual(compute_content_hash(event), compute_content_hash(reordered))


class ReferenceHashTests(unittest.TestCase):
    """The reference hash covers the redacted event without signatures."""

    def test_definition(self):
        """It is sha256 of the canonical redacted event without signatures and unsigned."""
        event = signed_minimal_event()
        stripped = redact(event, "4")
        del stripped["signatures"]
        self.assertEqual(
            compute_reference_hash(event, "4"), hashlib.sha256(encode_canonical_json(stripped)).digest()
        )

    def test_ignores_signatures_and_redactable_content(self):
        """Adding signatures, unsigned data or redactable keys does not change the reference hash."""
        event = add_content_hash(MINIMAL_EVENT)
        before = compute_reference_hash(event, "10")
        changed = dict(event, signatures={"other": {"ed25519:x": "y"}}, unsigned={"z": 1}, extra_key=1)
        self.assertEqual(compute_reference_hash(changed, "10"), before)

    def test_covers_content_hash(self):
        """Changing hashes.sha256 changes the reference hash."""
        event = add_content_hash(MINIMAL_EVENT)
        changed = dict(event, hashes={"sha256": "AAAA"})
        self.assertNotEqual(compute_reference_hash(changed, "10"), compute_reference_hash(event, "10"))


class EventIdTests(unittest.TestCase):
    """Event IDs per room version."""

    def test_v4_vector(self):
        """The signed minimal event has the v4+ event ID derived in SPEC_MAP section d."""
        self.assertEqual(
            compute_event_id(signed_minimal_event(), "4"), "$8yif6p8EqgoSten2BLje9ntKm720NyFLWQv9tn8memc"
        )

    def test_v3_standard_base64(self):
        """Room version 3 uses standard base64 of the same reference hash."""
        digest = compute_reference_hash(signed_minimal_event(), "3")
        self.assertEqual(
            compute_event_id(signed_minimal_event(), "3"), "$" + base64.b64encode(digest).decode().rstrip("=")
        )

    def test_v3_and_v4_alphabets(self):
        """An event whose hash needs + or / in v3 gets - or _ in v4+, and the IDs are otherwise equal."""
        for n in range(200):
            event = dict(MINIMAL_EVENT, depth=n)
            v3_id, v4_id = compute_event_id(event, "3"), compute_event_id(event, "4")
            if "+" in v3_id or "/" in v3_id:
                break
        else:
            self.fail("no event with + or / in its v3 ID found")
        self.assertEqual(v3_id.replace("+", "-").replace("/", "_"), v4_id)
        self.assertNotIn("+", v4_id)
        self.assertNotIn("/", v4_id)
        self.assertEqual(len(v4_id), 44)

    def test_v1_v2_passthrough(self):
        """Room versions 1 and 2 return the event_id the sender chose."""
        for identifier in ("1", "2"):
            self.assertEqual(compute_event_id(REDACTABLE_EVENT, identifier), "$0:domain")

    def test_v1_missing_event_id(self):
        """A v1/v2 event without a string event_id is malformed."""
        self.assertRaises(InvalidEventFormat, compute_event_id, MINIMAL_EVENT, "1")
        self.assertRaises(InvalidEventFormat, compute_event_id, dict(MINIMAL_EVENT, event_id=5), "2")

    def test_v11_differs(self):
        """v11 redaction drops origin, so the same event has a different ID than under v10."""
        self.assertNotEqual(
            compute_event_id(signed_minimal_event(), "11"), compute_event_id(signed_minimal_event(), "10")
        )

    def test_every_computed_version(self):
        """Every version from 3 to 12 computes a 44-character $-prefixed ID."""
        for version in ROOM_VERSIONS.values():
            if version.is_event_id_computed:
                event_id = compute_event_id(signed_minimal_event(), version)
                self.assertTrue(event_id.startswith("$"))
                self.assertEqual(len(event_id), 44)


class RoomIdTests(unittest.TestCase):
    """v12 room IDs come from the create event's reference hash."""

    CREATE = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@creator:example.org",
        "content": {"room_version": "12"},
        "origin_server_ts": 1,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
    }

    def test_room_id_is_create_event_id(self):
        """The room ID is the create event's event ID with ! instead of $."""
        room_id = compute_room_id(self.CREATE, "12")
        self.assertEqual(room_id, "!" + compute_event_id(self.CREATE, "12")[1:])
        digest = compute_reference_hash(self.CREATE, "12")
        self.assertEqual(room_id, "!" + base64.urlsafe_b64encode(digest).decode().rstrip("="))

    def test_room_id_refusals(self):
        """A create event with a room_id, a non-create event, or an older room version is refused."""
        self.assertRaises(InvalidEventFormat, compute_room_id, dict(self.CREATE, room_id="!a:b"), "12")
        self.assertRaises(InvalidEventFormat, compute_room_id, dict(self.CREATE, type="m.room.name"), "12")
        self.assertRaises(InvalidEventFormat, compute_room_id, self.CREATE, "11")

    def test_content_changes_room_id(self):
        """v11 redaction keeps all create content, so any content change gives another room ID."""
        other = dict(self.CREATE, content={"room_version": "12", "additional_creators": ["@b:c"]})
        self.assertNotEqual(compute_room_id(other, "12"), compute_room_id(self.CREATE, "12"))
