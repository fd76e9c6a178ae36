"""The ``twisted.web`` Site that every mxref listener serves: access logging, a body-size cap and the Server header.

Bodies larger than the Site's cap are refused with ``413 M_TOO_LARGE`` while
they arrive (from ``Content-Length`` or by counting chunked bytes), before
they are buffered and routed. Each resource may then apply a smaller cap of
its own (:class:`mxref.http.resource.JsonResource`).

``X-Forwarded-For`` is ignored unless the Site is told that it sits behind a
trusted reverse proxy. Access tokens never reach the log.

Spec: Client-Server API, "API Standards" and "Client Authentication" (clients
are encouraged to send tokens in a header "to prevent the access token being
leaked in access/HTTP logs"; the query-string form is still accepted, so it is
removed before logging). ``413 M_TOO_LARGE``: Client-Server API, "Other error
codes".
"""

from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web import server

import mxref
from mxref.http.resource import CORS_HEADERS, encode_json

#: The default largest request body a Site accepts at all, in bytes.
DEFAULT_MAX_REQUEST_BODY_SIZE = 50 * 1024 * 1024

#: Query parameters whose values are secrets and never logged.
_SECRET_QUERY_PARAMETERS = {b"access_token"}


def client_ip(request) -> str:
    """The address of the client that sent ``request``, as a string.

    This is the TCP peer, unless the request arrived through a
    :class:`MatrixSite` configured with ``trust_x_forwarded_for=True``: then it
    is the last ``X-Forwarded-For`` entry, the one the trusted proxy itself
    appended (earlier entries are whatever the client claimed).

    :param request: a ``twisted.web`` request (a test double works too).
    :returns: the address (not a Deferred); ``""`` when unknown.
    """
    site = getattr(request, "site", None) or getattr(getattr(request, "channel", None), "site", None)
    if getattr(site, "trust_x_forwarded_for", False):
        forwarded = request.requestHeaders.getRawHeaders(b"X-Forwarded-For")
        if forwarded:
            last = forwarded[-1].split(b",")[-1].strip()
            if last:
                return last.decode("ascii", "replace")
    address = request.getClientAddress()
    return getattr(address, "host", None) or ""


def redact_uri(uri: bytes) -> str:
    """A request URI with secret query parameters (``access_token``) replaced by ``<redacted>``.

    The query is rewritten parameter by parameter without decoding the values, so any bytes a
    client sends (percent-encoded UTF-8 or not) are logged as received, never raising.
    """
    path, separator, query = uri.partition(b"?")
    text_path = path.decode("ascii", "replace")
    if not separator:
        return text_path
    parts = []
    for part in query.split(b"&"):
        name, equals, _value = part.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) in _SECRET_QUERY_PARAMETERS:
            part = name + b"=<redacted>"
        parts.append(part)
    return f"{text_path}?{b'&'.join(parts).decode('ascii', 'replace')}"


