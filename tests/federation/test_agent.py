"""Tests for MatrixFederationAgent: server discovery, .well-known caching, the IP blacklist and TLS."""

import ipaddress
import json
import os

import treq
from OpenSSL import SSL
from service_identity.exceptions import VerificationError
from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool, ResponseDone, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Site

from mxref.config.federation import ALWAYS_BLACKLISTED, DEFAULT_IP_RANGE_BLACKLIST, FederationConfig
from mxref.config.tls import TLSConfig
from mxref.crypto.tls import load_certificate_options, write_self_signed_certificate
from mxref.events.signing import generate_signing_key, get_verify_key
from mxref.federation.transport.agent import (
    Destination,
    FederationRefused,
    MatrixFederationAgent,
    cache_period_from_headers,
)
from mxref.federation.transport.client import FederationClient, HttpResponseError, RequestFailed
from mxref.federation.transport.server import FederationRequestAuthenticator, authenticated
from mxref.http.resource import JsonResource
from tests.federation.test_server_auth import KnownKeys


def federation_config(whitelist=()):
    blacklist = tuple(ipaddress.ip_network(n) for n in DEFAULT_IP_RANGE_BLACKLIST + ALWAYS_BLACKLISTED)
    return FederationConfig(None, blacklist, tuple(ipaddress.ip_network(n) for n in whitelist))


class FakeResolver:
    """A twisted.names resolver answering from dicts; records every look-up."""

    def __init__(self, a=None, aaaa=None, srv=None):
        self.a = a or {}
        self.aaaa = aaaa or {}
        self.srv = srv or {}
        self.lookups = []

    def _answer(self, name, records):
        if not records:
            return defer.fail(DNSNameError(name))
        return defer.succeed((records, [], []))

    def lookupAddress(self, name, timeout=None):
        self.lookups.append(("A", name))
        return self._answer(name, [dns.RRHeader(name, dns.A, payload=dns.Record_A(ip)) for ip in self.a.get(name, [])])

    def lookupIPV6Address(self, name, timeout=None):
        self.lookups.append(("AAAA", name))
        return self._answer(name, [dns.RRHeader(name, dns.AAAA, payload=dns.Record_AAAA(ip)) for ip in self.aaaa.get(name, [])])

    def lookupService(self, name, timeout=None):
        self.lookups.append(("SRV", name))
        return self._answer(name, [
            dns.RRHeader(name, dns.SRV, payload=dns.Record_SRV(priority, weight, port, target))
            for priority, weight, port, target in self.srv.get(name, [])
        ])


class CannedResponse:
    """An IResponse with a status, headers and body."""

    def __init__(self, code, body=b"", headers=None):
        self.code = code
        self.phrase = b"X"
        self.headers = Headers(headers or {})
        self.length = len(body)
        self.version = (b"HTTP", 1, 1)
        self.request = None
        self.previousResponse = None
        self._body = body

    def deliverBody(self, protocol):
        protocol.makeConnection(None)
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response):
        self.previousResponse = response


