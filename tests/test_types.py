"""Tests for mxref.types: the identifier grammars of the spec's appendices and room versions."""

import random
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.errors import InvalidIdentifier
from mxref.events.room_versions import ROOM_VERSIONS
from mxref.types import (
    EventID,
    RoomAlias,
    RoomID,
    ServerName,
    UserID,
    generate_opaque_id,
    is_v12_room_id,
    is_valid_localpart,
    is_valid_namespaced_identifier,
    is_valid_opaque_identifier,
    is_valid_server_name,
    parse_key_id,
    validate_new_localpart,
    validate_room_version_string,
)

#: Event IDs given as examples in the spec's room version 3 and 4 pages.
V3_EVENT_ID = "$CD66HAED5npg6074c6pDtLKalHjVfYb2q4Q3LZgrW6o"
V4_EVENT_ID = "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
#: A v12 room ID: the v4 example event ID with the sigil "!".
V12_ROOM_ID = "!Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"

NOT_STRINGS = [None, 42, 4.2, True, b"@alice:example.org", ["@alice:example.org"], {"a": 1}, object()]


class ServerNameTests(unittest.TestCase):
    """Server names follow ``hostname [":" port]``."""

    def test_spec_examples(self):
        """Every example server name in the spec parses and prints back unchanged."""
        cases = {
            "matrix.org": ("matrix.org", None, False),
            "matrix.org:8888": ("matrix.org", 8888, False),
            "1.2.3.4": ("1.2.3.4", None, True),
            "1.2.3.4:1234": ("1.2.3.4", 1234, True),
            "[1234:5678::abcd]": ("[1234:5678::abcd]", None, True),
            "[1234:5678::abcd]:5678": ("[1234:5678::abcd]", 5678, True),
        }
        for text, (host, port, is_ip) in cases.items():
            name = ServerName.parse(text)
            self.assertEqual((name.host, name.port, name.is_ip_literal), (host, port, is_ip), text)
            self.assertEqual(str(name), text)
            self.assertTrue(is_valid_server_name(text), text)

    def test_other_valid_names(self):
        """Edge cases the grammar allows are accepted."""
        for text in [
            "localhost",
            "LOCALHOST",
            "a",
            "a" * 255,
            "my-server.example.org",
            "1.2.3",  # all-digit DNS name, not a dotted quad
            "example.org.",  # the grammar allows a trailing dot
            "example.org:1",
            "example.org:65535",
            "0.0.0.0:8448",
            "255.255.255.255",
            "[::1]",
            "[::1]:8448",
            "[::ffff:1.2.3.4]:80",
            "[ABCD:EF01::1]",
        ]:
            self.assertEqual(str(ServerName.parse(text)), text)

    def test_invalid_names(self):
        """Bad ports, empty hosts, bad IP literals and non-ASCII names are refused."""
        for text in [
            "",
            ":",
            ":8448",
            "example.org:",
            "example.org:0",
            "example.org:65536",
            "example.org:99999",
            "example.org:123456",
            "example.org:-1",
            "example.org:+80",
            "example.org:8a",
            "example.org: 80",
            "example.org:08448",
            "example.org:\uff18\uff14\uff14\uff18",  # full-width digits
            "example.org:80:80",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[]",
            "[:::]",
            "[1.2.3.4]",
            "[::1%eth0]",
            "[g::1]",
            "[1234:5678::abcd]:5678:1",
            "::1",
            "1.2.3.256",
            "256.0.0.1",
            "999.999.999.999:80",
            "a" * 256,
            "example .org",
            "example_org",
            "example.org/path",
            "user@example.org",
            "ex\u00e4mple.org",
            "\u4f8b\u3048.jp",
            "example.org\n",
        ]:
            with self.assertRaises(InvalidIdentifier, msg=repr(text)):
                ServerName.parse(text)
            self.assertFalse(is_valid_server_name(text), repr(text))

    def test_messages_name_the_problem(self):
        """The error message says which part of the server name is wrong."""
        cases = {
            "example.org:65536": "65536",
            "example.org:": "port",
            "[::1": "']'",
            "[12345::1]": "IPv6",
            "1.2.3.300": "255",
            "ex\u00e4mple.org": "DNS name",
            "": "empty",
        }
        for text, fragment in cases.items():
            error = self.assertRaises(InvalidIdentifier, ServerName.parse, text)
            self.assertIn(fragment, error.msg, text)
            self.assertEqual(error.errcode, "M_INVALID_PARAM")
            self.assertEqual(error.code, 400)

    def test_non_strings_are_invalid(self):
        """A server name that is not a string is an invalid identifier, not a TypeError."""
        for value in NOT_STRINGS:
            self.assertRaises(InvalidIdentifier, ServerName.parse, value)
            self.assertFalse(is_valid_server_name(value))

    def test_case_sensitive(self):
        """MATRIX.ORG and matrix.org are different server names."""
        self.assertNotEqual(ServerName.parse("MATRIX.ORG"), ServerName.parse("matrix.org"))

    def test_ip_address_helpers(self):
        """IP literals expose their address; IPv6 hosts can be had without brackets."""
        name = ServerName.parse("[1234:5678::abcd]:5678")
        self.assertEqual(str(name.ip_address), "1234:5678::abcd")
        self.assertEqual(name.unbracketed_host, "1234:5678::abcd")
        self.assertEqual(str(ServerName.parse("10.0.0.1").ip_address), "10.0.0.1")
        self.assertIsNone(ServerName.parse("matrix.org").ip_address)
        self.assertEqual(ServerName.parse("matrix.org").unbracketed_host, "matrix.org")

    def test_constructor_checks(self):
        """Building a ServerName directly applies the same rules as parsing."""
        self.assertEqual(str(ServerName("example.org", 8448)), "example.org:8448")
        for host, port in [("example.org", 0), ("example.org", 70000), ("example.org", True),
                           ("example.org", "8448"), ("::1", None), ("", None), (None, None)]:
            self.assertRaises(InvalidIdentifier, ServerName, host, port)


