"""Tests for this server's signing key file: Synapse's format, first-run creation, old keys."""

import os
import re
import stat

from signedjson.key import decode_signing_key_base64, encode_verify_key_base64, get_verify_key
from signedjson.sign import sign_json, verify_signed_json
from twisted.trial import unittest

from mxref.config import ConfigError, HomeServerConfig
from mxref.crypto.keys import (
    key_id,
    load_or_generate_signing_key,
    load_signing_key,
    new_key_version,
    old_verify_keys,
    write_new_signing_key,
)

# A key file as Synapse writes it (seed: 32 bytes, unpadded base64).
SYNAPSE_KEY_LINE = "ed25519 a_Qw7f ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY\n"


class SigningKeyFileTests(unittest.TestCase):
    """Reading, writing and generating key files."""

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "example.org.signing.key")

    def test_reads_synapse_key_file(self):
        """A Synapse key file is read with its algorithm, version and seed."""
        with open(self.path, "w") as f:
            f.write(SYNAPSE_KEY_LINE)
        key = load_signing_key(self.path)
        self.assertEqual(key_id(key), "ed25519:a_Qw7f")
        expected = decode_signing_key_base64(
            "ed25519", "a_Qw7f", "ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY"
        )
        self.assertEqual(bytes(key), bytes(expected))
        self.assertEqual(bytes(key), b"deadbeef" * 4)

    def test_generates_when_missing(self):
        """A missing key file is created in Synapse's one-line format, readable only by its owner."""
        key, generated = load_or_generate_signing_key(self.path)
        self.assertTrue(generated)
        with open(self.path) as f:
            text = f.read()
        self.assertRegex(text, r"^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(text.split()[1], key.version)

    def test_reuses_existing(self):
        """A second start reads the key the first start wrote."""
        first, _ = load_or_generate_signing_key(self.path)
        second, generated = load_or_generate_signing_key(self.path)
        self.assertFalse(generated)
        self.assertEqual(bytes(first), bytes(second))
        self.assertEqual(key_id(first), key_id(second))

    def test_generated_key_signs(self):
        """A generated key signs JSON that its verify key verifies."""
        key, _ = load_or_generate_signing_key(self.path)
        signed = sign_json({"a": 1}, "example.org", key)
        verify_signed_json(signed, "example.org", get_verify_key(key))

    def test_refuses_to_overwrite(self):
        """Writing a new key never replaces an existing file."""
        write_new_signing_key(self.path, "a_1")
        self.assertRaises(FileExistsError, write_new_signing_key, self.path, "a_2")
        self.assertEqual(load_signing_key(self.path).version, "a_1")

    def test_malformed_file(self):
        """A file that is not a key file gives a ConfigError naming signing_key_path."""
        with open(self.path, "w") as f:
            f.write("this is not a key\n")
        error = self.assertRaises(ConfigError, load_signing_key, self.path)
        self.assertEqual(error.key, "signing_key_path")

    def test_empty_file(self):
        """An empty key file is a ConfigError, not an IndexError."""
        open(self.path, "w").close()
        self.assertEqual(
            self.assertRaises(ConfigError, load_signing_key, self.path).key, "signing_key_path"
        )

    def test_missing_file(self):
        """Loading (without generating) a missing file is a ConfigError."""
        self.assertEqual(
            self.assertRaises(ConfigError, load_signing_key, self.path).key, "signing_key_path"
        )

    def test_versions(self):
        """New key versions use only the characters the spec allows, and differ."""
        versions = {new_key_version() for _ in range(50)}
        self.assertGreater(len(versions), 45)
        for version in versions:
            self.assertTrue(re.fullmatch(r"[a-zA-Z0-9_]+", version), version)


class OldKeysTests(unittest.TestCase):
    """old_signing_keys become verify keys with their expiry."""

    def test_old_keys(self):
        """Each configured old key decodes to the public key that was configured."""
        old_key = decode_signing_key_base64(
            "ed25519", "old", "ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY"
        )
        public = encode_verify_key_base64(get_verify_key(old_key))
        config = HomeServerConfig.from_dict(
            {
                "server_name": "example.org",
                "listeners": [{"port": 1, "resources": [{"names": ["client"]}]}],
                "old_signing_keys": {"ed25519:old": {"key": public, "expired_ts": 1500}},
            },
            "/tmp",
        )
        keys = old_verify_keys(config.keys)
        self.assertEqual(list(keys), ["ed25519:old"])
        self.assertEqual(keys["ed25519:old"].expired_ts, 1500)
        self.assertEqual(encode_verify_key_base64(keys["ed25519:old"].verify_key), public)
        verify_signed_json(
            sign_json({"x": 1}, "example.org", old_key),
            "example.org",
            keys["ed25519:old"].verify_key,
        )
