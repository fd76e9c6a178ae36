"""Other servers' published room directories, asked for over federation.

Spec: Server-Server API, "Public Room Directory" (``GET``/``POST
/_matrix/federation/v1/publicRooms``), used for the Client-Server API's ``GET``/``POST
/publicRooms?server=<other server>``.
"""

from twisted.internet import defer

from mxref.errors import MatrixError
from mxref.federation.transport.client import HttpResponseError, RequestFailed


class RemoteDirectory:
    """Lists the directory of another server for our clients.

    :param client: a :class:`~mxref.federation.transport.client.FederationClient`.
    """

    def __init__(self, client):
        self._client = client

    @defer.inlineCallbacks
    def public_rooms(self, server, limit=None, since=None, search=None, room_types=None):
        """One page of ``server``'s directory, shaped as the Client-Server API answers it.

        :returns: Deferred firing with ``{chunk, next_batch?, prev_batch?, total_room_count_estimate}``.
        :raises MatrixError: 404 ``M_NOT_FOUND`` when the server cannot be reached, its own 4xx
            error (e.g. 403 when it does not publish over federation), 502 when it answers wrongly.
        """
        search_filter = None
        if search is not None or room_types is not None:
            search_filter = {}
            if search is not None:
                search_filter["generic_search_term"] = search
            if room_types is not None:
                search_filter["room_types"] = room_types
        try:
            answer = yield self._client.get_public_rooms(server, limit=limit, since=since, search_filter=search_filter)
        except RequestFailed as e:
            raise MatrixError(404, "M_NOT_FOUND", f"Could not reach {server}: {e.msg}") from None
        except HttpResponseError as e:
            if 400 <= e.code < 500:
                raise MatrixError(e.code, e.errcode, f"{server}: {e.msg}") from None
            raise MatrixError(502, "M_UNKNOWN", f"{server} failed to list its rooms: {e.msg}") from None
        chunk = answer.get("chunk") if isinstance(answer, dict) else None
        if not isinstance(chunk, list):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered without a chunk of rooms")
        rooms = [entry for entry in chunk if isinstance(entry, dict) and isinstance(entry.get("room_id"), str)]
        estimate = answer.get("total_room_count_estimate")
        result = {
            "chunk": rooms,
            "total_room_count_estimate": estimate if isinstance(estimate, int) and not isinstance(estimate, bool) else len(rooms),
        }
        for key in ("next_batch", "prev_batch"):
            if isinstance(answer.get(key), str):
                result[key] = answer[key]
        return result
