"""Persisting events into a room: the state group after each event, the forward extremities,
the current state, one database transaction, then the notifier.

Spec: Server-Server API, "Room State Resolution" (the current state of a room is the resolved
state of its forward extremities) and "Rejection"/"Soft failure" (rejected events never become
state or extremities; soft-failed events are kept but neither served nor built upon),
https://spec.matrix.org/v1.19/server-server-api/.

All writes for one room go through :meth:`EventPersister.serialised`, so that two events of a
room never compute their state and extremities concurrently.

The persister is the only writer of forward extremities, so it keeps the latest ones of
recently active rooms in memory (with the state group after each), written through on every
persist: sending an event reads them without a database round trip. It also remembers the
current state entries asked for through :meth:`EventPersister.current_state_ids` (the auth
events of new events), updated when an event built on exactly the remembered extremities
changes one key, and forgotten for the room on any other change of its current state.
"""

import collections

import attr
from twisted.internet import defer
from twisted.logger import Logger

from mxref.events.redaction import redacts_of
from mxref.rooms.keyed_lock import KeyedLock
from mxref.storage.records import EventToPersist, PersistBatch, RoomUpdate

#: The notifier stream carrying room events.
ROOM_EVENTS_STREAM = "room_events"


def state_key_of(pdu):
    """``(type, state_key)`` of a state event, ``None`` for other events."""
    if "state_key" not in pdu:
        return None
    return (pdu["type"], pdu["state_key"])


@attr.s(frozen=True, slots=True)
class RoomTip:
    """A room's forward extremities as last persisted.

    :ivar extremities: ``[(event_id, depth)]``, deepest first (ties by event ID), as
        :meth:`~mxref.storage.interfaces.IEventStore.get_forward_extremities` orders them.
    :ivar groups: ``{event_id: state group}`` of the extremities whose group is known.
    :ivar state: part of the room's current state, ``{(type, state_key): event_id or None}``
        (``None``: the room has no such state).
    """

    extremities = attr.ib()
    groups = attr.ib(factory=dict)
    state = attr.ib(factory=dict)


def _ordered_extremities(depths):
    return sorted(depths.items(), key=lambda item: (-item[1], item[0]))


