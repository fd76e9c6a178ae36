"""HTTP endpoints for receipts, read markers and typing notifications.

Spec (v1.19), Client-Server API: ``POST /rooms/{roomId}/receipt/{receiptType}/{eventId}``
(body: an object, optionally with ``thread_id``), ``POST /rooms/{roomId}/read_markers``
(``m.fully_read``, ``m.read``, ``m.read.private``), ``PUT /rooms/{roomId}/typing/{userId}``
(``typing`` required, ``timeout`` in milliseconds).
"""

from mxref.errors import MatrixError
from mxref.http.request import parse_json_object, require_fields
from mxref.http.resource import client_paths
from mxref.types import RoomID


def _check_room_id(room_id):
    RoomID.parse(room_id)
    return room_id


class ReceiptResource:
    """Receipts, read markers and typing.

    :param receipts: a :class:`~mxref.client.receipts.service.ReadReceipts`.
    :param typing: a :class:`~mxref.client.receipts.service.TypingRequests`.
    :param authenticator: a :class:`~mxref.auth.tokens.RequestAuthenticator`.
    """

    def __init__(self, receipts, typing, authenticator):
        self._receipts = receipts
        self._typing = typing
        self._authenticator = authenticator

    def register_routes(self, resource) -> None:
        """Add this class's endpoints to a :class:`~mxref.http.resource.JsonResource`."""
        resource.register(
            "POST",
            client_paths("/rooms/{roomId}/receipt/{receiptType}/{eventId}"),
            self.post_receipt,
        )
        resource.register(
            "POST", client_paths("/rooms/{roomId}/read_markers"), self.post_read_markers
        )
        resource.register("PUT", client_paths("/rooms/{roomId}/typing/{userId}"), self.put_typing)

    async def post_receipt(self, request, room_id, receipt_type, event_id):
        """``POST /rooms/{roomId}/receipt/{receiptType}/{eventId}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request, allow_empty_body=True)
        thread_id = body.get("thread_id")
        if "thread_id" in body and (not isinstance(thread_id, str) or not thread_id):
            raise MatrixError(400, "M_INVALID_PARAM", "thread_id field must be a non-empty string")
        await self._receipts.send_receipt(requester, room_id, receipt_type, event_id, thread_id)
        return 200, {}

    async def post_read_markers(self, request, room_id):
        """``POST /rooms/{roomId}/read_markers``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = parse_json_object(request)
        markers = {}
        for receipt_type in ("m.fully_read", "m.read", "m.read.private"):
            value = body.get(receipt_type)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise MatrixError(400, "M_BAD_JSON", f"{receipt_type} must be an event ID")
            markers[receipt_type] = value
        await self._receipts.set_read_markers(requester, room_id, markers)
        return 200, {}

    async def put_typing(self, request, room_id, user_id):
        """``PUT /rooms/{roomId}/typing/{userId}`` with ``{typing, timeout?}``."""
        requester = await self._authenticator.authenticate(request)
        _check_room_id(room_id)
        body = require_fields(parse_json_object(request), {"typing": bool})
        timeout = body.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
            raise MatrixError(
                400, "M_BAD_JSON", "timeout must be an integer number of milliseconds"
            )
        await self._typing.set_typing(requester, room_id, user_id, body["typing"], timeout)
        return 200, {}