class UserIDTests(unittest.TestCase):
    """User IDs: strict grammar for new users, historical grammar for everyone else."""

    def test_parse(self):
        """A user ID splits into localpart and server name at the first colon."""
        user = UserID.parse("@alice:matrix.org:8448")
        self.assertEqual(user.localpart, "alice")
        self.assertEqual(user.server_name, "matrix.org:8448")
        self.assertEqual(user.domain, "matrix.org:8448")
        self.assertEqual(str(user), "@alice:matrix.org:8448")
        self.assertEqual(UserID("alice", "matrix.org:8448"), user)

    def test_current_grammar(self):
        """Localparts of a-z, 0-9 and . _ = - / + pass the strict check."""
        for localpart in ["alice", "a", "0", "a.b_c=d-e/f+g", "=2f", "_bridge_user"]:
            user = UserID.parse(f"@{localpart}:example.org", strict=True)
            self.assertEqual(user.localpart, localpart)
            self.assertTrue(is_valid_localpart(localpart))

    def test_historical_ids_only_outside_strict(self):
        """Upper case, spaces, non-ASCII, control characters and empty localparts are historical only."""
        for localpart in ["Alice", "", "al ice", "\u00e9lodie", "\u2603", "tab\there", "\x7f", "a*b", "\U0001f600"]:
            text = f"@{localpart}:example.org"
            self.assertEqual(UserID.parse(text).localpart, localpart)
            self.assertRaises(InvalidIdentifier, UserID.parse, text, strict=True)
            self.assertFalse(is_valid_localpart(localpart))

    def test_never_valid(self):
        """NUL, lone surrogates, a missing sigil, colon or server name are always refused."""
        for text in [
            "@a\x00b:example.org",
            "@a\ud800b:example.org",
            "alice:example.org",
            "#alice:example.org",
            "@alice",
            "@alice:",
            "@alice:exa mple.org",
            "@alice:example.org:0",
            "@alice:b:c",
            "",
            "@",
        ]:
            self.assertRaises(InvalidIdentifier, UserID.parse, text)

    def test_255_bytes_counted_in_utf8(self):
        """The 255 limit is in bytes: 2-byte characters hit it at about half as many characters."""
        # "@" + localpart + ":example.org" is 13 bytes plus the localpart.
        self.assertEqual(len(str(UserID.parse("@" + "a" * 242 + ":example.org")).encode()), 255)
        self.assertRaises(InvalidIdentifier, UserID.parse, "@" + "a" * 243 + ":example.org")
        fits = "@" + "\u00e9" * 121 + ":example.org"  # 242 bytes of localpart
        self.assertEqual(UserID.parse(fits).localpart, "\u00e9" * 121)
        too_long = "@" + "\u00e9" * 122 + ":example.org"  # 135 characters, 257 bytes
        self.assertLess(len(too_long), 255)
        error = self.assertRaises(InvalidIdentifier, UserID.parse, too_long)
        self.assertIn("257 bytes", error.msg)
        self.assertRaises(InvalidIdentifier, UserID.parse, "@" + "\U0001f600" * 61 + ":example.org")

    def test_case_sensitive_server(self):
        """@user:matrix.org and @user:MATRIX.ORG are different users."""
        self.assertNotEqual(UserID.parse("@user:matrix.org"), UserID.parse("@user:MATRIX.ORG"))

    def test_compliance(self):
        """Empty localparts and characters outside U+0021-U+007E make a user ID non-compliant."""
        self.assertTrue(UserID.parse("@alice:x").is_compliant)
        self.assertTrue(UserID.parse("@Alice*:x").is_compliant)
        for text in ["@:x", "@al ice:x", "@\u00e9:x", "@a\x01:x"]:
            self.assertFalse(UserID.parse(text).is_compliant, text)

    def test_non_strings_are_invalid(self):
        """A user ID that is not a string is an invalid identifier, not a TypeError."""
        for value in NOT_STRINGS:
            self.assertRaises(InvalidIdentifier, UserID.parse, value)
            self.assertRaises(InvalidIdentifier, UserID.parse, value, strict=True)
        self.assertRaises(InvalidIdentifier, UserID, None, "example.org")
        self.assertRaises(InvalidIdentifier, UserID, "alice", None)

    def test_constructor_checks(self):
        """Building a UserID directly refuses colons in the localpart and bad server names."""
        self.assertRaises(InvalidIdentifier, UserID, "a:b", "example.org")
        self.assertRaises(InvalidIdentifier, UserID, "alice", "example.org:")


