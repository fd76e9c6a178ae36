"""``/sync``: what changed for a user between two stream tokens, waiting for news when nothing did.

A sync covers the window ``(since, upto]`` of each stream, where ``upto`` is
read from storage when the request is served (``next_batch``). The user's
rooms fall into sections by their membership at the end of the window:

* ``join``: rooms the user is joined to. A room the user was already joined
  to at ``since`` gets its new timeline events, the state changes between
  ``since`` and the start of the timeline, new receipts and account data; it
  is left out when nothing changed. A room joined within the window (or any
  room in an initial sync, or with ``full_state``) gets the whole state at the
  start of its timeline instead.
* ``invite`` / ``knock``: rooms with a pending invite or knock (new ones only,
  in an incremental sync), with stripped state.
* ``leave``: rooms the user left or was kicked or banned from within the
  window, with the timeline up to the leave; in an initial sync only when the
  filter's ``include_leave`` asks for them.

Long-polling: when an incremental sync finds nothing to send, it waits on the
:class:`~mxref.notifier.Notifier` until a notification that concerns the
user or one of their joined rooms reports a position past ``upto`` on one of
the streams sync reads (room events, account data, receipts), then builds
the response again; when ``timeout`` passes it returns the empty response.

Presence: a sync marks the user online (``set_presence``, see
:mod:`mxref.client.presence.tracker`) and ``presence.events`` carries the ``m.presence`` events of
the users sharing a joined room with the syncer (and their own) that changed since the token,
or all known ones in an initial sync (Client-Server API, "Presence").

Message events and invites from users in the ``m.ignored_user_list`` account
data are not sent ("Ignoring Users"); their state events are.

Readings taken: timeline events are filtered by history visibility and then
by the timeline filter; a filtered-out event does not make the timeline
``limited``. ``unsigned.transaction_id`` cannot be set, because storage has no
read from an event to the client transaction that sent it.

Spec: Client-Server API, "Syncing" and ``GET /_matrix/client/v3/sync``
(https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3sync).
"""

import attr
from twisted.internet import defer
from twisted.logger import Logger

from mxref.client.account_data.service import ACCOUNT_DATA_STREAM
from mxref.client.presence.tracker import PRESENCE_STREAM
from mxref.client.receipts.typing import TYPING_STREAM
from mxref.client.sync.room_sections import RoomSections, receipt_events
from mxref.client.tokens import StreamToken
from mxref.rooms.persister import ROOM_EVENTS_STREAM

#: The notifier stream receipts are announced on (with the room ID).
RECEIPTS_STREAM = "receipts"

_TOKEN_FIELD_OF_STREAM = {
    ROOM_EVENTS_STREAM: "room_events",
    ACCOUNT_DATA_STREAM: "account_data",
    RECEIPTS_STREAM: "receipts",
    TYPING_STREAM: "typing",
    PRESENCE_STREAM: "presence",
}

LEFT_MEMBERSHIPS = ("leave", "ban")

#: The account data type listing the users whose messages and invites the user does not want.
IGNORED_USER_LIST = "m.ignored_user_list"


def all_of(*deferreds):
    """Wait for independent reads running side by side (on separate pool connections).

    :returns: Deferred firing with the list of their results, or failing with the first
        failure itself (not wrapped in ``FirstError``).
    """

    def unwrap(failure):
        failure.trap(defer.FirstError)
        return failure.value.subFailure

    return defer.gatherResults(list(deferreds), consumeErrors=True).addErrback(unwrap)


def is_past(notification, token) -> bool:
    """Whether a notification reports a position past ``token`` on a stream sync reads."""
    field = _TOKEN_FIELD_OF_STREAM.get(notification.stream_name)
    if field is None or not isinstance(notification.position, int):
        return False
    return notification.position > getattr(token, field)


def has_updates(response) -> bool:
    """Whether a built response carries anything for the client (else a long-poll waits)."""
    rooms = response["rooms"]
    if any(rooms[section] for section in ("join", "invite", "leave", "knock")):
        return True
    return bool(response["account_data"]["events"] or response["presence"]["events"])


@attr.s(slots=True)
class RoomSelection:
    """The user's rooms sorted into ``/sync`` sections.

    :ivar joined: ``{room_id: full}``, ``full`` saying whether to send the
        room's whole state rather than the changes since ``since``.
    :ivar invited: ``{room_id: UserMembership}``.
    :ivar knocked: ``{room_id: UserMembership}``.
    :ivar left: ``{room_id: (UserMembership, full)}``.
    :ivar joined_now: the rooms the user is joined to now (what a long-poll listens to).
    """

    joined_now = attr.ib(factory=list)
    joined = attr.ib(factory=dict)
    invited = attr.ib(factory=dict)
    knocked = attr.ib(factory=dict)
    left = attr.ib(factory=dict)

    def add(self, room_id, membership, full, include_leave) -> None:
        """File a room under the section its membership (a ``UserMembership``) calls for."""
        if membership.membership == "join":
            self.joined[room_id] = full
        elif membership.membership == "invite":
            self.invited[room_id] = membership
        elif membership.membership == "knock":
            self.knocked[room_id] = membership
        elif membership.membership in LEFT_MEMBERSHIPS and include_leave:
            self.left[room_id] = (membership, full)

    def keep_rooms(self, allows_room) -> None:
        """Drop the rooms for which ``allows_room(room_id)`` is false (the RoomFilter's rooms/not_rooms)."""
        for section in (self.joined, self.invited, self.knocked, self.left):
            for room_id in [r for r in section if not allows_room(r)]:
                del section[room_id]


class SyncService:
    """Serves ``/sync`` for local users.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param client_data: an :class:`~mxref.storage.interfaces.IClientDataStore`.
    :param visibility: an :class:`~mxref.client.visibility.EventVisibility`.
    :param creator: an :class:`~mxref.rooms.creator.EventCreator` (stripped state of invites).
    :param filters: a :class:`~mxref.client.filters.service.FilterService`.
    :param notifier: the :class:`~mxref.notifier.Notifier` to wait on.
    :param clock: an ``IReactorTime`` (event ages, the long-poll deadline).
    :param typing: the :class:`~mxref.client.receipts.typing.TypingTracker`, or ``None``.
    :param presence: the :class:`~mxref.client.presence.service.PresenceService`, or ``None``
        (no presence is tracked or sent).
    """

    log = Logger()

    def __init__(self, events, rooms, client_data, visibility, creator, filters, notifier, clock, typing=None, presence=None):
        self._typing = typing
        self._presence = presence
        self._events = events
        self._rooms = rooms
        self._client_data = client_data
        self._filters = filters
        self._notifier = notifier
        self._clock = clock
        self._sections = RoomSections(events, rooms, visibility, creator)

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    @defer.inlineCallbacks
    def current_token(self):
        """The positions every stream has reached.

        :returns: Deferred firing with a :class:`~mxref.client.tokens.StreamToken`.
        """
        room_events, account_data, receipts = yield all_of(
            self._events.get_max_stream_ordering(),
            self._client_data.get_account_data_position(),
            self._client_data.get_receipts_position(),
        )
        typing = self._typing.position if self._typing is not None else 0
        presence = self._presence.tracker.position if self._presence is not None else 0
        return StreamToken(room_events, account_data, receipts, typing, presence)

    @defer.inlineCallbacks
    def sync(
        self,
        requester,
        since=None,
        filter_param=None,
        full_state=False,
        timeout_ms=0,
        use_state_after=False,
        set_presence=None,
    ):
        """Answer one ``/sync`` request.

        :param requester: the authenticated :class:`~mxref.auth.tokens.Requester`.
        :param since: the ``since`` token string, or ``None`` for an initial sync.
        :param filter_param: the ``filter`` query parameter (ID or inline JSON), or ``None``.
        :param full_state: send the full state of every joined room (and do not wait).
        :param timeout_ms: how long to wait for news in an incremental sync.
        :param use_state_after: send ``state_after`` (state up to the end of the
            timeline) instead of ``state``.
        :param set_presence: the ``set_presence`` query parameter (``None``: ``online``).
        :returns: Deferred firing with the response body.
        :raises MatrixError: 400 ``M_INVALID_PARAM`` for a malformed ``since``
            token or a bad or unknown filter.
        """
        since_token = StreamToken.parse(since) if since is not None else None
        sync_filter = yield self._filters.resolve(requester.user_id, filter_param)
        if self._presence is not None:
            yield self._presence.tracker.record_sync(requester.user_id, set_presence, timeout_ms)
        deadline_ms = self._now_ms() + max(0, timeout_ms)
        while True:
            upto = yield self.current_token()
            response, room_ids = yield self._build(
                requester.user_id, since_token, upto, sync_filter, full_state, use_state_after
            )
            if since_token is None or full_state or has_updates(response):
                break
            remaining = deadline_ms - self._now_ms()
            if remaining <= 0:
                break
            notification = yield self._notifier.wait_for(
                requester.user_id, room_ids, lambda n, upto=upto: is_past(n, upto), remaining
            )
            if notification is None:
                break
        yield self._add_transaction_ids(requester, response)
        return response

    def _typing_event(self, room_id, since, full):
        """The ``m.typing`` ephemeral event for a joined room: on a full sync when someone is
        typing, otherwise when the room's typers changed since the token. Typing lives in
        memory, so a token from before a restart (ahead of the tracker) counts as zero."""
        if self._typing is None:
            return None
        since_typing = since.typing if since is not None else 0
        if since_typing > self._typing.position:
            since_typing = 0
        if since is None or full:
            return self._typing.typing_event(room_id) if self._typing.typing_in(room_id) else None
        if self._typing.changed_since(room_id, since_typing):
            return self._typing.typing_event(room_id)
        return None

    @defer.inlineCallbacks
    def _add_transaction_ids(self, requester, response):
        """Set ``unsigned.transaction_id`` on the requesting device's own timeline events
        (Client-Server API, "Transaction identifiers": only the sending device sees it)."""
        own = []
        for section in ("join", "leave"):
            for entry in response.get("rooms", {}).get(section, {}).values():
                for event in entry.get("timeline", {}).get("events", ()):
                    if event.get("sender") == requester.user_id and "event_id" in event:
                        own.append(event)
        if not own:
            return
        txn_ids = yield self._events.get_txn_ids(
            requester.user_id, requester.device_id, [event["event_id"] for event in own]
        )
        for event in own:
            txn_id = txn_ids.get(event["event_id"])
            if txn_id is not None and isinstance(event.get("unsigned"), dict):
                event["unsigned"]["transaction_id"] = txn_id

    @defer.inlineCallbacks
    def _build(self, user_id, since, upto, sync_filter, full_state, use_state_after):
        """Build the response for the window ``(since, upto]``.

        :returns: Deferred firing with ``(response, joined_room_ids)``.
        """
        now_ms = self._now_ms()
        account_data, ignored_users, selection, rows = yield all_of(
            self._client_data.get_account_data_since(
                user_id, since.account_data if since is not None else 0
            ),
            self._ignored_users(user_id),
            self._select_rooms(user_id, since, upto, sync_filter, full_state),
            self._events.get_current_state_deltas(since.room_events, upto.room_events)
            if since is not None
            else defer.succeed([]),
        )
        since_stream = since.room_events if since is not None else None
        deltas = {}
        for row in rows:
            deltas.setdefault(row[1], []).append(tuple(row))
        receipts = yield self._receipts(user_id, selection.joined, since, upto)

        rooms = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        for room_id in sorted(selection.joined):
            typing_event = self._typing_event(room_id, since, selection.joined[room_id])
            entry = yield self._joined_room(
                user_id,
                room_id,
                since_stream,
                upto.room_events,
                selection.joined[room_id],
                sync_filter,
                account_data.room_data.get(room_id, {}),
                receipts.get(room_id),
                now_ms,
                use_state_after,
                ignored_users,
                deltas.get(room_id, ()),
                typing_event,
            )
            if entry is not None:
                rooms["join"][room_id] = entry
        for room_id in sorted(selection.invited):
            invite = yield self._events.get_event(
                selection.invited[room_id].event_id, allow_rejected=True
            )
            if invite is not None and invite.sender in ignored_users:
                continue
            stripped = yield self._sections.stripped_state(
                room_id, selection.invited[room_id].event_id
            )
            rooms["invite"][room_id] = {"invite_state": {"events": stripped}}
        for room_id in sorted(selection.knocked):
            stripped = yield self._sections.stripped_state(
                room_id, selection.knocked[room_id].event_id
            )
            rooms["knock"][room_id] = {"knock_state": {"events": stripped}}
        for room_id in sorted(selection.left):
            membership, full = selection.left[room_id]
            rooms["leave"][room_id] = yield self._left_room(
                user_id,
                room_id,
                since_stream,
                membership,
                full,
                sync_filter,
                account_data.room_data.get(room_id, {}),
                now_ms,
                use_state_after,
                ignored_users,
                deltas.get(room_id, ()),
            )

        presence_events = yield self._presence_events(user_id, since, selection.joined_now, sync_filter)
        global_data = [{"type": t, "content": c} for t, c in account_data.global_data.items()]
        response = {
            "next_batch": str(upto),
            "rooms": rooms,
            "account_data": {"events": sync_filter.account_data.filter_dicts(global_data)},
            "presence": {"events": presence_events},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        }
        return response, selection.joined_now

    @defer.inlineCallbacks
    def _presence_events(self, user_id, since, joined_room_ids, sync_filter):
        """The ``presence.events`` section: changes since the token, or every known state of
        the visible users in an initial sync. Presence lives in memory, so a token from before
        a restart (ahead of the tracker) counts as zero."""
        if self._presence is None:
            return []
        since_presence = since.presence if since is not None else 0
        if since_presence > self._presence.tracker.position:
            since_presence = 0
        events = yield self._presence.events_for(user_id, joined_room_ids, since_presence)
        return sync_filter.presence.filter_dicts(events)

    @defer.inlineCallbacks
    def _receipts(self, user_id, joined, since, upto):
        """The ``m.receipt`` event of each joined room: receipts since ``since``, or all of a room's
        receipts when its whole state is sent (initial sync, newly joined room, ``full_state``).

        :returns: Deferred firing with ``{room_id: m.receipt event}``.
        """
        stored = []
        full_rooms = sorted(r for r, full in joined.items() if full or since is None)
        other_rooms = sorted(r for r, full in joined.items() if not (full or since is None))
        if full_rooms:
            stored += yield self._client_data.get_receipts_since(full_rooms, 0, upto.receipts)
        if other_rooms:
            stored += yield self._client_data.get_receipts_since(
                other_rooms, since.receipts, upto.receipts
            )
        return receipt_events(sorted(stored, key=lambda receipt: receipt.stream_id), user_id)

    @defer.inlineCallbacks
    def _select_rooms(self, user_id, since, upto, sync_filter, full_state):
        """Sort the user's rooms into the response's sections (see the module docstring).

        :returns: Deferred firing with a :class:`RoomSelection`.
        """
        current, changed, forgotten = yield all_of(
            self._rooms.get_rooms_for_user(user_id, memberships=None),
            self._rooms.get_membership_changes(user_id, since.room_events, upto.room_events)
            if since is not None
            else defer.succeed([]),
            self._rooms.get_forgotten_room_ids(user_id),
        )
        current = {m.room_id: m for m in current}
        selection = RoomSelection(
            joined_now=[r for r, m in current.items() if m.membership == "join"]
        )
        if since is None:
            for room_id, membership in current.items():
                selection.add(
                    room_id, membership, full=True, include_leave=sync_filter.include_leave
                )
        else:
            changes = {m.room_id: m for m in changed}
            for room_id, membership in current.items():
                if membership.membership == "join" and room_id not in changes:
                    selection.joined[room_id] = full_state
            for room_id, membership in changes.items():
                was_joined = yield self._was_joined(user_id, room_id, since.room_events)
                full = full_state or not was_joined
                selection.add(room_id, membership, full=full, include_leave=True)
        if forgotten:
            # Client-Server API, "Forgetting rooms": a forgotten room is never sent again
            # (until the user's membership changes, which un-forgets it in storage).
            selection.left = {r: v for r, v in selection.left.items() if r not in forgotten}
        selection.keep_rooms(sync_filter.allows_room)
        return selection

    @defer.inlineCallbacks
    def _ignored_users(self, user_id):
        """The users in the user's ``m.ignored_user_list`` account data (Client-Server API, "Ignoring Users")."""
        content = yield self._client_data.get_account_data(user_id, None, IGNORED_USER_LIST)
        ignored = content.get("ignored_users") if isinstance(content, dict) else None
        return frozenset(ignored) if isinstance(ignored, dict) else frozenset()

    @defer.inlineCallbacks
    def _was_joined(self, user_id, room_id, at_stream):
        """Whether the user's membership in the room's state at ``at_stream`` was ``join``."""
        key = ("m.room.member", user_id)
        ids = yield self._events.get_current_state_ids(room_id, types=[key], at_stream=at_stream)
        if key not in ids:
            return False
        event = yield self._events.get_event(ids[key], allow_rejected=True)
        return event is not None and event.membership == "join"

    def _room_account_data(self, room_id, data, sync_filter):
        events = [{"type": t, "content": c} for t, c in data.items()]
        if not sync_filter.room_account_data.allows_room(room_id):
            return []
        return sync_filter.room_account_data.filter_dicts(events)

    @defer.inlineCallbacks
    def _state_section(
        self,
        user_id,
        room_id,
        since_stream,
        timeline,
        end_stream,
        full,
        sync_filter,
        now_ms,
        use_state_after,
        room_deltas,
    ):
        """``{"state": ...}`` or ``{"state_after": ...}`` for a room entry."""
        if use_state_after:
            ids = yield self._sections.state_ids(
                room_id, since_stream, end_stream, full, room_deltas
            )
            name = "state_after"
        else:
            ids = yield self._sections.state_ids(
                room_id, since_stream, timeline.start, full, room_deltas
            )
            name = "state"
        stored = yield self._sections.state_events(
            user_id, room_id, ids, timeline, sync_filter, full, exclude_timeline=not use_state_after
        )
        events = yield self._sections.serialise(stored, room_id, sync_filter, now_ms)
        return {name: {"events": events}}

    @defer.inlineCallbacks
    def _joined_room(
        self,
        user_id,
        room_id,
        since_stream,
        upto_stream,
        full,
        sync_filter,
        room_data,
        receipt_event,
        now_ms,
        use_state_after,
        ignored_users,
        room_deltas,
        typing_event=None,
    ):
        """One ``rooms.join`` entry, or ``None`` when an incremental sync has nothing for it."""
        timeline = yield self._sections.timeline(
            user_id, room_id, since_stream, upto_stream, sync_filter, ignored_users
        )
        entry = yield self._state_section(
            user_id,
            room_id,
            since_stream,
            timeline,
            upto_stream,
            full,
            sync_filter,
            now_ms,
            use_state_after,
            room_deltas,
        )
        ephemeral = []
        if sync_filter.room_ephemeral.allows_room(room_id):
            candidates = [e for e in (receipt_event, typing_event) if e is not None]
            ephemeral = sync_filter.room_ephemeral.filter_dicts(candidates)
        account_data = self._room_account_data(room_id, room_data, sync_filter)
        state_events = next(iter(entry.values()))["events"]
        if not (full or timeline.events or state_events or ephemeral or account_data):
            return None
        timeline_events = yield self._sections.serialise(
            timeline.events, room_id, sync_filter, now_ms, with_prev_content=True
        )
        entry["timeline"] = {
            "events": timeline_events,
            "limited": timeline.limited,
            "prev_batch": timeline.prev_batch,
        }
        entry["ephemeral"] = {"events": ephemeral}
        entry["account_data"] = {"events": account_data}
        entry["summary"] = yield self._sections.summary(user_id, room_id)
        entry["unread_notifications"] = {"highlight_count": 0, "notification_count": 0}
        return entry

    @defer.inlineCallbacks
    def _left_room(
        self,
        user_id,
        room_id,
        since_stream,
        membership,
        full,
        sync_filter,
        room_data,
        now_ms,
        use_state_after,
        ignored_users,
        room_deltas,
    ):
        """One ``rooms.leave`` entry: the timeline up to the leave and the state before it.

        A user who was not joined just before leaving (a rejected invite, a
        withdrawn knock, a ban of an invitee) never saw the room's state, so
        none is sent; their own membership events still reach the timeline.
        """
        leave_stream = membership.stream_ordering
        timeline = yield self._sections.timeline(
            user_id, room_id, since_stream, leave_stream, sync_filter, ignored_users
        )
        was_member = yield self._was_joined(user_id, room_id, leave_stream - 1)
        if was_member:
            entry = yield self._state_section(
                user_id,
                room_id,
                since_stream,
                timeline,
                leave_stream,
                full,
                sync_filter,
                now_ms,
                use_state_after,
                room_deltas,
            )
        else:
            entry = {"state_after" if use_state_after else "state": {"events": []}}
        timeline_events = yield self._sections.serialise(
            timeline.events, room_id, sync_filter, now_ms, with_prev_content=True
        )
        entry["timeline"] = {
            "events": timeline_events,
            "limited": timeline.limited,
            "prev_batch": timeline.prev_batch,
        }
        entry["account_data"] = {"events": self._room_account_data(room_id, room_data, sync_filter)}
        return entry
