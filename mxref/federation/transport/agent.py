"""Reaching another homeserver: server discovery, TLS with the right name, and the IP range blacklist.

Spec: Server-Server API, "Resolving server names"
(https://spec.matrix.org/v1.19/server-server-api/#resolving-server-names) and "TLS"
(https://spec.matrix.org/v1.19/server-server-api/#tls).

:class:`MatrixFederationAgent` is an ``IAgent`` for ``matrix-federation://<server name>/<path>``
URIs. For each request it works out, in the spec's order:

1. an IP literal (``1.2.3.4``, ``[::1]:8449``): connect to it, on the given port or 8448;
2. a hostname with an explicit port: its AAAA/A addresses, on that port;
3. otherwise ``GET https://<hostname>/.well-known/matrix/server``. A valid answer's
   ``m.server`` (``<delegated_hostname>[:<delegated_port>]``) is resolved again: an IP
   literal directly, a hostname with a port by AAAA/A, a hostname alone by SRV
   ``_matrix-fed._tcp.<host>``, then the deprecated ``_matrix._tcp.<host>``, then AAAA/A on 8448;
4./5. without a valid answer, the same SRV look-ups for ``<hostname>``, then AAAA/A on 8448.

The ``Host`` header and the name the certificate must be valid for (sent as SNI unless
it is an IP address) follow from step 3 alone: the delegated name when ``.well-known``
delegated, the server name otherwise. SRV records only change where we connect.

``.well-known`` answers are cached as their ``Cache-Control: max-age`` / ``Expires``
say (24 hours by default, between 5 minutes and 48 hours); failures (errors, non-200,
bad JSON, a missing or malformed ``m.server``) are cached for an hour, doubling for
repeated failures up to a day. Redirects are followed (at most 5).

Every address we would connect to, for federation and for ``.well-known``, is checked
against ``ip_range_blacklist`` / ``ip_range_whitelist`` after DNS resolution (protection
against server-side request forgery); servers outside ``federation_domain_whitelist``
are refused before any look-up.
"""

import ipaddress
import random
import re
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import attr
from treq.content import collect
from OpenSSL import SSL
from twisted.internet import defer, error as internet_error
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.names import cache as _dns_cache
from twisted.names import client as _dns_client
from twisted.names import dns
from twisted.names import hosts as _dns_hosts
from twisted.names import resolve as _dns_resolve
from twisted.web.client import Agent, HTTPConnectionPool, RedirectAgent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from mxref.config.server import split_server_name
from mxref.http.request import decode_json
from mxref.types import is_valid_server_name

#: The port a server listens on for federation when nothing says otherwise.
DEFAULT_FEDERATION_PORT = 8448

WELL_KNOWN_PATH = "/.well-known/matrix/server"
WELL_KNOWN_DEFAULT_CACHE_S = 24 * 60 * 60
WELL_KNOWN_MIN_CACHE_S = 5 * 60
WELL_KNOWN_MAX_CACHE_S = 48 * 60 * 60
WELL_KNOWN_ERROR_CACHE_S = 60 * 60
WELL_KNOWN_MAX_ERROR_CACHE_S = 24 * 60 * 60
WELL_KNOWN_MAX_SIZE = 50 * 1024
WELL_KNOWN_TIMEOUT_S = 30
WELL_KNOWN_REDIRECT_LIMIT = 5

#: Seconds to wait for a TCP connection to be established.
CONNECT_TIMEOUT_S = 10

