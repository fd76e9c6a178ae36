"""An in-memory federation network: several whole homeservers in one process, each reachable
by its server name, with links that can be cut and restored.

Each server's outbound :class:`~mxref.federation.transport.client.FederationClient` is given a
:class:`NetworkAgent`: a request to ``matrix-federation://<name>/<path>`` is delivered as real
HTTP (Twisted's own HTTP client and server protocols over an in-memory transport) to the
federation resource tree of the server registered under ``<name>``. Nothing is mocked above
the socket: X-Matrix signatures, JSON bodies, status codes and the full endpoint code run as in
production. A cut link refuses connections in both directions, as a partition would.
"""

import weakref
from urllib.parse import urlsplit

from treq.testing import RequestTraversalAgent
from twisted.internet import defer, error, task
from twisted.logger import Logger
from twisted.web.iweb import IAgent
from twisted.web.resource import Resource
from zope.interface import implementer



class FederationNetwork:
    """The servers of one test and the links between them.

    :param reactor: the real reactor, which moves the in-memory bytes (``callLater``).
    """

    log = Logger()

    def __init__(self, reactor):
        self._reactor = reactor
        self._roots = {}
        self._cut = set()
        self._down = set()
        self.requests = []  # (origin, destination, method, path) of every delivered request

    def add_server(self, server_name, resources):
        """Make a server reachable.

        :param resources: the homeserver's ``resources`` mapping; its ``"federation"`` entry
            (``{URL prefix: resource}``) is served.
        """
        root = Resource()
        for prefix, resource in resources["federation"].items():
            _mount(root, prefix, resource)
        self._roots[server_name] = root

    def remove_server(self, server_name):
        """Take a server off the network (it was stopped); requests to it are refused."""
        self._roots.pop(server_name, None)

    def cut(self, a, b):
        """Cut the link between servers ``a`` and ``b`` (both directions)."""
        self._cut.add(frozenset((a, b)))

    def heal(self, a=None, b=None):
        """Restore the link between ``a`` and ``b``, or every link when called without arguments."""
        if a is None:
            self._cut.clear()
        else:
            self._cut.discard(frozenset((a, b)))

    def partition(self, *groups):
        """Cut every link between servers of different groups (each group an iterable of names)."""
        groups = [set(g) for g in groups]
        for i, group in enumerate(groups):
            for other in groups[i + 1 :]:
                for a in group:
                    for b in other:
                        self.cut(a, b)

    def is_reachable(self, origin, destination) -> bool:
        """Whether a request from ``origin`` can reach ``destination`` now."""
        return destination in self._roots and frozenset((origin, destination)) not in self._cut

    def agent_for(self, origin):
        """The ``IAgent`` the server named ``origin`` sends its federation requests with."""
        return NetworkAgent(self, origin, self._reactor)

    def root_of(self, destination):
        """The federation resource tree of a server (``None`` if it is not on the network)."""
        return self._roots.get(destination)


def _mount(root, prefix, resource):
    segments = [s.encode() for s in prefix.strip("/").split("/") if s]
    node = root
    for segment in segments[:-1]:
        child = node.children.get(segment)
        if child is None:
            child = Resource()
            node.putChild(segment, child)
        node = child
    node.putChild(segments[-1], resource)


@implementer(IAgent)
class NetworkAgent:
    """Delivers ``matrix-federation://`` requests from one server over a :class:`FederationNetwork`.

    :param network: the network.
    :param origin: the sending server's name.
    :param reactor: the real reactor (drives the in-memory transport).
    :param pump_interval: seconds between moving bytes while a request is in flight.
    """

    def __init__(self, network, origin, reactor, pump_interval=0.001):
        self._network = network
        self._origin = origin
        self._reactor = reactor
        self._pump_interval = pump_interval
        self._agents = {}

    def request(self, method, uri, headers=None, bodyProducer=None):
        """``IAgent.request``: deliver the request to the named server, or fail to connect."""
        parts = urlsplit(uri.decode("ascii"))
        destination = parts.netloc
        if not self._network.is_reachable(self._origin, destination):
            return defer.fail(error.ConnectionRefusedError(f"{self._origin} cannot reach {destination}"))
        root = self._network.root_of(destination)
        agent = self._agents.get(destination)
        if agent is None or agent.root is not root:
            agent = _DestinationAgent(root)
            self._agents[destination] = agent
        self._network.requests.append((self._origin, destination, method.decode(), parts.path))
        target = f"http://{destination}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        return pumped_request(agent.traversal, self._reactor, method, target.encode("ascii"), headers, bodyProducer,
                              self._pump_interval)


#: A request whose response has not been read by then stops being served.
MAX_REQUEST_SECONDS = 120


def pumped_request(traversal, reactor, method, uri, headers=None, body_producer=None, pump_interval=0.001):
    """Send a request through a :class:`treq.testing.RequestTraversalAgent`, moving its
    in-memory bytes on the real reactor until the response body has been read.

    :returns: Deferred firing with an ``IResponse``.
    """
    d = traversal.request(method, uri, headers, body_producer)
    pump = task.LoopingCall(flush_traversal, traversal)
    pump.clock = reactor
    pump.start(pump_interval, now=True)
    # Never pump forever, whatever happens to the request or its body.
    deadline = reactor.callLater(MAX_REQUEST_SECONDS, _stop, pump, None)
    pump.deadline = deadline

    def stop_pumping(result):
        _stop(pump, deadline)
        return result

    d.addErrback(stop_pumping)
    d.addCallback(lambda response: _PumpedResponse(response, pump))
    return d


#: Per traversal agent: ``[flushing now, flush asked for again meanwhile]``.
_flush_states = weakref.WeakKeyDictionary()

#: Flushes folded into one call at most (a guard against a server that never goes quiet).
_MAX_FOLDED_FLUSHES = 100


def flush_traversal(traversal):
    """Move the in-memory bytes of every connection of a ``RequestTraversalAgent``.

    treq's ``flush`` is not re-entrant: it swaps in a fresh set of connections, flushes the
    old ones and carries the open ones over into the set it swapped in. A nested call (a
    response handler that starts another request, whose pump flushes at once) swaps the set
    again, and every connection the outer call had yet to carry over is lost: its response
    is never delivered. So a call made while a flush of the same agent is under way is
    folded into that flush, which goes round once more. Not a Deferred.
    """
    state = _flush_states.setdefault(traversal, [False, False])
    if state[0]:
        state[1] = True
        return
    state[0] = True
    try:
        for _ in range(_MAX_FOLDED_FLUSHES):
            state[1] = False
            traversal.flush()
            if not state[1]:
                break
    finally:
        state[0] = False


def _stop(pump, deadline):
    """Stop moving bytes for one request, and its deadline."""
    if pump.running:
        pump.stop()
    if deadline is not None and deadline.active():
        deadline.cancel()


class _DestinationAgent:
    """A :class:`treq.testing.RequestTraversalAgent` over one server's federation tree."""

    def __init__(self, root):
        self.root = root
        self.traversal = RequestTraversalAgent(root)


class _PumpedResponse:
    """Wraps an ``IResponse`` so that the pump stops once its body has been delivered."""

    def __init__(self, response, pump):
        self._response = response
        self._pump = pump

    def __getattr__(self, name):
        return getattr(self._response, name)

    def deliverBody(self, protocol):
        """Deliver the body, then stop moving bytes for this request."""
        original = protocol.connectionLost

        def connection_lost(reason):
            _stop(self._pump, self._pump.deadline)
            return original(reason)

        protocol.connectionLost = connection_lost
        return self._response.deliverBody(protocol)

