"""Tests for signing keys, signed JSON and signed events."""

import copy

import nacl.signing
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.errors import InvalidEventFormat, SignatureError
from mxref.events.hashing import check_content_hash, decode_base64, encode_unpadded_base64
from mxref.events.redaction import redact
from mxref.events.room_versions import ROOM_VERSIONS
from mxref.events.signing import (
    decode_signing_key_base64,
    decode_verify_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
    key_id_of,
    read_signing_keys,
    required_signature_servers,
    sign_event,
    sign_json,
    verify_event_signatures,
    verify_json,
    write_signing_keys,
)
from tests.events.test_hashing import MINIMAL_EVENT, REDACTABLE_EVENT

#: The spec's test vector key: seed, server name and key ID.
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SERVER_NAME = "domain"
KEY_ID = "ed25519:1"

#: Signatures from the spec (v1-v10 redaction) and derived in SPEC_MAP section d (v11/v12).
MINIMAL_SIGNATURE = "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
REDACTABLE_SIGNATURE = (
    "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
)
MINIMAL_SIGNATURE_V11 = (
    "Jxp+1glFcZM+nnHpY0EkedRR7u0VmKsJYGnQqIvqus3UvL5X/p1y6wSkLhGoTBel6MZ9lrMIzUqrjqFquWJKBw"
)
REDACTABLE_SIGNATURE_V11 = (
    "4WQB/6LN2OtkUN/+18xUNB/U4RTX1N3EeKBdlCxux08YO8izKDrSRqML1XB8V97IK7AujkNO1xMl7TaBLA4kDw"
)


def spec_key():
    return decode_signing_key_base64("ed25519", "1", SEED)


def lookup_for(*keys, valid_until_ts=None):
    """A key_lookup callable serving the verify keys of ``(server, signing key)`` pairs."""
    table = {}
    for server_name, signing_key in keys:
        verify_key = get_verify_key(signing_key)
        entry = verify_key if valid_until_ts is None else (verify_key, valid_until_ts)
        table[(server_name, key_id_of(signing_key))] = entry
    return lambda server_name, key_id: table.get((server_name, key_id))


def message_event(**changes):
    event = {
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "origin_server_ts": 1000,
        "depth": 4,
        "prev_events": [],
        "auth_events": [],
        "content": {"body": "hello", "msgtype": "m.text"},
        "hashes": {},
        "signatures": {},
    }
    event.update(changes)
    return event


def with_event_id(event, version):
    """v1/v2 events carry an event_id on the sender's server."""
    if not version.is_event_id_computed:
        return dict(event, event_id="$abc:domain")
    return event


class KeyTests(unittest.TestCase):
    """Signing keys, their public halves and Synapse's key file format."""

    def test_spec_public_key(self):
        """The spec seed's public key is the one derived in SPEC_MAP section d."""
        self.assertEqual(encode_verify_key_base64(spec_key()), "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI")
        self.assertEqual(
            encode_verify_key_base64(get_verify_key(spec_key())),
            "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI",
        )

    def test_generate(self):
        """A generated key has key ID ed25519:<version> and differs from the next one."""
        key = generate_signing_key("a_1")
        self.assertEqual(key_id_of(key), "ed25519:a_1")
        self.assertNotEqual(
            encode_verify_key_base64(key), encode_verify_key_base64(generate_signing_key("a_1"))
        )

    def test_key_file_round_trip(self):
        """Keys written in Synapse's format read back with the same version and public key."""
        keys = [spec_key(), generate_signing_key("b")]
        text = write_signing_keys(keys)
        self.assertTrue(text.startswith(f"ed25519 1 {SEED}"[:-1]))
        read = read_signing_keys("\n" + text + "\n")
        self.assertEqual([key.version for key in read], ["1", "b"])
        self.assertEqual(
            [encode_verify_key_base64(k) for k in read], [encode_verify_key_base64(k) for k in keys]
        )

    def test_key_file_spec_seed(self):
        """A one-line key file with the spec seed gives the spec key."""
        (key,) = read_signing_keys(f"ed25519 1 {SEED}\n")
        self.assertEqual(bytes(key), bytes(spec_key()))

    def test_malformed_key_file(self):
        """A malformed line is refused, naming its line number."""
        error = self.assertRaises(ValueError, read_signing_keys, f"ed25519 1 {SEED}\ned25519 onlytwo\n")
        self.assertIn("line 2", str(error))
        self.assertRaises(ValueError, read_signing_keys, "rsa 1 AAAA\n")

    def test_bare_nacl_key(self):
        """A bare PyNaCl verify key needs an explicit key ID to check a signature."""
        bare = nacl.signing.VerifyKey(bytes(get_verify_key(spec_key())))
        signed = sign_json({}, SERVER_NAME, spec_key())
        self.assertRaises(ValueError, verify_json, signed, SERVER_NAME, bare)
        verify_json(signed, SERVER_NAME, bare, key_id=KEY_ID)

    def test_decode_verify_key(self):
        """A published verify key decodes to a key that checks the spec's signatures."""
        verify_key = decode_verify_key_base64(KEY_ID, "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI")
        verify_json(sign_json({}, SERVER_NAME, spec_key()), SERVER_NAME, verify_key)
        self.assertRaises(ValueError, decode_verify_key_base64, "rsa:1", "AAAA")
        self.assertRaises(ValueError, decode_verify_key_base64, KEY_ID, "AAAA")


