"""HTTP endpoints for room aliases and the published room directory.

Spec (v1.19), Client-Server API: ``PUT``/``GET``/``DELETE /directory/room/{roomAlias}``
(``GET`` needs no access token), ``GET /rooms/{roomId}/aliases``, ``GET``/``PUT
/directory/list/room/{roomId}`` (``GET`` needs no access token), ``GET /publicRooms`` (no
access token needed when the server allows it: Synapse's ``allow_public_rooms_without_auth``)
and ``POST /publicRooms`` (authenticated). Another server's directory (``server=``) is asked
for over federation.
"""

from mxref.errors import MatrixError
from mxref.http.request import parse_integer, parse_json_object, parse_string, require_fields
from mxref.http.resource import client_paths
from mxref.types import RoomID


def _check_room_id(room_id):
    RoomID.parse(room_id)
    return room_id


def _bad(name, kind):
    return MatrixError(400, "M_BAD_JSON", f"Parameter {name} must be {kind}")


class DirectoryResource:
    """Aliases, directory visibility and ``/publicRooms``.

    :param directory: a :class:`~mxref.client.directory.service.RoomDirectory`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    :param server_name: our server name (the only directory served).
    :param allow_public_rooms_without_auth: serve ``GET /publicRooms`` without an access token.
    """

    def __init__(
        self, directory, authenticator, server_name, allow_public_rooms_without_auth=False
    ):
        self._directory = directory
        self._authenticator = authenticator
        self._server_name = server_name
        self._public_without_auth = allow_public_rooms_without_auth

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("PUT", client_paths("/directory/room/{roomAlias}"), self.put_alias)
        resource.register("GET", client_paths("/directory/room/{roomAlias}"), self.get_alias)
        resource.register("DELETE", client_paths("/directory/room/{roomAlias}"), self.delete_alias)
        resource.register("GET", client_paths("/rooms/{roomId}/aliases"), self.get_room_aliases)
        resource.register("GET", client_paths("/directory/list/room/{roomId}"), self.get_visibility)
        resource.register("PUT", client_paths("/directory/list/room/{roomId}"), self.put_visibility)
        resource.register("GET", client_paths("/publicRooms"), self.get_public_rooms)
        resource.register("POST", client_paths("/publicRooms"), self.post_public_rooms)

    async def put_alias(self, request, room_alias):
        """``PUT /directory/room/{roomAlias}`` with ``{room_id}``."""
        requester = await self._authenticator.authenticate(request)
        body = require_fields(parse_json_object(request), {"room_id": str})
        await self._directory.create_alias(requester, room_alias, _check_room_id(body["room_id"]))
        return 200, {}

    async def get_alias(self, request, room_alias):
        """``GET /directory/room/{roomAlias}``: ``{room_id, servers}``."""
        return 200, await self._directory.resolve_alias(room_alias)

    async def delete_alias(self, request, room_alias):
        """``DELETE /directory/room/{roomAlias}``."""
        requester = await self._authenticator.authenticate(request)
        await self._directory.delete_alias(requester, room_alias)
        return 200, {}

    async def get_room_aliases(self, request, room_id):
        """``GET /rooms/{roomId}/aliases``: ``{aliases}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        return 200, {"aliases": await self._directory.aliases_of_room(requester, room_id)}

    async def get_visibility(self, request, room_id):
        """``GET /directory/list/room/{roomId}``: ``{visibility}``."""
        _check_room_id(room_id)
        return 200, {"visibility": await self._directory.get_visibility(room_id)}

    async def put_visibility(self, request, room_id):
        """``PUT /directory/list/room/{roomId}`` with ``{visibility: public|private}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request)
        visibility = body.get("visibility", "public")
        if not isinstance(visibility, str):
            raise _bad("visibility", "a string")
        if visibility not in ("public", "private"):
            raise MatrixError(400, "M_INVALID_PARAM", "visibility must be 'public' or 'private'")
        await self._directory.set_visibility(requester, room_id, visibility)
        return 200, {}

    async def get_public_rooms(self, request):
        """``GET /publicRooms?limit=&since=&server=``."""
        if self._public_without_auth:
            await self._authenticator.authenticate_optional(request)
        else:
            await self._authenticator.authenticate(request)
        limit = parse_integer(request, "limit", minimum=0)
        since = parse_string(request, "since")
        server = parse_string(request, "server")
        if server is not None and server != self._server_name:
            return 200, await self._directory.remote_public_rooms(server, limit=limit, since=since)
        return 200, await self._directory.public_rooms(limit=limit, since=since)

    async def post_public_rooms(self, request):
        """``POST /publicRooms?server=`` with ``{limit, since, filter}``."""
        await self._authenticator.authenticate(request)
        server = parse_string(request, "server")
        body = parse_json_object(request)
        limit = body.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise _bad("limit", "an integer")
        if limit is not None and limit < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "limit must not be negative")
        since = body.get("since")
        if since is not None and not isinstance(since, str):
            raise _bad("since", "a string")
        filter_body = body.get("filter")
        if filter_body is None:
            filter_body = {}
        if not isinstance(filter_body, dict):
            raise _bad("filter", "an object")
        search = filter_body.get("generic_search_term")
        if search is not None and not isinstance(search, str):
            raise _bad("filter.generic_search_term", "a string")
        room_types = filter_body.get("room_types")
        if room_types is not None and (
            not isinstance(room_types, list)
            or not all(t is None or isinstance(t, str) for t in room_types)
        ):
            raise _bad("filter.room_types", "a list of strings and nulls")
        for name in ("include_all_networks",):
            if name in body and not isinstance(body[name], bool):
                raise _bad(name, "a boolean")
        if "third_party_instance_id" in body and not isinstance(
            body["third_party_instance_id"], str
        ):
            raise _bad("third_party_instance_id", "a string")
        if body.get("third_party_instance_id") is not None:
            return 200, {"chunk": [], "total_room_count_estimate": 0}
        if server is not None and server != self._server_name:
            return 200, await self._directory.remote_public_rooms(
                server, limit=limit, since=since, search=search, room_types=room_types
            )
        return 200, await self._directory.public_rooms(
            limit=limit, since=since, search=search, room_types=room_types
        )
