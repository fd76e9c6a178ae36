"""A small blocking Client-Server API client for tests and benchmarks, on the standard library.

It speaks just enough of the Client-Server API
(https://spec.matrix.org/v1.19/client-server-api/) to drive a homeserver from
a benchmark or an end-to-end test: account registration with the
``m.login.dummy`` stage of User-Interactive Authentication ("Account
registration", ``POST /_matrix/client/v3/register``), password login
(``POST /_matrix/client/v3/login``), ``POST /createRoom``, invites and joins,
``PUT /rooms/{roomId}/send/{eventType}/{txnId}``, ``GET /sync`` with
``since``/``timeout`` long-polling, and ``GET /rooms/{roomId}/messages``.

Each thread gets its own persistent HTTP/1.1 connection (``http.client``), so
one :class:`CSClient` may be shared by several threads, and benchmark
figures include connection reuse the way real clients do. Everything here
blocks; call it from a thread (``twisted.internet.threads.deferToThread``)
when a reactor must keep running.
"""

import http.client
import itertools
import json
import threading
import time
import uuid
from urllib.parse import quote, urlencode, urlsplit

#: Errors that mean a kept-alive connection was closed by the server before it read our request.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    ConnectionResetError,
    BrokenPipeError,
)


class MatrixRequestError(Exception):
    """The homeserver answered with a non-2xx status.

    :ivar status: the HTTP status code.
    :ivar errcode: the Matrix ``errcode`` (e.g. ``"M_FORBIDDEN"``), or ``None``.
    :ivar body: the decoded JSON body (or ``{"raw": text}`` when it was not JSON).
    """

    def __init__(self, method: str, path: str, status: int, body: dict):
        self.status = status
        self.body = body
        self.errcode = body.get("errcode") if isinstance(body, dict) else None
        error = body.get("error") if isinstance(body, dict) else None
        super().__init__(f"{method} {path} -> {status} {self.errcode}: {error or body}")


def request_json(
    base_url: str,
    method: str,
    path: str,
    body=None,
    access_token: str | None = None,
    timeout: float = 60.0,
    connection: http.client.HTTPConnection | None = None,
):
    """Make one JSON request; blocking.

    :param base_url: e.g. ``"http://127.0.0.1:8008"`` (``https`` is accepted without
        certificate checks, for loopback test servers).
    :param method: the HTTP method.
    :param path: the path with its query string, starting with ``/``.
    :param body: a JSON-serialisable request body, or ``None`` for none.
    :param access_token: sent as ``Authorization: Bearer``.
    :param timeout: the socket timeout in seconds.
    :param connection: a connection to reuse; a fresh one is opened and closed otherwise.
    :returns: ``(status, decoded_json_body)`` for a 2xx answer.
    :raises MatrixRequestError: for any other status.
    """
    own_connection = connection is None
    if own_connection:
        connection = _open_connection(base_url, timeout)
    try:
        return _exchange(connection, method, path, body, access_token)
    finally:
        if own_connection:
            connection.close()


def _open_connection(base_url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=timeout, context=context
        )
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)


