"""The real-process harness (mxref.testing.processes and csclient), proven against a real Synapse.

The Synapse tests run when ``MXREF_SYNAPSE_PYTHON`` names an interpreter with
``matrix-synapse`` installed (``.ci/run`` sets it up); the offline tests
always run.
"""

import http.client
import json
import os
import socket
import ssl
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from signedjson.key import get_verify_key, read_signing_keys
from twisted.internet import reactor
from twisted.trial import unittest
from unpaddedbase64 import encode_base64
import yaml

from mxref.testing.csclient import CSClient, MatrixRequestError, timeline_events
from mxref.testing.processes import (
    HomeserverStartError,
    SynapseProcess,
    free_port,
    write_self_signed_certificate,
    write_signing_key,
)

SYNAPSE_PYTHON = os.environ.get("MXREF_SYNAPSE_PYTHON")
SKIP_SYNAPSE = (
    None
    if SYNAPSE_PYTHON
    else "MXREF_SYNAPSE_PYTHON is not set: no Synapse interpreter to start (.ci/run installs one)"
)


def start_synapse(test_case) -> SynapseProcess:
    """Start a Synapse in a fresh temporary directory, stopped when the test ends."""
    server = SynapseProcess(test_case.mktemp(), python=SYNAPSE_PYTHON)
    server.start()
    test_case.addCleanup(server.stop)
    return server


