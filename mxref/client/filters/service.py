"""Storing, fetching and resolving a user's filters.

Spec: Client-Server API, ``POST /user/{userId}/filter`` (the access token
must be authorised to make requests for ``userId``; the new ``filter_id``
never starts with ``{``), ``GET /user/{userId}/filter/{filterId}`` (404 for
an unknown filter) and ``GET /sync``'s ``filter`` parameter ("The server will
detect whether it is an ID or a JSON object by whether the first character is
a ``{`` open brace").
"""

from twisted.internet import defer

from mxref.errors import MatrixError
from mxref.client.filters.filtering import SyncFilter, validate_filter
from mxref.http.request import decode_json


def check_own_user(requester, user_id) -> None:
    """Refuse a request about another user's data: 403 ``M_FORBIDDEN``."""
    if requester.user_id != user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You cannot access another user's data")


class FilterService:
    """Filters as the Client-Server API sees them.

    :param client_data: an :class:`~mxref.storage.interfaces.IClientDataStore`.
    """

    def __init__(self, client_data):
        self._client_data = client_data

    def create_filter(self, requester, user_id, definition):
        """Validate and store a filter for the requesting user.

        :param requester: the authenticated :class:`~mxref.auth.tokens.Requester`.
        :param user_id: the ``userId`` of the path.
        :param definition: the request body.
        :returns: Deferred firing with the new filter ID.
        :raises MatrixError: 403 ``M_FORBIDDEN`` for another user's ID,
            400 ``M_BAD_JSON`` for a filter of the wrong shape.
        """
        try:
            check_own_user(requester, user_id)
            validate_filter(definition, errcode="M_BAD_JSON")
        except MatrixError:
            return defer.fail()
        return self._client_data.add_filter(user_id, definition)

    @defer.inlineCallbacks
    def get_filter(self, requester, user_id, filter_id):
        """A filter the requesting user stored.

        :returns: Deferred firing with the filter definition.
        :raises MatrixError: 403 ``M_FORBIDDEN`` for another user's ID,
            404 ``M_NOT_FOUND`` for an unknown filter ID.
        """
        check_own_user(requester, user_id)
        definition = yield self._client_data.get_filter(user_id, filter_id)
        if definition is None:
            raise MatrixError(404, "M_NOT_FOUND", "No such filter")
        return definition

    @defer.inlineCallbacks
    def resolve(self, user_id, filter_param):
        """Turn a ``filter`` query parameter into a :class:`SyncFilter`.

        :param filter_param: ``None`` (no filter), inline JSON starting with
            ``{``, or the ID of one of the user's filters.
        :returns: Deferred firing with a :class:`~mxref.client.filters.filtering.SyncFilter`.
        :raises MatrixError: 400 ``M_INVALID_PARAM`` for inline JSON that is
            not a valid filter or an unknown filter ID.
        """
        if filter_param is None:
            return SyncFilter.from_json({})
        if filter_param.startswith("{"):
            try:
                definition = decode_json(filter_param.encode("utf-8"))
            except MatrixError as error:
                raise MatrixError(400, "M_INVALID_PARAM", f"Invalid filter: {error.msg}")
            return SyncFilter.from_json(validate_filter(definition, errcode="M_INVALID_PARAM"))
        definition = yield self._client_data.get_filter(user_id, filter_param)
        if definition is None:
            raise MatrixError(400, "M_INVALID_PARAM", "No such filter")
        return SyncFilter.from_json(validate_filter(definition, errcode="M_INVALID_PARAM"))
