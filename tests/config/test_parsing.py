"""Tests for reading homeserver.yaml into typed sections: defaults, Synapse shapes, warnings and errors."""

import ipaddress
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from mxref.config import ConfigError, HomeServerConfig, load_config
from mxref.config.federation import DEFAULT_IP_RANGE_BLACKLIST
from mxref.config.reader import parse_duration_ms, parse_size
from mxref.config.server import split_server_name
from mxref.events.room_versions import DEFAULT_ROOM_VERSION

CONFIG_DIR = "/srv/matrix"


def minimal(**extra):
    """The smallest valid configuration, plus ``extra`` top-level keys."""
    data = {
        "server_name": "example.org",
        "listeners": [{"port": 8008, "resources": [{"names": ["client"]}]}],
    }
    data.update(extra)
    return data


def parse(data):
    return HomeServerConfig.from_dict(data, CONFIG_DIR)


class DefaultsTests(unittest.TestCase):
    """What a minimal configuration means."""

    def setUp(self):
        self.config = parse(minimal())

    def test_no_warnings(self):
        """A minimal configuration produces no warnings."""
        self.assertEqual(self.config.warnings, ())

    def test_server_defaults(self):
        """public_baseurl defaults to https://<server_name>/ and the room version to mxref's default."""
        self.assertEqual(self.config.server_name, "example.org")
        self.assertEqual(self.config.server.public_baseurl, "https://example.org/")
        self.assertEqual(self.config.server.default_room_version, DEFAULT_ROOM_VERSION)
        self.assertFalse(self.config.server.serve_server_wellknown)
        self.assertFalse(self.config.server.allow_public_rooms_without_auth)
        self.assertIsNone(self.config.server.pid_file)

    def test_listener_defaults(self):
        """A listener without bind_addresses listens on every IPv6 and IPv4 address, without TLS."""
        (listener,) = self.config.listeners
        self.assertEqual(listener.bind_addresses, ("::", "0.0.0.0"))
        self.assertFalse(listener.tls)
        self.assertFalse(listener.x_forwarded)
        self.assertEqual(listener.resource_names, ("client",))
        self.assertFalse(listener.resources[0].compress)

    def test_database_defaults_to_sqlite_in_config_dir(self):
        """Without a database section, SQLite's homeserver.db in the config directory is used."""
        self.assertEqual(self.config.database.name, "sqlite3")
        self.assertEqual(
            self.config.database.sqlite_path, os.path.join(CONFIG_DIR, "homeserver.db")
        )

    def test_key_and_media_paths(self):
        """The signing key and media store default to files named after the server in the config directory."""
        self.assertEqual(
            self.config.keys.signing_key_path, os.path.join(CONFIG_DIR, "example.org.signing.key")
        )
        self.assertEqual(
            self.config.media.media_store_path, os.path.join(CONFIG_DIR, "media_store")
        )
        self.assertEqual(self.config.media.max_upload_size, 50 * 1024 * 1024)
        self.assertEqual(self.config.keys.key_refresh_interval_ms, 86400000)
        self.assertEqual(self.config.keys.trusted_key_servers, ())

    def test_rate_limit_defaults_are_synapses(self):
        """The rc_* defaults are Synapse's numbers."""
        limits = self.config.ratelimiting
        self.assertEqual((limits.rc_message.per_second, limits.rc_message.burst_count), (0.2, 10))
        self.assertEqual(
            (limits.rc_registration.per_second, limits.rc_registration.burst_count), (0.17, 3)
        )
        self.assertEqual(
            (limits.rc_login_address.per_second, limits.rc_login_address.burst_count), (0.003, 5)
        )
        self.assertEqual(
            (
                limits.rc_login_failed_attempts.per_second,
                limits.rc_login_failed_attempts.burst_count,
            ),
            (0.17, 3),
        )
        self.assertEqual(limits.rc_federation.reject_limit, 50)

    def test_registration_closed(self):
        """Registration is closed and shared-secret registration off by default."""
        self.assertFalse(self.config.registration.enable_registration)
        self.assertIsNone(self.config.registration.registration_shared_secret)

    def test_federation_blacklist_is_synapses_private_ranges(self):
        """Outbound requests to private, loopback and link-local addresses are refused by default."""
        federation = self.config.federation
        for address in (
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ):
            self.assertFalse(federation.is_ip_allowed(address), address)
        for address in ("8.8.8.8", "2001:4860:4860::8888"):
            self.assertTrue(federation.is_ip_allowed(address), address)
        self.assertEqual(len(federation.ip_range_blacklist), len(DEFAULT_IP_RANGE_BLACKLIST) + 2)

    def test_tls_verification_on(self):
        """Other servers' certificates are checked by default."""
        self.assertTrue(self.config.tls.federation_verify_certificates)
        self.assertIsNone(self.config.tls.tls_certificate_path)


