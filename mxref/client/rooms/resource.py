"""HTTP endpoints for rooms: each parses and type-checks the request, authenticates it, calls
one :mod:`mxref.client.rooms.service` method and answers JSON.

Every class registers its routes on a :class:`~mxref.http.resource.JsonResource` with
:meth:`register_routes`, under ``/_matrix/client/v3`` and the legacy ``/_matrix/client/r0``.

Spec (v1.19), Client-Server API: ``POST /createRoom``; ``POST /join/{roomIdOrAlias}``
(``via``, and the deprecated ``server_name``), ``POST /rooms/{roomId}/join``, ``/invite``
(the third-party form is not supported: 400 ``M_UNRECOGNIZED``), ``/leave``, ``/forget``,
``/kick``, ``/ban``, ``/unban``; ``PUT /rooms/{roomId}/send/{eventType}/{txnId}``, ``PUT``
and ``GET /rooms/{roomId}/state/{eventType}/{stateKey}`` (``format=content|event``), ``GET
/rooms/{roomId}/state``, ``PUT /rooms/{roomId}/redact/{eventId}/{txnId}``, ``GET
/rooms/{roomId}/event/{eventId}``, ``GET /rooms/{roomId}/members``, ``GET
/rooms/{roomId}/joined_members``, ``GET /joined_rooms``, ``GET /rooms/{roomId}/messages``,
``GET /rooms/{roomId}/context/{eventId}``. Bodies of the wrong shape get 400 ``M_BAD_JSON``
("API Standards"), missing fields 400 ``M_MISSING_PARAM``.
"""

from mxref.client.rooms.event_filter import parse_room_event_filter
from mxref.errors import MatrixError
from mxref.http.request import (
    parse_integer,
    parse_json_from_query,
    parse_json_object,
    parse_string,
    parse_strings,
    require_fields,
)
from mxref.http.resource import client_paths
from mxref.types import RoomID, UserID

#: ``/messages`` gives this many events when the request names no ``limit``.
DEFAULT_MESSAGES_LIMIT = 10

#: ``/context`` gives this many events around the event when the request names no ``limit``.
DEFAULT_CONTEXT_LIMIT = 10

MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


def _bad_type(name, kind):
    return MatrixError(400, "M_BAD_JSON", f"Parameter {name} must be {kind}")