class SignJsonTests(unittest.TestCase):
    """Signing and checking plain JSON objects (Appendices, Signing JSON)."""

    def test_spec_vector_empty(self):
        """Signing {} gives exactly the spec's signed object."""
        self.assertEqual(
            sign_json({}, SERVER_NAME, spec_key()),
            {
                "signatures": {
                    "domain": {
                        KEY_ID: "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                    }
                }
            },
        )

    def test_spec_vector_values(self):
        """Signing {"one": 1, "two": "Two"} gives exactly the spec's signed object."""
        self.assertEqual(
            sign_json({"one": 1, "two": "Two"}, SERVER_NAME, spec_key()),
            {
                "one": 1,
                "two": "Two",
                "signatures": {
                    "domain": {
                        KEY_ID: "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
                    }
                },
            },
        )

    def test_keeps_unsigned_and_other_signatures(self):
        """Existing signatures and unsigned survive and are not covered; the input is unchanged."""
        original = {"a": 1, "unsigned": {"age": 1}, "signatures": {"other": {"ed25519:x": "sig"}}}
        snapshot = copy.deepcopy(original)
        signed = sign_json(original, SERVER_NAME, spec_key())
        self.assertEqual(original, snapshot)
        self.assertEqual(signed["signatures"]["other"], {"ed25519:x": "sig"})
        self.assertEqual(signed["unsigned"], {"age": 1})
        verify_json(dict(signed, unsigned={"age": 2}), SERVER_NAME, get_verify_key(spec_key()))

    def test_verify_failures(self):
        """A missing, altered or non-base64 signature, or a changed object, fails naming server and key."""
        verify_key = get_verify_key(spec_key())
        signed = sign_json({"a": 1}, SERVER_NAME, spec_key())
        for bad in (
            {"a": 1},
            dict(signed, a=2),
            dict(signed, signatures={"domain": {KEY_ID: "!!!"}}),
            dict(signed, signatures={"domain": {KEY_ID: encode_unpadded_base64(b"\0" * 64)}}),
        ):
            error = self.assertRaises(SignatureError, verify_json, bad, SERVER_NAME, verify_key)
            self.assertIn("domain", error.msg)
            self.assertIn(KEY_ID, error.msg)
            self.assertEqual(error.errcode, "M_FORBIDDEN")

    def test_padded_signature_accepted(self):
        """A signature written with = padding still verifies."""
        signed = sign_json({"a": 1}, SERVER_NAME, spec_key())
        signed["signatures"]["domain"][KEY_ID] += "=="
        verify_json(signed, SERVER_NAME, get_verify_key(spec_key()))


class SignEventTests(unittest.TestCase):
    """Signing events (Server-Server API, Signing Events) and the spec's event vectors."""

    def test_minimal_event_vector(self):
        """The minimal event signs to the spec's hash and signature, and unsigned is kept (v1-v10)."""
        for identifier in ("1", "3", "4", "10"):
            signed = sign_event(MINIMAL_EVENT, SERVER_NAME, spec_key(), identifier)
            self.assertEqual(
                signed,
                dict(
                    MINIMAL_EVENT,
                    hashes={"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
                    signatures={"domain": {KEY_ID: MINIMAL_SIGNATURE}},
                ),
            )

    def test_redactable_event_vector(self):
        """The event with redactable content signs to the spec's hash and signature (v1-v10)."""
        for identifier in ("1", "2", "9"):
            signed = sign_event(REDACTABLE_EVENT, SERVER_NAME, spec_key(), identifier)
            self.assertEqual(signed["hashes"], {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"})
            self.assertEqual(signed["signatures"], {"domain": {KEY_ID: REDACTABLE_SIGNATURE}})
            self.assertEqual(signed["unsigned"], {"age_ts": 1000000})

    def test_v11_vectors(self):
        """Under v11/v12 redaction the hashes are the same and the signatures are SPEC_MAP's derived ones."""
        for identifier in ("11", "12"):
            minimal = sign_event(MINIMAL_EVENT, SERVER_NAME, spec_key(), identifier)
            redactable = sign_event(REDACTABLE_EVENT, SERVER_NAME, spec_key(), identifier)
            self.assertEqual(minimal["hashes"]["sha256"], "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos")
            self.assertEqual(minimal["signatures"]["domain"][KEY_ID], MINIMAL_SIGNATURE_V11)
            self.assertEqual(redactable["hashes"]["sha256"], "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g")
            self.assertEqual(redactable["signatures"]["domain"][KEY_ID], REDACTABLE_SIGNATURE_V11)

    def test_input_not_modified(self):
        """sign_event returns a new event and leaves the input as it was."""
        snapshot = copy.deepcopy(MINIMAL_EVENT)
        sign_event(MINIMAL_EVENT, SERVER_NAME, spec_key(), "10")
        self.assertEqual(MINIMAL_EVENT, snapshot)

    def test_second_signature_added(self):
        """A second server's signature is added beside the first, and both verify."""
        other_key = generate_signing_key("k2")
        event = message_event(
            type="m.room.member",
            state_key="@joiner:other.example",
            sender="@joiner:other.example",
            content={"membership": "join", "join_authorised_via_users_server": "@u:domain"},
        )
        signed = sign_event(event, "other.example", other_key, "9")
        signed = sign_event(signed, SERVER_NAME, spec_key(), "9")
        self.assertEqual(set(signed["signatures"]), {"domain", "other.example"})
        verify_event_signatures(
            signed, "9", lookup_for((SERVER_NAME, spec_key()), ("other.example", other_key))
        )


class VerifyEventSignaturesTests(unittest.TestCase):
    """Checking received events' signatures."""

    def test_spec_vectors_verify(self):
        """The spec's signed events verify with the spec key, and their redacted copies too."""
        lookup = lookup_for((SERVER_NAME, spec_key()))
        signed = sign_event(REDACTABLE_EVENT, SERVER_NAME, spec_key(), "1")
        verify_event_signatures(signed, "1", lookup)
        verify_event_signatures(redact(signed, "1"), "1", lookup)
        self.assertFalse(check_content_hash(redact(signed, "1")))

    def test_missing_signature(self):
        """An unsigned event, or one signed by another server only, fails naming the sender's server."""
        event = message_event()
        error = self.assertRaises(SignatureError, verify_event_signatures, event, "10", lookup_for())
        self.assertIn("domain", error.msg)
        signed_elsewhere = sign_event(event, "elsewhere", spec_key(), "10")
        self.assertRaises(
            SignatureError,
            verify_event_signatures,
            signed_elsewhere,
            "10",
            lookup_for(("elsewhere", spec_key())),
        )

    def test_unknown_key_fails(self):
        """A signature whose key cannot be found does not count."""
        signed = sign_event(message_event(), SERVER_NAME, spec_key(), "10")
        error = self.assertRaises(SignatureError, verify_event_signatures, signed, "10", lookup_for())
        self.assertIn(KEY_ID, error.msg)

    def test_wrong_key_fails(self):
        """A signature that does not verify with the published key fails, naming server and key."""
        signed = sign_event(message_event(), SERVER_NAME, spec_key(), "10")
        impostor = generate_signing_key("1")
        error = self.assertRaises(
            SignatureError, verify_event_signatures, signed, "10", lookup_for((SERVER_NAME, impostor))
        )
        self.assertIn("domain", error.msg)
        self.assertIn(KEY_ID, error.msg)

    def test_unknown_algorithms_ignored(self):
        """Key IDs with unknown algorithms are skipped; with none left the check fails."""
        signed = sign_event(message_event(), SERVER_NAME, spec_key(), "10")
        signed["signatures"]["domain"]["curve999:1"] = "whatever"
        verify_event_signatures(signed, "10", lookup_for((SERVER_NAME, spec_key())))
        only_unknown = dict(signed, signatures={"domain": {"curve999:1": "whatever"}})
        self.assertRaises(
            SignatureError, verify_event_signatures, only_unknown, "10", lookup_for((SERVER_NAME, spec_key()))
        )

    def test_unknown_extra_key_skipped(self):
        """An extra signature by a key we cannot find is skipped when a known key verifies."""
        signed = sign_event(message_event(), SERVER_NAME, spec_key(), "10")
        signed["signatures"]["domain"]["ed25519:gone"] = "AAAA"
        verify_event_signatures(signed, "10", lookup_for((SERVER_NAME, spec_key())))

    def test_padded_signature_accepted(self):
        """A padded base64 signature on an event is accepted."""
        signed = sign_event(message_event(), SERVER_NAME, spec_key(), "10")
        signed["signatures"]["domain"][KEY_ID] += "=="
        verify_event_signatures(signed, "10", lookup_for((SERVER_NAME, spec_key())))

    def test_key_validity_enforced_from_v5(self):
        """From v5 a key valid only until before origin_server_ts does not count; v4 ignores validity."""
        event = message_event(origin_server_ts=2000)
        expired = lookup_for((SERVER_NAME, spec_key()), valid_until_ts=1999)
        still_valid = lookup_for((SERVER_NAME, spec_key()), valid_until_ts=2000)
        for identifier in ("5", "10", "12"):
            signed = sign_event(event, SERVER_NAME, spec_key(), identifier)
            self.assertRaises(SignatureError, verify_event_signatures, signed, identifier, expired)
            verify_event_signatures(signed, identifier, still_valid)
        for identifier in ("3", "4"):
            signed = sign_event(event, SERVER_NAME, spec_key(), identifier)
            verify_event_signatures(signed, identifier, expired)

    def test_v1_v2_need_event_id_server(self):
        """In v1/v2 the server in event_id must sign too; from v3 it need not."""
        event = message_event(event_id="$abc:origin.example")
        signed = sign_event(event, SERVER_NAME, spec_key(), "1")
        lookup = lookup_for((SERVER_NAME, spec_key()))
        error = self.assertRaises(SignatureError, verify_event_signatures, signed, "1", lookup)
        self.assertIn("origin.example", error.msg)
        origin_key = generate_signing_key("o")
        both = sign_event(signed, "origin.example", origin_key, "2")
        verify_event_signatures(
            both, "2", lookup_for((SERVER_NAME, spec_key()), ("origin.example", origin_key))
        )
        self.assertEqual(required_signature_servers(event, "3"), {"domain"})

    def test_restricted_join_needs_authorising_server(self):
        """A v8+ join naming join_authorised_via_users_server needs that user's server's signature."""
        event = message_event(
            type="m.room.member",
            state_key="@u:domain",
            content={"membership": "join", "join_authorised_via_users_server": "@admin:resident.example"},
        )
        self.assertEqual(required_signature_servers(event, "8"), {"domain", "resident.example"})
        self.assertEqual(required_signature_servers(event, "7"), {"domain"})
        self.assertEqual(
            required_signature_servers(
                dict(event, content={"membership": "leave", "join_authorised_via_users_server": "@a:x"}), "9"
            ),
            {"domain"},
        )
        signed = sign_event(event, SERVER_NAME, spec_key(), "9")
        error = self.assertRaises(
            SignatureError, verify_event_signatures, signed, "9", lookup_for((SERVER_NAME, spec_key()))
        )
        self.assertIn("resident.example", error.msg)
        signed_v7 = sign_event(event, SERVER_NAME, spec_key(), "7")
        verify_event_signatures(signed_v7, "7", lookup_for((SERVER_NAME, spec_key())))

    def test_invite_does_not_need_invitee_server(self):
        """An invite needs only the sender's server here (the invitee's signature is checked elsewhere)."""
        event = message_event(
            type="m.room.member", state_key="@x:invitee.example", content={"membership": "invite"}
        )
        self.assertEqual(required_signature_servers(event, "10"), {"domain"})

    def test_unparseable_sender(self):
        """A sender without a server name is a format error, not a crash."""
        self.assertRaises(
            InvalidEventFormat, required_signature_servers, message_event(sender="nobody"), "10"
        )
        self.assertRaises(
            InvalidEventFormat, required_signature_servers, message_event(event_id="$nocolon"), "1"
        )

    @settings(max_examples=30, deadline=None)
    @given(
        st.dictionaries(st.text(max_size=6), st.integers(0, 100) | st.text(max_size=6), max_size=5),
        st.sampled_from(["m.room.message", "m.room.member", "m.room.create", "m.room.power_levels"]),
    )
    def test_round_trip_every_version(self, content, event_type):
        """An event signed with sign_event verifies, with a valid content hash, in each of the twelve versions."""
        for version in ROOM_VERSIONS.values():
            event = with_event_id(message_event(type=event_type, content=content), version)
            signed = sign_event(event, SERVER_NAME, spec_key(), version)
            verify_event_signatures(signed, version, lookup_for((SERVER_NAME, spec_key())))
            self.assertTrue(check_content_hash(signed))

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(sorted(ROOM_VERSIONS)), st.data())
    def test_any_change_detected(self, identifier, data):
        """Changing any value of a signed event breaks its signature or, for redactable parts, its content hash."""
        version = ROOM_VERSIONS[identifier]
        event = with_event_id(
            message_event(
                type="m.room.member",
                state_key="@u:domain",
                content={"membership": "join", "displayname": "Alice"},
                origin="domain",
            ),
            version,
        )
        signed = sign_event(event, SERVER_NAME, spec_key(), version)
        lookup = lookup_for((SERVER_NAME, spec_key()))
        paths = [
            (key,)
            for key in signed
            if key not in ("signatures", "hashes", "content", "prev_events", "auth_events")
        ]
        paths += [("content", key) for key in signed["content"]] + [("hashes", "sha256")]
        path = data.draw(st.sampled_from(sorted(paths)))
        tampered = copy.deepcopy(signed)
        target = tampered
        for step in path[:-1]:
            target = target[step]
        old = target[path[-1]]
        new = data.draw(
            (st.integers(0, 10**6) if isinstance(old, int) else st.text(min_size=1, max_size=8)).filter(
                lambda v: v != old
            )
        )
        target[path[-1]] = new
        try:
            verify_event_signatures(tampered, version, lookup)
        except (SignatureError, InvalidEventFormat):
            return
        self.assertFalse(check_content_hash(tampered), f"change of {path} went unnoticed")

    @settings(max_examples=40, deadline=None)
    @given(st.data())
    def test_flipped_signature_byte_fails(self, data):
        """Flipping any bit of the signature makes verification fail."""
        signed = sign_event(message_event(), SERVER_NAME, spec_key(), "10")
        raw = bytearray(decode_base64(signed["signatures"]["domain"][KEY_ID]))
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= 1 << data.draw(st.integers(0, 7))
        signed["signatures"]["domain"][KEY_ID] = encode_unpadded_base64(bytes(raw))
        self.assertRaises(
            SignatureError, verify_event_signatures, signed, "10", lookup_for((SERVER_NAME, spec_key()))
        )
