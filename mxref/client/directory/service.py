"""Room aliases and the published room directory for local users.

Spec (v1.19), Client-Server API:

* "Room aliases" and ``PUT``/``GET``/``DELETE /directory/room/{roomAlias}``: an alias can
  only be created on its own server (400 ``M_INVALID_PARAM`` otherwise, the response the spec
  gives for an invalid alias) and only once (409 ``M_UNKNOWN``); looking up an alias of
  another server asks that server (Server-Server API ``query/directory``, through
  :class:`~mxref.rooms.interfaces.IRemoteRooms`); "Servers may choose to implement
  additional access control checks here, such as restricting which users can delete which
  aliases": here the alias's creator, or a member with the power to send
  ``m.room.canonical_alias``, may delete it, and only members of a room may point aliases at
  it. ``GET /rooms/{roomId}/aliases``: for members of the room, or anyone if it is
  ``world_readable`` (403 otherwise).
* "Listing rooms": ``GET``/``PUT /directory/list/room/{roomId}`` (404 ``M_NOT_FOUND`` for a
  room the server does not know; publishing needs the power to send
  ``m.room.canonical_alias``, as other servers require) and ``GET``/``POST /publicRooms``
  (``limit``, ``since``, ``filter.generic_search_term``, ``filter.room_types`` with ``null``
  for rooms without a type; the ``PublishedRoomsChunk`` fields).
"""

from twisted.logger import Logger

from mxref.errors import InvalidIdentifier, MatrixError
from mxref.events.authrules import get_power_level_value, get_user_power_level
from mxref.rooms.state import with_event_id
from mxref.types import RoomAlias, ServerName

POWER_LEVELS_KEY = ("m.room.power_levels", "")
CREATE_KEY = ("m.room.create", "")
HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")

#: The most rooms one ``/publicRooms`` page holds, whatever ``limit`` asks for.
MAX_PUBLIC_ROOMS_LIMIT = 1000

#: ``next_batch``/``prev_batch`` tokens of ``/publicRooms`` are this prefix and an offset.
PUBLIC_ROOMS_TOKEN_PREFIX = "p"


def parse_public_rooms_token(token):
    """The offset in a ``/publicRooms`` ``since`` token. Not a Deferred.

    :raises MatrixError: 400 ``M_INVALID_PARAM`` for a token we did not hand out.
    """
    if token is None:
        return 0
    digits = (
        token[len(PUBLIC_ROOMS_TOKEN_PREFIX) :]
        if token.startswith(PUBLIC_ROOMS_TOKEN_PREFIX)
        else ""
    )
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid since token {token!r}")
    return int(digits)


def _token(offset):
    return None if offset is None else f"{PUBLIC_ROOMS_TOKEN_PREFIX}{offset}"


def public_room_entry(stats):
    """The ``PublishedRoomsChunk`` for a :class:`~mxref.storage.records.RoomStats`. Not a Deferred."""
    entry = {
        "room_id": stats.room_id,
        "num_joined_members": stats.joined_members,
        "world_readable": stats.history_visibility == "world_readable",
        "guest_can_join": stats.guest_access == "can_join",
        "join_rule": stats.join_rule if isinstance(stats.join_rule, str) else "invite",
    }
    for name in ("name", "topic", "avatar_url", "canonical_alias", "room_type"):
        value = getattr(stats, name)
        if isinstance(value, str):
            entry[name] = value
    return entry


