"""Serving our copy of rooms to other servers: single events, the state at an event, auth
chains, backfill and missing events.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):
``GET /event/{eventId}`` → ``{origin, origin_server_ts, pdus: [event]}``;
``GET /state/{roomId}?event_id=`` → ``{pdus, auth_chain}`` and ``GET /state_ids/{roomId}`` →
``{pdu_ids, auth_chain_ids}``, the state *before* the event (404 if we do not know it);
``GET /event_auth/{roomId}/{eventId}`` → ``{auth_chain}``; ``GET /backfill/{roomId}?v=&limit=``
→ ``{origin, origin_server_ts, pdus}``; ``POST /get_missing_events/{roomId}`` → ``{events}``.
"Server Access Control Lists": ``state``, ``state_ids``, ``backfill``, ``event_auth`` and
``get_missing_events`` answer 403 to an ACL-denied server. The room endpoints also need the
requesting server to be in the room (403 ``M_FORBIDDEN`` otherwise).

History visibility for servers ("Room History Visibility" applied to servers, as deployed
servers do it): an event is served whole when the room's history visibility at the event is
``world_readable`` or ``shared``, or when the requesting server had a joined member (an
invited one for ``invited``) at the event; otherwise it is served redacted, so the DAG stays
walkable without leaking content. Redactions that apply are applied; rejected events are
never served.
"""

from twisted.internet import defer

from mxref.errors import MatrixError
from mxref.events.redaction import redact
from mxref.events.room_versions import get_room_version
from mxref.federation.receiver.pipeline import create_event_id_of, reference_ids, wire_pdu
from mxref.types import UserID

HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")

#: The most events one ``backfill`` or ``get_missing_events`` request returns.
MAX_EVENTS_PER_REQUEST = 100


def _server_of(user_id):
    try:
        return UserID.parse(user_id).server_name
    except ValueError:
        return None


