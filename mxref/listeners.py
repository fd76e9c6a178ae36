"""Turning the ``listeners`` configuration into listening services: one Site per listener.

The composition root names the web resources it has, each mounted at one or
more URL path prefixes::

    {
        "client": {"/_matrix/client": client_api, "/_synapse/admin": admin_api},
        "federation": {"/_matrix/federation": federation_api, "/_matrix/key": key_api},
        "keys": {"/_matrix/key": key_api},
    }

Each listener serves the union of the resources it names, over plain HTTP or
TLS, on every bind address (one socket each, IPv4 or IPv6) or on a Twisted
endpoint string. Paths under a mount point that nothing serves answer
``404 M_UNRECOGNIZED``, as the spec asks of unknown endpoints (Client-Server
API, "API Standards", https://spec.matrix.org/v1.19/client-server-api/#api-standards).
"""

import errno
import ipaddress

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import server
from twisted.web.resource import EncodingResourceWrapper, Resource
from twisted.web.server import GzipEncoderFactory

from mxref.config.reader import ConfigError

_UNRECOGNIZED_BODY = b'{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}'


class UnrecognizedPathResource(Resource):
    """An intermediate node of the URL tree: answers ``404 M_UNRECOGNIZED`` for anything not mounted below it."""

    def getChild(self, path, request):
        """Any unmounted child is unrecognised too."""
        return UnrecognizedPathResource()

    def render(self, request):
        """Answer ``404`` with the Matrix ``M_UNRECOGNIZED`` error body."""
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        return _UNRECOGNIZED_BODY


def _prefix_segments(prefix: str) -> tuple:
    segments = tuple(segment.encode("utf-8") for segment in prefix.strip("/").split("/") if segment)
    if not segments:
        raise ValueError(
            f"cannot mount a resource at {prefix!r}: give a path prefix such as '/_matrix/client'"
        )
    return segments


def _mount(root: Resource, segments: tuple, resource) -> None:
    node = root
    for segment in segments[:-1]:
        child = node.children.get(segment)
        if child is None:
            child = UnrecognizedPathResource()
            node.putChild(segment, child)
        elif getattr(child, "isLeaf", False):
            raise ValueError(
                f"cannot mount below /{'/'.join(s.decode() for s in segments)}: "
                f"{segment.decode()!r} is already served by a leaf resource"
            )
        node = child
    node.putChild(segments[-1], resource)


def build_root_resource(listener, resources, listener_key: str = "listeners[0]"):
    """The root resource for one listener: every named resource mounted at its prefixes.

    :param listener: a :class:`mxref.config.listeners.ListenerConfig`.
    :param resources: ``{resource name: {path prefix: IResource}}`` from the composition root.
    :param listener_key: the listener's config path, for error messages.
    :raises ConfigError: if the listener names a resource that ``resources`` lacks.
    :raises ValueError: if two different resources claim the same prefix.
    """
    root = UnrecognizedPathResource()
    mounted = {}
    for group_index, group in enumerate(listener.resources):
        for name in group.names:
            if name not in resources:
                available = ", ".join(sorted(resources)) or "none"
                raise ConfigError(
                    f"{listener_key}.resources[{group_index}].names",
                    f"unknown resource name {name!r} (this server has: {available})",
                )
            for prefix, resource in resources[name].items():
                segments = _prefix_segments(prefix)
                if segments in mounted:
                    if mounted[segments] is resource:
                        continue
                    raise ValueError(f"two different resources are mounted at {prefix!r}")
                mounted[segments] = resource
                if group.compress:
                    resource = EncodingResourceWrapper(resource, [GzipEncoderFactory()])
                _mount(root, segments, resource)
    return root


def _default_site(root, listener, reactor):
    return server.Site(root, reactor=reactor)


