"""Receipts, read markers and typing requests from local users.

Spec (v1.19), Client-Server API:

* "Receipts": ``POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`` with ``m.read``
  (shared with the room in ``m.receipt``), ``m.read.private`` (only the user sees it) or
  ``m.fully_read`` (the read marker); an optional ``thread_id`` (``main`` or a thread root;
  it must be a non-empty string, 400 ``M_INVALID_PARAM`` otherwise, and makes no sense for
  ``m.fully_read``); the server sets ``ts``.
* "Fully read markers": ``POST /rooms/{roomId}/read_markers`` with ``m.fully_read``,
  ``m.read`` and ``m.read.private``; the fully read marker is the room account data event
  ``m.fully_read`` with ``content.event_id``.
* "Typing Notifications": ``PUT /rooms/{roomId}/typing/{userId}``, only for oneself.

Receipts are stored with :meth:`~mxref.storage.interfaces.IClientDataStore.put_receipt` and
announced on the ``"receipts"`` notifier stream (a private receipt names only its user, not
the room, so that other members are not woken); the read marker is written as account data
and announced on the ``"account_data"`` stream. ``/sync`` emits both.
"""

from twisted.logger import Logger

from mxref.errors import MatrixError

#: The notifier stream receipts are announced on.
RECEIPTS_STREAM = "receipts"

#: The notifier stream account data (the fully read marker) is announced on.
ACCOUNT_DATA_STREAM = "account_data"

RECEIPT_TYPES = ("m.read", "m.read.private", "m.fully_read")


class ReadReceipts:
    """Records receipts and read markers.

    :param client_data: an :class:`~mxref.storage.interfaces.IClientDataStore`.
    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param notifier: a :class:`~mxref.notifier.Notifier`.
    :param clock: an ``IReactorTime`` (the receipts' ``ts``).
    """

    log = Logger()

    def __init__(self, client_data, events, rooms, notifier, clock):
        self._client_data = client_data
        self._events = events
        self._rooms = rooms
        self._notifier = notifier
        self._clock = clock

    async def _check_joined_and_event(self, user_id, room_id, event_ids):
        members = await self._rooms.get_members(room_id, membership="join")
        if user_id not in members:
            raise MatrixError(403, "M_FORBIDDEN", f"User {user_id} is not in room {room_id}")
        found = await self._events.get_events(list(event_ids))
        for event_id in event_ids:
            if event_id not in found or found[event_id].room_id != room_id:
                raise MatrixError(
                    404, "M_NOT_FOUND", f"Event {event_id} not found in room {room_id}"
                )

    async def send_receipt(self, requester, room_id, receipt_type, event_id, thread_id=None):
        """Record one receipt (or, for ``m.fully_read``, the read marker).

        :raises MatrixError: 400 ``M_INVALID_PARAM`` for an unknown receipt type or a thread
            with ``m.fully_read``; 403 if the user is not joined; 404 for an event not in the room.
        """
        if receipt_type not in RECEIPT_TYPES:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown receipt type {receipt_type!r}")
        if receipt_type == "m.fully_read" and thread_id is not None:
            raise MatrixError(400, "M_INVALID_PARAM", "m.fully_read cannot be threaded")
        await self._check_joined_and_event(requester.user_id, room_id, [event_id])
        await self._record(requester.user_id, room_id, receipt_type, event_id, thread_id)

    async def set_read_markers(self, requester, room_id, markers):
        """Move the fully read marker and/or send read receipts at once.

        :param markers: ``{receipt_type: event_id}`` for some of :data:`RECEIPT_TYPES`.
        """
        if not markers:
            return
        await self._check_joined_and_event(
            requester.user_id, room_id, sorted(set(markers.values()))
        )
        for receipt_type in RECEIPT_TYPES:
            if receipt_type in markers:
                await self._record(
                    requester.user_id, room_id, receipt_type, markers[receipt_type], None
                )

    async def _record(self, user_id, room_id, receipt_type, event_id, thread_id):
        if receipt_type == "m.fully_read":
            position = await self._client_data.put_account_data(
                user_id, room_id, "m.fully_read", {"event_id": event_id}
            )
            self._notifier.notify(ACCOUNT_DATA_STREAM, position, user_ids=[user_id])
            return
        data = {"ts": int(self._clock.seconds() * 1000)}
        position = await self._client_data.put_receipt(
            room_id, receipt_type, user_id, event_id, data, thread_id
        )
        if receipt_type == "m.read.private":
            self._notifier.notify(RECEIPTS_STREAM, position, user_ids=[user_id])
        else:
            self._notifier.notify(RECEIPTS_STREAM, position, room_ids=[room_id])


class TypingRequests:
    """Checks typing requests and hands them to the :class:`~mxref.client.receipts.typing.TypingTracker`.

    :param tracker: the :class:`~mxref.client.receipts.typing.TypingTracker`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    """

    def __init__(self, tracker, rooms):
        self._tracker = tracker
        self._rooms = rooms

    async def set_typing(self, requester, room_id, user_id, typing, timeout_ms=None):
        """Start or stop the requester's typing notification in a room they are joined to.

        :raises MatrixError: 403 ``M_FORBIDDEN`` for another user or a room the user is not in.
        """
        if user_id != requester.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "You may only set your own typing state")
        members = await self._rooms.get_members(room_id, membership="join")
        if user_id not in members:
            raise MatrixError(403, "M_FORBIDDEN", f"User {user_id} is not in room {room_id}")
        self._tracker.set_typing(room_id, user_id, typing, timeout_ms)
