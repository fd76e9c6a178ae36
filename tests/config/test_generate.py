"""Tests for the homeserver.yaml generated on first run."""

import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.config import HomeServerConfig, generate_config, load_config


class GenerateConfigTests(unittest.TestCase):
    """generate_config writes a commented configuration that loads back cleanly."""

    def setUp(self):
        self.data_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.data_dir)

    def load(self, text):
        path = os.path.join(self.data_dir, "homeserver.yaml")
        with open(path, "w") as f:
            f.write(text)
        return load_config(path)

    def test_round_trip_without_warnings(self):
        """The generated file loads with no warnings and the server name given."""
        config = self.load(generate_config("example.org", self.data_dir))
        self.assertEqual(config.warnings, ())
        self.assertEqual(config.server_name, "example.org")

    def test_is_commented(self):
        """The generated file explains itself with comments."""
        text = generate_config("localhost", self.data_dir)
        self.assertGreater(
            sum(1 for line in text.splitlines() if line.lstrip().startswith("#")), 20
        )
        self.assertIn("mxref-register", text)

    def test_listeners(self):
        """The client API is plain HTTP on 127.0.0.1:8008 and federation is TLS on 8448."""
        config = self.load(generate_config("localhost", self.data_dir))
        client, federation = config.listeners
        self.assertEqual(
            (client.port, client.bind_addresses, client.tls, client.resource_names),
            (8008, ("127.0.0.1",), False, ("client",)),
        )
        self.assertEqual(
            (federation.port, federation.tls, federation.resource_names),
            (8448, True, ("federation",)),
        )
        self.assertEqual(federation.bind_addresses, ("127.0.0.1",))

    def test_public_server_listens_everywhere_for_federation(self):
        """A server with a real name listens for federation on every address."""
        config = self.load(generate_config("example.org", self.data_dir))
        self.assertEqual(config.listeners[1].bind_addresses, ("::", "0.0.0.0"))

    def test_files_in_data_dir(self):
        """Database, signing key, certificate and media store are inside the data directory."""
        config = self.load(generate_config("localhost:8448", self.data_dir))
        for path in (
            config.database.sqlite_path,
            config.keys.signing_key_path,
            config.tls.tls_certificate_path,
            config.tls.tls_private_key_path,
            config.media.media_store_path,
        ):
            self.assertEqual(os.path.dirname(path), self.data_dir)
        self.assertEqual(
            os.path.basename(config.keys.signing_key_path), "localhost:8448.signing.key"
        )

    def test_random_shared_secret(self):
        """Each generated file has its own random registration_shared_secret."""
        first = HomeServerConfig.from_dict(
            yaml.safe_load(generate_config("a.example", self.data_dir)), self.data_dir
        )
        second = HomeServerConfig.from_dict(
            yaml.safe_load(generate_config("a.example", self.data_dir)), self.data_dir
        )
        self.assertGreaterEqual(len(first.registration.registration_shared_secret), 32)
        self.assertNotEqual(
            first.registration.registration_shared_secret,
            second.registration.registration_shared_secret,
        )

    def test_given_shared_secret(self):
        """A given shared secret is written as-is, even with YAML-special characters."""
        config = self.load(
            generate_config("localhost", self.data_dir, registration_shared_secret='a: "b" #c')
        )
        self.assertEqual(config.registration.registration_shared_secret, 'a: "b" #c')

    def test_ipv6_server_name(self):
        """An IPv6-literal server name is written quoted and loads back."""
        config = self.load(generate_config("[::1]:8448", self.data_dir))
        self.assertEqual(config.server_name, "[::1]:8448")

    def test_registration_closed(self):
        """Open registration is off in a new configuration."""
        config = self.load(generate_config("localhost", self.data_dir))
        self.assertFalse(config.registration.enable_registration)

    def test_bad_server_name(self):
        """generate_config refuses an invalid server name."""
        self.assertRaises(ValueError, generate_config, "not valid", self.data_dir)


server_names = st.one_of(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=15),
        min_size=1,
        max_size=4,
    ).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
).flatmap(
    lambda host: st.one_of(st.just(host), st.integers(1, 65535).map(lambda port: f"{host}:{port}"))
)


class GeneratedRoundTripTests(unittest.TestCase):
    """Any valid server name gives a configuration that loads back to it."""

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(server_names)
    def test_any_server_name_round_trips(self, server_name):
        """The generated file for any server name loads without warnings and with that name."""
        text = generate_config(server_name, "/srv/mxref")
        config = HomeServerConfig.from_dict(yaml.safe_load(text), "/srv/mxref")
        self.assertEqual(config.server_name, server_name)
        self.assertEqual(config.warnings, ())
        self.assertEqual(
            config.keys.signing_key_path, os.path.join("/srv/mxref", f"{server_name}.signing.key")
        )
