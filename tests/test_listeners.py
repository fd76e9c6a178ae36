"""Tests for building listeners: resource trees, endpoints, TLS, and real loopback connections."""

import errno
import gzip
import json
import os
import socket

from service_identity import VerificationError
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.testing import MemoryReactor
from twisted.trial import unittest
from twisted.web.client import Agent, ResponseNeverReceived, readBody
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from mxref.config import ConfigError
from mxref.config.listeners import ListenerConfig, ResourceGroupConfig
from mxref.crypto.tls import load_certificate_options, write_self_signed_certificate
from mxref.listeners import (
    ListenerService,
    build_listener_services,
    build_root_resource,
    listener_endpoints,
)


class TextResource(Resource):
    """Answers every request below it with a fixed text and the path it saw."""

    isLeaf = True

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(
            {
                "served_by": self.text,
                "path": request.path.decode(),
                "secure": request.isSecure(),
                "padding": "x" * 2000,
            }
        ).encode()


def listener(*groups, port=0, tls=False, bind_addresses=("127.0.0.1",), endpoint=None):
    return ListenerConfig(
        port=None if endpoint else port,
        bind_addresses=() if endpoint else tuple(bind_addresses),
        tls=tls,
        resources=tuple(
            ResourceGroupConfig(names=tuple(names), compress=compress) for names, compress in groups
        ),
        endpoint=endpoint,
    )


def sample_resources():
    key_api = TextResource("keys")
    return {
        "client": {
            "/_matrix/client": TextResource("client"),
            "/_synapse/admin": TextResource("admin"),
        },
        "federation": {"/_matrix/federation": TextResource("federation"), "/_matrix/key": key_api},
        "keys": {"/_matrix/key": key_api},
    }


@implementer(IPolicyForHTTPS)
class TrustOneCertificate:
    """An HTTPS policy that trusts exactly one certificate, for the given host name."""

    def __init__(self, certificate_pem: bytes, hostname: str):
        self.certificate = Certificate.loadPEM(certificate_pem)
        self.hostname = hostname

    def creatorForNetloc(self, hostname, port):
        return optionsForClientTLS(self.hostname, trustRoot=self.certificate)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class RootResourceTests(unittest.TestCase):
    """Each listener's URL tree holds exactly the resources it names."""

    def child_at(self, root, path: bytes):
        request = DummyRequest(path.strip(b"/").split(b"/"))
        node = root
        while request.postpath and not getattr(node, "isLeaf", False):
            node = node.getChildWithDefault(request.postpath.pop(0), request)
        return node

    def test_mounts_named_resources(self):
        """client and federation together put every prefix of both into one tree."""
        resources = sample_resources()
        root = build_root_resource(listener((["client", "federation"], False)), resources)
        self.assertIs(
            self.child_at(root, b"/_matrix/client/v3/sync"), resources["client"]["/_matrix/client"]
        )
        self.assertIs(
            self.child_at(root, b"/_synapse/admin/v1/register"),
            resources["client"]["/_synapse/admin"],
        )
        self.assertIs(
            self.child_at(root, b"/_matrix/key/v2/server"), resources["keys"]["/_matrix/key"]
        )

    def test_unnamed_resources_absent(self):
        """A client-only listener does not serve federation paths."""
        root = build_root_resource(listener((["client"], False)), sample_resources())
        node = self.child_at(root, b"/_matrix/federation/v1/version")
        request = DummyRequest([])
        body = node.render(request)
        self.assertEqual(request.responseCode, 404)
        self.assertEqual(json.loads(body)["errcode"], "M_UNRECOGNIZED")

    def test_shared_resource_mounted_once(self):
        """federation and keys may share the key resource at the same prefix."""
        root = build_root_resource(listener((["federation", "keys"], False)), sample_resources())
        self.assertIsInstance(self.child_at(root, b"/_matrix/key/v2/server"), TextResource)

    def test_conflicting_prefix(self):
        """Two different resources at one prefix are a programming error."""
        resources = sample_resources()
        resources["keys"] = {"/_matrix/key": TextResource("other")}
        self.assertRaises(
            ValueError, build_root_resource, listener((["federation", "keys"], False)), resources
        )

    def test_unknown_resource_name(self):
        """A resource name the server does not have is a ConfigError naming the listener's names."""
        error = self.assertRaises(
            ConfigError,
            build_root_resource,
            listener((["client"], False), (["metrics"], False)),
            sample_resources(),
            "listeners[2]",
        )
        self.assertEqual(error.key, "listeners[2].resources[1].names")
        self.assertIn("metrics", error.msg)