class RoomDirectory:
    """Aliases and the public room list.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param membership: a :class:`~mxref.rooms.membership.MembershipUpdater` (resolves aliases
        of other servers through its :class:`~mxref.rooms.interfaces.IRemoteRooms`).
    :param server_name: our server name.
    """

    log = Logger()

    def __init__(self, events, rooms, membership, server_name, remote_directory=None):
        """:param remote_directory: lists other servers' directories: an object with
        ``public_rooms(server, limit, since, search, room_types)`` returning a Deferred
        (:class:`mxref.federation.remote_directory.RemoteDirectory`), or ``None``."""
        self._events = events
        self._rooms = rooms
        self._membership = membership
        self._server_name = server_name
        self._remote_directory = remote_directory

    def _parse_alias(self, alias, must_be_local):
        parsed = RoomAlias.parse(alias)
        if must_be_local and parsed.server_name != self._server_name:
            raise MatrixError(400, "M_INVALID_PARAM", f"Room alias {alias} is not on this server")
        return str(parsed)

    async def _is_joined(self, user_id, room_id):
        members = await self._rooms.get_members(room_id, membership="join")
        return user_id in members

    async def _may_send_state(self, user_id, room_id, event_type):
        """Whether ``user_id`` is joined and has the power to send the state event type."""
        if not await self._is_joined(user_id, room_id):
            return False
        version = await self._rooms.get_room_version(room_id)
        state = await self._events.get_current_state(room_id, types=[POWER_LEVELS_KEY, CREATE_KEY])
        auth_state = {key: with_event_id(event) for key, event in state.items()}
        power_levels = auth_state.get(POWER_LEVELS_KEY)
        if power_levels is None:
            needed = 0
        else:
            content = power_levels.get("content", {})
            state_default = get_power_level_value(content, "state_default", 50, version)
            needed = get_power_level_value(
                content.get("events"), event_type, state_default, version
            )
        return get_user_power_level(user_id, auth_state, version) >= needed

    async def create_alias(self, requester, alias, room_id):
        """Point a new local alias at a room the user is joined to.

        :raises MatrixError: 400 ``M_INVALID_PARAM`` for a bad or non-local alias, 404
            ``M_NOT_FOUND`` for an unknown room, 403 ``M_FORBIDDEN`` if the user is not in the
            room, 409 ``M_UNKNOWN`` if the alias exists.
        """
        alias = self._parse_alias(alias, must_be_local=True)
        if await self._rooms.get_room_version(room_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        if not await self._is_joined(requester.user_id, room_id):
            raise MatrixError(
                403, "M_FORBIDDEN", "You must be in the room to create an alias for it"
            )
        if not await self._rooms.create_alias(
            alias, room_id, requester.user_id, [self._server_name]
        ):
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")
        self.log.info(
            "{user_id} created alias {alias} for {room_id}",
            user_id=requester.user_id,
            alias=alias,
            room_id=room_id,
        )

    async def resolve_alias(self, alias):
        """The room an alias names and servers to join it through.

        :raises MatrixError: 400 ``M_INVALID_PARAM`` for a malformed alias, 404 ``M_NOT_FOUND``.
        :returns: (coroutine) ``{"room_id": ..., "servers": [...]}``.
        """
        alias = self._parse_alias(alias, must_be_local=False)
        room_id, servers = await self._membership.resolve_room(alias)
        return {"room_id": room_id, "servers": list(servers)}

    async def delete_alias(self, requester, alias):
        """Remove a local alias (its creator, or a member with power over the canonical alias).

        :raises MatrixError: 404 ``M_NOT_FOUND`` for an unknown alias, 403 ``M_FORBIDDEN``.
        """
        alias = self._parse_alias(alias, must_be_local=True)
        record = await self._rooms.get_alias(alias)
        if record is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        if record.creator != requester.user_id and not await self._may_send_state(
            requester.user_id, record.room_id, "m.room.canonical_alias"
        ):
            raise MatrixError(403, "M_FORBIDDEN", "You may not delete this alias")
        await self._rooms.delete_alias(alias)
        self.log.info("{user_id} deleted alias {alias}", user_id=requester.user_id, alias=alias)

    async def aliases_of_room(self, requester, room_id):
        """The room's local aliases, for members (or anyone in a world-readable room).

        :raises MatrixError: 403 ``M_FORBIDDEN`` otherwise (unknown rooms included).
        :returns: (coroutine) a list of aliases.
        """
        if await self._rooms.get_room_version(room_id) is None or not (
            await self._is_joined(requester.user_id, room_id)
            or await self._is_world_readable(room_id)
        ):
            raise MatrixError(403, "M_FORBIDDEN", "You are not in the room")
        return await self._rooms.get_aliases_for_room(room_id)

    async def _is_world_readable(self, room_id):
        state = await self._events.get_current_state(room_id, types=[HISTORY_VISIBILITY_KEY])
        event = state.get(HISTORY_VISIBILITY_KEY)
        return (
            event is not None
            and event.pdu.get("content", {}).get("history_visibility") == "world_readable"
        )

    async def get_visibility(self, room_id):
        """``"public"`` or ``"private"``. :raises MatrixError: 404 for an unknown room."""
        room = await self._rooms.get_room(room_id)
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        return "public" if room.is_public else "private"

    async def set_visibility(self, requester, room_id, visibility):
        """Publish a room in, or withdraw it from, the directory.

        :raises MatrixError: 404 for an unknown room, 403 without the power to send
            ``m.room.canonical_alias``.
        """
        if await self._rooms.get_room(room_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        if not await self._may_send_state(requester.user_id, room_id, "m.room.canonical_alias"):
            raise MatrixError(
                403, "M_FORBIDDEN", "You may not change this room's directory visibility"
            )
        await self._rooms.set_room_is_public(room_id, visibility == "public")

    async def remote_public_rooms(self, server, limit=None, since=None, search=None, room_types=None):
        """A page of another server's published room directory (the Client-Server API's
        ``server`` parameter), through the injected remote directory.

        :returns: (coroutine) ``{chunk, next_batch?, prev_batch?, total_room_count_estimate}``.
        :raises MatrixError: 400 for an invalid server name or when this server cannot ask
            others; otherwise what the remote directory raises.
        """
        try:
            ServerName.parse(server)
        except InvalidIdentifier:
            raise MatrixError(400, "M_INVALID_PARAM", f"{server!r} is not a server name") from None
        if self._remote_directory is None:
            raise MatrixError(400, "M_INVALID_PARAM", "Only this server's room directory can be listed")
        return await self._remote_directory.public_rooms(server, limit, since, search, room_types)

    async def public_rooms(self, limit=None, since=None, search=None, room_types=None):
        """A page of the local published room directory.

        :param limit: the most rooms (at most :data:`MAX_PUBLIC_ROOMS_LIMIT`).
        :param since: a ``next_batch``/``prev_batch`` token, or ``None``.
        :param search: the ``generic_search_term``, or ``None``.
        :param room_types: the room types wanted (``None`` in the list for untyped rooms), or
            ``None`` for all.
        :returns: (coroutine) ``{chunk, next_batch?, prev_batch?, total_room_count_estimate}``.
        """
        offset = parse_public_rooms_token(since)
        limit = MAX_PUBLIC_ROOMS_LIMIT if limit is None else min(limit, MAX_PUBLIC_ROOMS_LIMIT)
        if room_types is None:
            page = await self._rooms.get_public_rooms(
                limit=limit, since=offset, search=search or None
            )
            rooms, next_offset, prev_offset, total = (
                page.rooms,
                page.next_offset,
                page.prev_offset,
                page.total,
            )
        else:
            everything = await self._rooms.get_public_rooms(search=search or None)
            matching = [room for room in everything.rooms if room.room_type in room_types]
            total = len(matching)
            end = total if limit is None else offset + limit
            rooms = matching[offset:end]
            next_offset = end if end < total else None
            prev_offset = max(0, offset - (limit or offset)) if offset > 0 else None
        response = {
            "chunk": [public_room_entry(room) for room in rooms],
            "total_room_count_estimate": total,
        }
        if next_offset is not None:
            response["next_batch"] = _token(next_offset)
        if prev_offset is not None:
            response["prev_batch"] = _token(prev_offset)
        return response
