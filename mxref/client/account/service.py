"""Account logic: checking passwords, user-interactive auth, login and logout, registration, devices, passwords.

Every class takes what it uses in its constructor (a storage
:class:`~mxref.storage.interfaces.IAccountStore`, a
:class:`~mxref.auth.passwords.PasswordHasher`, an ``IReactorTime`` clock, a
random source, rate limiters) and never touches ``twisted.web``. The async
methods are coroutines; call them through ``defer.ensureDeferred`` (the
resources do) to get a Deferred.

Spec (v1.19), Client-Server API:

* "Legacy API" / "User-Interactive Authentication API": a UIA endpoint first
  answers 401 with ``{flows, params, session}``; a stage is completed by
  resubmitting the request with ``auth: {type, session, ...}``; stages of a flow
  must be completed in order; a failed stage answers the same 401 body plus
  ``errcode``/``error``; completed stages are not re-run.
* "Password-based" (``m.login.password`` with an ``m.id.user`` identifier: a
  full user ID or a localpart), "Dummy Auth" (``m.login.dummy``), "Identifier
  types".
* "Login" (``POST /login``: 403 ``M_FORBIDDEN`` for bad credentials; a given
  ``device_id`` that is unknown creates the device), "Relationship between
  access tokens and devices", "POST /logout" and "POST /logout/all" (the
  device goes with its token).
* "Account registration" (``POST /register``: username checks, giving
  ``M_INVALID_USERNAME`` / ``M_USER_IN_USE``, come before UIA; a localpart is
  generated when no username is given; ``inhibit_login``).
* "Device management", "Password management", "Account deactivation",
  "Current account information" (``/account/whoami``).
* "Rate limiting" (``429 M_LIMIT_EXCEEDED``).

Shared-secret registration is Synapse's admin API, not the spec; see
:mod:`mxref.auth.shared_secret`.
"""

import inspect

import attr
from twisted.internet import defer
from twisted.logger import Logger

from mxref.auth.shared_secret import registration_mac_matches
from mxref.auth.tokens import generate_access_token
from mxref.errors import InvalidIdentifier, MatrixError
from mxref.ratelimit import LimitExceeded
from mxref.types import UserID, generate_opaque_id, validate_new_localpart

#: The login type and UIA stage checking a password.
PASSWORD_LOGIN_TYPE = "m.login.password"

#: The UIA stage that always succeeds.
DUMMY_AUTH_TYPE = "m.login.dummy"

#: Passwords (and shared-secret usernames) longer than this are refused, as Synapse does.
MAX_PASSWORD_LENGTH = 512

#: The longest device display name accepted (Synapse's limit).
MAX_DEVICE_DISPLAY_NAME_LENGTH = 100

#: The longest client-chosen device ID accepted.
MAX_DEVICE_ID_LENGTH = 255

#: Synapse's user types, accepted by shared-secret registration.
USER_TYPES = ("support", "bot")

_UPPERCASE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOCALPART_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _now_ms(clock) -> int:
    return int(clock.seconds() * 1000)


def _bad_type(name: str, kind: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", f"Parameter {name} must be a {kind}")


def check_optional_string(body: dict, name: str, max_length: int = None):
    """The string field ``name`` of ``body``, or ``None`` when absent or ``null``.

    :raises MatrixError: 400 ``M_BAD_JSON`` when present with another type,
        400 ``M_INVALID_PARAM`` when longer than ``max_length`` characters.
    """
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_type(name, "string")
    if max_length is not None and len(value) > max_length:
        raise MatrixError(400, "M_INVALID_PARAM", f"Parameter {name} is longer than {max_length} characters")
    return value


def check_optional_boolean(body: dict, name: str, default: bool) -> bool:
    """The boolean field ``name`` of ``body``, or ``default`` when absent.

    :raises MatrixError: 400 ``M_BAD_JSON`` when present with another type (``null`` included).
    """
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, bool):
        raise _bad_type(name, "boolean")
    return value


def check_password_text(password, name: str = "password") -> str:
    """Check a new password's type and length; returns it.

    :raises MatrixError: 400 ``M_BAD_JSON`` for a non-string, 400
        ``M_INVALID_PARAM`` for one longer than :data:`MAX_PASSWORD_LENGTH` or
        containing NUL (Synapse's shared-secret MAC uses NUL as a separator).
    """
    if not isinstance(password, str):
        raise _bad_type(name, "string")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(400, "M_INVALID_PARAM", f"Password is longer than {MAX_PASSWORD_LENGTH} characters")
    if "\x00" in password:
        raise MatrixError(400, "M_INVALID_PARAM", "Password must not contain NUL")
    return password


def check_device_id(device_id) -> None:
    """Check a client-chosen device ID (non-empty string, at most 255 characters).

    :raises MatrixError: 400 ``M_BAD_JSON`` / ``M_INVALID_PARAM``.
    """
    if not isinstance(device_id, str):
        raise _bad_type("device_id", "string")
    if not device_id or len(device_id) > MAX_DEVICE_ID_LENGTH:
        raise MatrixError(400, "M_INVALID_PARAM", f"device_id must have 1 to {MAX_DEVICE_ID_LENGTH} characters")