class EndpointTests(unittest.TestCase):
    """Listeners become one service per socket."""

    def test_one_service_per_bind_address(self):
        """Each bind address gets its own endpoint, IPv6 addresses a TCP6 one."""
        endpoints = listener_endpoints(
            listener((["client"], False), port=8008, bind_addresses=("::1", "127.0.0.1")),
            MemoryReactor(),
        )
        (v6, v6_description, _), (v4, v4_description, _) = endpoints
        self.assertIsInstance(v6, TCP6ServerEndpoint)
        self.assertIsInstance(v4, TCP4ServerEndpoint)
        self.assertEqual(
            (v6_description, v4_description), ("http://[::1]:8008", "http://127.0.0.1:8008")
        )

    def test_listens_on_memory_reactor(self):
        """Starting the services listens on every address with a Site (wrapped in TLS when asked)."""
        memory = MemoryReactor()
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = os.path.join(directory, "c"), os.path.join(directory, "k")
        write_self_signed_certificate("localhost", cert, key)
        services = build_listener_services(
            [
                listener((["client"], False), port=8008, bind_addresses=("::", "0.0.0.0")),
                listener((["federation"], False), port=8448, tls=True),
            ],
            sample_resources(),
            memory,
            load_certificate_options(cert, key),
        )
        self.assertEqual(len(services), 3)
        for service in services:
            service.privilegedStartService()
            service.startService()
        self.assertEqual(
            [(port, interface) for port, _, _, interface in memory.tcpServers],
            [(8008, "::"), (8008, "0.0.0.0"), (8448, "127.0.0.1")],
        )
        self.assertIsInstance(memory.tcpServers[0][1], Site)
        self.assertIsInstance(memory.tcpServers[2][1].wrappedFactory, Site)

    def test_endpoint_string(self):
        """A listener with an endpoint string listens there."""
        memory = MemoryReactor()
        (service,) = build_listener_services(
            [listener((["client"], False), endpoint="tcp:9999:interface=127.0.0.2")],
            sample_resources(),
            memory,
        )
        service.startService()
        self.assertEqual(memory.tcpServers[0][0], 9999)
        self.assertEqual(memory.tcpServers[0][3], "127.0.0.2")

    def test_bad_endpoint_string(self):
        """A malformed endpoint string is a ConfigError naming the listener's endpoint."""
        error = self.assertRaises(
            ConfigError,
            build_listener_services,
            [listener((["client"], False), endpoint="carrier-pigeon:1")],
            sample_resources(),
            MemoryReactor(),
        )
        self.assertEqual(error.key, "listeners[0].endpoint")

    def test_tls_without_options(self):
        """A TLS listener without TLS options is refused."""
        error = self.assertRaises(
            ConfigError,
            build_listener_services,
            [listener((["client"], False), tls=True)],
            sample_resources(),
            MemoryReactor(),
        )
        self.assertEqual(error.key, "listeners[0].tls")

    def test_site_factory(self):
        """A site factory receives the root and the listener configuration."""
        seen = []

        def site_factory(root, listener_config, reactor):
            seen.append(listener_config)
            return Site(root)

        config = listener((["client"], False))
        build_listener_services(
            [config], sample_resources(), MemoryReactor(), site_factory=site_factory
        )
        self.assertEqual(seen, [config])


class FailingEndpoint:
    """An endpoint whose listen fails with a socket error."""

    def __init__(self, error_number):
        self.error_number = error_number

    def listen(self, factory):
        return defer.fail(
            CannotListenError(
                "0.0.0.0", 8008, OSError(self.error_number, os.strerror(self.error_number))
            )
        )


class ListenerServiceTests(unittest.TestCase):
    """Binding failures stop start-up, except the tolerated dual-stack case."""

    def test_bind_failure_raises(self):
        """A port that cannot be bound fails start-up at once."""
        service = ListenerService(
            FailingEndpoint(errno.EADDRINUSE), Site(Resource()), "http://0.0.0.0:8008"
        )
        self.assertRaises(CannotListenError, service.privilegedStartService)

    def test_tolerated_failure(self):
        """0.0.0.0 already covered by a dual-stack :: socket is logged, not raised."""
        service = ListenerService(
            FailingEndpoint(errno.EADDRINUSE),
            Site(Resource()),
            "http://0.0.0.0:8008",
            tolerated_errors=(errno.EADDRINUSE,),
        )
        service.privilegedStartService()
        service.startService()
        self.assertIsNone(service.port)
        return service.stopService()

    def test_dual_stack_defaults_tolerate(self):
        """With Synapse's default ['::', '0.0.0.0'], 0.0.0.0 tolerates EADDRINUSE and :: a missing IPv6 stack."""
        endpoints = listener_endpoints(
            listener((["client"], False), bind_addresses=("::", "0.0.0.0")), MemoryReactor()
        )
        self.assertEqual(endpoints[0][2], (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL))
        self.assertEqual(endpoints[1][2], (errno.EADDRINUSE,))

    def test_real_port_conflict(self):
        """Binding a port already in use on loopback raises CannotListenError."""
        first = build_listener_services(
            [listener((["client"], False))], sample_resources(), reactor
        )[0]
        first.privilegedStartService()
        self.addCleanup(first.stopService)
        port = first.port.getHost().port
        second = build_listener_services(
            [listener((["client"], False), port=port)], sample_resources(), reactor
        )[0]
        self.assertRaises(CannotListenError, second.privilegedStartService)


