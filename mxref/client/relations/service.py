"""Paging through the child events of an event (``GET /relations``).

Spec: Client-Server API "Forming relationships between events" > "Relationship types" and
"Aggregations of child events"; ``GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}
[/{relType}[/{eventType}]]`` (https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidrelationseventid):
the parent must be visible to the user (404 otherwise); children are returned "ordered
topologically most-recent first" by default (``dir=b``), oldest first with ``dir=f``, each
visible to the user and served like any other event (redactions applied, edits bundled);
``next_batch`` continues the walk, ``prev_batch`` is the ``from`` token the page began at.
Only direct relations are followed: when the client supplies ``recurse`` the answer says so
with ``recursion_depth: 1``.
"""

from mxref.client.rooms.service import parse_position
from mxref.client.serialise import add_replacement, format_client_event
from mxref.client.tokens import format_room_position
from mxref.storage.records import RoomPosition

#: The most children one page may hold.
MAX_RELATIONS_LIMIT = 100

#: How many storage reads fill one page at most when history visibility hides children.
MAX_ROUNDS = 5


class RelationReader:
    """Reads the children of an event for one user.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param room_reader: a :class:`~mxref.client.rooms.service.RoomReader` (its ``get_event``
        decides whether the user may see the parent).
    :param visibility: an :class:`~mxref.client.visibility.EventVisibility`.
    :param clock: an ``IReactorTime`` (for ``unsigned.age``).
    """

    def __init__(self, events, rooms, room_reader, visibility, clock):
        self._events = events
        self._rooms = rooms
        self._room_reader = room_reader
        self._visibility = visibility
        self._clock = clock

    async def get_relations(self, requester, room_id, event_id, rel_type=None, event_type=None,
                            from_token=None, to_token=None, direction="b", limit=20,
                            recurse=None):
        """One page of the events relating to ``event_id``.

        :param rel_type: only children with this ``rel_type``, or ``None``.
        :param event_type: only children of this event type (with ``rel_type``), or ``None``.
        :param from_token: a ``/relations``, ``/messages`` or ``/sync`` token to start at.
        :param to_token: a token to stop at, or ``None``.
        :param direction: ``"b"`` (newest first) or ``"f"``.
        :param limit: the most children to return (capped at :data:`MAX_RELATIONS_LIMIT`).
        :param recurse: the client's ``recurse`` parameter, or ``None`` when absent.
        :raises MatrixError: 404 ``M_NOT_FOUND`` when the parent is unknown or not visible;
            400 ``M_INVALID_PARAM`` for a malformed token.
        :returns: (coroutine) ``{chunk, next_batch?, prev_batch?, recursion_depth?}``.
        """
        await self._room_reader.get_event(requester, room_id, event_id)
        limit = min(max(limit, 0), MAX_RELATIONS_LIMIT)
        if from_token is not None:
            start = parse_position(from_token)
        elif direction == "b":
            start = RoomPosition(None, await self._events.get_max_stream_ordering())
        else:
            start = RoomPosition(None, 0)
        to_position = parse_position(to_token) if to_token is not None else None

        chunk, end, exhausted, rounds = [], start, limit == 0, 0
        while not exhausted and len(chunk) < limit and rounds < MAX_ROUNDS:
            rounds += 1
            wanted = limit - len(chunk)
            batch = await self._events.get_relations(
                room_id, event_id, rel_type, event_type, end, to_position, wanted, direction
            )
            visible = {
                e.event_id
                for e in await self._visibility.filter_for_user(requester.user_id, batch)
            }
            for event in batch:
                end = event.position_before if direction == "b" else event.position
                if event.event_id in visible:
                    chunk.append(event)
            exhausted = len(batch) < wanted
        response = {"chunk": await self._serialise(room_id, chunk)}
        if not exhausted:
            response["next_batch"] = format_room_position(end)
        if from_token is not None:
            response["prev_batch"] = from_token
        if recurse is not None:
            response["recursion_depth"] = 1
        return response

    async def _serialise(self, room_id, events):
        version = await self._rooms.get_room_version(room_id)
        now = int(self._clock.seconds() * 1000)
        redactions = await self._visibility.redactions_for(events)
        replacements = await self._visibility.replacements_for(events, redactions)
        serialised = []
        for event in events:
            client_event = format_client_event(
                event, now, version, redaction=redactions.get(event.event_id)
            )
            replacement = replacements.get(event.event_id)
            if replacement is not None:
                add_replacement(client_event, format_client_event(replacement, now, version))
            serialised.append(client_event)
        return serialised
