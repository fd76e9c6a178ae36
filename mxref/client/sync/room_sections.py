"""The parts of one room's entry in a ``/sync`` response: timeline, state, ephemeral receipts,
summary and the stripped state of invites and knocks.

Positions here are room-event stream orderings. "The state at stream position
``s``" is the room's current state as it was once everything up to ``s`` was
persisted (``IEventStore.get_current_state_ids(at_stream=s)``); the state at
the start of a timeline is the state at the position just before its first
event.

Spec: Client-Server API, ``GET /_matrix/client/v3/sync``
(https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync):
``timeline`` (``events``, ``limited``: "True if the number of events returned
was limited by the ``limit`` on the filter", ``prev_batch`` for
``/messages``); ``state`` ("Updates to the state, between the time indicated
by the ``since`` parameter, and the **start** of the ``timeline`` (or all
state up to the start of the timeline, if ``since`` is not given, or
``full_state`` is true)"); ``state_after`` (the same up to the **end** of the
timeline, when ``use_state_after`` is set); ``summary`` (``m.heroes``: up to
5 joined or invited members other than the user, else left or banned ones,
required when the room has no name or canonical alias; the member counts);
"Lazy-loading room members"; "Receipts" (``m.read.private`` receipts are only
sent to their owner); "Stripped state" (invite and knock state include
``m.room.create`` and the user's own membership event).
"""

import attr
from twisted.internet import defer

from mxref.client.serialise import (
    add_prev_content,
    add_replacement,
    format_client_event,
    strip_state_event,
)
from mxref.client.tokens import format_stream_position
from mxref.events.redaction import redact
from mxref.events.room_versions import get_room_version

#: How many times the timeline reader goes further back to fill a filtered timeline.
MAX_TIMELINE_READS = 3

#: At most this many heroes in a room summary.
MAX_HEROES = 5

PRIVATE_READ_RECEIPT = "m.read.private"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Timeline:
    """The timeline chosen for a room.

    :param events: the StoredEvents to send, oldest first.
    :param limited: whether older events in the requested range were left out.
    :param start: the stream position at the start of the timeline: just
        before its first event; the end of the window when events of the
        window were read but none is sent (the state then covers them); the
        start of the window when it held no events.
    :param prev_batch: the ``/messages`` token for the events before it.
    """

    events: list
    limited: bool
    start: int
    prev_batch: str