class EventPersister:
    """Writes events and everything derived from them.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param state_reader: a :class:`~mxref.rooms.state.RoomStateReader`.
    :param notifier: a :class:`~mxref.notifier.Notifier` told about each new stream position.
    """

    log = Logger()

    #: How many rooms' forward extremities are kept in memory.
    TIP_CACHE_SIZE = 2000

    def __init__(self, events, state_reader, notifier):
        self._events = events
        self._state_reader = state_reader
        self._notifier = notifier
        self._room_locks = KeyedLock()
        self._tips = collections.OrderedDict()  # room_id -> RoomTip
        self._persists_started = 0  # so that a read overtaken by a persist is not remembered

    def forward_extremities(self, room_id):
        """The room's forward extremities, from memory when this process persisted them.

        :returns: Deferred firing with ``[(event_id, depth)]``, deepest first.
        """
        tip = self._tips.get(room_id)
        if tip is not None:
            self._tips.move_to_end(room_id)
            return defer.succeed(list(tip.extremities))
        started = self._persists_started

        def loaded(extremities):
            # Only remember what no persist could have changed since the read began.
            if self._persists_started == started and room_id not in self._tips:
                self._remember_tip(room_id, RoomTip(extremities=tuple(extremities)))
            return list(extremities)

        return self._events.get_forward_extremities(room_id).addCallback(loaded)

    @defer.inlineCallbacks
    def state_group_after(self, room_id, event_id):
        """The state group after ``event_id``, from memory for a remembered extremity.

        :returns: Deferred firing with the group, or ``None`` (unknown events, outliers).
        """
        tip = self._tips.get(room_id)
        if tip is not None and event_id in tip.groups:
            return tip.groups[event_id]
        group = yield self._state_reader.state_group_after(event_id)
        tip = self._tips.get(room_id)
        if group is not None and tip is not None and any(e == event_id for e, _ in tip.extremities):
            tip.groups[event_id] = group
        return group

    def current_state_ids(self, room_id, keys):
        """Part of the room's current state, from memory where this process knows it.

        :param keys: ``(type, state_key)`` pairs (a ``None`` state key reads the database).
        :returns: Deferred firing with ``{(type, state_key): event_id}`` for the keys the
            room has.
        """
        keys = list(dict.fromkeys(keys))
        tip = self._tips.get(room_id)
        if tip is None or any(state_key is None for _type, state_key in keys):
            return self._events.get_current_state_ids(room_id, types=keys)
        missing = [key for key in keys if key not in tip.state]
        if not missing:
            return defer.succeed({key: tip.state[key] for key in keys if tip.state[key] is not None})
        started = self._persists_started

        def loaded(found):
            if self._persists_started == started and self._tips.get(room_id) is tip:
                for key in missing:
                    tip.state[key] = found.get(key)
            ids = {key: tip.state[key] for key in keys if key not in missing and tip.state[key] is not None}
            ids.update(found)
            return ids

        return self._events.get_current_state_ids(room_id, types=missing).addCallback(loaded)

    def note_new_room(self, room_id):
        """Remember that a room this process has just stored (and not yet given any event)
        has no forward extremities, which saves reading them for its ``m.room.create``."""
        if room_id not in self._tips:
            self._remember_tip(room_id, RoomTip(extremities=()))

    def _remember_tip(self, room_id, tip):
        self._tips[room_id] = tip
        self._tips.move_to_end(room_id)
        while len(self._tips) > self.TIP_CACHE_SIZE:
            self._tips.popitem(last=False)

    def _forget_tip(self, room_id):
        self._tips.pop(room_id, None)
        self._persists_started += 1

    def serialised(self, room_id, f, *args, **kwargs):
        """Run ``f`` while no other write to ``room_id`` runs; returns a Deferred of its result.

        Every code path that reads a room's extremities or current state in order to add an
        event to it must hold this lock from the read until the event is persisted.
        """
        return self._room_locks.run(room_id, f, *args, **kwargs)

    @defer.inlineCallbacks
    def persist_event(
        self,
        room_version,
        room_id,
        event_id,
        pdu,
        state_before,
        *,
        rejected_reason=None,
        soft_failed=False,
        txn=None,
        notify_user_ids=(),
    ):
        """Persist one event whose state before it is known (call under :meth:`serialised`).

        :param room_version: the room's version (identifier or RoomVersion).
        :param event_id: the event's ID.
        :param pdu: the signed PDU (no ``event_id`` key needed from room version 3).
        :param state_before: a :class:`~mxref.rooms.state.StateAt`: the state before the event.
        :param rejected_reason: set if the event failed the auth rules; it is stored but never
            becomes state, an extremity or visible to clients.
        :param soft_failed: set if the event failed auth against the current state only.
        :param txn: the :class:`~mxref.storage.records.ClientTxn` that produced it, if any.
        :param notify_user_ids: users to wake besides the room's members (e.g. an invitee).
        :returns: Deferred firing with ``(stream_ordering, state_after)`` where
            ``state_after`` is a :class:`StateAt`.
        """
        key = state_key_of(pdu)
        applies = rejected_reason is None
        state_after, group = yield self._state_reader.store_state_after(
            room_id, state_before, event_id, key if applies else None
        )

        old_extremities = yield self.forward_extremities(room_id)
        extremity_ids = {e for e, _depth in old_extremities}
        room_update = RoomUpdate(room_id=room_id)
        built_on_tip = False
        if applies and not soft_failed:
            prev_ids = set(_reference_ids(pdu.get("prev_events")))
            new_extremities = (extremity_ids - prev_ids) | {event_id}
            if prev_ids == extremity_ids:
                # Built on exactly the old extremities: the state before the event was the
                # current state, so only the event's own key can change.
                to_insert = {key: event_id} if key is not None else {}
                to_delete = frozenset()
                built_on_tip = True
            else:
                new_current = yield self._current_state_for(
                    room_version, new_extremities, event_id, pdu, state_after
                )
                old_current = yield self._events.get_current_state_ids(room_id)
                to_insert = {k: v for k, v in new_current.items() if old_current.get(k) != v}
                to_delete = frozenset(k for k in old_current if k not in new_current)
            room_update = RoomUpdate(
                room_id=room_id,
                forward_extremities=new_extremities,
                state_delta_to_insert=to_insert,
                state_delta_to_delete=to_delete,
            )

        record = EventToPersist.from_pdu(
            event_id,
            pdu,
            room_id=room_id,
            rejected_reason=rejected_reason,
            soft_failed=soft_failed,
            state_group=group,
            redacts=redacts_of(pdu, room_version),
            txn=txn,
        )
        old_tip = self._tips.get(room_id)
        self._forget_tip(room_id)
        orderings = yield self._events.persist_events(PersistBatch(events=[record], room_updates=[room_update]))
        if room_update.forward_extremities is not None:
            depths = dict(old_extremities)
            depths[event_id] = pdu.get("depth")
            groups = {} if old_tip is None else dict(old_tip.groups)
            groups[event_id] = group
            new_ids = room_update.forward_extremities
            state = {}
            if old_tip is not None and built_on_tip:
                # At most the event's own key changed.
                state = dict(old_tip.state)
                state.update(room_update.state_delta_to_insert)
            self._remember_tip(room_id, RoomTip(
                extremities=tuple(_ordered_extremities({e: depths[e] for e in new_ids})),
                groups={e: g for e, g in groups.items() if e in new_ids and g is not None},
                state=state,
            ))
        elif old_tip is not None:
            self._remember_tip(room_id, old_tip)
        stream_ordering = orderings.get(event_id)
        if stream_ordering is not None and applies and not soft_failed:
            users = set(notify_user_ids)
            if pdu.get("type") == "m.room.member":
                users.add(pdu.get("state_key"))
            self._notifier.notify(ROOM_EVENTS_STREAM, stream_ordering, room_ids=[room_id], user_ids=users)
        return stream_ordering, state_after

    @defer.inlineCallbacks
    def _current_state_for(self, room_version, extremities, event_id, pdu, state_after):
        """The room's state given its forward extremities: the state after the new event when
        it is the only extremity, otherwise the resolution of the states after each one (the
        new event, not stored yet, is handed to the resolution)."""
        ids_after = yield self._state_reader.ids_of(state_after)
        if extremities == {event_id}:
            return ids_after
        others = yield self._state_reader.state_maps_after([e for e in extremities if e != event_id])
        resolved = yield self._state_reader.resolve(
            room_version, [ids_after] + others, unstored_events={event_id: pdu}
        )
        return resolved


def _reference_ids(references):
    for reference in references or ():
        yield reference[0] if isinstance(reference, (list, tuple)) else reference

