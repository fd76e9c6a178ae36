"""A ``twisted.web`` resource that routes JSON API requests to callbacks through a small route table.

A callback gets the request and the path parameters and returns
``(status, json_body)`` (or a Deferred or coroutine of it). This module turns
that, or any :class:`mxref.errors.MatrixError`, into a JSON response with the
CORS headers; any other exception is logged and becomes ``500 M_UNKNOWN``.

Spec: Client-Server API, "API Standards" (JSON responses, ``Content-Type:
application/json``, standard error response), "Web Browser Clients" (CORS
headers on all requests, ``OPTIONS`` answered without running endpoint logic),
"Rate limiting" (``429 M_LIMIT_EXCEEDED`` with ``Retry-After``); and
"Unsupported endpoints" in both the Client-Server and Server-Server APIs
(MSC3743): an unknown endpoint answers ``404 M_UNRECOGNIZED``, a known
endpoint called with an unsupported method ``405 M_UNRECOGNIZED``.
"""

import inspect
import json
import math
import re
from urllib.parse import quote_from_bytes, unquote_to_bytes

import attr
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from mxref.errors import MatrixError

#: Headers sent with every response, as the spec's "Web Browser Clients" section recommends.
CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers": b"X-Requested-With, Content-Type, Authorization, Date",
    b"Access-Control-Expose-Headers": b"Retry-After",
}

#: The largest request body a :class:`JsonResource` reads unless told otherwise.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def client_paths(suffix: str) -> list:
    """The client-server paths for one endpoint: ``/_matrix/client/v3<suffix>`` and the legacy ``r0`` one.

    :param suffix: the part after the version, e.g. ``"/rooms/{roomId}/join"``.
    :returns: a list of two path patterns for :meth:`JsonResource.register`.
    """
    return [f"/_matrix/client/v3{suffix}", f"/_matrix/client/r0{suffix}"]


def encode_json(body) -> bytes:
    """Encode a response body compactly as UTF-8 JSON.

    Non-ASCII characters are written as themselves; a string holding an
    unpaired UTF-16 surrogate, which UTF-8 cannot carry, makes the whole body
    fall back to ``\\u`` escapes (four hex digits) instead of failing.
    """
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def _snake_case(name: str) -> str:
    return _CAMEL_HUMP.sub(r"_\1", name).lower()


@attr.s(frozen=True, slots=True)
class _Segment:
    """One ``/``-separated piece of a path pattern: a literal, or a named parameter."""

    literal = attr.ib()  # the literal text, or None for a parameter
    parameter = attr.ib()  # the callback keyword for a parameter, or None


@attr.s(frozen=True, slots=True)
class Route:
    """One registered endpoint: an HTTP method, a path pattern and the callback that serves it."""

    method = attr.ib()
    pattern = attr.ib()
    segments = attr.ib()
    callback = attr.ib()

    @classmethod
    def parse(cls, method: str, pattern: str, callback) -> "Route":
        """Build a route from a pattern such as ``/_matrix/client/v3/rooms/{roomId}/join``."""
        if not pattern.startswith("/"):
            raise ValueError(f"path pattern must start with '/': {pattern!r}")
        segments = []
        for piece in pattern[1:].split("/"):
            whole = _PARAMETER.fullmatch(piece)
            if whole:
                segments.append(_Segment(None, _snake_case(whole.group(1))))
            elif "{" in piece or "}" in piece:
                raise ValueError(f"a parameter must fill a whole path segment: {pattern!r}")
            else:
                segments.append(_Segment(piece, None))
        return cls(method.upper(), pattern, tuple(segments), callback)

    def match(self, path_segments) -> dict:
        """The path parameters if the decoded path segments fit this route, else ``None``."""
        if len(path_segments) != len(self.segments):
            return None
        parameters = {}
        for segment, value in zip(self.segments, path_segments):
            if segment.literal is None:
                parameters[segment.parameter] = value
            elif segment.literal != value:
                return None
        return parameters

    def specificity(self) -> tuple:
        """Orders overlapping routes: a literal segment beats a parameter at the same place."""
        return tuple(segment.literal is not None for segment in self.segments)


class _MethodNotAllowed(MatrixError):
    """The path is known but not for this method: ``405 M_UNRECOGNIZED`` with an ``Allow`` header."""

    def __init__(self, allowed_methods):
        super().__init__(405, "M_UNRECOGNIZED", "Unrecognized request: method not allowed for this path")
        self.allowed_methods = allowed_methods


def _check_result(result):
    """A callback must give ``(status, json_body)``; anything else is a programming error (500)."""
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int)):
        raise TypeError(f"a route callback must return (status, json_body), not {result!r:.200}")
    return result


def _raw_path(request) -> bytes:
    """The request's path as sent (percent-encoded, no query string).

    Test doubles such as ``DummyRequest`` may leave ``path`` unset; their
    already-split ``prepath``/``postpath`` segments are re-encoded instead.
    """
    path = getattr(request, "path", None)
    if path is not None:
        return path
    segments = list(getattr(request, "prepath", None) or []) + list(getattr(request, "postpath", None) or [])
    return b"/" + b"/".join(quote_from_bytes(segment, safe="").encode("ascii") for segment in segments)


def _decode_path(raw_path: bytes) -> list:
    """Split a raw request path on ``/`` and then percent-decode each segment as UTF-8.

    Splitting first means an encoded ``%2F`` stays inside its segment (a room
    alias or state key may contain ``/``).
    """
    pieces = raw_path.split(b"/")[1:] if raw_path.startswith(b"/") else raw_path.split(b"/")
    try:
        return [unquote_to_bytes(piece).decode("utf-8") for piece in pieces]
    except UnicodeDecodeError:
        raise MatrixError(400, "M_INVALID_PARAM", "Request path is not valid UTF-8 after percent-decoding")


