"""HTTP endpoints for filters: ``POST /user/{userId}/filter`` and ``GET /user/{userId}/filter/{filterId}``.

Spec: Client-Server API, "Filtering"
(https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3useruseridfilter).
"""

from mxref.http.request import parse_json_object
from mxref.http.resource import client_paths


class FilterResource:
    """The filter endpoints.

    :param filters: a :class:`~mxref.client.filters.service.FilterService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, filters, authenticator):
        self._filters = filters
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("POST", client_paths("/user/{userId}/filter"), self.post_filter)
        resource.register("GET", client_paths("/user/{userId}/filter/{filterId}"), self.get_filter)

    async def post_filter(self, request, user_id):
        """``POST /user/{userId}/filter``: store a filter, answer ``{filter_id}``."""
        requester = await self._authenticator.authenticate(request)
        body = parse_json_object(request)
        filter_id = await self._filters.create_filter(requester, user_id, body)
        return 200, {"filter_id": filter_id}

    async def get_filter(self, request, user_id, filter_id):
        """``GET /user/{userId}/filter/{filterId}``: the stored definition."""
        requester = await self._authenticator.authenticate(request)
        return 200, await self._filters.get_filter(requester, user_id, filter_id)
