"""A reusable fixture for Client-Server API tests: real resources over a real SQLite store, driven over HTTP.

:class:`ClientApiHarness` builds an in-memory SQLite database (``:memory:``),
the account services (login, registration, devices, UIA, shared secret), a
:class:`~mxref.auth.tokens.RequestAuthenticator`, and one
:class:`~mxref.http.resource.JsonResource` served by a
:class:`~mxref.http.site.MatrixSite`. Requests travel as raw HTTP/1.1 bytes
through Twisted's real HTTP parser (:mod:`tests.http.memory_http`).

Time: services run on ``harness.clock`` (a ``MemoryReactorClock`` starting at
1 700 000 000 s), which tests move with ``harness.clock.advance(seconds)``.
The database runs in the global reactor's thread pool, so tests using the
harness return Deferreds (write them as ``async def`` test methods wrapped by
:func:`deferred_test`, or use ``inlineCallbacks``) and trial waits for them.

Typical use::

    class FooTests(unittest.TestCase):
        @deferred_test
        async def setUp(self):
            self.harness = await ClientApiHarness.create(self)
            self.harness.add_routes(MyFeatureResource(MyService(self.harness.store.rooms), self.harness.authenticator))
            self.alice = await self.harness.register_user("alice")

        @deferred_test
        async def test_something(self):
            response = await self.harness.request("GET", "/_matrix/client/v3/foo", token=self.alice.access_token)
            self.assertEqual(response.code, 200)
"""

import functools
import random

import attr
from twisted.internet import defer, reactor, task
from twisted.internet.testing import MemoryReactorClock

from mxref.auth.passwords import PasswordHasher
from mxref.auth.tokens import RequestAuthenticator
from mxref.client.account.resource import (
    AccountSecurityResource,
    DeviceResource,
    LoginResource,
    RegistrationResource,
    SharedSecretRegistrationResource,
)
from mxref.client.account.service import (
    AccountRegistrar,
    AccountSecurity,
    CredentialChecker,
    DeviceService,
    InteractiveAuthenticator,
    LoginService,
)
from mxref.client.meta.resource import MetaResource
from mxref.config.registration import RegistrationConfig
from mxref.http.resource import JsonResource
from mxref.http.site import MatrixSite
from mxref.ratelimit import RateLimiter
from mxref.storage.database import make_database
from mxref.storage.sql.store import make_store
from tests.http.memory_http import MemoryConnection

#: How long :meth:`ClientApiHarness.request` waits for a response before failing the test.
RESPONSE_TIMEOUT_SECONDS = 10.0