class WellKnownAgent:
    """An IAgent serving canned .well-known answers by URI; unknown URIs fail to connect."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.requests = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        self.requests.append(uri)
        answer = self.answers.get(uri)
        if answer is None:
            return defer.fail(ConnectionRefusedError())
        return defer.succeed(answer() if callable(answer) else answer)


def well_known(body, code=200, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda: CannedResponse(code, data, headers)


class DiscoveryTests(unittest.TestCase):
    """Which address, port, Host header and certificate name each kind of server name leads to."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.resolver = FakeResolver(
            a={"remote.test": ["203.0.114.1"], "delegated.test": ["203.0.114.2"], "srv-target.test": ["203.0.114.3"],
               "legacy-target.test": ["203.0.114.4"]},
            aaaa={"v6.test": ["2001:db9::1"]},
        )
        self.well_known = WellKnownAgent()
        self.agent = MatrixFederationAgent(
            self.reactor, TLSConfig(), federation_config(), resolver=self.resolver, well_known_agent=self.well_known
        )

    def route(self, server_name):
        destination = self.successResultOf(self.agent.destination_for(server_name))
        return destination, self.successResultOf(self.agent.targets_for(destination))

    def test_ip_literal(self):
        """An IP literal is used directly, on its port or 8448, with no .well-known or DNS look-up."""
        self.assertEqual(self.route("203.0.114.9"), (Destination("203.0.114.9", "203.0.114.9", None), [("203.0.114.9", 8448)]))
        self.assertEqual(self.route("[2001:db9::5]:8449")[1], [("2001:db9::5", 8449)])
        self.assertEqual(self.route("[2001:db9::5]:8449")[0].name, "[2001:db9::5]:8449")
        self.assertEqual(self.well_known.requests, [])
        self.assertEqual(self.resolver.lookups, [])

    def test_explicit_port(self):
        """A hostname with a port connects to its address on that port; Host is the server name."""
        destination, targets = self.route("remote.test:1234")
        self.assertEqual(destination, Destination("remote.test:1234", "remote.test", 1234))
        self.assertEqual(targets, [("remote.test", 1234)])
        self.assertEqual(self.well_known.requests, [])

    def test_well_known_delegation_with_port(self):
        """A .well-known naming host:port delegates: Host and certificate name become the delegated host."""
        self.well_known.answers[b"https://remote.test/.well-known/matrix/server"] = well_known({"m.server": "delegated.test:4321"})
        destination, targets = self.route("remote.test")
        self.assertEqual(destination, Destination("delegated.test:4321", "delegated.test", 4321))
        self.assertEqual(targets, [("delegated.test", 4321)])
        self.assertNotIn(("SRV", "_matrix-fed._tcp.delegated.test"), self.resolver.lookups)

    def test_well_known_delegation_to_ip(self):
        """A .well-known naming an IP literal uses it on 8448."""
        self.well_known.answers[b"https://remote.test/.well-known/matrix/server"] = well_known({"m.server": "203.0.114.7"})
        self.assertEqual(self.route("remote.test")[1], [("203.0.114.7", 8448)])

    def test_well_known_delegation_srv(self):
        """A delegated host without a port is looked up with SRV _matrix-fed._tcp first."""
        self.well_known.answers[b"https://remote.test/.well-known/matrix/server"] = well_known({"m.server": "delegated.test"})
        self.resolver.srv["_matrix-fed._tcp.delegated.test"] = [(10, 0, 8555, "srv-target.test")]
        destination, targets = self.route("remote.test")
        self.assertEqual(destination.name, "delegated.test")
        self.assertEqual(targets, [("srv-target.test", 8555)])

    def test_well_known_delegation_legacy_srv_then_8448(self):
        """Without _matrix-fed._tcp the deprecated _matrix._tcp is used; without either, port 8448."""
        self.well_known.answers[b"https://remote.test/.well-known/matrix/server"] = well_known({"m.server": "delegated.test"})
        self.resolver.srv["_matrix._tcp.delegated.test"] = [(10, 0, 8666, "legacy-target.test")]
        self.assertEqual(self.route("remote.test")[1], [("legacy-target.test", 8666)])
        del self.resolver.srv["_matrix._tcp.delegated.test"]
        self.assertEqual(self.route("remote.test")[1], [("delegated.test", 8448)])
        self.assertEqual(
            [lookup for lookup in self.resolver.lookups if lookup[0] == "SRV"][-2:],
            [("SRV", "_matrix-fed._tcp.delegated.test"), ("SRV", "_matrix._tcp.delegated.test")],
        )

    def test_no_well_known_srv(self):
        """Without .well-known, SRV records of the server name are used; Host stays the server name."""
        self.resolver.srv["_matrix-fed._tcp.remote.test"] = [(10, 0, 8777, "srv-target.test")]
        destination, targets = self.route("remote.test")
        self.assertEqual(destination, Destination("remote.test", "remote.test", None))
        self.assertEqual(targets, [("srv-target.test", 8777)])

    def test_no_well_known_no_srv(self):
        """Without .well-known or SRV, the server name's address on 8448 is used."""
        self.assertEqual(self.route("remote.test"), (Destination("remote.test", "remote.test", None), [("remote.test", 8448)]))

    def test_srv_priority_order(self):
        """SRV records are tried by priority; a lone '.' target means no service."""
        self.resolver.srv["_matrix-fed._tcp.remote.test"] = [(20, 0, 2, "b.test"), (10, 0, 1, "a.test")]
        self.assertEqual(self.route("remote.test")[1], [("a.test", 1), ("b.test", 2)])
        self.resolver.srv["_matrix-fed._tcp.remote.test"] = [(0, 0, 0, ".")]
        self.assertEqual(self.route("remote.test")[1], [("remote.test", 8448)])

    def test_invalid_well_known_ignored(self):
        """Bad JSON, a non-200 status, a missing or malformed m.server all fall back to the server name."""
        uri = b"https://remote.test/.well-known/matrix/server"
        for answer in [well_known(b"{nope"), well_known({"m.server": "x"}, code=404), well_known({}),
                       well_known({"m.server": "bad host:x"}), well_known([1])]:
            agent = MatrixFederationAgent(self.reactor, TLSConfig(), federation_config(), resolver=self.resolver,
                                          well_known_agent=WellKnownAgent({uri: answer}))
            self.assertEqual(self.successResultOf(agent.destination_for("remote.test")).name, "remote.test")

    def test_well_known_redirect_followed(self):
        """A 30x redirect of the .well-known request is followed."""
        self.well_known.answers[b"https://remote.test/.well-known/matrix/server"] = well_known(
            b"", code=301, headers={b"Location": [b"https://www.remote.test/.well-known/matrix/server"]})
        self.well_known.answers[b"https://www.remote.test/.well-known/matrix/server"] = well_known({"m.server": "delegated.test:1"})
        self.assertEqual(self.route("remote.test")[0].name, "delegated.test:1")

    def test_well_known_cached(self):
        """A .well-known answer is cached for its max-age (at least 5 minutes, at most 48 hours), then fetched again."""
        uri = b"https://remote.test/.well-known/matrix/server"
        self.well_known.answers[uri] = well_known({"m.server": "delegated.test:1"}, headers={b"Cache-Control": [b"public, max-age=3600"]})
        self.route("remote.test")
        self.reactor.advance(3599)
        self.route("remote.test")
        self.assertEqual(len(self.well_known.requests), 1)
        self.reactor.advance(2)
        self.route("remote.test")
        self.assertEqual(len(self.well_known.requests), 2)

    def test_well_known_default_cache_and_failures(self):
        """Without cache headers answers are kept 24 hours; failures an hour, then twice as long each time."""
        uri = b"https://remote.test/.well-known/matrix/server"
        self.well_known.answers[uri] = well_known({"m.server": "delegated.test:1"})
        self.route("remote.test")
        self.reactor.advance(24 * 3600 - 1)
        self.route("remote.test")
        self.assertEqual(len(self.well_known.requests), 1)
        del self.well_known.answers[uri]
        self.reactor.advance(2)
        self.assertEqual(self.route("remote.test")[0].name, "remote.test")
        self.assertEqual(len(self.well_known.requests), 2)
        self.reactor.advance(3600 + 1)
        self.route("remote.test")
        self.assertEqual(len(self.well_known.requests), 3)
        self.reactor.advance(3600 + 1)
        self.route("remote.test")
        self.assertEqual(len(self.well_known.requests), 3)
        self.reactor.advance(3600)
        self.route("remote.test")
        self.assertEqual(len(self.well_known.requests), 4)

    def test_cache_period_from_headers(self):
        """Cache-Control max-age wins, Expires is used otherwise, no-store means none; nothing means default."""
        self.assertEqual(cache_period_from_headers(Headers({b"Cache-Control": [b"max-age=60"]}), 0), 60)
        self.assertEqual(cache_period_from_headers(Headers({b"Cache-Control": [b"no-store"]}), 0), 0)
        self.assertEqual(cache_period_from_headers(Headers({b"Expires": [b"Thu, 01 Jan 1970 00:01:40 GMT"]}), 40), 60)
        self.assertIsNone(cache_period_from_headers(Headers(), 0))

    def test_connects_to_resolved_address(self):
        """A request connects to the resolved address and port (AAAA preferred) with the connect timeout."""
        self.agent.request(b"GET", b"matrix-federation://remote.test:1234/_matrix/federation/v1/version")
        [(host, port, _factory, timeout, _bind)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("203.0.114.1", 1234, 10))
        self.agent.request(b"GET", b"matrix-federation://v6.test:99/x")
        self.assertEqual(self.reactor.tcpClients[-1][:2], ("2001:db9::1", 99))


