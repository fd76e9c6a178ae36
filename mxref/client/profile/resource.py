"""HTTP endpoints for profiles.

Spec (v1.19), Client-Server API, "Profiles": ``GET /profile/{userId}`` and ``GET``/``PUT``/
``DELETE /profile/{userId}/{keyName}`` (``GET`` needs no access token; ``PUT`` takes an
object holding the ``keyName`` property: missing gives 400 ``M_MISSING_PARAM``).
"""

from mxref.client.profile.service import check_key_name
from mxref.errors import MatrixError
from mxref.http.request import parse_json_object
from mxref.http.resource import client_paths


class ProfileResource:
    """``/profile/{userId}`` and its fields.

    :param profiles: a :class:`~mxref.client.profile.service.ProfileService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, profiles, authenticator):
        self._profiles = profiles
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", client_paths("/profile/{userId}"), self.get_profile)
        resource.register("GET", client_paths("/profile/{userId}/{keyName}"), self.get_field)
        resource.register("PUT", client_paths("/profile/{userId}/{keyName}"), self.put_field)
        resource.register("DELETE", client_paths("/profile/{userId}/{keyName}"), self.delete_field)

    async def get_profile(self, request, user_id):
        """``GET /profile/{userId}``: every field."""
        return 200, await self._profiles.get_profile(user_id)

    async def get_field(self, request, user_id, key_name):
        """``GET /profile/{userId}/{keyName}``: ``{keyName: value}``."""
        return 200, await self._profiles.get_field(user_id, key_name)

    async def put_field(self, request, user_id, key_name):
        """``PUT /profile/{userId}/{keyName}`` with ``{keyName: value}``."""
        requester = await self._authenticator.authenticate(request)
        check_key_name(key_name)
        body = parse_json_object(request)
        if key_name not in body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing parameter: {key_name}")
        await self._profiles.set_field(requester, user_id, key_name, body[key_name])
        return 200, {}

    async def delete_field(self, request, user_id, key_name):
        """``DELETE /profile/{userId}/{keyName}``."""
        requester = await self._authenticator.authenticate(request)
        await self._profiles.delete_field(requester, user_id, key_name)
        return 200, {}