class RegistrationLocalpartTests(unittest.TestCase):
    """Localparts requested at registration are refused with M_INVALID_USERNAME."""

    def test_accepts_current_grammar(self):
        """A lower-case localpart, with '+' allowed since v1.8, is accepted."""
        self.assertIsNone(validate_new_localpart("alice+work"))
        self.assertIsNone(validate_new_localpart("alice", server_name="example.org"))

    def test_refusals_use_invalid_username(self):
        """Bad usernames raise M_INVALID_USERNAME, the registration error code."""
        for localpart in ["", "Alice", "al ice", "alice:x", "\u00e9", "a*", None, 7]:
            error = self.assertRaises(InvalidIdentifier, validate_new_localpart, localpart)
            self.assertEqual(error.errcode, "M_INVALID_USERNAME", repr(localpart))
            self.assertEqual(error.code, 400)

    def test_whole_id_length(self):
        """With the server name given, a localpart making the user ID exceed 255 bytes is refused."""
        self.assertIsNone(validate_new_localpart("a" * 242, server_name="example.org"))
        error = self.assertRaises(InvalidIdentifier, validate_new_localpart, "a" * 243, server_name="example.org")
        self.assertEqual(error.errcode, "M_INVALID_USERNAME")
        self.assertIn("255", error.msg)