class MatrixRequest(server.Request):
    """A request that enforces the Site's body-size cap while the body arrives and records its start time."""

    start_time = None
    body_refused = False
    fully_received = False
    _body_bytes = 0

    def _max_body_size(self):
        site = getattr(self.channel, "site", None)
        return getattr(site, "max_request_body_size", DEFAULT_MAX_REQUEST_BODY_SIZE)

    def gotLength(self, length):
        """Headers are in: refuse a declared length over the cap at once."""
        site = getattr(self.channel, "site", None)
        if site is not None:
            self.start_time = site.reactor.seconds()
        if length is not None and length > self._max_body_size():
            self._refuse_body()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        """Count the body as it arrives (chunked bodies have no declared length)."""
        if self.body_refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self._max_body_size():
            self._refuse_body()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        """The whole request is in: process it unless its body was refused."""
        if self.body_refused:
            return
        self.fully_received = True
        super().requestReceived(command, path, version)

    def _refuse_body(self):
        """Answer ``413 M_TOO_LARGE`` straight away and close the connection.

        The request has not been parsed into a method and path yet, so the
        response is written to the transport directly, as Twisted itself does
        for malformed requests.
        """
        self.body_refused = True
        self.requestHeaders.removeHeader(b"Expect")
        site = getattr(self.channel, "site", None)
        limit = self._max_body_size()
        body = encode_json({"errcode": "M_TOO_LARGE", "error": f"Request body is larger than {limit} bytes"})
        lines = [b"HTTP/1.1 413 Request Entity Too Large"]
        lines.extend(name + b": " + value for name, value in CORS_HEADERS.items())
        lines.append(b"Content-Type: application/json")
        lines.append(b"Content-Length: %d" % (len(body),))
        lines.append(b"Connection: close")
        if site is not None:
            lines.append(b"Server: " + site.server_version)
        self.channel.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        if site is not None:
            site.log_refused_body(self)
        self.channel.loseConnection()

    def connectionLost(self, reason):
        """The client went away; if it did so before its response was finished, say so in the log."""
        site = getattr(self.channel, "site", None)
        unanswered = self.fully_received and not self.finished
        super().connectionLost(reason)
        if unanswered and site is not None:
            site.log_disconnected(self)

    def render(self, resrc):
        """Render with mxref's ``Server`` header instead of Twisted's."""
        self.setHeader(b"Server", self.site.server_version)
        super().render(resrc)


class MatrixSite(server.Site):
    """The Site for a listener: logs every request through ``twisted.logger``.

    :param resource: the root resource.
    :param reactor: the reactor (its clock times requests).
    :param server_name_header: the ``Server`` header; defaults to ``mxref/<version>``.
    :param max_request_body_size: the largest body any request may carry.
    :param trust_x_forwarded_for: take the client address from
        ``X-Forwarded-For`` (only behind a reverse proxy that sets it).
    """

    requestFactory = MatrixRequest
    noisy = False
    _log = Logger()

    def __init__(self, resource, reactor, server_name_header: str = None,
                 max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
                 trust_x_forwarded_for: bool = False):
        # Query parameters come from the query string only: a form-encoded or
        # multipart POST body is never merged into ``request.args``.
        super().__init__(resource, reactor=reactor, parsePOSTFormSubmission=False)
        header = server_name_header or f"mxref/{mxref.__version__}"
        self.server_version = header.encode("ascii")
        self.max_request_body_size = max_request_body_size
        self.trust_x_forwarded_for = trust_x_forwarded_for

    def log(self, request):
        """Log one finished request: client, user (if authenticated), method, path (secrets removed), status, duration."""
        duration_ms = None
        if getattr(request, "start_time", None) is not None:
            duration_ms = int(round((self.reactor.seconds() - request.start_time) * 1000))
        user_agent = request.getHeader(b"User-Agent") or b"-"
        requester = getattr(request, "requester", None)
        self._log.info(
            "{client_ip} {user_id} {method} {path} {status} {duration_ms}ms {user_agent}",
            client_ip=client_ip(request),
            user_id=getattr(requester, "user_id", None) or "-",
            method=request.method.decode("ascii", "replace"),
            path=redact_uri(request.uri),
            status=request.code,
            duration_ms=duration_ms,
            user_agent=user_agent.decode("ascii", "replace"),
        )

    def log_disconnected(self, request):
        """Log a request whose client disconnected before the response was finished."""
        duration_ms = None
        if getattr(request, "start_time", None) is not None:
            duration_ms = int(round((self.reactor.seconds() - request.start_time) * 1000))
        self._log.info(
            "{client_ip} {method} {path} client disconnected after {duration_ms}ms",
            client_ip=client_ip(request),
            method=request.method.decode("ascii", "replace"),
            path=redact_uri(request.uri),
            duration_ms=duration_ms,
        )

    def log_refused_body(self, request):
        """Log a request refused with 413 before its method and path were parsed."""
        self._log.info(
            "{client_ip} refused a request body over {limit} bytes (413)",
            client_ip=client_ip(request),
            limit=self.max_request_body_size,
        )