class JsonResource(Resource):
    """Routes requests by method and full path to JSON callbacks.

    Register endpoints with :meth:`register`. A callback is called as
    ``callback(request, **parameters)``, where each ``{camelCase}`` path
    parameter arrives as a ``snake_case`` keyword (``{roomId}`` ->
    ``room_id``), already percent-decoded. It returns ``(status, json_body)``,
    a Deferred firing with that, or a coroutine (``async def``) giving it.

    The path is matched in full (``request.path``), so the resource works
    whether it is a Site's root or a child.

    :param max_body_size: the largest request body, in bytes, any of these
        endpoints accepts; longer bodies get ``413 M_TOO_LARGE``.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, max_body_size: int = DEFAULT_MAX_BODY_SIZE):
        super().__init__()
        self.max_body_size = max_body_size
        self._routes = []

    def register(self, method: str, path_pattern, callback) -> None:
        """Serve ``method`` on a path pattern (or a list of them, such as :func:`client_paths` gives).

        :param method: ``"GET"``, ``"PUT"``, ``"POST"``, ``"DELETE"``...
        :param path_pattern: e.g. ``"/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"``.
        :param callback: see the class docstring.
        """
        patterns = [path_pattern] if isinstance(path_pattern, str) else list(path_pattern)
        for pattern in patterns:
            route = Route.parse(method, pattern, callback)
            for existing in self._routes:
                if existing.method == route.method and existing.pattern == route.pattern:
                    raise ValueError(f"{method} {pattern} is already registered")
            self._routes.append(route)

    def render(self, request):
        """Answer one request (the ``IResource`` entry point); always returns ``NOT_DONE_YET``."""
        connection = {"lost": False, "work": None}

        def on_connection_lost(reason):
            connection["lost"] = True
            if connection["work"] is not None:
                connection["work"].cancel()

        request.notifyFinish().addErrback(on_connection_lost)

        work = defer.maybeDeferred(self._dispatch, request)
        connection["work"] = work
        work.addCallback(_check_result)
        work.addCallbacks(
            lambda result: self._send(request, connection, *result),
            lambda failure: self._send_failure(request, connection, failure),
        )
        work.addErrback(self._log_failure_to_respond, request)
        return NOT_DONE_YET

    def _dispatch(self, request):
        """Find the route, check the body size and call the callback; returns its result or a Deferred."""
        method = request.method.decode("ascii", "replace")
        if method == "OPTIONS":
            return 200, {}
        path_segments = _decode_path(_raw_path(request))
        candidates = [(route, route.match(path_segments)) for route in self._routes]
        candidates = [(route, params) for route, params in candidates if params is not None]
        if not candidates:
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        wanted = method
        if method == "HEAD" and not any(route.method == "HEAD" for route, _ in candidates):
            wanted = "GET"
        chosen = [(route, params) for route, params in candidates if route.method == wanted]
        if not chosen:
            allowed = sorted({route.method for route, _ in candidates} | {"OPTIONS"})
            raise _MethodNotAllowed(allowed)
        route, params = max(chosen, key=lambda pair: pair[0].specificity())
        self._check_body_size(request)
        result = route.callback(request, **params)
        if inspect.iscoroutine(result):
            return defer.ensureDeferred(result)
        return result

    def _check_body_size(self, request):
        content = getattr(request, "content", None)
        if content is None:
            return
        position = content.tell()
        size = content.seek(0, 2)
        content.seek(position)
        if size > self.max_body_size:
            raise MatrixError(413, "M_TOO_LARGE", f"Request body is larger than {self.max_body_size} bytes")

    def _send(self, request, connection, status, body, extra_headers=None):
        """Write one JSON response with the CORS headers, unless the client has gone."""
        if connection["lost"]:
            return
        data = encode_json(body)
        request.setResponseCode(status)
        for name, value in CORS_HEADERS.items():
            request.setHeader(name, value)
        for name, value in (extra_headers or {}).items():
            request.setHeader(name, value)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % (len(data),))
        request.write(data)
        request.finish()

    def _send_failure(self, request, connection, failure):
        """Turn a failure into an error response: MatrixErrors as they are, anything else 500 ``M_UNKNOWN``."""
        if connection["lost"] and failure.check(defer.CancelledError):
            return
        error = failure.value
        if isinstance(error, MatrixError):
            headers = {}
            retry_after_ms = error.extra.get("retry_after_ms")
            if isinstance(retry_after_ms, (int, float)):
                headers[b"Retry-After"] = b"%d" % (math.ceil(retry_after_ms / 1000),)
            if isinstance(error, _MethodNotAllowed):
                headers[b"Allow"] = ", ".join(error.allowed_methods).encode("ascii")
            self._send(request, connection, error.code, error.to_json(), headers)
            return
        self._log.failure(
            "{method} {path} failed", failure,
            method=request.method.decode("ascii", "replace"),
            path=_raw_path(request).decode("ascii", "replace"),
        )
        self._send(request, connection, 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})

    def _log_failure_to_respond(self, failure, request):
        """Last resort: writing the response itself failed (e.g. a body that is not JSON-serialisable)."""
        self._log.failure(
            "could not respond to {method} {path}", failure,
            method=request.method.decode("ascii", "replace"),
            path=_raw_path(request).decode("ascii", "replace"),
        )
        if not getattr(request, "startedWriting", False) and not getattr(request, "_disconnected", False):
            self._send(request, {"lost": False}, 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})