class SynapseShapesTests(unittest.TestCase):
    """Fragments of Synapse configurations are accepted with their meaning."""

    def test_synapse_generated_config(self):
        """The configuration Synapse generates loads, with warnings only for options mxref does not use."""
        text = """
server_name: "my.domain.name"
pid_file: /data/homeserver.pid
listeners:
  - port: 8008
    tls: false
    type: http
    x_forwarded: true
    resources:
      - names: [client, federation]
        compress: false
database:
  name: sqlite3
  args:
    database: /data/homeserver.db
log_config: "/data/my.domain.name.log.config"
media_store_path: /data/media_store
registration_shared_secret: "abc"
report_stats: false
macaroon_secret_key: "def"
form_secret: "ghi"
signing_key_path: "/data/my.domain.name.signing.key"
trusted_key_servers:
  - server_name: "matrix.org"
"""
        config = parse(yaml.safe_load(text))
        self.assertEqual(config.server.pid_file, "/data/homeserver.pid")
        self.assertEqual(config.server.log_config, "/data/my.domain.name.log.config")
        self.assertEqual(config.listeners[0].resource_names, ("client", "federation"))
        self.assertTrue(config.listeners[0].x_forwarded)
        self.assertEqual(config.database.sqlite_path, "/data/homeserver.db")
        self.assertEqual(config.keys.trusted_key_servers[0].server_name, "matrix.org")
        self.assertEqual(config.registration.registration_shared_secret, "abc")
        self.assertEqual(len(config.warnings), 3)
        for key in ("report_stats", "macaroon_secret_key", "form_secret"):
            self.assertTrue(
                any(w.startswith(key + ":") and "Synapse" in w for w in config.warnings), key
            )

    def test_postgres_database(self):
        """A psycopg2 database passes every libpq argument through and keeps the pool size apart."""
        config = parse(
            minimal(
                database={
                    "name": "psycopg2",
                    "txn_limit": 10000,
                    "args": {
                        "user": "synapse_user",
                        "password": "secretpassword",
                        "dbname": "synapse",
                        "host": "localhost",
                        "port": 5432,
                        "cp_min": 5,
                        "cp_max": 10,
                        "sslmode": "require",
                    },
                }
            )
        )
        database = config.database
        self.assertEqual(database.name, "psycopg2")
        self.assertEqual((database.cp_min, database.cp_max), (5, 10))
        self.assertEqual(
            dict(database.connect_args),
            {
                "user": "synapse_user",
                "password": "secretpassword",
                "dbname": "synapse",
                "host": "localhost",
                "port": 5432,
                "sslmode": "require",
            },
        )
        self.assertIsNone(database.sqlite_path)
        self.assertEqual(
            config.warnings,
            ("database.txn_limit: is a Synapse option that mxref does not use; ignored",),
        )

    def test_tls_listener_with_client_and_federation(self):
        """One TLS listener may serve client and federation together, on chosen IPv4 and IPv6 addresses."""
        config = parse(
            minimal(
                listeners=[
                    {
                        "port": 8448,
                        "tls": True,
                        "type": "http",
                        "bind_addresses": ["::1", "127.0.0.1"],
                        "resources": [
                            {"names": ["client"], "compress": True},
                            {"names": ["federation", "keys"]},
                        ],
                    }
                ],
                tls_certificate_path="cert.pem",
                tls_private_key_path="/etc/key.pem",
            )
        )
        (listener,) = config.listeners
        self.assertTrue(listener.tls)
        self.assertEqual(listener.bind_addresses, ("::1", "127.0.0.1"))
        self.assertEqual(listener.resource_names, ("client", "federation", "keys"))
        self.assertTrue(listener.resources[0].compress)
        self.assertEqual(config.tls.tls_certificate_path, os.path.join(CONFIG_DIR, "cert.pem"))
        self.assertEqual(config.tls.tls_private_key_path, "/etc/key.pem")

    def test_old_bind_address(self):
        """Synapse's older single bind_address is understood."""
        config = parse(
            minimal(
                listeners=[
                    {"port": 1, "bind_address": "127.0.0.1", "resources": [{"names": ["client"]}]}
                ]
            )
        )
        self.assertEqual(config.listeners[0].bind_addresses, ("127.0.0.1",))

    def test_metrics_listener_skipped(self):
        """A Synapse metrics listener is skipped with a warning, not refused."""
        config = parse(
            minimal(
                listeners=[
                    {"port": 8008, "resources": [{"names": ["client"]}]},
                    {"port": 9000, "type": "metrics", "bind_addresses": ["127.0.0.1"]},
                ]
            )
        )
        self.assertEqual(len(config.listeners), 1)
        self.assertEqual(
            config.warnings,
            (
                "listeners[1].type: 'metrics' listeners are not supported by mxref; "
                "listener skipped",
            ),
        )

    def test_rate_limits(self):
        """rc_message, rc_registration and rc_login's three buckets take Synapse's shapes; missing keys keep defaults."""
        config = parse(
            minimal(
                rc_message={"per_second": 1, "burst_count": 20},
                rc_registration={"per_second": 0.5},
                rc_login={
                    "address": {"per_second": 1, "burst_count": 2},
                    "account": {"per_second": 3, "burst_count": 4},
                    "failed_attempts": {"per_second": 5, "burst_count": 6},
                },
                rc_federation={"window_size": 2000, "concurrent": 5},
            )
        )
        limits = config.ratelimiting
        self.assertEqual((limits.rc_message.per_second, limits.rc_message.burst_count), (1.0, 20.0))
        self.assertEqual(
            (limits.rc_registration.per_second, limits.rc_registration.burst_count), (0.5, 3.0)
        )
        self.assertEqual(limits.rc_login_address.burst_count, 2)
        self.assertEqual(limits.rc_login_account.per_second, 3)
        self.assertEqual(limits.rc_login_failed_attempts.burst_count, 6)
        self.assertEqual(
            (limits.rc_federation.window_size, limits.rc_federation.concurrent), (2000, 5)
        )
        self.assertEqual(limits.rc_federation.sleep_delay, 500)

    def test_ip_ranges(self):
        """ip_range_whitelist lets a blacklisted address through; a custom blacklist replaces the default."""
        config = parse(
            minimal(ip_range_blacklist=["10.0.0.0/8"], ip_range_whitelist=["10.1.0.0/16"])
        )
        federation = config.federation
        self.assertTrue(federation.is_ip_allowed("10.1.2.3"))
        self.assertFalse(federation.is_ip_allowed("10.2.0.1"))
        self.assertTrue(federation.is_ip_allowed("127.0.0.1"))
        self.assertFalse(federation.is_ip_allowed("0.0.0.0"))
        self.assertIn(ipaddress.ip_network("10.0.0.0/8"), federation.ip_range_blacklist)

    def test_domain_whitelist(self):
        """federation_domain_whitelist limits federation to the listed servers."""
        config = parse(minimal(federation_domain_whitelist=["a.example", "b.example"]))
        self.assertTrue(config.federation.is_domain_allowed("a.example"))
        self.assertFalse(config.federation.is_domain_allowed("c.example"))
        self.assertTrue(parse(minimal()).federation.is_domain_allowed("c.example"))

    def test_old_signing_keys_and_trusted_servers(self):
        """old_signing_keys and trusted_key_servers with verify_keys are read in Synapse's shapes."""
        key = "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ"
        config = parse(
            minimal(
                old_signing_keys={"ed25519:old_1": {"key": key, "expired_ts": 123}},
                trusted_key_servers=[
                    {
                        "server_name": "notary.example",
                        "verify_keys": {"ed25519:auto": key},
                        "accept_keys_insecurely": False,
                    }
                ],
                key_refresh_interval="2d",
            )
        )
        (old,) = config.keys.old_signing_keys
        self.assertEqual((old.key_id, old.key, old.expired_ts), ("ed25519:old_1", key, 123))
        (notary,) = config.keys.trusted_key_servers
        self.assertEqual(notary.verify_keys, (("ed25519:auto", key),))
        self.assertEqual(config.keys.key_refresh_interval_ms, 2 * 86400000)

    def test_modules(self):
        """modules is a list of {module, config}."""
        config = parse(
            minimal(
                modules=[{"module": "my_pkg.MyModule", "config": {"a": 1}}, {"module": "other.Mod"}]
            )
        )
        self.assertEqual([m.module for m in config.modules], ["my_pkg.MyModule", "other.Mod"])
        self.assertEqual(dict(config.modules[0].config), {"a": 1})
        self.assertEqual(dict(config.modules[1].config), {})

    def test_registration_with_token(self):
        """Open registration is accepted when it requires a registration token."""
        config = parse(minimal(enable_registration=True, registration_requires_token=True))
        self.assertTrue(config.registration.enable_registration)

    def test_registration_without_verification(self):
        """Open registration without checks is accepted when the operator says so explicitly."""
        config = parse(
            minimal(enable_registration=True, enable_registration_without_verification=True)
        )
        self.assertTrue(config.registration.enable_registration_without_verification)

    def test_shared_secret_from_file(self):
        """registration_shared_secret_path reads the secret from a file, relative to the config directory."""
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "secret.txt"), "w") as f:
            f.write("s3cret\n")
        config = HomeServerConfig.from_dict(
            minimal(registration_shared_secret_path="secret.txt"), directory
        )
        self.assertEqual(config.registration.registration_shared_secret, "s3cret")

    def test_sizes_and_integer_room_version(self):
        """max_upload_size takes Synapse's size suffixes and default_room_version may be written as a number."""
        config = parse(minimal(max_upload_size="10K", default_room_version=10))
        self.assertEqual(config.media.max_upload_size, 10240)
        self.assertEqual(config.server.default_room_version, "10")

    def test_public_baseurl_gets_trailing_slash(self):
        """public_baseurl always ends with '/'."""
        self.assertEqual(
            parse(minimal(public_baseurl="https://matrix.example.org")).server.public_baseurl,
            "https://matrix.example.org/",
        )

    def test_endpoint_listener(self):
        """An mxref listener may give a Twisted endpoint string instead of port and bind_addresses."""
        config = parse(
            minimal(
                listeners=[
                    {"endpoint": "unix:/run/mxref.sock", "resources": [{"names": ["client"]}]}
                ]
            )
        )
        self.assertEqual(config.listeners[0].endpoint, "unix:/run/mxref.sock")
        self.assertIsNone(config.listeners[0].port)


