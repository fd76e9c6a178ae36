"""HTTP endpoints ``GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}``,
``.../{relType}`` and ``.../{relType}/{eventType}``.

Spec: Client-Server API "Event relationships" (query parameters ``from``, ``to``, ``limit``,
``dir`` (default ``b``) and ``recurse``; 404 when the parent is unknown or not visible).
"""

from mxref.http.request import parse_boolean, parse_integer, parse_string
from mxref.types import RoomID

#: Children per page when the client gives no ``limit``.
DEFAULT_RELATIONS_LIMIT = 5

_BASE = "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}"


class RelationResource:
    """The relations endpoints.

    :param reader: a :class:`~mxref.client.relations.service.RelationReader`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, reader, authenticator):
        self._reader = reader
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add the three routes to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", _BASE, self.get_relations)
        resource.register("GET", _BASE + "/{relType}", self.get_relations)
        resource.register("GET", _BASE + "/{relType}/{eventType}", self.get_relations)

    async def get_relations(self, request, room_id, event_id, rel_type=None, event_type=None):
        """``GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]``."""
        requester = await self._authenticator.authenticate(request)
        RoomID.parse(room_id)
        direction = parse_string(request, "dir", default="b", allowed={"b", "f"})
        limit = parse_integer(request, "limit", default=DEFAULT_RELATIONS_LIMIT, minimum=0)
        response = await self._reader.get_relations(
            requester,
            room_id,
            event_id,
            rel_type=rel_type,
            event_type=event_type,
            from_token=parse_string(request, "from"),
            to_token=parse_string(request, "to"),
            direction=direction,
            limit=limit,
            recurse=parse_boolean(request, "recurse"),
        )
        return 200, response