def user_text_from_auth_dict(body: dict) -> str:
    """Who a login or ``m.login.password`` stage names: ``identifier.user`` or the deprecated ``user``.

    :param body: the ``/login`` body or the UIA ``auth`` dict.
    :returns: the user ID or localpart as given (not a Deferred).
    :raises MatrixError: 400 ``M_MISSING_PARAM`` / ``M_BAD_JSON`` for a missing
        or malformed identifier, 400 ``M_UNKNOWN`` for an unknown identifier
        type, 403 ``M_FORBIDDEN`` for third-party identifiers (mxref keeps no
        3PIDs, and the spec says an unknown 3PID gets 403).
    """
    identifier = body.get("identifier")
    if identifier is None:
        if "medium" in body or "address" in body:
            raise MatrixError(403, "M_FORBIDDEN", "No account is bound to that third-party identifier")
        user = body.get("user")
        if user is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing parameter: identifier")
        if not isinstance(user, str):
            raise _bad_type("user", "string")
        return user
    if not isinstance(identifier, dict):
        raise _bad_type("identifier", "object")
    kind = identifier.get("type")
    if not isinstance(kind, str):
        raise MatrixError(400, "M_BAD_JSON", "identifier.type must be a string")
    if kind in ("m.id.thirdparty", "m.id.phone"):
        raise MatrixError(403, "M_FORBIDDEN", "No account is bound to that third-party identifier")
    if kind != "m.id.user":
        raise MatrixError(400, "M_UNKNOWN", f"Unknown identifier type {kind!r}")
    user = identifier.get("user")
    if user is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing parameter: identifier.user")
    if not isinstance(user, str):
        raise MatrixError(400, "M_BAD_JSON", "identifier.user must be a string")
    return user


class CredentialChecker:
    """Finds local users by what they typed and checks their passwords.

    :param store: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param password_hasher: a :class:`~mxref.auth.passwords.PasswordHasher`.
    :param server_name: our server name.
    """

    def __init__(self, store, password_hasher, server_name: str):
        self._store = store
        self._hasher = password_hasher
        self.server_name = server_name

    def candidate_user_ids(self, user_text: str) -> list:
        """The local user IDs ``user_text`` may mean, most exact first (not a Deferred).

        ``user_text`` is a localpart or a full user ID; a full ID on another
        server, or text that is no user ID, gives ``[]``. Because new
        localparts are lower case, the lower-cased form is tried second.
        """
        if user_text.startswith("@"):
            try:
                user = UserID.parse(user_text)
            except InvalidIdentifier:
                return []
            if user.server_name != self.server_name:
                return []
            localpart = user.localpart
        else:
            localpart = user_text
        candidates = []
        for candidate in (localpart, localpart.lower()):
            try:
                user_id = str(UserID(candidate, self.server_name))
            except InvalidIdentifier:
                continue
            if user_id not in candidates:
                candidates.append(user_id)
        return candidates

    async def find_user(self, user_text: str):
        """The :class:`~mxref.storage.records.UserRecord` ``user_text`` names, or ``None``."""
        for user_id in self.candidate_user_ids(user_text):
            user = await self._store.get_user(user_id)
            if user is not None:
                return user
        return None

    def canonical_user_id(self, user_text: str):
        """The user ID rate limits and logs should key on for ``user_text`` (``None`` if it names no local user)."""
        candidates = self.candidate_user_ids(user_text)
        return candidates[-1] if candidates else None

    async def check_password(self, user_text: str, password: str):
        """Check a password for the user ``user_text`` names.

        A deactivated account (whose hash is wiped) or one without a password
        never matches. A stored hash weaker than the hasher's cost is replaced.

        :returns: the user ID when the password is right, else ``None``.
        """
        user = await self.find_user(user_text)
        if user is None or user.deactivated or not user.password_hash:
            return None
        if not await self._hasher.check_password(password, user.password_hash):
            return None
        if self._hasher.needs_rehash(user.password_hash):
            await self._store.set_password_hash(user.user_id, await self._hasher.hash_password(password))
        return user.user_id


class InteractiveAuthIncomplete(MatrixError):
    """401: more user-interactive authentication is needed.

    The body is ``{flows, params, session}``, plus ``completed`` once a stage
    is done, plus ``errcode``/``error`` only when a stage attempt failed (the
    spec's first 401 carries no error code).
    """

    def __init__(self, flows, params, session_id, completed=(), errcode=None, msg=None):
        super().__init__(401, errcode or "M_FORBIDDEN", msg or "Additional authentication is required")
        self.flows = [list(flow) for flow in flows]
        self.params = params
        self.session_id = session_id
        self.completed = list(completed)
        self.failed = errcode is not None

    def to_json(self) -> dict:
        """The 401 body the spec's "User-interactive API in the REST API" describes."""
        body = {
            "flows": [{"stages": flow} for flow in self.flows],
            "params": self.params,
            "session": self.session_id,
        }
        if self.completed:
            body["completed"] = self.completed
        if self.failed:
            body["errcode"] = self.errcode
            body["error"] = self.msg
        return body