class UnknownKeyTests(unittest.TestCase):
    """Unknown keys give warnings, never errors."""

    def test_unknown_top_level_key(self):
        """An unknown top-level key is reported by name and otherwise ignored."""
        config = parse(minimal(no_such_option=1))
        self.assertEqual(config.warnings, ("no_such_option: is not an mxref option; ignored",))

    def test_unknown_nested_keys(self):
        """Unknown keys inside listeners, resources and rate limits are reported with their full path."""
        config = parse(
            minimal(
                listeners=[
                    {
                        "port": 8008,
                        "colour": "blue",
                        "resources": [{"names": ["client"], "shape": 1}],
                    }
                ],
                rc_login={"address": {"per_second": 1, "burst": 3}, "per_ip": {}},
            )
        )
        self.assertEqual(
            set(config.warnings),
            {
                "listeners[0].colour: is not an mxref option; ignored",
                "listeners[0].resources[0].shape: is not an mxref option; ignored",
                "rc_login.address.burst: is not an mxref option; ignored",
                "rc_login.per_ip: is not an mxref option; ignored",
            },
        )

    def test_warnings_are_logged(self):
        """Each warning is also emitted through twisted.logger."""
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        parse(minimal(mystery=True))
        self.assertTrue(
            any(e.get("problem") == "mystery: is not an mxref option; ignored" for e in events)
        )