class RoomIDTests(unittest.TestCase):
    """Room IDs: ``!opaque:server`` before room version 12, ``!hash`` from 12."""

    def test_domain_form(self):
        """A v1-11 room ID has an opaque part and a server name."""
        room = RoomID.parse("!r:domain")
        self.assertEqual((room.opaque_id, room.server_name), ("r", "domain"))
        self.assertEqual(str(room), "!r:domain")
        self.assertIsNone(room.create_event_id)
        self.assertEqual(RoomID.parse("!\u00e9\x01 x:[::1]:8448").opaque_id, "\u00e9\x01 x")

    def test_v12_form(self):
        """A v12 room ID is '!' and 43 URL-safe base64 characters, with no server name."""
        room = RoomID.parse(V12_ROOM_ID)
        self.assertIsNone(room.server_name)
        self.assertEqual(str(room), V12_ROOM_ID)
        self.assertEqual(room.create_event_id, V4_EVENT_ID)
        self.assertTrue(is_v12_room_id(V12_ROOM_ID))
        for text in ["!r:domain", "!" + "a" * 42, "!" + "a" * 44, "!" + "a/" * 21 + "a", "$" + "a" * 43, None]:
            self.assertFalse(is_v12_room_id(text), repr(text))

    def test_invalid(self):
        """Room IDs without server name that are not v12 hashes, NUL and bad sigils are refused."""
        for text in ["!abc", "!" + "a" * 42, "!" + "+" * 43, "r:domain", "#r:domain", "!a\x00:domain",
                     "!a:", "!a:bad host", ""]:
            self.assertRaises(InvalidIdentifier, RoomID.parse, text)

    def test_per_room_version(self):
        """With a room version, only that version's room ID form is accepted."""
        self.assertEqual(RoomID.parse(V12_ROOM_ID, room_version="12").server_name, None)
        self.assertEqual(RoomID.parse("!r:domain", room_version=ROOM_VERSIONS["11"]).server_name, "domain")
        self.assertRaises(InvalidIdentifier, RoomID.parse, "!r:domain", room_version="12")
        self.assertRaises(InvalidIdentifier, RoomID.parse, V12_ROOM_ID, room_version="11")
        error = self.assertRaises(InvalidIdentifier, RoomID.parse, "!r:domain", room_version="99")
        self.assertEqual(error.errcode, "M_UNSUPPORTED_ROOM_VERSION")

    def test_255_bytes(self):
        """A room ID may be 255 bytes but not 256, counting multi-byte characters as bytes."""
        self.assertEqual(len(str(RoomID.parse("!" + "a" * 247 + ":domain"))), 255)
        self.assertRaises(InvalidIdentifier, RoomID.parse, "!" + "a" * 248 + ":domain")
        self.assertRaises(InvalidIdentifier, RoomID.parse, "!" + "\u20ac" * 83 + ":domain")  # 258 bytes

    def test_non_strings_are_invalid(self):
        """A room ID that is not a string is an invalid identifier."""
        for value in NOT_STRINGS:
            self.assertRaises(InvalidIdentifier, RoomID.parse, value)


class RoomAliasTests(unittest.TestCase):
    """Room aliases are ``#localpart:server_name``."""

    def test_parse(self):
        """An alias keeps any localpart except ':' and NUL, and its server name."""
        alias = RoomAlias.parse("#somewhere:example.org")
        self.assertEqual((alias.localpart, alias.server_name, alias.domain),
                         ("somewhere", "example.org", "example.org"))
        self.assertEqual(str(alias), "#somewhere:example.org")
        self.assertEqual(RoomAlias.parse("#Caf\u00e9 \u2615:example.org").localpart, "Caf\u00e9 \u2615")

    def test_invalid(self):
        """Missing server names, NUL, wrong sigils and over-long aliases are refused."""
        for text in ["#somewhere", "#a\x00:example.org", "!a:example.org", "#a:b:c", "#a:",
                     "#" + "\u00e9" * 122 + ":example.org", None, 5]:
            self.assertRaises(InvalidIdentifier, RoomAlias.parse, text)


