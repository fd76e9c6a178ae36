"""mxref as a real process on loopback (mxref.testing.processes.MxrefProcess), as end-to-end
tests and benchmarks start it."""

import importlib.util
import signal
import socket

from twisted.trial import unittest

from mxref.config import load_config
from mxref.testing.csclient import request_json
from mxref.testing.processes import MxrefProcess

#: The process tests need the composition root that ``twistd mxref`` builds the server with.
SKIP_NO_HOMESERVER = (
    None
    if importlib.util.find_spec("mxref.homeserver") is not None
    else "mxref.homeserver (build_homeserver, the composition root mxref.tap calls) does not exist yet, "
    "so `twistd mxref` exits before listening"
)


class MxrefProcessConfigTests(unittest.TestCase):
    """The homeserver.yaml the harness writes is one mxref's own config loader accepts."""

    def test_written_config_loads(self):
        """mxref reads the harness's config: server name, client and TLS federation ports, SQLite in data/."""
        server = MxrefProcess(self.mktemp())
        server.prepare()
        config = load_config(server.config_path)
        self.assertEqual(config.server_name, f"localhost:{server.federation_port}")
        listeners = {listener.port: listener for listener in config.listeners}
        self.assertFalse(listeners[server.client_port].tls)
        self.assertIn("client", listeners[server.client_port].resource_names)
        self.assertTrue(listeners[server.federation_port].tls)
        self.assertIn("federation", listeners[server.federation_port].resource_names)
        self.assertTrue(config.database.sqlite_path.startswith(server.data_dir))
        self.assertEqual(
            config.registration.registration_shared_secret, server.registration_shared_secret
        )

    def test_overrides_replace_generated_keys(self):
        """config_overrides replace top-level keys of the generated config."""
        server = MxrefProcess(self.mktemp(), config_overrides={"enable_registration": False})
        server.prepare()
        self.assertFalse(load_config(server.config_path).registration.enable_registration)


class MxrefProcessTests(unittest.TestCase):
    """twistd -n mxref started, used, restarted and stopped through the harness."""

    skip = SKIP_NO_HOMESERVER

    def start(self) -> MxrefProcess:
        server = MxrefProcess(self.mktemp())
        server.start()
        self.addCleanup(server.stop)
        return server

    def test_starts_and_answers_versions(self):
        """The process listens and /_matrix/client/versions lists spec versions; stop() ends it cleanly."""
        server = self.start()
        status, body = request_json(server.client_url, "GET", "/_matrix/client/versions")
        self.assertEqual(status, 200)
        self.assertTrue(body["versions"])
        self.assertGreater(server.rss_kib(), 10_000)
        # twistd shuts down cleanly on SIGTERM and then exits by that same signal.
        self.assertEqual(server.stop(), -signal.SIGTERM)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", server.client_port), timeout=2).close()

    def test_restart_on_the_same_ports(self):
        """After restart() (and after kill() and start()) the server answers again on the same port."""
        server = self.start()
        server.restart()
        request_json(server.client_url, "GET", "/_matrix/client/versions")
        server.kill()
        server.start()
        request_json(server.client_url, "GET", "/_matrix/client/versions")

    def test_shared_secret_registration(self):
        """register_user creates a user through /_synapse/admin/v1/register with the configured secret."""
        server = self.start()
        registered = server.register_user("alice", "a password")
        self.assertEqual(registered["user_id"], f"@alice:{server.server_name}")
        self.assertTrue(registered["access_token"])