def _optional(body, name, kind, description):
    """``body[name]`` if present and not ``null``, checked with ``isinstance(value, kind)``."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise _bad_type(name, description)
    if not isinstance(value, kind):
        raise _bad_type(name, description)
    return value


def _optional_reason(body):
    return _optional(body, "reason", str, "a string")


def _check_room_id(room_id):
    RoomID.parse(room_id)
    return room_id


def _check_user_id(user_id, name="user_id"):
    try:
        UserID.parse(user_id)
    except MatrixError:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"Parameter {name} is not a valid user ID: {user_id!r}"
        ) from None
    return user_id


def _check_event_type(event_type):
    if not event_type:
        raise MatrixError(400, "M_INVALID_PARAM", "The event type must not be empty")
    return event_type


def parse_create_room_body(body):
    """Type-check a ``POST /createRoom`` body into keyword arguments for
    :meth:`~mxref.rooms.room_creation.RoomCreator.create_room`. Not a Deferred.

    :raises MatrixError: 400 ``M_BAD_JSON`` for a field of the wrong type, 400
        ``M_INVALID_PARAM`` for a value outside the allowed set, 400 ``M_UNRECOGNIZED``
        for third-party invites (not supported).
    """
    options = {}
    visibility = _optional(body, "visibility", str, "a string")
    if visibility is not None:
        if visibility not in ("public", "private"):
            raise MatrixError(400, "M_INVALID_PARAM", "visibility must be 'public' or 'private'")
        options["visibility"] = visibility
    for name in ("room_alias_name", "name", "topic", "room_version", "preset"):
        value = _optional(body, name, str, "a string")
        if value is not None:
            options[name] = value
    if options.get("preset") not in (None, "private_chat", "trusted_private_chat", "public_chat"):
        raise MatrixError(400, "M_INVALID_PARAM", f"Unknown preset {options['preset']!r}")
    invite = _optional(body, "invite", list, "a list of user IDs")
    if invite is not None:
        if not all(isinstance(user_id, str) for user_id in invite):
            raise _bad_type("invite", "a list of user IDs")
        options["invite"] = [_check_user_id(user_id, "invite") for user_id in invite]
    invite_3pid = _optional(body, "invite_3pid", list, "a list")
    if invite_3pid:
        raise MatrixError(
            400, "M_UNRECOGNIZED", "Third-party invites (invite_3pid) are not supported"
        )
    for name in ("creation_content", "power_level_content_override"):
        value = _optional(body, name, dict, "an object")
        if value is not None:
            options[name] = value
    initial_state = _optional(body, "initial_state", list, "a list of state events")
    if initial_state is not None:
        for entry in initial_state:
            if not isinstance(entry, dict):
                raise _bad_type("initial_state", "a list of objects")
            if not isinstance(entry.get("type"), str) or not entry["type"]:
                raise _bad_type("initial_state[].type", "a non-empty string")
            if entry["type"] == "m.room.create":
                raise MatrixError(
                    400,
                    "M_INVALID_PARAM",
                    "initial_state cannot hold m.room.create: use creation_content",
                )
            if not isinstance(entry.get("state_key", ""), str):
                raise _bad_type("initial_state[].state_key", "a string")
            if not isinstance(entry.get("content"), dict):
                raise _bad_type("initial_state[].content", "an object")
        options["initial_state"] = initial_state
    is_direct = _optional(body, "is_direct", bool, "a boolean")
    if is_direct is not None:
        options["is_direct"] = is_direct
    return options


class RoomResource:
    """Creating rooms, membership, sending events and redactions.

    :param actions: a :class:`~mxref.client.rooms.service.RoomActions`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, actions, authenticator):
        self._actions = actions
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("POST", client_paths("/createRoom"), self.post_create_room)
        resource.register(
            "POST", client_paths("/join/{roomIdOrAlias}"), self.post_join_by_id_or_alias
        )
        resource.register("POST", client_paths("/rooms/{roomId}/join"), self.post_join)
        resource.register("POST", client_paths("/rooms/{roomId}/invite"), self.post_invite)
        resource.register("POST", client_paths("/rooms/{roomId}/leave"), self.post_leave)
        resource.register("POST", client_paths("/rooms/{roomId}/forget"), self.post_forget)
        resource.register("POST", client_paths("/rooms/{roomId}/kick"), self.post_kick)
        resource.register("POST", client_paths("/rooms/{roomId}/ban"), self.post_ban)
        resource.register("POST", client_paths("/rooms/{roomId}/unban"), self.post_unban)
        resource.register(
            "PUT", client_paths("/rooms/{roomId}/send/{eventType}/{txnId}"), self.put_send
        )
        resource.register(
            "PUT", client_paths("/rooms/{roomId}/state/{eventType}/{stateKey}"), self.put_state
        )
        resource.register("PUT", client_paths("/rooms/{roomId}/state/{eventType}"), self.put_state)
        resource.register(
            "PUT", client_paths("/rooms/{roomId}/redact/{eventId}/{txnId}"), self.put_redact
        )

    async def post_create_room(self, request):
        """``POST /createRoom``: ``{room_id}``."""
        requester = await self._authenticator.authenticate(request)
        options = parse_create_room_body(parse_json_object(request))
        return 200, {"room_id": await self._actions.create_room(requester, options)}

    async def post_join_by_id_or_alias(self, request, room_id_or_alias):
        """``POST /join/{roomIdOrAlias}?via=...``: ``{room_id}``."""
        requester = await self._authenticator.authenticate(request)
        if not room_id_or_alias.startswith(("!", "#")):
            raise MatrixError(
                400, "M_INVALID_PARAM", f"{room_id_or_alias!r} is not a room ID or alias"
            )
        if room_id_or_alias.startswith("!"):
            _check_room_id(room_id_or_alias)
        servers = parse_strings(request, "via") + parse_strings(request, "server_name")
        body = parse_json_object(request, allow_empty_body=True)
        room_id = await self._actions.join(
            requester, room_id_or_alias, servers, _optional_reason(body)
        )
        return 200, {"room_id": room_id}

    async def post_join(self, request, room_id):
        """``POST /rooms/{roomId}/join``: ``{room_id}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request, allow_empty_body=True)
        joined = await self._actions.join(requester, room_id, (), _optional_reason(body))
        return 200, {"room_id": joined}

    async def post_invite(self, request, room_id):
        """``POST /rooms/{roomId}/invite`` with ``{user_id, reason?}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request)
        if "user_id" not in body and {"id_server", "medium", "address"} & set(body):
            raise MatrixError(400, "M_UNRECOGNIZED", "Third-party invites are not supported")
        require_fields(body, {"user_id": str})
        user_id = _check_user_id(body["user_id"])
        await self._actions.invite(requester, room_id, user_id, _optional_reason(body))
        return 200, {}

    async def post_leave(self, request, room_id):
        """``POST /rooms/{roomId}/leave`` with an optional ``reason``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request, allow_empty_body=True)
        await self._actions.leave(requester, room_id, _optional_reason(body))
        return 200, {}

    async def post_forget(self, request, room_id):
        """``POST /rooms/{roomId}/forget``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        parse_json_object(request, allow_empty_body=True)
        await self._actions.forget(requester, room_id)
        return 200, {}

    async def _membership_of_other(self, request, room_id, action):
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request)
        require_fields(body, {"user_id": str})
        user_id = _check_user_id(body["user_id"])
        await action(requester, room_id, user_id, _optional_reason(body))
        return 200, {}

    def post_kick(self, request, room_id):
        """``POST /rooms/{roomId}/kick`` with ``{user_id, reason?}``."""
        return self._membership_of_other(request, room_id, self._actions.kick)

    def post_ban(self, request, room_id):
        """``POST /rooms/{roomId}/ban`` with ``{user_id, reason?}``."""
        return self._membership_of_other(request, room_id, self._actions.ban)

    def post_unban(self, request, room_id):
        """``POST /rooms/{roomId}/unban`` with ``{user_id, reason?}``."""
        return self._membership_of_other(request, room_id, self._actions.unban)

    async def put_send(self, request, room_id, event_type, txn_id):
        """``PUT /rooms/{roomId}/send/{eventType}/{txnId}`` with the content: ``{event_id}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        _check_event_type(event_type)
        content = parse_json_object(request)
        event_id = await self._actions.send_message(requester, room_id, event_type, content, txn_id)
        return 200, {"event_id": event_id}

    async def put_state(self, request, room_id, event_type, state_key=""):
        """``PUT /rooms/{roomId}/state/{eventType}/{stateKey}`` with the content: ``{event_id}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        _check_event_type(event_type)
        content = parse_json_object(request)
        event_id = await self._actions.set_state(requester, room_id, event_type, state_key, content)
        return 200, {"event_id": event_id}

    async def put_redact(self, request, room_id, event_id, txn_id):
        """``PUT /rooms/{roomId}/redact/{eventId}/{txnId}`` with an optional ``reason``: ``{event_id}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request, allow_empty_body=True)
        redaction_id = await self._actions.redact(
            requester, room_id, event_id, txn_id, _optional_reason(body)
        )
        return 200, {"event_id": redaction_id}


class RoomReadingResource:
    """Reading rooms: state, events, members, joined rooms, ``/messages`` and ``/context``.

    :param reader: a :class:`~mxref.client.rooms.service.RoomReader`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, reader, authenticator):
        self._reader = reader
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", client_paths("/rooms/{roomId}/state"), self.get_state)
        resource.register(
            "GET",
            client_paths("/rooms/{roomId}/state/{eventType}/{stateKey}"),
            self.get_state_event,
        )
        resource.register(
            "GET", client_paths("/rooms/{roomId}/state/{eventType}"), self.get_state_event
        )
        resource.register("GET", client_paths("/rooms/{roomId}/event/{eventId}"), self.get_event)
        resource.register("GET", client_paths("/rooms/{roomId}/members"), self.get_members)
        resource.register(
            "GET", client_paths("/rooms/{roomId}/joined_members"), self.get_joined_members
        )
        resource.register("GET", client_paths("/joined_rooms"), self.get_joined_rooms)
        resource.register("GET", client_paths("/rooms/{roomId}/messages"), self.get_messages)
        resource.register(
            "GET", client_paths("/rooms/{roomId}/context/{eventId}"), self.get_context
        )

    async def get_state(self, request, room_id):
        """``GET /rooms/{roomId}/state``: a list of state events."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        return 200, await self._reader.get_state(requester, room_id)

    async def get_state_event(self, request, room_id, event_type, state_key=""):
        """``GET /rooms/{roomId}/state/{eventType}/{stateKey}?format=content|event``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        event_format = parse_string(
            request, "format", default="content", allowed={"content", "event"}
        )
        return 200, await self._reader.get_state_event(
            requester, room_id, event_type, state_key, event_format
        )

    async def get_event(self, request, room_id, event_id):
        """``GET /rooms/{roomId}/event/{eventId}``: one client event."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        return 200, await self._reader.get_event(requester, room_id, event_id)

    async def get_members(self, request, room_id):
        """``GET /rooms/{roomId}/members?at=&membership=&not_membership=``: ``{chunk}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        at = parse_string(request, "at")
        membership = parse_string(request, "membership", allowed=MEMBERSHIPS)
        not_membership = parse_string(request, "not_membership", allowed=MEMBERSHIPS)
        chunk = await self._reader.get_members(requester, room_id, at, membership, not_membership)
        return 200, {"chunk": chunk}

    async def get_joined_members(self, request, room_id):
        """``GET /rooms/{roomId}/joined_members``: ``{joined}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        return 200, {"joined": await self._reader.get_joined_members(requester, room_id)}

    async def get_joined_rooms(self, request):
        """``GET /joined_rooms``: ``{joined_rooms}``."""
        requester = await self._authenticator.authenticate(request)
        return 200, {"joined_rooms": await self._reader.joined_rooms(requester)}

    async def get_messages(self, request, room_id):
        """``GET /rooms/{roomId}/messages?dir=b|f&from=&to=&limit=&filter=``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        direction = parse_string(request, "dir", required=True, allowed={"b", "f"})
        from_token = parse_string(request, "from")
        to_token = parse_string(request, "to")
        limit = parse_integer(request, "limit", default=DEFAULT_MESSAGES_LIMIT, minimum=0)
        event_filter = parse_room_event_filter(parse_json_from_query(request, "filter"))
        return 200, await self._reader.get_messages(
            requester, room_id, from_token, to_token, direction, limit, event_filter
        )

    async def get_context(self, request, room_id, event_id):
        """``GET /rooms/{roomId}/context/{eventId}?limit=&filter=``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        limit = parse_integer(request, "limit", default=DEFAULT_CONTEXT_LIMIT, minimum=0)
        event_filter = parse_room_event_filter(parse_json_from_query(request, "filter"))
        return 200, await self._reader.get_context(
            requester, room_id, event_id, limit, event_filter
        )