class EventIDTests(unittest.TestCase):
    """Event IDs have one of three formats depending on the room version."""

    def test_any_format_without_room_version(self):
        """Without a room version, v1, v3 and v4 style event IDs are all accepted."""
        self.assertEqual(EventID.parse("$0:domain").server_name, "domain")
        self.assertEqual(str(EventID.parse(V3_EVENT_ID)), V3_EVENT_ID)
        self.assertIsNone(EventID.parse(V4_EVENT_ID).server_name)

    def test_per_room_version(self):
        """Each room version accepts only its own event ID format."""
        v3_with_slash = "$" + "ab+/" * 10 + "abc"
        v4_with_dash = "$" + "ab-_" * 10 + "abc"
        expectations = {
            "$0:domain": {"1", "2"},
            v3_with_slash: {"3"},
            v4_with_dash: {str(v) for v in range(4, 13)},
            V3_EVENT_ID: {str(v) for v in range(3, 13)},  # only letters and digits: both alphabets
        }
        for text, good_versions in expectations.items():
            for version in ROOM_VERSIONS:
                if version in good_versions:
                    self.assertEqual(str(EventID.parse(text, room_version=version)), text)
                    self.assertEqual(str(EventID.parse(text, room_version=ROOM_VERSIONS[version])), text)
                else:
                    self.assertRaises(InvalidIdentifier, EventID.parse, text, room_version=version)

    def test_invalid(self):
        """Wrong lengths, missing sigils, NUL and bad server names are refused."""
        for text in ["$abc", "$" + "a" * 42, "$" + "a" * 44, "$" + "a" * 42 + "=", "$" + "a" * 42 + "!",
                     "abc:domain", "!abc:domain", "$a\x00:domain", "$a:", "$a:do main", "$", "",
                     "$" + "a" * 250 + ":domain"]:
            self.assertRaises(InvalidIdentifier, EventID.parse, text)

    def test_unknown_room_version(self):
        """An unknown room version is reported as M_UNSUPPORTED_ROOM_VERSION."""
        error = self.assertRaises(InvalidIdentifier, EventID.parse, V4_EVENT_ID, room_version="org.example.x")
        self.assertEqual(error.errcode, "M_UNSUPPORTED_ROOM_VERSION")
        self.assertRaises(InvalidIdentifier, EventID.parse, V4_EVENT_ID, room_version=4)

    def test_non_strings_are_invalid(self):
        """An event ID that is not a string is an invalid identifier."""
        for value in NOT_STRINGS:
            self.assertRaises(InvalidIdentifier, EventID.parse, value)
            self.assertRaises(InvalidIdentifier, EventID.parse, value, room_version="10")


