"""An in-memory Client-Server API client for whole test homeservers.

:class:`InMemoryClient` sends real HTTP requests (Twisted's HTTP client and server protocols
over an in-memory transport) to a :class:`~mxref.homeserver.HomeServer`'s client resources, so
tests and module authors exercise the same parsing, authentication and serialisation a real
client meets, without sockets. Every method returns a Deferred.
"""

import json
from io import BytesIO
from urllib.parse import quote, urlencode

import treq
from treq.testing import RequestTraversalAgent
from twisted.internet import defer
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from mxref.errors import MatrixError
from mxref.testing.network import pumped_request

CLIENT_V3 = "/_matrix/client/v3"


class ClientError(MatrixError):
    """A non-2xx answer; carries the status, the errcode and the body."""

    def __init__(self, code, body):
        body = body if isinstance(body, dict) else {}
        super().__init__(code, body.get("errcode", "M_UNKNOWN"), body.get("error", ""))
        self.body = body


def _root_for(resources):
    root = Resource()
    for prefix, resource in resources["client"].items():
        segments = [s.encode() for s in prefix.strip("/").split("/") if s]
        node = root
        for segment in segments[:-1]:
            child = node.children.get(segment)
            if child is None:
                child = Resource()
                node.putChild(segment, child)
            node = child
        node.putChild(segments[-1], resource)
    return root


class InMemoryClient:
    """One user's session with one homeserver.

    :param homeserver: the :class:`~mxref.homeserver.HomeServer`.
    :param reactor: the real reactor (moves the in-memory bytes).
    :param access_token: the session's token, once logged in.
    """

    def __init__(self, homeserver, reactor, access_token=None, user_id=None, device_id=None):
        self.homeserver = homeserver
        self._reactor = reactor
        self._traversal = RequestTraversalAgent(_root_for(homeserver.resources))
        self.access_token = access_token
        self.user_id = user_id
        self.device_id = device_id
        self._txn = 0

    @defer.inlineCallbacks
    def request(self, method, path, body=None, query=None, token=True):
        """Send one request.

        :param path: the path after the host (e.g. ``/_matrix/client/v3/sync``).
        :param body: a JSON value, or ``None`` for no body.
        :param query: query parameters.
        :param token: send the session's access token.
        :returns: Deferred firing with the decoded JSON body.
        :raises ClientError: for a non-2xx answer.
        """
        url = f"http://{self.homeserver.server_name}{path}"
        if query:
            url += "?" + urlencode(query, doseq=True)
        headers = Headers({b"Content-Type": [b"application/json"]})
        if token and self.access_token:
            headers.addRawHeader(b"Authorization", f"Bearer {self.access_token}".encode())
        producer = None
        if body is not None:
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
        response = yield pumped_request(
            self._traversal, self._reactor, method.encode(), url.encode("utf-8"), headers, producer
        )
        raw = yield treq.content(response)
        decoded = json.loads(raw) if raw else {}
        if not 200 <= response.code < 300:
            raise ClientError(response.code, decoded)
        return decoded

    # --- conveniences --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def register(self, localpart, password="password"):
        """Register through ``/register`` (open registration with ``m.login.dummy``) and keep the
        session. :returns: Deferred firing with the user ID."""
        body = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"}}
        try:
            result = yield self.request("POST", f"{CLIENT_V3}/register", body, token=False)
        except ClientError as e:
            if e.code != 401 or "session" not in e.body:
                raise
            body["auth"]["session"] = e.body["session"]
            result = yield self.request("POST", f"{CLIENT_V3}/register", body, token=False)
        self.access_token = result["access_token"]
        self.user_id = result["user_id"]
        self.device_id = result["device_id"]
        return self.user_id

    def create_room(self, **body):
        """``POST /createRoom``; Deferred firing with the room ID."""
        return self.request("POST", f"{CLIENT_V3}/createRoom", body).addCallback(lambda r: r["room_id"])

    def join(self, room_id_or_alias, via=()):
        """``POST /join/{roomIdOrAlias}``; Deferred firing with the room ID."""
        query = {"via": list(via)} if via else None
        d = self.request("POST", f"{CLIENT_V3}/join/{quote(room_id_or_alias, safe='')}", {}, query=query)
        return d.addCallback(lambda r: r["room_id"])

    def invite(self, room_id, user_id):
        """``POST /rooms/{roomId}/invite``."""
        return self.request("POST", f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/invite", {"user_id": user_id})

    def leave(self, room_id):
        """``POST /rooms/{roomId}/leave``."""
        return self.request("POST", f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/leave", {})

    def membership_of(self, room_id, action, user_id, reason=None):
        """``POST /rooms/{roomId}/kick|ban|unban``."""
        body = {"user_id": user_id}
        if reason is not None:
            body["reason"] = reason
        return self.request("POST", f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/{action}", body)

    def send(self, room_id, content, event_type="m.room.message"):
        """``PUT /rooms/{roomId}/send/{type}/{txnId}``; Deferred firing with the event ID."""
        self._txn += 1
        path = f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/send/{quote(event_type, safe='')}/t{self._txn}"
        return self.request("PUT", path, content).addCallback(lambda r: r["event_id"])

    def send_text(self, room_id, body):
        """Send an ``m.text`` message; Deferred firing with the event ID."""
        return self.send(room_id, {"msgtype": "m.text", "body": body})

    def set_state(self, room_id, event_type, content, state_key=""):
        """``PUT /rooms/{roomId}/state/{type}/{stateKey}``; Deferred firing with the event ID."""
        path = f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/state/{quote(event_type, safe='')}/{quote(state_key, safe='')}"
        return self.request("PUT", path, content).addCallback(lambda r: r["event_id"])

    def get_state(self, room_id, event_type, state_key=""):
        """``GET /rooms/{roomId}/state/{type}/{stateKey}``; Deferred firing with the content."""
        path = f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/state/{quote(event_type, safe='')}/{quote(state_key, safe='')}"
        return self.request("GET", path)

    def sync(self, since=None, timeout=0, **query):
        """``GET /sync``; Deferred firing with the response."""
        params = dict(query, timeout=str(timeout))
        if since is not None:
            params["since"] = since
        return self.request("GET", f"{CLIENT_V3}/sync", query=params)

    def messages(self, room_id, direction="b", limit=100, from_token=None):
        """``GET /rooms/{roomId}/messages``; Deferred firing with the response."""
        params = {"dir": direction, "limit": str(limit)}
        if from_token is not None:
            params["from"] = from_token
        return self.request("GET", f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/messages", query=params)
