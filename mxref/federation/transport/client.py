"""The outbound federation client: one signed HTTP request per remote endpoint, JSON in and out.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):
"API standards" (JSON object bodies in UTF-8 for every ``PUT``/``POST``;
responses are JSON objects), "Request Authentication" (every request carries
an ``X-Matrix`` Authorization header signed over method, target, origin,
destination and body, with server names from *before* delegation), and the
endpoint sections whose paths the typed methods below follow. The key
endpoints (``/_matrix/key/v2/*``) need no authentication and are sent without it.

Requests go to ``matrix-federation://<server name><path>`` URIs through an
injected ``IAgent``: in production a
:class:`~mxref.federation.transport.agent.MatrixFederationAgent`, which does
server discovery and TLS; in tests any in-memory agent.

Failures: a non-2xx answer raises :class:`HttpResponseError` carrying the
remote status, ``errcode`` and body; anything that stops us from getting a
well-formed answer (connection refused, DNS, TLS, a body that is not a JSON
object or is too large, a timeout) raises :class:`RequestFailed`.
"""

from urllib.parse import quote, urlencode

import attr
import treq.client
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

import mxref
from mxref.errors import MatrixError
from mxref.federation.transport.xmatrix import sign_request
from mxref.http.request import decode_json
from mxref.http.resource import encode_json

#: The largest response body read for ordinary requests.
DEFAULT_MAX_RESPONSE_SIZE = 10 * 1024 * 1024

#: ``send_join`` answers carry the whole room state and its auth chain.
SEND_JOIN_MAX_RESPONSE_SIZE = 50 * 1024 * 1024

#: Default request timeout, in seconds.
DEFAULT_TIMEOUT = 60

#: The URI scheme the federation agent resolves.
FEDERATION_SCHEME = "matrix-federation"


class HttpResponseError(MatrixError):
    """The remote server answered with a non-2xx status.

    :ivar code: the remote HTTP status.
    :ivar errcode: the Matrix ``errcode`` of the body, or ``M_UNKNOWN`` if it had none.
    :ivar body: the decoded response body (a dict; ``{}`` when it was not a JSON object).
    """

    def __init__(self, code: int, errcode, body):
        self.body = body if isinstance(body, dict) else {}
        message = self.body.get("error")
        super().__init__(
            code, errcode or "M_UNKNOWN", message if isinstance(message, str) else f"HTTP {code}"
        )


class RequestFailed(MatrixError):
    """No usable answer: a network, TLS or DNS failure, a malformed response, or a timeout.

    :param code: 502 for failures, 504 for timeouts.
    """

    def __init__(self, msg: str, code: int = 502):
        super().__init__(code, "M_UNKNOWN", msg)


class _ResponseTooLarge(Exception):
    """The response body grew beyond the limit."""


def _path(template: str, *parameters) -> str:
    """Fill ``%s`` slots in ``template`` with percent-encoded identifiers (``!``, ``$``, ``:``, ``/`` escaped)."""
    return template % tuple(quote(parameter, safe="") for parameter in parameters)


@attr.s(frozen=True, slots=True)
class _Call:
    """One outbound request, before it is signed."""

    method = attr.ib()
    destination = attr.ib()
    path = attr.ib()
    args = attr.ib(default=None)
    body = attr.ib(default=None)
    sign = attr.ib(default=True)
    max_size = attr.ib(default=DEFAULT_MAX_RESPONSE_SIZE)


