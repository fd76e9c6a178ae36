"""The inbound Server-Server API endpoints: each authenticates the request with ``X-Matrix``,
parses it, calls one receiver service and answers JSON.

Spec: Server-Server API v1.19 (https://spec.matrix.org/v1.19/server-server-api/):
``PUT /v1/send/{txnId}``; ``GET /v1/event/{eventId}``, ``/v1/state/{roomId}``,
``/v1/state_ids/{roomId}``, ``/v1/event_auth/{roomId}/{eventId}``, ``/v1/backfill/{roomId}``,
``POST /v1/get_missing_events/{roomId}``; ``GET /v1/make_join``, ``PUT /v2/send_join``,
``GET /v1/make_leave``, ``PUT /v2/send_leave``, ``GET /v1/make_knock``, ``PUT
/v1/send_knock``, ``PUT /v2/invite`` and the legacy ``PUT /v1/invite`` (room versions 1 and
2; its answer is the array ``[200, {"event": ...}]``); ``GET /v1/query/directory``, ``GET
/v1/query/profile``, ``GET``/``POST /v1/publicRooms``. The v1 ``send_join``/``send_leave``
were removed in v1.18 and are not served.
"""

from mxref.errors import MatrixError
from mxref.federation.transport.server import authenticated
from mxref.http.request import (
    parse_boolean,
    parse_integer,
    parse_json_object,
    parse_string,
    parse_strings,
)

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def _string_list(body, name, required=True):
    value = body.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError(400, "M_BAD_JSON", f"'{name}' must be an array of strings")
    return value


def _integer(body, name, default):
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MatrixError(400, "M_BAD_JSON", f"'{name}' must be an integer")
    return value


class TransactionEndpoints:
    """``PUT /send/{txnId}``.

    :param authenticator: a :class:`~mxref.federation.transport.server.FederationRequestAuthenticator`.
    :param transactions: a :class:`~mxref.federation.receiver.transactions.TransactionReceiver`.
    """

    def __init__(self, authenticator, transactions):
        self._authenticator = authenticator
        self._transactions = transactions

    def register_routes(self, resource) -> None:
        """Add the endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register(
            "PUT", f"{V1}/send/{{txnId}}", authenticated(self._authenticator, self.put_send)
        )

    def put_send(self, request, origin, txn_id):
        """Process a transaction of PDUs and EDUs."""
        return self._transactions.on_transaction(origin, txn_id, parse_json_object(request))


class RoomReadEndpoints:
    """``event``, ``state``, ``state_ids``, ``event_auth``, ``backfill``, ``get_missing_events``.

    :param authenticator: a :class:`~mxref.federation.transport.server.FederationRequestAuthenticator`.
    :param reads: a :class:`~mxref.federation.receiver.room_reads.FederationRoomReads`.
    """

    def __init__(self, authenticator, reads):
        self._authenticator = authenticator
        self._reads = reads

    def register_routes(self, resource) -> None:
        """Add the endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        auth = self._authenticator
        resource.register("GET", f"{V1}/event/{{eventId}}", authenticated(auth, self.get_event))
        resource.register("GET", f"{V1}/state/{{roomId}}", authenticated(auth, self.get_state))
        resource.register(
            "GET", f"{V1}/state_ids/{{roomId}}", authenticated(auth, self.get_state_ids)
        )
        resource.register(
            "GET",
            f"{V1}/event_auth/{{roomId}}/{{eventId}}",
            authenticated(auth, self.get_event_auth),
        )
        resource.register(
            "GET", f"{V1}/backfill/{{roomId}}", authenticated(auth, self.get_backfill)
        )
        resource.register(
            "POST",
            f"{V1}/get_missing_events/{{roomId}}",
            authenticated(auth, self.post_get_missing_events),
        )

    async def get_event(self, request, origin, event_id):
        """One event."""
        return 200, await self._reads.get_event(origin, event_id)

    async def get_state(self, request, origin, room_id):
        """The state before an event, as PDUs, with its auth chain."""
        event_id = parse_string(request, "event_id", required=True)
        return 200, await self._reads.get_state(origin, room_id, event_id)

    async def get_state_ids(self, request, origin, room_id):
        """The state before an event, as IDs, with its auth chain's IDs."""
        event_id = parse_string(request, "event_id", required=True)
        return 200, await self._reads.get_state_ids(origin, room_id, event_id)

    async def get_event_auth(self, request, origin, room_id, event_id):
        """An event's full auth chain."""
        return 200, await self._reads.get_event_auth(origin, room_id, event_id)

    async def get_backfill(self, request, origin, room_id):
        """Events before the given ones."""
        event_ids = parse_strings(request, "v")
        if not event_ids:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing query parameter v")
        limit = parse_integer(request, "limit", required=True, minimum=0)
        return 200, await self._reads.backfill(origin, room_id, event_ids, limit)

    async def post_get_missing_events(self, request, origin, room_id):
        """Events between ``earliest_events`` and ``latest_events``."""
        body = parse_json_object(request)
        earliest = _string_list(body, "earliest_events")
        latest = _string_list(body, "latest_events")
        limit = _integer(body, "limit", 10)
        min_depth = _integer(body, "min_depth", 0)
        return 200, await self._reads.get_missing_events(
            origin, room_id, earliest, latest, limit, min_depth
        )