class BlacklistTests(unittest.TestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.resolver = FakeResolver(a={"inside.test": ["10.1.2.3"], "loop.test": ["127.0.0.1"], "outside.test": ["203.0.114.1"]})

    def make_agent(self, config):
        return MatrixFederationAgent(self.reactor, TLSConfig(), config, resolver=self.resolver)

    def test_blacklisted_after_dns(self):
        """A name resolving to a private address is refused without connecting, for .well-known too."""
        agent = self.make_agent(federation_config())
        d = agent.request(b"GET", b"matrix-federation://inside.test/x")
        self.failureResultOf(d, FederationRefused)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_blacklisted_ip_literal(self):
        """An IP literal in a blacklisted range is refused."""
        agent = self.make_agent(federation_config())
        self.failureResultOf(agent.request(b"GET", b"matrix-federation://127.0.0.1:8448/x"), FederationRefused)
        self.failureResultOf(agent.request(b"GET", b"matrix-federation://[::1]:8448/x"), FederationRefused)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_whitelist_overrides(self):
        """A whitelisted range is reachable even though blacklisted; .well-known goes to port 443 first."""
        agent = self.make_agent(federation_config(whitelist=("127.0.0.0/8",)))
        agent.request(b"GET", b"matrix-federation://loop.test/x")
        self.assertEqual(self.reactor.tcpClients[0][:2], ("127.0.0.1", 443))

    def test_public_address_allowed(self):
        """A public address is connected to."""
        agent = self.make_agent(federation_config())
        agent.request(b"GET", b"matrix-federation://outside.test:8448/x")
        self.assertEqual(self.reactor.tcpClients[0][:2], ("203.0.114.1", 8448))

    def test_domain_whitelist(self):
        """A server outside federation_domain_whitelist is refused before any look-up."""
        config = FederationConfig(("allowed.test",), (), ())
        agent = self.make_agent(config)
        self.failureResultOf(agent.request(b"GET", b"matrix-federation://outside.test:8448/x"), FederationRefused)
        self.assertEqual(self.resolver.lookups, [])


class HostEcho(Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"host": request.getHeader(b"host").decode(), "path": request.uri.decode()}).encode()