@attr.s(slots=True)
class _AuthSession:
    """One UIA session: what it is for, who it proved, which stages are done."""

    session_id = attr.ib()
    operation = attr.ib()
    user_id = attr.ib()
    created = attr.ib()
    completed = attr.ib(factory=list)


class InteractiveAuthenticator:
    """Runs user-interactive authentication (UIA) sessions for the endpoints that need them.

    Supported stages: ``m.login.password`` (``identifier`` + ``password``)
    and ``m.login.dummy``. Sessions live in memory for ``session_lifetime``
    seconds. A session is bound to one operation (a string naming the
    endpoint and its target) and, once known, to one user: using it for
    another operation is refused.

    :param credentials: a :class:`CredentialChecker`.
    :param clock: an ``IReactorTime``.
    :param rng: a random source with ``choice`` (``random.SystemRandom()``).
    :param session_lifetime: seconds a session stays usable.
    :param failed_attempts_limiter: a :class:`mxref.ratelimit.RateLimiter`
        for wrong passwords per user (``rc_login.failed_attempts``), or ``None``.
    :param max_sessions: the most sessions kept at once; anyone can open one
        (``POST /register``), so beyond this the oldest are forgotten.
    """

    def __init__(self, credentials, clock, rng, session_lifetime: float = 900.0, failed_attempts_limiter=None,
                 max_sessions: int = 10000):
        self._credentials = credentials
        self._clock = clock
        self._rng = rng
        self._lifetime = session_lifetime
        self._failed_limiter = failed_attempts_limiter
        self._max_sessions = max_sessions
        self._sessions = {}  # in creation order, so the first is the oldest

    def _prune(self):
        now = self._clock.seconds()
        for session_id in [s for s, session in self._sessions.items() if now - session.created >= self._lifetime]:
            del self._sessions[session_id]

    def _new_session(self, operation, user_id):
        while len(self._sessions) >= self._max_sessions:
            del self._sessions[next(iter(self._sessions))]
        session_id = generate_opaque_id(24, self._rng)
        session = _AuthSession(session_id, operation, user_id, self._clock.seconds())
        self._sessions[session_id] = session
        return session

    async def authenticate(self, auth, flows, operation: str, user_id: str = None, params: dict = None):
        """Advance UIA for one request; return when a whole flow is complete.

        :param auth: the request's ``auth`` value (``None`` when absent).
        :param flows: the flows offered, a list of lists of stage types.
        :param operation: names what is being authorised (e.g.
            ``"delete_devices:ABC"``); a session cannot be reused for another.
        :param user_id: the user the request is authenticated as (by access
            token), or ``None``; a password stage must prove this user.
        :param params: the ``params`` of the 401 body (``{}`` by default).
        :returns: the user ID the session proved (``user_id``, or the one the
            password stage named), or ``None`` for flows without a password stage.
        :raises InteractiveAuthIncomplete: 401 until a flow is complete.
        :raises MatrixError: 400 for a malformed ``auth`` or unknown session,
            403 when the session belongs to another operation or user, 429
            after too many wrong passwords.
        """
        self._prune()
        params = {} if params is None else params
        if auth is None:
            session = self._new_session(operation, user_id)
            raise InteractiveAuthIncomplete(flows, params, session.session_id)
        if not isinstance(auth, dict):
            raise _bad_type("auth", "object")
        session_id = auth.get("session")
        if session_id is None:
            session = self._new_session(operation, user_id)
        elif not isinstance(session_id, str):
            raise MatrixError(400, "M_BAD_JSON", "auth.session must be a string")
        else:
            session = self._sessions.get(session_id)
            if session is None:
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown or expired authentication session")
            if session.operation != operation or (
                user_id is not None and session.user_id is not None and session.user_id != user_id
            ):
                raise MatrixError(403, "M_FORBIDDEN", "This authentication session was started for another request")
            if session.user_id is None:
                session.user_id = user_id

        def incomplete(errcode=None, msg=None):
            return InteractiveAuthIncomplete(flows, params, session.session_id, session.completed, errcode, msg)

        stage = auth.get("type")
        if stage is not None and not isinstance(stage, str):
            raise MatrixError(400, "M_BAD_JSON", "auth.type must be a string")
        if stage is not None and stage not in session.completed:
            position = len(session.completed)
            if not any(list(flow[:position]) == session.completed and len(flow) > position and flow[position] == stage
                       for flow in flows):
                raise incomplete("M_UNRECOGNIZED", f"Authentication stage {stage!r} is not next in any offered flow")
            await self._run_stage(stage, auth, session, incomplete)
            session.completed.append(stage)
        if any(list(flow) == session.completed for flow in flows):
            return session.user_id
        raise incomplete()

    async def _run_stage(self, stage, auth, session, incomplete):
        """Check one stage's credentials; raises ``incomplete(...)`` when they are wrong."""
        if stage == DUMMY_AUTH_TYPE:
            return
        if stage == PASSWORD_LOGIN_TYPE:
            user_text = user_text_from_auth_dict(auth)
            password = auth.get("password")
            if not isinstance(password, str):
                raise MatrixError(400, "M_BAD_JSON" if "password" in auth else "M_MISSING_PARAM",
                                  "auth.password must be a string")
            limit_key = self._credentials.canonical_user_id(user_text)
            if self._failed_limiter is not None and limit_key is not None:
                allowed, retry_after_ms = self._failed_limiter.can_do(limit_key, update=False)
                if not allowed:
                    raise LimitExceeded(retry_after_ms)
            proven = await self._credentials.check_password(user_text, password)
            if proven is None or (session.user_id is not None and proven != session.user_id):
                if self._failed_limiter is not None and limit_key is not None:
                    self._failed_limiter.can_do(limit_key)
                raise incomplete("M_FORBIDDEN", "Invalid username or password")
            session.user_id = proven
            return
        raise incomplete("M_UNRECOGNIZED", f"Unsupported authentication stage {stage!r}")


