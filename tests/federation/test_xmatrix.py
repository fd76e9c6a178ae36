"""Tests for the X-Matrix Authorization header (Server-Server API, "Request Authentication")."""

from hypothesis import given, strategies as st
from twisted.trial import unittest

from mxref.errors import MatrixError, SignatureError
from mxref.events.signing import generate_signing_key, get_verify_key, verify_json
from mxref.federation.transport.xmatrix import (
    XMatrixCredentials,
    parse_authorization_header,
    request_signing_json,
    sign_request,
)

SPEC_EXAMPLE = (
    'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
    'key="ed25519:key1",sig="ABCDEF..."'
)


class ParseAuthorizationHeaderTests(unittest.TestCase):
    def assertUnauthorized(self, value):
        error = self.assertRaises(MatrixError, parse_authorization_header, value)
        self.assertEqual((error.code, error.errcode), (401, "M_UNAUTHORIZED"))
        return error

    def test_spec_example(self):
        """The spec's example header parses into its four parameters."""
        self.assertEqual(
            parse_authorization_header(SPEC_EXAMPLE),
            XMatrixCredentials("origin.hs.example.com", "destination.hs.example.com", "ed25519:key1", "ABCDEF..."),
        )

    def test_bytes_value(self):
        """A header value given as bytes parses like the text."""
        self.assertEqual(parse_authorization_header(SPEC_EXAMPLE.encode("ascii")).origin, "origin.hs.example.com")

    def test_case_insensitive_names_and_scheme(self):
        """Parameter names and the scheme name are matched case-insensitively."""
        credentials = parse_authorization_header('x-matrix ORIGIN="a.org",Destination="b.org",KeY="ed25519:k",SIG="s"')
        self.assertEqual(credentials, XMatrixCredentials("a.org", "b.org", "ed25519:k", "s"))

    def test_any_order_and_spaces(self):
        """Parameters may come in any order, with spaces around commas and '=' and several after the scheme."""
        credentials = parse_authorization_header('X-Matrix   sig="s" , key = "ed25519:k",origin="a.org"')
        self.assertEqual(credentials, XMatrixCredentials("a.org", None, "ed25519:k", "s"))

    def test_unquoted_values_with_colons(self):
        """Unquoted values are accepted, including ones with ':' that older servers send."""
        credentials = parse_authorization_header("X-Matrix origin=a.org:8448,key=ed25519:k,sig=abc+/d")
        self.assertEqual(credentials, XMatrixCredentials("a.org:8448", None, "ed25519:k", "abc+/d"))

    def test_escaped_quotes(self):
        """Backslash escapes in quoted values are undone."""
        credentials = parse_authorization_header(r'X-Matrix origin="a\".org",key="ed25519:\k",sig="x\\y"')
        self.assertEqual((credentials.origin, credentials.key_id, credentials.signature), ('a".org', "ed25519:k", "x\\y"))

    def test_unknown_parameters_ignored(self):
        """Unknown parameters (and empty list elements) are ignored."""
        credentials = parse_authorization_header('X-Matrix foo="bar",,origin="a.org",key="ed25519:k",sig="s",x=1')
        self.assertEqual(credentials.origin, "a.org")

    def test_signature_parameter_name(self):
        """The spec's parameter list name `signature` is accepted as well as `sig`."""
        credentials = parse_authorization_header('X-Matrix origin="a.org",key="ed25519:k",signature="s"')
        self.assertEqual(credentials.signature, "s")

    def test_missing_sig(self):
        """A header without a signature is refused with 401 M_UNAUTHORIZED."""
        self.assertIn("sig", self.assertUnauthorized('X-Matrix origin="a.org",key="ed25519:k"').msg)

    def test_missing_origin(self):
        """A header without an origin is refused."""
        self.assertIn("origin", self.assertUnauthorized('X-Matrix key="ed25519:k",sig="s"').msg)

    def test_missing_key(self):
        """A header without a key ID is refused, as is a key ID without an algorithm."""
        self.assertUnauthorized('X-Matrix origin="a.org",sig="s"')
        self.assertUnauthorized('X-Matrix origin="a.org",key="k",sig="s"')

    def test_other_scheme(self):
        """Another scheme (Bearer) or a bare scheme name is refused."""
        self.assertUnauthorized("Bearer abc")
        self.assertUnauthorized("X-Matrix")
        self.assertUnauthorized("X-Matrixorigin=a")

    def test_malformed(self):
        """Unterminated quotes, missing '=', duplicates and junk between parameters are refused."""
        for value in [
            'X-Matrix origin="a.org,key="ed25519:k",sig="s"x',
            'X-Matrix origin="a.org",key="ed25519:k",sig',
            'X-Matrix origin="a.org",origin="b.org",key="ed25519:k",sig="s"',
            'X-Matrix origin="a.org" key="ed25519:k",sig="s"',
            'X-Matrix origin=,key="ed25519:k",sig="s"',
            'X-Matrix origin="a.org",key="ed25519:k",sig="s\\',
            b'X-Matrix origin="\xff",key="ed25519:k",sig="s"',
        ]:
            self.assertUnauthorized(value)

    @given(
        origin=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
        destination=st.text(min_size=1, max_size=20),
    )
    def test_quoted_round_trip(self, origin, destination):
        """Any value written as an escaped quoted-string parses back to itself."""
        def quote(value):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        header = f"X-Matrix origin={quote(origin)},destination={quote(destination)},key=\"ed25519:k\",sig=\"s\""
        credentials = parse_authorization_header(header)
        self.assertEqual((credentials.origin, credentials.destination), (origin, destination))


class SignRequestTests(unittest.TestCase):
    def setUp(self):
        self.key = generate_signing_key("k1")

    def test_header_shape(self):
        """The header has one space after X-Matrix, lower-case names, quoted values and `sig`."""
        header = sign_request(self.key, "a.org", "b.org", "GET", "/_matrix/federation/v1/version")
        self.assertRegex(header, r'^X-Matrix origin="a\.org",destination="b\.org",key="ed25519:k1",sig="[A-Za-z0-9+/]+"$')

    def test_signature_covers_request(self):
        """The signature verifies over method, uri, origin, destination and content, and over nothing else."""
        content = {"pdus": [], "edus": []}
        header = sign_request(self.key, "a.org", "b.org", "PUT", "/_matrix/federation/v1/send/1?x=y", content)
        credentials = parse_authorization_header(header)
        verify_key = get_verify_key(self.key)

        def signed(**changes):
            fields = dict(method="PUT", uri="/_matrix/federation/v1/send/1?x=y", origin="a.org",
                          destination="b.org", content=content)
            fields.update(changes)
            obj = request_signing_json(**fields)
            obj["signatures"] = {"a.org": {credentials.key_id: credentials.signature}}
            return obj

        verify_json(signed(), "a.org", verify_key)
        for tampered in [
            signed(method="POST"),
            signed(uri="/_matrix/federation/v1/send/2?x=y"),
            signed(uri="/_matrix/federation/v1/send/1"),
            signed(destination="c.org"),
            signed(content={"pdus": [], "edus": [{}]}),
            signed(content=None),
        ]:
            self.assertRaises(SignatureError, verify_json, tampered, "a.org", verify_key)

    def test_request_signing_json_without_content(self):
        """A request without a body signs an object without `content`."""
        self.assertEqual(
            request_signing_json("GET", "/x", "a.org", "b.org"),
            {"method": "GET", "uri": "/x", "origin": "a.org", "destination": "b.org"},
        )
        self.assertEqual(request_signing_json("PUT", "/x", "a.org", "b.org", {})["content"], {})