class RoomSections:
    """Builds the pieces of per-room ``/sync`` entries for one user.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param visibility: an :class:`~mxref.client.visibility.EventVisibility`.
    :param creator: an :class:`~mxref.rooms.creator.EventCreator` (stripped state).
    """

    def __init__(self, events, rooms, visibility, creator):
        self._events = events
        self._rooms = rooms
        self._visibility = visibility
        self._creator = creator

    @defer.inlineCallbacks
    def timeline(
        self, user_id, room_id, from_stream, to_stream, sync_filter, ignored_users=frozenset()
    ):
        """The newest events of a room in ``(from_stream, to_stream]`` that the user may see and
        the filter lets through, at most the filter's timeline limit.

        Message events of ignored users are left out; their state events are
        kept (Client-Server API, "Ignoring Users": "Servers must still send
        state events sent by ignored users to clients").

        :param from_stream: the ``since`` position, or ``None`` for the room's whole history.
        :param to_stream: the last position to include.
        Events left out because the user may not see them or the filter drops
        them do not make the timeline ``limited``; the state sent with it is
        the state at its first event, so state changes made by events left
        out still reach the client.

        :returns: Deferred firing with a :class:`Timeline`.
        """
        limit = sync_filter.timeline_limit()
        lower = from_stream or 0
        collected = []
        upper = to_stream
        limited = False
        earliest_read = None
        for _ in range(MAX_TIMELINE_READS):
            if limit == 0 or upper <= lower:
                break
            chunks = yield self._events.get_events_since(lower, [room_id], limit, to_stream=upper)
            chunk = chunks.get(room_id)
            if chunk is None or not chunk.events:
                limited = False
                break
            visible = yield self._visibility.filter_for_user(user_id, chunk.events)
            wanted = [
                e
                for e in visible
                if sync_filter.room_timeline.matches_stored(e)
                and (e.is_state or e.sender not in ignored_users)
            ]
            collected = wanted + collected
            earliest_read = chunk.events[0].stream_ordering
            limited = chunk.limited
            if not limited or len(collected) >= limit:
                break
            upper = earliest_read - 1
        if limit == 0:
            chunks = yield self._events.get_events_since(lower, [room_id], 1, to_stream=to_stream)
            limited = room_id in chunks
        if len(collected) > limit:
            collected = collected[len(collected) - limit :]
            limited = True
        if collected:
            start = collected[0].stream_ordering - 1
        elif earliest_read is not None or limited:
            start = to_stream
        else:
            start = lower
        if collected:
            prev_batch = format_stream_position(collected[0].stream_ordering - 1)
        else:
            prev_batch = format_stream_position(start if limited else to_stream)
        return Timeline(collected, limited, start, prev_batch)

    @defer.inlineCallbacks
    def state_ids(self, room_id, since_stream, at_stream, full, room_deltas=()):
        """The state to send, as a state map.

        :param since_stream: the ``since`` position (ignored when ``full``).
        :param at_stream: the position the state is wanted at (the start of
            the timeline, or its end for ``state_after``).
        :param full: send all the state at ``at_stream``, else only the
            entries that differ from the state at ``since_stream``.
        :param room_deltas: for a partial state, the room's current-state
            deltas after ``since_stream`` (``IEventStore.get_current_state_deltas``
            rows, in stream order); only their keys can differ.
        :returns: Deferred firing with ``{(type, state_key): event_id}``.
        """
        if full:
            state = yield self._events.get_current_state_ids(room_id, at_stream=at_stream)
            return state
        changed = {}
        for stream, _room_id, event_type, state_key, event_id in room_deltas:
            if since_stream < stream <= at_stream:
                changed[(event_type, state_key)] = event_id
        if not changed:
            return {}
        before = yield self._events.get_current_state_ids(
            room_id, types=list(changed), at_stream=since_stream
        )
        return {
            key: event_id
            for key, event_id in changed.items()
            if event_id is not None and before.get(key) != event_id
        }

    @defer.inlineCallbacks
    def state_events(
        self, user_id, room_id, state_ids, timeline, sync_filter, full, exclude_timeline=True
    ):
        """Load the state events to send, applying the state filter and lazy-loading of members.

        With ``lazy_load_members`` and full state, only the membership events of
        the timeline's senders and of the user are kept; a partial (gap) state
        keeps all its membership events, as the spec requires for limited syncs.

        :param exclude_timeline: leave out events that are in the timeline
            (for ``state``; ``state_after`` keeps them).

        :returns: Deferred firing with a list of StoredEvents ordered by (type, state_key).
        """
        state_filter = sync_filter.room_state
        wanted_members = None
        if state_filter.lazy_load_members and full:
            wanted_members = {event.sender for event in timeline.events} | {user_id}
        timeline_ids = {event.event_id for event in timeline.events} if exclude_timeline else set()
        keys = []
        for key in sorted(state_ids):
            if state_ids[key] in timeline_ids:
                continue
            if (
                wanted_members is not None
                and key[0] == "m.room.member"
                and key[1] not in wanted_members
            ):
                continue
            keys.append(key)
        stored = yield self._events.get_events(
            [state_ids[key] for key in keys], allow_rejected=True
        )
        result = []
        for key in keys:
            event = stored.get(state_ids[key])
            if event is not None and state_filter.matches_stored(event):
                result.append(event)
        return result

    @defer.inlineCallbacks
    def serialise(self, stored_events, room_id, sync_filter, now_ms, with_prev_content=False):
        """Format events for the response: redactions applied, latest edits bundled (client
        format only), client or federation format,
        ``event_fields`` projection.

        :param with_prev_content: add ``unsigned.prev_content`` to state events (for timelines).
        :returns: Deferred firing with a list of dicts.
        """
        if not stored_events:
            return []
        version_id = yield self._rooms.get_room_version(room_id)
        version = get_room_version(version_id)
        redactions = yield self._visibility.redactions_for(stored_events)
        replacements = {}
        if sync_filter.event_format != "federation":
            replacements = yield self._visibility.replacements_for(stored_events, redactions)
        serialised = []
        for stored in stored_events:
            redaction = redactions.get(stored.event_id)
            if sync_filter.event_format == "federation":
                event = redact(stored.pdu, version) if redaction is not None else dict(stored.pdu)
            else:
                event = format_client_event(
                    stored, now_ms, version, redaction=redaction, include_room_id=False
                )
                replacement = replacements.get(stored.event_id)
                if replacement is not None:
                    add_replacement(
                        event,
                        format_client_event(replacement, now_ms, version, include_room_id=False),
                    )
                if with_prev_content and stored.is_state and redaction is None:
                    replaced = yield self._replaced_state(stored)
                    add_prev_content(event, replaced)
            serialised.append(sync_filter.project(event))
        return serialised

    @defer.inlineCallbacks
    def _replaced_state(self, stored):
        """The state event a timeline state event replaced, or ``None``."""
        key = (stored.type, stored.state_key)
        before = yield self._events.get_current_state_ids(
            stored.room_id, types=[key], at_stream=stored.stream_ordering - 1
        )
        replaced_id = before.get(key)
        if replaced_id is None or replaced_id == stored.event_id:
            return None
        replaced = yield self._events.get_event(replaced_id, allow_rejected=True)
        return replaced

    @defer.inlineCallbacks
    def summary(self, user_id, room_id):
        """The ``summary`` object: member counts, and heroes when the room has no name or alias.

        Members carry no join order in storage, so heroes are taken in user ID order.

        :returns: Deferred firing with a dict.
        """
        stats = yield self._rooms.get_room_stats(room_id)
        summary = {
            "m.joined_member_count": stats.joined_members if stats is not None else 0,
            "m.invited_member_count": stats.invited_members if stats is not None else 0,
        }
        if stats is None or not (stats.name or stats.canonical_alias):
            members = yield self._rooms.get_members(room_id)
            others = sorted((uid, m.membership) for uid, m in members.items() if uid != user_id)
            heroes = [uid for uid, membership in others if membership in ("join", "invite")]
            if not heroes:
                heroes = [uid for uid, membership in others if membership in ("leave", "ban")]
            summary["m.heroes"] = heroes[:MAX_HEROES]
        return summary

    @defer.inlineCallbacks
    def stripped_state(self, room_id, membership_event_id):
        """The stripped state shown for an invite or knock: the room's stripped state events
        (from our copy of the room, else from the invite's ``unsigned.invite_room_state``)
        followed by the user's own membership event.

        :returns: Deferred firing with a list of stripped state dicts.
        """
        membership_event = yield self._events.get_event(membership_event_id, allow_rejected=True)
        room_state = yield self._creator.stripped_state_events(room_id)
        if not room_state and membership_event is not None:
            unsigned = membership_event.pdu.get("unsigned")
            carried = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
            if not isinstance(carried, list):
                carried = unsigned.get("knock_room_state") if isinstance(unsigned, dict) else None
            room_state = [
                e for e in carried or () if isinstance(e, dict) and "type" in e and "sender" in e
            ]
        stripped = [strip_state_event(event) for event in room_state]
        if membership_event is not None:
            stripped.append(strip_state_event(membership_event.pdu))
        return stripped


def receipt_events(receipts, user_id) -> dict:
    """Group stored receipts into one ``m.receipt`` event per room.

    ``m.read.private`` receipts of other users are left out.

    :param receipts: :class:`~mxref.storage.records.Receipt` records in stream order.
    :returns: ``{room_id: m.receipt event dict}`` (not a Deferred).
    """
    contents = {}
    for receipt in receipts:
        if receipt.receipt_type == PRIVATE_READ_RECEIPT and receipt.user_id != user_id:
            continue
        data = dict(receipt.data)
        if receipt.thread_id is not None:
            data["thread_id"] = receipt.thread_id
        by_event = contents.setdefault(receipt.room_id, {}).setdefault(receipt.event_id, {})
        by_event.setdefault(receipt.receipt_type, {})[receipt.user_id] = data
    return {
        room_id: {"type": "m.receipt", "content": content} for room_id, content in contents.items()
    }
