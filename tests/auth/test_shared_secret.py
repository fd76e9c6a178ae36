"""Tests for the HMAC of Synapse's shared-secret registration API."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.auth.shared_secret import compute_registration_mac, registration_mac_matches


class RegistrationMacTests(unittest.TestCase):
    """compute_registration_mac follows Synapse's documented algorithm."""

    def test_known_value_notadmin(self):
        """The MAC for a normal user matches one computed independently with `openssl dgst -sha1 -hmac`."""
        # printf 'abc\0alice\0pw\0notadmin' | openssl dgst -sha1 -hmac 'shared secret'
        self.assertEqual(
            compute_registration_mac("shared secret", "abc", "alice", "pw", False),
            "e9ba54013d0cbba8456b5b675efdb3517c14fc57",
        )

    def test_known_value_admin(self):
        """The MAC for an admin matches one computed independently with `openssl dgst -sha1 -hmac`."""
        # printf 'xyz123\0bob\0correct horse\0admin' | openssl dgst -sha1 -hmac 's3cr3t'
        self.assertEqual(
            compute_registration_mac("s3cr3t", "xyz123", "bob", "correct horse", True),
            "a498072e8823c26c6e1525a979f6d407f89b41c5",
        )

    def test_admin_flag_changes_mac(self):
        """Granting admin changes the MAC, so a captured request cannot be replayed as an admin one."""
        self.assertNotEqual(
            compute_registration_mac("k", "n", "u", "p", True),
            compute_registration_mac("k", "n", "u", "p", False),
        )

    def test_user_type_appended(self):
        """A user type is appended after a further NUL byte."""
        import hashlib
        import hmac

        expected = hmac.new(b"k", b"n\x00u\x00p\x00notadmin\x00bot", hashlib.sha1).hexdigest()
        self.assertEqual(
            compute_registration_mac("k", "n", "u", "p", False, user_type="bot"), expected
        )

    def test_matches(self):
        """registration_mac_matches accepts the right MAC and refuses a wrong one."""
        mac = compute_registration_mac("k", "n", "u", "p", False)
        self.assertTrue(registration_mac_matches("k", mac, "n", "u", "p", False))
        self.assertFalse(registration_mac_matches("k", mac, "n", "u", "p", True))
        self.assertFalse(registration_mac_matches("k", "0" * 40, "n", "u", "p", False))
        self.assertFalse(registration_mac_matches("k", "not hex ☃", "n", "u", "p", False))

    @given(st.text(min_size=1), st.text(), st.text(), st.text(), st.booleans())
    def test_always_40_hex_digits(self, secret, nonce, user, password, admin):
        """Any input gives 40 lower-case hex digits."""
        mac = compute_registration_mac(secret, nonce, user, password, admin)
        self.assertRegex(mac, r"^[0-9a-f]{40}$")
