"""Tests for mxref-register against a loopback server speaking Synapse's shared-secret protocol."""

import hashlib
import hmac
import io
import json
import os

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from mxref.config import generate_config
from mxref.register_user import client_url_from_config, main, secret_from_config

SECRET = "the shared secret"


class FakeRegisterEndpoint(Resource):
    """A minimal server side of /_synapse/admin/v1/register that checks the MAC by hand."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.nonces = []
        self.registered = []

    def render_GET(self, request):
        nonce = f"nonce{len(self.nonces)}"
        self.nonces.append(nonce)
        return json.dumps({"nonce": nonce}).encode()

    def render_POST(self, request):
        body = json.loads(request.content.read())
        message = "\x00".join(
            [
                body["nonce"],
                body["username"],
                body["password"],
                "admin" if body["admin"] else "notadmin",
            ]
        ).encode()
        expected = hmac.new(SECRET.encode(), message, hashlib.sha1).hexdigest()
        if body["nonce"] not in self.nonces or body["mac"] != expected:
            request.setResponseCode(403)
            return json.dumps({"errcode": "M_FORBIDDEN", "error": "HMAC incorrect"}).encode()
        self.nonces.remove(body["nonce"])
        self.registered.append((body["username"], body["password"], body["admin"]))
        return json.dumps(
            {"user_id": f"@{body['username']}:localhost", "access_token": "t", "device_id": "D"}
        ).encode()


class RegisterUserTests(unittest.TestCase):
    """mxref-register registers users over HTTP."""

    def setUp(self):
        self.endpoint = FakeRegisterEndpoint()
        root = Resource()
        synapse = Resource()
        admin = Resource()
        v1 = Resource()
        root.putChild(b"_synapse", synapse)
        synapse.putChild(b"admin", admin)
        admin.putChild(b"v1", v1)
        v1.putChild(b"register", self.endpoint)
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"

    def run_main(self, argv):
        stdout, stderr = io.StringIO(), io.StringIO()
        d = threads.deferToThread(main, argv, io.StringIO(), stdout, stderr)
        d.addCallback(lambda status: (status, stdout.getvalue(), stderr.getvalue()))
        return d

    @defer.inlineCallbacks
    def test_register_admin_with_secret(self):
        """-k, -u, -p and --admin register an admin user."""
        status, out, err = yield self.run_main(
            ["-k", SECRET, "-u", "alice", "-p", "pw", "--admin", self.url]
        )
        self.assertEqual((status, err), (0, ""))
        self.assertIn("@alice:localhost", out)
        self.assertEqual(self.endpoint.registered, [("alice", "pw", True)])

    @defer.inlineCallbacks
    def test_not_admin_by_default_without_terminal(self):
        """Without --admin and without a terminal to ask on, the user is not an admin."""
        status, _, _ = yield self.run_main(["-k", SECRET, "-u", "bob", "-p", "pw", self.url])
        self.assertEqual(status, 0)
        self.assertEqual(self.endpoint.registered, [("bob", "pw", False)])

    @defer.inlineCallbacks
    def test_secret_from_config(self):
        """-c reads registration_shared_secret from a homeserver.yaml."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "homeserver.yaml")
        with open(path, "w") as f:
            f.write(generate_config("localhost", directory, registration_shared_secret=SECRET))
        status, _, err = yield self.run_main(
            ["-c", path, "-u", "carol", "-p", "pw", "--no-admin", self.url]
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(self.endpoint.registered, [("carol", "pw", False)])

    @defer.inlineCallbacks
    def test_wrong_secret(self):
        """A wrong secret fails with the server's error and exit status 1."""
        status, _, err = yield self.run_main(["-k", "wrong", "-u", "dave", "-p", "pw", self.url])
        self.assertEqual(status, 1)
        self.assertIn("403 M_FORBIDDEN: HMAC incorrect", err)
        self.assertEqual(self.endpoint.registered, [])

    @defer.inlineCallbacks
    def test_missing_user_without_terminal(self):
        """Without -u and without a terminal the command fails instead of hanging."""
        status, _, err = yield self.run_main(["-k", SECRET, "-p", "pw", self.url])
        self.assertEqual(status, 1)
        self.assertIn("-u", err)

    @defer.inlineCallbacks
    def test_unreachable_server(self):
        """A server that is not there gives a clear error."""
        port = self.port.getHost().port
        yield self.port.stopListening()
        status, _, err = yield self.run_main(
            ["-k", SECRET, "-u", "e", "-p", "pw", f"http://127.0.0.1:{port}"]
        )
        self.assertEqual(status, 1)
        self.assertIn("cannot reach", err)


class ConfigReadingTests(unittest.TestCase):
    """What mxref-register takes from a homeserver.yaml."""

    def write(self, text):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "homeserver.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_generated_config(self):
        """A generated configuration gives its secret and the client listener's URL."""
        path = self.write(generate_config("localhost", "/tmp/x", registration_shared_secret="s"))
        self.assertEqual(secret_from_config(path), "s")
        self.assertEqual(client_url_from_config(path), "http://127.0.0.1:8008")

    def test_secret_path_and_wildcard_address(self):
        """registration_shared_secret_path is followed and a wildcard bind address becomes localhost."""
        path = self.write(
            "registration_shared_secret_path: secret\nlisteners:\n"
            "  - {port: 443, tls: true, resources: [{names: [client, federation]}]}\n"
        )
        with open(os.path.join(os.path.dirname(path), "secret"), "w") as f:
            f.write("from-file\n")
        self.assertEqual(secret_from_config(path), "from-file")
        self.assertEqual(client_url_from_config(path), "https://localhost:443")

    def test_no_secret(self):
        """A configuration without a shared secret fails with a clear message."""
        path = self.write("server_name: x\n")
        self.assertEqual(
            main(["-c", path, "-u", "a", "-p", "b"], io.StringIO(), io.StringIO(), io.StringIO()), 1
        )