_TLS_VERSIONS = {"1": TLSVersion.TLSv1_0, "1.1": TLSVersion.TLSv1_1, "1.2": TLSVersion.TLSv1_2,
                 "1.3": TLSVersion.TLSv1_3}

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?([0-9]+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


class FederationRefused(Exception):
    """The destination may not be contacted (domain not whitelisted, or only blacklisted addresses)."""


class DiscoveryError(Exception):
    """Server discovery found no address to connect to."""


def _ip_literal(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _authority(host: str, port) -> str:
    """``host[:port]`` with IPv6 literals in brackets."""
    text = f"[{host}]" if ":" in host else host
    return text if port is None else f"{text}:{port}"


@attr.s(frozen=True, slots=True)
class Destination:
    """Where a server name leads after the ``.well-known`` step.

    :ivar name: the name used for ``Host`` (the delegated name or the server name itself).
    :ivar host: its host part: the name the certificate must be valid for (an IP or hostname).
    :ivar port: its explicit port, or ``None``.
    """

    name = attr.ib()
    host = attr.ib()
    port = attr.ib()


# --- TLS ----------------------------------------------------------------------


def _name_matches(pattern: str, name: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.lower().split("*")) + "$"
    return re.match(regex, name.lower()) is not None


@implementer(IPolicyForHTTPS)
class FederationTLSPolicy:
    """The TLS client options for federation: verify the peer's certificate for the expected name.

    :param tls_config: a :class:`~mxref.config.tls.TLSConfig`: ``federation_verify_certificates``,
        ``federation_custom_ca_list`` (the only authorities trusted when given),
        ``federation_certificate_verification_whitelist`` and
        ``federation_client_minimum_tls_version``.
    """

    def __init__(self, tls_config):
        self._verify = tls_config.federation_verify_certificates
        self._whitelist = tuple(tls_config.federation_certificate_verification_whitelist)
        self._minimum = _TLS_VERSIONS.get(str(tls_config.federation_client_minimum_tls_version))
        if tls_config.federation_custom_ca_list:
            certificates = []
            for path in tls_config.federation_custom_ca_list:
                with open(path, "rb") as f:
                    certificates.append(Certificate.loadPEM(f.read()))
            self._trust_root = trustRootFromCertificates(certificates)
        else:
            self._trust_root = platformTrust()

    def creator_for(self, tls_name: str):
        """An ``IOpenSSLClientConnectionCreator`` for a server that must prove it is ``tls_name``.

        SNI is sent for hostnames, not for IP addresses (as the spec's TLS section asks).
        """
        extra = {}
        if self._minimum is not None and self._minimum is not TLSVersion.TLSv1_0:
            extra["raiseMinimumTo"] = self._minimum
        if not self._verify or any(_name_matches(pattern, tls_name) for pattern in self._whitelist):
            return _UnverifiedCreator(tls_name, CertificateOptions(verify=False, **extra))
        return optionsForClientTLS(tls_name, trustRoot=self._trust_root, extraCertificateOptions=extra or None)

    def creatorForNetloc(self, hostname, port):
        """``IPolicyForHTTPS``: options for ``hostname`` (bytes), used for ``.well-known`` requests."""
        return self.creator_for(hostname.decode("ascii"))


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedCreator:
    """TLS without certificate checks, still sending SNI for hostnames."""

    def __init__(self, tls_name, options):
        self._sni = None if _ip_literal(tls_name) else tls_name.encode("idna")
        self._options = options

    def clientConnectionForTLS(self, tls_protocol):
        """A client ``SSL.Connection`` that accepts any certificate."""
        connection = SSL.Connection(self._options.getContext(), None)
        connection.set_app_data(tls_protocol)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        return connection


# --- DNS and connecting -------------------------------------------------------


class _AddressConnector:
    """Resolves hostnames, applies the IP blacklist and connects (TCP, then TLS) to the first address that answers."""

    _log = Logger()

    def __init__(self, reactor, resolver, federation_config, tls_policy, connect_timeout):
        self._reactor = reactor
        self._resolver = resolver
        self._config = federation_config
        self._tls_policy = tls_policy
        self._connect_timeout = connect_timeout

    @defer.inlineCallbacks
    def addresses(self, host: str):
        """The IP addresses of ``host`` (AAAA then A), or the literal itself; a Deferred of a list."""
        literal = _ip_literal(host)
        if literal is not None:
            return [literal]
        found = []
        for lookup in (self._resolver.lookupIPV6Address, self._resolver.lookupAddress):
            try:
                answers, _authority_records, _additional = yield lookup(host)
            except defer.CancelledError:
                raise
            except Exception as e:
                self._log.debug("address look-up for {host} failed: {error}", host=host, error=e)
                continue
            for answer in answers:
                if answer.type == dns.AAAA:
                    found.append(ipaddress.IPv6Address(answer.payload.address))
                elif answer.type == dns.A:
                    found.append(ipaddress.IPv4Address(answer.payload.address))
        return list(dict.fromkeys(found))

    @defer.inlineCallbacks
    def connect(self, targets, tls_name: str, protocol_factory):
        """Connect to the first reachable allowed address of ``targets`` (``[(host, port)]``), over TLS.

        :returns: a Deferred firing with the connected protocol.
        :raises FederationRefused: when every address found is blacklisted.
        :raises DiscoveryError: when no address was found.
        """
        last_error = None
        refused = []
        tried = 0
        for host, port in targets:
            addresses = yield self.addresses(host)
            for address in addresses:
                if not self._config.is_ip_allowed(address):
                    refused.append(str(address))
                    continue
                tried += 1
                endpoint_class = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
                endpoint = endpoint_class(self._reactor, str(address), port, timeout=self._connect_timeout)
                if self._tls_policy is not None:
                    endpoint = wrapClientTLS(self._tls_policy.creator_for(tls_name), endpoint)
                try:
                    protocol = yield endpoint.connect(protocol_factory)
                except defer.CancelledError:
                    raise
                except Exception as e:
                    self._log.info("could not connect to {address}:{port} ({host}): {error}",
                                   address=str(address), port=port, host=host, error=e)
                    last_error = e
                    continue
                return protocol
        if last_error is not None:
            raise last_error
        if refused and not tried:
            raise FederationRefused(f"refusing to connect to blacklisted address(es) {', '.join(refused)}")
        raise DiscoveryError(f"no address found for {', '.join(_authority(h, p) for h, p in targets) or 'nothing'}")


@implementer(IAgentEndpointFactory)
class _WellKnownEndpointFactory:
    """Endpoints for ``https://<host>[:port]/...`` that resolve through our resolver and blacklist."""

    def __init__(self, connector):
        self._connector = connector

    def endpointForURI(self, uri):
        host = uri.host.decode("ascii")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if uri.scheme != b"https":
            raise internet_error.ConnectError(f"refusing non-HTTPS .well-known URI {uri.toBytes()!r}")
        return _LazyEndpoint(lambda factory: self._connector.connect([(host, uri.port)], host, factory))


class _LazyEndpoint:
    """An ``IStreamClientEndpoint`` whose ``connect`` is a function (resolution happens on connect)."""

    def __init__(self, connect):
        self._connect = connect

    def connect(self, protocol_factory):
        """Run the connect function; returns a Deferred of the connected protocol."""
        return defer.maybeDeferred(self._connect, protocol_factory)


# --- .well-known ----------------------------------------------------------------


def cache_period_from_headers(headers, now_s: float):
    """Seconds to cache a ``.well-known`` answer from ``Cache-Control`` / ``Expires``, or ``None`` if they say nothing.

    :param headers: a ``twisted.web.http_headers.Headers``.
    """
    cache_control = b",".join(headers.getRawHeaders(b"Cache-Control") or []).decode("latin-1")
    if _NO_CACHE.search(cache_control):
        return 0
    match = _MAX_AGE.search(cache_control)
    if match:
        return int(match.group(1))
    expires = headers.getRawHeaders(b"Expires")
    if expires:
        try:
            return max(0, parsedate_to_datetime(expires[0].decode("latin-1")).timestamp() - now_s)
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0
    return None


class WellKnownResolver:
    """Fetches and caches ``/.well-known/matrix/server``.

    :param reactor: the reactor (``IReactorTime`` for the cache and timeouts).
    :param agent: an ``IAgent`` for ``https://`` URIs (redirects are followed on top of it).
    """

    _log = Logger()

    def __init__(self, reactor, agent):
        self._clock = reactor
        self._agent = RedirectAgent(agent, redirectLimit=WELL_KNOWN_REDIRECT_LIMIT)
        self._cache = {}  # hostname -> (expires_at_s, delegated name or None, failures in a row)
        self._in_flight = {}

    def get_delegated_name(self, hostname: str):
        """The ``m.server`` of ``hostname``'s ``.well-known``, or ``None`` when it has no valid one.

        :returns: a Deferred firing with a server name string or ``None``; never fails.
        """
        now = self._clock.seconds()
        cached = self._cache.get(hostname)
        if cached is not None and cached[0] > now:
            return defer.succeed(cached[1])
        waiters = self._in_flight.get(hostname)
        waiter = defer.Deferred()
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._in_flight[hostname] = [waiter]
        failures = cached[2] if cached is not None else 0
        d = defer.ensureDeferred(self._fetch(hostname))

        def done(result):
            delegated, period = result
            if delegated is None:
                period = min(WELL_KNOWN_ERROR_CACHE_S * 2 ** failures, WELL_KNOWN_MAX_ERROR_CACHE_S)
                self._cache[hostname] = (self._clock.seconds() + period, None, failures + 1)
            else:
                self._cache[hostname] = (self._clock.seconds() + period, delegated, 0)
            for each in self._in_flight.pop(hostname):
                each.callback(delegated)

        d.addCallback(done)
        return waiter

    async def _fetch(self, hostname):
        """``(delegated name or None, cache seconds)``."""
        uri = f"https://{_authority(hostname, None)}{WELL_KNOWN_PATH}".encode("ascii")
        request = self._agent.request(b"GET", uri, Headers({b"User-Agent": [b"mxref"]}))
        request.addTimeout(WELL_KNOWN_TIMEOUT_S, self._clock)
        try:
            response = await request
            body = await _read_limited(response, WELL_KNOWN_MAX_SIZE)
        except Exception as e:
            self._log.info("no .well-known for {hostname}: {error}", hostname=hostname, error=e)
            return None, 0
        if response.code != 200:
            self._log.info("no .well-known for {hostname}: HTTP {code}", hostname=hostname, code=response.code)
            return None, 0
        try:
            parsed = decode_json(body)
        except Exception:
            return None, 0
        delegated = parsed.get("m.server") if isinstance(parsed, dict) else None
        if not isinstance(delegated, str) or not is_valid_server_name(delegated):
            self._log.info("invalid .well-known for {hostname}", hostname=hostname)
            return None, 0
        period = cache_period_from_headers(response.headers, self._clock.seconds())
        if period is None:
            period = WELL_KNOWN_DEFAULT_CACHE_S
        period = min(max(period, WELL_KNOWN_MIN_CACHE_S), WELL_KNOWN_MAX_CACHE_S)
        return delegated, period


async def _read_limited(response, limit):
    """The response body, refusing more than ``limit`` bytes."""
    chunks = []
    size = [0]

    def collector(data):
        size[0] += len(data)
        if size[0] > limit:
            raise ValueError(f"body larger than {limit} bytes")
        chunks.append(data)

    await collect(response, collector)
    return b"".join(chunks)


# --- the agent --------------------------------------------------------------------


@implementer(IAgentEndpointFactory)
class _FederationEndpointFactory:
    """Endpoints for ``matrix-federation://<destination name>/``: SRV/AAAA/A, blacklist, TLS."""

    def __init__(self, agent):
        self._agent = agent

    def endpointForURI(self, uri):
        name = uri.netloc.decode("ascii")
        return _LazyEndpoint(lambda factory: self._agent._connect_destination(name, factory))


@implementer(IAgent)
def system_resolver(reactor):
    """Name resolution as the system does it: the hosts file, then the DNS servers of
    ``resolv.conf`` (what ``twisted.names.client.createResolver`` builds on POSIX), on
    ``reactor``. Not a Deferred."""
    return _dns_resolve.ResolverChain(
        [
            _dns_hosts.Resolver(b"/etc/hosts"),
            _dns_cache.CacheResolver(reactor=reactor),
            _dns_client.Resolver(b"/etc/resolv.conf", reactor=reactor),
        ]
    )


class MatrixFederationAgent:
    """An ``IAgent`` for ``matrix-federation://<server name>/<path>`` URIs (see the module docstring).

    :param reactor: provides ``IReactorTCP`` and ``IReactorTime``.
    :param tls_config: a :class:`~mxref.config.tls.TLSConfig`.
    :param federation_config: a :class:`~mxref.config.federation.FederationConfig`
        (``is_ip_allowed``, ``is_domain_allowed``).
    :param resolver: a ``twisted.names`` ``IResolver`` (default: the system's, on ``reactor``).
    :param well_known_agent: the ``IAgent`` used for ``.well-known`` requests (default: HTTPS
        with the same certificate checks and blacklist).
    :param pool: an ``HTTPConnectionPool`` (default: a persistent one on ``reactor``).
    :param connect_timeout: seconds to wait for each TCP connection.
    :param rng: a ``random.Random`` for SRV weights.
    :param tls: whether to speak TLS (turned off only to test over plain TCP).
    """

    _log = Logger()

    def __init__(self, reactor, tls_config, federation_config, resolver=None, well_known_agent=None,
                 pool=None, connect_timeout=CONNECT_TIMEOUT_S, rng=None, tls=True):
        self._reactor = reactor
        self._config = federation_config
        self._resolver = resolver if resolver is not None else system_resolver(reactor)
        self._tls_policy = FederationTLSPolicy(tls_config) if tls else None
        self._connector = _AddressConnector(reactor, self._resolver, federation_config, self._tls_policy,
                                            connect_timeout)
        if well_known_agent is None:
            well_known_agent = Agent.usingEndpointFactory(
                reactor, _WellKnownEndpointFactory(self._connector), HTTPConnectionPool(reactor, persistent=False)
            )
        self._well_known = WellKnownResolver(reactor, well_known_agent)
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = 5
            pool.cachedConnectionTimeout = 2 * 60
        self._agent = Agent.usingEndpointFactory(reactor, _FederationEndpointFactory(self), pool)
        self._rng = rng if rng is not None else random.Random()

    @defer.inlineCallbacks
    def request(self, method, uri, headers=None, bodyProducer=None):
        """``IAgent.request`` for a ``matrix-federation://`` URI; returns a Deferred of the response.

        Fails with :class:`FederationRefused` for servers outside ``federation_domain_whitelist``
        or reachable only at blacklisted addresses.
        """
        parts = urlsplit(uri.decode("ascii"))
        if parts.scheme != "matrix-federation":
            raise ValueError(f"not a matrix-federation URI: {uri!r}")
        server_name = parts.netloc
        if not self._config.is_domain_allowed(server_name):
            raise FederationRefused(f"{server_name} is not in federation_domain_whitelist")
        destination = yield self.destination_for(server_name)
        headers = headers.copy() if headers is not None else Headers()
        headers.setRawHeaders(b"Host", [destination.name.encode("ascii")])
        target = f"matrix-federation://{destination.name}{parts.path or '/'}"
        if parts.query:
            target += "?" + parts.query
        response = yield self._agent.request(method, target.encode("ascii"), headers, bodyProducer)
        return response

    @defer.inlineCallbacks
    def destination_for(self, server_name: str):
        """Steps 1 to 3 of server discovery: the name to send as ``Host`` and to check the certificate against.

        :returns: a Deferred firing with a :class:`Destination`.
        :raises ValueError: (through the Deferred) for a malformed server name.
        """
        host, port = split_server_name(server_name)
        if _ip_literal(host) is not None or port is not None:
            return Destination(server_name, host, port)
        delegated = yield self._well_known.get_delegated_name(host)
        if delegated is None:
            return Destination(server_name, host, None)
        delegated_host, delegated_port = split_server_name(delegated)
        return Destination(delegated, delegated_host, delegated_port)

    @defer.inlineCallbacks
    def targets_for(self, destination: Destination):
        """Steps after ``.well-known``: the ``(host, port)`` pairs to try, in order.

        :returns: a Deferred firing with a list.
        """
        if _ip_literal(destination.host) is not None or destination.port is not None:
            return [(destination.host, destination.port or DEFAULT_FEDERATION_PORT)]
        for service in ("_matrix-fed._tcp.", "_matrix._tcp."):
            records = yield self._srv(service + destination.host)
            if records:
                return records
        return [(destination.host, DEFAULT_FEDERATION_PORT)]

    @defer.inlineCallbacks
    def _srv(self, name):
        try:
            answers, _authority_records, _additional = yield self._resolver.lookupService(name)
        except defer.CancelledError:
            raise
        except Exception as e:
            self._log.debug("no SRV record {name}: {error}", name=name, error=e)
            return []
        records = [answer.payload for answer in answers if answer.type == dns.SRV]
        if len(records) == 1 and records[0].target.name in (b"", b"."):
            return []
        return [(record.target.name.decode("ascii"), record.port) for record in self._order_srv(records)
                if record.target.name not in (b"", b".")]

    def _order_srv(self, records):
        """RFC 2782 order: by priority, then a weighted random choice within each priority."""
        ordered = []
        for priority in sorted({record.priority for record in records}):
            group = [record for record in records if record.priority == priority]
            while group:
                total = sum(record.weight for record in group)
                pick = self._rng.randint(0, total) if total else 0
                running = 0
                for index, record in enumerate(group):
                    running += record.weight
                    if running >= pick:
                        ordered.append(group.pop(index))
                        break
        return ordered

    @defer.inlineCallbacks
    def _connect_destination(self, destination_name, protocol_factory):
        host, port = split_server_name(destination_name)
        destination = Destination(destination_name, host, port)
        targets = yield self.targets_for(destination)
        protocol = yield self._connector.connect(targets, host, protocol_factory)
        return protocol
