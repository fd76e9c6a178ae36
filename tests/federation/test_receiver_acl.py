"""Server ACLs: the spec's order of checks, globs, ports, IP literals and case."""

import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.federation.acl import glob_to_regex, is_ip_literal, server_acl_allows

_LABEL = st.from_regex(re.compile(r"[a-z0-9]{1,8}", re.ASCII), fullmatch=True)
_HOST = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)


class ServerAclTests(unittest.TestCase):
    """``server_acl_allows`` follows "Server Access Control Lists"."""

    def test_no_acl_allows_everyone(self):
        """A room without an ACL event lets every server in."""
        self.assertTrue(server_acl_allows(None, "evil.example"))

    def test_empty_acl_denies_everyone(self):
        """An ACL with no allow list denies every server."""
        self.assertFalse(server_acl_allows({}, "good.example"))

    def test_deny_beats_allow(self):
        """A server matching both deny and allow is denied."""
        acl = {"allow": ["*"], "deny": ["*.evil.example"]}
        self.assertFalse(server_acl_allows(acl, "matrix.evil.example"))
        self.assertTrue(server_acl_allows(acl, "good.example"))

    def test_port_is_ignored(self):
        """The port of a server name plays no part in matching."""
        acl = {"allow": ["good.example"]}
        self.assertTrue(server_acl_allows(acl, "good.example:8448"))
        self.assertFalse(
            server_acl_allows({"allow": ["*"], "deny": ["good.example"]}, "good.example:1")
        )

    def test_question_mark_matches_one_character(self):
        """``?`` stands for exactly one character."""
        acl = {"allow": ["s?.example"]}
        self.assertTrue(server_acl_allows(acl, "s1.example"))
        self.assertFalse(server_acl_allows(acl, "s12.example"))
        self.assertFalse(server_acl_allows(acl, "s.example"))

    def test_ip_literals(self):
        """IP literals are denied when allow_ip_literals is false, even if allowed by glob."""
        acl = {"allow": ["*"], "allow_ip_literals": False}
        self.assertFalse(server_acl_allows(acl, "1.2.3.4:8448"))
        self.assertFalse(server_acl_allows(acl, "[2001:db8::1]:8448"))
        self.assertFalse(server_acl_allows(acl, "[::1]"))
        self.assertTrue(server_acl_allows(acl, "host.example"))
        self.assertTrue(server_acl_allows({"allow": ["*"]}, "1.2.3.4"))

    def test_malformed_entries_are_ignored(self):
        """Non-string entries and a non-list allow are skipped rather than failing."""
        self.assertTrue(server_acl_allows({"allow": [3, "*"]}, "a.example"))
        self.assertFalse(server_acl_allows({"allow": "*"}, "a.example"))

    @given(_HOST, st.integers(min_value=1, max_value=65535))
    def test_case_insensitive(self, host, port):
        """Matching ignores case in both the server name and the pattern."""
        self.assertTrue(server_acl_allows({"allow": [host.upper()]}, f"{host}:{port}"))
        self.assertFalse(server_acl_allows({"allow": ["*"], "deny": [host]}, host.upper()))

    @given(_HOST, _HOST)
    def test_star_matches_any_prefix(self, prefix, domain):
        """``*.domain`` allows every subdomain and nothing else."""
        acl = {"allow": [f"*.{domain}"]}
        self.assertTrue(server_acl_allows(acl, f"{prefix}.{domain}"))
        self.assertFalse(server_acl_allows(acl, f"{prefix}.{domain}x"))

    @given(st.text(alphabet="ab.*?", max_size=8), st.text(alphabet="ab.", max_size=8))
    def test_glob_agrees_with_fnmatch_semantics(self, glob, name):
        """The glob matcher agrees with a reference backtracking matcher."""
        self.assertEqual(bool(glob_to_regex(glob).fullmatch(name)), _reference_match(glob, name))

    def test_is_ip_literal(self):
        """IPv4 and bracketed IPv6 are literals; host names are not."""
        self.assertTrue(is_ip_literal("10.0.0.1"))
        self.assertTrue(is_ip_literal("[::1]"))
        self.assertFalse(is_ip_literal("example.org"))


def _reference_match(glob, name):
    if not glob:
        return not name
    if glob[0] == "*":
        return any(_reference_match(glob[1:], name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    if glob[0] == "?" or glob[0] == name[0]:
        return _reference_match(glob[1:], name[1:])
    return False
