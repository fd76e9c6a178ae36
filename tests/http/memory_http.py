"""Drive a real ``twisted.web`` Site over an in-memory transport, with raw HTTP/1.1 bytes in and out.

Requests go through Twisted's real HTTP parser (headers, Content-Length,
chunked bodies), so tests see what a client on the wire would see.
"""

import json

import attr
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone


@attr.s
class RawResponse:
    """A parsed HTTP response: status code, headers (lower-cased names -> list of values) and body bytes."""

    code = attr.ib()
    headers = attr.ib()
    body = attr.ib()

    def header(self, name: str):
        """The first value of a header, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        """The body decoded as JSON (UTF-8, as the spec requires)."""
        return json.loads(self.body.decode("utf-8"))


def parse_response(data: bytes) -> RawResponse:
    """Parse one complete HTTP/1.1 response (Content-Length or chunked body).

    :raises ValueError: when the bytes do not hold a complete response yet.
    """
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"incomplete response: {data!r}")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "content-length" in headers:
        length = int(headers["content-length"][0])
        if len(rest) < length:
            raise ValueError("incomplete response body")
        return RawResponse(code, headers, rest[:length])
    if headers.get("transfer-encoding") == ["chunked"]:
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                return RawResponse(code, headers, body)
            body, rest = body + rest[:size], rest[size + 2:]
    return RawResponse(code, headers, rest)


class MemoryConnection:
    """One client connection to ``site`` over an in-memory transport.

    :param site: a ``twisted.web.server.Site`` (whose reactor should be a
        ``MemoryReactorClock``).
    :param peer_host: the client address the server sees.
    """

    def __init__(self, site, peer_host: str = "127.0.0.7"):
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer_host, 40000))
        self.channel = site.buildProtocol(IPv4Address("TCP", peer_host, 40000))
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        """Deliver raw bytes from the client to the server."""
        self.channel.dataReceived(data)

    def request(self, method: str, path: str, body=None, headers=None) -> None:
        """Send one request; ``body`` may be bytes, or any other value to send as JSON."""
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        lines = [f"{method} {path} HTTP/1.1".encode("ascii"), b"Host: example.org"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode("utf-8"))
        if body is not None:
            lines.append(b"Content-Length: %d" % (len(body),))
        self.send(b"\r\n".join(lines) + b"\r\n\r\n" + (body or b""))

    def response(self) -> RawResponse:
        """The response written so far (raises ValueError if it is not complete)."""
        return parse_response(self.transport.value())

    def has_response(self) -> bool:
        """Whether anything at all has been written back."""
        return bool(self.transport.value())

    def disconnect(self) -> None:
        """The client goes away before the response."""
        self.transport.loseConnection()
        self.channel.connectionLost(Failure(ConnectionDone("client went away")))


def request(site, method: str, path: str, body=None, headers=None) -> RawResponse:
    """Make one request on a new connection and return the (already complete) response."""
    connection = MemoryConnection(site)
    connection.request(method, path, body, headers)
    return connection.response()
