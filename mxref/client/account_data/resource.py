"""HTTP endpoints for account data: ``GET``/``PUT /user/{userId}/account_data/{type}`` and
``GET``/``PUT /user/{userId}/rooms/{roomId}/account_data/{type}``.

Spec: Client-Server API, "Client config"
(https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3useruseridaccount_datatype).
"""

from mxref.http.request import parse_json_object
from mxref.http.resource import client_paths


class AccountDataResource:
    """The account data endpoints.

    :param account_data: an :class:`~mxref.client.account_data.service.AccountDataService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, account_data, authenticator):
        self._account_data = account_data
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        global_path = client_paths("/user/{userId}/account_data/{type}")
        room_path = client_paths("/user/{userId}/rooms/{roomId}/account_data/{type}")
        resource.register("GET", global_path, self.get_global)
        resource.register("PUT", global_path, self.put_global)
        resource.register("GET", room_path, self.get_room)
        resource.register("PUT", room_path, self.put_room)

    async def get_global(self, request, user_id, type):
        """``GET /user/{userId}/account_data/{type}``."""
        requester = await self._authenticator.authenticate(request)
        return 200, await self._account_data.get_account_data(requester, user_id, None, type)

    async def put_global(self, request, user_id, type):
        """``PUT /user/{userId}/account_data/{type}``: replace the content."""
        requester = await self._authenticator.authenticate(request)
        content = parse_json_object(request)
        await self._account_data.set_account_data(requester, user_id, None, type, content)
        return 200, {}

    async def get_room(self, request, user_id, room_id, type):
        """``GET /user/{userId}/rooms/{roomId}/account_data/{type}``."""
        requester = await self._authenticator.authenticate(request)
        return 200, await self._account_data.get_account_data(requester, user_id, room_id, type)

    async def put_room(self, request, user_id, room_id, type):
        """``PUT /user/{userId}/rooms/{roomId}/account_data/{type}``: replace the content."""
        requester = await self._authenticator.authenticate(request)
        content = parse_json_object(request)
        await self._account_data.set_account_data(requester, user_id, room_id, type, content)
        return 200, {}
