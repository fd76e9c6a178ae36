"""A whole test homeserver with modules configured, driven over HTTP in memory.

:func:`start_server` builds a real :class:`~mxref.homeserver.HomeServer`
(:func:`mxref.testing.homeserver.make_test_homeserver`) with a ``modules:`` list, and serves
its client listener's resources (``/_matrix/client`` and the modules' ``/_mxref/...``)
through a real ``MatrixSite``; :class:`ServerDriver` sends raw HTTP requests to it.
"""

import importlib.util
import os
import sys

from twisted.internet import reactor, task
from twisted.internet.testing import MemoryReactorClock

from mxref.http.site import MatrixSite
from mxref.listeners import build_root_resource
from mxref.testing.homeserver import make_test_homeserver
from tests.http.memory_http import MemoryConnection

#: Where the example module package lives in the source tree (tests import it from there;
#: the integration test installs it with pip instead).
EXAMPLE_MODULE_DIR = os.path.join(
    os.path.dirname(__file__), "..", "..", "contrib", "example_module"
)


def make_example_module_importable():
    """Put ``contrib/example_module`` on ``sys.path`` unless the package is installed."""
    if importlib.util.find_spec("mxref_example_module") is None:
        sys.path.insert(0, os.path.abspath(EXAMPLE_MODULE_DIR))


def module_entry(path, config=None, **extra):
    """One ``modules:`` entry."""
    entry = {"module": path, "config": dict(config or {})}
    entry.update(extra)
    return entry


def sample(name):
    """The dotted path of a module in :mod:`tests.modules.sample_modules`."""
    return f"tests.modules.sample_modules.{name}"


class ServerDriver:
    """Requests to one test homeserver's client listener.

    :ivar homeserver: the :class:`~mxref.homeserver.HomeServer`.
    """

    def __init__(self, homeserver):
        self.homeserver = homeserver
        listener = homeserver.config.listeners[0]
        # The Site's own clock (request timing, idle timeouts) is a fake one, so no timers
        # are left on the real reactor; the homeserver itself runs on the real reactor.
        self.site = MatrixSite(
            build_root_resource(listener, homeserver.resources), MemoryReactorClock()
        )

    def module(self, name):
        """The module object named ``name``."""
        for loaded in self.homeserver.modules:
            if loaded.name == name:
                return loaded.module
        raise KeyError(name)

    async def request(self, method, path, body=None, token=None, timeout=10.0):
        """One HTTP request; returns a :class:`tests.http.memory_http.RawResponse`."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = MemoryConnection(self.site)
        connection.request(method, path, body, headers)
        waited = 0.0
        while True:
            try:
                return connection.response()
            except ValueError:
                if waited >= timeout:
                    raise AssertionError(f"no response to {method} {path} within {timeout} s")
            await task.deferLater(reactor, 0.005, lambda: None)
            waited += 0.005

    async def user(self, localpart, password="secret words"):
        """Create a user and log it in; returns ``(user_id, access_token)``."""
        user_id = await self.homeserver.registrar.register_user(localpart, password)
        _, token = await self.homeserver.login.start_session(user_id)
        return user_id, token

    async def create_room(self, token, **body):
        """``POST /createRoom``; returns the response."""
        return await self.request("POST", "/_matrix/client/v3/createRoom", body, token)

    async def send_message(self, token, room_id, text, txn_id):
        """``PUT /rooms/{roomId}/send/m.room.message/{txnId}``; returns the response."""
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn_id}"
        return await self.request("PUT", path, {"msgtype": "m.text", "body": text}, token)

    async def get_event(self, token, room_id, event_id):
        """``GET /rooms/{roomId}/event/{eventId}``; returns the event JSON."""
        response = await self.request(
            "GET", f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}", token=token
        )
        assert response.code == 200, response.body
        return response.json()


async def start_server(testcase, modules, **overrides):
    """A test homeserver with ``modules`` (a ``modules:`` list) configured.

    :returns: a :class:`ServerDriver` (awaitable).
    """
    config = {"modules": modules}
    config.update(overrides)
    homeserver = await make_test_homeserver(testcase, reactor, overrides=config)
    return ServerDriver(homeserver)
