"""HTTP endpoints for presence.

Spec (v1.19), Client-Server API, "Presence": ``PUT /_matrix/client/v3/presence/{userId}/status``
(body ``presence``: ``online``, ``offline`` or ``unavailable``, required; ``status_msg``: a
string, optional) answers ``{}``; ``GET`` of the same path answers ``presence`` with
``last_active_ago``, ``currently_active`` and ``status_msg`` when known.
"""

from mxref.client.presence.tracker import PRESENCE_STATES
from mxref.errors import MatrixError
from mxref.http.request import parse_json_object, require_fields
from mxref.http.resource import client_paths


class PresenceResource:
    """``PUT``/``GET /presence/{userId}/status``.

    :param presence: a :class:`~mxref.client.presence.service.PresenceService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, presence, authenticator):
        self._presence = presence
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("PUT", client_paths("/presence/{userId}/status"), self.put_status)
        resource.register("GET", client_paths("/presence/{userId}/status"), self.get_status)

    async def put_status(self, request, user_id):
        """``PUT /presence/{userId}/status`` with ``{presence, status_msg?}``."""
        requester = await self._authenticator.authenticate(request)
        body = require_fields(parse_json_object(request), {"presence": str})
        if body["presence"] not in PRESENCE_STATES:
            raise MatrixError(400, "M_INVALID_PARAM", f"presence must be one of {', '.join(PRESENCE_STATES)}")
        status_msg = body.get("status_msg")
        if status_msg is not None and not isinstance(status_msg, str):
            raise MatrixError(400, "M_BAD_JSON", "status_msg must be a string")
        await self._presence.set_presence(requester, user_id, body["presence"], status_msg)
        return 200, {}

    async def get_status(self, request, user_id):
        """``GET /presence/{userId}/status``."""
        requester = await self._authenticator.authenticate(request)
        return 200, await self._presence.get_presence(requester, user_id)