class MembershipEndpoints:
    """``make_join``/``send_join``, ``make_leave``/``send_leave``, ``make_knock``/``send_knock``,
    ``invite`` (v2 and legacy v1).

    :param authenticator: a :class:`~mxref.federation.transport.server.FederationRequestAuthenticator`.
    :param membership: a :class:`~mxref.federation.receiver.membership.ResidentMembership`.
    """

    def __init__(self, authenticator, membership):
        self._authenticator = authenticator
        self._membership = membership

    def register_routes(self, resource) -> None:
        """Add the endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        auth = self._authenticator
        resource.register(
            "GET", f"{V1}/make_join/{{roomId}}/{{userId}}", authenticated(auth, self.get_make_join)
        )
        resource.register(
            "PUT", f"{V2}/send_join/{{roomId}}/{{eventId}}", authenticated(auth, self.put_send_join)
        )
        resource.register(
            "GET",
            f"{V1}/make_leave/{{roomId}}/{{userId}}",
            authenticated(auth, self.get_make_leave),
        )
        resource.register(
            "PUT",
            f"{V2}/send_leave/{{roomId}}/{{eventId}}",
            authenticated(auth, self.put_send_leave),
        )
        resource.register(
            "GET",
            f"{V1}/make_knock/{{roomId}}/{{userId}}",
            authenticated(auth, self.get_make_knock),
        )
        resource.register(
            "PUT",
            f"{V1}/send_knock/{{roomId}}/{{eventId}}",
            authenticated(auth, self.put_send_knock),
        )
        resource.register(
            "PUT", f"{V2}/invite/{{roomId}}/{{eventId}}", authenticated(auth, self.put_invite_v2)
        )
        resource.register(
            "PUT", f"{V1}/invite/{{roomId}}/{{eventId}}", authenticated(auth, self.put_invite_v1)
        )

    async def get_make_join(self, request, origin, room_id, user_id):
        """A join template; ``ver`` lists the room versions the joining server supports."""
        versions = parse_strings(request, "ver", default=["1"])
        return 200, await self._membership.make_membership_event(
            origin, room_id, user_id, "join", versions
        )

    async def put_send_join(self, request, origin, room_id, event_id):
        """Accept a signed join; answer the room's state and auth chain."""
        omit_members = parse_boolean(request, "omit_members", default=False)
        event = parse_json_object(request)
        return 200, await self._membership.send_join(
            origin, room_id, event_id, event, omit_members=omit_members
        )

    async def get_make_leave(self, request, origin, room_id, user_id):
        """A leave template."""
        return 200, await self._membership.make_membership_event(origin, room_id, user_id, "leave")

    async def put_send_leave(self, request, origin, room_id, event_id):
        """Accept a signed leave."""
        return 200, await self._membership.send_leave(
            origin, room_id, event_id, parse_json_object(request)
        )

    async def get_make_knock(self, request, origin, room_id, user_id):
        """A knock template; ``ver`` is required."""
        versions = parse_strings(request, "ver")
        if not versions:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing query parameter ver")
        return 200, await self._membership.make_membership_event(
            origin, room_id, user_id, "knock", versions
        )

    async def put_send_knock(self, request, origin, room_id, event_id):
        """Accept a signed knock; answer the stripped room state."""
        return 200, await self._membership.send_knock(
            origin, room_id, event_id, parse_json_object(request)
        )

    async def put_invite_v2(self, request, origin, room_id, event_id):
        """Countersign an invite of one of our users."""
        body = parse_json_object(request)
        room_version = body.get("room_version")
        if not isinstance(room_version, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing room_version")
        response = await self._membership.on_invite(
            origin,
            room_id,
            event_id,
            room_version,
            body.get("event"),
            body.get("invite_room_state"),
        )
        return 200, response

    async def put_invite_v1(self, request, origin, room_id, event_id):
        """Legacy invite for room versions 1 and 2: the body is the event, the answer
        ``[200, {"event": ...}]``."""
        event = parse_json_object(request)
        unsigned = event.get("unsigned") if isinstance(event.get("unsigned"), dict) else {}
        response = await self._membership.on_invite(
            origin, room_id, event_id, "1", event, unsigned.get("invite_room_state")
        )
        return 200, [200, response]


class QueryEndpoints:
    """``query/directory``, ``query/profile`` and ``publicRooms``.

    :param authenticator: a :class:`~mxref.federation.transport.server.FederationRequestAuthenticator`.
    :param queries: a :class:`~mxref.federation.receiver.queries.FederationQueries`.
    """

    def __init__(self, authenticator, queries):
        self._authenticator = authenticator
        self._queries = queries

    def register_routes(self, resource) -> None:
        """Add the endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        auth = self._authenticator
        resource.register("GET", f"{V1}/query/directory", authenticated(auth, self.get_directory))
        resource.register("GET", f"{V1}/query/profile", authenticated(auth, self.get_profile))
        resource.register("GET", f"{V1}/publicRooms", authenticated(auth, self.get_public_rooms))
        resource.register("POST", f"{V1}/publicRooms", authenticated(auth, self.post_public_rooms))

    async def get_directory(self, request, origin):
        """Resolve one of our aliases."""
        alias = parse_string(request, "room_alias", required=True)
        return 200, await self._queries.query_directory(alias)

    async def get_profile(self, request, origin):
        """One of our users' profile."""
        user_id = parse_string(request, "user_id", required=True)
        field = parse_string(request, "field")
        return 200, await self._queries.query_profile(user_id, field)

    async def get_public_rooms(self, request, origin):
        """Our public room directory."""
        limit = parse_integer(request, "limit", minimum=0)
        since = parse_string(request, "since")
        return 200, await self._queries.public_rooms(limit=limit, since=since)

    async def post_public_rooms(self, request, origin):
        """Our public room directory, filtered."""
        body = parse_json_object(request)
        limit = body.get("limit")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise MatrixError(400, "M_BAD_JSON", "'limit' must be a non-negative integer")
        since = body.get("since")
        if since is not None and not isinstance(since, str):
            raise MatrixError(400, "M_BAD_JSON", "'since' must be a string")
        search = None
        room_types = None
        room_filter = body.get("filter")
        if room_filter is not None:
            if not isinstance(room_filter, dict):
                raise MatrixError(400, "M_BAD_JSON", "'filter' must be an object")
            search = room_filter.get("generic_search_term")
            if search is not None and not isinstance(search, str):
                raise MatrixError(400, "M_BAD_JSON", "'generic_search_term' must be a string")
            room_types = room_filter.get("room_types")
            if room_types is not None and (
                not isinstance(room_types, list)
                or not all(t is None or isinstance(t, str) for t in room_types)
            ):
                raise MatrixError(
                    400, "M_BAD_JSON", "'room_types' must be an array of strings or nulls"
                )
        return 200, await self._queries.public_rooms(
            limit=limit, since=since, search=search, room_types=room_types
        )