class SmallGrammarTests(unittest.TestCase):
    """Room versions, namespaced and opaque identifiers, and key IDs."""

    def test_room_version_strings(self):
        """Room versions are 1-32 characters of a-z, 0-9, '.' and '-'."""
        for text in ["1", "12", "org.matrix.msc1234", "a-b.c", "a" * 32]:
            self.assertEqual(validate_room_version_string(text), text)
        for text in ["", "A", "1_2", "a" * 33, "1 ", "\u0661", "v\u00e9", None, 1]:
            self.assertRaises(InvalidIdentifier, validate_room_version_string, text)

    def test_namespaced_identifiers(self):
        """Namespaced identifiers start with a-z and use a-z, 0-9, '-', '_' and '.' up to 255 characters."""
        for text in ["m.room.message", "com.example.identifier", "a", "a" * 255, "a-b_c.d9"]:
            self.assertTrue(is_valid_namespaced_identifier(text), text)
        for text in ["", "M.room", "1abc", ".a", "_a", "m.room message", "a" * 256, "\u00e9", "a\n", None]:
            self.assertFalse(is_valid_namespaced_identifier(text), repr(text))

    def test_opaque_identifiers(self):
        """Opaque identifiers use RFC 3986 unreserved characters, 1-255 of them by default."""
        for text in ["abc-._~XYZ09", "a", "a" * 255]:
            self.assertTrue(is_valid_opaque_identifier(text), text)
        for text in ["", "a b", "a/b", "a+b", "a" * 256, "\u00e9", "a\n", None]:
            self.assertFalse(is_valid_opaque_identifier(text), repr(text))
        self.assertFalse(is_valid_opaque_identifier("a" * 33, max_length=32))
        self.assertTrue(is_valid_opaque_identifier("a" * 32, max_length=32))

    def test_key_ids(self):
        """Key IDs split into algorithm and a version of a-z, A-Z, 0-9 and '_'."""
        self.assertEqual(parse_key_id("ed25519:1"), ("ed25519", "1"))
        self.assertEqual(parse_key_id("ed25519:abc123"), ("ed25519", "abc123"))
        self.assertEqual(parse_key_id("ed25519:0ldK3y"), ("ed25519", "0ldK3y"))
        self.assertEqual(parse_key_id("ed25519:a_b"), ("ed25519", "a_b"))
        for text in ["ed25519", ":1", "ed25519:", "ed25519:a-b", "ed25519:a:b", "ed25519:\u00e4", "ed25519:a\n", None]:
            self.assertRaises(InvalidIdentifier, parse_key_id, text)

    def test_generated_opaque_ids(self):
        """Generated IDs have the asked length, use letters and digits, and depend on the randomness."""
        first = generate_opaque_id(18, random.Random(1))
        self.assertEqual(len(first), 18)
        self.assertTrue(first.isascii() and first.isalnum())
        self.assertTrue(is_valid_opaque_identifier(first))
        self.assertEqual(first, generate_opaque_id(18, random.Random(1)))
        self.assertNotEqual(first, generate_opaque_id(18, random.Random(2)))
        self.assertEqual(RoomID.parse(f"!{first}:example.org").opaque_id, first)
        self.assertRaises(ValueError, generate_opaque_id, 0, random.Random(1))


class ModuleIsolationTests(unittest.TestCase):
    """mxref.types stays in the pure core."""

    def test_no_network_or_storage_imports(self):
        """Importing and using mxref.types loads neither twisted.internet, twisted.web nor mxref.storage."""
        script = (
            "import sys\n"
            "import mxref.types as t\n"
            "t.EventID.parse(%r, room_version='10')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['twisted', 'internet'], ['twisted', 'web']) or m.startswith('mxref.storage'))\n"
            "print(bad)\n" % V4_EVENT_ID
        )
        output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        self.assertEqual(output.stdout.strip(), "[]")


# --- Property tests ---------------------------------------------------------


def _is_out_of_range_quad(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts) and any(int(p) > 255 for p in parts)


dns_names = st.from_regex(r"[A-Za-z0-9.-]{1,60}", fullmatch=True).filter(lambda h: not _is_out_of_range_quad(h))
ipv4_hosts = st.ip_addresses(v=4).map(str)
ipv6_hosts = st.ip_addresses(v=6).map(lambda address: f"[{address}]")
ports = st.none() | st.integers(min_value=1, max_value=65535)
server_names = st.builds(ServerName, dns_names | ipv4_hosts | ipv6_hosts, ports)
historical_localparts = st.text(
    alphabet=st.characters(exclude_characters=":\x00", exclude_categories=("Cs",)), max_size=60
)
strict_localparts = st.from_regex(r"[a-z0-9._=/+-]{1,60}", fullmatch=True)
url_safe_hashes = st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True)
standard_hashes = st.from_regex(r"[A-Za-z0-9+/]{43}", fullmatch=True)


def _fits(identifier):
    return len(identifier.encode("utf-8")) <= 255


#: Text that looks enough like identifiers to reach the deeper checks.
identifier_like_text = st.text(alphabet="@!#$:[].-_/+=09afAF \x00\u00e9\U0001f600", max_size=50) | st.text(max_size=300)
anything = identifier_like_text | st.none() | st.integers() | st.binary() | st.lists(st.text(), max_size=2)