class InvalidValueTests(unittest.TestCase):
    """Invalid values raise ConfigError naming the key."""

    def assertKeyError(self, data, key):
        error = self.assertRaises(ConfigError, parse, data)
        self.assertEqual(error.key, key)
        self.assertTrue(str(error).startswith(key + ": "))
        return error

    def test_missing_server_name(self):
        """A configuration without server_name is refused naming server_name."""
        data = minimal()
        del data["server_name"]
        self.assertKeyError(data, "server_name")

    def test_bad_server_name(self):
        """A server name outside the spec's grammar is refused."""
        for bad in (
            "exa mple.org",
            "example.org:",
            "example.org:123456",
            "[::1",
            "[nonsense]",
            "a/b",
        ):
            self.assertKeyError(minimal(server_name=bad), "server_name")

    def test_listener_port(self):
        """A bad port is reported with the listener's index."""
        data = minimal(
            listeners=[
                {"port": 8008, "resources": [{"names": ["client"]}]},
                {"port": "eighty", "resources": [{"names": ["client"]}]},
            ]
        )
        self.assertKeyError(data, "listeners[1].port")
        data["listeners"][1]["port"] = 70000
        self.assertKeyError(data, "listeners[1].port")
        del data["listeners"][1]["port"]
        self.assertKeyError(data, "listeners[1].port")

    def test_bind_address(self):
        """A bind address that is not an IP literal is reported with its index."""
        self.assertKeyError(
            minimal(
                listeners=[
                    {
                        "port": 1,
                        "bind_addresses": ["127.0.0.1", "localhost"],
                        "resources": [{"names": ["client"]}],
                    }
                ]
            ),
            "listeners[0].bind_addresses[1]",
        )

    def test_listener_without_resources(self):
        """A listener must serve something."""
        self.assertKeyError(minimal(listeners=[{"port": 1}]), "listeners[0].resources")
        self.assertKeyError(
            minimal(listeners=[{"port": 1, "resources": [{"names": []}]}]),
            "listeners[0].resources[0].names",
        )

    def test_no_listeners(self):
        """A configuration with no http listener is refused."""
        self.assertKeyError(minimal(listeners=[]), "listeners")

    def test_unknown_listener_type(self):
        """A listener type no server knows is refused."""
        self.assertKeyError(
            minimal(listeners=[{"port": 1, "type": "gopher", "resources": [{"names": ["a"]}]}]),
            "listeners[0].type",
        )

    def test_tls_listener_without_certificate(self):
        """tls: true without a certificate path names tls_certificate_path."""
        self.assertKeyError(
            minimal(listeners=[{"port": 1, "tls": True, "resources": [{"names": ["a"]}]}]),
            "tls_certificate_path",
        )

    def test_booleans_must_be_booleans(self):
        """A string where true/false is expected is refused, naming the nested key."""
        self.assertKeyError(minimal(enable_registration="yes"), "enable_registration")
        self.assertKeyError(
            minimal(listeners=[{"port": 1, "tls": "no", "resources": [{"names": ["a"]}]}]),
            "listeners[0].tls",
        )

    def test_database(self):
        """An unknown database engine or an inverted pool size is refused."""
        self.assertKeyError(minimal(database={"name": "mysql"}), "database.name")
        self.assertKeyError(
            minimal(database={"name": "psycopg2", "args": {"cp_min": 10, "cp_max": 5}}),
            "database.args.cp_min",
        )
        self.assertKeyError(minimal(database="sqlite"), "database")

    def test_rate_limit(self):
        """A negative or non-numeric rate is refused."""
        self.assertKeyError(minimal(rc_message={"per_second": -1}), "rc_message.per_second")
        self.assertKeyError(
            minimal(rc_login={"account": {"burst_count": "many"}}), "rc_login.account.burst_count"
        )

    def test_ip_range(self):
        """A malformed range in ip_range_blacklist is reported with its index."""
        self.assertKeyError(
            minimal(ip_range_blacklist=["10.0.0.0/8", "not-a-range"]), "ip_range_blacklist[1]"
        )

    def test_old_signing_key(self):
        """An old signing key with a bad ID or bad key material is refused."""
        self.assertKeyError(
            minimal(old_signing_keys={"rsa:1": {"key": "x", "expired_ts": 1}}),
            "old_signing_keys.rsa:1",
        )
        self.assertKeyError(
            minimal(old_signing_keys={"ed25519:1": {"key": "!!", "expired_ts": 1}}),
            "old_signing_keys.ed25519:1.key",
        )

    def test_open_registration_without_verification(self):
        """Open registration with no verification at all is refused unless explicitly allowed."""
        error = self.assertKeyError(minimal(enable_registration=True), "enable_registration")
        self.assertIn("enable_registration_without_verification", error.msg)

    def test_room_version(self):
        """An unknown default room version is refused."""
        self.assertKeyError(minimal(default_room_version="99"), "default_room_version")

    def test_module_name(self):
        """A module that is not a dotted Python name is refused."""
        self.assertKeyError(minimal(modules=[{"module": "not a module"}]), "modules[0].module")
        self.assertKeyError(
            minimal(modules=[{"module": "a.B", "config": [1]}]), "modules[0].config"
        )

    def test_custom_ca_missing(self):
        """A federation_custom_ca_list entry that does not exist is refused."""
        self.assertKeyError(
            minimal(federation_custom_ca_list=["/nonexistent/ca.pem"]),
            "federation_custom_ca_list[0]",
        )

    def test_public_baseurl(self):
        """public_baseurl must be an http(s) URL."""
        self.assertKeyError(minimal(public_baseurl="matrix.example.org"), "public_baseurl")

    def test_top_level_not_mapping(self):
        """A YAML document that is not a mapping is refused."""
        self.assertRaises(ConfigError, parse, ["server_name"])

    def test_endpoint_with_port(self):
        """endpoint cannot be combined with port."""
        self.assertKeyError(
            minimal(listeners=[{"endpoint": "tcp:1", "port": 1, "resources": [{"names": ["a"]}]}]),
            "listeners[0].endpoint",
        )


