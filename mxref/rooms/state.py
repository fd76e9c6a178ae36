"""The state of a room at a point of its DAG: reading it from state groups, resolving forks,
and storing the state after a new event.

Spec: Server-Server API, "Room State Resolution" and the definition of the state at an event:
"the state before an event is the result of resolving the states after each of its
``prev_events``" (https://spec.matrix.org/v1.19/server-server-api/#room-state-resolution);
the algorithm itself is :func:`mxref.events.stateres.resolve_state`.
"""

import attr
from twisted.internet import defer

from mxref.events.room_versions import get_room_version
from mxref.events.stateres import auth_event_ids, resolve_state


@attr.s(frozen=True, slots=True, auto_attribs=True)
class StateAt:
    """The state at some point of a room's DAG.

    At least one of the two is set.

    :param ids: ``(type, state_key) -> event_id``, or ``None`` when only the group is known
        (reading a large room's full state is avoided until somebody needs it).
    :param group: the stored state group holding exactly this state, or ``None`` if the state
        was computed (resolved) and not stored yet.
    """

    ids: object = None
    group: object = None


def with_event_id(stored) -> dict:
    """The PDU of a :class:`~mxref.storage.records.StoredEvent` with its ``event_id`` set, the
    form the pure core's auth rules and state resolution take. Not a Deferred."""
    pdu = stored.pdu
    if pdu.get("event_id") == stored.event_id:
        return pdu
    event = dict(pdu)
    event["event_id"] = stored.event_id
    return event


class RoomStateReader:
    """Reads and resolves room state; stores the state after new events as state groups.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param state: an :class:`~mxref.storage.interfaces.IStateStore`.
    """

    def __init__(self, events, state):
        self._events = events
        self._state = state

    @defer.inlineCallbacks
    def state_after_events(self, room_version, room_id, event_ids):
        """The state before an event whose ``prev_events`` are ``event_ids``: the resolution of
        the states after each of them.

        :returns: Deferred firing with a :class:`StateAt`; its ``group`` is set when a single
            stored group already holds the answer.
        """
        groups = yield self._state.get_state_groups_for_events(list(event_ids))
        distinct = sorted(set(groups.values()))
        if len(distinct) == 1:
            ids = yield self._state.get_state_group_ids(distinct[0])
            return StateAt(ids=ids, group=distinct[0])
        state_sets = []
        for group in distinct:
            state_sets.append((yield self._state.get_state_group_ids(group)))
        resolved = yield self.resolve(room_version, state_sets)
        return StateAt(ids=resolved, group=None)

    def state_group_after(self, event_id):
        """The state group of the state after a (non-outlier) event.

        :returns: Deferred firing with the group, or ``None`` for unknown events and outliers.
        """
        return self._state.get_state_group_for_event(event_id)

    @defer.inlineCallbacks
    def ids_of(self, state_at):
        """The full state map of a :class:`StateAt`, reading its group if needed.

        :returns: Deferred firing with a state map.
        """
        if state_at.ids is not None:
            return state_at.ids
        ids = yield self._state.get_state_group_ids(state_at.group)
        return ids

    @defer.inlineCallbacks
    def state_maps_after(self, event_ids):
        """The distinct state maps after each of ``event_ids`` (events without a state group,
        i.e. outliers, are skipped).

        :returns: Deferred firing with a list of state maps.
        """
        groups = yield self._state.get_state_groups_for_events(list(event_ids))
        maps = []
        for group in sorted(set(groups.values())):
            maps.append((yield self._state.get_state_group_ids(group)))
        return maps

    @defer.inlineCallbacks
    def resolve(self, room_version, state_sets, unstored_events=None):
        """Resolve several state maps with the room version's algorithm.

        Loads every event of the state sets and of their auth chains, as
        :func:`~mxref.events.stateres.resolve_state` requires.

        :param unstored_events: ``{event_id: pdu}`` of events named in the state sets that
            are not in the store yet (the event being persisted): without them the
            resolution would silently leave them out.
        :returns: Deferred firing with the resolved state map.
        """
        state_sets = [dict(s) for s in state_sets if s is not None]
        if not state_sets:
            return {}
        if all(s == state_sets[0] for s in state_sets[1:]):
            return dict(state_sets[0])
        unstored = {event_id: dict(pdu, event_id=event_id) for event_id, pdu in (unstored_events or {}).items()}
        member_ids = set()
        for s in state_sets:
            member_ids.update(s.values())
        to_load = member_ids - set(unstored)
        for pdu in unstored.values():
            to_load.update(auth_event_ids(pdu))
        chain_ids = yield self._events.get_auth_chain_ids(list(to_load))
        stored = yield self._events.get_events(list(to_load | set(chain_ids)), allow_rejected=True)
        events = {event_id: with_event_id(e) for event_id, e in stored.items()}
        events.update(unstored)
        rejected = frozenset(event_id for event_id, e in stored.items() if e.rejected_reason)
        return resolve_state(get_room_version(room_version), state_sets, events, rejected=rejected)

    @defer.inlineCallbacks
    def store_state_after(self, room_id, state_before, event_id, state_key):
        """Store the state after an event as a state group.

        :param state_before: the :class:`StateAt` before the event.
        :param state_key: the event's ``(type, state_key)``, or ``None`` for a non-state
            (or rejected) event, which leaves the state unchanged.
        :returns: Deferred firing with ``(StateAt after, group)``.
        """
        if state_key is None and state_before.group is not None:
            return state_before, state_before.group
        ids = None
        if state_before.ids is not None:
            ids = dict(state_before.ids)
            if state_key is not None:
                ids[state_key] = event_id
        if state_before.group is not None:
            group = yield self._state.store_state_group(
                room_id, state_before.group, {state_key: event_id}, full_ids=ids
            )
        else:
            group = yield self._state.store_state_group(room_id, None, ids)
        return StateAt(ids=ids, group=group), group