class LoginService:
    """Logging in and out, and what an access token stands for.

    Logging in again to a known ``device_id`` keeps the device (and its name)
    and adds a token. The spec's "Relationship between access tokens and
    devices" says the device's earlier tokens are then invalidated; that needs
    a per-device token deletion that :class:`~mxref.storage.interfaces.IAccountStore`
    does not offer yet (deleting and re-creating the device would also drop
    whatever else hangs off it), so earlier tokens stay valid until logout.

    :param store: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param credentials: a :class:`CredentialChecker`.
    :param clock: an ``IReactorTime``.
    :param rng: a random source with ``choice`` (``random.SystemRandom()``).
    :param address_limiter: a :class:`mxref.ratelimit.RateLimiter` for login
        attempts per client IP address (``rc_login.address``), or ``None``.
    :param account_limiter: the same per account (``rc_login.account``), or ``None``.
    :param failed_attempts_limiter: the same for wrong passwords per account
        (``rc_login.failed_attempts``), or ``None``.
    :param extra_login_types: login types provided by modules: a mapping from
        the type (e.g. ``"org.example.otp"``) to ``check(body)``, which returns
        (or gives a Deferred/coroutine of) the full user ID of a local user the
        submitted ``/login`` body proves, or ``None`` to refuse with 403. The
        mapping is read at each request (modules fill theirs in after start-up).
    :param well_known: the discovery object to return in ``well_known`` after
        login (``{"m.homeserver": {"base_url": ...}}``), or ``None`` to omit it.
    :param module_hooks: a :class:`~mxref.modules.hooks.ModuleHooks` whose login checks
        see each user whose credentials were accepted, or ``None``.
    """

    def __init__(self, store, credentials, clock, rng, address_limiter=None, account_limiter=None,
                 failed_attempts_limiter=None, extra_login_types=None, well_known=None, module_hooks=None):
        self._store = store
        self._credentials = credentials
        self._clock = clock
        self._rng = rng
        self._address_limiter = address_limiter
        self._account_limiter = account_limiter
        self._failed_limiter = failed_attempts_limiter
        self._extra_login_types = extra_login_types if extra_login_types is not None else {}
        self._well_known = well_known
        self._module_hooks = module_hooks

    def login_flows(self) -> dict:
        """The ``GET /login`` body: ``m.login.password`` and the module-provided types (not a Deferred)."""
        types = [PASSWORD_LOGIN_TYPE] + sorted(self._extra_login_types)
        return {"flows": [{"type": login_type} for login_type in types]}

    async def start_session(self, user_id: str, device_id: str = None, initial_display_name: str = None,
                            client_ip: str = None):
        """Give a user a device (created unless it exists) and a new access token for it.

        :param device_id: a client-chosen device ID, or ``None`` to generate one.
        :param initial_display_name: the name for a newly created device.
        :param client_ip: the address the client logged in from; recorded with
            the time as the device's ``last_seen_ip``/``last_seen_ts``.
        :returns: ``(device_id, access_token)``.
        """
        now = _now_ms(self._clock)
        if device_id is None:
            while True:
                device_id = "".join(self._rng.choice(_UPPERCASE) for _ in range(10))
                if await self._store.create_device(user_id, device_id, initial_display_name, now):
                    break
        else:
            created = await self._store.create_device(user_id, device_id, initial_display_name, now)
            if not created:
                # Client-Server API, "Login": logging in to an existing device ID invalidates
                # the access tokens previously associated with that device.
                await self._store.delete_access_tokens_for_device(user_id, device_id)
        token = generate_access_token(user_id, self._rng)
        await self._store.add_access_token(user_id, device_id, token, now)
        if client_ip:
            await self._store.record_device_seen(user_id, device_id, now, client_ip)
        return device_id, token

    async def login(self, body: dict, client_ip: str) -> dict:
        """Serve ``POST /login``.

        :param body: the request body (a dict with at least ``type``).
        :param client_ip: the client's address, for the per-address limit.
        :returns: ``{user_id, access_token, device_id[, well_known]}``.
        :raises MatrixError: 400 ``M_UNKNOWN`` for an unsupported login type,
            400 for malformed fields, 403 ``M_FORBIDDEN`` for wrong
            credentials, 429 ``M_LIMIT_EXCEEDED``.
        """
        login_type = body.get("type")
        if login_type is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing parameter: type")
        if not isinstance(login_type, str):
            raise _bad_type("type", "string")
        device_id = body.get("device_id")
        if device_id is not None:
            check_device_id(device_id)
        display_name = check_optional_string(body, "initial_device_display_name", MAX_DEVICE_DISPLAY_NAME_LENGTH)
        if self._address_limiter is not None:
            self._address_limiter.check(client_ip)
        if login_type == PASSWORD_LOGIN_TYPE:
            user_id = await self._login_with_password(body)
        elif login_type in self._extra_login_types:
            user_id = await self._login_with_module(login_type, body)
        else:
            raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {login_type!r}")
        if self._module_hooks is not None:
            await self._module_hooks.check_login_allowed(user_id, login_type, client_ip)
        device_id, token = await self.start_session(user_id, device_id, display_name, client_ip)
        response = {"user_id": user_id, "access_token": token, "device_id": device_id}
        if self._well_known is not None:
            response["well_known"] = self._well_known
        return response

    async def _login_with_password(self, body):
        user_text = user_text_from_auth_dict(body)
        password = body.get("password")
        if password is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing parameter: password")
        if not isinstance(password, str):
            raise _bad_type("password", "string")
        limit_key = self._credentials.canonical_user_id(user_text)
        if limit_key is not None:
            if self._account_limiter is not None:
                self._account_limiter.check(limit_key)
            if self._failed_limiter is not None:
                allowed, retry_after_ms = self._failed_limiter.can_do(limit_key, update=False)
                if not allowed:
                    raise LimitExceeded(retry_after_ms)
        user_id = await self._credentials.check_password(user_text, password)
        if user_id is None:
            if self._failed_limiter is not None and limit_key is not None:
                self._failed_limiter.can_do(limit_key)
            raise MatrixError(403, "M_FORBIDDEN", "Invalid username or password")
        return user_id

    async def _login_with_module(self, login_type, body):
        result = self._extra_login_types[login_type](body)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid login credentials")
        user = await self._store.get_user(result)
        if user is None or user.deactivated:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid login credentials")
        return result

    async def logout(self, requester) -> None:
        """Serve ``POST /logout``: the token and its device (with the device's other tokens) go."""
        if requester.device_id is not None:
            await self._store.delete_device(requester.user_id, requester.device_id)
        await self._store.delete_access_token(requester.access_token)

    async def logout_all(self, requester) -> None:
        """Serve ``POST /logout/all``: every token and every device of the user go, this one included."""
        devices = await self._store.get_devices(requester.user_id)
        for device_id in devices:
            await self._store.delete_device(requester.user_id, device_id)
        await self._store.delete_all_access_tokens(requester.user_id)

    async def whoami(self, requester) -> dict:
        """Serve ``GET /account/whoami``: ``{user_id, device_id?, is_guest}``."""
        user = await self._store.get_user(requester.user_id)
        response = {"user_id": requester.user_id, "is_guest": bool(user is not None and user.is_guest)}
        if requester.device_id is not None:
            response["device_id"] = requester.device_id
        return response

    async def get_token_owner(self, token: str):
        """The lookup :class:`mxref.auth.tokens.RequestAuthenticator` needs.

        :returns: ``(user_id, device_id)`` for a live token, else ``None``.
        """
        owner = await self._store.get_user_by_access_token(token)
        if owner is None:
            return None
        return owner.user_id, owner.device_id


