"""Queries other servers make about our users, aliases and room directory.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):
``GET /query/directory?room_alias=`` → ``{room_id, servers}`` (404 ``M_NOT_FOUND`` for an
unknown alias); ``GET /query/profile?user_id=&field=`` → the profile, or just ``field`` (404
for an unknown user); ``GET``/``POST /publicRooms`` → our published rooms, in the
Client-Server shape, when ``allow_public_rooms_over_federation`` is set (403 otherwise, as
Synapse answers).
"""

from twisted.internet import defer

from mxref.errors import MatrixError
from mxref.types import RoomAlias, UserID


class FederationQueries:
    """Answers directory, profile and public-room queries from other servers.

    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param accounts: an :class:`~mxref.storage.interfaces.IAccountStore`.
    :param public_rooms: a callable ``(limit, since, search, room_types)`` returning a
        Deferred or coroutine of a ``/publicRooms`` response
        (:meth:`mxref.client.directory.service.RoomDirectory.public_rooms`).
    :param server_name: our server name.
    :param allow_public_rooms: the ``allow_public_rooms_over_federation`` setting.
    """

    def __init__(self, rooms, accounts, public_rooms, server_name, allow_public_rooms):
        self._rooms = rooms
        self._accounts = accounts
        self._public_rooms = public_rooms
        self._server_name = server_name
        self._allow_public_rooms = allow_public_rooms

    @defer.inlineCallbacks
    def query_directory(self, room_alias):
        """Resolve one of our aliases.

        :returns: Deferred firing with ``{room_id, servers}`` (our name first).
        :raises MatrixError: 400 for a malformed alias, 404 ``M_NOT_FOUND``.
        """
        alias = RoomAlias.parse(room_alias)
        record = None
        if alias.server_name == self._server_name:
            record = yield self._rooms.get_alias(str(alias))
        if record is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        hosts = yield self._rooms.get_joined_hosts(record.room_id)
        servers = [self._server_name]
        for server in list(record.servers) + sorted(hosts):
            if server not in servers:
                servers.append(server)
        return {"room_id": record.room_id, "servers": servers}

    @defer.inlineCallbacks
    def query_profile(self, user_id, field=None):
        """One of our users' profile (``displayname``, ``avatar_url``).

        :param field: only this key of the profile, or ``None`` for all.
        :returns: Deferred firing with the profile dict.
        :raises MatrixError: 400 for a malformed user ID, 404 ``M_NOT_FOUND`` for a user we do
            not have.
        """
        parsed = UserID.parse(user_id)
        user = None
        if parsed.server_name == self._server_name:
            user = yield self._accounts.get_user(str(parsed))
        if user is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown user {user_id}")
        profile = yield self._accounts.get_profile(str(parsed))
        fields = {}
        if profile is not None:
            if profile.displayname is not None:
                fields["displayname"] = profile.displayname
            if profile.avatar_url is not None:
                fields["avatar_url"] = profile.avatar_url
        if field is not None:
            return {field: fields[field]} if field in fields else {}
        return fields

    @defer.inlineCallbacks
    def public_rooms(self, limit=None, since=None, search=None, room_types=None):
        """A page of our public room directory.

        :returns: Deferred firing with ``{chunk, next_batch?, prev_batch?, total_room_count_estimate}``.
        :raises MatrixError: 403 ``M_FORBIDDEN`` when the directory is not shared over federation.
        """
        if not self._allow_public_rooms:
            raise MatrixError(403, "M_FORBIDDEN", "This server does not share its room directory")
        response = yield defer.ensureDeferred(
            _as_awaitable(self._public_rooms(limit, since, search, room_types))
        )
        return response


async def _as_awaitable(result):
    if isinstance(result, defer.Deferred):
        return await result
    if hasattr(result, "__await__"):
        return await result
    return result