class LoopbackTests(unittest.TestCase):
    """Real connections on loopback."""

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.certificate_path = os.path.join(directory, "localhost.tls.crt")
        self.key_path = os.path.join(directory, "localhost.tls.key")
        write_self_signed_certificate("localhost", self.certificate_path, self.key_path)
        with open(self.certificate_path, "rb") as f:
            self.certificate_pem = f.read()

    def start(self, config):
        services = build_listener_services(
            [config],
            sample_resources(),
            reactor,
            load_certificate_options(self.certificate_path, self.key_path),
        )
        for service in services:
            service.startService()
            self.addCleanup(service.stopService)
        return services

    def agent(self):
        from twisted.web.client import HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=False)
        return Agent(
            reactor,
            contextFactory=TrustOneCertificate(self.certificate_pem, "localhost"),
            pool=pool,
        )

    @defer.inlineCallbacks
    def get(self, url: bytes, headers=None):
        response = yield self.agent().request(b"GET", url, headers)
        body = yield readBody(response)
        return response, body

    @defer.inlineCallbacks
    def test_tls_client_and_federation_on_one_port(self):
        """One TLS listener serves client and federation, verified against the generated certificate."""
        (service,) = self.start(listener((["client", "federation"], False), tls=True))
        port = service.port.getHost().port
        response, body = yield self.get(
            f"https://127.0.0.1:{port}/_matrix/client/versions".encode()
        )
        self.assertEqual(response.code, 200)
        answer = json.loads(body)
        self.assertEqual((answer["served_by"], answer["secure"]), ("client", True))
        response, body = yield self.get(
            f"https://127.0.0.1:{port}/_matrix/federation/v1/version".encode()
        )
        self.assertEqual(json.loads(body)["served_by"], "federation")
        response, body = yield self.get(
            f"https://127.0.0.1:{port}/_matrix/media/v3/config".encode()
        )
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(body)["errcode"], "M_UNRECOGNIZED")

    @defer.inlineCallbacks
    def test_tls_refused_by_strict_client_for_other_name(self):
        """A client expecting another server name rejects the certificate (it names only localhost)."""
        (service,) = self.start(listener((["client"], False), tls=True))
        port = service.port.getHost().port
        agent = Agent(
            reactor, contextFactory=TrustOneCertificate(self.certificate_pem, "example.org")
        )
        error = yield self.assertFailure(
            agent.request(b"GET", f"https://127.0.0.1:{port}/_matrix/client/x".encode()),
            ResponseNeverReceived,
        )
        self.assertTrue(error.reasons[0].check(VerificationError), error.reasons)

    @defer.inlineCallbacks
    def test_plain_http_with_compression(self):
        """A plain listener with compress: true gzips responses for clients that accept it."""
        from twisted.web.http_headers import Headers

        (service,) = self.start(listener((["client"], True)))
        port = service.port.getHost().port
        response, body = yield self.get(
            f"http://127.0.0.1:{port}/_matrix/client/versions".encode(),
            Headers({b"Accept-Encoding": [b"gzip"]}),
        )
        self.assertEqual(response.headers.getRawHeaders(b"Content-Encoding"), [b"gzip"])
        self.assertEqual(json.loads(gzip.decompress(body))["secure"], False)

    @defer.inlineCallbacks
    def test_ipv6_loopback(self):
        """A listener bound to ::1 answers over IPv6."""
        if not _has_ipv6_loopback():
            raise unittest.SkipTest("no IPv6 loopback on this machine")
        (service,) = self.start(listener((["client"], False), bind_addresses=("::1",)))
        port = service.port.getHost().port
        response, body = yield self.get(f"http://[::1]:{port}/_matrix/client/versions".encode())
        self.assertEqual(json.loads(body)["served_by"], "client")