class ListenerService(service.Service):
    """Listens on one endpoint with one factory while running.

    Binding happens in ``privilegedStartService`` (before twistd drops
    privileges, so ports below 1024 work) and a failure to bind is raised
    there, stopping start-up, unless ``tolerated_errors`` lists its ``errno``
    (used for the second half of a ``['::', '0.0.0.0']`` pair, which a
    dual-stack ``::`` socket already covers).

    :param endpoint: an ``IStreamServerEndpoint``.
    :param factory: the protocol factory (a Site, or a TLS wrapper around one).
    :param description: how to name this socket in logs, e.g. ``"https://[::]:8448"``.
    :param tolerated_errors: ``errno`` values to log instead of raising.
    :ivar port: the ``IListeningPort`` once listening, else ``None``.
    """

    log = Logger()

    def __init__(self, endpoint, factory, description: str, tolerated_errors=()):
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.tolerated_errors = tuple(tolerated_errors)
        self.port = None
        self._waiting = None

    def privilegedStartService(self):
        """Start listening; raise at once if the endpoint cannot listen (unless tolerated)."""
        service.Service.privilegedStartService(self)
        starting = True
        raise_now = []

        def failed(failure):
            socket_error = getattr(failure.value, "socketError", None)
            if failure.check(defer.CancelledError):
                return None
            if (
                failure.check(CannotListenError)
                and getattr(socket_error, "errno", None) in self.tolerated_errors
            ):
                self.log.info(
                    "not listening on {description}: {error}",
                    description=self.description,
                    error=socket_error,
                )
            elif starting:
                raise_now.append(failure)
            else:
                self.log.failure(
                    "cannot listen on {description}", failure, description=self.description
                )
            return None

        self._waiting = self.endpoint.listen(self.factory)
        self._waiting.addCallbacks(self._listening, failed)
        starting = False
        if raise_now:
            raise_now[0].raiseException()

    def _listening(self, port):
        self.port = port
        self.log.info("listening on {description}", description=self.description)
        return port

    def startService(self):
        """Mark running, binding first if ``privilegedStartService`` was not called."""
        if self._waiting is None:
            self.privilegedStartService()
        service.Service.startService(self)

    def stopService(self):
        """Stop listening; returns a Deferred that fires when the socket is closed."""
        service.Service.stopService(self)
        waiting, self._waiting = self._waiting, None
        port, self.port = self.port, None
        if waiting is not None and port is None:
            waiting.cancel()
        if port is not None:
            return defer.maybeDeferred(port.stopListening)
        return defer.succeed(None)


def _tolerated_errors(address: str, bind_addresses) -> tuple:
    """Errors to tolerate for ``address`` when its dual-stack partner is also configured."""
    if address == "0.0.0.0" and "::" in bind_addresses:
        return (errno.EADDRINUSE,)
    if address == "::" and "0.0.0.0" in bind_addresses:
        return (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
    return ()


def listener_endpoints(listener, reactor, listener_key: str = "listeners[0]") -> list:
    """The endpoints a listener listens on.

    :returns: a list of ``(endpoint, description, tolerated_errors)``.
    :raises ConfigError: naming ``<listener_key>.endpoint`` for a bad endpoint string.
    """
    scheme = "https" if listener.tls else "http"
    if listener.endpoint is not None:
        try:
            endpoint = serverFromString(reactor, listener.endpoint)
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{listener_key}.endpoint", f"{listener.endpoint!r} is not a server endpoint: {e}"
            )
        return [(endpoint, f"{scheme} on {listener.endpoint}", ())]
    endpoints = []
    for address in listener.bind_addresses:
        if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
            endpoint = TCP6ServerEndpoint(reactor, listener.port, interface=address)
            description = f"{scheme}://[{address}]:{listener.port}"
        else:
            endpoint = TCP4ServerEndpoint(reactor, listener.port, interface=address)
            description = f"{scheme}://{address}:{listener.port}"
        endpoints.append(
            (endpoint, description, _tolerated_errors(address, listener.bind_addresses))
        )
    return endpoints


def build_listener_services(
    listeners, resources, reactor, tls_options=None, site_factory=None
) -> list:
    """One :class:`ListenerService` per socket of every listener.

    :param listeners: the :class:`mxref.config.listeners.ListenerConfig` tuple (``config.listeners``).
    :param resources: ``{resource name: {path prefix: IResource}}``.
    :param reactor: the reactor to listen with.
    :param tls_options: an ``IOpenSSLContextFactory`` (e.g. from
        :func:`mxref.crypto.tls.server_tls_options`), needed if any listener has ``tls: true``.
    :param site_factory: ``site_factory(root, listener, reactor) -> Site``; a plain
        ``twisted.web.server.Site`` by default. Use it to apply ``listener.x_forwarded``.
    :returns: a list of services (not started).
    :raises ConfigError: for an unknown resource name, a bad endpoint, or TLS without options.
    """
    site_factory = site_factory or _default_site
    services = []
    for index, listener in enumerate(listeners):
        key = f"listeners[{index}]"
        root = build_root_resource(listener, resources, key)
        factory = site_factory(root, listener, reactor)
        if listener.tls:
            if tls_options is None:
                raise ConfigError(f"{key}.tls", "is true but no TLS certificate was configured")
            factory = TLSMemoryBIOFactory(tls_options, False, factory)
        for endpoint, description, tolerated in listener_endpoints(listener, reactor, key):
            services.append(ListenerService(endpoint, factory, description, tolerated))
    return services