class AccountRegistrar:
    """Creating accounts: ``POST /register``, ``GET /register/available`` and shared-secret registration.

    Open registration (``kind=user``) needs ``enable_registration`` together
    with ``enable_registration_without_verification``; it then offers one UIA
    flow, ``m.login.dummy``. Registration tokens (``m.login.registration_token``)
    are not implemented, so a server that requires them refuses registration.
    Guest accounts are refused (``M_GUEST_ACCESS_FORBIDDEN``): nothing else in
    mxref yet restricts what a guest may do.

    New localparts are the requested username lower-cased (the spec lets the
    server map a username "in a logical manner"), else generated.

    :param store: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param password_hasher: a :class:`~mxref.auth.passwords.PasswordHasher`.
    :param login: the :class:`LoginService` that hands out the first device and token.
    :param interactive_auth: an :class:`InteractiveAuthenticator`.
    :param clock: an ``IReactorTime``.
    :param rng: a random source with ``choice`` (``random.SystemRandom()``).
    :param server_name: our server name.
    :param registration_config: a :class:`~mxref.config.registration.RegistrationConfig`.
    :param registration_limiter: a :class:`mxref.ratelimit.RateLimiter` for
        accounts created per client address (``rc_registration``), or ``None``.
    :param nonce_lifetime: seconds a shared-secret registration nonce stays valid.
    :param max_nonces: the most unused nonces kept (anyone may ask for one);
        beyond this the oldest are forgotten.
    :param module_hooks: a :class:`~mxref.modules.hooks.ModuleHooks` whose registration
        checks see ``POST /register`` once its interactive authentication is done, or ``None``.
    """

    _log = Logger()

    def __init__(self, store, password_hasher, login, interactive_auth, clock, rng, server_name: str,
                 registration_config, registration_limiter=None, nonce_lifetime: float = 60.0,
                 max_nonces: int = 1000, module_hooks=None):
        self._module_hooks = module_hooks
        self._store = store
        self._hasher = password_hasher
        self._login = login
        self._uia = interactive_auth
        self._clock = clock
        self._rng = rng
        self.server_name = server_name
        self._config = registration_config
        self._limiter = registration_limiter
        self._nonce_lifetime = nonce_lifetime
        self._max_nonces = max_nonces
        self._nonces = {}  # nonce -> time issued, oldest first

    @property
    def open_registration(self) -> bool:
        """Whether anyone may register with ``POST /register`` (no token needed)."""
        return (
            self._config.enable_registration
            and self._config.enable_registration_without_verification
            and not self._config.registration_requires_token
        )

    def _localpart_for(self, username: str) -> str:
        localpart = username.lower()
        validate_new_localpart(localpart, self.server_name)
        return localpart

    async def check_username_available(self, username: str) -> bool:
        """Serve ``GET /register/available``.

        When open registration is off the answer is 403, as in Synapse: the
        endpoint only helps ``POST /register``, and otherwise it would let
        anyone probe which accounts exist.

        :returns: ``True`` when ``username`` may be registered.
        :raises MatrixError: 400 ``M_INVALID_USERNAME`` or ``M_USER_IN_USE``;
            403 ``M_FORBIDDEN`` when registration is closed.
        """
        if not self.open_registration:
            raise MatrixError(403, "M_FORBIDDEN", "Registration is disabled")
        localpart = self._localpart_for(username)
        if await self._store.get_user(str(UserID(localpart, self.server_name))) is not None:
            raise MatrixError(400, "M_USER_IN_USE", "Desired user ID is already taken")
        return True

    async def register(self, kind: str, body: dict, client_ip: str) -> dict:
        """Serve ``POST /register``.

        :param kind: ``"user"`` or ``"guest"`` (the ``kind`` query parameter).
        :param body: the request body.
        :param client_ip: the client's address, for ``rc_registration``.
        :returns: ``{user_id, access_token, device_id}``, or ``{user_id}`` with ``inhibit_login``.
        :raises InteractiveAuthIncomplete: 401 until the dummy stage is done.
        :raises MatrixError: 403 ``M_FORBIDDEN`` when registration is closed,
            403 ``M_GUEST_ACCESS_FORBIDDEN`` for guests, 400
            ``M_INVALID_USERNAME`` / ``M_USER_IN_USE`` / malformed fields, 429.
        """
        if kind == "guest":
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
        if not self.open_registration:
            raise MatrixError(403, "M_FORBIDDEN", "Registration is disabled")
        username = check_optional_string(body, "username")
        password = body.get("password")
        if password is not None:
            check_password_text(password)
        device_id = body.get("device_id")
        if device_id is not None:
            check_device_id(device_id)
        display_name = check_optional_string(body, "initial_device_display_name", MAX_DEVICE_DISPLAY_NAME_LENGTH)
        inhibit_login = check_optional_boolean(body, "inhibit_login", False)
        localpart = None
        if username is not None:
            await self.check_username_available(username)
            localpart = self._localpart_for(username)
        await self._uia.authenticate(body.get("auth"), [[DUMMY_AUTH_TYPE]], "register")
        if self._module_hooks is not None:
            await self._module_hooks.check_registration(localpart, client_ip)
        if self._limiter is not None:
            self._limiter.check(client_ip)
        if localpart is None:
            user_id = await self._register_generated(password)
        else:
            user_id = await self.register_user(localpart, password)
        if inhibit_login:
            return {"user_id": user_id}
        device_id, token = await self._login.start_session(user_id, device_id, display_name, client_ip)
        return {"user_id": user_id, "access_token": token, "device_id": device_id}

    async def _register_generated(self, password):
        while True:
            localpart = "u" + "".join(self._rng.choice(_LOCALPART_ALPHABET) for _ in range(11))
            try:
                return await self.register_user(localpart, password)
            except MatrixError as error:
                if error.errcode != "M_USER_IN_USE":
                    raise

    async def register_user(self, localpart: str, password=None, admin: bool = False, displayname: str = None,
                            user_type: str = None) -> str:
        """Create a local account (for the console, shared-secret registration and modules).

        Registration policy is not applied here: this always works.

        :param localpart: the new user's localpart (must follow the user ID grammar).
        :param password: the password, or ``None`` for an account without one.
        :param admin: make the user a server admin.
        :param displayname: the initial display name; the localpart when ``None``.
        :param user_type: Synapse's user type (``"bot"``, ``"support"``) or ``None``.
        :returns: the new user ID (awaitable; wrap in ``ensureDeferred`` for a Deferred).
        :raises MatrixError: 400 ``M_INVALID_USERNAME`` or ``M_USER_IN_USE``.
        """
        validate_new_localpart(localpart, self.server_name)
        user_id = str(UserID(localpart, self.server_name))
        password_hash = None if password is None else await self._hasher.hash_password(password)
        created = await self._store.create_user(
            user_id, password_hash, is_admin=admin, created_ts=_now_ms(self._clock), user_type=user_type
        )
        if not created:
            raise MatrixError(400, "M_USER_IN_USE", "Desired user ID is already taken")
        await self._store.set_displayname(user_id, localpart if displayname is None else displayname)
        self._log.info("registered {user_id} (admin={admin})", user_id=user_id, admin=admin)
        return user_id

    def _prune_nonces(self):
        now = self._clock.seconds()
        for nonce in [n for n, issued in self._nonces.items() if now - issued >= self._nonce_lifetime]:
            del self._nonces[nonce]

    def issue_registration_nonce(self) -> str:
        """Serve ``GET /_synapse/admin/v1/register``: a fresh single-use nonce (not a Deferred).

        :raises MatrixError: 403 when no shared secret is configured.
        """
        self._require_shared_secret()
        self._prune_nonces()
        while len(self._nonces) >= self._max_nonces:
            del self._nonces[next(iter(self._nonces))]
        nonce = generate_opaque_id(32, self._rng)
        self._nonces[nonce] = self._clock.seconds()
        return nonce

    def _require_shared_secret(self):
        if not self._config.registration_shared_secret:
            raise MatrixError(403, "M_FORBIDDEN", "Shared secret registration is not enabled")
        return self._config.registration_shared_secret

    async def register_with_shared_secret(self, body: dict) -> dict:
        """Serve ``POST /_synapse/admin/v1/register`` (works even when open registration is off).

        :param body: ``{nonce, username, password, admin?, mac, displayname?, user_type?}``.
        :returns: ``{user_id, access_token, device_id, home_server}``.
        :raises MatrixError: 403 without a configured secret or for a wrong
            MAC; 400 ``M_UNKNOWN`` for an unknown, used or expired nonce; 400
            for malformed fields, ``M_INVALID_USERNAME``, ``M_USER_IN_USE``.
        """
        secret = self._require_shared_secret()
        self._prune_nonces()
        nonce = body.get("nonce")
        if nonce is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing parameter: nonce")
        if not isinstance(nonce, str):
            raise _bad_type("nonce", "string")
        if nonce not in self._nonces:
            raise MatrixError(400, "M_UNKNOWN", "Unrecognised nonce")
        del self._nonces[nonce]  # single use, whatever happens next
        for name in ("username", "password", "mac"):
            if body.get(name) is None:
                raise MatrixError(400, "M_MISSING_PARAM", f"Missing parameter: {name}")
        username = body["username"]
        if not isinstance(username, str) or len(username) > MAX_PASSWORD_LENGTH or "\x00" in username:
            raise MatrixError(400, "M_INVALID_USERNAME", "Invalid username")
        password = check_password_text(body["password"])
        mac = body["mac"]
        if not isinstance(mac, str):
            raise _bad_type("mac", "string")
        admin = check_optional_boolean(body, "admin", False)
        displayname = check_optional_string(body, "displayname")
        user_type = check_optional_string(body, "user_type")
        if user_type is not None and user_type not in USER_TYPES:
            raise MatrixError(400, "M_INVALID_PARAM", f"user_type must be one of {', '.join(USER_TYPES)}")
        if not registration_mac_matches(secret, mac, nonce, username, password, admin, user_type):
            raise MatrixError(403, "M_FORBIDDEN", "HMAC incorrect")
        user_id = await self.register_user(self._localpart_for(username), password, admin, displayname, user_type)
        device_id, token = await self._login.start_session(user_id)
        return {"user_id": user_id, "access_token": token, "device_id": device_id, "home_server": self.server_name}