class FederationRoomReads:
    """Answers other servers' reads of our rooms.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param state: an :class:`~mxref.storage.interfaces.IStateStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param state_reader: a :class:`~mxref.rooms.state.RoomStateReader`.
    :param visibility: a :class:`~mxref.client.visibility.EventVisibility` (redactions).
    :param acl_checker: a :class:`~mxref.federation.acl.ServerAclChecker`.
    :param server_name: our server name.
    :param clock: an ``IReactorTime``.
    """

    def __init__(
        self, events, state, rooms, state_reader, visibility, acl_checker, server_name, clock
    ):
        self._events = events
        self._state = state
        self._rooms = rooms
        self._state_reader = state_reader
        self._visibility = visibility
        self._acl = acl_checker
        self._server_name = server_name
        self._clock = clock

    def _now_ms(self):
        return int(self._clock.seconds() * 1000)

    @defer.inlineCallbacks
    def check_server_in_room(self, room_id, origin):
        """Refuse a server that is ACL-denied or has no joined member in the room.

        :returns: Deferred firing with the room's :class:`RoomVersion`.
        :raises MatrixError: 404 for a room we do not know, 403 ``M_FORBIDDEN`` otherwise.
        """
        version = yield self._rooms.get_room_version(room_id)
        if version is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}")
        yield self._acl.check_allowed(room_id, origin)
        hosts = yield self._rooms.get_joined_hosts(room_id)
        if origin not in hosts:
            raise MatrixError(403, "M_FORBIDDEN", f"Server {origin} is not in room {room_id}")
        return get_room_version(version)

    @defer.inlineCallbacks
    def _event_in_room(self, room_id, event_id, need_state=False):
        stored = yield self._events.get_event(event_id)
        if stored is None or stored.room_id != room_id or (need_state and stored.outlier):
            raise MatrixError(404, "M_NOT_FOUND", f"Event {event_id} not found in room {room_id}")
        return stored

    @defer.inlineCallbacks
    def pdus_for_server(self, origin, stored_events):
        """The PDUs of ``stored_events`` as ``origin`` may see them: rejected ones left out,
        redactions applied, events outside its history visibility redacted.

        :returns: Deferred firing with a list of PDU dicts, in the given order.
        """
        events = [e for e in stored_events if not e.rejected_reason]
        if not events:
            return []
        redactions = yield self._visibility.redactions_for(events)
        versions = {}
        pdus = []
        for stored in events:
            if stored.room_id not in versions:
                versions[stored.room_id] = get_room_version(
                    (yield self._rooms.get_room_version(stored.room_id))
                )
            version = versions[stored.room_id]
            visible = yield self._visible_to_server(origin, stored)
            pdu = wire_pdu(stored.pdu, version)
            if stored.event_id in redactions or not visible:
                pdu = redact(pdu, version)
            pdus.append(pdu)
        return pdus

    @defer.inlineCallbacks
    def _visible_to_server(self, origin, stored):
        if stored.state_group is None:
            return True
        ids = yield self._state.get_state_group_ids(
            stored.state_group, types=[HISTORY_VISIBILITY_KEY, ("m.room.member", None)]
        )
        hv_id = ids.get(HISTORY_VISIBILITY_KEY)
        visibility = "shared"
        if hv_id is not None:
            hv = yield self._events.get_event(hv_id)
            if hv is not None:
                visibility = hv.pdu.get("content", {}).get("history_visibility", "shared")
        if visibility in ("world_readable", "shared"):
            return True
        ours = [
            i for (t, key), i in ids.items() if t == "m.room.member" and _server_of(key) == origin
        ]
        members = yield self._events.get_events(ours)
        allowed = {"join", "invite"} if visibility == "invited" else {"join"}
        return any(m.membership in allowed for m in members.values())

    @defer.inlineCallbacks
    def get_event(self, origin, event_id):
        """``GET /event/{eventId}``.

        :returns: Deferred firing with ``{origin, origin_server_ts, pdus: [pdu]}``.
        :raises MatrixError: 404 for an unknown or rejected event, 403 for an ACL-denied origin.
        """
        stored = yield self._events.get_event(event_id)
        if stored is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Event {event_id} not found")
        yield self._acl.check_allowed(stored.room_id, origin)
        pdus = yield self.pdus_for_server(origin, [stored])
        return {"origin": self._server_name, "origin_server_ts": self._now_ms(), "pdus": pdus}

    @defer.inlineCallbacks
    def state_ids_before(self, room_id, stored):
        """The state before a (non-outlier) event: resolved from the states after its prev
        events, or for an event after a gap, the state after it without its own entry.

        :returns: Deferred firing with a state map.
        """
        version = get_room_version((yield self._rooms.get_room_version(room_id)))
        prev_ids = list(stored.prev_event_ids)
        if not prev_ids:
            return {}
        groups = yield self._state.get_state_groups_for_events(prev_ids)
        if len(groups) == len(set(prev_ids)):
            state = yield self._state_reader.state_after_events(version, room_id, prev_ids)
            ids = yield self._state_reader.ids_of(state)
            return dict(ids)
        after = yield self._events.get_state_ids_at_event(stored.event_id)
        after = dict(after or {})
        if stored.state_key is not None and not stored.rejected_reason:
            after.pop((stored.type, stored.state_key), None)
        return after

    @defer.inlineCallbacks
    def auth_chain_ids(self, room_id, version, event_ids):
        """The auth chain of ``event_ids``; from room version 12 it includes the create event,
        which every event depends on although none lists it.

        :returns: Deferred firing with a set of event IDs.
        """
        chain = set((yield self._events.get_auth_chain_ids(list(event_ids))))
        create_id = create_event_id_of(room_id, version)
        if create_id:
            chain.add(create_id)
        return chain

    @defer.inlineCallbacks
    def _state_and_chain_ids(self, origin, room_id, event_id):
        version = yield self.check_server_in_room(room_id, origin)
        stored = yield self._event_in_room(room_id, event_id, need_state=True)
        state = yield self.state_ids_before(room_id, stored)
        state_ids = sorted(set(state.values()))
        chain = yield self.auth_chain_ids(room_id, version, state_ids)
        return state_ids, sorted(chain - set(state_ids))

    @defer.inlineCallbacks
    def get_state_ids(self, origin, room_id, event_id):
        """``GET /state_ids/{roomId}?event_id=``.

        :returns: Deferred firing with ``{pdu_ids, auth_chain_ids}``.
        """
        state_ids, chain_ids = yield self._state_and_chain_ids(origin, room_id, event_id)
        return {"pdu_ids": state_ids, "auth_chain_ids": chain_ids}

    @defer.inlineCallbacks
    def get_state(self, origin, room_id, event_id):
        """``GET /state/{roomId}?event_id=``.

        :returns: Deferred firing with ``{pdus, auth_chain}``.
        """
        state_ids, chain_ids = yield self._state_and_chain_ids(origin, room_id, event_id)
        stored = yield self._events.get_events(state_ids + chain_ids, allow_rejected=True)
        pdus = yield self.pdus_for_server(origin, [stored[i] for i in state_ids if i in stored])
        chain = yield self.pdus_for_server(origin, [stored[i] for i in chain_ids if i in stored])
        return {"pdus": pdus, "auth_chain": chain}

    @defer.inlineCallbacks
    def get_event_auth(self, origin, room_id, event_id):
        """``GET /event_auth/{roomId}/{eventId}``: the event's full auth chain.

        :returns: Deferred firing with ``{auth_chain}``.
        """
        version = yield self.check_server_in_room(room_id, origin)
        yield self._event_in_room(room_id, event_id)
        chain_ids = yield self.auth_chain_ids(room_id, version, [event_id])
        chain_ids.discard(event_id)
        stored = yield self._events.get_events(sorted(chain_ids))
        pdus = yield self.pdus_for_server(
            origin, sorted(stored.values(), key=lambda e: (e.depth, e.event_id))
        )
        return {"auth_chain": pdus}

    @defer.inlineCallbacks
    def backfill(self, origin, room_id, event_ids, limit):
        """``GET /backfill/{roomId}?v=...&limit=``: the given events and their predecessors.

        :returns: Deferred firing with ``{origin, origin_server_ts, pdus}``.
        """
        yield self.check_server_in_room(room_id, origin)
        limit = max(0, min(limit, MAX_EVENTS_PER_REQUEST))
        ids = yield self._events.get_backfill_ids(room_id, list(event_ids), limit)
        stored = yield self._events.get_events(ids)
        pdus = yield self.pdus_for_server(origin, [stored[i] for i in ids if i in stored])
        return {"origin": self._server_name, "origin_server_ts": self._now_ms(), "pdus": pdus}

    @defer.inlineCallbacks
    def get_missing_events(self, origin, room_id, earliest_events, latest_events, limit, min_depth):
        """``POST /get_missing_events/{roomId}``: predecessors of ``latest_events`` back to
        ``earliest_events``, oldest first.

        Soft-failed events are only returned when an event returned (or one of
        ``latest_events``) cites them, as the spec's "Soft failure" section asks.

        :returns: Deferred firing with ``{events}``.
        """
        yield self.check_server_in_room(room_id, origin)
        limit = max(0, min(limit, MAX_EVENTS_PER_REQUEST))
        ids = yield self._events.get_missing_events(
            room_id, list(earliest_events), list(latest_events), limit, min_depth
        )
        stored = yield self._events.get_events(ids)
        latest = yield self._events.get_events(list(latest_events))
        cited = set()
        for event in list(stored.values()) + list(latest.values()):
            cited.update(reference_ids(event.pdu.get("prev_events")))
        chosen = [
            stored[i] for i in ids if i in stored and (not stored[i].soft_failed or i in cited)
        ]
        pdus = yield self.pdus_for_server(origin, chosen)
        return {"events": pdus}