class HarnessOfflineTests(unittest.TestCase):
    """Parts of the harness that need no homeserver."""

    def test_free_port_is_bindable(self):
        """free_port names a loopback port that can be bound right away."""
        port = free_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            self.assertEqual(s.getsockname()[1], port)

    def test_self_signed_certificate_names_loopback(self):
        """The generated certificate names localhost and 127.0.0.1 and matches its key."""
        cert_path, key_path = self.mktemp(), self.mktemp()
        write_self_signed_certificate(cert_path, key_path)
        with open(cert_path, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertIn("localhost", names.get_values_for_type(x509.DNSName))
        self.assertIn("127.0.0.1", [str(a) for a in names.get_values_for_type(x509.IPAddress)])
        self.assertEqual(
            certificate.public_key().public_numbers(), key.public_key().public_numbers()
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)

    def test_signing_key_file_is_in_synapse_format(self):
        """The signing key file holds one 'ed25519 <version> <seed>' line that signedjson reads."""
        path = self.mktemp()
        key_id = write_signing_key(path, "a_test")
        self.assertEqual(key_id, "ed25519:a_test")
        with open(path) as f:
            text = f.read()
            f.seek(0)
            keys = read_signing_keys(f)
        self.assertEqual(text.split()[:2], ["ed25519", "a_test"])
        self.assertEqual([k.version for k in keys], ["a_test"])

    def test_synapse_config_is_loopback_federation(self):
        """The written homeserver.yaml names localhost:<fedport> with a TLS federation listener."""
        server = SynapseProcess(self.mktemp(), python=sys.executable)
        server.prepare()
        with open(server.config_path) as f:
            config = yaml.safe_load(f)
        self.assertEqual(config["server_name"], f"localhost:{server.federation_port}")
        by_port = {listener["port"]: listener for listener in config["listeners"]}
        self.assertFalse(by_port[server.client_port]["tls"])
        self.assertTrue(by_port[server.federation_port]["tls"])
        self.assertIn("federation", by_port[server.federation_port]["resources"][0]["names"])
        self.assertEqual(config["database"]["name"], "sqlite3")
        self.assertFalse(config["federation_verify_certificates"])
        self.assertGreaterEqual(config["rc_message"]["per_second"], 10000)

    def test_start_failure_reports_the_log_tail(self):
        """A server that dies at start raises HomeserverStartError quoting its output."""
        # This interpreter has no Synapse, so ``-m synapse.app.homeserver`` exits at once.
        server = SynapseProcess(self.mktemp(), python=sys.executable, start_timeout=20)
        error = self.assertRaises(HomeserverStartError, server.start)
        self.assertIn("synapse", str(error))
        self.assertIn("exited with status", str(error))
        self.assertFalse(server.is_running())


class SynapseHarnessTests(unittest.TestCase):
    """A real Synapse started, used by two users, restarted and stopped through the harness."""

    skip = SKIP_SYNAPSE

    def test_two_users_chat(self):
        """Alice creates a room, invites Bob, Bob joins, and Bob's /sync and /messages show her messages."""
        server = start_synapse(self)
        alice = server.client_for("alice")
        bob = server.client_for("bob")
        self.assertEqual(alice.user_id, f"@alice:{server.server_name}")
        self.assertEqual(alice.whoami()["user_id"], alice.user_id)

        room_id = alice.create_room(preset="private_chat", name="harness")
        alice.invite(room_id, bob.user_id)
        invited, since = bob.sync_until(lambda r: room_id in r.get("rooms", {}).get("invite", {}))
        invite_state = invited["rooms"]["invite"][room_id]["invite_state"]["events"]
        self.assertIn(
            ("m.room.member", bob.user_id), [(e["type"], e.get("state_key")) for e in invite_state]
        )
        self.assertEqual(bob.join(room_id), room_id)

        sent = [alice.send_message(room_id, f"message {i}") for i in range(3)]
        seen = []

        def saw_all(response):
            seen.extend(
                e["event_id"]
                for e in timeline_events(response, room_id)
                if e["type"] == "m.room.message"
            )
            return sent[-1] in seen

        bob.sync_until(saw_all, since=since)
        self.assertEqual(seen, sent)

        page = bob.messages(room_id, direction="b", limit=2)
        self.assertEqual([e["event_id"] for e in page["chunk"]], [sent[2], sent[1]])
        older = bob.messages(room_id, from_token=page["end"], direction="b", limit=2)
        self.assertEqual(older["chunk"][0]["event_id"], sent[0])

        with self.assertRaises(MatrixRequestError) as caught:
            CSClient(server.client_url, access_token="not-a-token").whoami()
        self.assertEqual(caught.exception.status, 401)
        self.assertEqual(caught.exception.errcode, "M_UNKNOWN_TOKEN")

    def test_deferred_variants(self):
        """start_deferred, register_user_deferred and stop_deferred fire while the reactor keeps running."""
        server = SynapseProcess(self.mktemp(), python=SYNAPSE_PYTHON)
        self.addCleanup(server.stop)
        d = server.start_deferred(reactor)
        d.addCallback(
            lambda _: server.register_user_deferred(reactor, "dora", "a password", admin=True)
        )

        def registered(body):
            self.assertEqual(body["user_id"], f"@dora:{server.server_name}")
            return server.stop_deferred(reactor)

        d.addCallback(registered)
        d.addCallback(self.assertEqual, 0)
        return d

    def test_password_registration_and_login(self):
        """A user registered through /register with the dummy stage can log in with the password."""
        server = start_synapse(self)
        client = CSClient(server.client_url)
        registered = client.register("carol", "correct horse")
        self.assertEqual(registered["user_id"], f"@carol:{server.server_name}")
        again = CSClient(server.client_url)
        again.login("carol", "correct horse")
        self.assertEqual(again.whoami()["user_id"], registered["user_id"])
        self.assertNotEqual(again.access_token, client.access_token)

    def test_federation_listener_publishes_the_signing_key(self):
        """The TLS federation port serves /_matrix/key/v2/server with our server name and key."""
        server = start_synapse(self)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.federation_port, context=context, timeout=10
        )
        self.addCleanup(connection.close)
        connection.request("GET", "/_matrix/key/v2/server")
        response = connection.getresponse()
        self.assertEqual(response.status, 200)
        keys = json.loads(response.read())
        with open(server.signing_key_path) as f:
            (signing_key,) = read_signing_keys(f)
        key_id = f"ed25519:{signing_key.version}"
        self.assertEqual(keys["server_name"], server.server_name)
        self.assertEqual(
            keys["verify_keys"][key_id]["key"], encode_base64(get_verify_key(signing_key).encode())
        )

    def test_restart_keeps_data_and_kill_stops(self):
        """After restart() the same token and room still work; after kill() the port is closed."""
        server = start_synapse(self)
        alice = server.client_for("alice")
        room_id = alice.create_room(preset="private_chat")
        idle_rss = server.rss_kib()
        self.assertGreater(idle_rss, 10_000)
        first_pid = server.pid

        server.restart()
        self.assertNotEqual(server.pid, first_pid)
        self.assertEqual(alice.whoami()["user_id"], alice.user_id)
        alice.send_message(room_id, "after restart")

        self.assertEqual(server.kill(), -9)
        self.assertFalse(server.is_running())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", server.client_port), timeout=2).close()


class SynapseFederationTests(unittest.TestCase):
    """Two harness-started Synapses federate over loopback TLS with self-signed certificates."""

    skip = SKIP_SYNAPSE

    def test_join_and_talk_over_federation(self):
        """Bob on server B joins Alice's room on server A by ID via A; each sees the other's message."""
        server_a, server_b = start_synapse(self), start_synapse(self)
        alice, bob = server_a.client_for("alice"), server_b.client_for("bob")
        room_id = alice.create_room(preset="public_chat")

        self.assertEqual(bob.join(room_id, via=[server_a.server_name]), room_id)
        from_bob = bob.send_message(room_id, "hello from B")
        alice.sync_until(lambda r: from_bob in [e["event_id"] for e in timeline_events(r, room_id)])
        from_alice = alice.send_message(room_id, "hello from A")
        response, _ = bob.sync_until(
            lambda r: from_alice in [e["event_id"] for e in timeline_events(r, room_id)]
        )
        event = next(e for e in timeline_events(response, room_id) if e["event_id"] == from_alice)
        self.assertEqual(event["sender"], f"@alice:{server_a.server_name}")
        self.assertEqual(event["content"]["body"], "hello from A")
