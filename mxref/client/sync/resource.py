"""HTTP endpoint for ``GET /sync`` (v3 and the legacy r0 path).

Spec: Client-Server API, ``GET /_matrix/client/v3/sync``
(https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync):
query parameters ``filter``, ``since``, ``full_state``, ``set_presence``
(``offline``, ``online`` or ``unavailable``: how the sync affects the
user's presence, see :mod:`mxref.client.presence.tracker`), ``timeout`` (milliseconds, default 0) and ``use_state_after``.
"""

from mxref.http.request import parse_boolean, parse_integer, parse_string
from mxref.http.resource import client_paths

#: The longest long-poll honoured, in milliseconds (longer ``timeout`` values are cut to this).
MAX_TIMEOUT_MS = 5 * 60 * 1000


class SyncResource:
    """``GET /sync``.

    :param sync: a :class:`~mxref.client.sync.service.SyncService`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, sync, authenticator):
        self._sync = sync
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoint to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register("GET", client_paths("/sync"), self.get_sync)

    async def get_sync(self, request):
        """``GET /sync``: the initial snapshot or the changes since ``since``."""
        requester = await self._authenticator.authenticate(request)
        since = parse_string(request, "since")
        filter_param = parse_string(request, "filter")
        full_state = parse_boolean(request, "full_state", default=False)
        set_presence = parse_string(request, "set_presence", allowed={"offline", "online", "unavailable"})
        timeout_ms = parse_integer(request, "timeout", default=0, minimum=0)
        use_state_after = parse_boolean(request, "use_state_after", default=False)
        body = await self._sync.sync(
            requester,
            since=since,
            filter_param=filter_param,
            full_state=full_state,
            timeout_ms=min(timeout_ms, MAX_TIMEOUT_MS),
            use_state_after=use_state_after,
            set_presence=set_presence,
        )
        return 200, body