def _device_json(device) -> dict:
    """A device as the spec's ``Device`` object: absent fields left out."""
    result = {"device_id": device.device_id}
    if device.display_name is not None:
        result["display_name"] = device.display_name
    if device.last_seen_ip is not None:
        result["last_seen_ip"] = device.last_seen_ip
    if device.last_seen_ts is not None:
        result["last_seen_ts"] = device.last_seen_ts
    return result


class DeviceService:
    """Listing, renaming and deleting a user's devices; deletion needs the user's password (UIA).

    :param store: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param interactive_auth: an :class:`InteractiveAuthenticator`.
    """

    def __init__(self, store, interactive_auth):
        self._store = store
        self._uia = interactive_auth

    async def list_devices(self, requester) -> list:
        """Serve ``GET /devices``: the user's devices, ordered by device ID."""
        devices = await self._store.get_devices(requester.user_id)
        return [_device_json(devices[device_id]) for device_id in sorted(devices)]

    async def get_device(self, requester, device_id: str) -> dict:
        """Serve ``GET /devices/{deviceId}``.

        :raises MatrixError: 404 ``M_NOT_FOUND`` when the user has no such device.
        """
        device = await self._store.get_device(requester.user_id, device_id)
        if device is None:
            raise MatrixError(404, "M_NOT_FOUND", "Device not found")
        return _device_json(device)

    async def update_device(self, requester, device_id: str, body: dict) -> None:
        """Serve ``PUT /devices/{deviceId}``: set ``display_name`` if given.

        Only application services may create devices this way, and mxref has
        none yet, so an unknown device is 404.

        :raises MatrixError: 404 ``M_NOT_FOUND``; 400 for a malformed name.
        """
        display_name = check_optional_string(body, "display_name", MAX_DEVICE_DISPLAY_NAME_LENGTH)
        device = await self._store.get_device(requester.user_id, device_id)
        if device is None:
            raise MatrixError(404, "M_NOT_FOUND", "Device not found")
        if "display_name" in body and display_name is not None:
            await self._store.set_device_display_name(requester.user_id, device_id, display_name)

    async def delete_devices(self, requester, device_ids, auth) -> None:
        """Serve ``DELETE /devices/{deviceId}`` and ``POST /delete_devices`` after a password stage.

        Devices already gone are not an error.

        :param device_ids: a list of device ID strings.
        :param auth: the request's ``auth`` (``None`` on the first call).
        :raises InteractiveAuthIncomplete: 401 until the user's password is given.
        """
        operation = "delete_devices:" + "\x00".join(sorted(set(device_ids)))
        await self._uia.authenticate(auth, [[PASSWORD_LOGIN_TYPE]], operation, user_id=requester.user_id)
        for device_id in device_ids:
            await self._store.delete_device(requester.user_id, device_id)