def deferred_test(function):
    """Let trial run an ``async def`` test method (or ``setUp``): it gets a Deferred."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return defer.ensureDeferred(function(*args, **kwargs))

    return wrapper


def bearer(token: str) -> dict:
    """The ``Authorization`` header for an access token."""
    return {"Authorization": f"Bearer {token}"}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RegisteredUser:
    """A user made by :meth:`ClientApiHarness.register_user`, logged in on one device."""

    user_id: str
    password: str
    access_token: str
    device_id: str


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LoginRateLimits:
    """The limiters the harness can put on login and registration (``None`` for none).

    Each value is ``(per_second, burst_count)``.
    """

    address: tuple = None
    account: tuple = None
    failed_attempts: tuple = None
    registration: tuple = None


class ClientApiHarness:
    """The account part of a homeserver, over a fresh SQLite store, with an HTTP client.

    Build it with :meth:`create`. Attributes other tests use:

    :ivar store: the :class:`~mxref.storage.sql.store.SqlStore` (``store.accounts``, ``store.rooms``...).
    :ivar clock: the ``MemoryReactorClock`` services and the Site run on.
    :ivar server_name: our server name.
    :ivar authenticator: the :class:`~mxref.auth.tokens.RequestAuthenticator` for new resources.
    :ivar json_resource: the :class:`~mxref.http.resource.JsonResource` all routes live on.
    :ivar site: the :class:`~mxref.http.site.MatrixSite`.
    :ivar login, registrar, devices, security, interactive_auth, credentials: the account services.
    :ivar hasher: the (synchronous, low-cost) :class:`~mxref.auth.passwords.PasswordHasher`.
    :ivar rng: the seeded ``random.Random`` used for IDs and tokens.
    """

    @classmethod
    async def create(cls, testcase, server_name: str = "test.example", registration: RegistrationConfig = None,
                     rate_limits: LoginRateLimits = None, public_baseurl: str = None,
                     extra_login_types=None, well_known=None, seed: int = 0) -> "ClientApiHarness":
        """Open a new in-memory database and wire every account resource onto one JsonResource.

        :param testcase: the running ``TestCase`` (the database is closed at its cleanup).
        :param registration: the registration policy; closed registration by default.
        :param rate_limits: limiters for login/registration; none by default.
        :param public_baseurl: for ``/.well-known/matrix/client`` (404 when ``None``).
        :param extra_login_types: module login types for :class:`LoginService`.
        :param well_known: the ``well_known`` object returned by ``/login``.
        :param seed: seeds the ``random.Random`` behind IDs and tokens.
        :returns: the harness (awaitable).
        """
        database = await make_database({"name": "sqlite3", "args": {"database": ":memory:"}}, reactor)
        testcase.addCleanup(database.close)
        return cls(make_store(database), server_name, registration or RegistrationConfig(),
                   rate_limits or LoginRateLimits(), public_baseurl, extra_login_types, well_known, seed)

    def __init__(self, store, server_name, registration, rate_limits, public_baseurl, extra_login_types,
                 well_known, seed):
        self.store = store
        self.server_name = server_name
        self.clock = MemoryReactorClock()
        self.clock.advance(1_700_000_000)
        self.rng = random.Random(seed)
        self.hasher = PasswordHasher.synchronous(rounds=4)

        def limiter(setting):
            return None if setting is None else RateLimiter(self.clock, *setting)

        self.credentials = CredentialChecker(store.accounts, self.hasher, server_name)
        failed_limiter = limiter(rate_limits.failed_attempts)
        self.interactive_auth = InteractiveAuthenticator(
            self.credentials, self.clock, self.rng, failed_attempts_limiter=failed_limiter
        )
        self.login = LoginService(
            store.accounts, self.credentials, self.clock, self.rng,
            address_limiter=limiter(rate_limits.address), account_limiter=limiter(rate_limits.account),
            failed_attempts_limiter=failed_limiter, extra_login_types=extra_login_types, well_known=well_known,
        )
        self.registrar = AccountRegistrar(
            store.accounts, self.hasher, self.login, self.interactive_auth, self.clock, self.rng, server_name,
            registration, registration_limiter=limiter(rate_limits.registration),
        )
        self.devices = DeviceService(store.accounts, self.interactive_auth)
        self.deactivated = []
        self.security = AccountSecurity(
            store.accounts, self.hasher, self.interactive_auth,
            deactivation_listeners=[lambda user_id, erase: self.deactivated.append((user_id, erase))],
        )
        self.authenticator = RequestAuthenticator(self.login.get_token_owner, self.clock)
        self.json_resource = JsonResource()
        self.add_routes(
            LoginResource(self.login, self.authenticator),
            RegistrationResource(self.registrar),
            DeviceResource(self.devices, self.authenticator),
            AccountSecurityResource(self.security, self.authenticator),
            SharedSecretRegistrationResource(self.registrar),
            MetaResource(self.authenticator, public_baseurl=public_baseurl),
        )
        self.site = MatrixSite(self.json_resource, self.clock)

    def add_routes(self, *resources) -> None:
        """Register more endpoint classes (anything with ``register_routes(json_resource)``)."""
        for resource in resources:
            resource.register_routes(self.json_resource)

    def user_id(self, localpart: str) -> str:
        """The full user ID for a localpart on this server."""
        return f"@{localpart}:{self.server_name}"

    async def register_user(self, localpart: str, password: str = "correct horse", admin: bool = False,
                            device_id: str = None) -> RegisteredUser:
        """Create an account through the service (whatever the registration policy) and log it in.

        :returns: a :class:`RegisteredUser` (awaitable).
        """
        user_id = await self.registrar.register_user(localpart, password, admin=admin)
        device_id, token = await self.login.start_session(user_id, device_id)
        return RegisteredUser(user_id, password, token, device_id)

    async def request(self, method: str, path: str, body=None, token: str = None, headers: dict = None,
                      peer_host: str = "127.0.0.7"):
        """Send one HTTP request on a new connection and wait for the whole response.

        :param body: bytes as they are, any other value as JSON, ``None`` for no body.
        :param token: an access token to send as ``Authorization: Bearer``.
        :param headers: more request headers.
        :param peer_host: the client address the server sees.
        :returns: a :class:`tests.http.memory_http.RawResponse` (``.code``,
            ``.json()``, ``.header(name)``), awaitable.
        :raises AssertionError: when no complete response arrives in time.
        """
        all_headers = dict(headers or {})
        if token is not None:
            all_headers.update(bearer(token))
        connection = MemoryConnection(self.site, peer_host)
        connection.request(method, path, body, all_headers)
        waited = 0.0
        while True:
            try:
                return connection.response()
            except ValueError:
                if waited >= RESPONSE_TIMEOUT_SECONDS:
                    raise AssertionError(f"no complete response to {method} {path} within {waited:.0f} s")
            await task.deferLater(reactor, 0.002, lambda: None)
            waited += 0.002
