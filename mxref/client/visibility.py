"""Which events a user may see (history visibility) and which redactions apply to them.

Spec: Client-Server API, "Room History Visibility"
(https://spec.matrix.org/v1.19/client-server-api/#room-history-visibility). For each event,
using the state at that event:

1. ``world_readable``: allow;
2. the user's membership was ``join``: allow;
3. ``shared``, and the user joined the room at some point after the event: allow (we take
   "is joined now" as the witness, like other servers);
4. the user's membership was ``invite`` and visibility is ``invited``: allow;
5. otherwise deny.

A user always sees their own membership events. Redactions: Client-Server API "Redactions"
and room version 3+ "Handling redactions": a redaction is applied to an event when its sender
is on the same server as the event's sender, or had the ``redact`` power level.

Edits: Client-Server API "Event replacements" > "Validity of replacement events" and
"Server-side aggregation of m.replace relationships": the most recent valid edit of an
unredacted event is bundled with it (see :meth:`EventVisibility.replacements_for`).
"""

from twisted.internet import defer

from mxref.events.authrules import get_power_level_value, get_user_power_level
from mxref.events.room_versions import get_room_version
from mxref.rooms.state import with_event_id
from mxref.types import UserID

HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")
CREATE_KEY = ("m.room.create", "")


def _server_of(user_id):
    try:
        return UserID.parse(user_id).server_name
    except ValueError:
        return None


def _is_edit(pdu):
    content = pdu.get("content")
    relates_to = content.get("m.relates_to") if isinstance(content, dict) else None
    return isinstance(relates_to, dict) and relates_to.get("rel_type") == "m.replace"


def _has_new_content(pdu):
    if pdu.get("type") == "m.room.encrypted":
        return True
    content = pdu.get("content")
    return isinstance(content, dict) and isinstance(content.get("m.new_content"), dict)


class EventVisibility:
    """Applies history visibility and redactions to stored events.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param state: an :class:`~mxref.storage.interfaces.IStateStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    """

    def __init__(self, events, state, rooms):
        self._events = events
        self._state = state
        self._rooms = rooms

    @defer.inlineCallbacks
    def filter_for_user(self, user_id, stored_events):
        """The events of ``stored_events`` that ``user_id`` may see, in the same order.

        Outliers, rejected and soft-failed events are never visible.

        :returns: Deferred firing with a list of StoredEvent.
        """
        candidates = [
            e for e in stored_events if not e.outlier and not e.rejected_reason and not e.soft_failed
        ]
        if not candidates:
            return []
        currently_joined = {}
        groups = {e.state_group for e in candidates if e.state_group is not None}
        facts = {}
        for group in groups:
            ids = yield self._state.get_state_group_ids(
                group, types=[HISTORY_VISIBILITY_KEY, ("m.room.member", user_id)]
            )
            facts[group] = ids
        wanted_ids = {event_id for ids in facts.values() for event_id in ids.values()}
        wanted = yield self._events.get_events(list(wanted_ids))
        visible = []
        for event in candidates:
            if event.type == "m.room.member" and event.state_key == user_id:
                visible.append(event)
                continue
            ids = facts.get(event.state_group, {})
            visibility = "shared"
            hv_event = wanted.get(ids.get(HISTORY_VISIBILITY_KEY))
            if hv_event is not None:
                visibility = hv_event.pdu.get("content", {}).get("history_visibility", "shared")
            membership = None
            member_event = wanted.get(ids.get(("m.room.member", user_id)))
            if member_event is not None:
                membership = member_event.pdu.get("content", {}).get("membership")
            if visibility == "world_readable" or membership == "join":
                visible.append(event)
            elif visibility == "shared":
                if event.room_id not in currently_joined:
                    members = yield self._rooms.get_members(event.room_id, membership="join")
                    currently_joined[event.room_id] = user_id in members
                if currently_joined[event.room_id]:
                    visible.append(event)
            elif visibility == "invited" and membership == "invite":
                visible.append(event)
        return visible

    @defer.inlineCallbacks
    def redactions_for(self, stored_events):
        """The redaction that applies to each event, where one does.

        :returns: Deferred firing with ``{event_id: redaction StoredEvent}``.
        """
        found = {}
        redaction_ids_of = yield self._events.get_redactions_of_events([e.event_id for e in stored_events])
        if not redaction_ids_of:
            return found
        all_redactions = yield self._events.get_events(
            [i for ids in redaction_ids_of.values() for i in ids]
        )
        for event in stored_events:
            redaction_ids = redaction_ids_of.get(event.event_id)
            if not redaction_ids:
                continue
            redactions = {i: all_redactions[i] for i in redaction_ids if i in all_redactions}
            for redaction_id in sorted(redactions, key=lambda i: redactions[i].stream_ordering or 0):
                redaction = redactions[redaction_id]
                if (yield self._redaction_applies(redaction, event)):
                    found[event.event_id] = redaction
                    break
        return found

    @defer.inlineCallbacks
    def replacements_for(self, stored_events, redactions):
        """The most recent valid edit of each event, for bundling under
        ``unsigned["m.relations"]["m.replace"]``.

        Client-Server API "Event replacements": an edit is valid when it has the original's
        room, sender and type, neither is a state event, the original is not itself an edit,
        and the edit has ``m.new_content`` (except encrypted edits, whose payload holds it).
        A redacted original gets no bundle; redacted edits are skipped.

        :param redactions: ``{event_id: redaction}`` for ``stored_events``, as from
            :meth:`redactions_for`.
        :returns: Deferred firing with ``{original_id: replacement StoredEvent}``.
        """
        originals = [
            e for e in stored_events
            if e.event_id not in redactions and not e.is_state and not _is_edit(e.pdu)
        ]
        if not originals:
            return {}
        candidates = yield self._events.get_replacements([e.event_id for e in originals])
        chosen = {}
        for original_id, replacements in candidates.items():
            for replacement in replacements:
                if not _has_new_content(replacement.pdu):
                    continue
                if (yield self.redactions_for([replacement])):
                    continue
                chosen[original_id] = replacement
                break
        return chosen

    @defer.inlineCallbacks
    def _redaction_applies(self, redaction, event):
        if redaction.room_id != event.room_id:
            return False
        if _server_of(redaction.sender) == _server_of(event.sender):
            return True
        version = yield self._rooms.get_room_version(event.room_id)
        if version is None:
            return False
        version = get_room_version(version)
        keys = [POWER_LEVELS_KEY, CREATE_KEY]
        if redaction.state_group is not None:
            ids = yield self._state.get_state_group_ids(redaction.state_group, types=keys)
        else:
            ids = yield self._events.get_current_state_ids(event.room_id, types=keys)
        stored = yield self._events.get_events(list(ids.values()))
        auth_state = {key: with_event_id(stored[i]) for key, i in ids.items() if i in stored}
        power_levels = auth_state.get(POWER_LEVELS_KEY)
        needed = get_power_level_value(power_levels["content"] if power_levels else {}, "redact", 50, version)
        return get_user_power_level(redaction.sender, auth_state, version) >= needed