def _exchange(connection, method, path, body, access_token):
    headers = {"Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    try:
        decoded = json.loads(raw) if raw else {}
    except ValueError:
        decoded = {"raw": raw.decode("utf-8", "replace")}
    if not 200 <= response.status < 300:
        raise MatrixRequestError(method, path, response.status, decoded)
    return response.status, decoded


class CSClient:
    """A logged-in (or not yet logged-in) user of one homeserver; blocking, usable from threads.

    :param base_url: the Client-Server API base URL, e.g. ``"http://127.0.0.1:8008"``.
    :param access_token: an access token, if already logged in.
    :param user_id: the user ID that token belongs to.
    :param device_id: the device ID that token belongs to.
    :param timeout: the socket timeout in seconds for ordinary requests (long-polls add theirs).
    """

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        user_id: str | None = None,
        device_id: str | None = None,
        timeout: float = 60.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.user_id = user_id
        self.device_id = device_id
        self.timeout = timeout
        self._local = threading.local()
        self._txn_counter = itertools.count()
        self._txn_prefix = uuid.uuid4().hex[:12]
        self._txn_lock = threading.Lock()

    # --- transport -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body=None,
        query: dict | None = None,
        timeout: float | None = None,
    ):
        """Make an authenticated request on this thread's kept-alive connection; blocking.

        A request that fails because the server had closed the idle connection is sent
        once more on a new connection.

        :param method: the HTTP method.
        :param path: the path below the server root, e.g. ``"/_matrix/client/v3/sync"``.
        :param body: the JSON body or ``None``.
        :param query: query parameters (values are converted with ``str``).
        :param timeout: the socket timeout for this request, in seconds.
        :returns: the decoded JSON body.
        :raises MatrixRequestError: for a non-2xx answer.
        """
        if query:
            path = f"{path}?{urlencode({k: v for k, v in query.items() if v is not None})}"
        timeout = self.timeout if timeout is None else timeout
        connection = getattr(self._local, "connection", None)
        reused = connection is not None
        if connection is None:
            connection = self._local.connection = _open_connection(self.base_url, timeout)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            return _exchange(connection, method, path, body, self.access_token)[1]
        except _STALE_CONNECTION_ERRORS:
            connection.close()
            if not reused:
                raise
            connection = self._local.connection = _open_connection(self.base_url, timeout)
            return _exchange(connection, method, path, body, self.access_token)[1]
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise

    def close(self):
        """Close this thread's connection (other threads' connections close when collected)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def new_txn_id(self) -> str:
        """A transaction ID unique to this client object (for idempotent ``PUT .../send``)."""
        with self._txn_lock:
            return f"{self._txn_prefix}-{next(self._txn_counter)}"

    def _take_login(self, body: dict) -> dict:
        self.access_token = body["access_token"]
        self.user_id = body["user_id"]
        self.device_id = body.get("device_id")
        return body

    # --- accounts --------------------------------------------------------------------

    def register(self, username: str, password: str, device_id: str | None = None) -> dict:
        """Register an account with the ``m.login.dummy`` stage and keep its access token; blocking.

        :returns: the registration response (``user_id``, ``access_token``, ``device_id``).
        :raises MatrixRequestError: if the server refuses (e.g. ``M_USER_IN_USE``).
        """
        body = {"username": username, "password": password}
        if device_id is not None:
            body["device_id"] = device_id
        try:
            return self._take_login(self.request("POST", "/_matrix/client/v3/register", body))
        except MatrixRequestError as e:
            if e.status != 401 or "session" not in e.body:
                raise
            body["auth"] = {"type": "m.login.dummy", "session": e.body["session"]}
        return self._take_login(self.request("POST", "/_matrix/client/v3/register", body))

    def login(self, username: str, password: str, device_id: str | None = None) -> dict:
        """Log in with ``m.login.password`` and keep the access token; blocking.

        :param username: a localpart or a full user ID.
        :returns: the login response.
        """
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        }
        if device_id is not None:
            body["device_id"] = device_id
        return self._take_login(self.request("POST", "/_matrix/client/v3/login", body))

    def whoami(self) -> dict:
        """``GET /account/whoami``; blocking. Returns ``{"user_id": ..., "device_id": ...}``."""
        return self.request("GET", "/_matrix/client/v3/account/whoami")

    # --- rooms -----------------------------------------------------------------------

    def create_room(self, **body) -> str:
        """``POST /createRoom`` with ``body`` as the request (``preset``, ``invite``, ...); blocking.

        :returns: the new room ID.
        """
        return self.request("POST", "/_matrix/client/v3/createRoom", body)["room_id"]

    def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` into ``room_id``; blocking."""
        self.request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/invite",
            {"user_id": user_id},
        )

    def join(self, room_id_or_alias: str, via: list | tuple = ()) -> str:
        """Join a room by ID or alias; blocking. Returns the room ID.

        :param via: servers to join through (the ``via`` query parameter), needed to join a
            room by ID that no user of this server is in yet.
        """
        path = f"/_matrix/client/v3/join/{quote(room_id_or_alias, safe='')}"
        if via:
            path += "?" + urlencode([("via", server) for server in via])
        return self.request("POST", path, {})["room_id"]

    def send_event(
        self, room_id: str, event_type: str, content: dict, txn_id: str | None = None
    ) -> str:
        """``PUT /rooms/{roomId}/send/{eventType}/{txnId}``; blocking.

        :param txn_id: the transaction ID; a fresh one is chosen when ``None``.
        :returns: the event ID.
        """
        txn_id = self.new_txn_id() if txn_id is None else txn_id
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send/"
            f"{quote(event_type, safe='')}/{quote(txn_id, safe='')}"
        )
        return self.request("PUT", path, content)["event_id"]

    def send_message(self, room_id: str, text: str, txn_id: str | None = None) -> str:
        """Send an ``m.room.message`` of msgtype ``m.text``; blocking. Returns the event ID."""
        return self.send_event(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, txn_id
        )

    def messages(
        self, room_id: str, from_token: str | None = None, direction: str = "b", limit: int = 10
    ) -> dict:
        """``GET /rooms/{roomId}/messages``; blocking. Returns ``{"chunk", "start", "end"?, ...}``."""
        query = {"dir": direction, "limit": limit, "from": from_token}
        return self.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages", query=query
        )

    # --- sync ------------------------------------------------------------------------

    def sync(
        self,
        since: str | None = None,
        timeout_ms: int = 0,
        filter: str | dict | None = None,
        full_state: bool = False,
    ) -> dict:
        """``GET /sync``; blocking for up to ``timeout_ms`` when nothing new has happened.

        :param since: the ``next_batch`` of the previous sync, or ``None`` for an initial sync.
        :param timeout_ms: how long the server may hold the request open.
        :param filter: a filter ID or an inline filter definition.
        :param full_state: ask for the full state of every room.
        :returns: the sync response.
        """
        if isinstance(filter, dict):
            filter = json.dumps(filter, separators=(",", ":"))
        query = {
            "since": since,
            "timeout": timeout_ms,
            "filter": filter,
            "full_state": "true" if full_state else None,
        }
        return self.request(
            "GET", "/_matrix/client/v3/sync", query=query, timeout=self.timeout + timeout_ms / 1000
        )

    def sync_until(
        self, predicate, since: str | None = None, deadline_s: float = 30.0, timeout_ms: int = 5000
    ):
        """Long-poll ``/sync`` until ``predicate(response)`` is true; blocking.

        :param predicate: called with each sync response; a true result stops the loop.
        :param since: where to start; ``None`` starts with an initial sync.
        :param deadline_s: give up after this many seconds.
        :returns: ``(matching_response, next_batch)``.
        :raises TimeoutError: if the deadline passes first.
        """
        end = time.monotonic() + deadline_s
        while True:
            response = self.sync(since=since, timeout_ms=timeout_ms)
            since = response["next_batch"]
            if predicate(response):
                return response, since
            if time.monotonic() > end:
                raise TimeoutError(f"/sync did not show the expected data within {deadline_s}s")


def timeline_events(sync_response: dict, room_id: str, section: str = "join") -> list:
    """The timeline events of ``room_id`` in one sync response (``[]`` if the room is absent).

    :param section: ``"join"``, ``"leave"`` (or ``"invite"``, which has ``invite_state`` instead).
    """
    room = sync_response.get("rooms", {}).get(section, {}).get(room_id, {})
    return room.get("timeline", {}).get("events", [])