class LoopbackTLSTests(unittest.TestCase):
    """Real TLS over loopback: certificate names, custom CAs, Host headers."""

    def start_server(self, certificate_name, resource=None):
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        write_self_signed_certificate(certificate_name, cert, key)
        endpoint = SSL4ServerEndpoint(reactor, 0, load_certificate_options(cert, key), interface="127.0.0.1")
        d = endpoint.listen(Site(resource or HostEcho()))

        def started(port):
            self.addCleanup(port.stopListening)
            return port.getHost().port, cert

        return d.addCallback(started)

    def make_agent(self, ca_path=None, verify=True, well_known=None, srv=None):
        resolver = FakeResolver(a={name: ["127.0.0.1"] for name in ("remote.test", "other.test", "delegated.test")}, srv=srv)
        tls_config = TLSConfig(federation_verify_certificates=verify,
                               federation_custom_ca_list=(ca_path,) if ca_path else ())
        pool = HTTPConnectionPool(reactor, persistent=False)
        return MatrixFederationAgent(reactor, tls_config, federation_config(whitelist=("127.0.0.1/32",)),
                                     resolver=resolver, well_known_agent=WellKnownAgent(well_known or {}), pool=pool)

    @defer.inlineCallbacks
    def get_json(self, agent, uri):
        response = yield agent.request(b"GET", uri)
        body = yield treq.json_content(response)
        return body

    @defer.inlineCallbacks
    def test_trusted_certificate(self):
        """A server whose certificate matches the server name and is signed by a configured CA is reached; Host is the server name."""
        port, cert = yield self.start_server("remote.test")
        body = yield self.get_json(self.make_agent(cert), b"matrix-federation://remote.test:%d/_matrix/x?a=b" % port)
        self.assertEqual(body, {"host": f"remote.test:{port}", "path": "/_matrix/x?a=b"})

    @defer.inlineCallbacks
    def test_wrong_certificate_name(self):
        """A certificate for another name is refused."""
        port, cert = yield self.start_server("remote.test")
        agent = self.make_agent(cert)
        error = yield self.assertFailure(agent.request(b"GET", b"matrix-federation://other.test:%d/x" % port),
                                         ResponseNeverReceived)
        self.assertTrue(error.reasons[0].check(VerificationError))

    @defer.inlineCallbacks
    def test_untrusted_certificate(self):
        """Without the CA configured (system trust only) a self-signed certificate is refused."""
        port, _cert = yield self.start_server("remote.test")
        other_dir = self.mktemp()
        os.makedirs(other_dir)
        other_cert = os.path.join(other_dir, "c.pem")
        write_self_signed_certificate("remote.test", other_cert, os.path.join(other_dir, "k.pem"))
        agent = self.make_agent(other_cert)
        error = yield self.assertFailure(agent.request(b"GET", b"matrix-federation://remote.test:%d/x" % port),
                                         ResponseNeverReceived)
        self.assertTrue(error.reasons[0].check(SSL.Error))

    @defer.inlineCallbacks
    def test_verification_disabled(self):
        """With federation_verify_certificates off, any certificate is accepted."""
        port, _cert = yield self.start_server("remote.test")
        body = yield self.get_json(self.make_agent(verify=False), b"matrix-federation://other.test:%d/x" % port)
        self.assertEqual(body["host"], f"other.test:{port}")

    @defer.inlineCallbacks
    def test_delegated_certificate_and_host(self):
        """With .well-known delegation the certificate must be the delegated host's, and Host is the delegated name."""
        port, cert = yield self.start_server("delegated.test")
        answers = {b"https://remote.test/.well-known/matrix/server": well_known({"m.server": f"delegated.test:{port}"})}
        body = yield self.get_json(self.make_agent(cert, well_known=answers), b"matrix-federation://remote.test/x")
        self.assertEqual(body["host"], f"delegated.test:{port}")

    @defer.inlineCallbacks
    def test_srv_keeps_server_name(self):
        """With an SRV record (no .well-known) the certificate and Host are still the server name's."""
        port, cert = yield self.start_server("remote.test")
        srv = {"_matrix-fed._tcp.remote.test": [(10, 0, port, "delegated.test")]}
        body = yield self.get_json(self.make_agent(cert, srv=srv), b"matrix-federation://remote.test/x")
        self.assertEqual(body["host"], "remote.test")

    @defer.inlineCallbacks
    def test_federation_client_end_to_end(self):
        """A FederationClient request over TLS through the agent is authenticated by the remote's X-Matrix check."""
        key = generate_signing_key("k1")
        keys = KnownKeys(reactor, {"us.test": {"ed25519:k1": (get_verify_key(key), 10**13)}})
        authenticator = FederationRequestAuthenticator(keys, "remote.test")
        resource = JsonResource()
        resource.register("PUT", "/_matrix/federation/v1/send/{txnId}",
                          authenticated(authenticator, lambda request, origin, txn_id: (200, {"origin": origin, "txn": txn_id})))
        port, cert = yield self.start_server("remote.test", resource)
        srv = {"_matrix-fed._tcp.remote.test": [(10, 0, port, "remote.test")]}
        client = FederationClient(self.make_agent(cert, srv=srv), "us.test", key, reactor, timeout=20)
        body = yield client.send_transaction("remote.test", "t1", [], [])
        self.assertEqual(body, {"origin": "us.test", "txn": "t1"})
        other = FederationClient(self.make_agent(cert, srv=srv), "us.test", generate_signing_key("k1"), reactor, timeout=20)
        error = yield self.assertFailure(other.send_transaction("remote.test", "t2", [], []), HttpResponseError)
        self.assertEqual(error.code, 401)
        refused = FederationClient(self.make_agent(cert), "us.test", key, reactor, timeout=20)
        yield self.assertFailure(refused.get_json("gone.test:1", "/_matrix/federation/v1/version"), RequestFailed)


class DefaultResolverTests(unittest.TestCase):
    """The agent builds the system's resolver when none is given."""

    def test_constructs_without_a_resolver(self):
        """MatrixFederationAgent with only the reactor and config uses hosts file + resolv.conf."""
        from twisted.internet.testing import MemoryReactorClock

        from mxref.config.federation import FederationConfig
        from mxref.config.tls import TLSConfig
        from mxref.federation.transport.agent import MatrixFederationAgent

        agent = MatrixFederationAgent(MemoryReactorClock(), TLSConfig(), FederationConfig())
        self.assertIsNotNone(agent)