class FederationClient:
    """Signed JSON requests to other homeservers.

    :param agent: an ``IAgent`` accepting ``matrix-federation://<server name>/...`` URIs.
    :param server_name: our server name (the ``origin`` we sign as).
    :param signing_key: our signing key.
    :param clock: an ``IReactorTime`` for timeouts and ``origin_server_ts``.
    :param timeout: seconds before a request (including reading its body) is
        cancelled and fails with a 504 :class:`RequestFailed`.
    """

    _log = Logger()

    def __init__(self, agent, server_name: str, signing_key, clock, timeout: float = DEFAULT_TIMEOUT):
        self._http = treq.client.HTTPClient(agent, data_to_body_producer=_BytesProducer)
        self._server_name = server_name
        self._signing_key = signing_key
        self._clock = clock
        self._timeout = timeout

    # --- raw requests -------------------------------------------------------

    def get_json(self, destination: str, path: str, args=None):
        """``GET`` a JSON object from ``destination``.

        :param path: the percent-encoded path, starting ``/_matrix/``.
        :param args: query parameters, ``{name: value or [values]}``.
        :returns: a Deferred firing with the response object.
        """
        return self._request(_Call("GET", destination, path, args))

    def put_json(self, destination: str, path: str, body, args=None):
        """``PUT`` a JSON object to ``destination``; see :meth:`get_json`.

        :returns: a Deferred firing with the response object.
        """
        return self._request(_Call("PUT", destination, path, args, body))

    def post_json(self, destination: str, path: str, body, args=None):
        """``POST`` a JSON object to ``destination``; see :meth:`get_json`.

        :returns: a Deferred firing with the response object.
        """
        return self._request(_Call("POST", destination, path, args, body))

    def _request(self, call: _Call):
        d = defer.ensureDeferred(self._send(call))
        d.addTimeout(self._timeout, self._clock)

        def on_timeout(failure):
            failure.trap(defer.TimeoutError)
            raise RequestFailed(
                f"{call.method} {call.path} to {call.destination} timed out after {self._timeout}s", 504
            )

        d.addErrback(on_timeout)
        return d

    async def _send(self, call: _Call):
        uri = call.path
        if call.args:
            query = urlencode(
                [(name, value) for name, values in call.args.items()
                 for value in (values if isinstance(values, (list, tuple)) else [values])],
                quote_via=quote,
            )
            uri = f"{uri}?{query}"
        headers = Headers({b"User-Agent": [f"mxref/{mxref.__version__}".encode("ascii")]})
        data = None
        if call.body is not None:
            data = encode_json(call.body)
            headers.addRawHeader(b"Content-Type", b"application/json")
        if call.sign:
            authorization = sign_request(
                self._signing_key, self._server_name, call.destination, call.method, uri, call.body
            )
            headers.addRawHeader(b"Authorization", authorization.encode("utf-8"))
        url = f"{FEDERATION_SCHEME}://{call.destination}{uri}".encode("ascii")
        try:
            response = await self._http.request(
                call.method, url, headers=headers, data=data, allow_redirects=False
            )
        except defer.CancelledError:
            raise
        except MatrixError:
            raise
        except Exception as e:
            raise RequestFailed(f"{call.method} {call.path} to {call.destination} failed: {e!r}") from None

        length = response.length
        if isinstance(length, int) and length > call.max_size:
            response.deliverBody(_Discard())
            raise RequestFailed(
                f"response from {call.destination} is {length} bytes, more than {call.max_size}"
            )
        chunks = []
        received = [0]

        def collector(data):
            received[0] += len(data)
            if received[0] > call.max_size:
                raise _ResponseTooLarge()
            chunks.append(data)

        try:
            await treq.collect(response, collector)
        except defer.CancelledError:
            raise
        except _ResponseTooLarge:
            raise RequestFailed(f"response from {call.destination} is more than {call.max_size} bytes") from None
        except Exception as e:
            raise RequestFailed(f"reading the response from {call.destination} failed: {e!r}") from None
        raw = b"".join(chunks)

        if not 200 <= response.code < 300:
            try:
                body = decode_json(raw)
            except MatrixError:
                body = {}
            errcode = body.get("errcode") if isinstance(body, dict) else None
            self._log.debug(
                "{method} {path} to {destination}: HTTP {code} {errcode}",
                method=call.method, path=call.path, destination=call.destination,
                code=response.code, errcode=errcode,
            )
            raise HttpResponseError(response.code, errcode if isinstance(errcode, str) else None, body)
        try:
            body = decode_json(raw)
        except MatrixError as e:
            raise RequestFailed(f"response from {call.destination} is not JSON: {e.msg}") from None
        if not isinstance(body, dict):
            raise RequestFailed(f"response from {call.destination} is not a JSON object")
        return body

    # --- typed endpoints ----------------------------------------------------

    def send_transaction(self, destination: str, txn_id: str, pdus: list, edus: list):
        """``PUT /_matrix/federation/v1/send/{txnId}`` ("Transactions").

        :param pdus: the PDUs as they go on the wire (no ``event_id`` for room
            versions 3 and later; the caller strips it). At most 50.
        :param edus: ``[{edu_type, content}]``, at most 100.
        :returns: a Deferred firing with ``{"pdus": {event_id: {} or {"error": ...}}}``.
        """
        body = {
            "origin": self._server_name,
            "origin_server_ts": int(self._clock.seconds() * 1000),
            "pdus": list(pdus),
            "edus": list(edus),
        }
        return self.put_json(destination, _path("/_matrix/federation/v1/send/%s", txn_id), body)

    def make_join(self, destination: str, room_id: str, user_id: str, supported_versions):
        """``GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=...``.

        :param supported_versions: the room versions we support (sent as repeated ``ver``).
        :returns: a Deferred firing with ``{"room_version", "event"}``.
        """
        return self.get_json(
            destination,
            _path("/_matrix/federation/v1/make_join/%s/%s", room_id, user_id),
            {"ver": list(supported_versions)},
        )

    def send_join(self, destination: str, room_id: str, event_id: str, event: dict, omit_members: bool = False):
        """``PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`` (responses up to 50 MiB).

        :param omit_members: ask for a partial-state answer (``omit_members=true``).
        :returns: a Deferred firing with ``{"auth_chain", "state", "event", "members_omitted", "servers_in_room"}``.
        """
        args = {"omit_members": "true"} if omit_members else None
        return self._request(_Call(
            "PUT", destination, _path("/_matrix/federation/v2/send_join/%s/%s", room_id, event_id),
            args, event, max_size=SEND_JOIN_MAX_RESPONSE_SIZE,
        ))

    def make_leave(self, destination: str, room_id: str, user_id: str):
        """``GET /_matrix/federation/v1/make_leave/{roomId}/{userId}``.

        :returns: a Deferred firing with ``{"room_version", "event"}``.
        """
        return self.get_json(destination, _path("/_matrix/federation/v1/make_leave/%s/%s", room_id, user_id))

    def send_leave(self, destination: str, room_id: str, event_id: str, event: dict):
        """``PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}``.

        :returns: a Deferred firing with ``{}``.
        """
        return self.put_json(destination, _path("/_matrix/federation/v2/send_leave/%s/%s", room_id, event_id), event)

    def make_knock(self, destination: str, room_id: str, user_id: str, supported_versions):
        """``GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=...``.

        :returns: a Deferred firing with ``{"room_version", "event"}``.
        """
        return self.get_json(
            destination,
            _path("/_matrix/federation/v1/make_knock/%s/%s", room_id, user_id),
            {"ver": list(supported_versions)},
        )

    def send_knock(self, destination: str, room_id: str, event_id: str, event: dict):
        """``PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}``.

        :returns: a Deferred firing with ``{"knock_room_state": [...]}``.
        """
        return self.put_json(destination, _path("/_matrix/federation/v1/send_knock/%s/%s", room_id, event_id), event)

    def send_invite(self, destination: str, room_id: str, event_id: str, event: dict, room_version: str,
                    invite_room_state=()):
        """``PUT /_matrix/federation/v2/invite/{roomId}/{eventId}``.

        :param room_version: the room version identifier.
        :param invite_room_state: stripped state events to show the invitee.
        :returns: a Deferred firing with ``{"event": <the event with the invitee server's signature>}``.
        """
        body = {"room_version": room_version, "event": event, "invite_room_state": list(invite_room_state)}
        return self.put_json(destination, _path("/_matrix/federation/v2/invite/%s/%s", room_id, event_id), body)

    def get_event(self, destination: str, event_id: str):
        """``GET /_matrix/federation/v1/event/{eventId}``.

        :returns: a Deferred firing with ``{"origin", "origin_server_ts", "pdus": [event]}``.
        """
        return self.get_json(destination, _path("/_matrix/federation/v1/event/%s", event_id))

    def get_state(self, destination: str, room_id: str, event_id: str):
        """``GET /_matrix/federation/v1/state/{roomId}?event_id=`` (the state before the event).

        :returns: a Deferred firing with ``{"auth_chain", "pdus"}``.
        """
        return self.get_json(destination, _path("/_matrix/federation/v1/state/%s", room_id), {"event_id": event_id})

    def get_state_ids(self, destination: str, room_id: str, event_id: str):
        """``GET /_matrix/federation/v1/state_ids/{roomId}?event_id=``.

        :returns: a Deferred firing with ``{"auth_chain_ids", "pdu_ids"}``.
        """
        return self.get_json(
            destination, _path("/_matrix/federation/v1/state_ids/%s", room_id), {"event_id": event_id}
        )

    def get_event_auth(self, destination: str, room_id: str, event_id: str):
        """``GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}``.

        :returns: a Deferred firing with ``{"auth_chain"}``.
        """
        return self.get_json(destination, _path("/_matrix/federation/v1/event_auth/%s/%s", room_id, event_id))

    def backfill(self, destination: str, room_id: str, event_ids, limit: int):
        """``GET /_matrix/federation/v1/backfill/{roomId}?v=...&limit=``.

        :returns: a Deferred firing with ``{"origin", "origin_server_ts", "pdus"}``.
        """
        return self.get_json(
            destination,
            _path("/_matrix/federation/v1/backfill/%s", room_id),
            {"v": list(event_ids), "limit": str(limit)},
        )

    def get_missing_events(self, destination: str, room_id: str, earliest_events, latest_events,
                           limit: int = 10, min_depth: int = 0):
        """``POST /_matrix/federation/v1/get_missing_events/{roomId}``.

        :returns: a Deferred firing with ``{"events"}``.
        """
        body = {
            "earliest_events": list(earliest_events),
            "latest_events": list(latest_events),
            "limit": limit,
            "min_depth": min_depth,
        }
        return self.post_json(destination, _path("/_matrix/federation/v1/get_missing_events/%s", room_id), body)

    def query_directory(self, destination: str, alias: str):
        """``GET /_matrix/federation/v1/query/directory?room_alias=``.

        :returns: a Deferred firing with ``{"room_id", "servers"}``.
        """
        return self.get_json(destination, "/_matrix/federation/v1/query/directory", {"room_alias": alias})

    def query_profile(self, destination: str, user_id: str, field=None):
        """``GET /_matrix/federation/v1/query/profile?user_id=&field=``.

        :param field: ``"displayname"``, ``"avatar_url"``..., or ``None`` for the whole profile.
        :returns: a Deferred firing with the profile object.
        """
        args = {"user_id": user_id}
        if field is not None:
            args["field"] = field
        return self.get_json(destination, "/_matrix/federation/v1/query/profile", args)

    def get_public_rooms(self, destination: str, limit=None, since=None, search_filter=None,
                         include_all_networks: bool = False, third_party_instance_id=None):
        """The remote room directory: ``GET``, or ``POST`` when a ``search_filter`` is given.

        :returns: a Deferred firing with ``{"chunk", "next_batch", "prev_batch", "total_room_count_estimate"}``.
        """
        path = "/_matrix/federation/v1/publicRooms"
        if search_filter is None:
            args = {}
            if limit is not None:
                args["limit"] = str(limit)
            if since is not None:
                args["since"] = since
            if include_all_networks:
                args["include_all_networks"] = "true"
            if third_party_instance_id is not None:
                args["third_party_instance_id"] = third_party_instance_id
            return self.get_json(destination, path, args or None)
        body = {"filter": search_filter, "include_all_networks": include_all_networks}
        if limit is not None:
            body["limit"] = limit
        if since is not None:
            body["since"] = since
        if third_party_instance_id is not None:
            body["third_party_instance_id"] = third_party_instance_id
        return self.post_json(destination, path, body)

    def get_server_keys(self, destination: str):
        """``GET /_matrix/key/v2/server`` (unauthenticated): the server's own signed keys.

        :returns: a Deferred firing with the key response (not yet verified).
        """
        return self._request(_Call("GET", destination, "/_matrix/key/v2/server", sign=False))

    def query_server_keys(self, notary: str, server_keys: dict):
        """``POST /_matrix/key/v2/query`` (unauthenticated) to a notary.

        :param server_keys: ``{server_name: {key_id: {"minimum_valid_until_ts": ms}}}``.
        :returns: a Deferred firing with ``{"server_keys": [key responses]}`` (not yet verified).
        """
        return self._request(
            _Call("POST", notary, "/_matrix/key/v2/query", body={"server_keys": server_keys}, sign=False)
        )


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body written in one go (no cooperator, so no global reactor)."""

    def __init__(self, data: bytes):
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self._data)
        return defer.succeed(None)

    def stopProducing(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class _Discard:
    """A body protocol that drops a response we will not read."""

    def makeConnection(self, transport):
        transport.stopProducing()

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass
