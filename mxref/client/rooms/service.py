"""Room logic behind the Client-Server API's room endpoints: thin services over the room
services (:mod:`mxref.rooms`) and the storage interfaces.

:class:`RoomActions` changes rooms (create, send, set state, redact, membership, forget);
:class:`RoomReader` reads them (state, single events, members, joined rooms, ``/messages``,
``/context``), applying history visibility and redactions.

Spec (v1.19), Client-Server API:

* "Creation" (``POST /createRoom``), "Room membership" (join, invite, leave, forget, kick,
  ban, unban), "Sending events to a room" (``PUT .../send/...`` and ``PUT .../state/...``),
  "Transaction identifiers" (retries from the same device give the same event),
  "Redactions" (``PUT .../redact/{eventId}/{txnId}``).
* "Getting events for a room": ``GET .../state``, ``GET .../state/{eventType}/{stateKey}``
  (403 for a user who is not and never was a member; a user who left sees the state as it
  was when they left), ``GET .../event/{eventId}`` (404 when not visible), ``GET
  .../members`` (``at``, ``membership``/``not_membership`` combined with "or"), ``GET
  .../joined_members``, ``GET /joined_rooms``.
* "Pagination" and ``GET .../messages`` (``from`` optional since v1.3; ``end`` omitted when
  there is nothing more), ``GET .../context/{eventId}``, "Lazy-loading room members" (the
  ``state`` holds the membership events of the senders of the returned events); timeline
  state events carry ``unsigned.prev_content`` ("Client event format").
* "Room History Visibility" (applied by :class:`~mxref.client.visibility.EventVisibility`),
  "Forgetting rooms" (after ``/forget`` the user can no longer read the room's history).
"""

import attr
from twisted.logger import Logger

from mxref.client.serialise import add_prev_content, add_replacement, format_client_event
from mxref.client.tokens import format_room_position, parse_pagination_token
from mxref.errors import MatrixError
from mxref.events.redaction import redact
from mxref.storage.records import RoomPosition

#: The largest ``limit`` ``/messages`` and ``/context`` honour.
MAX_PAGINATION_LIMIT = 1000

#: The fewest events ``/messages`` reads from storage at a time (more when the page is larger).
PAGINATION_BATCH = 20

#: How many storage batches ``/messages`` reads at most to fill one page when history
#: visibility or the filter hide events.
MAX_PAGINATION_ROUNDS = 5

#: The most gaps in the history one ``/messages`` page asks other servers to fill.
MAX_BACKFILLS_PER_PAGE = 3

HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")


#: Positions beyond this cannot be stored in a signed 64-bit column (SQLite and PostgreSQL).
MAX_POSITION = 2**63 - 1


def parse_position(token):
    """A ``/messages``/``/members`` token as a :class:`~mxref.storage.records.RoomPosition`,
    refusing numbers the database cannot compare against. Not a Deferred.

    :raises MatrixError: 400 ``M_INVALID_PARAM`` for a malformed or out-of-range token.
    """
    position = parse_pagination_token(token)
    if position.stream > MAX_POSITION or abs(position.topological or 0) > MAX_POSITION:
        raise MatrixError(400, "M_INVALID_PARAM", f"Pagination token out of range: {token!r}")
    return position


def _not_member(user_id, room_id):
    return MatrixError(
        403, "M_FORBIDDEN", f"User {user_id} is not and was not a member of room {room_id}"
    )


class RoomActions:
    """Changes to rooms requested by local users.

    :param creator: an :class:`~mxref.rooms.creator.EventCreator`.
    :param room_creator: a :class:`~mxref.rooms.room_creation.RoomCreator`.
    :param membership: a :class:`~mxref.rooms.membership.MembershipUpdater`.
    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param message_limiter: a :class:`~mxref.ratelimit.RateLimiter` keyed by user ID for
        creating rooms and sending events (``rc_message``), or ``None`` for no limit.
    """

    log = Logger()

    def __init__(self, creator, room_creator, membership, events, rooms, message_limiter=None):
        self._creator = creator
        self._room_creator = room_creator
        self._membership = membership
        self._events = events
        self._rooms = rooms
        self._limiter = message_limiter

    @staticmethod
    def _check_not_create(event_type):
        """A room has exactly one ``m.room.create`` event, made with the room."""
        if event_type == "m.room.create":
            raise MatrixError(
                403, "M_FORBIDDEN", "m.room.create can only be sent when the room is created"
            )

    def _check_rate(self, requester):
        if self._limiter is not None:
            self._limiter.check(requester.user_id)

    async def create_room(self, requester, options):
        """Create a room.

        :param options: keyword arguments for
            :meth:`~mxref.rooms.room_creation.RoomCreator.create_room`, already type-checked.
        :returns: (coroutine) the new room's ID.
        """
        self._check_rate(requester)
        return await self._room_creator.create_room(requester.user_id, **options)

    async def send_message(self, requester, room_id, event_type, content, txn_id):
        """Send a message event; a repeated ``txn_id`` from the same device gives the same event.

        :returns: (coroutine) the event ID.
        """
        self._check_not_create(event_type)
        event_id, _ = await self._creator.send_event(
            room_id,
            requester.user_id,
            event_type,
            content,
            txn=(requester.device_id, txn_id),
            before_new_event=lambda: self._check_rate(requester),
        )
        return event_id

    async def set_state(self, requester, room_id, event_type, state_key, content):
        """Send a state event. Setting the same content again from the same sender returns the
        current event instead of creating a new one (as other servers do).

        :returns: (coroutine) the event ID.
        """
        self._check_not_create(event_type)
        current = await self._events.get_current_state(room_id, types=[(event_type, state_key)])
        same = current.get((event_type, state_key))
        if (
            same is not None
            and same.sender == requester.user_id
            and same.pdu.get("content") == content
        ):
            return same.event_id
        self._check_rate(requester)
        event_id, _ = await self._creator.send_event(
            room_id, requester.user_id, event_type, content, state_key=state_key
        )
        return event_id

    async def redact(self, requester, room_id, event_id, txn_id, reason=None):
        """Redact an event (the sender's own, or another's with the ``redact`` power level).

        :returns: (coroutine) the redaction event's ID.
        """
        content = {} if reason is None else {"reason": reason}
        redaction_id, _ = await self._creator.send_event(
            room_id,
            requester.user_id,
            "m.room.redaction",
            content,
            txn=(requester.device_id, txn_id),
            redacts=event_id,
            before_new_event=lambda: self._check_rate(requester),
        )
        return redaction_id

    async def join(self, requester, room_id_or_alias, servers=(), reason=None):
        """Join a room by ID or alias. :returns: (coroutine) the room ID."""
        return await self._membership.join(requester.user_id, room_id_or_alias, servers, reason)

    async def invite(self, requester, room_id, user_id, reason=None):
        """Invite a user. :returns: (coroutine) the invite event's ID."""
        await self._check_room_known(room_id)
        return await self._membership.invite(requester.user_id, room_id, user_id, reason)

    async def leave(self, requester, room_id, reason=None):
        """Leave a room, or reject an invite. :returns: (coroutine) the leave event's ID."""
        return await self._membership.leave(requester.user_id, room_id, reason)

    async def kick(self, requester, room_id, user_id, reason=None):
        """Kick a member (their membership becomes ``leave``). :returns: (coroutine) the event ID."""
        await self._check_room_known(room_id)
        members = await self._rooms.get_members(room_id)
        target = members.get(user_id)
        if target is None or target.membership not in ("join", "invite", "knock"):
            raise MatrixError(
                403, "M_FORBIDDEN", f"{user_id} is not in the room, so cannot be kicked"
            )
        return await self._membership.set_membership_of_other(
            requester.user_id, room_id, user_id, "leave", reason
        )

    async def ban(self, requester, room_id, user_id, reason=None):
        """Ban a user. :returns: (coroutine) the event ID."""
        await self._check_room_known(room_id)
        return await self._membership.set_membership_of_other(
            requester.user_id, room_id, user_id, "ban", reason
        )

    async def unban(self, requester, room_id, user_id, reason=None):
        """Unban a banned user (their membership becomes ``leave``). :returns: (coroutine) the event ID."""
        await self._check_room_known(room_id)
        members = await self._rooms.get_members(room_id)
        target = members.get(user_id)
        if target is None or target.membership != "ban":
            raise MatrixError(403, "M_FORBIDDEN", f"{user_id} is not banned from the room")
        return await self._membership.set_membership_of_other(
            requester.user_id, room_id, user_id, "leave", reason
        )

    async def forget(self, requester, room_id):
        """Forget a room the user is no longer in.

        :raises MatrixError: 400 ``M_UNKNOWN`` while the user is joined (the spec's error),
            404 ``M_NOT_FOUND`` if the user never had a membership of the room.
        """
        memberships = await self._rooms.get_rooms_for_user(requester.user_id, memberships=None)
        current = {m.room_id: m.membership for m in memberships}.get(room_id)
        if current == "join":
            raise MatrixError(400, "M_UNKNOWN", f"User {requester.user_id} is in room {room_id}")
        if current is None or not await self._rooms.forget_room(requester.user_id, room_id):
            raise MatrixError(
                404, "M_NOT_FOUND", f"User {requester.user_id} has no membership of room {room_id}"
            )
        self.log.info("{user_id} forgot {room_id}", user_id=requester.user_id, room_id=room_id)

    async def _check_room_known(self, room_id):
        if await self._rooms.get_room_version(room_id) is None:
            raise MatrixError(403, "M_FORBIDDEN", f"Unknown room {room_id}")


class _ReadAccess:
    """What a user may read of a room: everything now (``until_event_id`` is ``None``), or
    the room as it was at their leave/ban (``until_event_id``, at ``until_stream``)."""

    __slots__ = ("until_event_id", "until_stream")

    def __init__(self, until_event_id=None, until_stream=None):
        self.until_event_id = until_event_id
        self.until_stream = until_stream


class RoomReader:
    """Reads rooms for local users, applying history visibility and redactions.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param state: an :class:`~mxref.storage.interfaces.IStateStore`.
    :param visibility: an :class:`~mxref.client.visibility.EventVisibility`.
    :param clock: an ``IReactorTime`` (for ``unsigned.age``).
    :param remote_history: an :class:`~mxref.rooms.interfaces.IRemoteHistory`; when given,
        ``/messages`` going backwards fetches the history this server lacks from the room's
        other servers (Server-Server API, "Backfilling and retrieving missing events").
    """

    def __init__(self, events, rooms, state, visibility, clock, remote_history=None):
        self._events = events
        self._rooms = rooms
        self._state = state
        self._visibility = visibility
        self._clock = clock
        self._remote_history = remote_history

    def _now_ms(self):
        return int(self._clock.seconds() * 1000)

    async def _room_version(self, room_id):
        version = await self._rooms.get_room_version(room_id)
        if version is None:
            raise MatrixError(403, "M_FORBIDDEN", f"Unknown room {room_id}")
        return version

    async def _read_access(self, user_id, room_id):
        """Whether and how far ``user_id`` may read ``room_id``.

        Joined users read it all; users who left or were banned read it as it was then;
        anybody reads a ``world_readable`` room; forgotten rooms are closed.

        :raises MatrixError: 403 ``M_FORBIDDEN`` otherwise (unknown rooms included).
        """
        await self._room_version(room_id)
        memberships = await self._rooms.get_rooms_for_user(user_id, memberships=None)
        mine = {m.room_id: m for m in memberships}.get(room_id)
        if mine is not None and mine.membership == "join":
            return _ReadAccess()
        if room_id in await self._rooms.get_forgotten_room_ids(user_id):
            raise _not_member(user_id, room_id)
        if await self._is_world_readable(room_id):
            return _ReadAccess()
        if mine is not None and mine.membership in ("leave", "ban"):
            event = await self._events.get_event(mine.event_id)
            if event is not None and not event.outlier:
                return _ReadAccess(mine.event_id, mine.stream_ordering)
        raise _not_member(user_id, room_id)

    async def _is_world_readable(self, room_id):
        state = await self._events.get_current_state(room_id, types=[HISTORY_VISIBILITY_KEY])
        event = state.get(HISTORY_VISIBILITY_KEY)
        content = event.pdu.get("content", {}) if event is not None else {}
        return content.get("history_visibility") == "world_readable"

    async def _serialise(self, events, room_version, with_prev_content=False):
        """Client-format events with their redactions applied and their latest edits bundled.

        :param with_prev_content: give timeline state events ``unsigned.prev_content`` (the
            content of the state they replaced, itself redacted if it was redacted).
        """
        redactions = await self._visibility.redactions_for(events)
        replacements = await self._visibility.replacements_for(events, redactions)
        now = self._now_ms()
        serialised = []
        for event in events:
            redaction = redactions.get(event.event_id)
            client_event = format_client_event(event, now, room_version, redaction=redaction)
            replacement = replacements.get(event.event_id)
            if replacement is not None:
                add_replacement(client_event, format_client_event(replacement, now, room_version))
            if with_prev_content and redaction is None and event.state_key is not None:
                replaced = await self._replaced_state(event, room_version)
                if replaced is not None:
                    add_prev_content(client_event, replaced)
            serialised.append(client_event)
        return serialised

    async def _replaced_state(self, event, room_version):
        """The state event ``event`` replaced (from the state after its first prev event that
        has one), as a StoredEvent whose PDU is redacted if a redaction applies; or ``None``."""
        if not event.prev_event_ids:
            return None
        groups = await self._state.get_state_groups_for_events(list(event.prev_event_ids))
        group = next((groups[p] for p in event.prev_event_ids if p in groups), None)
        if group is None:
            return None
        key = (event.type, event.state_key)
        ids = await self._state.get_state_group_ids(group, types=[key])
        replaced = await self._events.get_event(ids[key]) if key in ids else None
        if replaced is None:
            return None
        if (await self._visibility.redactions_for([replaced])).get(replaced.event_id) is not None:
            replaced = attr.evolve(replaced, pdu=redact(replaced.pdu, room_version))
        return replaced

    async def _state_ids(self, room_id, access):
        if access.until_event_id is None:
            return await self._events.get_current_state_ids(room_id)
        ids = await self._events.get_state_ids_at_event(access.until_event_id)
        return ids or {}

    async def get_state(self, requester, room_id):
        """The room's state events (current, or at the user's leave).

        :returns: (coroutine) a list of client-format events.
        """
        access = await self._read_access(requester.user_id, room_id)
        version = await self._room_version(room_id)
        ids = await self._state_ids(room_id, access)
        stored = await self._events.get_events(list(ids.values()))
        events = [stored[event_id] for _, event_id in sorted(ids.items()) if event_id in stored]
        return await self._serialise(events, version)

    async def get_state_event(self, requester, room_id, event_type, state_key, format="content"):
        """One state event's content (``format="content"``) or the whole client event.

        :raises MatrixError: 404 ``M_NOT_FOUND`` when the room has no such state.
        :returns: (coroutine) a dict.
        """
        access = await self._read_access(requester.user_id, room_id)
        version = await self._room_version(room_id)
        ids = await self._state_ids(room_id, access)
        event = None
        if (event_type, state_key) in ids:
            event = await self._events.get_event(ids[(event_type, state_key)])
        if event is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Event not found: {event_type} {state_key!r}")
        client_event = (await self._serialise([event], version))[0]
        return client_event if format == "event" else client_event["content"]

    async def get_event(self, requester, room_id, event_id):
        """One event of the room, if the user may see it.

        :raises MatrixError: 404 ``M_NOT_FOUND`` for unknown or invisible events.
        :returns: (coroutine) a client-format event.
        """
        stored = await self._events.get_event(event_id)
        if stored is None or stored.room_id != room_id:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        if room_id in await self._rooms.get_forgotten_room_ids(requester.user_id):
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        visible = await self._visibility.filter_for_user(requester.user_id, [stored])
        if not visible:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        version = await self._room_version(room_id)
        return (await self._serialise(visible, version))[0]

    async def get_members(self, requester, room_id, at=None, membership=None, not_membership=None):
        """The room's ``m.room.member`` events, optionally at a pagination token and filtered.

        ``membership`` and ``not_membership`` given together keep a member matching either.

        :param at: a pagination token (``/sync`` ``prev_batch`` or a ``/messages`` token).
        :returns: (coroutine) a list of client-format events.
        """
        access = await self._read_access(requester.user_id, room_id)
        version = await self._room_version(room_id)
        at_stream = None
        if at is not None:
            at_stream = parse_position(at).stream
        if access.until_stream is not None:
            at_stream = (
                access.until_stream if at_stream is None else min(at_stream, access.until_stream)
            )
        members = await self._rooms.get_members(room_id, at_stream=at_stream)

        def wanted(kind):
            if membership is None and not_membership is None:
                return True
            return (membership is not None and kind == membership) or (
                not_membership is not None and kind != not_membership
            )

        ids = [
            member.event_id for _, member in sorted(members.items()) if wanted(member.membership)
        ]
        stored = await self._events.get_events(ids)
        return await self._serialise([stored[i] for i in ids if i in stored], version)

    async def get_joined_members(self, requester, room_id):
        """The joined members with their display names and avatars. The spec: "The current user
        must be in the room for it to work".

        :returns: (coroutine) ``{user_id: {"display_name": ..., "avatar_url": ...}}``.
        """
        await self._room_version(room_id)
        members = await self._rooms.get_members(room_id, membership="join")
        if requester.user_id not in members:
            raise MatrixError(
                403, "M_FORBIDDEN", f"User {requester.user_id} is not in room {room_id}"
            )
        stored = await self._events.get_events([m.event_id for m in members.values()])
        joined = {}
        for user_id, member in sorted(members.items()):
            event = stored.get(member.event_id)
            content = event.pdu.get("content", {}) if event is not None else {}
            entry = {}
            for source, target in (("displayname", "display_name"), ("avatar_url", "avatar_url")):
                if isinstance(content.get(source), str):
                    entry[target] = content[source]
            joined[user_id] = entry
        return joined

    async def joined_rooms(self, requester):
        """The IDs of the rooms the user is joined to. :returns: (coroutine) a list."""
        memberships = await self._rooms.get_rooms_for_user(requester.user_id, memberships=("join",))
        return [m.room_id for m in memberships]

    async def get_messages(
        self, requester, room_id, from_token, to_token, direction, limit, event_filter
    ):
        """A page of the room's timeline for ``GET /messages``.

        :param from_token: where to start, or ``None`` for the latest event the user may see
            (``"b"``) or the room's beginning (``"f"``).
        :param to_token: where to stop, or ``None``.
        :param direction: ``"b"`` (newest first) or ``"f"`` (oldest first).
        :param limit: the most events to return.
        :param event_filter: an :class:`~mxref.client.filters.filtering.EventFilter`.
        :returns: (coroutine) ``{start, end?, chunk, state}``.
        """
        access = await self._read_access(requester.user_id, room_id)
        version = await self._room_version(room_id)
        if from_token is not None:
            start = parse_position(from_token)
        elif direction == "b":
            position = access.until_stream
            if position is None:
                position = await self._events.get_max_stream_ordering()
            start = RoomPosition(None, position)
        else:
            # Before the first event in topological order (a stream position would leave out
            # backfilled history, which is numbered below zero).
            start = RoomPosition(-1, 0)
        to_position = parse_position(to_token) if to_token is not None else None
        limit = min(limit, event_filter.limit or limit, MAX_PAGINATION_LIMIT)

        chunk, end = [], start
        exhausted = not event_filter.allows_room(room_id)
        if direction == "b" and start.topological is None and not exhausted:
            end = await self._topological_start(room_id, start)
        rounds = 0
        gaps_tried = set()
        while not exhausted and len(chunk) < limit and rounds < MAX_PAGINATION_ROUNDS:
            rounds += 1
            wanted = max(limit - len(chunk), PAGINATION_BATCH)
            batch = await self._events.get_room_events_stream(
                room_id, end, to_position, wanted, direction
            )
            if direction == "b" and self._remote_history is not None:
                gap = await self._history_gap(batch)
                if gap and gap not in gaps_tried and len(gaps_tried) < MAX_BACKFILLS_PER_PAGE:
                    # Events in this batch name predecessors we lack: fetch them from the
                    # room's other servers, then read the batch again.
                    gaps_tried.add(gap)
                    if await self._remote_history.fill_gap(room_id, gap):
                        rounds -= 1
                        continue
            visible = await self._visibility.filter_for_user(requester.user_id, batch)
            visible_ids = {e.event_id for e in visible}
            consumed = 0
            for event in batch:
                if len(chunk) >= limit:
                    break
                consumed += 1
                end = event.position_before if direction == "b" else event.position
                if event.event_id in visible_ids and event_filter.matches_stored(event):
                    chunk.append(event)
            exhausted = consumed == len(batch) and len(batch) < wanted
        response = {
            "start": format_room_position(start),
            "chunk": await self._serialise(chunk, version, with_prev_content=True),
            "state": (
                await self._lazy_members(room_id, chunk, version)
                if event_filter.lazy_load_members
                else []
            ),
        }
        if not exhausted:
            response["end"] = format_room_position(end)
        return response

    async def _topological_start(self, room_id, position):
        """A topological position for paging backwards from a stream-only ``position`` (a
        ``/sync`` token): just after the deepest event at or before it. Unlike the stream
        position, it also reaches older events stored later (history fetched with backfill).

        :returns: (coroutine) a :class:`~mxref.storage.records.RoomPosition`.
        """
        newest = await self._events.get_room_events_stream(room_id, position, None, 1, "b")
        if not newest:
            return position
        return RoomPosition(newest[0].depth, position.stream)

    async def _history_gap(self, batch):
        """The ``prev_events`` of ``batch`` that this server does not hold in the timeline
        (unknown, or known only as outliers): where its history has a gap.

        :returns: (coroutine) a sorted tuple of event IDs, empty when there is no gap.
        """
        prev_ids = set()
        for event in batch:
            for reference in event.pdu.get("prev_events") or ():
                # Room versions 1 and 2 reference events as [event_id, hashes].
                prev_id = reference[0] if isinstance(reference, list) and reference else reference
                if isinstance(prev_id, str):
                    prev_ids.add(prev_id)
        prev_ids -= {event.event_id for event in batch}
        if not prev_ids:
            return ()
        held = await self._events.get_events(sorted(prev_ids), allow_rejected=True)
        return tuple(sorted(p for p in prev_ids if p not in held or held[p].outlier))

    async def get_context(self, requester, room_id, event_id, limit, event_filter):
        """Events around one event, for ``GET /context/{eventId}``.

        The limit is shared between ``events_before`` and ``events_after``; the filter applies
        to them and to ``state``, never to ``event`` itself.

        :raises MatrixError: 404 ``M_NOT_FOUND`` for an unknown or invisible event.
        :returns: (coroutine) ``{start, end, events_before, event, events_after, state}``.
        """
        target = await self._events.get_event(event_id)
        if target is None or target.room_id != room_id or target.stream_ordering is None:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        await self._read_access(requester.user_id, room_id)
        version = await self._room_version(room_id)
        if not await self._visibility.filter_for_user(requester.user_id, [target]):
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        limit = min(limit, MAX_PAGINATION_LIMIT)
        before_limit = limit // 2
        after_limit = limit - before_limit

        async def around(position, count, direction):
            if count <= 0:
                return [], position
            batch = await self._events.get_room_events_stream(
                room_id, position, None, count, direction
            )
            visible = await self._visibility.filter_for_user(requester.user_id, batch)
            last = position
            if batch:
                last = batch[-1].position_before if direction == "b" else batch[-1].position
            return [e for e in visible if event_filter.matches_stored(e)], last

        before, start = await around(target.position_before, before_limit, "b")
        after, end = await around(target.position, after_limit, "f")
        last_event = after[-1] if after else target
        if event_filter.lazy_load_members:
            state = await self._lazy_members(
                room_id, before + [target] + after, version, last_event
            )
        else:
            ids = (
                await self._state.get_state_group_ids(last_event.state_group)
                if last_event.state_group
                else {}
            )
            stored = await self._events.get_events(list(ids.values()))
            state_events = [
                stored[i]
                for _, i in sorted(ids.items())
                if i in stored and event_filter.matches_stored(stored[i])
            ]
            state = await self._serialise(state_events, version)
        return {
            "start": format_room_position(start),
            "end": format_room_position(end),
            "events_before": await self._serialise(before, version, with_prev_content=True),
            "event": (await self._serialise([target], version, with_prev_content=True))[0],
            "events_after": await self._serialise(after, version, with_prev_content=True),
            "state": state,
        }

    async def _lazy_members(self, room_id, events, version, at_event=None):
        """The ``m.room.member`` events of the senders of ``events``, as the state after
        ``at_event`` (default: the first of ``events``) has them ("Lazy-loading room members")."""
        if not events:
            return []
        at_event = at_event or events[0]
        senders = sorted({e.sender for e in events})
        keys = [("m.room.member", sender) for sender in senders]
        if at_event.state_group is not None:
            ids = await self._state.get_state_group_ids(at_event.state_group, types=keys)
        else:
            ids = await self._events.get_current_state_ids(room_id, types=keys)
        stored = await self._events.get_events(list(ids.values()))
        return await self._serialise(
            [stored[i] for _, i in sorted(ids.items()) if i in stored], version
        )
