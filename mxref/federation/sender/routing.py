"""Which servers an event is sent to, which rooms a server shares with us, and which of our
events a server missed while it was unreachable.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):

* "PDUs": a server sends its events "to every other server in the room" – the servers of
  the room's joined members at the event. A member event that removes a user of another
  server (kick, ban) also goes to that user's server, which has no member left to learn it
  from.
* "Transactions": PDUs travel in federation form; from room version 3 an event carries no
  ``event_id`` (the receiver computes it), and ``unsigned`` is for the sender's clients.
* "Backfilling and retrieving missing events": a server that receives an event whose
  ``prev_events`` it lacks fetches them with ``get_missing_events``, so a server that missed
  many events can be sent only the newest.
"""

from twisted.internet import defer

from mxref.events.room_versions import EventFormat, get_room_version
from mxref.federation.sender.backoff import MAX_CATCH_UP_EVENTS_PER_ROOM, is_too_far_behind
from mxref.types import UserID


def server_of(user_id):
    """The server part of a user ID, or ``None`` if it is not a valid user ID. Not a Deferred."""
    try:
        return UserID.parse(user_id).server_name
    except (ValueError, TypeError):
        return None


def pdu_for_wire(pdu, room_version) -> dict:
    """A stored PDU in federation form: without ``unsigned``, and without ``event_id`` from
    room version 3 on. Not a Deferred."""
    version = get_room_version(room_version)
    wire = {k: v for k, v in pdu.items() if k != "unsigned"}
    if version.event_format is not EventFormat.V1:
        wire.pop("event_id", None)
    return wire


class EventRouting:
    """Answers the sender's routing questions from storage.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param server_name: our server name.
    """

    def __init__(self, events, rooms, server_name):
        self._events = events
        self._rooms = rooms
        self._server_name = server_name
        self._versions = {}
        self._known_rooms = set()
        self._known_rooms_loaded = False

    def is_ours(self, stored) -> bool:
        """Whether a :class:`~mxref.storage.records.StoredEvent` was sent by one of our users
        (and so is ours to send). Not a Deferred."""
        return server_of(stored.sender) == self._server_name

    def note_room(self, room_id) -> None:
        """Remember a room we hold an event of (from the notifier). Not a Deferred."""
        self._known_rooms.add(room_id)

    @defer.inlineCallbacks
    def destinations_of(self, stored, live=False):
        """The servers an event goes to: the servers of the room's joined members just after
        the event, plus the target's server for a kick or ban, without us.

        :param stored: a :class:`~mxref.storage.records.StoredEvent` with a stream ordering.
        :param live: the event was just persisted; unless it changes a membership, the
            room's current joined servers are taken (a cheap read) instead of reading the
            members as they were at the event.
        :returns: Deferred firing with a ``set`` of server names.
        """
        if live and stored.type != "m.room.member":
            servers = set((yield self._rooms.get_joined_hosts(stored.room_id)))
        else:
            members = yield self._rooms.get_members(
                stored.room_id, membership="join", at_stream=stored.stream_ordering
            )
            servers = {server_of(user_id) for user_id in members}
        if stored.type == "m.room.member" and stored.membership in ("leave", "ban"):
            servers.add(server_of(stored.state_key))
        servers.discard(None)
        servers.discard(self._server_name)
        return servers

    @defer.inlineCallbacks
    def wire_pdu(self, stored):
        """The federation form of a stored event.

        :returns: Deferred firing with the PDU dict.
        """
        version = self._versions.get(stored.room_id)
        if version is None:
            version = yield self._rooms.get_room_version(stored.room_id)
            self._versions[stored.room_id] = version
        return pdu_for_wire(stored.pdu, version)

    @defer.inlineCallbacks
    def rooms_shared_with(self, destination):
        """The rooms in which ``destination`` has a joined member now, sorted.

        The first call learns every room we hold from the recorded current-state changes;
        later rooms are learnt from :meth:`note_room`.

        :returns: Deferred firing with a list of room IDs.
        """
        if not self._known_rooms_loaded:
            upto = yield self._events.get_max_stream_ordering()
            deltas = yield self._events.get_current_state_deltas(0, upto)
            self._known_rooms.update(row[1] for row in deltas)
            self._known_rooms_loaded = True
        shared = []
        for room_id in sorted(self._known_rooms):
            hosts = yield self._rooms.get_joined_hosts(room_id)
            if destination in hosts:
                shared.append(room_id)
        return shared

    @defer.inlineCallbacks
    def missed_events(self, destination, after, upto):
        """Our events ``destination`` should have received with a stream ordering in
        ``(after, upto]`` (in the rooms it shares with us, or whose membership of its users
        changed meanwhile), oldest first; when it is too far behind
        (:func:`~mxref.federation.sender.backoff.is_too_far_behind`) only the newest of ours
        in each room.

        :returns: Deferred firing with ``(events, too_far_behind)`` where ``events`` is a list
            of ``(stream_ordering, wire PDU)``.
        """
        rooms = set((yield self.rooms_shared_with(destination)))
        # Rooms it left meanwhile (e.g. kicked while unreachable) may hold events for it too.
        deltas = yield self._events.get_current_state_deltas(after, upto)
        rooms.update(
            room_id for _stream, room_id, event_type, state_key, _event_id in deltas
            if event_type == "m.room.member" and server_of(state_key) == destination
        )
        rooms = sorted(rooms)
        chunks = yield self._events.get_events_since(after, rooms, MAX_CATCH_UP_EVENTS_PER_ROOM, to_stream=upto)
        ours_per_room = {}
        truncated = False
        for room_id, chunk in sorted(chunks.items()):
            truncated = truncated or chunk.limited
            ours = []
            for stored in chunk.events:
                if self.is_ours(stored) and destination in (yield self.destinations_of(stored)):
                    ours.append(stored)
            if ours:
                ours_per_room[room_id] = ours
        too_far = is_too_far_behind({r: len(v) for r, v in ours_per_room.items()}, truncated)
        if too_far:
            selected = [events[-1] for events in ours_per_room.values()]
        else:
            selected = [e for events in ours_per_room.values() for e in events]
        selected.sort(key=lambda e: e.stream_ordering)
        result = []
        for stored in selected:
            result.append((stored.stream_ordering, (yield self.wire_pdu(stored))))
        return result, too_far