class AccountSecurity:
    """Changing a password and deactivating an account, both after a password stage (UIA).

    Both endpoints work with or without an access token: without one, the
    password stage says whose account it is.

    :param store: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param password_hasher: a :class:`~mxref.auth.passwords.PasswordHasher`.
    :param interactive_auth: an :class:`InteractiveAuthenticator`.
    :param deactivation_listeners: callables ``listener(user_id, erase)``
        (returning ``None``, a Deferred or a coroutine) run after an account is
        deactivated, e.g. to make the user leave their rooms.
    """

    def __init__(self, store, password_hasher, interactive_auth, deactivation_listeners=()):
        self._store = store
        self._hasher = password_hasher
        self._uia = interactive_auth
        self._deactivation_listeners = list(deactivation_listeners)

    async def change_password(self, requester, body: dict) -> None:
        """Serve ``POST /account/password``.

        With ``logout_devices`` (default true) every other device and token of
        the user is removed; the requesting token is kept.

        :param requester: the :class:`~mxref.auth.tokens.Requester`, or ``None``.
        :raises InteractiveAuthIncomplete: 401 until the current password is given.
        :raises MatrixError: 400 for a missing or malformed ``new_password``.
        """
        if body.get("new_password") is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing parameter: new_password")
        new_password = check_password_text(body["new_password"], "new_password")
        logout_devices = check_optional_boolean(body, "logout_devices", True)
        requester_id = None if requester is None else requester.user_id
        user_id = await self._uia.authenticate(
            body.get("auth"), [[PASSWORD_LOGIN_TYPE]], "change_password", user_id=requester_id
        )
        await self._store.set_password_hash(user_id, await self._hasher.hash_password(new_password))
        if logout_devices:
            keep_device = None if requester is None else requester.device_id
            devices = await self._store.get_devices(user_id)
            for device_id in devices:
                if device_id != keep_device:
                    await self._store.delete_device(user_id, device_id)
            await self._store.delete_all_access_tokens(
                user_id, except_token=None if requester is None else requester.access_token
            )

    async def deactivate(self, requester, body: dict) -> dict:
        """Serve ``POST /account/deactivate``: wipe the password, remove all devices and tokens.

        :returns: ``{"id_server_unbind_result": "success"}`` (mxref binds no 3PIDs).
        :raises InteractiveAuthIncomplete: 401 until the password is given.
        """
        erase = check_optional_boolean(body, "erase", False)
        check_optional_string(body, "id_server")
        requester_id = None if requester is None else requester.user_id
        user_id = await self._uia.authenticate(
            body.get("auth"), [[PASSWORD_LOGIN_TYPE]], "deactivate", user_id=requester_id
        )
        await self._store.deactivate(user_id)
        for listener in self._deactivation_listeners:
            result = listener(user_id, erase)
            if isinstance(result, defer.Deferred) or inspect.isawaitable(result):
                await result
        return {"id_server_unbind_result": "success"}