class RoundTripPropertyTests(unittest.TestCase):
    """Valid identifiers print and parse back to themselves."""

    @given(server_names)
    def test_server_names(self, name):
        """ServerName.parse(str(name)) == name for generated server names."""
        self.assertEqual(ServerName.parse(str(name)), name)

    @given(historical_localparts, server_names)
    def test_historical_user_ids(self, localpart, server_name):
        """Any historical localpart that fits in 255 bytes round-trips as a user ID."""
        text = f"@{localpart}:{server_name}"
        if not _fits(text):
            self.assertRaises(InvalidIdentifier, UserID.parse, text)
            return
        user = UserID.parse(text)
        self.assertEqual((user.localpart, user.server_name), (localpart, str(server_name)))
        self.assertEqual(UserID.parse(str(user)), user)

    @given(strict_localparts, server_names)
    def test_strict_user_ids(self, localpart, server_name):
        """Current-grammar localparts round-trip under the strict check."""
        user = UserID(localpart, str(server_name))
        self.assertEqual(UserID.parse(str(user), strict=True), user)

    @given(historical_localparts, server_names)
    def test_room_ids_and_aliases(self, localpart, server_name):
        """Room IDs and aliases with a server name round-trip."""
        for cls, sigil in [(RoomID, "!"), (RoomAlias, "#")]:
            text = f"{sigil}{localpart}:{server_name}"
            if _fits(text):
                self.assertEqual(str(cls.parse(text)), text)
            else:
                self.assertRaises(InvalidIdentifier, cls.parse, text)

    @given(url_safe_hashes)
    def test_v12_room_ids(self, digest):
        """v12 room IDs round-trip and name their create event."""
        room = RoomID.parse("!" + digest, room_version="12")
        self.assertEqual(RoomID.parse(str(room)), room)
        self.assertEqual(EventID.parse(room.create_event_id, room_version="12").opaque_id, digest)

    @given(standard_hashes, url_safe_hashes, historical_localparts, server_names)
    def test_event_ids(self, v3_hash, v4_hash, opaque, server_name):
        """Event IDs of each format round-trip under their room version."""
        for text, version in [("$" + v3_hash, "3"), ("$" + v4_hash, "4"), (f"${opaque}:{server_name}", "1")]:
            if _fits(text):
                event_id = EventID.parse(text, room_version=version)
                self.assertEqual(EventID.parse(str(event_id)), event_id)
                self.assertEqual(str(event_id), text)


class RobustnessPropertyTests(unittest.TestCase):
    """Arbitrary input never makes a parser raise anything but InvalidIdentifier."""

    def _only_invalid_identifier(self, parse, value):
        try:
            result = parse(value)
        except InvalidIdentifier as error:
            self.assertTrue(error.msg)
            return None
        return result

    @settings(max_examples=300)
    @given(anything)
    def test_parsers(self, value):
        """Every parser either returns a value or raises InvalidIdentifier."""
        for parse in [
            ServerName.parse,
            UserID.parse,
            lambda v: UserID.parse(v, strict=True),
            RoomAlias.parse,
            RoomID.parse,
            lambda v: RoomID.parse(v, room_version="12"),
            EventID.parse,
            lambda v: EventID.parse(v, room_version="3"),
            validate_room_version_string,
            parse_key_id,
            validate_new_localpart,
        ]:
            result = self._only_invalid_identifier(parse, value)
            if isinstance(result, (UserID, RoomAlias, RoomID, EventID)):
                self.assertLessEqual(len(str(result).encode("utf-8")), 255)
                self.assertEqual(str(result), value)
            if isinstance(result, ServerName):
                self.assertEqual(str(result), value)
                self.assertTrue(str(result).isascii())

    @given(anything)
    def test_predicates(self, value):
        """The is_valid_* predicates answer True or False for any input."""
        for predicate in [is_valid_server_name, is_valid_localpart, is_v12_room_id,
                          is_valid_namespaced_identifier, is_valid_opaque_identifier]:
            self.assertIn(predicate(value), (True, False))