class LoadConfigTests(unittest.TestCase):
    """load_config reads files."""

    def test_relative_paths_from_file_directory(self):
        """Relative paths in a file are resolved against the file's directory."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "homeserver.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(minimal(signing_key_path="keys/sign.key"), f)
        config = load_config(path)
        self.assertEqual(config.keys.signing_key_path, os.path.join(directory, "keys", "sign.key"))
        self.assertEqual(config.config_dir, directory)

    def test_missing_file(self):
        """A missing file is a ConfigError, not a traceback."""
        self.assertRaises(ConfigError, load_config, os.path.abspath(self.mktemp()))

    def test_invalid_yaml(self):
        """A file that is not YAML is a ConfigError."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("server_name: [unclosed\n")
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn("not valid YAML", str(error))


class ValueSyntaxTests(unittest.TestCase):
    """Sizes, durations and server names."""

    def test_sizes(self):
        """Sizes accept bytes and K/M/G/T suffixes (powers of 1024)."""
        self.assertEqual(parse_size("k", 100), 100)
        self.assertEqual(parse_size("k", "1K"), 1024)
        self.assertEqual(parse_size("k", "50M"), 50 * 1024 * 1024)
        self.assertEqual(parse_size("k", "2g"), 2 * 1024**3)
        self.assertRaises(ConfigError, parse_size, "k", "lots")
        self.assertRaises(ConfigError, parse_size, "k", -1)

    def test_durations(self):
        """Durations accept milliseconds and ms/s/m/h/d/w/y suffixes."""
        self.assertEqual(parse_duration_ms("k", 5), 5)
        self.assertEqual(parse_duration_ms("k", "5s"), 5000)
        self.assertEqual(parse_duration_ms("k", "1h"), 3600000)
        self.assertEqual(parse_duration_ms("k", "1w"), 7 * 86400000)
        self.assertRaises(ConfigError, parse_duration_ms, "k", "soon")

    def test_server_names(self):
        """Server names split into host and port per the spec's grammar."""
        self.assertEqual(split_server_name("example.org"), ("example.org", None))
        self.assertEqual(split_server_name("example.org:8448"), ("example.org", 8448))
        self.assertEqual(split_server_name("1.2.3.4:1"), ("1.2.3.4", 1))
        self.assertEqual(split_server_name("[1234:5678::abcd]:5678"), ("1234:5678::abcd", 5678))
        self.assertEqual(split_server_name("[::1]"), ("::1", None))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.text(
            alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
            min_size=1,
            max_size=40,
        ),
        st.integers(1, 65535),
    )
    def test_any_dns_name_with_port(self, host, port):
        """Every dns-name with a port is accepted and split back into its parts."""
        self.assertEqual(split_server_name(f"{host}:{port}"), (host, port))


class SharedSecretOptionTests(unittest.TestCase):
    """registration_shared_secret and registration_shared_secret_path."""

    def test_both_refused(self):
        """Giving the secret and a secret file at once is refused."""
        error = self.assertRaises(
            ConfigError,
            parse,
            minimal(registration_shared_secret="a", registration_shared_secret_path="/x"),
        )
        self.assertEqual(error.key, "registration_shared_secret_path")

    def test_missing_file(self):
        """A secret file that cannot be read is refused, naming the key."""
        error = self.assertRaises(
            ConfigError, parse, minimal(registration_shared_secret_path="/nonexistent/secret")
        )
        self.assertEqual(error.key, "registration_shared_secret_path")

    def test_empty_secret(self):
        """An empty secret is refused rather than silently allowing anyone with an empty key."""
        error = self.assertRaises(ConfigError, parse, minimal(registration_shared_secret=""))
        self.assertEqual(error.key, "registration_shared_secret")
